"""The polarity lexicon: whether a clause likes or dislikes what it is about, from its wording alone.

Dislike cues ("can't stand", "boring", "not a fan") are matched after removing negated negatives ("not bad",
"don't mind"), so praise worded negatively stays a like. Used by the cluster path for every clause, by the LLM
path to overrule a polarity the clause clearly contradicts (`checked_polarity`), and by linking for the clause
around a named title (`polarity_of`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from interestlens.agent.models import Polarity, SourceText, SubInterest
from interestlens.agent.text import split_clauses

# Negative phrases, matched after removing the positive ones below ("not bad" is praise, not a dislike).
_DISLIKE = re.compile(
    r"\b(?:can'?t|cannot|can\s+not|couldn'?t)\s+(?:stand|bear|stomach|take|get\s+into)\b"
    r"|\b(?:hate[sd]?|hating|dislike[sd]?|detest|loathe|despise|abhor)\b"
    r"|\bnot\s+(?:a\s+|the\s+)?(?:big\s+|huge\s+)?fan\b|\bno\s+fan\b"
    r"|\b(?:don'?t|do\s+not|didn'?t|did\s+not|doesn'?t|does\s+not|never)\s+(?:really\s+)?"
    r"(?:like|love|enjoy|care\s+for|want|watch|appeal|get)\b"
    r"|\bnot\s+(?:really\s+)?(?:into|interested|my\s+(?:thing|cup\s+of\s+tea|taste)|for\s+me)\b"
    r"|\b(?:avoid|avoiding|skip|boring|bored|dull|tedious|overrated|awful|terrible|horrible|worst|annoying|"
    r"cringe|cringy|unbearable|disgusting|gross|lame|meh)\b"
    r"|\bnever\s+again\b|\bsick\s+of\b|\btired\s+of\b|\bfed\s+up\b|\bstay\s+away\b|\bturn(?:s|ed)?\s+off\b"
    r"|\b(?:don'?t|do\s+not|please\s+no|never)\s+(?:recommend|suggest|show|send|give)\b"
    r"|\bno\s+\w+(?:\s+\w+)?\s+please\b|\bnothing\s+(?:scary|sad|violent|gory|slow|long)\b|\bspare\s+me\b"
    r"|\banything\s+but\b|\bkeep\s+(?:away|clear)\b|\bcan'?t\s+(?:handle|take|bear)\b"
    r"|\bno\s+more\b|\bnot\s+(?:good|great|fun|funny)\b|\bwaste\s+of\b"
    r"|\btoo\s+(?:scary|slow|long|violent|gory|loud|noisy|dark|sad|cheesy|predictable|much|sweet|slow-paced)\b"
    r"|\btoo\s+\w+\s+for\s+(?:me|my\s+taste)\b|\bnightmares?\b|\bbor(?:es|ed|ing)\b|\bannoy(?:s|ed|ing)?\b"
    r"|\bmakes?\s+me\s+(?:sick|cringe|sleepy|nauseous)\b|\b(?:gross|puts?)\s+me\s+off\b",
    re.IGNORECASE,
)
_NEGATED_NEGATIVE = re.compile(
    r"\b(?:not|never|wasn'?t|isn'?t|aren'?t|ain'?t)\s+(?:that\s+|too\s+|so\s+)?"
    r"(?:bad|boring|awful|terrible|dull|overrated|horrible|annoying)\b"
    r"|\b(?:don'?t|do\s+not|didn'?t|never)\s+(?:hate|dislike|mind)\b|\bcan'?t\s+get\s+enough\b"
    r"|\bcan'?t\s+wait\b",
    re.IGNORECASE,
)


_LIKE_CUE = re.compile(
    r"\b(?:love[sd]?|like[sd]?|enjoy(?:s|ed)?|adore[sd]?|favou?rite|into)\b", re.IGNORECASE
)


_ABOUT_IT = re.compile(r"\b(?:it|that\s+one|this\s+one|it's|it\s+was)\b", re.IGNORECASE)


def checked_polarity(interest: SubInterest, sources: Sequence[SourceText]) -> Polarity:
    """The LLM's polarity, overruled when the clauses around its evidence clearly say otherwise.

    Tiny models flip likes and dislikes; a dislike cue in the evidence's clause ("can't stand") means dislike,
    and a clause with a like cue but no dislike cue ("I love ... like The Expanse") means like.
    """
    by_id = {s.id: s for s in sources}
    clauses = []
    for span in interest.evidence:
        src = by_id.get(span.source_id)
        if src is None:
            continue
        around = [
            (a, b) for a, b in split_clauses(src.text) if a <= span.start < b or span.start <= a < span.end
        ]
        clauses += [src.text[a:b] for a, b in around] or [span.text]
    if not clauses:
        return interest.polarity
    if any(clause_polarity(c) is Polarity.DISLIKE for c in clauses):
        return Polarity.DISLIKE
    if interest.polarity is Polarity.DISLIKE and any(_LIKE_CUE.search(c) for c in clauses):
        return Polarity.LIKE
    return interest.polarity


def clause_polarity(text: str) -> Polarity:
    """Like unless the clause carries a dislike cue; negated negatives ("not bad", "don't mind") stay
    likes."""
    cleaned = _NEGATED_NEGATIVE.sub(" ", text.replace("\u2019", "'"))
    return Polarity.DISLIKE if _DISLIKE.search(cleaned) else Polarity.LIKE


def polarity_of(text: str, start: int, end: int) -> Polarity:
    """Polarity of the clause(s) around text[start:end] (a named title: "I hated Click (2006)" -> dislike)."""
    clauses = split_clauses(text)
    around = [text[a:b] for a, b in clauses if a < end and start < b] or [text[start:end]]
    if any(clause_polarity(c) is Polarity.DISLIKE for c in around):
        return Polarity.DISLIKE
    if not any(_LIKE_CUE.search(c) for c in around):
        # "I watched Babel (2006). It was a bit boring.": a verdict-free mention takes the verdict of the next
        # clause when that clause is about "it".
        after = [text[a:b] for a, b in clauses if a >= end][:2]
        for c in after:
            if _ABOUT_IT.search(c):
                return clause_polarity(c)
    return Polarity.LIKE
