"""`interestlens demo`, offline, wall time per run in a fresh subprocess (issue 10's target: <= 20 s): ingest the
packaged 300-item catalog, observe the demo user's texts, recommend, with the default settings (which LLM stages
run is the defaults' choice, see README "LLM stages"). Each run has its own temporary store, so nothing is warm
but the OS file cache; the first run is reported too, since that is what a new user waits for.

    python -m bench.demo_wall --runs 3 [--llm none]
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from bench.common import DEFAULT_OUT, BenchResult, print_table, run_measured, write_result
from bench.memory import cli_path

TARGET_S = 20.0


def run(runs: int = 3, llm: str | None = None) -> BenchResult:
    cmd = [cli_path(), *(["--llm", llm] if llm else []), "demo", "--json"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    res = BenchResult(bench="demo_wall", params={"runs": runs, "llm": llm or "default", "cmd": cmd[1:]})
    rows = []
    for _ in range(runs):
        proc, wall, rss = run_measured(cmd, env=env)
        rows.append({"rc": proc.returncode, "wall_s": wall, "max_rss_mb": rss,
                     "stderr_tail": proc.stderr[-1500:] if proc.returncode else ""})
        if proc.returncode:
            break
    ok = all(r["rc"] == 0 for r in rows)
    walls = [r["wall_s"] for r in rows]
    res.add("interestlens demo, wall p50", statistics.median(walls), "s", f"<= {TARGET_S:.0f}",
            ok and statistics.median(walls) <= TARGET_S, note=f"{len(rows)} runs" + ("" if ok else ", a run failed"))
    res.add("  first run", walls[0], "s", "")
    res.add("  peak RSS", max(r["max_rss_mb"] for r in rows), "MiB", "")
    res.details = {"rows": rows}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--llm", default=None, help="an --llm spec; default: the CLI's default")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    res = run(args.runs, args.llm)
    print(write_result(res, args.out))
    print_table([res])


if __name__ == "__main__":
    main()
