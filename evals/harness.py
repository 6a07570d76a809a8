"""Recommendation evaluation: baselines and interestlens side by side on a shared-format dataset.

Protocols (evals/protocols.py)
- `full`: each case ranks the whole catalog (history excluded); metrics on the top 50.
- `sampled`: each (case, positive) pair ranks that positive plus 19 items drawn uniformly (seeded) from
  outside the case's consumed items and positives.
Every case is a fresh agent user (id derived from case_id), forgotten afterwards; its `texts` are observed,
`context` is the request, `history` is consumed (never recommended), `positives` are the ground truth.
Users are run leave-user-out (evals/leave_user_out.py). Intervals are bootstrapped over users; interestlens
systems are tested against the best baseline by ndcg@10 (evals/eval_results.py).
"""

from __future__ import annotations

import logging
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interestlens.agent.config import Settings
from interestlens.agent.embeddings import make_embedder
from interestlens.agent.errors import InvalidInputError
from interestlens.evals.baselines import (
    BASELINE_NAMES,
    CatalogEmbeddings,
    build_baselines,
    item_text,
    popularity_probabilities,
)
from interestlens.evals.data import load_dataset
from interestlens.evals.eval_results import EvalResults, SystemTally, git_commit, significance
from interestlens.evals.fitting import DEFAULT_FOLDS, fusion_per_user
from interestlens.evals.leave_user_out import AgentEnvironment, default_cache_dir, user_loop
from interestlens.evals.protocols import FULL_K, PROTOCOL_TEXT, PROTOCOLS, build_queries
from interestlens.evals.report import write_outputs
from interestlens.evals.systems import AGENT_SYSTEMS, AgentSystem, BaselineSystem, parse_systems

log = logging.getLogger(__name__)


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

    if protocol not in PROTOCOLS:
        raise InvalidInputError(f"unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
    settings = settings or Settings()
    names = parse_systems(systems)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    t_start = time.perf_counter()
    ds = load_dataset(data_dir, split, limit=limit, text_fields=settings.catalog.item_text_fields)
    if not ds.cases:
        raise InvalidInputError(f"{Path(data_dir) / f'cases.{split}.jsonl'}: no cases to evaluate")
    embedder = make_embedder(
        settings.embedder, base_url=settings.openai.base_url, api_key=settings.openai.api_key
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
                n, env.agent(with_llm=n != "interestlens-nollm"), rerank=n == "interestlens-rerank", ds=ds
            )
    k = FULL_K if protocol == "full" else 20

    tallies = {n: SystemTally() for n in runners}
    groups: list[str] = []  # the user of each query, in query order: what intervals and tests resample

    fusion_by_user: dict[str, Any] = {}
    fusion_info: dict[str, Any] = {"mode": fusion}
    if env is not None:
        fusion_by_user, fusion_info = fusion_per_user(
            env, ds, data_dir, split, protocol, seed, fusion, folds, progress
        )

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
                    tallies[name].add(runner.run_case(case, queries, k), queries, ds, consumed)
                groups.extend(case.user_id for _ in queries)
                bar.update(1)
    finally:
        bar.close()
        if env is not None:
            env.close()

    popularity = popularity_probabilities(ds)
    emb_view = emb.as_mapping()
    summary = {
        name: t.summary(groups, len(ds.catalog), emb_view, popularity, n_boot, seed) for name, t in tallies.items()
    }
    per_query = {name: t.per_query for name, t in tallies.items()}
    llm_spec = settings.llm if any(n in ("interestlens", "interestlens-rerank") for n in runners) else "none"
    results = EvalResults(
        dataset=ds.name,
        split=split,
        protocol=protocol,
        n_cases=len(ds.cases),
        n_users=len({c.user_id for c in ds.cases}),
        llm=llm_spec,
        systems=summary,
        significance=significance(summary, per_query, groups, seed),
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
        write_outputs(results, Path(out_dir))
    return results
