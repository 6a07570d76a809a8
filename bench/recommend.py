"""`recommend` latency for a stored profile without any LLM call (llm=None, rerank off), N-item catalog.

Two figures: the same request repeated (intent query vectors come from the embedder's cache, as in a
long-running server) and a new context text on every call (one extra embedding per call).

    python -m bench.recommend --n 10000
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.common import DEFAULT_OUT, BenchResult, latency_summary, print_table, time_calls, write_result
from bench.fixtures import BENCH_USER, QUERY_TEXTS, bench_settings, prepared_store_dir

TARGET_P50_MS = 50.0


def measure_recommend(agent: Any, calls: int, with_context: bool, k: int = 10) -> dict[str, Any]:
    stage_ms: dict[str, list[float]] = {}

    def one(i: int) -> None:
        # A distinct context each call (the counter makes it new text, so it is really embedded).
        ctx = f"{QUERY_TEXTS[i % len(QUERY_TEXTS)]} #{i}" if with_context else None
        r = agent.recommend(BENCH_USER, ctx, k=k, rerank=False)
        assert r.recommendations and r.stats.llm_calls == 0
        if i >= 0:
            for stage, ms in r.stats.latency_ms.items():
                stage_ms.setdefault(stage, []).append(ms)

    summary = latency_summary(time_calls(one, calls, warmup=3))
    summary["stage_p50_ms"] = {s: sorted(v)[len(v) // 2] for s, v in stage_ms.items()}
    return summary


def run(n: int = 10_000, workdir: Path = Path("/tmp/interestlens-bench"), calls: int = 50) -> BenchResult:
    from interestlens.agent.embeddings import make_embedder
    from interestlens.agent.service import InterestAgent

    embedder = make_embedder("minilm")
    path = prepared_store_dir(workdir, n, embedder)
    res = BenchResult(bench="recommend", params={"n": n, "calls": calls, "llm": None, "rerank": False})
    with InterestAgent(bench_settings(str(path)), llm=None, embedder=embedder) as agent:
        same = measure_recommend(agent, calls, with_context=False)
        ctx = measure_recommend(agent, calls, with_context=True)
    res.details = {"no_context": same, "new_context_each_call": ctx}
    target = f"p50 < {TARGET_P50_MS:.0f}"
    res.add(f"recommend (no LLM) over {n:,} p50", same["p50_ms"], "ms", target, same["p50_ms"] < TARGET_P50_MS)
    res.add(f"recommend (no LLM) over {n:,} p95", same["p95_ms"], "ms", "")
    res.add(
        "recommend (no LLM) new context p50",
        ctx["p50_ms"],
        "ms",
        target,
        ctx["p50_ms"] < TARGET_P50_MS,
        note=", ".join(f"{k} {v:.0f}" for k, v in ctx["stage_p50_ms"].items()),
    )
    res.add("recommend (no LLM) new context p95", ctx["p95_ms"], "ms", "")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/interestlens-bench"))
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    res = run(args.n, args.workdir, args.calls)
    print(write_result(res, args.out))
    print_table([res])


if __name__ == "__main__":
    main()
