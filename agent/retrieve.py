"""Stage 6: candidate retrieval without an LLM: per-intent vector search plus behavioural signals, fused,
filtered and diversified.

Signals (keys of `settings.fusion_weights`):
- text: reciprocal rank fusion of the per-intent vector queries, each intent's RRF term scaled by its weight;
- popularity: log-scaled interaction counts from the store;
- cooc: item-item co-occurrence with the user's history and linked mentions;
- mention: cosine to the nearest seed item (the titles the user named, and consumed items).

Fusion: each signal is *rank-normalised* over the candidate pool (items the signal scores > 0 get
rank/n in (0, 1], ties share the average rank; unscored items get 0) and the fused score is the weighted
sum. Ranks rather than z-scores because the raw scales are incomparable and heavy-tailed (RRF terms,
summed cosines, log counts) and a sparse signal's z-scores are dominated by its zeros.

Hard filters: consumed/named items, anything within `dislike_similarity` of an active dislike, and the
`where` metadata filter. Diversity: MMR (`mmr_lambda`) on item embeddings over the fused top of the pool.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from interestlens.agent.config import Settings
from interestlens.agent.embeddings import Embedder
from interestlens.agent.errors import InvalidInputError
from interestlens.agent.llm.base import Stopwatch
from interestlens.agent.models import Candidate, Intent, InterestOrigin, InterestProfile, Item, StageStats
from interestlens.agent.profile import interest_text

SIGNALS = ("text", "popularity", "cooc", "mention")
MAX_MENTION_SEEDS = 8  # named titles first, then the most recent consumed items
MENTION_K = 20  # neighbours per seed item
COOC_N = 200
MIN_INTENT_SIMILARITY = 0.3  # cosine to an intent's query for the item to be credited to that intent
COLD_START_N = 200  # popular items considered when there is neither an intent nor a seed
POPULAR_POOL_N = 100  # popular items added to every candidate pool


# ---------------------------------------------------------------------------------------------- where filter
def matches_where(metadata: Mapping[str, Any], where: Mapping[str, Any] | None) -> bool:
    """Evaluate a Chroma-style metadata filter in Python (for items that did not come from a filtered query).

    Supports {field: value}, $eq $ne $gt $gte $lt $lte $in $nin $contains $not_contains, $and, $or.
    A list-valued field matches $eq/$in when any element does.
    """
    if not where:
        return True
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
    pos = [(i, s) for i, s in scores.items() if s > 0]
    if not pos:
        return {}
    from scipy.stats import rankdata

    ranks = rankdata([s for _, s in pos], method="average")
    n = len(pos)
    return {i: float(r / n) for (i, _), r in zip(pos, ranks, strict=True)}


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


def _intent_weights(intents: Sequence[Intent]) -> list[float]:
    total = sum(i.weight for i in intents)
    if total <= 0:
        return [1.0 / len(intents)] * len(intents) if intents else []
    return [i.weight / total for i in intents]


def _rrf(ranked_lists: Sequence[Sequence[tuple[str, float]]], intents: Sequence[Intent], rrf_k: int
         ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Weighted RRF scores and, per item, the intents it answers with the item's rank-based score under each.

    An intent is credited only where the item is similar enough to its query (MIN_INTENT_SIMILARITY): in a
    small catalog every item is in every intent's list, and the justification must name the right one.
    """
    score: dict[str, float] = {}
    by_intent: dict[str, dict[str, float]] = {}
    for hits, intent, w in zip(ranked_lists, intents, _intent_weights(intents), strict=True):
        for rank, (item_id, sim) in enumerate(hits, start=1):
            score[item_id] = score.get(item_id, 0.0) + w / (rrf_k + rank)
            if sim >= MIN_INTENT_SIMILARITY:
                # Unweighted, so an item is credited to the intent under which it ranks best.
                by_intent.setdefault(item_id, {})[intent.id] = 1.0 / (rrf_k + rank) + 1e-6 * w
    return score, by_intent


