"""Stage 6: candidate retrieval without an LLM: per-intent vector search plus behavioural signals, fused,
filtered and diversified.

Two steps, so that evaluation and fitting score exactly what deployment scores:
- `build_pool`: candidates from every signal, each with one feature row (agent.fusion.FEATURES):
  text (weighted RRF of the per-intent vector queries), popularity (log-scaled interaction counts),
  cooc (item-item co-occurrence with the user's consumed and named items), ease (EASE, Steck 2019, on the same
  row), mention (cosine to the nearest named or consumed item), facet (the request's catalog facets, agent.facets);
  each raw and rank-normalised over the pool (rank/n in (0, 1]; unscored items 0: ranks because the raw scales
  are incomparable and heavy-tailed).
- `rank_pool`: a fusion (linear blend of the ranks, or a fitted LambdaRank model) scores the rows, then filters
  and diversifies.

Hard filters: consumed/named items, anything within `dislike_similarity` of an active dislike, and the
`where` metadata filter. Diversity: MMR (`mmr_lambda`) on item embeddings over the fused top of the pool.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interestlens.agent.config import Settings
from interestlens.agent.errors import InvalidInputError
from interestlens.agent.facets import FacetIndex, FacetQuery, facet_scores, passes_hard
from interestlens.agent.fusion import FEATURE_INDEX, FEATURES, SIGNALS, Fusion, LinearFusion, rank_normalise_array
from interestlens.agent.llm.base import Stopwatch
from interestlens.agent.models import Candidate, Intent, InterestOrigin, InterestProfile, Item, StageStats
from interestlens.agent.profile import interest_text
from interestlens.agent.protocols import Embedder, Store

MAX_MENTION_SEEDS = 8  # named titles first, then the most recent consumed items
MENTION_K = 20  # neighbours per seed item
COOC_N = 200
MIN_INTENT_SIMILARITY = 0.3  # cosine to an intent's query for the item to be credited to that intent
COLD_START_N = 200  # popular items considered when there is neither an intent nor a seed
# Popular items added to every candidate pool: 300, because on ReDial dev half of the positives were outside a
# pool with 100 (pool recall 0.47), and the fused ranker can only promote what is in the pool.
POPULAR_POOL_N = 300
INTENT_TOP_N = 5  # per intent, its best text matches always reach the final selection (intent slots)
FACET_POOL_N = 100  # items matching the request's facets (most popular first) added to the pool


# ---------------------------------------------------------------------------------------------- where filter
def matches_where(metadata: Mapping[str, Any], where: Mapping[str, Any] | None) -> bool:
    """Evaluate a Chroma-style metadata filter in Python (for items that did not come from a filtered query).

    Supports {field: value}, $eq $ne $gt $gte $lt $lte $in $nin $contains $not_contains, $and, $or.
    A list-valued field matches $eq/$in when any element does.
    """
    if not where:
        return True
    try:
        for key, cond in where.items():
            if key == "$and":
                if not all(matches_where(metadata, c) for c in cond):
                    return False
            elif key == "$or":
                if not any(matches_where(metadata, c) for c in cond):
                    return False
            elif key.startswith("$"):
                raise InvalidInputError(f"unsupported where operator {key!r}")
            elif not _match_field(metadata.get(key), cond if isinstance(cond, dict) else {"$eq": cond}):
                return False
    except (TypeError, AttributeError, RecursionError) as e:
        # A malformed filter ({"$gt": "x"} on numbers, {"$and": 3}, a non-string key) is the caller's mistake.
        raise InvalidInputError(f"invalid where filter {where!r:.200}: {type(e).__name__}: {e}") from e
    return True


def _match_field(value: Any, cond: Mapping[str, Any]) -> bool:
    values = value if isinstance(value, list) else [value]
    for op, arg in cond.items():
        if op == "$eq":
            ok = arg in values
        elif op == "$ne":
            ok = arg not in values
        elif op == "$in":
            ok = any(v in arg for v in values)
        elif op == "$nin":
            ok = not any(v in arg for v in values)
        elif op == "$contains":
            ok = arg in values or (isinstance(value, str) and isinstance(arg, str) and arg in value)
        elif op == "$not_contains":
            ok = not (arg in values or (isinstance(value, str) and isinstance(arg, str) and arg in value))
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            if value is None or isinstance(value, list | str | bool):
                return False
            ok = {"$gt": value > arg, "$gte": value >= arg, "$lt": value < arg, "$lte": value <= arg}[op]
        else:
            raise InvalidInputError(f"unsupported where operator {op!r}")
        if not ok:
            return False
    return True


# ---------------------------------------------------------------------------------------------- fusion
def rank_normalise(scores: Mapping[str, float]) -> dict[str, float]:
    """Positive scores -> average rank / n in (0, 1] (best = 1.0); zero or negative scores are dropped."""
    keys = [i for i, s in scores.items() if s > 0]
    if not keys:
        return {}
    ranks = rank_normalise_array(np.array([scores[i] for i in keys], dtype=np.float64))
    return {i: float(r) for i, r in zip(keys, ranks, strict=True)}


def mmr_select(rel: np.ndarray, embs: np.ndarray, k: int, lam: float) -> list[int]:
    """Greedy maximal marginal relevance: lam * relevance - (1 - lam) * max similarity to what is chosen."""
    n = len(rel)
    if n == 0 or k <= 0:
        return []
    sims = embs @ embs.T
    chosen: list[int] = []
    max_sim = np.full(n, -np.inf)
    available = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
        score = lam * rel - (1.0 - lam) * penalty
        score[~available] = -np.inf
        best = int(np.argmax(score))
        chosen.append(best)
        available[best] = False
        max_sim = np.maximum(max_sim, sims[best])
    return chosen


def proportional_select(
    rel: np.ndarray, embs: np.ndarray, intent_vecs: np.ndarray, intent_w: np.ndarray, k: int, lam: float
) -> list[int]:
    """MMR in slots shared out among the intents by weight (Sainte-Lague quotients, as PM-2, Dang & Croft
    2012, does for query aspects): each slot goes to the intent with the largest w / (2 s + 1), s its slots so
    far, and is filled by the best MMR item among those closest to that intent (the intent the justification
    then names). So two equally weighted interests share the list instead of the louder one filling it; an
    intent with no item left gives its slot to plain MMR."""
    n = len(rel)
    if n == 0 or k <= 0:
        return []
    cos = embs @ intent_vecs.T
    owner = np.argmax(cos, axis=1)  # the intent each item is closest to
    lo, hi = cos.min(axis=0), cos.max(axis=0)
    fit = (cos - lo) / np.where(hi > lo, hi - lo, 1.0)  # per intent, min-max over the window
    sims = embs @ embs.T
    chosen: list[int] = []
    max_sim = np.full(n, -np.inf)
    available = np.ones(n, dtype=bool)
    slots = np.zeros(len(intent_w))
    for _ in range(min(k, n)):
        penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
        score = lam * rel - (1.0 - lam) * penalty
        score[~available] = -np.inf
        for intent in np.argsort(-(intent_w / (2 * slots + 1)), kind="stable"):
            # In an intent's slot, relevance is half the fused score, half the fit to that intent.
            mine = np.where(owner == intent, score - lam * 0.5 * (rel - fit[:, intent]), -np.inf)
            if np.isfinite(mine).any():
                best = int(np.argmax(mine))
                slots[intent] += 1
                break
        else:
            best = int(np.argmax(score))
        chosen.append(best)
        available[best] = False
        max_sim = np.maximum(max_sim, sims[best])
    return chosen


def _intent_weights(intents: Sequence[Intent]) -> list[float]:
    total = sum(i.weight for i in intents)
    if total <= 0:
        return [1.0 / len(intents)] * len(intents) if intents else []
    return [i.weight / total for i in intents]


def _rrf(ranked_lists: Sequence[Sequence[tuple[str, float]]], intents: Sequence[Intent], rrf_k: int
         ) -> tuple[dict[str, float], dict[str, dict[str, float]], dict[str, float]]:
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
            if sim >= MIN_INTENT_SIMILARITY:
                # Unweighted, so an item is credited to the intent under which it ranks best.
                by_intent.setdefault(item_id, {})[intent.id] = 1.0 / (rrf_k + rank) + 1e-6 * w
    return score, by_intent, best_sim


# ---------------------------------------------------------------------------------------------- facets
class RequestFacets:
    """A request's facet query over one catalog's facet index: candidates, soft scores and the hard filter."""

    def __init__(self, query: FacetQuery, index: FacetIndex) -> None:
        self.query = query
        self.index = index

    def __bool__(self) -> bool:
        return bool(self.query.soft or self.query.exclude or self.query.require)

    def candidates(self, n: int, popularity: Mapping[str, float]) -> list[str]:
        """Items carrying the request's soft facets, best share first, then the most popular."""
        ids = {i for key in self.query.soft for i in self.index.by_facet.get(key, ())}
        if not ids:
            return []
        share = facet_scores(self.query, list(ids), self.index)
        ranked = heapq.nlargest(4 * n, ids, key=lambda i: (share[i], popularity.get(i, 0.0), i))
        return [i for i in ranked if passes_hard(self.query, i, self.index)][:n]

    def scores(self, ids: Sequence[str]) -> dict[str, float]:
        return facet_scores(self.query, ids, self.index) if self.query.soft else {}

    def passes_hard(self, item_id: str) -> bool:
        return passes_hard(self.query, item_id, self.index)


