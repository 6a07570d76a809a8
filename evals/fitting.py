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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interestlens.agent.config import Settings
from interestlens.agent.embeddings import make_embedder
from interestlens.agent.errors import InvalidInputError
from interestlens.agent.fusion import (
    FEATURE_INDEX,
    FUSION_FILE,
    SIGNALS,
    Fusion,
    LambdaRankFusion,
    fit_lambdarank,
    load_fusion,
)
from interestlens.evals import metrics as M
from interestlens.evals.data import EvalCase, EvalDataset, load_dataset
from interestlens.evals.eval_results import git_commit
from interestlens.evals.leave_user_out import AgentEnvironment, default_cache_dir, fresh_user, user_loop
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


def fit_fusion(pools: Sequence[LabelledPool], seed: int, **meta: Any) -> LambdaRankFusion:
    """One ranker on these pools; its meta names the users it saw (so a test can prove who it did not)."""
    users = sorted({p.user_id for p in pools})
    return fit_lambdarank([(p.features, p.labels) for p in pools], seed=seed,
                          meta={"n_users": len(users), "train_users": users, **meta})


def cross_validated_fusions(
    pools: Sequence[LabelledPool], k: int = DEFAULT_FOLDS, seed: int = 0
) -> tuple[dict[str, LambdaRankFusion], dict[str, int]]:
    """Per user, a fusion fit on the other folds' users only; and each user's fold."""
    users = sorted({p.user_id for p in pools})
    k = max(2, min(k, len(users)))
    folds = fold_of_users(users, k, seed)
    models = {
        f: fit_fusion([p for p in pools if folds[p.user_id] != f], seed, fold=f, folds=k) for f in range(k)
    }
    return {u: models[folds[u]] for u in users}, folds


def pool_ndcg(pools: Sequence[LabelledPool], score: Any, k: int = 10) -> float:
    """Mean ndcg@k of ranking each pool by `score(pool) -> array` (fusion only: no filter, no MMR)."""
    vals = []
    for p in pools:
        s = score(p)
        order = np.argsort(-s, kind="stable")
        vals.append(M.ndcg_at_k([p.ids[i] for i in order[:k]], p.relevant, k))
    return float(np.mean(vals)) if vals else 0.0


def ablation_table(
    pools: Sequence[LabelledPool], models: dict[str, LambdaRankFusion], k_folds: int, seed: int
) -> dict[str, float]:
    """Offline ndcg@10 on the collected pools: each signal alone (its raw value), the cross-validated fusion,
    and the fusion refit without each signal (cross-validated the same way)."""
    table: dict[str, float] = {}
    for s in SIGNALS:
        col = FEATURE_INDEX[f"{s}_raw"]
        pop = FEATURE_INDEX["popularity_raw"]
        table[f"{s} alone"] = pool_ndcg(pools, lambda p, c=col, q=pop: p.features[:, c] + 1e-6 * p.features[:, q])
    table["fusion (cv)"] = pool_ndcg(pools, lambda p: models[p.user_id].score(p.features))
    for s in SIGNALS:
        cols = [FEATURE_INDEX[f"{s}_raw"], FEATURE_INDEX[f"{s}_rank"]]
        if s == "text":
            cols.append(FEATURE_INDEX["text_max_similarity"])
        masked = [_masked(p, cols) for p in pools]
        if not any(p.features[:, cols].any() for p in pools):
            continue  # the signal never fired: dropping it changes nothing
        try:
            cv, _ = cross_validated_fusions(masked, k_folds, seed)
        except Exception:
            continue
        table[f"fusion without {s}"] = pool_ndcg(masked, lambda p, m=cv: m[p.user_id].score(p.features))
    return table


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
    finally:
        env.close()
    by_user, _ = cross_validated_fusions(pools, folds, seed)
    table = ablation_table(pools, by_user, folds, seed)
    model = fit_fusion(pools, seed, dataset=str(data_dir), split=split, protocol=protocol, commit=git_commit())
    model.save(out_path)
    report = {"out": str(out_path), "n_cases": len(ds.cases), "n_users": len({c.user_id for c in ds.cases}),
              "cross_validated_offline_ndcg@10": table, **model.describe()}
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
            model = fit_fusion(pools, seed, fit_on=others)
        except InvalidInputError as e:
            log.warning("fusion not fit on %s (%s): linear fusion", others, e)
            return {}, {"mode": f"linear (not fit: {e})", "weights": env.settings.fusion.weights}
        return dict.fromkeys(users, model), {"mode": f"fit on split(s) {', '.join(others)}", **model.describe()}
    pools = collect_pools(env, ds, ds.cases, protocol, seed, progress)
    try:
        by_user, fold_of = cross_validated_fusions(pools, folds, seed)
    except InvalidInputError as e:  # a handful of cases (a --limit run) cannot train a ranker
        log.warning("cross-validated fusion not fit (%s): linear fusion", e)
        return {}, {"mode": f"linear (cross-validation not possible: {e})", "weights": env.settings.fusion.weights}
    info = {
        "mode": f"{len(set(fold_of.values()))}-fold cross-validation over users (fit on the other folds)",
        "fold_of_user": fold_of,
        "ablation_offline_ndcg@10": ablation_table(pools, by_user, folds, seed),
        "ablation_note": "fusion only, on the collected pools (no dislike filter, no MMR); the system rows "
        "are the full pipeline",
        **next(iter(by_user.values())).describe(),
    }
    return by_user, info