# ---------------------------------------------------------------------------------------------- main
def _seeds(profile: InterestProfile, seed_item_ids: Sequence[str]) -> tuple[list[str], list[str], set[str]]:
    """(mention seeds, co-occurrence seeds, excluded ids)."""
    linked_likes = [i for s in profile.likes() for i in s.linked_item_ids]
    observed = [s for s in profile.interests if s.origin is InterestOrigin.OBSERVED]
    linked_all = [i for s in observed for i in s.linked_item_ids]
    history = list(profile.history)
    # Named titles first (they speak to what the user wants now), then the most recent consumed items.
    mention = list(dict.fromkeys([*linked_likes, *[s for s in seed_item_ids if s not in set(history)],
                                  *reversed(history)]))[:MAX_MENTION_SEEDS]
    cooc = list(dict.fromkeys([*linked_likes, *seed_item_ids, *history]))
    # Consumed or named already (titles named as dislikes too): never recommend them back.
    excluded = set(history) | set(seed_item_ids) | set(linked_all)
    return mention, cooc, excluded


def _dislike_vectors(profile: InterestProfile, embedder: Embedder) -> np.ndarray | None:
    dislikes = profile.dislikes()
    if not dislikes:
        return None
    return embedder.embed([interest_text(d) for d in dislikes])


