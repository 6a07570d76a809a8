"""Prepared stores shared by the benchmarks: N catalog items (MovieLens + synthetic) and one observed user.

A prepared store directory is reused when it already holds N items (ingest is the slow part), so
`run_all` ingests each scale once. Delete --workdir to start from scratch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import MOVIELENS_CATALOG
from bench.synthetic import load_catalog

BENCH_USER = "bench-user"
BENCH_USER_TEXTS = [
    "I love slow-burn science fiction that makes space feel huge and lonely, like Interstellar.",
    "Give me clever mysteries and crime thrillers with a twist at the end.",
    "I can't stand horror movies, jump scares ruin my night.",
    "Animated films for a cozy family evening are always welcome.",
]
# Interest-like query texts for vector retrieval and recommendation contexts.
QUERY_TEXTS = [
    "slow-burn space exploration drama",
    "cozy animated family comedy",
    "gritty crime thriller with a heist",
    "romantic period drama",
    "epic fantasy adventure with dragons",
    "war film about survival",
    "documentary about music history",
    "whimsical coming-of-age story",
    "dark psychological mystery",
    "western with a lone gunslinger",
    "feel-good sports comedy",
    "cerebral time-travel puzzle",
    "rainy sunday afternoon",
    "something light after a long day",
    "date night",
    "watching with kids",
]


def bench_settings(store: str, **overrides: Any) -> Any:
    from interestlens.agent.config import Settings

    values: dict[str, Any] = {"store": store, "llm": "none", "rerank": False}
    values.update(overrides)
    return Settings(**values)


def prepared_store_dir(workdir: Path, n: int, embedder: Any, progress: bool = True) -> Path:
    """Directory of an embedded store with exactly `n` items and BENCH_USER's profile (no LLM)."""
    from interestlens.agent.service import InterestAgent

    path = workdir / f"store-{n}"
    items = load_catalog(n, MOVIELENS_CATALOG)
    agent = InterestAgent(bench_settings(str(path)), llm=None, embedder=embedder)
    try:
        if agent.store.count_items() != n:
            agent.add_items(items, progress=progress)
        if agent.store.load_profile(BENCH_USER) is None:
            agent.observe(BENCH_USER, BENCH_USER_TEXTS)
    finally:
        agent.close()
    return path
