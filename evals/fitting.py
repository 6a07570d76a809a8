"""Fitting the fusion on real cases without ever scoring a user with a model that saw them.

- `collect_pools`: inside the leave-user-out loop that evaluation shares (evals/leave_user_out.py), each case
  observed as a fresh user, its candidate pool built exactly as `recommend` builds it
  (InterestAgent.candidate_pool), labelled with the case's held-out positives.
- `cross_validated_fusions`: K folds over users; the model for a user is fit on the other folds only.
- `fit_fusion`: one model on every user of a split (what `interestlens tune` stores for a deployment).
- `fusion_per_user`: the fusion the evaluation scores each user with (cross-validated, fit on other splits, a
  file, or the linear weights).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interestlens.agent.config import MMR_LAMBDA_DEFAULT, Settings
from interestlens.agent.embeddings import make_embedder
from interestlens.agent.errors import InvalidInputError
from interestlens.agent.fusion import (
    FEATURE_INDEX,
    FEATURES,
    FUSION_FILE,
    SIGNALS,
    Fusion,
    LinearFusion,
    fit_lambdarank,
    load_fusion,
)
from interestlens.agent.selection import mmr_relevance, mmr_select, mmr_window
from interestlens.evals.data import EvalCase, EvalDataset, load_dataset
from interestlens.evals.eval_results import git_commit
from interestlens.evals.leave_user_out import AgentEnvironment, default_cache_dir, fresh_user, user_loop
from interestlens.evals.metrics import ndcg_at_k, paired_permutation_test
from interestlens.evals.protocols import build_queries

log = logging.getLogger(__name__)

DEFAULT_FOLDS = 5  # K of the K-fold cross-validation over users


@dataclass
class LabelledPool:
    user_id: str
    key: str
    ids: list[str]
    features: np.ndarray
    labels: np.ndarray  # 1 where the item is a held-out positive of the query
    relevant: list[str]


def fold_of_users(users: Sequence[str], k: int, seed: int) -> dict[str, int]:
    """A deterministic fold per user (hash of seed and id: independent of order and of the other users)."""
    def h(u: str) -> int:
        return int.from_bytes(hashlib.sha256(f"{seed}\x1f{u}".encode()).digest()[:8], "big")

    ordered = sorted(users, key=h)
    return {u: n % k for n, u in enumerate(ordered)}


def collect_pools(
    env: AgentEnvironment,
    ds: EvalDataset,
    cases: Sequence[EvalCase],
    protocol: str,
    seed: int,
    progress: bool = True,
) -> list[LabelledPool]:
    """Observe each case as a fresh user and record its labelled candidate pool per query."""
    from tqdm import tqdm

    agent = env.agent(with_llm=False)
    out: list[LabelledPool] = []
    bar = tqdm(total=len(cases), desc=f"pools {ds.name}/{protocol}", disable=not progress, unit="case")
    try:
        for user, user_cases in user_loop(env, cases):
            for case in user_cases:
                with fresh_user(agent, ds, case) as (uid, _):
                    for q in build_queries(ds, case, protocol, seed):
                        pool = agent.candidate_pool(uid, context=case.context, candidate_ids=q.candidate_ids)
                        labels = np.isin(np.array(pool.ids, dtype=object), list(q.relevant)).astype(np.int8)
                        out.append(LabelledPool(user, q.key, pool.ids, pool.features, labels, list(q.relevant)))
                bar.update(1)
    finally:
        bar.close()
    return out


# The fusions a fit chooses between, simplest first (a tie goes to the simpler). Which one serves a dataset is
# decided by an inner cross-validation over the training users only: LambdaRank wins with hundreds of users
# (ReDial), a refit linear blend or one signal alone can win with a few dozen (MovieLens dev has 21), and a
# user's own catalog gets whichever its data supports.
LINEAR_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)  # weights coordinate ascent tries per signal
LINEAR_SWEEPS = 4  # passes over the signals; it stops earlier when a pass improves nothing
INNER_FOLDS = 3  # folds of the inner cross-validation that selects the fusion (over the training users)
FIT_CANDIDATES = ("linear (settings)", *(f"{s} alone" for s in SIGNALS), "linear (fit)", "lambdarank")
# Not candidates, measured: LambdaRank refit without one signal (its columns held at 0), six more candidates.
# Offline on the same pools, 5 folds over users: ReDial dev full 0.1048 -> 0.1083 (p 0.50), and 0.1025 when a
# drop-one model had to beat the base winner by one standard error; MovieLens dev full 0.1833 -> 0.1369. More
# candidates make the inner maximum more optimistic, and the drop-one gains were noise the outer folds did not keep.


def signal_columns(signal: str) -> list[int]:
    """The feature columns that carry one signal (text also owns the query-level best similarity)."""
    cols = [FEATURE_INDEX[f"{signal}_raw"], FEATURE_INDEX[f"{signal}_rank"]]
    if signal == "text":
        cols.append(FEATURE_INDEX["text_max_similarity"])
    return cols


def signal_fires(pools: Sequence[LabelledPool], signal: str) -> bool:
    cols = signal_columns(signal)
    return any(p.features[:, cols].any() for p in pools)


@dataclass
class PoolBatch:
    """Pools zero-padded into arrays, so one NDCG evaluation of a linear fusion is two numpy calls."""

    x: np.ndarray  # [pools, items, features]
    valid: np.ndarray  # [pools, items]: False on padding
    gains: np.ndarray  # [pools, items]: 1.0 where the item is a held-out positive
    idcg: np.ndarray  # [pools]: ideal DCG@k from the query's relevant count (positives outside the pool count)
    k: int

    @classmethod
    def of(cls, pools: Sequence[LabelledPool], k: int = 10) -> PoolBatch:
        n = max([len(p.ids) for p in pools] + [1])
        x = np.zeros((len(pools), n, len(FEATURES)))
        valid = np.zeros((len(pools), n), dtype=bool)
        gains = np.zeros((len(pools), n))
        disc = 1.0 / np.log2(np.arange(2, k + 2))
        idcg = np.array([disc[: min(k, len(set(p.relevant)))].sum() for p in pools])
        for i, p in enumerate(pools):
            m = len(p.ids)
            x[i, :m], valid[i, :m], gains[i, :m] = p.features, True, p.labels
        return cls(x, valid, gains, idcg, k)

    def ndcg(self, scores: np.ndarray) -> np.ndarray:
        """ndcg@k per pool of ranking by `scores` [pools, items]; ties keep pool order (as pool_ndcg)."""
        s = np.where(self.valid, scores, -np.inf)
        top = np.argsort(-s, axis=1, kind="stable")[:, : self.k]
        g = np.take_along_axis(self.gains, top, axis=1)
        dcg = (g / np.log2(np.arange(2, top.shape[1] + 2))).sum(axis=1)
        return np.divide(dcg, self.idcg, out=np.zeros_like(dcg), where=self.idcg > 0)

    def linear_ndcg(self, weights: Mapping[str, float]) -> np.ndarray:
        return self.ndcg(self.x @ LinearFusion(weights).score_vector)


def fit_linear(pools: Sequence[LabelledPool], start: Mapping[str, float], **meta: Any) -> LinearFusion:
    """Linear weights by coordinate ascent on mean ndcg@10 of these pools, from `start` (the settings' weights).

    Six weights from a small grid: a model few users can fit without memorising them (LambdaRank's trees can).
    """
    batch = PoolBatch.of(pools)
    w = {s: float(start.get(s, 0.0)) for s in SIGNALS}
    best = float(batch.linear_ndcg(w).mean())
    for _ in range(LINEAR_SWEEPS):
        improved = False
        for s in SIGNALS:
            for v in LINEAR_GRID:
                trial = {**w, s: v}
                if v == w[s] or not any(trial.values()):
                    continue
                val = float(batch.linear_ndcg(trial).mean())
                if val > best + 1e-9:
                    best, w, improved = val, trial, True
        if not improved:
            break
    users = sorted({p.user_id for p in pools})
    return LinearFusion(w, {"n_users": len(users), "train_users": users, "train_ndcg@10": round(best, 4), **meta})


def fit_candidate(name: str, pools: Sequence[LabelledPool], seed: int, weights: Mapping[str, float],
                  **meta: Any) -> Fusion:
    """One named candidate of FIT_CANDIDATES, fit (where it is fit) on `pools`."""
    users = sorted({p.user_id for p in pools})
    if name == "lambdarank":
        return fit_lambdarank([(p.features, p.labels) for p in pools], seed=seed,
                              meta={"n_users": len(users), "train_users": users, **meta})
    if name == "linear (fit)":
        return fit_linear(pools, weights, **meta)
    if name == "linear (settings)":
        return LinearFusion(weights, {"n_users": len(users), "train_users": users, **meta})
    signal = name.removesuffix(" alone")
    # Popularity breaks the ties of a sparse signal (most candidates have no EASE or mention score).
    alone = {signal: 1.0} if signal == "popularity" else {signal: 1.0, "popularity": 1e-3}
    return LinearFusion(alone, {"n_users": len(users), "train_users": users, **meta})


def pools_ndcg(pools: Sequence[LabelledPool], fusion: Fusion) -> np.ndarray:
    """ndcg@10 per pool of ranking it by `fusion` (one predict call over every pool)."""
    if not pools:
        return np.zeros(0)
    batch = PoolBatch.of(pools)
    flat = fusion.score(batch.x.reshape(-1, batch.x.shape[-1])).reshape(batch.valid.shape)
    return batch.ndcg(flat)


def fit_fusion(
    pools: Sequence[LabelledPool], seed: int, weights: Mapping[str, float], *,
    inner_folds: int = INNER_FOLDS, candidates: Sequence[str] = FIT_CANDIDATES, **meta: Any,
) -> Fusion:
    """The fusion for users outside `pools`: the candidate with the best inner cross-validated ndcg@10 over
    these pools' users, refit on all of them. Its meta records every candidate's inner figure."""
    users = sorted({p.user_id for p in pools})
    k = max(2, min(inner_folds, len(users)))
    folds = fold_of_users(users, k, seed + 1)  # another split than the outer folds'
    per_pool: dict[str, np.ndarray] = {}
    for name in candidates:
        fitted = name in ("linear (fit)", "lambdarank")
        if not fitted:  # nothing is fit: its figure on the training users is already out-of-sample
            per_pool[name] = pools_ndcg(pools, fit_candidate(name, pools, seed, weights))
            continue
        vals = np.zeros(len(pools))
        try:
            for f in range(k):
                held = [i for i, p in enumerate(pools) if folds[p.user_id] == f]
                train = [p for p in pools if folds[p.user_id] != f]
                vals[held] = pools_ndcg([pools[i] for i in held], fit_candidate(name, train, seed, weights))
        except InvalidInputError as e:  # too few queries for LambdaRank in a fold
            log.info("fusion candidate %s not fit in the inner folds: %s", name, e)
            continue
        per_pool[name] = vals
    inner = {n: round(float(v.mean()), 4) if len(v) else 0.0 for n, v in per_pool.items()}
    order = list(candidates)
    chosen = max(per_pool, key=lambda n: (round(float(per_pool[n].mean()), 6), -order.index(n)))
    return fit_candidate(chosen, pools, seed, weights, selected=chosen, inner_cv_ndcg10=inner, inner_folds=k,
                         **meta)


def cross_validated_fusions(
    pools: Sequence[LabelledPool], weights: Mapping[str, float], k: int = DEFAULT_FOLDS, seed: int = 0,
    candidates: Sequence[str] = FIT_CANDIDATES,
) -> tuple[dict[str, Fusion], dict[str, int]]:
    """Per user, a fusion selected and fit on the other folds' users only; and each user's fold."""
    users = sorted({p.user_id for p in pools})
    k = max(2, min(k, len(users)))
    folds = fold_of_users(users, k, seed)
    models = {
        f: fit_fusion([p for p in pools if folds[p.user_id] != f], seed, weights, fold=f, folds=k,
                      candidates=candidates)
        for f in range(k)
    }
    return {u: models[folds[u]] for u in users}, folds


def ablation_table(
    pools: Sequence[LabelledPool], models: Mapping[str, Fusion], weights: Mapping[str, float], k_folds: int,
    seed: int,
) -> dict[str, float]:
    """Offline ndcg@10 on the collected pools: each signal alone, the settings' linear blend, the
    cross-validated fusion, and the fusion selected and refit without each signal, cross-validated the same way."""
    table: dict[str, float] = {}
    for name in FIT_CANDIDATES[: 1 + len(SIGNALS)]:  # the candidates nothing is fit for
        table[name] = float(pools_ndcg(pools, fit_candidate(name, pools, seed, weights)).mean())
    table["fusion (cv)"] = _cv_ndcg(pools, models)
    for s in SIGNALS:
        if not signal_fires(pools, s):
            continue  # the signal never fired: dropping it changes nothing
        masked = [_masked(p, signal_columns(s)) for p in pools]
        try:
            cv, _ = cross_validated_fusions(masked, {**weights, s: 0.0}, k_folds, seed)
        except InvalidInputError:
            continue
        table[f"fusion without {s}"] = _cv_ndcg(masked, cv)
    return {n: round(v, 4) for n, v in table.items()}


def _cv_ndcg(pools: Sequence[LabelledPool], models: Mapping[str, Fusion]) -> float:
    """Mean ndcg@10 of each pool ranked by its user's model (one predict call per distinct model)."""
    vals = np.zeros(len(pools))
    for model in {id(m): m for m in models.values()}.values():
        idx = [i for i, p in enumerate(pools) if models[p.user_id] is model]
        vals[idx] = pools_ndcg([pools[i] for i in idx], model)
    return float(vals.mean()) if len(vals) else 0.0


# MMR's relevance weight (Settings.retrieve.mmr_lambda) the cross-validation chooses from; 1.0 is the fused order.
MMR_LAMBDA_GRID = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def pool_embeddings(env: AgentEnvironment, pools: Sequence[LabelledPool]) -> dict[str, np.ndarray]:
    """The catalog embeddings of every item in the pools (what MMR compares)."""
    return env.store.item_embeddings(sorted({i for p in pools for i in p.ids}))


def mmr_ndcg_by_lambda(
    pools: Sequence[LabelledPool], models: Mapping[str, Fusion], embeddings: Mapping[str, np.ndarray],
    grid: Sequence[float] = MMR_LAMBDA_GRID, k: int = 10,
) -> dict[float, np.ndarray]:
    """ndcg@k per pool after the final selection's MMR at each lambda: each pool fused by its user's model, its
    top `mmr_window(k)` with an embedding diversified by `mmr_select` (agent.selection, as `recommend` does; the
    dislike filter, facets and the series cap are left out: they need the profile and the titles)."""
    out = {lam: np.zeros(len(pools)) for lam in grid}
    for model in {id(m): m for m in models.values()}.values():
        idx = [i for i, p in enumerate(pools) if models[p.user_id] is model]
        if not idx:
            continue
        scores = np.split(model.score(np.concatenate([pools[i].features for i in idx])),
                          np.cumsum([len(pools[i].ids) for i in idx])[:-1])
        for i, fused in zip(idx, scores, strict=True):
            p = pools[i]
            by_id = dict(zip(p.ids, fused.tolist(), strict=True))
            ranked = sorted(p.ids, key=lambda item: (-by_id[item], item))  # recommend's order and tie rule
            window = [item for item in ranked if item in embeddings][: mmr_window(k)]
            if not window:
                continue
            rel = mmr_relevance(np.array([by_id[item] for item in window]))
            matrix = np.stack([embeddings[item] for item in window])
            for lam in grid:
                chosen = [window[o] for o in mmr_select(rel, matrix, k, lam)]
                out[lam][i] = ndcg_at_k(chosen, p.relevant, k)
    return out


def cross_validated_mmr_lambda(
    pools: Sequence[LabelledPool], models: Mapping[str, Fusion], fold_of: Mapping[str, int],
    embeddings: Mapping[str, np.ndarray], setting: float, grid: Sequence[float] = MMR_LAMBDA_GRID,
) -> dict[str, Any]:
    """MMR's lambda per fold, chosen on the other folds' users and scored on the fold's: the training users'
    pools are fused by the fold's own model (fit on them only), so nothing of the fold's users enters the choice.
    Against the setting's lambda with the paired test of the system rows. `folds_chose[f]` is what users of fold
    f are served with (`with_mmr_lambda`)."""
    grid = sorted({*grid, setting})
    cv = np.zeros(len(pools))
    at_setting = np.zeros(len(pools))
    chosen: dict[int, float] = {}
    for f in sorted(set(fold_of.values())):
        model = next(models[u] for u in models if fold_of[u] == f)
        fold_models = {u: model for u in models}
        train = [p for p in pools if fold_of[p.user_id] != f]
        test_idx = [i for i, p in enumerate(pools) if fold_of[p.user_id] == f]
        on_train = mmr_ndcg_by_lambda(train, fold_models, embeddings, grid)
        # Ties go to the lambda nearest the setting: a change has to earn its place.
        lam = max(grid, key=lambda g: (round(float(on_train[g].mean()), 6), -abs(g - setting)))
        chosen[f] = lam
        on_test = mmr_ndcg_by_lambda([pools[i] for i in test_idx], fold_models, embeddings, sorted({lam, setting}))
        cv[test_idx], at_setting[test_idx] = on_test[lam], on_test[setting]
    users = [p.user_id for p in pools]
    test = paired_permutation_test(cv.tolist(), at_setting.tolist(), users)
    return {
        "setting": setting, "grid": grid, "folds_chose": [chosen[f] for f in sorted(chosen)],
        "cv_ndcg@10": round(float(cv.mean()), 4), "setting_ndcg@10": round(float(at_setting.mean()), 4),
        "cv_minus_setting": {n: round(v, 4) if n != "n_users" else v for n, v in test.items()},
        "note": "offline, on the collected pools: fusion (cross-validated) then MMR over the fused top, without "
        "the dislike filter, facets or the series cap; the system rows are the full pipeline",
    }


def fit_mmr_lambda(pools: Sequence[LabelledPool], model: Fusion, embeddings: Mapping[str, np.ndarray],
                   setting: float, grid: Sequence[float] = MMR_LAMBDA_GRID) -> tuple[float, dict[str, float]]:
    """The lambda for users outside `pools` (what `tune` stores): the best over all of them with `model`, ties to
    the setting; and ndcg@10 by lambda (in-sample)."""
    grid = sorted({*grid, setting})
    by_lam = mmr_ndcg_by_lambda(pools, {p.user_id: model for p in pools}, embeddings, grid)
    lam = max(grid, key=lambda g: (round(float(by_lam[g].mean()), 6), -abs(g - setting)))
    return lam, {str(g): round(float(v.mean()), 4) for g, v in by_lam.items()}


def _public(info: dict[str, Any]) -> dict[str, Any]:
    """describe() without the long lists (train_users, params) results.json does not need per fold."""
    return {k: v for k, v in info.items() if k not in ("train_users", "params")}


def _masked(p: LabelledPool, cols: list[int]) -> LabelledPool:
    f = p.features.copy()
    f[:, cols] = 0.0
    return LabelledPool(p.user_id, p.key, p.ids, f, p.labels, p.relevant)


def tune(
    data_dir: str | Path,
    split: str = "dev",
    protocol: str = "full",
    *,
    settings: Settings | None = None,
    out_path: str | Path | None = None,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    limit: int | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fit the fusion on a dataset's cases (every user) and store it; report its cross-validated quality.

    Refuses a split named "test". `out_path` defaults to `<store>/fusion.json`, which InterestAgent then loads.
    """
    if split == "test":
        raise InvalidInputError("the fusion is fit on dev data only, never on a split named test")
    settings = settings or Settings()
    if out_path is None:
        if "://" in settings.store:
            raise InvalidInputError("a server store has no directory: pass --out PATH and set fusion_model")
        out_path = Path(settings.store).expanduser() / FUSION_FILE
    ds = load_dataset(data_dir, split, limit=limit, text_fields=settings.catalog.item_text_fields)
    if not ds.cases:
        raise InvalidInputError(f"{data_dir}: no cases in split {split!r} to fit on")
    embedder = make_embedder(settings.embedder, base_url=settings.openai.base_url, api_key=settings.openai.api_key)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    env = AgentEnvironment(ds, settings, cache, embedder, progress)
    try:
        pools = collect_pools(env, ds, ds.cases, protocol, seed, progress)
        embeddings = pool_embeddings(env, pools)
    finally:
        env.close()
    weights = settings.fusion.weights
    by_user, fold_of = cross_validated_fusions(pools, weights, folds, seed)
    table = ablation_table(pools, by_user, weights, folds, seed)
    set_lambda = settings.retrieve.mmr_lambda
    prior = MMR_LAMBDA_DEFAULT if set_lambda is None else set_lambda
    mmr = cross_validated_mmr_lambda(pools, by_user, fold_of, embeddings, prior)
    model = fit_fusion(pools, seed, weights, inner_folds=folds, dataset=str(data_dir), split=split,
                       protocol=protocol, commit=git_commit())
    if set_lambda is None:  # served by the agent that loads this file (agent.retrieve.served_mmr_lambda)
        model.meta["mmr_lambda"], mmr["fit_on_all_users_by_lambda"] = fit_mmr_lambda(
            pools, model, embeddings, MMR_LAMBDA_DEFAULT)
    model.save(out_path)
    report = {"out": str(out_path), "n_cases": len(ds.cases), "n_users": len({c.user_id for c in ds.cases}),
              "cross_validated_offline_ndcg@10": table, "mmr_lambda_cv": mmr, **model.describe()}
    return report


def fusion_per_user(
    env: AgentEnvironment, ds: EvalDataset, data_dir: str | Path, split: str, protocol: str, seed: int,
    mode: str, folds: int, progress: bool,
) -> tuple[dict[str, Fusion], dict[str, Any]]:
    """The fusion each user is scored with, and what results.json records about it."""
    users = sorted({c.user_id for c in ds.cases})
    if mode == "linear":
        return {}, {"mode": "linear", "weights": env.settings.fusion.weights}
    if mode != "cv":
        model = load_fusion(mode)
        return dict.fromkeys(users, model), {"mode": "file", "path": mode, **model.describe()}
    if split == "test":
        others = [p.name[len("cases."):-len(".jsonl")] for p in sorted(Path(data_dir).glob("cases.*.jsonl"))]
        others = [o for o in others if o != "test"]
        if not others:
            log.warning("split 'test' is never fit on and the folder has no other split: linear fusion")
            return {}, {"mode": "linear (no other split to fit on)", "weights": env.settings.fusion.weights}
        train_cases = [c for o in others for c in load_dataset(data_dir, o).cases]  # cases only: same catalog
        pools = collect_pools(env, ds, train_cases, protocol, seed, progress)
        try:
            model = fit_fusion(pools, seed, env.settings.fusion.weights, inner_folds=folds, fit_on=others)
        except InvalidInputError as e:
            log.warning("fusion not fit on %s (%s): linear fusion", others, e)
            return {}, {"mode": f"linear (not fit: {e})", "weights": env.settings.fusion.weights}
        info: dict[str, Any] = {"mode": f"fit on split(s) {', '.join(others)}"}
        if env.settings.retrieve.mmr_lambda is None:  # as `tune` stores it: fit on the other splits' users
            model.meta["mmr_lambda"], by_lambda = fit_mmr_lambda(pools, model, pool_embeddings(env, pools),
                                                                 MMR_LAMBDA_DEFAULT)
            info["mmr_lambda_fit"] = {"served": model.meta["mmr_lambda"], "fit_on": others,
                                      "ndcg@10_by_lambda_on_fit_users": by_lambda}
        return dict.fromkeys(users, model), {**info, **model.describe()}
    pools = collect_pools(env, ds, ds.cases, protocol, seed, progress)
    try:
        by_user, fold_of = cross_validated_fusions(pools, env.settings.fusion.weights, folds, seed)
    except InvalidInputError as e:  # a handful of cases (a --limit run) cannot train a ranker
        log.warning("cross-validated fusion not fit (%s): linear fusion", e)
        return {}, {"mode": f"linear (cross-validation not possible: {e})", "weights": env.settings.fusion.weights}
    set_lambda = env.settings.retrieve.mmr_lambda
    mmr = cross_validated_mmr_lambda(pools, by_user, fold_of, pool_embeddings(env, pools),
                                     MMR_LAMBDA_DEFAULT if set_lambda is None else set_lambda)
    if set_lambda is None:  # a lambda the user set is served as set
        for u, model in by_user.items():  # one model object per fold
            model.meta["mmr_lambda"] = mmr["folds_chose"][fold_of[u]]
        mmr["served"] = "each fold's users with the lambda chosen on the other folds"
    else:
        mmr["served"] = f"the setting ({set_lambda}), set explicitly"
    info = {
        "mode": f"{len(set(fold_of.values()))}-fold cross-validation over users (fit on the other folds)",
        "mmr_lambda_cv": mmr,
        "fold_of_user": fold_of,
        "ablation_offline_ndcg@10": ablation_table(pools, by_user, env.settings.fusion.weights, folds, seed),
        "ablation_note": "fusion only, on the collected pools (no dislike filter, no MMR); the system rows "
        "are the full pipeline",
        "per_fold": {f: _public(by_user[next(u for u in users if fold_of[u] == f)].describe())
                     for f in sorted(set(fold_of.values()))},
    }
    return by_user, info