def retrieve(
    intents: Sequence[Intent],
    profile: InterestProfile,
    store: Any,
    embedder: Embedder,
    settings: Settings,
    *,
    k: int,
    where: dict[str, Any] | None = None,
    candidate_ids: Sequence[str] | None = None,
    seed_item_ids: Sequence[str] = (),
    stats: StageStats | None = None,
    popularity: Mapping[str, float] | None = None,
) -> list[Candidate]:
    """Up to k candidates, best first, with per-signal scores (rank-normalised) and contributing intent ids.

    `candidate_ids` given: score exactly those items (sampled evaluation protocol), no ANN query.
    `popularity`: precomputed popularity scores (else the store's, which it caches).
    """
    sw = Stopwatch()
    stats = stats if stats is not None else StageStats()
    if k <= 0:
        return []
    intents = list(intents)
    mention_seeds, cooc_seeds, excluded = _seeds(profile, seed_item_ids)
    pop = popularity if popularity is not None else store.popularity_scores()
    qv = embedder.embed([i.query for i in intents]) if intents else None
    seed_embs = store.item_embeddings(mention_seeds) if mention_seeds else {}
    seed_matrix = np.stack(list(seed_embs.values())) if seed_embs else None
    items: dict[str, Item] = {}
    embs: dict[str, np.ndarray] = {}

    if candidate_ids is not None:
        ids = [c for c in dict.fromkeys(candidate_ids) if c not in excluded]
        embs = store.item_embeddings(ids)
        ids = [c for c in ids if c in embs]
        if where:
            items = {it.id: it for it in store.get_items(ids)}
            ids = [c for c in ids if c in items and matches_where(items[c].metadata, where)]
        if not ids:
            return []
        matrix = np.stack([embs[c] for c in ids])
        ranked_lists: list[list[tuple[str, float]]] = []
        if qv is not None:
            sims = matrix @ qv.T  # (candidates, intents)
            for j in range(len(intents)):
                order = np.argsort(-sims[:, j], kind="stable")[: settings.per_intent_k]
                ranked_lists.append([(ids[o], float(sims[o, j])) for o in order])
        text, by_intent = _rrf(ranked_lists, intents, settings.rrf_k)
        mention: dict[str, float] = {}
        if seed_matrix is not None:
            m = (matrix @ seed_matrix.T).max(axis=1)
            mention = {c: float(s) for c, s in zip(ids, m, strict=True)}
        pool = set(ids)
        cooc_n = max(COOC_N, len(ids) + len(excluded))
    else:
        # One ANN call for intent queries and seed items together: each call has a fixed cost.
        rows = [m for m in (qv, seed_matrix) if m is not None]
        hits = store.query_items(np.vstack(rows), n=settings.per_intent_k, where=where) if rows else []
        n_intents = len(intents)
        ranked_lists = [[(i, sim) for i, sim in row if i not in excluded] for row in hits[:n_intents]]
        text, by_intent = _rrf(ranked_lists, intents, settings.rrf_k)
        mention = {}
        for row in hits[n_intents:]:
            for item_id, sim in row[:MENTION_K]:
                if item_id not in excluded and sim > mention.get(item_id, 0.0):
                    mention[item_id] = float(sim)
        pool = set(text) | set(mention)
        cooc_n = COOC_N

    cooc = store.cooccurrence_scores(cooc_seeds, exclude=excluded, n=cooc_n) if cooc_seeds else {}
    if candidate_ids is not None:
        cooc = {i: s for i, s in cooc.items() if i in pool}
        popular = {i: pop.get(i, 0.0) for i in pool}
    else:
        extra = [i for i in cooc if i not in pool and i not in excluded]
        # The most popular items always compete: on real data what many people consume is a strong prior
        # that text alone misses (a popularity-only ranking beats text embeddings on ReDial and MovieLens).
        n_popular = POPULAR_POOL_N if (pool or extra) else COLD_START_N
        seen = pool | set(extra) | excluded
        by_pop = heapq.nlargest(n_popular + len(seen), pop, key=pop.__getitem__)
        extra += [i for i in by_pop if i not in seen][:n_popular]
        if extra and where:
            fetched = {it.id: it for it in store.get_items(extra)}
            items.update(fetched)
            extra = [i for i in extra if i in fetched and matches_where(fetched[i].metadata, where)]
        pool |= set(extra)
        cooc = {i: s for i, s in cooc.items() if i in pool}
        popular = {i: pop.get(i, 0.0) for i in pool}

    raw = {"text": text, "popularity": popular, "cooc": cooc, "mention": mention}
    norm = {name: rank_normalise({i: s for i, s in raw[name].items() if i in pool}) for name in SIGNALS}
    weights = settings.fusion_weights
    fused = {
        i: sum(weights.get(name, 0.0) * norm[name].get(i, 0.0) for name in SIGNALS) for i in pool
    }
    ranked = sorted(pool, key=lambda i: (-fused[i], i))

    dislike_vecs = _dislike_vectors(profile, embedder)
    chosen_ids = _filter_and_diversify(ranked, fused, embs, store, dislike_vecs, k, settings, stats)

    missing = [i for i in chosen_ids if i not in items]
    if missing:
        items.update({it.id: it for it in store.get_items(missing)})
    out = []
    for i in chosen_ids:
        if i not in items:
            continue
        contrib = by_intent.get(i, {})
        out.append(
            Candidate(
                item=items[i],
                score=round(fused[i], 6),
                signals={name: round(norm[name].get(i, 0.0), 6) for name in SIGNALS},
                intent_ids=sorted(contrib, key=lambda iid: -contrib[iid]),
            )
        )
    stats.latency_ms["retrieve"] = stats.latency_ms.get("retrieve", 0.0) + sw.ms
    return out


def _filter_and_diversify(
    ranked: list[str], fused: Mapping[str, float], embs: dict[str, np.ndarray], store: Any,
    dislike_vecs: np.ndarray | None, k: int, settings: Settings, stats: StageStats,
) -> list[str]:
    """Dislike filter over the fused top of the pool (fetched in chunks), then MMR down to k."""
    window = max(4 * k, 40)
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
    top = rel.max()
    rel = rel / top if top > 0 else rel
    order = mmr_select(rel, np.stack([embs[i] for i in kept]), k, settings.mmr_lambda)
    return [kept[o] for o in order]
