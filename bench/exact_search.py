"""Determinism and exactness of catalog search: two stores built from the same MovieLens catalog (9,742 items),
100 queries, top 50; how many lists are identical between the builds and equal to brute force over the vectors.

Before the exact search (ANN only) 70 of 100 lists were identical and 65 / 68 equal to brute force.

    python -m bench.exact_search [--data ../shared/datasets/movielens]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import DEFAULT_OUT, BenchResult, print_table, write_result

GENRES = ["space opera", "heist thriller", "romantic comedy", "horror gore", "jazz musician", "war drama",
          "animated family", "crime noir", "superhero action", "documentary nature"]
MODIFIERS = ["classic", "1990s", "funny", "dark", "epic", "indie", "french", "short", "teen", "true story"]


def run(data: Path, n: int = 50) -> BenchResult:
    from interestlens.agent.embeddings import make_embedder
    from interestlens.agent.models import Item
    from interestlens.stores.chroma_store import ChromaStore
    from interestlens.stores.items import item_embedding_text

    base = make_embedder("minilm")
    with (data / "catalog.jsonl").open() as f:
        items = [Item.model_validate(json.loads(line)) for line in f]
    texts = [item_embedding_text(it) for it in items]
    vecs = base.embed(texts)
    table = dict(zip(texts, vecs, strict=True))

    class TableEmbedder:  # the catalog is embedded once; both stores get the same vectors
        model_id, dim = base.model_id, base.dim

        def embed(self, ts: list[str]) -> np.ndarray:
            return np.vstack([table[t] for t in ts]) if ts else np.zeros((0, base.dim), np.float32)

    queries = base.embed([f"{g} {m}" for g in GENRES for m in MODIFIERS])
    lists, latencies = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for build in range(2):
            with ChromaStore(str(Path(tmp) / f"s{build}"), TableEmbedder()) as store:  # type: ignore[arg-type]
                store.upsert_items(items, batch_size=500)
                t0 = time.perf_counter()
                store.query_items(queries[:1], n=n)
                first = time.perf_counter() - t0
                rows = []
                for q in queries:
                    t0 = time.perf_counter()
                    rows.append([i for i, _ in store.query_items(q, n=n)[0]])
                    latencies.append(time.perf_counter() - t0)
                lists.append(rows)
    ids = sorted(it.id for it in items)
    order = {it.id: k for k, it in enumerate(items)}
    m = vecs[[order[i] for i in ids]].astype(np.float64)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    q64 = queries.astype(np.float64) / np.linalg.norm(queries, axis=1, keepdims=True)
    exact = [[ids[k] for k in sorted(range(len(ids)), key=lambda k: (-round(float(s[k]), 6), ids[k]))[:n]]
             for s in q64 @ m.T]
    res = BenchResult(bench="exact_search", params={"items": len(items), "queries": len(queries), "top": n})
    res.add("identical lists between two builds", sum(a == b for a, b in zip(*lists, strict=True)), "of 100")
    for build in range(2):
        equal = sum(a == b for a, b in zip(lists[build], exact, strict=True))
        res.add(f"build {build}: lists equal to brute force", equal, "of 100")
    res.add("first query (loads the vectors)", first * 1000, "ms")
    res.add("query p50", float(np.percentile(latencies, 50)) * 1000, "ms")
    res.add("query p95", float(np.percentile(latencies, 95)) * 1000, "ms")
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[1].parent / "shared/datasets/movielens"
    p.add_argument("--data", type=Path, default=default)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args()
    res = run(args.data)
    print_table([res])
    write_result(res, args.out)


if __name__ == "__main__":
    main()
