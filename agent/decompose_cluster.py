"""Decomposition without an LLM (`ClusterDecomposer`), and what both paths share: result caches, segments and
chunks, polarity checks, key phrases, the merge of same-name interests.

Why a module of its own: the LLM path (agent/decompose_llm.py) builds on these pieces and falls back to the
cluster path, and `decompose` (agent/decompose.py) picks between the two, so both import this one.
`ClusterDecomposer`: clauses are embedded and grouped by agglomerative clustering (cosine), separately for likes
and dislikes; each group is named by its most central key phrase. It is the fallback whenever the LLM is absent,
fails, answers invalidly or grounds nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Annotated, Any, Literal, Protocol, TypeAlias

import numpy as np
from pydantic import BaseModel, Field, StringConstraints, create_model

from interestlens.agent.config import Settings
from interestlens.agent.grounding import as_utc
from interestlens.agent.llm.base import Stopwatch
from interestlens.agent.models import EvidenceSpan, Polarity, SourceText, StageStats, SubInterest, utcnow
from interestlens.agent.protocols import Embedder, Store
from interestlens.agent.text import chunk_text, split_clauses

log = logging.getLogger(__name__)

PROMPT = "decompose"

#
# ----------------------------------------------------------------------------------------------------
# LLM response models: every string and list bounded so that a grammar-constrained tiny model terminates.

Quote = Annotated[str, StringConstraints(min_length=1, max_length=160)]


class LLMInterest(BaseModel):
    # Evidence first: a small model names a topic better right after copying the words it is about.
    evidence: list[Quote] = Field(min_length=1, max_length=3)
    name: str = Field(min_length=1, max_length=48)
    polarity: Literal["like", "dislike"]
    weight: Literal[1, 2, 3, 4, 5]  # an enum, so grammars that ignore numeric bounds still enforce it
    description: str = Field(max_length=120)


class LLMInterests(BaseModel):
    interests: list[LLMInterest] = Field(max_length=6)


@cache
def interests_model(max_items: int) -> type[LLMInterests]:
    """LLMInterests with the list bounded by settings.max_interests_per_chunk."""
    return create_model(  # type: ignore[call-overload,no-any-return]
        f"LLMInterests{max_items}",
        __base__=LLMInterests,
        interests=(list[LLMInterest], Field(max_length=max_items)),
    )


#
# ----------------------------------------------------------------------------------------------------
# Result cache


class ResultCache(Protocol):
    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...


class DictCache:
    """In-process cache (tests, or an agent without a store)."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.data.get(key)

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.data[key] = value


