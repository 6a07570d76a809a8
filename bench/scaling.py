"""Scaling: ingest throughput, vector query and no-LLM recommend latency at several catalog sizes.

Default scales 1,000 and 10,000. The 100,000 run takes several minutes of embedding on 2 cores:

    python -m bench.scaling --scales 1000,10000,100000
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from bench.common import DEFAULT_OUT, MOVIELENS_CATALOG, BenchResult, print_table, write_result
from bench.fixtures import BENCH_USER, BENCH_USER_TEXTS, bench_settings
from bench.ingest import fresh_embedder
from bench.recommend import measure_recommend
from bench.retrieval import measure_query_latency
from bench.synthetic import load_catalog


def run(
    scales: tuple[int, ...] = (1000, 10_000), workdir: Path = Path("/tmp/interestlens-bench"), calls: int = 30
) -> BenchResult:
    from interestlens.agent.embeddings import make_embedder
    from interestlens.agent.service import InterestAgent

    res = BenchResult(bench="scaling", params={"scales": scales, "calls": calls})
    shared = make_embedder("minilm")
    for n in scales:
        path = workdir / f"scaling-{n}"
        if path.exists():
            shutil.rmtree(path)
        items = load_catalog(n, MOVIELENS_CATALOG)
        emb = fresh_embedder("default")  # no cached vectors from earlier scales
        t = time.perf_counter()
        with InterestAgent(bench_settings(str(path)), llm=None, embedder=emb) as agent:
            agent.add_items(items, progress=True)
        ingest_s = time.perf_counter() - t
        del items, emb
        with InterestAgent(bench_settings(str(path)), llm=None, embedder=shared) as agent:
            agent.observe(BENCH_USER, BENCH_USER_TEXTS)
            q = measure_query_latency(agent.store, shared, calls * 2)
            r = measure_recommend(agent, calls, with_context=False)
            count = agent.store.count_items()
        size_mb = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20
        res.details[str(n)] = {
            "ingest_s": ingest_s,
            "ingest_items_per_s": n / ingest_s,
            "query": q,
            "recommend": r,
            "count": count,
            "store_mb": size_mb,
        }
        res.add(
            f"{n:>7,} items: ingest",
            n / ingest_s,
            "items/s",
            ">= 500",
            n / ingest_s >= 500,
            note=f"{ingest_s:.0f}s, store {size_mb:.0f} MiB",
        )
        res.add(f"{n:>7,} items: query top-50 p50", q["p50_ms"], "ms", "", note=f"p95 {q['p95_ms']:.1f}")
        res.add(
            f"{n:>7,} items: recommend (no LLM) p50",
            r["p50_ms"],
            "ms",
            "< 50",
            r["p50_ms"] < 50,
            note=f"p95 {r['p95_ms']:.1f}",
        )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="1000,10000", help="Comma-separated catalog sizes.")
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/interestlens-bench"))
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    res = run(tuple(int(s) for s in args.scales.split(",") if s.strip()), args.workdir, args.calls)
    print(write_result(res, args.out))
    print_table([res])


if __name__ == "__main__":
    main()
