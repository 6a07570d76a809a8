"""Stage 6: candidate retrieval without an LLM: per-intent vector search plus behavioural signals, fused,
filtered and diversified.

Two steps, so that evaluation and fitting score exactly what deployment scores:
- `agent.candidate_pool.build_pool`: candidates from every signal, each with one feature row
  (agent.fusion.FEATURES: text, popularity, cooc, ease, mention, facet; raw and rank-normalised).
- `rank_pool`: a fusion (linear blend of the ranks, or a fitted LambdaRank model) scores the rows, then filters
  and diversifies (agent.selection).

Hard filters: consumed/named items (in the pool), the `where` metadata filter (agent.filters), the request's
facet exclusions and requirements (agent.facets), anything within `dislike_similarity` of an active dislike.
Diversity: MMR (`mmr_lambda`) on item embeddings over the fused top of the pool.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from interestlens.agent.candidate_pool import CandidatePool, build_pool
from interestlens.agent.config import MMR_LAMBDA_DEFAULT, Settings
from interestlens.agent.facets import RequestFacets
from interestlens.agent.fusion import Fusion, LinearFusion
from interestlens.agent.llm.base import Stopwatch
from interestlens.agent.models import Candidate, Intent, InterestProfile, StageStats
from interestlens.agent.protocols import Embedder, Store
from interestlens.agent.selection import cap_series, dislike_vectors, filter_and_diversify, intent_floor


def served_mmr_lambda(fusion: Fusion, settings: Settings) -> float:
    """MMR's lambda: the setting when given, else the one `interestlens tune` fit with this fusion (in evaluation
    each fold's, chosen on the other folds), else the prior."""
    if settings.retrieve.mmr_lambda is not None:
        return settings.retrieve.mmr_lambda
    fitted = getattr(fusion, "meta", {}).get("mmr_lambda")
    return MMR_LAMBDA_DEFAULT if fitted is None else float(fitted)


def rank_pool(
    pool: CandidatePool,
    profile: InterestProfile,
    store: Store,
    embedder: Embedder,
    settings: Settings,
    fusion: Fusion,
    *,
    k: int,
    stats: StageStats,
    facets: RequestFacets | None = None,
    shown: int | None = None,
) -> list[Candidate]:
    """Fuse, filter dislikes (by embedding and by facet), diversify: the top k candidates, best first."""
    if not pool.ids or k <= 0:
        return []
    fused_arr = fusion.score(pool.features)
    fused = {i: float(s) for i, s in zip(pool.ids, fused_arr, strict=True)}
    row_of = {i: n for n, i in enumerate(pool.ids)}
    ranked = sorted(pool.ids, key=lambda i: (-fused[i], i))
    cover = settings.retrieve.intent_slots and len(pool.intent_ids) >= 2 and pool.intent_vectors is not None
    if cover:  # each intent's best text matches join the diversification window
        n_head, tops = max(4 * k, 40), set(pool.intent_tops)
        head = set(ranked[:n_head])
        ranked = [*ranked[:n_head], *[i for i in pool.intent_tops if i not in head],
                  *[i for i in ranked[n_head:] if i not in tops]]
    if facets is not None and (facets.query.exclude or facets.query.require):
        before = len(ranked)
        ranked = [i for i in ranked if facets.passes_hard(i)]
        if len(ranked) < before:
            stats.warnings.append(f"retrieve: {before - len(ranked)} candidate(s) removed by the request's facets")
    dislike_vecs = dislike_vectors(profile, embedder)
    embs = dict(pool.embeddings)
    intents = (pool.intent_vectors, np.asarray(pool.intent_weights)) if cover else None
    cap = settings.retrieve.series_cap
    # Diversified beyond k, so that items of other series can take the places of a series' extra episodes.
    chosen_ids = filter_and_diversify(ranked, fused, embs, store, dislike_vecs, k, settings, stats, intents,
                                      take=2 * k if cap > 0 else k, mmr_lambda=served_mmr_lambda(fusion, settings))
    if cap > 0:
        missing = [i for i in chosen_ids if i not in pool.items]
        if missing:
            pool.items.update({it.id: it for it in store.get_items(missing)})
        chosen_ids = cap_series(chosen_ids, {i: pool.items[i].title for i in chosen_ids if i in pool.items}, k, cap)
    if settings.retrieve.intent_floor and len(pool.intent_ids) >= 2 and pool.intent_vectors is not None:
        chosen_ids = intent_floor(chosen_ids, ranked, pool.by_intent, pool.intent_ids, pool.intent_vectors, embs,
                                  store, dislike_vecs, settings, shown=min(shown or k, k))
    items = pool.items
    missing = [i for i in chosen_ids if i not in items]
    if missing:
        items.update({it.id: it for it in store.get_items(missing)})
    out = []
    for i in chosen_ids:
        if i not in items:
            continue
        contrib = pool.by_intent.get(i, {})
        if pool.intent_vectors is not None and i in embs and contrib:
            # The intent the item is closest to speaks for it (first: selection.speaking_intent): retrieval rank
            # says which list found it, not which of the user's words it answers (a sci-fi thriller found by the
            # heist query is sci-fi).
            cos = dict(zip(pool.intent_ids, (pool.intent_vectors @ embs[i]).tolist(), strict=True))
            intent_ids = sorted(contrib, key=lambda iid: (-cos.get(iid, 0.0), iid))
        else:
            intent_ids = sorted(contrib, key=lambda iid: -contrib[iid])
        out.append(
            Candidate(item=items[i], score=round(fused[i], 6), signals=pool.signals(row_of[i]), intent_ids=intent_ids)
        )
    return out


def retrieve(
    intents: Sequence[Intent],
    profile: InterestProfile,
    store: Store,
    embedder: Embedder,
    settings: Settings,
    *,
    k: int,
    where: dict[str, Any] | None = None,
    candidate_ids: Sequence[str] | None = None,
    stats: StageStats | None = None,
    popularity: Mapping[str, float] | None = None,
    fusion: Fusion | None = None,
    facets: RequestFacets | None = None,
    shown: int | None = None,
) -> list[Candidate]:
    """Up to k candidates, best first, with per-signal scores (rank-normalised) and contributing intent ids.

    `shown`: how many of them a person sees (default k); every like intent gets one of those slots.

    `fusion`: a fitted ranker (agent.fusion); default: the linear blend of `settings.fusion.weights`.
    """
    sw = Stopwatch()
    stats = stats if stats is not None else StageStats()
    if k <= 0:
        return []
    pool = build_pool(
        intents, profile, store, embedder, settings, where=where, candidate_ids=candidate_ids,
        popularity=popularity, facets=facets,
    )
    out = rank_pool(
        pool, profile, store, embedder, settings, fusion or LinearFusion(settings.fusion.weights),
        k=k, stats=stats, facets=facets, shown=shown,
    )
    stats.latency_ms["retrieve"] = stats.latency_ms.get("retrieve", 0.0) + sw.ms
    return out
