"""Stage 7: rerank of the top candidates by the LLM, with justifications that cite the user's own words.

The LLM scores the candidates (agent.label_scoring: label-token log-probabilities averaged over seeded orders,
or listwise generation where the backend has no log-probabilities). Its score enters the fusion here: order by
`rank_normalised(retrieval score) + weight * rank_normalised(llm score)` (`fuse_llm_rank`; both on one scale, so a
weight fit with one fusion holds for another), `weight` per model id from `settings.reranker.llm_rank_weights`
(default `llm_rank_weight_default`, 0.0 until measured: then no scoring pass runs). `llm_rank_scores` is the
scorer on its own, for fitting the weight. Justifications are written for the final top k only and checked
(agent.justify), else the template justification (`justify_without_llm`) stands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from interestlens.agent.config import Settings
from interestlens.agent.errors import LLMError, LogprobsUnavailable
from interestlens.agent.justify import Pick, justified_recommendations, justify_without_llm
from interestlens.agent.label_scoring import (
    LABELS,
    LLMRanking,
    ask_picks,
    evidence_catalog,
    listwise_scores,
    score_candidates,
)
from interestlens.agent.llm.base import Stopwatch, StructuredLLM
from interestlens.agent.models import Candidate, Intent, InterestProfile, Recommendation, StageStats


def rank_normalise_scores(scores: Mapping[str, float]) -> dict[str, float]:
    """Any real scores -> average rank / n in (0, 1] (best = 1.0), as retrieval's signals are normalised."""
    if not scores:
        return {}
    from scipy.stats import rankdata  # lazy like fusion.rank_normalise_array: scipy.stats costs ~0.6 s to import

    keys = list(scores)
    ranks = rankdata(np.array([scores[k] for k in keys], dtype=np.float64), method="average") / len(keys)
    return {k: float(r) for k, r in zip(keys, ranks, strict=True)}


def fuse_llm_rank(base: Mapping[str, float], llm_scores: Mapping[str, float], weight: float) -> dict[str, float]:
    """rank_normalised(base) + weight * rank_normalised(llm) over `base`'s items (missing LLM scores count 0).

    Ranks, not raw scores: a LambdaRank score and a linear blend live on different scales, and the weight is
    fit once per model (evals/llm_weight.py). At weight 0, or without LLM scores, `base` itself (same order)."""
    if not weight or not llm_scores:  # the retrieval order as it is (and no scipy import on this path)
        return dict(base)
    base_n = rank_normalise_scores(dict(base))
    llm_n = rank_normalise_scores(dict(llm_scores))
    return {k: v + weight * llm_n.get(k, 0.0) for k, v in base_n.items()}


def fused_order(base: Mapping[str, float], llm_scores: Mapping[str, float], weight: float
                ) -> tuple[list[str], dict[str, float]]:
    """`base`'s items by their fused score (`fuse_llm_rank`), ties kept in `base`'s order, and that score."""
    fused = fuse_llm_rank(base, llm_scores, weight)
    position = {item: n for n, item in enumerate(base)}
    return sorted(base, key=lambda item: (-fused[item], position[item])), fused


def llm_weight(llm: StructuredLLM | None, settings: Settings) -> float:
    """The fitted weight of this model's ranking in the fusion (0.0 for a model nobody measured)."""
    if llm is None:
        return 0.0
    return float(settings.reranker.llm_rank_weights.get(llm.model_id, settings.reranker.llm_rank_weight_default))


def rerank(
    candidates: Sequence[Candidate],
    intents: Sequence[Intent],
    profile: InterestProfile,
    context: str | None,
    *,
    llm: StructuredLLM | None,
    settings: Settings,
    stats: StageStats,
    top_n: int | None = None,
    k: int | None = None,
) -> list[Recommendation]:
    """The top `top_n` candidates in fused order (retrieval score + weight x rank-normalised LLM score), the
    rest after them in retrieval order, ranks 1..n; the first `k` (default: all of the top) get LLM-written
    justifications where they pass the checks, the template otherwise."""
    sw = Stopwatch()
    try:
        return _rerank(candidates, intents, profile, context, llm=llm, settings=settings, stats=stats,
                       top_n=top_n or settings.reranker.top_n, k=k)
    finally:
        stats.latency_ms["rerank"] = stats.latency_ms.get("rerank", 0.0) + sw.ms


def _rerank(candidates: Sequence[Candidate], intents: Sequence[Intent], profile: InterestProfile,
            context: str | None, *, llm: StructuredLLM | None, settings: Settings, stats: StageStats,
            top_n: int, k: int | None) -> list[Recommendation]:
    first: dict[str, Candidate] = {}
    for c in candidates:
        first.setdefault(c.item.id, c)  # first occurrence wins
    candidates = list(first.values())
    top_n = min(top_n, len(LABELS))
    head, tail = candidates[:top_n], candidates[top_n:]
    if llm is None or len(head) < 2:
        return justify_without_llm(candidates, intents, profile)
    evidence = evidence_catalog(intents, profile)
    weight = llm_weight(llm, settings)
    picks: dict[str, Pick] = {}
    llm_scores: dict[str, float] = {}
    scored: LLMRanking | None = None
    if weight > 0:  # at weight 0 the LLM's order would not count: do not pay for it
        try:
            scored = score_candidates(head, intents, profile, context, llm, settings, stats)
            llm_scores = scored.scores
        except LogprobsUnavailable:
            llm_scores, picks = listwise_scores(llm, head, intents, profile, evidence, context, settings, stats)
        except LLMError as e:
            stats.warnings.append(f"rerank: LLM scoring failed ({str(e)[:120]})")
        if not llm_scores:
            stats.fallbacks += 1
    normalised = rank_normalise_scores(llm_scores)
    for c in head:  # the fusion contract: the LLM's rank-normalised score is one more signal of the candidate
        if c.item.id in normalised:
            c.signals["llm"] = normalised[c.item.id]
    order, fused = fused_order({c.item.id: c.score for c in head}, llm_scores, weight)
    final = [first[item] for item in order]
    reranked_by: Literal["llm", "retrieval"] = "llm" if normalised else "retrieval"

    n_justified = len(final) if k is None else max(0, min(k, len(final)))
    if n_justified and not picks:
        try:
            for pick in ask_picks(llm, final[:n_justified], intents, profile, evidence, context, stats,
                                  template="justify", after=scored):
                picks.setdefault(pick.item_id, pick)
        except LLMError as e:
            stats.fallbacks += 1
            stats.warnings.append(f"rerank: justifications unusable, templates used ({str(e)[:120]})")

    out = justified_recommendations(final, fused, picks, n_justified, evidence, intents, profile,
                                    reranked_by=reranked_by, stats=stats)
    for c, rec in zip(tail, justify_without_llm(tail, intents, profile), strict=True):
        out.append(rec.model_copy(update={"rank": len(out) + 1, "item": c.item}))
    return out
