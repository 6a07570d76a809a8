"""The evaluation protocols: which queries a case asks, and how results.json describes them.

- `full`: each case ranks the whole catalog (history excluded); metrics on the top FULL_K.
- `sampled`: each (case, positive) pair ranks that positive plus SAMPLED_NEGATIVES items drawn uniformly (seeded)
  from outside the case's consumed items and positives.
"""

from __future__ import annotations

from interestlens.agent.errors import InvalidInputError
from interestlens.evals.baselines import Query
from interestlens.evals.data import SAMPLED_NEGATIVES, EvalCase, EvalDataset, case_rng, sampled_candidates

PROTOCOLS = ("full", "sampled")
FULL_K = 50  # the full protocol keeps the top 50: enough for every metric reported

PROTOCOL_TEXT = {
    "full": f"rank the whole catalog (consumed items excluded), metrics on the top {FULL_K}",
    "sampled": f"each (case, positive) ranks the positive plus {SAMPLED_NEGATIVES} seeded uniform negatives",
}


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
