"""Peak memory (max RSS) of the CLI's `interestlens recommend` in a subprocess, on an N-item store.

Measured with GNU time (`/usr/bin/time -v`) when present, else getrusage(RUSAGE_CHILDREN). Variants: no LLM,
the packaged LLM (compose + rerank), and the torch embedding backend for comparison with the default.

    python -m bench.memory --n 10000
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.common import DEFAULT_OUT, BenchResult, print_table, run_measured, write_result
from bench.fixtures import BENCH_USER, prepared_store_dir

TARGET_MB = 1536.0


def cli_path() -> str:
    exe = Path(sys.executable).parent / "interestlens"
    return str(exe) if exe.exists() else "interestlens"


def run(
    n: int = 10_000,
    workdir: Path = Path("/tmp/interestlens-bench"),
    variants: tuple[str, ...] = ("none", "smollm2", "none+torch"),
) -> BenchResult:
    from interestlens.agent.embeddings import make_embedder

    path = prepared_store_dir(workdir, n, make_embedder("minilm"))  # closed again: the CLI takes the lock
    res = BenchResult(bench="memory", params={"n": n, "variants": variants})
    details: dict[str, dict[str, object]] = {}
    for variant in variants:
        llm, _, embedder = variant.partition("+")
        env = dict(os.environ)
        env["INTERESTLENS_EMBEDDER"] = "minilm-torch" if embedder == "torch" else "minilm"
        cmd = [
            cli_path(),
            "--store",
            str(path),
            "--llm",
            llm,
            "recommend",
            "--user",
            BENCH_USER,
            "-k",
            "10",
            "--json",
        ]
        proc, wall, rss = run_measured(cmd, env=env)
        details[variant] = {
            "cmd": cmd,
            "rc": proc.returncode,
            "wall_s": wall,
            "max_rss_mb": rss,
            "stderr_tail": proc.stderr[-2000:] if proc.returncode else "",
        }
        label = f"CLI recommend peak RSS (llm={llm}, embedder={embedder or 'default'})"
        ok = proc.returncode == 0 and rss < TARGET_MB
        res.add(
            label,
            rss,
            "MiB",
            f"< {TARGET_MB:.0f}",
            ok,
            note=f"wall {wall:.1f}s" + ("" if proc.returncode == 0 else f", exit {proc.returncode}"),
        )
    res.details = details
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/interestlens-bench"))
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    res = run(args.n, args.workdir)
    print(write_result(res, args.out))
    print_table([res])


if __name__ == "__main__":
    main()
