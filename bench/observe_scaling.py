"""observe cost against profile size, no LLM: one short new text observed by a user who already holds N interests.

The profile of N synthetic interests (distinct topics, so none merge) is saved once per size; each timed call
observes one new sentence (one interest added). Two figures per size: with the embedder's text cache warm (a
long-running server) and cleared before each call (a new CLI process: stored interests embedded again if observe
needs them). The issue's target: flat within 2x from 10 to 500 interests.

    python -m bench.observe_scaling --sizes 10,100,500
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import DEFAULT_OUT, BenchResult, print_table, write_result

NEW_TEXTS = [
    "I have recently started enjoying documentaries about deep sea creatures.",
    "Lately I love slow cooking stews on rainy weekends.",
    "These days I am into vintage synthesizer music from the eighties.",
    "I really like board games with trading and negotiation.",
    "I enjoy long bike rides along the coast.",
    "I love books about the history of mathematics.",
    "I am into watercolour painting of city streets.",
]


def run(sizes: tuple[int, ...] = (10, 100, 500), calls: int = 7) -> BenchResult:
    from interestlens.agent.config import Settings
    from interestlens.agent.models import InterestProfile, SubInterest
    from interestlens.agent.service import InterestAgent

    res = BenchResult(bench="observe_scaling", params={"sizes": list(sizes), "calls": calls})
    p50s: dict[tuple[int, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        agent = InterestAgent(Settings(store=str(Path(tmp) / "store"), llm="none"))
        for n in sizes:
            user = f"scale-{n}"
            interests = [SubInterest(name=f"topic {k} number {k * 7919 % 10007}", weight=1.0) for k in range(n)]
            agent.store.save_profile(InterestProfile(user_id=user, interests=interests, version=1))
            for mode in ("warm", "cold"):
                ms = []
                for c in range(calls):
                    cache = getattr(agent.embedder, "_cache", None)
                    if mode == "cold" and cache is not None:
                        cache.data.clear()
                    t0 = time.perf_counter()
                    agent.observe(user, NEW_TEXTS[c % len(NEW_TEXTS)] + f" ({mode} {c})")
                    ms.append((time.perf_counter() - t0) * 1000)
                p50s[(n, mode)] = statistics.median(ms)
                res.add(f"observe p50, {n} interests, embedder cache {mode}", round(p50s[(n, mode)], 1), "ms")
        agent.close()
    lo, hi = min(sizes), max(sizes)
    for mode in ("warm", "cold"):
        ratio = p50s[(hi, mode)] / p50s[(lo, mode)]
        res.add(f"{mode}: p50 at {hi} / p50 at {lo}", round(ratio, 2), "x", "<= 2", ratio <= 2.0)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,500")
    ap.add_argument("--calls", type=int, default=7)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    res = run(tuple(int(s) for s in args.sizes.split(",")), args.calls)
    print_table([res])
    write_result(res, args.out)


if __name__ == "__main__":
    main()
