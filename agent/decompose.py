"""Decomposition: user text -> grounded sub-interests (stages 1-2 of the pipeline).

Two paths with one output contract:
- `LLMDecomposer`: a prompt (prompts/decompose.j2) and a bounded response model; the reply is validated by the
  backend and then grounded (quotes located verbatim, far-fetched names dropped). Long input is chunked by
  characters and by the model's context; results of a chunk are cached per (user, text, model, prompt
  version).
- `ClusterDecomposer`: no LLM. Clauses are embedded and grouped by agglomerative clustering (cosine),
separately
  for likes and dislikes; each group is named by its most central key phrase. This is the fallback whenever
  the
  LLM is absent, fails, answers invalidly or grounds nothing.
History items (SourceText.source == "history") are decomposed like user text.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Annotated, Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, Field, StringConstraints, ValidationError, create_model

from interestlens.agent.config import Settings
from interestlens.agent.embeddings import Embedder
from interestlens.agent.errors import LLMError, LLMOutputError
from interestlens.agent.grounding import InterestDraft, as_utc, ground_interests
from interestlens.agent.llm.base import Stopwatch, StructuredLLM
from interestlens.agent.models import EvidenceSpan, Polarity, SourceText, StageStats, SubInterest, utcnow
from interestlens.agent.prompting import FENCE, FENCE_END, render
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

    def __init__(self, store: Any, user_id: str) -> None:
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


def as_cache(cache_like: Any, user_id: str = "") -> ResultCache | None:
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
    r"|\bno\s+more\b|\bnot\s+(?:good|great|fun|funny)\b|\bwaste\s+of\b|\btoo\s+(?:scary|slow|long|violent|gory)\b",
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
    around = [text[a:b] for a, b in split_clauses(text) if a < end and start < b] or [text[start:end]]
    return Polarity.DISLIKE if any(clause_polarity(c) is Polarity.DISLIKE for c in around) else Polarity.LIKE


# Text addressed to the model rather than about the user ("ignore previous instructions ...").
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b.{0,40}\b(?:instructions?|rules|prompts?|above)\b"
    r"|\bsystem\s+prompt\b|\byou\s+are\s+now\b|\boutput\s*[{\[]",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W_]+(?:[-'\u2019][^\W_]+)*", re.UNICODE)
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
    for m in _WORD.finditer(text):
        w = m.group().lower().replace("\u2019", "'")
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
        limit = min(
            50, self.settings.max_interests_per_chunk * max(1, -(-total_chars // self.settings.chunk_chars))
        )
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
                phrases = key_phrases(text)
                if phrases:  # no content word: greeting or filler ("Hello", "What would you recommend?")
                    out.append(_Clause(seg.source, s, e, clause_polarity(text), phrases))
        if len(out) > self.max_clauses:
            # Spread the sample over the whole input rather than keeping only its start.
            step = len(out) / self.max_clauses
            out = [out[int(k * step)] for k in range(self.max_clauses)]
        return out

    def _cluster(self, vecs: np.ndarray) -> np.ndarray:
        if len(vecs) == 1:
            return np.zeros(1, dtype=int)
        from sklearn.cluster import AgglomerativeClustering

        model = AgglomerativeClustering(
            n_clusters=None, distance_threshold=self.distance_threshold, metric="cosine", linkage="average"
        )
        return np.asarray(model.fit_predict(vecs))

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
        for pol in (Polarity.LIKE, Polarity.DISLIKE):
            idx = [i for i, c in enumerate(clauses) if c.polarity is pol]
            if not idx:
                continue
            labels = self._cluster(vecs[idx])
            for lab in sorted(set(labels.tolist())):
                members = [idx[k] for k in range(len(idx)) if labels[k] == lab]
                centroid = vecs[members].mean(axis=0)
                centroid /= np.linalg.norm(centroid) or 1.0
                groups.append((members, centroid))
        groups.sort(key=lambda g: -len(g[0]))
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


#
# ----------------------------------------------------------------------------------------------------
# LLM path


class LLMDecomposer:
    """Prompted, schema-constrained and grounded decomposition, with the cluster path as its fallback."""

    def __init__(
        self,
        llm: StructuredLLM,
        embedder: Embedder,
        settings: Settings,
        cache: ResultCache | None = None,
        *,
        fallback: ClusterDecomposer | None = None,
        complement: bool = True,
    ) -> None:
        self.llm = llm
        self.embedder = embedder
        self.settings = settings
        self.cache = cache
        self.fallback = fallback or ClusterDecomposer(embedder, settings)
        self.complement = complement  # add cluster interests for text the LLM's evidence left uncovered
        self.model = interests_model(settings.max_interests_per_chunk)
        self.extractor = f"llm:{llm.model_id}"
        # Room for the reply: a bounded number of interests of bounded size (about 70-100 tokens each in
        # practice).
        self.max_tokens = 110 * settings.max_interests_per_chunk + 60

    def _render(self, texts: Sequence[str]) -> Any:
        return render(
            PROMPT,
            texts=list(texts),
            max_interests=self.settings.max_interests_per_chunk,
            fence_start=FENCE,
            fence_end=FENCE_END,
        )

    def _token_budget(self) -> int | None:
        """Tokens left for the user texts in one call, when the backend can count tokens."""
        count = getattr(self.llm, "count_tokens", None)
        n_ctx = getattr(self.llm, "n_ctx", None)
        if not callable(count) or not isinstance(n_ctx, int):
            return None
        empty = self._render([""])
        overhead = count(empty.system) + count(empty.user) + 32  # chat template markers
        return max(64, n_ctx - overhead - self.max_tokens)

    def _fit(self, chunk: list[Segment], budget: int | None) -> list[list[Segment]]:
        """Split a chunk until each piece fits the model's context."""
        if budget is None:
            return [chunk]
        count = self.llm.count_tokens  # type: ignore[attr-defined]
        tokens = sum(count(s.text) + 12 for s in chunk)
        if tokens <= budget:
            return [chunk]
        if len(chunk) > 1:
            mid = len(chunk) // 2
            return self._fit(chunk[:mid], budget) + self._fit(chunk[mid:], budget)
        seg = chunk[0]
        n = seg.end - seg.start
        if n < 40:
            return [chunk]
        ranges = chunk_text(seg.text, max(20, n // 2))
        return [
            p
            for s, e in ranges
            for p in self._fit([Segment(seg.source, seg.start + s, seg.start + e)], budget)
        ]

    def chunks(self, sources: Sequence[SourceText]) -> list[list[Segment]]:
        packed = _pack(_segments(sources, self.settings.chunk_chars), self.settings.chunk_chars)
        budget = self._token_budget()
        return [piece for chunk in packed for piece in self._fit(chunk, budget)]

    def cache_key(self, user_id: str, texts: Sequence[str]) -> str:
        h = hashlib.sha256()
        for part in (user_id, self.llm.model_id, self.prompt_version, *texts):
            h.update(part.encode("utf-8", "surrogatepass"))
            h.update(b"\x1f")
        return "decompose:" + h.hexdigest()

    @property
    def prompt_version(self) -> str:
        from interestlens.agent.prompting import prompt_version

        return prompt_version(PROMPT)

    def _ask(self, texts: list[str], stats: StageStats, user_id: str) -> LLMInterests:
        key = self.cache_key(user_id or getattr(self.cache, "user_id", ""), texts)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                try:
                    return self.model.model_validate(hit)
                except ValidationError:
                    log.warning("ignoring a cache entry that no longer validates: %s", key)
        try:
            resp = self.llm.generate(
                self._render(texts), self.model, max_tokens=self.max_tokens, temperature=0.0
            )
        except LLMOutputError:
            stats.llm_calls += 1  # it answered, invalidly: the call was made and paid for
            raise
        stats.llm_calls += 1
        stats.prompt_tokens += resp.usage.prompt_tokens
        stats.completion_tokens += resp.usage.completion_tokens
        value = self.model.model_validate(resp.value.model_dump())  # re-check: backends are not trusted
        if self.cache is not None:
            self.cache.put(key, value.model_dump())
        return value

    def decompose(
        self,
        sources: Sequence[SourceText],
        stats: StageStats,
        *,
        user_id: str = "",
        now: datetime | None = None,
    ) -> list[SubInterest]:
        sw = Stopwatch()
        now = now or utcnow()
        out: list[SubInterest] = []
        llm_down = False
        for chunk in self.chunks([s for s in sources if s.text.strip()]):
            chunk_sources = list({seg.source.id: seg.source for seg in chunk}.values())
            grounded: list[SubInterest] = []
            if not llm_down:
                try:
                    reply = self._ask([seg.text for seg in chunk], stats, user_id)
                    drafts = [
                        InterestDraft(
                            name=i.name,
                            description=i.description,
                            polarity=Polarity(i.polarity),
                            weight=i.weight / 5.0,
                            quotes=list(i.evidence),
                            confidence=0.7,
                        )
                        for i in reply.interests
                    ]
                    grounded, dropped = ground_interests(
                        drafts,
                        chunk_sources,
                        self.embedder,
                        self.settings.grounding_min_similarity,
                        extractor=self.extractor,
                        now=now,
                    )
                    stats.dropped_ungrounded += dropped
                    for it in grounded:
                        pol = _checked_polarity(it, chunk_sources)
                        if pol is not it.polarity:  # the id encodes polarity: recompute it too
                            it.polarity, it.id = pol, SubInterest(name=it.name, polarity=pol).id
                except (LLMOutputError, ValidationError) as e:
                    stats.invalid_outputs += 1
                    stats.warnings.append(f"decompose: invalid LLM output, used clustering: {str(e)[:160]}")
                except LLMError as e:
                    llm_down = True  # do not wait for a dead backend once per chunk
                    stats.warnings.append(f"decompose: LLM unavailable, used clustering: {str(e)[:160]}")
                except Exception as e:  # a backend bug must not lose the user's input
                    llm_down = True
                    stats.warnings.append(
                        f"decompose: LLM failed ({type(e).__name__}), used clustering: {e!s:.160}"
                    )
            if not grounded:
                stats.fallbacks += 1
                grounded = self.fallback.decompose_segments(chunk, now=now)
            elif self.complement:
                # A tiny model misses interests: cluster the clauses none of its evidence covers.
                grounded = merge_same_name(grounded)  # tiny models repeat one interest several times
                covered = [span for it in grounded for span in it.evidence]
                room = self.settings.max_interests_per_chunk - len(grounded)
                if room > 0:
                    grounded += self.fallback.decompose_segments(
                        chunk, now=now, max_interests=room, exclude=covered
                    )
            out.extend(grounded)
        stats.latency_ms["decompose"] = stats.latency_ms.get("decompose", 0.0) + sw.ms
        return merge_same_name(out)


def decompose(
    sources: Sequence[SourceText],
    *,
    llm: StructuredLLM | None,
    embedder: Embedder,
    settings: Settings,
    stats: StageStats,
    cache: Any = None,
    user_id: str = "",
    now: datetime | None = None,
) -> list[SubInterest]:
    """Sub-interests of `sources`: the LLM path when an LLM is given and enabled, else clause clustering.

    `cache` is None, an object with get/put, a (get, put) pair, or a store with cache_get/cache_put (bound to
    `user_id`).
    """
    sources = [s for s in sources if s.text.strip()]
    if not sources:
        return []
    if llm is not None and settings.use_llm_decompose:
        dec = LLMDecomposer(llm, embedder, settings, as_cache(cache, user_id))
        return dec.decompose(sources, stats, user_id=user_id, now=now)
    return ClusterDecomposer(embedder, settings).decompose(sources, stats, now=now)
