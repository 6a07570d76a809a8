"""Recommendation evaluation: baselines and interestlens side by side on a shared-format dataset.

Protocols
- `full`: each case ranks the whole catalog (history excluded); metrics on the top 50.
- `sampled`: each (case, positive) pair ranks that positive plus 19 items drawn uniformly (seeded) from
  outside the case's consumed items and positives.
Every case is a fresh agent user (id derived from case_id), forgotten afterwards; its `texts` are observed,
`context` is the request, `history` is consumed (never recommended), `positives` are the ground truth.
Intervals are bootstrapped over users; interestlens systems are tested against the best baseline by ndcg@10.
"""

from __future__ import annotations

import logging
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, PrivateAttr

from interestlens.agent.config import Settings
from interestlens.agent.errors import InterestLensError, InvalidInputError
from interestlens.agent.fusion import load_fusion
from interestlens.agent.models import StageStats
from interestlens.evals import metrics as M
from interestlens.evals.baselines import (
    BASELINE_NAMES,
    CatalogEmbeddings,
    Query,
    ScoringBaseline,
    SystemOutput,
    build_baselines,
    item_text,
    popularity_probabilities,
)
from interestlens.evals.data import (
    SAMPLED_NEGATIVES,
    EvalCase,
    EvalDataset,
    case_rng,
    eval_user_id,
    load_dataset,
    sampled_candidates,
)
from interestlens.evals.fitting import (
    DEFAULT_FOLDS,
    ablation_table,
    collect_pools,
    cross_validated_fusions,
    fit_fusion,
    user_loop,
)

log = logging.getLogger(__name__)

PROTOCOLS = ("full", "sampled")
AGENT_SYSTEMS = ("interestlens-nollm", "interestlens", "interestlens-rerank")
ALL_SYSTEMS = (*BASELINE_NAMES, *AGENT_SYSTEMS)
DEFAULT_SYSTEMS = (*BASELINE_NAMES, "interestlens-nollm")
FULL_K = 50  # the full protocol keeps the top 50: enough for every metric reported
CI_METRICS = ("ndcg@10", "recall@10", "hit@10", "mrr")


class EvalResults(BaseModel):
    """What results.json holds. `systems[name]` maps metric -> value (CIs as `<metric>_ci`: [lo, hi])."""

    dataset: str
    split: str
    protocol: str
    n_cases: int
    n_users: int
    llm: str
    systems: dict[str, dict[str, Any]]
    significance: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    _per_query: dict[str, list[dict[str, float]]] = PrivateAttr(default_factory=dict)

    def per_query(self, system: str) -> list[dict[str, float]]:
        return self._per_query.get(system, [])


def default_cache_dir() -> Path:
    import os

    return Path(
        os.environ.get("INTERESTLENS_EVAL_CACHE") or Path.home() / ".cache" / "interestlens" / "evals"
    )


def build_queries(ds: EvalDataset, case: EvalCase, protocol: str, seed: int) -> list[Query]:
    if protocol == "full":
        return [Query(case=case, relevant=list(case.positives), candidate_ids=None, key=case.case_id)]
    if protocol == "sampled":
        ids = ds.item_ids
        consumed = ds.consumed(case)
        return [
            Query(
                case=case,
                relevant=[p],
                candidate_ids=sampled_candidates(
                    case, p, ids, case_rng(seed, "sampled", case.case_id, p), consumed=consumed
                ),
                key=f"{case.case_id}|{p}",
            )
            for p in dict.fromkeys(case.positives)
        ]
    raise InvalidInputError(f"unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")


# ---------------------------------------------------------------------------------------------- systems


@dataclass
class CaseRun:
    outputs: list[SystemOutput]
    stats: StageStats = field(default_factory=StageStats)
    latency_ms: float = 0.0
    errors: int = 0


class BaselineSystem:
    is_agent = False

    def __init__(self, name: str, ranker: ScoringBaseline) -> None:
        self.name = name
        self.ranker = ranker

    def run_case(self, case: EvalCase, queries: Sequence[Query], k: int) -> CaseRun:
        outs = [self.ranker.rank(q, k) for q in queries]
        return CaseRun(outputs=outs, latency_ms=sum(o.latency_ms for o in outs))


