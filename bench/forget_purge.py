"""What a final forget costs: Chroma upserts with the user-data sync threshold vs Chroma's default.

User-data collections persist their vector index every `USER_DATA_SYNC_THRESHOLD` writes so Chroma prunes its
write-ahead log at once (stores/purge.py). This times 100 upserts of 10 vectors into a 20,000-vector index
with that threshold and with Chroma's default of 1,000, each in a fresh embedded client.

    python -m bench.forget_purge
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import DEFAULT_OUT, BenchResult, print_table, write_result


def _upserts(threshold: int, base: int, n: int) -> float:
    import chromadb

    d = Path(tempfile.mkdtemp(prefix="il-purge-"))
    try:
        client = chromadb.PersistentClient(str(d))
        col = client.get_or_create_collection(
            "interests", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )
        rng = np.random.default_rng(0)
        for b in range(0, base, 1000):
            col.add(ids=[f"bulk{b}/{i}" for i in range(1000)], embeddings=rng.normal(size=(1000, 384)).tolist())
        col.modify(configuration={"hnsw": {"sync_threshold": threshold}})
        t = time.perf_counter()
        for u in range(n):
            col.upsert(
                ids=[f"user{u}/{i}" for i in range(10)],
                embeddings=rng.normal(size=(10, 384)).tolist(),
                documents=[f"text {u} {i}" for i in range(10)],
                metadatas=[{"user_id": f"user{u}"}] * 10,
            )
        return time.perf_counter() - t
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run(base: int = 20_000, n: int = 100) -> BenchResult:
    from interestlens.stores.purge import USER_DATA_SYNC_THRESHOLD

    result = BenchResult(bench="forget_purge", params={"index_vectors": base, "upserts_of_10": n})
    ours = _upserts(USER_DATA_SYNC_THRESHOLD, base, n)
    default = _upserts(1000, base, n)
    result.add(f"{n} upserts, sync_threshold {USER_DATA_SYNC_THRESHOLD} (user data)", round(ours, 2), "s")
    result.add(f"{n} upserts, sync_threshold 1000 (Chroma default)", round(default, 2), "s")
    result.add("ratio", round(ours / default, 2), "x", "<= 1.2", ours / default <= 1.2)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=int, default=20_000)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    result = run(args.base, args.n)
    print_table([result])
    print(f"wrote {write_result(result, args.out)}")


if __name__ == "__main__":
    main()
