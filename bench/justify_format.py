"""Justification reply formats, compared in one process (packaged SmolLM2): sentences keyed by label
(prompts/justify.j2, what recommend uses without a scoring pass); the same as the next turn of the scoring
conversation (prompts/justify_next.j2, what recommend uses after one: the scoring pass runs first, untimed, and its
KV cache is continued); and ranking entries with label, intent, evidence ids and sentence (prompts/rerank.j2's
format, which justify.j2 v3 used). Time per call, prompt tokens evaluated, completion tokens, and how many
sentences pass agent.justify's checks (the rest fall back to templates), over a few candidate orders of the
reranker tests' profile.

    python -m bench.justify_format --orders 4
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

from bench.common import DEFAULT_OUT, BenchResult, print_table, write_result

# The profile, intents and candidates tests/test_rerank.py checks, so the figures describe the tested setup.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

FORMATS = {"justify": "sentences keyed by label", "continued": "sentences keyed by label, continuing the scoring pass",
           "rerank": "ranking entries (label, intent, evidence ids, sentence)"}


def run(orders: int = 4) -> BenchResult:
    from test_rerank import _candidates
    from test_retrieve import make_intents, make_profile

    from interestlens.agent.config import Settings
    from interestlens.agent.justify import justified_recommendations, template_justification
    from interestlens.agent.label_scoring import ask_picks, evidence_catalog, score_candidates
    from interestlens.agent.llm import make_llm
    from interestlens.agent.models import StageStats

    settings = Settings(store="unused")
    llm = make_llm("smollm2", settings)
    profile = make_profile()
    intents = make_intents(profile)
    evidence = evidence_catalog(intents, profile)
    ids = ["sf2", "jz1", "sf3", "jz3", "ck1"]
    res = BenchResult(bench="justify_format", params={"orders": orders, "candidates": len(ids)})
    res.settings = settings.model_dump(mode="json")
    for fmt, label in FORMATS.items():
        times, tokens, evaluated, kept, total = [], 0, 0, 0, 0
        for order in list(itertools.permutations(ids))[::30][:orders]:
            cands = _candidates(profile, list(order))
            after = None
            if fmt == "continued":  # the scoring pass recommend runs first (reversed: labels differ from order)
                after = score_candidates(cands[::-1], intents, profile, None, llm, settings, StageStats())
            held = llm._llama.n_tokens
            stats = StageStats()
            t0 = time.perf_counter()
            picks = {p.item_id: p for p in ask_picks(llm, cands, intents, profile, evidence, None, stats,
                                                     template="justify" if fmt == "continued" else fmt,
                                                     after=after)}
            times.append(time.perf_counter() - t0)
            tokens += stats.completion_tokens
            evaluated += stats.prompt_tokens - (held if fmt == "continued" else 0)
            recs = justified_recommendations(cands, {c.item.id: c.score for c in cands}, picks, len(cands), evidence,
                                             intents, profile, reranked_by="retrieval", stats=stats)
            for c, r in zip(cands, recs, strict=True):
                total += 1
                kept += r.item.id in picks and r.justification != template_justification(c, intents, profile).text
        res.add(f"{label}: call p50", statistics.median(times), "s", "", note=f"{len(times)} calls")
        res.add(f"  prompt tokens not from the scoring pass, per call ({fmt})", evaluated / len(times), "tokens", "",
                note="the system prefix comes from the kept KV states in every format")
        res.add(f"  completion tokens per call ({fmt})", tokens / len(times), "tokens", "")
        res.add(f"  sentences kept by the checks ({fmt})", kept, "", "", note=f"of {total}")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=4)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    res = run(args.orders)
    print(write_result(res, args.out))
    print_table([res])


if __name__ == "__main__":
    main()