class AgentSystem:
    """An InterestAgent configuration: observe the case as a fresh user, recommend per query, forget."""

    is_agent = True

    def __init__(self, name: str, agent: Any, rerank: bool, consumed: Any = None) -> None:
        self.name = name
        self.agent = agent
        self.rerank = rerank
        self.consumed = consumed  # EvalDataset.consumed

    def seen(self, case: EvalCase) -> list[str]:
        """The user's other consumed items (their interactions.jsonl rows): a deployment knows them too."""
        return sorted(self.consumed(case) - set(case.history)) if self.consumed is not None else []

    def run_case(self, case: EvalCase, queries: Sequence[Query], k: int) -> CaseRun:
        uid = eval_user_id(case)
        run = CaseRun(outputs=[])
        t0 = time.perf_counter()
        try:
            self.agent.forget(uid, purge=False)  # a crashed earlier run may have left this user behind
            if case.texts or case.history:
                obs = self.agent.observe(uid, list(case.texts), history=list(case.history), seen=self.seen(case))
                run.stats.add(obs.stats)
            for q in queries:
                tq = time.perf_counter()
                try:
                    res = self.agent.recommend(
                        uid, context=case.context, k=k, rerank=self.rerank, candidate_ids=q.candidate_ids
                    )
                except InterestLensError as e:
                    log.warning("%s: recommend failed on %s: %s", self.name, q.key, e)
                    run.errors += 1
                    run.outputs.append(SystemOutput(ranked=[]))
                    continue
                run.stats.add(res.stats)
                run.outputs.append(
                    SystemOutput(
                        ranked=[r.item.id for r in res.recommendations],
                        stats=res.stats,
                        latency_ms=(time.perf_counter() - tq) * 1000.0,
                    )
                )
        except InterestLensError as e:
            log.warning("%s: case %s failed: %s", self.name, case.case_id, e)
            run.errors += 1
            run.outputs.extend(SystemOutput(ranked=[]) for _ in range(len(queries) - len(run.outputs)))
        finally:
            self.agent.forget(uid, purge=False)
        run.latency_ms = (time.perf_counter() - t0) * 1000.0
        return run


class AgentEnvironment:
    """One ChromaStore per dataset (catalog + behaviour ingested once, cached by hash) for the agents."""

    def __init__(
        self, ds: EvalDataset, settings: Settings, cache_dir: Path, embedder: Any, progress: bool
    ) -> None:
        from interestlens.stores.chroma_store import ChromaStore

        self.ds = ds
        store_dir = cache_dir / f"store-{ds.name}-{ds.catalog_hash}-{ds.behaviour_hash()}"
        self.settings = settings.model_copy(update={"store": str(store_dir)})
        self.embedder = embedder
        self.store = ChromaStore(str(store_dir), embedder)
        ready = store_dir / ".eval-items-ready"
        if not ready.exists() or self.store.count_items() != len(ds.catalog):
            self.store.upsert_items(ds.catalog, progress=progress)
            ready.write_text(str(len(ds.catalog)))
        # Idempotent (rows keyed by user, item, ts): also restores rows a killed run left removed.
        self.store.add_interactions(ds.behaviour)
        self._llm: Any = None

    def llm(self) -> Any:
        if self._llm is None:
            from interestlens.agent.llm import make_llm

            self._llm = make_llm(self.settings.llm, self.settings)
        return self._llm

    def agent(self, *, with_llm: bool) -> Any:
        from interestlens.agent.service import InterestAgent

        return InterestAgent(
            self.settings, llm=self.llm() if with_llm else None, embedder=self.embedder, store=self.store
        )

    def hold_out_user(self, case: EvalCase) -> list[Any]:
        """Leave-user-out: remove this user's split-derived behaviour while their cases run."""
        own = self.ds.own_behaviour(case)
        if own:
            self.store.behaviour.delete_users(sorted({x.user_id for x in own}))
        return own

    def restore_user(self, rows: list[Any]) -> None:
        if rows:
            self.store.add_interactions(rows)

    def close(self) -> None:
        self.store.close()


# ---------------------------------------------------------------------------------------------- running


