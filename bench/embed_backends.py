"""MiniLM embedding throughput: torch vs ONNX Runtime, batch sizes, length sorting, torch threads.

Also checks that the two backends agree (min cosine over the sample), which is what makes stores built with
either interchangeable. Rounds are interleaved and the best round is kept, so background load on a shared
machine penalises both backends alike.

    python -m bench.embed_backends --n 2000
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import DEFAULT_OUT, MOVIELENS_CATALOG, BenchResult, print_table, write_result
from bench.synthetic import load_catalog

AGREEMENT_TARGET = 0.999


def _throughput(embedder: Any, texts: list[str], batch_size: int, sort: bool) -> tuple[float, float]:
    """(items per wall second, items per CPU second) of one pass over texts, text cache off.

    `sort`: one call, which CachedEmbedder length-sorts; otherwise batch by batch in arrival order, each
    batch padded to its longest text. CPU seconds are this process's, so they are far less sensitive than
    wall time to other load on a shared machine.
    """
    embedder._cache = type(embedder._cache)(0)
    embedder.batch_size = batch_size
    wall, cpu = time.perf_counter(), time.process_time()
    if sort:
        embedder.embed(texts)
    else:
        for s in range(0, len(texts), batch_size):
            embedder.embed(texts[s : s + batch_size])
    return len(texts) / (time.perf_counter() - wall), len(texts) / (time.process_time() - cpu)


def run(n: int = 1000, rounds: int = 2) -> BenchResult:
    import torch

    from interestlens.agent.embeddings import MiniLMEmbedder, OnnxMiniLMEmbedder
    from interestlens.stores.items import item_embedding_text

    texts = [item_embedding_text(it) for it in load_catalog(n, MOVIELENS_CATALOG)]
    random.Random(0).shuffle(texts)  # catalogs arrive in no particular length order
    res = BenchResult(bench="embed_backends", params={"n": n, "rounds": rounds})
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    onnx2 = OnnxMiniLMEmbedder(cache_size=0, n_threads=2)
    onnx_load = time.perf_counter() - t
    onnx1 = OnnxMiniLMEmbedder(cache_size=0, n_threads=1, onnx_path=onnx2.onnx_path)
    t = time.perf_counter()
    tor = MiniLMEmbedder(cache_size=0)
    torch_load = time.perf_counter() - t

    sample = [*texts[:300], "", "a", "x " * 400, "naïve café — 東京 🎬"]
    a, b = onnx2.embed(sample), tor.embed(sample)
    min_cos = float(np.min(np.sum(a * b, axis=1)))
    res.add(
        "ONNX vs torch agreement (min cosine)",
        min_cos,
        "cosine",
        f">= {AGREEMENT_TARGET}",
        min_cos >= AGREEMENT_TARGET,
    )

    # (label, embedder, torch threads or None, batch size, sorted)
    configs = [
        ("onnx 2 threads bs=32 sorted", onnx2, None, 32, True),
        ("onnx 2 threads bs=64 sorted", onnx2, None, 64, True),
        ("onnx 2 threads bs=128 sorted", onnx2, None, 128, True),
        ("onnx 2 threads bs=64 unsorted", onnx2, None, 64, False),
        ("onnx 1 thread bs=64 sorted", onnx1, None, 64, True),
        ("torch 2 threads bs=32 sorted", tor, 2, 32, True),
        ("torch 2 threads bs=64 sorted", tor, 2, 64, True),
        ("torch 2 threads bs=128 sorted", tor, 2, 128, True),
        ("torch 2 threads bs=64 unsorted", tor, 2, 64, False),
        ("torch 1 thread bs=64 sorted", tor, 1, 64, True),
    ]
    default_threads = torch.get_num_threads()
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for _ in range(rounds):
        for label, emb, threads, bs, sort in configs:
            if threads is not None:
                torch.set_num_threads(threads)
            w, c = _throughput(emb, texts, bs, sort)
            wall[label] = max(wall.get(label, 0.0), w)
            cpu[label] = max(cpu.get(label, 0.0), c)
        torch.set_num_threads(default_threads)
    for label, *_ in configs:
        res.add(label, wall[label], "items/s", "", note=f"{cpu[label]:.0f} items per CPU-s")
    best_onnx = max(v for k, v in wall.items() if k.startswith("onnx"))
    best_torch = max(v for k, v in wall.items() if k.startswith("torch"))
    cpu_ratio = cpu["onnx 1 thread bs=64 sorted"] / cpu["torch 1 thread bs=64 sorted"]
    res.add(
        "best ONNX / best torch (wall)",
        best_onnx / best_torch,
        "ratio",
        "> 1: ONNX is the default",
        best_onnx > best_torch,
    )
    res.add("ONNX / torch items per CPU-second (1 thread)", cpu_ratio, "ratio", "> 1", cpu_ratio > 1)
    res.add("model load: ONNX (export cached)", onnx_load, "s", "")
    res.add("model load: torch", torch_load, "s", "")
    load_after = os.getloadavg()[0]
    res.details = {
        "wall_items_per_s": wall,
        "cpu_items_per_s": cpu,
        "min_cosine": min_cos,
        "torch_default_threads": default_threads,
        "loadavg_1m": [load_before, load_after],
    }
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    res = run(args.n, rounds=args.rounds)
    print(write_result(res, args.out))
    print_table([res])


if __name__ == "__main__":
    main()
