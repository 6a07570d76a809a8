"""Run every benchmark, write one JSON per benchmark to --out, and print one table of figures vs targets.

python -m bench.run_all                      # everything at the default sizes (~15-25 min on 2 cores)
python -m bench.run_all --only ingest,recommend
python -m bench.run_all --scales 1000,10000,100000   # include the 100k scaling run (adds ~10 min+)
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run_all.py`: make `bench.*` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DEFAULT_OUT, BenchResult, machine_info, print_table, write_result

BENCHES = ("embed_backends", "ingest", "retrieval", "recommend", "eval_case", "e2e", "memory", "scaling")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Directory for the JSON results.")
    ap.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/interestlens-bench"),
        help="Prepared stores (reused between runs; delete to start over).",
    )
    ap.add_argument("--n", type=int, default=10_000, help="Catalog size for ingest/retrieval/recommend/e2e.")
    ap.add_argument("--scales", default="1000,10000", help="Catalog sizes for the scaling benchmark.")
    ap.add_argument("--only", default="", help=f"Comma-separated subset of: {', '.join(BENCHES)}")
    ap.add_argument("--skip", default="", help="Comma-separated benchmarks to skip.")
    ap.add_argument("--e2e-users", type=int, default=5)
    args = ap.parse_args(argv)
    chosen = [b for b in BENCHES if (not args.only or b in args.only.split(",")) and b not in args.skip.split(",")]
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine_info()}", file=sys.stderr)
    results: list[BenchResult] = []
    failed = 0
    for name in chosen:
        print(f"== {name}", file=sys.stderr, flush=True)
        try:
            res = _run_one(name, args)
        except Exception as e:  # one broken benchmark must not hide the others' figures
            failed += 1
            traceback.print_exc()
            res = BenchResult(bench=name)
            res.add("FAILED", None, "", note=f"{type(e).__name__}: {e}"[:200])
        print(f"   wrote {write_result(res, args.out)}", file=sys.stderr)
        results.append(res)
    print_table(results)
    return 1 if failed else 0


def _run_one(name: str, args: argparse.Namespace) -> BenchResult:
    if name == "embed_backends":
        from bench import embed_backends

        return embed_backends.run()
    if name == "ingest":
        from bench import ingest

        return ingest.run(args.n)
    if name == "retrieval":
        from bench import retrieval

        return retrieval.run(args.n, args.workdir)
    if name == "recommend":
        from bench import recommend

        return recommend.run(args.n, args.workdir)
    if name == "eval_case":
        from bench import eval_case

        return eval_case.run()
    if name == "e2e":
        from bench import e2e

        return e2e.run(args.n, args.workdir, users=args.e2e_users)
    if name == "memory":
        from bench import memory

        return memory.run(args.n, args.workdir)
    if name == "scaling":
        from bench import scaling

        return scaling.run(tuple(int(s) for s in args.scales.split(",") if s.strip()), args.workdir)
    raise ValueError(f"unknown benchmark {name!r}")


if __name__ == "__main__":
    raise SystemExit(main())