class StoreCache:
    """Binds a store's per-user cache (ChromaStore.cache_get/cache_put) to one user id."""

    def __init__(self, store: Store, user_id: str) -> None:
        self.store = store
        self.user_id = user_id

    def get(self, key: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.store.cache_get(self.user_id, key)
        return result

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.store.cache_put(self.user_id, key, value)


class _CallableCache:
    def __init__(
        self, get: Callable[[str], dict[str, Any] | None], put: Callable[[str, dict[str, Any]], None]
    ):
        self.get = get  # type: ignore[method-assign]
        self.put = put  # type: ignore[method-assign]


# What `decompose` accepts as a cache: see `as_cache`.
CacheLike: TypeAlias = (
    ResultCache | Store | tuple[Callable[[str], dict[str, Any] | None], Callable[[str, dict[str, Any]], None]] | None
)


def as_cache(cache_like: CacheLike, user_id: str = "") -> ResultCache | None:
    """Accept None, a get/put object, a (get, put) pair of callables, or a store with cache_get/cache_put."""
    if cache_like is None:
        return None
    if isinstance(cache_like, tuple) and len(cache_like) == 2:
        return _CallableCache(*cache_like)
    if hasattr(cache_like, "cache_get") and hasattr(cache_like, "cache_put"):
        return StoreCache(cache_like, user_id)
    if hasattr(cache_like, "get") and hasattr(cache_like, "put"):
        return cache_like  # type: ignore[no-any-return]
    raise TypeError(
        "cache must be None, an object with get/put, a (get, put) pair, or a store with cache_get/put"
    )


#
# ----------------------------------------------------------------------------------------------------
# Segments and chunks


@dataclass(frozen=True)
class Segment:
    """A range of one source text: the unit chunks are made of, so evidence offsets stay in the source."""

    source: SourceText
    start: int
    end: int

    @property
    def text(self) -> str:
        return self.source.text[self.start : self.end]


def _segments(sources: Sequence[SourceText], max_chars: int) -> list[Segment]:
    out = []
    for src in sources:
        for s, e in chunk_text(src.text, max_chars):
            out.append(Segment(src, s, e))
    return out


def _pack(segments: Sequence[Segment], max_chars: int, max_texts: int = 8) -> list[list[Segment]]:
    """Group consecutive segments (many short tags, a few chat lines) into chunks of at most max_chars."""
    chunks: list[list[Segment]] = []
    cur: list[Segment] = []
    size = 0
    for seg in segments:
        n = seg.end - seg.start
        if cur and (size + n > max_chars or len(cur) >= max_texts):
            chunks.append(cur)
            cur, size = [], 0
        cur.append(seg)
        size += n
    if cur:
        chunks.append(cur)
    return chunks


def _earliest_latest(sources: Sequence[SourceText], now: datetime) -> tuple[datetime, datetime]:
    times = [as_utc(s.ts) for s in sources if s.ts is not None]
    return (min(times), max(times)) if times else (now, now)


def merge_same_name(interests: Sequence[SubInterest]) -> list[SubInterest]:
    """Merge interests with the same (name, polarity) found in different chunks: evidence unioned, max
    weight."""
    merged: dict[str, SubInterest] = {}
    for it in interests:
        prev = merged.get(it.id)
        if prev is None:
            merged[it.id] = it.model_copy(deep=True)
            continue
        keys = {(e.source_id, e.start, e.end) for e in prev.evidence}
        prev.evidence.extend(e for e in it.evidence if (e.source_id, e.start, e.end) not in keys)
        prev.weight = max(prev.weight, it.weight)
        prev.confidence = max(prev.confidence, it.confidence)
        prev.first_seen = min(prev.first_seen, it.first_seen)
        prev.last_seen = max(prev.last_seen, it.last_seen)
        if not prev.description:
            prev.description = it.description
    return list(merged.values())


#
# ----------------------------------------------------------------------------------------------------
# Non-LLM path: clause clustering

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


def _checked_polarity(interest: SubInterest, sources: Sequence[SourceText]) -> Polarity:
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


# Text addressed to the model rather than about the user ("ignore previous instructions ...").
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b.{0,40}\b(?:instructions?|rules|prompts?|above)\b"
    r"|\bsystem\s+prompt\b|\byou\s+are\s+now\b|\boutput\s*[{\[]",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W_]+(?:[-'\u2019][^\W_]+)*", re.UNICODE)
# A request or chat filler, not a statement of taste ("what should I watch?", "i am open to any movie").
_REQUEST = re.compile(
    r"\s{0,3}(?:(?:so\s{1,3}|and\s{1,3}|ok\s{1,3}|well\s{1,3})?(?:please\s{1,3})?"
    r"(?:recommend|suggest|tell|give|show|find|send|get)\s{1,3}(?:me|us)\b"
    r"|(?:what|which|who|where|how|when|why|can|could|would|will|do|does|did|is|are|have|has|any)\b"
    r"|i(?:'m|\s{1,3}am)?\s{1,3}(?:open\s{1,3}to|looking\s{1,3}for|searching\s{1,3}for|in\s{1,3}the\s{1,3}mood)\b"
    r"|i\s{1,3}(?:want|need|would\s{1,3}like|'d\s{1,3}like)\s{1,3}(?:to\s{1,3}(?:watch|see|read|hear)|a|an|some|any|"
    r"something)\b|(?:thanks|thank\s{1,3}you|whatever|sounds\s{1,3}good|that\s{1,3}sounds|ok|okay|sure)\b"
    r"|we\s{1,3}(?:had|went|did|were)\b)",
    re.IGNORECASE,
)
_TASTE_CUE = re.compile(
    r"\b(?:love[sd]?|like[sd]?|enjoy(?:s|ed)?|adore[sd]?|favou?rite|into|fan|hate[sd]?|can'?t\s+stand|prefer)\b",
    re.IGNORECASE,
)


def is_request(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] asks for something or chats rather than states a taste.

    A question or request clause with its own taste cue ("any more like Alien? I love it") is still a statement.
    """
    clause = text[start:end]
    tail = text[end : end + 3]
    if _TASTE_CUE.search(clause) and not clause.lower().lstrip().startswith(("what", "which", "how")):
        return False
    return bool(_REQUEST.match(clause)) or "?" in tail

# Words that never belong in an interest name: function words, sentiment, chat filler.
_STOP = frozenset(
    """
    a about above after afterwards again against all almost alone along already also although always am
    among an and another any anyone anything anyway anywhere are around as at be became because become been
    before being below beside besides between beyond both but by can cannot could did do does doing done
    down during each either else enough especially etc even ever every everyone everything except few for
    from further get gets getting give go going gone got had has have having he her here hers herself him
    himself his how however i if in into is it its itself just keep kind kinds least less let like liked
    likes lot lots made make many may me might mine more most mostly much must my myself neither never no
    nor not nothing now of off often on once one only onto or other others otherwise our ours ourselves out
    over own per perhaps please quite rather really same see seem seems seen several she should since so
    some somehow someone something sometimes somewhat still such than that the their them themselves then
    there these they thing things this those though through thus to too toward under until up upon us very
    via was way we well were what whatever when whenever where whether which while who whoever whole whom
    whose why will with within without would yet you your yours yourself yourselves i'm i've i'd i'll im ive
    dont don't can't cant won't isn't aren't wasn't didn't doesn't couldn't wouldn't shouldn't it's that's
    there's love loved loves loving enjoy enjoyed enjoys enjoying hate hated hates hating dislike disliked
    adore adored prefer preferred favorite favourite favorites favourites fan fans big huge great good best
    better nice cool awesome amazing fun bad worst awful terrible boring stand bear avoid want wanted wants
    need needs mood mind sane guess wish hope lately getting into hello hi hey thanks thank yes yeah ok okay
    sure lol haha maybe probably actually definitely totally pretty recommend recommendation recommendations
    suggest suggestion suggestions looking look watch watched watching think thought know feel felt try
    tried recently lately today tonight usually especially particular sort type new old recent day days time
    times year years night weekend always sometimes mostly little bit lots
    sounds sound open unreal eat eats bores bore bored annoy annoys annoying ruin ruins ruined says said makes
    nightmare nightmares sick wonderful perfect favorite unwind
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


@dataclass
class _Clause:
    source: SourceText
    start: int
    end: int
    polarity: Polarity
    phrases: list[str]

    @property
    def text(self) -> str:
        return self.source.text[self.start : self.end]


class ClusterDecomposer:
    """Embedding-cluster decomposition of clauses; no LLM, deterministic."""

    extractor = "cluster"

    def __init__(
        self,
        embedder: Embedder,
        settings: Settings,
        *,
        distance_threshold: float = 0.6,
        max_clauses: int = 2000,
    ) -> None:
        self.embedder = embedder
        self.settings = settings
        self.distance_threshold = distance_threshold  # cosine distance, average linkage
        self.max_clauses = max_clauses

    def decompose(
        self, sources: Sequence[SourceText], stats: StageStats | None = None, now: datetime | None = None
    ) -> list[SubInterest]:
        sw = Stopwatch()
        segs = [Segment(s, 0, len(s.text)) for s in sources if s.text.strip()]
        total_chars = sum(len(s.text) for s in sources)
        # Bound the number of interests like the LLM path would: per chunk of input.
        # Several short texts (a week of posts) each state something: at least two interests per text fit.
        per_chunk = self.settings.max_interests_per_chunk * max(1, -(-total_chars // self.settings.chunk_chars))
        limit = min(50, max(per_chunk, 2 * len(segs)))
        out = self.decompose_segments(segs, now=now, max_interests=limit)
        if stats is not None:
            stats.latency_ms["decompose"] = stats.latency_ms.get("decompose", 0.0) + sw.ms
        return out

    def _clauses(self, segments: Sequence[Segment], exclude: Sequence[EvidenceSpan] = ()) -> list[_Clause]:
        out = []
        for seg in segments:
            for s, e in split_clauses(seg.source.text, seg.start, seg.end):
                if any(x.source_id == seg.source.id and x.start < e and s < x.end for x in exclude):
                    continue  # already evidence of an interest found by the LLM
                text = seg.source.text[s:e]
                if _INSTRUCTION.search(text):
                    continue  # an injected instruction is not an interest
                if is_request(seg.source.text, s, e):
                    continue  # "what should I watch?", "thanks": asking or chatting is not an interest
                phrases = key_phrases(text)
                if phrases:  # no content word: greeting or filler ("Hello", "What would you recommend?")
                    out.append(_Clause(seg.source, s, e, clause_polarity(text), phrases))
        if len(out) > self.max_clauses:
            # Spread the sample over the whole input rather than keeping only its start.
            step = len(out) / self.max_clauses
            out = [out[int(k * step)] for k in range(self.max_clauses)]
        return out

    # Two sentences of one text are two statements unless they say nearly the same thing: a person who writes
    # "I love space operas. Lately I'm also into heist thrillers." names two interests, which plain cosine
    # clustering merged (issue 9). Across texts (a profile built over weeks) the plain distance applies.
    same_text_penalty = 0.3

    def _cluster(self, vecs: np.ndarray, sources: Sequence[str] | None = None) -> np.ndarray:
        if len(vecs) == 1:
            return np.zeros(1, dtype=int)
        from sklearn.cluster import AgglomerativeClustering

        dist = np.clip(1.0 - vecs @ vecs.T, 0.0, 2.0)
        if sources is not None:
            src = np.asarray([hash(x) for x in sources])
            same = src[:, None] == src[None, :]
            np.fill_diagonal(same, False)
            dist = dist + self.same_text_penalty * same
        np.fill_diagonal(dist, 0.0)
        model = AgglomerativeClustering(
            n_clusters=None, distance_threshold=self.distance_threshold, metric="precomputed", linkage="average"
        )
        return np.asarray(model.fit_predict(dist))

    def decompose_segments(
        self,
        segments: Sequence[Segment],
        *,
        now: datetime | None = None,
        max_interests: int | None = None,
        exclude: Sequence[EvidenceSpan] = (),
    ) -> list[SubInterest]:
        """Interests of the segments' clauses; clauses overlapping `exclude` spans are left out."""
        now = now or utcnow()
        clauses = self._clauses(segments, exclude)
        if not clauses:
            return []
        vecs = self.embedder.embed([c.text for c in clauses])
        groups: list[tuple[list[int], np.ndarray]] = []
        rank: list[int] = []  # a group's place within its polarity: ties alternate likes and dislikes
        for pol in (Polarity.LIKE, Polarity.DISLIKE):
            idx = [i for i, c in enumerate(clauses) if c.polarity is pol]
            if not idx:
                continue
            labels = self._cluster(vecs[idx], [clauses[i].source.id for i in idx])
            for lab in sorted(set(labels.tolist())):
                members = [idx[k] for k in range(len(idx)) if labels[k] == lab]
                centroid = vecs[members].mean(axis=0)
                centroid /= np.linalg.norm(centroid) or 1.0
                rank.append(sum(1 for m, _ in groups if clauses[m[0]].polarity is pol))
                groups.append((members, centroid))
        # Biggest groups first; among equals, a dislike is not crowded out by a run of likes.
        order = sorted(range(len(groups)), key=lambda k: (-len(groups[k][0]), rank[k]))
        groups = [groups[k] for k in order]
        groups = groups[: max_interests or self.settings.max_interests_per_chunk]

        # Name every group in one embedding batch: its candidate phrase closest to the centroid.
        cands: list[list[str]] = []
        counts: list[dict[str, int]] = []
        for members, _ in groups:
            c: dict[str, int] = {}
            for i in members:
                for p in clauses[i].phrases:
                    c[p] = c.get(p, 0) + 1
            counts.append(c)
            cands.append(list(c))
        flat = [p for ps in cands for p in ps]
        pvecs = self.embedder.embed(flat) if flat else np.zeros((0, 1))
        out: list[SubInterest] = []
        offset = 0
        total = len(clauses)
        for (members, centroid), ps, cnt in zip(groups, cands, counts, strict=True):
            sims = pvecs[offset : offset + len(ps)] @ centroid
            offset += len(ps)
            # Small bonus for phrases that recur across the group's clauses.
            scores = [float(s) + 0.03 * (cnt[p] - 1) for s, p in zip(sims, ps, strict=True)]
            name = ps[int(np.argmax(scores))]
            member_sims = vecs[members] @ centroid
            order = [members[k] for k in np.argsort(-member_sims)]
            central = clauses[order[0]]
            evidence = [
                EvidenceSpan(
                    source_id=clauses[i].source.id,
                    start=clauses[i].start,
                    end=clauses[i].end,
                    text=clauses[i].text,
                )
                for i in order[:10]
            ]
            first, last = _earliest_latest([clauses[i].source for i in members], now)
            out.append(
                SubInterest(
                    name=name[:120],
                    description=central.text[:120],
                    polarity=clauses[members[0]].polarity,
                    weight=round(len(members) / total, 4),
                    confidence=min(0.5, 0.25 + 0.05 * len(members)),
                    evidence=evidence,
                    first_seen=first,
                    last_seen=last,
                    extractor=self.extractor,
                )
            )
        return merge_same_name(out)
