"""What an evaluation run adds up to: per-system tallies, their summary (metrics with intervals over users, cost
and safety counters), the significance test against the best baseline, and the EvalResults of results.json.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, PrivateAttr

from interestlens.evals import metrics as M
from interestlens.evals.baselines import BASELINE_NAMES, Query, SystemOutput
from interestlens.evals.data import EvalDataset
from interestlens.evals.systems import AGENT_SYSTEMS, CaseRun

CI_METRICS = ("ndcg@10", "recall@10", "hit@10", "mrr")
# the cost and safety counters a system's summary reports, summed over its cases
COUNTERS = (
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
)


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


def id_checks(out: SystemOutput, q: Query, ds: EvalDataset) -> dict[str, int]:
    """Ids a ranking should never hold: unknown or outside the candidates, repeated, from the case's history."""
    allowed = set(q.candidate_ids) if q.candidate_ids is not None else None
    return {
        "hallucinated_ids": sum(
            1 for i in out.ranked if not ds.has_item(i) or (allowed is not None and i not in allowed)
        ),
        "duplicate_ids": len(out.ranked) - len(set(out.ranked)),
        "history_ids": sum(1 for i in out.ranked if i in set(q.case.history)),
    }


@dataclass
class SystemTally:
    """One system's runs over an evaluation: per-query scores, rankings, case latencies and counters."""

    per_query: list[dict[str, float]] = field(default_factory=list)
    rankings: list[list[str]] = field(default_factory=list)
    case_latency: list[float] = field(default_factory=list)
    totals: dict[str, float] = field(default_factory=dict)

    def _count(self, key: str, val: float) -> None:
        self.totals[key] = self.totals.get(key, 0) + val

    def add(self, run: CaseRun, queries: Sequence[Query], ds: EvalDataset, consumed: set[str]) -> None:
        self.case_latency.append(run.latency_ms)
        for key, val in (
            ("invalid_outputs", run.stats.invalid_outputs),
            ("fallbacks", run.stats.fallbacks),
            ("llm_calls", run.stats.llm_calls),
            ("tokens", run.stats.prompt_tokens + run.stats.completion_tokens),
            ("dropped_ungrounded", run.stats.dropped_ungrounded),
            ("errors", run.errors),
        ):
            self._count(key, val)
        for q, out in zip(queries, run.outputs, strict=True):
            for key, val in id_checks(out, q, ds).items():
                self._count(key, val)
            # Consumed items are counted as errors (seen_ids) and then removed, the same for every
            # system: a user's already-rated items can never be positives.
            self._count("seen_ids", sum(1 for i in out.ranked if i in consumed))
            out.ranked = [i for i in out.ranked if i not in consumed]
            self.per_query.append(M.query_scores(out.ranked, q.relevant))
            self.rankings.append(out.ranked)

    def summary(
        self,
        groups: Sequence[str],
        n_catalog: int,
        embeddings: Any,
        popularity: Mapping[str, float],
        n_boot: int,
        seed: int,
    ) -> dict[str, Any]:
        """Means over queries (intervals resampling the users in `groups`), list metrics, latency, counters."""
        rows = self.per_query
        s: dict[str, Any] = {}
        for metric in M.QUERY_METRICS:
            vals = [r[metric] for r in rows]
            s[metric] = float(np.mean(vals)) if vals else 0.0
            if metric in CI_METRICS:
                s[f"{metric}_ci"] = list(M.bootstrap_ci(vals, groups, n_boot=n_boot, seed=seed))
        lists = self.rankings
        s["coverage@10"] = M.catalog_coverage(lists, n_catalog, 10)
        s["diversity@10"] = (
            float(np.mean([M.intra_list_diversity(r, embeddings, 10) for r in lists])) if lists else 0.0
        )
        s["novelty@10"] = float(np.mean([M.novelty(r, popularity, 10) for r in lists])) if lists else 0.0
        s["latency_ms_p50"] = M.percentile(self.case_latency, 50)
        s["latency_ms_p95"] = M.percentile(self.case_latency, 95)
        for key in COUNTERS:
            s[key] = int(self.totals.get(key, 0))
        s["n_queries"] = len(rows)
        return s


def significance(
    summary: dict[str, dict[str, Any]],
    per_query: dict[str, list[dict[str, float]]],
    groups: list[str],
    seed: int,
) -> dict[str, Any]:
    """Each interestlens system against the best baseline by ndcg@10: paired sign-flip permutation over users."""
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


RESULT_DIRS = ("evals/results", "bench/results")


def git_commit(root: Path | None = None) -> str:
    """The commit of the code that runs (with '+dirty' when the tree differs from it); 'unknown' outside git.

    Result and benchmark files are output, not code: rerunning an evaluation over a committed result must not mark
    the next run of the same code dirty."""
    root = root or Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *(f":(exclude){p}" for p in RESULT_DIRS)],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")
