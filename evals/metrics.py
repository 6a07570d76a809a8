"""Ranking metrics as pure functions, plus user-level bootstrap intervals and a paired significance test.

Per-query metrics share one signature (as in Microsoft Recommenders' python_evaluation, but per query so
that intervals can be bootstrapped over users): `metric(ranked, relevant, k) -> float`, where `ranked` is
item ids best first and `relevant` the held-out positives. Definitions (binary relevance):
- recall@k = |top-k ∩ relevant| / |relevant|
- ndcg@k   = DCG@k / IDCG@k, DCG = sum 1/log2(rank+1) over relevant hits, IDCG over min(k, |relevant|) hits
- hit@k    = 1 if any relevant item is in the top k
- mrr      = 1 / rank of the first relevant item within the top k (0 if none); k defaults to the list length
List-level metrics (coverage, intra-list diversity, novelty) take the whole set of ranked lists.
tests/test_metrics.py cross-checks ndcg/recall/mrr/hit against `ranx` when it is installed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence

import numpy as np


def recall_at_k(ranked: Sequence[str], relevant: Collection[str], k: int = 10) -> float:
    if not relevant:
        return 0.0
    rel = set(relevant)
    return len({i for i in ranked[:k] if i in rel}) / len(rel)


def precision_at_k(ranked: Sequence[str], relevant: Collection[str], k: int = 10) -> float:
    rel = set(relevant)
    return sum(1 for i in ranked[:k] if i in rel) / k if k > 0 else 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Collection[str], k: int = 10) -> float:
    rel = set(relevant)
    if not rel or k <= 0:
        return 0.0
    seen: set[str] = set()
    dcg = 0.0
    for rank, item in enumerate(ranked[:k], start=1):
        if item in rel and item not in seen:  # a duplicated id earns nothing twice
            dcg += 1.0 / math.log2(rank + 1)
            seen.add(item)
    idcg = sum(1.0 / math.log2(r + 1) for r in range(1, min(k, len(rel)) + 1))
    return dcg / idcg


def hit_at_k(ranked: Sequence[str], relevant: Collection[str], k: int = 10) -> float:
    rel = set(relevant)
    return 1.0 if any(i in rel for i in ranked[:k]) else 0.0


def mrr(ranked: Sequence[str], relevant: Collection[str], k: int | None = None) -> float:
    rel = set(relevant)
    for rank, item in enumerate(ranked[: k if k is not None else len(ranked)], start=1):
        if item in rel:
            return 1.0 / rank
    return 0.0


QueryMetric = Callable[[Sequence[str], Collection[str], int], float]

# name -> (function, k). The order is the report's column order.
QUERY_METRICS: dict[str, tuple[QueryMetric, int]] = {
    "ndcg@10": (ndcg_at_k, 10),
    "recall@10": (recall_at_k, 10),
    "hit@10": (hit_at_k, 10),
    "mrr": (mrr, 50),
    "ndcg@5": (ndcg_at_k, 5),
    "recall@50": (recall_at_k, 50),
}


def query_scores(ranked: Sequence[str], relevant: Collection[str]) -> dict[str, float]:
    return {name: fn(ranked, relevant, k) for name, (fn, k) in QUERY_METRICS.items()}


def catalog_coverage(rankings: Sequence[Sequence[str]], catalog_size: int, k: int = 10) -> float:
    """Share of the catalog that appears in at least one top-k list."""
    if catalog_size <= 0:
        return 0.0
    return len({i for r in rankings for i in r[:k]}) / catalog_size


def intra_list_diversity(ranked: Sequence[str], embeddings: Mapping[str, np.ndarray], k: int = 10) -> float:
    """1 - mean pairwise cosine similarity of the top-k items' embeddings (items without one are skipped)."""
    vecs = [embeddings[i] for i in ranked[:k] if i in embeddings]
    if len(vecs) < 2:
        return 0.0
    m = np.asarray(vecs, dtype=np.float64)
    m = m / np.clip(np.linalg.norm(m, axis=1, keepdims=True), 1e-12, None)
    sims = m @ m.T
    n = len(vecs)
    mean_off_diag = (sims.sum() - np.trace(sims)) / (n * (n - 1))
    return float(1.0 - mean_off_diag)


def novelty(
    ranked: Sequence[str], popularity: Mapping[str, float], k: int = 10, floor: float | None = None
) -> float:
    """Mean self-information -log2 p(i) of the top-k items; p(i) = share of users who consumed i.

    Items never seen in behaviour get `floor` (default: half the smallest observed probability) so that
    the score stays finite.
    """
    items = list(ranked[:k])
    if not items:
        return 0.0
    positive = [p for p in popularity.values() if p > 0]
    if floor is None:
        floor = (min(positive) / 2.0) if positive else 1e-6
    return float(np.mean([-math.log2(max(popularity.get(i, 0.0), floor)) for i in items]))


def _group_index(groups: Sequence[str]) -> tuple[list[str], list[np.ndarray]]:
    order: dict[str, list[int]] = {}
    for idx, g in enumerate(groups):
        order.setdefault(g, []).append(idx)
    return list(order), [np.asarray(v) for v in order.values()]


def bootstrap_ci(
    values: Sequence[float], groups: Sequence[str], *, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile CI of the mean over queries, resampling whole users (a user's queries are correlated)."""
    vals = np.asarray(values, dtype=np.float64)
    if len(vals) == 0:
        return (0.0, 0.0)
    _, idx = _group_index(groups)
    sums = np.array([vals[i].sum() for i in idx])
    counts = np.array([len(i) for i in idx])
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(idx), size=(n_boot, len(idx)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return (float(lo), float(hi))


def paired_permutation_test(
    a: Sequence[float], b: Sequence[float], groups: Sequence[str], *, n_perm: int = 10000, seed: int = 0
) -> dict[str, float]:
    """Two-sided paired randomisation test of the mean over queries of (a - b), users as the exchangeable unit.

    One estimand for the estimate, the interval and the test: the query-weighted mean difference. Under the null
    each user's summed difference is as likely negative as positive, so signs are flipped per user and the
    statistic is recomputed as the same query-weighted mean. The 95% interval resamples users for the same mean.
    """
    av, bv = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(av) != len(bv):
        raise ValueError("paired test needs equal-length score lists")
    _, idx = _group_index(groups)
    if len(idx) == 0:
        return {"mean_diff": 0.0, "p_value": 1.0, "diff_ci_lo": 0.0, "diff_ci_hi": 0.0, "n_users": 0}
    sums = np.array([(av[i] - bv[i]).sum() for i in idx])
    n_queries = float(len(av))
    observed = float(sums.sum() / n_queries)
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n_perm, len(sums)))
    perm_means = (signs * sums).sum(axis=1) / n_queries
    p = float((np.sum(np.abs(perm_means) >= abs(observed) - 1e-12) + 1) / (n_perm + 1))
    lo, hi = bootstrap_ci(av - bv, groups, seed=seed)
    return {"mean_diff": observed, "p_value": p, "diff_ci_lo": lo, "diff_ci_hi": hi, "n_users": len(sums)}


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else 0.0
