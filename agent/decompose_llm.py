"""LLM decomposition by labelling: clauses are split without an LLM, the model labels them by number.

The model gets the chunk's clauses numbered (the clause splitter of `ClusterDecomposer`, which already drops
requests, greetings and injected instructions) and answers per clause: its number (a runtime Literal enum),
"like" / "dislike" / "none", and a topic of at most four words. The evidence is the clause itself, so grounding
holds by construction, and the reply is a few tokens per clause instead of copied quotes. Clauses labelled
"none" are dropped; a topic the grounding check rejects (far from its clause) is replaced by the clause's key
phrase; the lexicon overrules a polarity that the clause's cues clearly contradict. Clauses the model skips
are filled in by the cluster path (`complement`), and a chunk whose call fails falls back to it entirely.
Results are cached per (user, model, rendered prompt, response schema).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, create_model

from interestlens.agent.chunks import Segment, merge_same_name, pack_segments, split_segments
from interestlens.agent.config import Settings
from interestlens.agent.decompose_cluster import ClusterDecomposer
from interestlens.agent.errors import LLMError, LLMOutputError
from interestlens.agent.grounding import InterestDraft, ground_interests
from interestlens.agent.llm.base import Stopwatch, StructuredLLM
from interestlens.agent.llm.call import structured_call
from interestlens.agent.models import EvidenceSpan, Polarity, SourceText, StageStats, SubInterest, utcnow
from interestlens.agent.polarity import checked_polarity
from interestlens.agent.prompting import FENCE, FENCE_END, RenderedPrompt, render
from interestlens.agent.protocols import Embedder
from interestlens.agent.result_cache import ResultCache

log = logging.getLogger(__name__)

PROMPT = "decompose"
MAX_CLAUSES_PER_CALL = 12  # numbered clauses in one prompt: a short reply, and room in a 2k context
MAX_TOPIC_CHARS = 40
MAX_TOPIC_WORDS = 4
TOKENS_PER_CLAUSE = 24  # `{"n":12,"label":"dislike","topic":"four short words here"},` is ~20 tokens
LLM_WEIGHT = 0.6  # a labelled clause's weight before reinforcement (the cluster path's scale)
LLM_CONFIDENCE = 0.7


@cache
def labels_model(n_clauses: int) -> type[BaseModel]:
    """The reply schema for `n_clauses` numbered clauses: one entry per clause, by number."""
    number = Literal[tuple(range(1, n_clauses + 1))]  # type: ignore[valid-type]
    entry = create_model(
        "ClauseLabel",
        n=(number, ...),
        label=(Literal["like", "dislike", "none"], ...),
        topic=(str, Field(max_length=MAX_TOPIC_CHARS)),
    )
    return create_model(  # type: ignore[call-overload,no-any-return]
        f"ClauseLabels{n_clauses}", clauses=(list[entry], Field(max_length=n_clauses))  # type: ignore[valid-type]
    )


def _topic(text: str) -> str:
    return " ".join(text.replace('"', " ").split()[:MAX_TOPIC_WORDS]).strip(" .,;:!?-")


class LLMDecomposer:
    """Clause labelling with the LLM, grounded by construction, with the cluster path as its fallback."""

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
        self.complement = complement  # cluster the clauses the model skipped
        self.extractor = f"llm:{llm.model_id}"

    def chunks(self, sources: Sequence[SourceText]) -> list[list[Segment]]:
        chunk_chars = self.settings.decompose.chunk_chars
        return pack_segments(split_segments(sources, chunk_chars), chunk_chars)

    def _render(self, clauses: Sequence[str]) -> RenderedPrompt:
        return render(PROMPT, clauses=list(clauses), fence_start=FENCE, fence_end=FENCE_END)

    def cache_key(self, user_id: str, prompt: RenderedPrompt, model: type[BaseModel]) -> str:
        """The rendered prompt and the response schema are the key: any change to either is a new entry."""
        h = hashlib.sha256()
        schema = json.dumps(model.model_json_schema(), sort_keys=True)
        for part in (user_id, self.llm.model_id, prompt.version, prompt.system, prompt.user, schema):
            h.update(part.encode("utf-8", "surrogatepass"))
            h.update(b"\x1f")
        return "decompose:" + h.hexdigest()

    def _label(self, clauses: Sequence[str], stats: StageStats, user_id: str) -> list[Any]:
        model = labels_model(len(clauses))
        prompt = self._render(clauses)
        key = self.cache_key(user_id or getattr(self.cache, "user_id", ""), prompt, model)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                try:
                    return list(model.model_validate(hit).clauses)  # type: ignore[attr-defined]
                except ValidationError:
                    log.warning("ignoring a cache entry that no longer validates: %s", key)
        reply = structured_call(self.llm, prompt, model, stats=stats,
                                max_tokens=20 + TOKENS_PER_CLAUSE * len(clauses))
        if self.cache is not None:
            self.cache.put(key, reply.model_dump())
        return list(reply.clauses)  # type: ignore[attr-defined]

    def _interests(self, chunk: list[Segment], stats: StageStats, user_id: str, now: datetime
                   ) -> tuple[list[SubInterest], list[EvidenceSpan]]:
        """(grounded interests, spans of the clauses the model labelled "none") for one chunk."""
        clauses = self.fallback._clauses(chunk)
        min_similarity = self.settings.decompose.grounding_min_similarity
        sources = list({seg.source.id: seg.source for seg in chunk}.values())
        drafts: list[tuple[InterestDraft, Any]] = []
        rejected: list[EvidenceSpan] = []
        for start in range(0, len(clauses), MAX_CLAUSES_PER_CALL):
            group = clauses[start : start + MAX_CLAUSES_PER_CALL]
            seen: set[int] = set()
            for entry in self._label([c.text for c in group], stats, user_id):
                if entry.n in seen:
                    continue  # the first answer for a clause counts
                seen.add(entry.n)
                clause = group[entry.n - 1]
                if entry.label == "none":
                    rejected.append(EvidenceSpan(source_id=clause.source.id, start=clause.start, end=clause.end,
                                                 text=clause.text))
                    continue
                name = _topic(entry.topic) or clause.phrases[0]
                draft = InterestDraft(name=name, polarity=Polarity(entry.label), weight=LLM_WEIGHT,
                                      quotes=[clause.text], confidence=LLM_CONFIDENCE)
                drafts.append((draft, clause))
        grounded: list[SubInterest] = []
        for draft, clause in drafts:
            kept, dropped = ground_interests([draft], sources, self.embedder, min_similarity,
                                             extractor=self.extractor, now=now)
            if dropped and clause.phrases and clause.phrases[0] != draft.name:
                # The topic is far from its clause (an invented name): the clause's own key phrase instead.
                stats.dropped_ungrounded += dropped
                renamed = draft.model_copy(update={"name": clause.phrases[0]})
                kept, _ = ground_interests([renamed], sources, self.embedder, 0.0, extractor=self.extractor,
                                           now=now)
            for it in kept:
                pol = checked_polarity(it, sources)
                if pol is not it.polarity:  # the id encodes polarity: recompute it too
                    it.polarity, it.id = pol, SubInterest(name=it.name, polarity=pol).id
            grounded += kept
        return grounded, rejected

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
            grounded: list[SubInterest] = []
            rejected: list[EvidenceSpan] = []
            labelled = False
            if not llm_down:
                try:
                    grounded, rejected = self._interests(chunk, stats, user_id, now)
                    labelled = True
                except LLMOutputError as e:
                    stats.warnings.append(f"decompose: invalid LLM output, used clustering: {str(e)[:160]}")
                except LLMError as e:
                    llm_down = True  # do not wait for a dead backend once per chunk
                    stats.warnings.append(f"decompose: LLM unavailable, used clustering: {str(e)[:160]}")
                except Exception as e:  # a backend bug must not lose the user's input
                    llm_down = True
                    stats.warnings.append(
                        f"decompose: LLM failed ({type(e).__name__}), used clustering: {e!s:.160}"
                    )
            if not labelled:
                stats.fallbacks += 1
                grounded = self.fallback.decompose_segments(chunk, now=now)
            elif self.complement:
                grounded = merge_same_name(grounded)
                room = self.settings.decompose.max_interests_per_chunk - len(grounded)
                if room > 0:  # clauses the model skipped (neither labelled nor rejected) go to the cluster path
                    covered = [span for it in grounded for span in it.evidence] + rejected
                    grounded += self.fallback.decompose_segments(chunk, now=now, max_interests=room,
                                                                 exclude=covered)
            out.extend(grounded)
        stats.latency_ms["decompose"] = stats.latency_ms.get("decompose", 0.0) + sw.ms
        return merge_same_name(out)
