"""Vector retrieval latency: store.query_items top-50 over an N-item embedded ChromaStore (HNSW, cosine).

Query vectors are embedded before timing; the figure is the store's query alone, one query row per call
(and, separately, 4 rows per call: what retrieve() sends for 4 intents).

    python -m bench.retrieval --n 10000
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.common import DEFAULT_OUT, BenchResult, latency_summary, print_table, time_calls, write_result
from bench.fixtures import QUERY_TEXTS, prepared_store_dir

TOP_N = 50


def measure_query_latency(store: Any, embedder: Any, calls: int = 200, rows: int = 1) -> dict[str, float]:
    q = embedder.embed(QUERY_TEXTS)

    def one(i: int) -> None:
        start = (i * rows) % len(QUERY_TEXTS)
        idx = [(start + r) % len(QUERY_TEXTS) for r in range(rows)]
        out = store.query_items(q[idx], TOP_N)
        assert len(out) == rows and len(out[0]) == TOP_N

    return latency_summary(time_calls(one, calls, warmup=5))


def run(n: int = 10_000, workdir: Path = Path("/tmp/interestlens-bench"), calls: int = 200) -> BenchResult:
    from interestlens.agent.embeddings import make_embedder
    from interestlens.stores.chroma_store import ChromaStore

    embedder = make_embedder("minilm")
    path = prepared_store_dir(workdir, n, embedder)
    res = BenchResult(bench="retrieval", params={"n": n, "top": TOP_N, "calls": calls})
    with ChromaStore(str(path), embedder) as store:
        one = measure_query_latency(store, embedder, calls, rows=1)
        four = measure_query_latency(store, embedder, calls, rows=4)
    res.details = {"one_row": one, "four_rows": four}
    res.add(f"query_items top-{TOP_N} over {n:,} p50", one["p50_ms"], "ms", "")
    res.add(f"query_items top-{TOP_N} over {n:,} p95", one["p95_ms"], "ms", "")
    res.add(f"query_items 4 rows top-{TOP_N} p50", four["p50_ms"], "ms", "")
    res.add(f"query_items 4 rows top-{TOP_N} p95", four["p95_ms"], "ms", "")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/interestlens-bench"))
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    res = run(args.n, args.workdir, args.calls)
    print(write_result(res, args.out))
    print_table([res])


if __name__ == "__main__":
    main()
