"""The systems an evaluation compares: baseline rankers and InterestAgent configurations, one interface.

`run_case(case, queries, k) -> CaseRun` answers every query of a case. An agent system observes the case as a
fresh user (evals/leave_user_out.py), recommends per query, and forgets the user.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from interestlens.agent.errors import InterestLensError, InvalidInputError
from interestlens.agent.models import StageStats
from interestlens.agent.service import InterestAgent
from interestlens.evals.baselines import BASELINE_NAMES, Query, ScoringBaseline, SystemOutput
from interestlens.evals.data import EvalCase, EvalDataset
from interestlens.evals.leave_user_out import fresh_user

log = logging.getLogger(__name__)

AGENT_SYSTEMS = ("interestlens-nollm", "interestlens", "interestlens-rerank")
ALL_SYSTEMS = (*BASELINE_NAMES, *AGENT_SYSTEMS)
DEFAULT_SYSTEMS = (*BASELINE_NAMES, "interestlens-nollm")


def parse_systems(systems: Sequence[str] | str | None) -> list[str]:
    """System names from a list or a comma-separated string; "all" and "baselines" expand."""
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

    def __init__(self, name: str, agent: InterestAgent, rerank: bool, ds: EvalDataset) -> None:
        self.name = name
        self.agent = agent
        self.rerank = rerank
        self.ds = ds

    def run_case(self, case: EvalCase, queries: Sequence[Query], k: int) -> CaseRun:
        run = CaseRun(outputs=[])
        t0 = time.perf_counter()
        try:
            with fresh_user(self.agent, self.ds, case) as (uid, obs):
                if obs is not None:
                    run.stats.add(obs.stats)
                for q in queries:
                    run.outputs.append(self._recommend(uid, case, q, k, run))
        except InterestLensError as e:
            log.warning("%s: case %s failed: %s", self.name, case.case_id, e)
            run.errors += 1
            run.outputs.extend(SystemOutput(ranked=[]) for _ in range(len(queries) - len(run.outputs)))
        run.latency_ms = (time.perf_counter() - t0) * 1000.0
        return run

    def _recommend(self, uid: str, case: EvalCase, q: Query, k: int, run: CaseRun) -> SystemOutput:
        """One query's ranking; a failed call is an empty ranking counted in `run.errors`."""
        tq = time.perf_counter()
        try:
            res = self.agent.recommend(
                uid, context=case.context, k=k, rerank=self.rerank, candidate_ids=q.candidate_ids
            )
        except InterestLensError as e:
            log.warning("%s: recommend failed on %s: %s", self.name, q.key, e)
            run.errors += 1
            return SystemOutput(ranked=[])
        run.stats.add(res.stats)
        return SystemOutput(
            ranked=[r.item.id for r in res.recommendations],
            stats=res.stats,
            latency_ms=(time.perf_counter() - tq) * 1000.0,
        )