# ---------------------------------------------------------------------------------------------- pool
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
                order = np.argsort(-sims[:, j], kind="stable")[: settings.per_intent_k]
                ranked_lists[j] = [(ids[o], float(sims[o, j])) for o in order]
        text, by_intent, best_sim = _rrf(ranked_lists, intents, settings.rrf_k)
        mention: dict[str, float] = {}
        if seed_matrix is not None and ids:
            m = (np.stack([embs[c] for c in ids]) @ seed_matrix.T).max(axis=1)
            mention = {c: float(s) for c, s in zip(ids, m, strict=True)}
        pool = list(ids)
        behaviour_n = max(COOC_N, len(ids) + len(excluded))
    else:
        # One ANN call for intent queries and seed items together: each call has a fixed cost.
        rows = [m for m in (qv, seed_matrix) if m is not None]
        hits = store.query_items(np.vstack(rows), n=settings.per_intent_k, where=where) if rows else []
        n_intents = len(intents)
        ranked_lists = [[(i, sim) for i, sim in row if i not in excluded] for row in hits[:n_intents]]
        text, by_intent, best_sim = _rrf(ranked_lists, intents, settings.rrf_k)
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
            extra += [i for i in facets.candidates(FACET_POOL_N, pop) if i not in in_pool and i not in excluded]
        # The most popular items always compete: on real data what many people consume is a strong prior
        # that text alone misses (a popularity-only ranking beats text embeddings on ReDial and MovieLens).
        n_popular = POPULAR_POOL_N if (pool or extra) else COLD_START_N
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
) -> list[Candidate]:
    """Fuse, filter dislikes (by embedding and by facet), diversify: the top k candidates, best first."""
    if not pool.ids or k <= 0:
        return []
    fused_arr = fusion.score(pool.features)
    fused = {i: float(s) for i, s in zip(pool.ids, fused_arr, strict=True)}
    row_of = {i: n for n, i in enumerate(pool.ids)}
    ranked = sorted(pool.ids, key=lambda i: (-fused[i], i))
    cover = settings.intent_slots and len(pool.intent_ids) >= 2 and pool.intent_vectors is not None
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
    dislike_vecs = _dislike_vectors(profile, embedder)
    embs = dict(pool.embeddings)
    intents = (pool.intent_vectors, np.asarray(pool.intent_weights)) if cover else None
    chosen_ids = _filter_and_diversify(ranked, fused, embs, store, dislike_vecs, k, settings, stats, intents)
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
            # The intent the item is closest to speaks for it: retrieval rank says which list found it, not
            # which of the user's words it answers (a sci-fi thriller found by the heist query is sci-fi).
            cos = dict(zip(pool.intent_ids, (pool.intent_vectors @ embs[i]).tolist(), strict=True))
            intent_ids = sorted(contrib, key=lambda iid: (-cos.get(iid, 0.0), iid))
        else:
            intent_ids = sorted(contrib, key=lambda iid: -contrib[iid])
        out.append(
            Candidate(item=items[i], score=round(fused[i], 6), signals=pool.signals(row_of[i]), intent_ids=intent_ids)
        )
    return out


