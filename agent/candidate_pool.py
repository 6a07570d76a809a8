"""The candidate pool of one request: candidates from every retrieval signal, each with one feature row.

The columns are agent.fusion.FEATURES: text (weighted RRF of the per-intent vector queries), popularity
(log-scaled interaction counts), cooc (item-item co-occurrence with the user's consumed and named items), ease
(EASE, Steck 2019, on the same row), mention (cosine to the nearest named or consumed item), facet (the request's
catalog facets, agent.facets); each raw and rank-normalised over the pool (rank/n in (0, 1]; unscored items 0:
ranks because the raw scales are incomparable and heavy-tailed). No ranking happens here (agent.retrieve does
it), so that evaluation and fitting score exactly the rows deployment scores.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interestlens.agent.config import Settings
from interestlens.agent.facets import RequestFacets
from interestlens.agent.filters import matches_where
from interestlens.agent.fusion import FEATURE_INDEX, FEATURES, SIGNALS, rank_normalise_array
from interestlens.agent.models import Intent, InterestOrigin, InterestProfile, Item
from interestlens.agent.protocols import Embedder, Store

MAX_MENTION_SEEDS = 8  # named titles first, then the most recent consumed items
MENTION_K = 20  # neighbours per seed item
COOC_N = 200
COLD_START_N = 200  # popular items considered when there is neither an intent nor a seed
INTENT_TOP_N = 5  # per intent, its best text matches always reach the final selection (intent slots)


def _intent_weights(intents: Sequence[Intent]) -> list[float]:
    total = sum(i.weight for i in intents)
    if total <= 0:
        return [1.0 / len(intents)] * len(intents) if intents else []
    return [i.weight / total for i in intents]


def _rrf(ranked_lists: Sequence[Sequence[tuple[str, float]]], intents: Sequence[Intent], rrf_k: int,
         min_intent_similarity: float) -> tuple[dict[str, float], dict[str, dict[str, float]], dict[str, float]]:
    """Weighted RRF scores, per item the intents it answers (rank-based score under each), and per item the
    best cosine to any intent query.

    An intent is credited only where the item is similar enough to its query (`min_intent_similarity`): in a
    small catalog every item is in every intent's list, and the justification must name the right one.
    """
    score: dict[str, float] = {}
    by_intent: dict[str, dict[str, float]] = {}
    best_sim: dict[str, float] = {}
    for hits, intent, w in zip(ranked_lists, intents, _intent_weights(intents), strict=True):
        for rank, (item_id, sim) in enumerate(hits, start=1):
            score[item_id] = score.get(item_id, 0.0) + w / (rrf_k + rank)
            best_sim[item_id] = max(best_sim.get(item_id, -1.0), sim)
            if sim >= min_intent_similarity:
                # Unweighted, so an item is credited to the intent under which it ranks best.
                by_intent.setdefault(item_id, {})[intent.id] = 1.0 / (rrf_k + rank) + 1e-6 * w
    return score, by_intent, best_sim


@dataclass
class RetrievalSeeds:
    """What the profile says about items: named titles and consumed items (derived once, here)."""

    mention: list[str]  # items whose neighbours are candidates: named liked titles first, then recent history
    behaviour: list[str]  # the user's row for co-occurrence and EASE
    excluded: set[str]  # never recommended back: consumed, and named (liked or disliked)


def profile_seeds(profile: InterestProfile) -> RetrievalSeeds:
    linked_likes = [i for s in profile.likes() for i in s.linked_item_ids]
    # The user's own statements (observed, feedback, manual), not expansions: their named items are excluded.
    own = (InterestOrigin.OBSERVED, InterestOrigin.FEEDBACK, InterestOrigin.MANUAL)
    observed = [s for s in profile.interests if s.origin in own]
    linked_all = [i for s in observed for i in s.linked_item_ids]
    history = list(profile.history)
    mention = list(dict.fromkeys([*linked_likes, *reversed(history)]))[:MAX_MENTION_SEEDS]
    behaviour = list(dict.fromkeys([*linked_likes, *history]))
    return RetrievalSeeds(mention, behaviour, set(history) | set(linked_all) | set(profile.seen))


@dataclass
class CandidatePool:
    """Every candidate of one request with its feature row (columns: agent.fusion.FEATURES)."""

    ids: list[str]
    features: np.ndarray
    by_intent: dict[str, dict[str, float]] = field(default_factory=dict)
    items: dict[str, Item] = field(default_factory=dict)  # items already fetched (where-filtered ones)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    # The like intents' query vectors and weights, and each one's best text matches, for intent coverage.
    intent_ids: list[str] = field(default_factory=list)
    intent_vectors: np.ndarray | None = None
    intent_weights: list[float] = field(default_factory=list)
    intent_tops: list[str] = field(default_factory=list)

    def signals(self, row: int) -> dict[str, float]:
        return {s: round(float(self.features[row, FEATURE_INDEX[f"{s}_rank"]]), 6) for s in SIGNALS}


def build_pool(
    intents: Sequence[Intent],
    profile: InterestProfile,
    store: Store,
    embedder: Embedder,
    settings: Settings,
    *,
    where: dict[str, Any] | None = None,
    candidate_ids: Sequence[str] | None = None,
    popularity: Mapping[str, float] | None = None,
    facets: RequestFacets | None = None,
) -> CandidatePool:
    """Gather candidates from every signal and compute their features (no ranking yet).

    `candidate_ids` given: exactly those items (sampled evaluation protocol), no ANN query.
    `facets`: the request's catalog facets (soft scores, facet-matching candidates), or None.
    """
    intents = list(intents)
    cfg = settings.retrieve
    seeds = profile_seeds(profile)
    excluded = seeds.excluded
    pop = popularity if popularity is not None else store.popularity_scores()
    qv = embedder.embed([i.query for i in intents]) if intents else None
    seed_embs = store.item_embeddings(seeds.mention) if seeds.mention else {}
    seed_matrix = np.stack(list(seed_embs.values())) if seed_embs else None
    items: dict[str, Item] = {}
    embs: dict[str, np.ndarray] = {}
    behaviour_n = COOC_N

    if candidate_ids is not None:
        ids = [c for c in dict.fromkeys(candidate_ids) if c not in excluded]
        embs = store.item_embeddings(ids)
        ids = [c for c in ids if c in embs]
        if where:
            items = {it.id: it for it in store.get_items(ids)}
            ids = [c for c in ids if c in items and matches_where(items[c].metadata, where)]
        ranked_lists: list[list[tuple[str, float]]] = [[] for _ in intents]  # none when no candidate is known
        if qv is not None and ids:
            sims = np.stack([embs[c] for c in ids]) @ qv.T  # (candidates, intents)
            for j in range(len(intents)):
                order = np.argsort(-sims[:, j], kind="stable")[: settings.retrieve.per_intent_k]
                ranked_lists[j] = [(ids[o], float(sims[o, j])) for o in order]
        text, by_intent, best_sim = _rrf(ranked_lists, intents, cfg.rrf_k, cfg.min_intent_similarity)
        mention: dict[str, float] = {}
        if seed_matrix is not None and ids:
            m = (np.stack([embs[c] for c in ids]) @ seed_matrix.T).max(axis=1)
            mention = {c: float(s) for c, s in zip(ids, m, strict=True)}
        pool = list(ids)
        behaviour_n = max(COOC_N, len(ids) + len(excluded))
    else:
        # One ANN call for intent queries and seed items together: each call has a fixed cost.
        rows = [m for m in (qv, seed_matrix) if m is not None]
        hits = store.query_items(np.vstack(rows), n=settings.retrieve.per_intent_k, where=where) if rows else []
        n_intents = len(intents)
        ranked_lists = [[(i, sim) for i, sim in row if i not in excluded] for row in hits[:n_intents]]
        text, by_intent, best_sim = _rrf(ranked_lists, intents, cfg.rrf_k, cfg.min_intent_similarity)
        mention = {}
        for row in hits[n_intents:]:
            for item_id, sim in row[:MENTION_K]:
                if item_id not in excluded and sim > mention.get(item_id, 0.0):
                    mention[item_id] = float(sim)
        pool = list(dict.fromkeys([*text, *mention]))

    cooc = store.cooccurrence_scores(seeds.behaviour, exclude=excluded, n=behaviour_n) if seeds.behaviour else {}
    ease = store.ease_scores(seeds.behaviour, exclude=excluded, n=behaviour_n) if seeds.behaviour else {}
    facet_raw: dict[str, float] = {}
    if candidate_ids is None:
        in_pool = set(pool)
        extra = [i for i in [*cooc, *ease] if i not in in_pool and i not in excluded]
        if facets is not None:
            matching = facets.candidates(settings.retrieve.facet_pool_n, pop)
            extra += [i for i in matching if i not in in_pool and i not in excluded]
        # The most popular items always compete: on real data what many people consume is a strong prior
        # that text alone misses (a popularity-only ranking beats text embeddings on ReDial and MovieLens).
        n_popular = settings.retrieve.popular_pool_n if (pool or extra) else COLD_START_N
        seen = in_pool | set(extra) | excluded
        # The n most popular unseen items (the same list as ranking all and skipping the seen, without the sort).
        extra += heapq.nlargest(n_popular, (i for i in pop if i not in seen), key=pop.__getitem__)
        extra = list(dict.fromkeys(extra))
        if extra and where:
            fetched = {it.id: it for it in store.get_items(extra)}
            items.update(fetched)
            extra = [i for i in extra if i in fetched and matches_where(fetched[i].metadata, where)]
        pool += extra
    if facets is not None:
        facet_raw = facets.scores(pool)
    raw = {"text": text, "popularity": pop, "cooc": cooc, "ease": ease, "mention": mention, "facet": facet_raw}
    features = np.zeros((len(pool), len(FEATURES)), dtype=np.float64)
    for name in SIGNALS:
        col = np.array([raw[name].get(i, 0.0) for i in pool], dtype=np.float64)
        features[:, FEATURE_INDEX[f"{name}_raw"]] = col
        features[:, FEATURE_INDEX[f"{name}_rank"]] = rank_normalise_array(col)
    features[:, FEATURE_INDEX["text_max_similarity"]] = [best_sim.get(i, 0.0) for i in pool]
    features[:, FEATURE_INDEX["n_intents"]] = len(intents)
    features[:, FEATURE_INDEX["n_seeds"]] = len(seeds.behaviour)
    features[:, FEATURE_INDEX["has_facets"]] = float(bool(facet_raw))
    in_pool = set(pool)
    tops = [i for lst in ranked_lists for i, _ in lst[:INTENT_TOP_N] if i in in_pool]
    return CandidatePool(
        ids=pool, features=features, by_intent=by_intent, items=items, embeddings=embs,
        intent_ids=[i.id for i in intents], intent_vectors=qv, intent_weights=_intent_weights(intents),
        intent_tops=list(dict.fromkeys(tops)),
    )
