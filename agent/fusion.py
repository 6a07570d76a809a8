"""Fusion of the retrieval signals into one score per candidate: a fixed linear blend, or a learned ranker.

A candidate pool (agent/candidate_pool.py) carries one row of `FEATURES` per item. Two fusions read it:
- `LinearFusion`: a weighted sum of the rank-normalised signals (`<signal>_rank` columns). The default, with
  weights stated in Settings; it needs no training data and keeps what the user said in charge on small catalogs.
  Its weights can also be fit (evals/fitting.py: coordinate ascent on NDCG), which is what a few dozen users
  support without over-fitting.
- `LambdaRankFusion`: a LightGBM LambdaRank model over every column (raw values, ranks and query-level
  context such as "has the user named titles"), fit on a dataset's cases to maximise NDCG (`fit_lambdarank`).
  Fitting only ever happens on users other than those it will score (cross-validation in evals, or a user's
  own behaviour data through `interestlens tune`). LightGBM rather than a hand-written ranker: its LambdaRank
  is the reference implementation of the listwise NDCG objective, fast on CPU, with a stable text format.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from interestlens.agent.errors import InvalidInputError

FUSION_FILE = "fusion.json"  # where `interestlens tune` stores a fitted fusion inside an embedded store
SIGNALS = ("text", "popularity", "cooc", "ease", "mention", "facet")
# Per-candidate columns, then query-level columns (the same value for every candidate of a request: the context
# a tree may split on).
QUERY_FEATURES = ("n_intents", "n_seeds", "has_facets")
FEATURES = (
    *(f"{s}_raw" for s in SIGNALS),
    *(f"{s}_rank" for s in SIGNALS),
    "text_max_similarity",
    *QUERY_FEATURES,
)
FEATURE_INDEX = {name: n for n, name in enumerate(FEATURES)}


class Fusion(Protocol):
    kind: str

    def score(self, features: np.ndarray) -> np.ndarray:
        """One fused score per row of `features` (columns as FEATURES)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What results.json records about this fusion."""
        ...

    def save(self, path: str | Path) -> None:
        """Write it where `load_fusion` reads it (atomically)."""
        ...


def rank_normalise_array(values: np.ndarray) -> np.ndarray:
    """Positive values -> average rank / n in (0, 1] (best = 1.0); zero or negative values -> 0."""
    from scipy.stats import rankdata

    out = np.zeros(len(values), dtype=np.float64)
    mask = values > 0
    if mask.any():
        out[mask] = rankdata(values[mask], method="average") / mask.sum()
    return out


def rank_normalise(scores: Mapping[str, float]) -> dict[str, float]:
    """Positive scores -> average rank / n in (0, 1] (best = 1.0); zero or negative scores are dropped."""
    keys = [i for i, s in scores.items() if s > 0]
    if not keys:
        return {}
    ranks = rank_normalise_array(np.array([scores[i] for i in keys], dtype=np.float64))
    return {i: float(r) for i, r in zip(keys, ranks, strict=True)}


def _save_fusion(path: str | Path, payload: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({**payload, "features": list(FEATURES)}))
    tmp.replace(path)


class LinearFusion:
    kind = "linear"

    def __init__(self, weights: Mapping[str, float], meta: Mapping[str, Any] | None = None) -> None:
        unknown = sorted(set(weights) - set(SIGNALS))
        if unknown:
            raise InvalidInputError(f"unknown fusion signal(s) {unknown}: choose from {', '.join(SIGNALS)}")
        self.weights = dict(weights)
        self.meta = dict(meta or {})
        self.score_vector = np.zeros(len(FEATURES))
        for name, w in self.weights.items():
            self.score_vector[FEATURE_INDEX[f"{name}_rank"]] = float(w)

    def score(self, features: np.ndarray) -> np.ndarray:
        return features @ self.score_vector if len(features) else np.zeros(0)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "weights": self.weights, **self.meta}

    def save(self, path: str | Path) -> None:
        _save_fusion(path, {"kind": self.kind, "weights": self.weights, "meta": self.meta})


class LambdaRankFusion:
    kind = "lambdarank"

    def __init__(self, booster: Any, meta: Mapping[str, Any] | None = None) -> None:
        self.booster = booster
        self.meta = dict(meta or {})

    def score(self, features: np.ndarray) -> np.ndarray:
        if not len(features):
            return np.zeros(0)
        return np.asarray(self.booster.predict(features, num_threads=1), dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.meta}

    def save(self, path: str | Path) -> None:
        _save_fusion(path, {"kind": self.kind, "meta": self.meta, "model": self.booster.model_to_string()})


def load_fusion(path: str | Path) -> Fusion:
    """A fitted fusion written by `<Fusion>.save`; refuses one fit on other feature columns."""
    import lightgbm as lgb

    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise InvalidInputError(f"cannot read fusion model {path}: {e}") from e
    if not isinstance(payload, dict) or payload.get("features") != list(FEATURES):
        raise InvalidInputError(f"fusion model {path} was fit on other features; refit it with `interestlens tune`")
    if payload.get("kind") == LinearFusion.kind:
        return LinearFusion(payload.get("weights") or {}, payload.get("meta"))
    if payload.get("kind") != LambdaRankFusion.kind or not isinstance(payload.get("model"), str):
        raise InvalidInputError(f"fusion model {path}: unknown kind {payload.get('kind')!r}")
    return LambdaRankFusion(lgb.Booster(model_str=payload["model"]), payload.get("meta"))


# Every candidate-level column is evidence for the item (more similar, more popular, more co-consumed, more of the
# request's facets), so the score may never fall as one rises: LightGBM's monotone constraints, +1 on those, 0 on
# the query context (within each context the score stays monotone). With a few dozen users the trees otherwise fit
# quirks of the training users. Offline, 5-fold cross-validation over users on the collected pools, LambdaRank
# alone: ReDial dev full 0.1108 -> 0.1140, MovieLens dev full 0.1221 -> 0.1757 (+0.054 [+0.004, +0.119]).
MONOTONE_CONSTRAINTS = [0 if f in QUERY_FEATURES else 1 for f in FEATURES]

# LambdaRank settings. Small trees with a large floor on leaf size, because a dataset has a few hundred queries.
# Chosen by 5-fold cross-validation over ReDial dev users on the collected pools (offline ndcg@10: 0.097 with
# these vs 0.093 with 150 rounds of 15 leaves, 0.096 with 31 leaves); never on a test split.
LAMBDARANK_PARAMS: dict[str, Any] = {
    "monotone_constraints": MONOTONE_CONSTRAINTS,
    "monotone_constraints_method": "advanced",  # LightGBM's least restrictive way to enforce them
    "objective": "lambdarank",
    "n_estimators": 300,
    "learning_rate": 0.03,
    "num_leaves": 7,
    "min_child_samples": 100,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "lambdarank_truncation_level": 20,
    "verbose": -1,
    "n_jobs": 1,
}


def _canonical(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort(np.column_stack([features, labels]).T[::-1])
    return features[order], labels[order]


def fit_lambdarank(
    pools: Sequence[tuple[np.ndarray, np.ndarray]], *, seed: int = 0, meta: Mapping[str, Any] | None = None
) -> LambdaRankFusion:
    """Fit on (features, labels) per query; labels 1 for held-out positives in the pool, else 0.

    Queries whose pool holds no positive carry no ranking information for LambdaRank and are skipped.
    """
    import lightgbm as lgb

    # Rows in a canonical order (lexicographic over the features): bagging samples rows by position, so the
    # fitted model must not depend on the order a pool's candidates happened to arrive in.
    used = [_canonical(f, y) for f, y in pools if len(f) and y.any()]
    if len(used) < 5:
        raise InvalidInputError(f"too few queries with a positive in their pool to fit a ranker ({len(used)})")
    x = np.vstack([f for f, _ in used])
    y = np.concatenate([yy for _, yy in used]).astype(int)
    ranker = lgb.LGBMRanker(**LAMBDARANK_PARAMS, random_state=seed)
    ranker.fit(x, y, group=[len(f) for f, _ in used])
    info = {"n_queries": len(used), "n_rows": len(x), "params": LAMBDARANK_PARAMS, "seed": seed, **(meta or {})}
    return LambdaRankFusion(ranker.booster_, info)