def _parse_systems(systems: Sequence[str] | str | None) -> list[str]:
    if systems is None:
        return list(DEFAULT_SYSTEMS)
    if isinstance(systems, str):
        systems = [s.strip() for s in systems.split(",") if s.strip()]
    names: list[str] = []
    for s in systems:
        if s == "all":
            names.extend(ALL_SYSTEMS)
        elif s == "baselines":
            names.extend(BASELINE_NAMES)
        elif s in ALL_SYSTEMS:
            names.append(s)
        else:
            raise InvalidInputError(
                f"unknown system {s!r}: choose from {', '.join(ALL_SYSTEMS)}, all, baselines"
            )
    return list(dict.fromkeys(names))


def _id_checks(out: SystemOutput, q: Query, ds: EvalDataset) -> dict[str, int]:
    allowed = set(q.candidate_ids) if q.candidate_ids is not None else None
    return {
        "hallucinated_ids": sum(
            1 for i in out.ranked if not ds.has_item(i) or (allowed is not None and i not in allowed)
        ),
        "duplicate_ids": len(out.ranked) - len(set(out.ranked)),
        "history_ids": sum(1 for i in out.ranked if i in set(q.case.history)),
    }


def run_recommend_eval(
    data_dir: str | Path,
    split: str = "dev",
    protocol: str = "full",
    limit: int | None = None,
    seed: int = 0,
    systems: Sequence[str] | str | None = None,
    out_dir: str | Path | None = None,
    settings: Settings | None = None,
    progress: bool = True,
    *,
    cache_dir: str | Path | None = None,
    command: str | None = None,
    n_boot: int = 1000,
    fusion: str = "cv",
    folds: int = DEFAULT_FOLDS,
) -> EvalResults:
    """Evaluate `systems` on DIR/cases.<split>.jsonl; writes results.json, report.md, metrics.png.

    `fusion` (interestlens systems): "cv" fits a LambdaRank fusion by K-fold cross-validation over the split's
    users (a user is scored by a model fit on other folds only); on a split named "test" nothing is fit on it:
    the model is fit on the folder's other splits instead. "linear": the settings' weights. A path: that model.
    """
    from tqdm import tqdm

    from interestlens.agent.embeddings import make_embedder

    if protocol not in PROTOCOLS:
        raise InvalidInputError(f"unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
    settings = settings or Settings()
    names = _parse_systems(systems)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    t_start = time.perf_counter()
    ds = load_dataset(data_dir, split, limit=limit, text_fields=settings.item_text_fields)
    if not ds.cases:
        raise InvalidInputError(f"{Path(data_dir) / f'cases.{split}.jsonl'}: no cases to evaluate")
    embedder = make_embedder(
        settings.embedder, base_url=settings.openai_base_url, api_key=settings.openai_api_key
    )
    emb = CatalogEmbeddings(ds, embedder, cache)
    runners: dict[str, Any] = {
        n: BaselineSystem(n, r)
        for n, r in build_baselines(
            [n for n in names if n in BASELINE_NAMES], ds, emb, embedder, seed
        ).items()
    }
    env: AgentEnvironment | None = None
    agent_names = [n for n in names if n in AGENT_SYSTEMS]
    if agent_names:
        if hasattr(embedder, "prime"):  # the store ingest then reuses the baselines' catalog vectors
            embedder.prime([item_text(ds, i) for i in emb.ids], emb.matrix)
        env = AgentEnvironment(ds, settings, cache, embedder, progress)
        for n in agent_names:
            runners[n] = AgentSystem(
                n, env.agent(with_llm=n != "interestlens-nollm"), rerank=n == "interestlens-rerank",
                consumed=ds.consumed,
            )
    k = FULL_K if protocol == "full" else 20

    per_query: dict[str, list[dict[str, float]]] = {n: [] for n in runners}
    rankings: dict[str, list[list[str]]] = {n: [] for n in runners}
    groups: list[str] = []
    case_latency: dict[str, list[float]] = {n: [] for n in runners}
    totals: dict[str, dict[str, float]] = {n: {} for n in runners}

    fusion_by_user: dict[str, Any] = {}
    fusion_info: dict[str, Any] = {"mode": fusion}
    if env is not None:
        fusion_by_user, fusion_info = _fusions(env, ds, data_dir, split, protocol, seed, fusion, folds, progress)

    bar = tqdm(total=len(ds.cases), desc=f"{ds.name}/{split}/{protocol}", disable=not progress, unit="case")
    try:
        for user, user_cases in user_loop(env, ds.cases):
            for runner in runners.values():
                if runner.is_agent:
                    runner.agent.set_fusion(fusion_by_user.get(user))
            for case in user_cases:
                queries = build_queries(ds, case, protocol, seed)
                consumed = ds.consumed(case)
                for name, runner in runners.items():
                    run = runner.run_case(case, queries, k)
                    case_latency[name].append(run.latency_ms)
                    t = totals[name]
                    for key, val in (
                        ("invalid_outputs", run.stats.invalid_outputs),
                        ("fallbacks", run.stats.fallbacks),
                        ("llm_calls", run.stats.llm_calls),
                        ("tokens", run.stats.prompt_tokens + run.stats.completion_tokens),
                        ("dropped_ungrounded", run.stats.dropped_ungrounded),
                        ("errors", run.errors),
                    ):
                        t[key] = t.get(key, 0) + val
                    for q, out in zip(queries, run.outputs, strict=True):
                        for key, val in _id_checks(out, q, ds).items():
                            t[key] = t.get(key, 0) + val
                        # Consumed items are counted as errors (seen_ids) and then removed, the same for every
                        # system: a user's already-rated items can never be positives.
                        t["seen_ids"] = t.get("seen_ids", 0) + sum(1 for i in out.ranked if i in consumed)
                        out.ranked = [i for i in out.ranked if i not in consumed]
                        per_query[name].append(M.query_scores(out.ranked, q.relevant))
                        rankings[name].append(out.ranked)
                groups.extend(case.user_id for _ in queries)
                bar.update(1)
    finally:
        bar.close()
        if env is not None:
            env.close()

    popularity = popularity_probabilities(ds)
    emb_view = emb.as_mapping()
    summary: dict[str, dict[str, Any]] = {}
    for name in runners:
        rows = per_query[name]
        s: dict[str, Any] = {}
        for metric in M.QUERY_METRICS:
            vals = [r[metric] for r in rows]
            s[metric] = float(np.mean(vals)) if vals else 0.0
            if metric in CI_METRICS:
                s[f"{metric}_ci"] = list(M.bootstrap_ci(vals, groups, n_boot=n_boot, seed=seed))
        lists = rankings[name]
        s["coverage@10"] = M.catalog_coverage(lists, len(ds.catalog), 10)
        s["diversity@10"] = (
            float(np.mean([M.intra_list_diversity(r, emb_view, 10) for r in lists])) if lists else 0.0
        )
        s["novelty@10"] = float(np.mean([M.novelty(r, popularity, 10) for r in lists])) if lists else 0.0
        s["latency_ms_p50"] = M.percentile(case_latency[name], 50)
        s["latency_ms_p95"] = M.percentile(case_latency[name], 95)
        for key in (
            "invalid_outputs",
            "fallbacks",
            "llm_calls",
            "tokens",
            "dropped_ungrounded",
            "errors",
            "hallucinated_ids",
            "duplicate_ids",
            "history_ids",
            "seen_ids",
        ):
            s[key] = int(totals[name].get(key, 0))
        s["n_queries"] = len(rows)
        summary[name] = s

    significance = _significance(summary, per_query, groups, seed)
    llm_spec = settings.llm if any(n in ("interestlens", "interestlens-rerank") for n in runners) else "none"
    results = EvalResults(
        dataset=ds.name,
        split=split,
        protocol=protocol,
        n_cases=len(ds.cases),
        n_users=len({c.user_id for c in ds.cases}),
        llm=llm_spec,
        systems=summary,
        significance=significance,
        config={
            "data_dir": str(data_dir),
            "limit": limit,
            "seed": seed,
            "systems": list(runners),
            "requested_systems": names,
            "k": k,
            "n_queries": len(groups),
            "embedder": embedder.model_id,
            "commit": git_commit(),
            "settings": settings.model_dump(mode="json"),
            "fusion": fusion_info,
            "protocol": PROTOCOL_TEXT[protocol],
            "behaviour": ds.behaviour_description,
            "seen_filter": "consumed items (case history + the user's interactions.jsonl rows) are counted as "
            "seen_ids, then removed from every system's ranking",
            "estimand": "mean over queries; intervals and the paired test resample / flip whole users",
            "wall_s": round(time.perf_counter() - t_start, 2),
            "command": command or " ".join(shlex.quote(a) for a in sys.argv),
        },
    )
    results._per_query = per_query
    if out_dir is not None:
        from interestlens.evals.report import write_outputs

        write_outputs(results, Path(out_dir))
    return results


def _significance(
    summary: dict[str, dict[str, Any]],
    per_query: dict[str, list[dict[str, float]]],
    groups: list[str],
    seed: int,
) -> dict[str, Any]:
    metric = "ndcg@10"
    baselines = [n for n in summary if n in BASELINE_NAMES]
    agents = [n for n in summary if n in AGENT_SYSTEMS]
    if not baselines or not agents:
        return {}
    best = max(baselines, key=lambda n: summary[n][metric])
    base_vals = [r[metric] for r in per_query[best]]
    comparisons = {}
    for a in agents:
        test = M.paired_permutation_test([r[metric] for r in per_query[a]], base_vals, groups, seed=seed)
        test["significant_at_0.05"] = test["p_value"] < 0.05
        comparisons[a] = test
    return {
        "metric": metric,
        "baseline": best,
        "test": "paired sign-flip permutation over users",
        "comparisons": comparisons,
    }


PROTOCOL_TEXT = {
    "full": f"rank the whole catalog (consumed items excluded), metrics on the top {FULL_K}",
    "sampled": f"each (case, positive) ranks the positive plus {SAMPLED_NEGATIVES} seeded uniform negatives",
}


def git_commit() -> str:
    """The commit of the code that runs (with '+dirty' when the tree differs from it); 'unknown' outside git."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _fusions(
    env: AgentEnvironment, ds: EvalDataset, data_dir: str | Path, split: str, protocol: str, seed: int,
    mode: str, folds: int, progress: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fusion each user is scored with, and what results.json records about it."""
    users = sorted({c.user_id for c in ds.cases})
    if mode == "linear":
        return {}, {"mode": "linear", "weights": env.settings.fusion_weights}
    if mode != "cv":
        model = load_fusion(mode)
        return dict.fromkeys(users, model), {"mode": "file", "path": mode, **model.describe()}
    if split == "test":
        others = [p.name[len("cases."):-len(".jsonl")] for p in sorted(Path(data_dir).glob("cases.*.jsonl"))]
        others = [o for o in others if o != "test"]
        if not others:
            log.warning("split 'test' is never fit on and the folder has no other split: linear fusion")
            return {}, {"mode": "linear (no other split to fit on)", "weights": env.settings.fusion_weights}
        train_cases = [c for o in others for c in load_dataset(data_dir, o).cases]  # cases only: same catalog
        pools = collect_pools(env, ds, train_cases, build_queries, protocol, seed, progress)
        try:
            model = fit_fusion(pools, seed, fit_on=others)
        except InvalidInputError as e:
            log.warning("fusion not fit on %s (%s): linear fusion", others, e)
            return {}, {"mode": f"linear (not fit: {e})", "weights": env.settings.fusion_weights}
        return dict.fromkeys(users, model), {"mode": f"fit on split(s) {', '.join(others)}", **model.describe()}
    pools = collect_pools(env, ds, ds.cases, build_queries, protocol, seed, progress)
    try:
        by_user, fold_of = cross_validated_fusions(pools, folds, seed)
    except InvalidInputError as e:  # a handful of cases (a --limit run) cannot train a ranker
        log.warning("cross-validated fusion not fit (%s): linear fusion", e)
        return {}, {"mode": f"linear (cross-validation not possible: {e})", "weights": env.settings.fusion_weights}
    info = {
        "mode": f"{len(set(fold_of.values()))}-fold cross-validation over users (fit on the other folds)",
        "fold_of_user": fold_of,
        "ablation_offline_ndcg@10": ablation_table(pools, by_user, folds, seed),
        "ablation_note": "fusion only, on the collected pools (no dislike filter, no MMR); the system rows "
        "are the full pipeline",
        **next(iter(by_user.values())).describe(),
    }
    return by_user, info
