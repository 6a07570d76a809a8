"""Key phrases: the candidate names of an interest in a clause, as runs of its content words.

A name is 1-3 consecutive words, none of them a stop word, a number or a contraction, and not only generic heads
("movies"). The cluster path names a group by its phrase closest to the group's centroid; the LLM path falls
back to a clause's first phrase when the model's topic is far from the clause.
"""

from __future__ import annotations

import re

from interestlens.agent.text import STOP_WORDS

_WORD = re.compile(r"[^\W_]+(?:[-'\u2019][^\W_]+)*", re.UNICODE)
# Words that never belong in an interest name: the stop words, and sentiment, chat filler and time words.
_STOP = STOP_WORDS | frozenset(
    """
    above after afterwards again against all almost alone along already although always among another anyone
    anyway anywhere around became because become before being below beside besides between beyond both
    cannot doing done down during each either else enough especially etc even ever every everyone everything
    except few further gets getting go going gone had has have having he her hers herself him himself his
    however itself keep kinds least less let likes lot lots made make many may might mine mostly must myself
    neither never nor nothing off often once only onto other others otherwise ours ourselves out own per
    perhaps quite rather same see seem seems seen several she since somehow someone sometimes somewhat still
    such their them themselves they thing things though through thus too toward until up upon us via way
    well whatever whenever whether while whoever whole whose within without yet yours yourself yourselves
    i'm i've i'd i'll im ive dont don't can't cant won't isn't aren't wasn't didn't doesn't couldn't
    wouldn't shouldn't it's that's there's loves loving enjoy enjoyed enjoys enjoying hate hated hates
    hating dislike disliked adore adored prefer preferred favorite favourite favorites favourites fan fans
    big huge best better nice cool awesome amazing fun bad worst awful terrible boring stand bear avoid
    wanted wants needs mood mind sane guess wish hope lately hello hi hey thanks thank yes yeah ok okay sure
    lol haha probably actually definitely totally pretty recommendations suggestion suggestions watch
    watched watching think thought know feel felt try tried recently today tonight usually particular type
    old recent day days time times year years night weekend little bit sounds sound open unreal eat eats
    bores bore bored annoy annoys annoying ruin ruins ruined says said makes nightmare nightmares sick
    wonderful perfect unwind
    """.split()  # noqa: SIM905 - a word list reads better as text
)
_CONTRACTION = re.compile(r"'(?:re|ve|ll|d|s|t|m)$")
# Generic heads: fine inside a phrase ("horror movies"), meaningless alone.
_GENERIC = frozenset(
    """
    movie movies film films show shows series book books song songs music stuff genre genres story stories
    one ones kind type style thing things game games podcast podcasts episode episodes
    """.split()  # noqa: SIM905 - a word list reads better as text
)


def key_phrases(text: str, max_n: int = 3) -> list[str]:
    """Candidate interest names in a clause: 1-3-grams of consecutive content words (lower case)."""
    runs: list[list[str]] = [[]]
    prev_end = 0
    for m in _WORD.finditer(text):
        w = m.group().lower().replace("\u2019", "'")
        gap = text[prev_end : m.start()]
        prev_end = m.end()
        if gap.strip():
            runs.append([])  # punctuation ends a phrase: "horror movies, gore" is two, not "horror movies gore"
        if w in _STOP or w.isdigit() or _CONTRACTION.search(w):
            runs.append([])
        else:
            runs[-1].append(w)
    out: list[str] = []
    for run in runs:
        for n in range(1, max_n + 1):
            for i in range(len(run) - n + 1):
                gram = run[i : i + n]
                if all(g in _GENERIC for g in gram) or (n == 1 and len(gram[0]) < 3):
                    continue
                phrase = " ".join(gram)
                if phrase not in out:
                    out.append(phrase)
    return out
