"""Catalog ingest throughput into an embedded ChromaStore vs raw embedding throughput on the same texts.

Raw embedding is the limit: ingest also hashes, checks existing ids, serialises metadata and writes Chroma.
The ingest run is instrumented (embed and Chroma calls timed) so the report says where the time goes.

    python -m bench.ingest --n 10000
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import DEFAULT_OUT, MOVIELENS_CATALOG, BenchResult, print_table, write_result
from bench.synthetic import load_catalog

TARGET_RATIO = 0.8
TARGET_ITEMS_PER_S = 500.0


class TimedEmbedder:
    """Forwards to an Embedder and adds up the seconds spent in embed()."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.seconds = 0.0
        self.texts = 0

    def embed(self, texts: Any) -> np.ndarray:
        t = time.perf_counter()
        try:
            return self.inner.embed(texts)
        finally:
            self.seconds += time.perf_counter() - t
            self.texts += len(texts)


class TimedCollection:
    """Forwards to a Chroma collection and adds up seconds per method (get, upsert, ...)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.seconds: dict[str, float] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def timed(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return attr(*a, **kw)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t

        return timed


def fresh_embedder(backend: str) -> Any:
    """A new embedder with its text cache disabled, so every text is really embedded."""
    from interestlens.agent import embeddings as E

    if backend == "torch":
        return E.MiniLMEmbedder(cache_size=0)
    if backend == "onnx":
        return E.OnnxMiniLMEmbedder(cache_size=0)
    emb = E.make_embedder("minilm")
    return type(emb)(cache_size=0)


def measure_ingest(
    n: int,
    backend: str = "default",
    batch_size: int = 256,
    workdir: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    from interestlens.stores.chroma_store import ChromaStore
    from interestlens.stores.items import item_embedding_text

    items = load_catalog(n, MOVIELENS_CATALOG)
    texts = [item_embedding_text(it) for it in items]
    raw_emb = fresh_embedder(backend)
    backend_name = type(raw_emb).__name__
    # Raw limit, as ingest would see it: the same texts in the store's batch size, then all at once.
    t = time.perf_counter()
    for s in range(0, n, batch_size):
        raw_emb.embed(texts[s : s + batch_size])
    raw_batched_s = time.perf_counter() - t
    raw_emb = fresh_embedder(backend)
    t = time.perf_counter()
    raw_emb.embed(texts)
    raw_whole_s = time.perf_counter() - t

    tmp = Path(tempfile.mkdtemp(prefix="il-bench-ingest-", dir=workdir))
    try:
        emb = TimedEmbedder(fresh_embedder(backend))
        store = ChromaStore(str(tmp / "store"), emb)
        col = TimedCollection(store._items)
        store._items = col  # instrument the real collection: timing only, behaviour unchanged
        t = time.perf_counter()
        written = store.upsert_items(items, batch_size=batch_size, progress=progress)
        ingest_s = time.perf_counter() - t
        t = time.perf_counter()
        rewritten = store.upsert_items(items, batch_size=batch_size)  # unchanged: hash check only
        reingest_s = time.perf_counter() - t
        count = store.count_items()
        store.close()
        size_mb = sum(f.stat().st_size for f in (tmp / "store").rglob("*") if f.is_file()) / 2**20
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    chroma_s = {k: round(v, 3) for k, v in col.seconds.items()}
    other_s = ingest_s - emb.seconds - sum(col.seconds.values())
    return {
        "n": n,
        "backend": backend_name,
        "batch_size": batch_size,
        "written": written,
        "count_after": count,
        "rewritten_unchanged": rewritten,
        "raw_embed_batched_items_per_s": n / raw_batched_s,
        "raw_embed_whole_items_per_s": n / raw_whole_s,
        "ingest_items_per_s": n / ingest_s,
        "reingest_unchanged_items_per_s": n / reingest_s,
        "ingest_s": ingest_s,
        "breakdown_s": {
            "embed": round(emb.seconds, 3),
            **{f"chroma_{k}": v for k, v in chroma_s.items()},
            "other (validate, hash, metadata json)": round(other_s, 3),
        },
        "store_size_mb": size_mb,
    }


def run(n: int = 10_000, backend: str = "default", batch_size: int = 256, progress: bool = True) -> BenchResult:
    res = BenchResult(bench="ingest", params={"n": n, "backend": backend, "batch_size": batch_size})
    d = measure_ingest(n, backend, batch_size, progress=progress)
    res.details = d
    raw = d["raw_embed_batched_items_per_s"]
    ratio = d["ingest_items_per_s"] / raw
    res.add(f"raw embed throughput ({d['backend']}, batches of {batch_size})", raw, "items/s", "the limit")
    res.add(
        f"raw embed throughput ({d['backend']}, one call, length-sorted)",
        d["raw_embed_whole_items_per_s"],
        "items/s",
        "the limit",
    )
    res.add(
        f"ingest throughput {n} items",
        d["ingest_items_per_s"],
        "items/s",
        f">= {TARGET_ITEMS_PER_S:.0f}",
        d["ingest_items_per_s"] >= TARGET_ITEMS_PER_S,
    )
    res.add(
        "ingest / raw embed",
        ratio,
        "ratio",
        f">= {TARGET_RATIO}",
        ratio >= TARGET_RATIO,
        note=", ".join(f"{k} {v:.1f}s" for k, v in d["breakdown_s"].items()),
    )
    res.add("re-ingest unchanged items", d["reingest_unchanged_items_per_s"], "items/s", "")
    res.add("items in store after ingest", d["count_after"], "items", f"== {n}", d["count_after"] == n)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--backend", choices=["default", "onnx", "torch"], default="default")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    res = run(args.n, args.backend, args.batch_size)
    print(write_result(res, args.out))
    print_table([res])


if __name__ == "__main__":
    main()