def _dislike_vectors(profile: InterestProfile, embedder: Embedder) -> np.ndarray | None:
    dislikes = profile.dislikes()
    if not dislikes:
        return None
    return embedder.embed([interest_text(d) for d in dislikes])


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
) -> list[Candidate]:
    """Up to k candidates, best first, with per-signal scores (rank-normalised) and contributing intent ids.

    `fusion`: a fitted ranker (agent.fusion); default: the linear blend of `settings.fusion_weights`.
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
        pool, profile, store, embedder, settings, fusion or LinearFusion(settings.fusion_weights),
        k=k, stats=stats, facets=facets,
    )
    stats.latency_ms["retrieve"] = stats.latency_ms.get("retrieve", 0.0) + sw.ms
    return out


def _filter_and_diversify(
    ranked: list[str], fused: Mapping[str, float], embs: dict[str, np.ndarray], store: Store,
    dislike_vecs: np.ndarray | None, k: int, settings: Settings, stats: StageStats,
    intents: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[str]:
    """Dislike filter over the fused top of the pool (fetched in chunks), then MMR (in slots shared out among
    the intents when `intents`, their vectors and weights, are given) down to k."""
    window = max(4 * k, 40) + (INTENT_TOP_N * len(intents[1]) if intents is not None else 0)
    kept: list[str] = []
    dropped = 0
    pos = 0
    while pos < len(ranked) and len(kept) < window:
        chunk = ranked[pos : pos + window]
        pos += len(chunk)
        need = [i for i in chunk if i not in embs]
        if need:
            embs.update(store.item_embeddings(need))
        chunk = [i for i in chunk if i in embs]
        if dislike_vecs is not None and chunk:
            close = (np.stack([embs[i] for i in chunk]) @ dislike_vecs.T).max(axis=1)
            dropped += int((close >= settings.dislike_similarity).sum())
            chunk = [i for i, c in zip(chunk, close, strict=True) if c < settings.dislike_similarity]
        kept.extend(chunk)
    if dropped:
        stats.warnings.append(f"retrieve: {dropped} candidate(s) removed as too close to a dislike")
    kept = kept[:window]
    if not kept:
        return []
    rel = np.array([fused[i] for i in kept], dtype=np.float64)
    # Min-max to [0, 1]: a fitted ranker's scores can be negative, and MMR trades relevance against cosine.
    span = rel.max() - rel.min()
    rel = (rel - rel.min()) / span if span > 0 else np.ones_like(rel)
    matrix = np.stack([embs[i] for i in kept])
    if intents is not None:
        order = proportional_select(rel, matrix, intents[0], intents[1], k, settings.mmr_lambda)
    else:
        order = mmr_select(rel, matrix, k, settings.mmr_lambda)
    return [kept[o] for o in order]
