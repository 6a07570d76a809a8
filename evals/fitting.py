"""Fitting the fusion on real cases without ever scoring a user with a model that saw them.

- `user_loop`: the one leave-user-out loop (evaluation and fitting share it): a user's own behaviour rows are
  removed from the store while that user's cases run, and restored afterwards.
- `collect_pools`: each case observed as a fresh user, its candidate pool built exactly as `recommend` builds it
  (InterestAgent.candidate_pool), labelled with the case's held-out positives.
- `cross_validated_fusions`: K folds over users; the model for a user is fit on the other folds only.
- `fit_fusion`: one model on every user of a split (what `interestlens tune` stores for a deployment).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from interestlens.agent.config import Settings
from interestlens.agent.errors import InvalidInputError
from interestlens.agent.fusion import FEATURE_INDEX, FUSION_FILE, SIGNALS, LambdaRankFusion, fit_lambdarank
from interestlens.evals import metrics as M
from interestlens.evals.data import EvalCase, EvalDataset, eval_user_id, load_dataset

if TYPE_CHECKING:
    from interestlens.evals.harness import AgentEnvironment

DEFAULT_FOLDS = 5  # K of the K-fold cross-validation over users


@dataclass
class LabelledPool:
    user_id: str
    key: str
    ids: list[str]
    features: np.ndarray
    labels: np.ndarray  # 1 where the item is a held-out positive of the query
    relevant: list[str]


def group_by_user(cases: Sequence[EvalCase]) -> dict[str, list[EvalCase]]:
    by_user: dict[str, list[EvalCase]] = {}
    for c in cases:
        by_user.setdefault(c.user_id, []).append(c)
    return by_user


@contextmanager
def held_out(env: AgentEnvironment | None, case: EvalCase) -> Iterator[None]:
    """Leave-user-out: this user's own behaviour is absent from the store inside the block."""
    rows = env.hold_out_user(case) if env is not None else []
    try:
        yield
    finally:
        if env is not None:
            env.restore_user(rows)


def user_loop(
    env: AgentEnvironment | None, cases: Sequence[EvalCase]
) -> Iterator[tuple[str, list[EvalCase]]]:
    """(user id, that user's cases in file order), with the user's behaviour held out during each step."""
    for user, user_cases in group_by_user(cases).items():
        with held_out(env, user_cases[0]):
            yield user, user_cases


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
    build_queries: Any,
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
                uid = eval_user_id(case)
                agent.forget(uid, purge=False)
                try:
                    if case.texts or case.history:
                        seen = sorted(ds.consumed(case) - set(case.history))
                        agent.observe(uid, list(case.texts), history=list(case.history), seen=seen)
                    for q in build_queries(ds, case, protocol, seed):
                        pool = agent.candidate_pool(uid, context=case.context, candidate_ids=q.candidate_ids)
                        labels = np.isin(np.array(pool.ids, dtype=object), list(q.relevant)).astype(np.int8)
                        out.append(LabelledPool(user, q.key, pool.ids, pool.features, labels, list(q.relevant)))
                finally:
                    agent.forget(uid, purge=False)
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
    from interestlens.agent.embeddings import make_embedder
    from interestlens.evals.harness import AgentEnvironment, build_queries, default_cache_dir, git_commit

    if split == "test":
        raise InvalidInputError("the fusion is fit on dev data only, never on a split named test")
    settings = settings or Settings()
    if out_path is None:
        if "://" in settings.store:
            raise InvalidInputError("a server store has no directory: pass --out PATH and set fusion_model")
        out_path = Path(settings.store).expanduser() / FUSION_FILE
    ds = load_dataset(data_dir, split, limit=limit, text_fields=settings.item_text_fields)
    if not ds.cases:
        raise InvalidInputError(f"{data_dir}: no cases in split {split!r} to fit on")
    embedder = make_embedder(settings.embedder, base_url=settings.openai_base_url, api_key=settings.openai_api_key)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    env = AgentEnvironment(ds, settings, cache, embedder, progress)
    try:
        pools = collect_pools(env, ds, ds.cases, build_queries, protocol, seed, progress)
    finally:
        env.close()
    by_user, _ = cross_validated_fusions(pools, folds, seed)
    table = ablation_table(pools, by_user, folds, seed)
    model = fit_fusion(pools, seed, dataset=str(data_dir), split=split, protocol=protocol, commit=git_commit())
    model.save(out_path)
    report = {"out": str(out_path), "n_cases": len(ds.cases), "n_users": len({c.user_id for c in ds.cases}),
              "cross_validated_offline_ndcg@10": table, **model.describe()}
    return report
