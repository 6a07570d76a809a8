"""Shared benchmark plumbing: figures with targets, percentiles, RSS, result files, the final table."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"
MOVIELENS_CATALOG = SHARED_DATASETS / "movielens" / "catalog.jsonl"
DEFAULT_OUT = REPO_ROOT / "bench" / "results"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class Figure(BaseModel):
    """One measured number next to its limit or target. `ok` is None when there is no target."""

    name: str
    value: float | None
    unit: str
    target: str = ""
    ok: bool | None = None
    note: str = ""


class BenchResult(BaseModel):
    bench: str
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    params: dict[str, Any] = Field(default_factory=dict)
    figures: list[Figure] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)
    machine: dict[str, Any] = Field(default_factory=dict)
    # The code and the knobs the figures came from, so an A/B is readable from the files alone. A bench that builds
    # its own Settings records them; otherwise write_result records the environment's.
    commit: str = ""
    settings: dict[str, Any] = Field(default_factory=dict)

    def add(
        self,
        name: str,
        value: float | None,
        unit: str,
        target: str = "",
        ok: bool | None = None,
        note: str = "",
    ) -> Figure:
        fig = Figure(name=name, value=value, unit=unit, target=target, ok=ok, note=note)
        self.figures.append(fig)
        return fig


def machine_info() -> dict[str, Any]:
    """What the figures were measured on: they only compare on the same machine and load."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except Exception:  # torch is optional for the ONNX path
        pass
    return info


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty list."""
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def latency_summary(ms: list[float]) -> dict[str, float]:
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "mean_ms": statistics.fmean(ms),
        "max_ms": max(ms),
    }


def time_calls(fn: Callable[[int], Any], n: int, warmup: int = 2, progress: str | None = None) -> list[float]:
    """Wall-clock milliseconds of fn(i) for i in range(n), after `warmup` untimed calls."""
    for i in range(warmup):
        fn(-1 - i)
    out: list[float] = []
    for i in progress_iter(range(n), progress):
        t = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t) * 1000.0)
    return out


def progress_iter(it: Any, desc: str | None, total: int | None = None) -> Iterator[Any]:
    if desc is None:
        yield from it
        return
    from tqdm import tqdm

    yield from tqdm(it, desc=desc, total=total, file=sys.stderr, leave=False)


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """`with stopwatch() as elapsed: ...; elapsed()` -> seconds since entry."""
    t = time.perf_counter()
    yield lambda: time.perf_counter() - t


def max_rss_mb_self() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_measured(
    cmd: list[str], env: dict[str, str] | None = None, timeout: float = 600
) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run cmd; return (completed, wall seconds, peak RSS MiB of the child). GNU time gives the exact child;
    without it the RUSAGE_CHILDREN maximum is used (an upper bound over every child waited for so far)."""
    gnu_time = Path("/usr/bin/time")
    t = time.perf_counter()
    if gnu_time.exists():
        proc = subprocess.run(
            [str(gnu_time), "-v", *cmd], capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
        wall = time.perf_counter() - t
        rss = next(
            (
                float(line.split(":")[1]) / 1024.0
                for line in proc.stderr.splitlines()
                if "Maximum resident set size" in line
            ),
            float("nan"),
        )
        return proc, wall, rss
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    wall = time.perf_counter() - t
    return proc, wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def write_result(result: BenchResult, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    result.machine = result.machine or machine_info()
    if not result.commit:
        from interestlens.evals.eval_results import git_commit

        result.commit = git_commit(REPO_ROOT)
    if not result.settings:
        from interestlens.agent.config import Settings

        result.settings = Settings().model_dump(mode="json")
    stamp = result.started_at.strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"{result.bench}-{stamp}.json"
    path.write_text(json.dumps(result.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
    return path


def fmt_value(fig: Figure) -> str:
    if fig.value is None:
        return "n/a"
    v = fig.value
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}" if abs(v) >= 1 else f"{v:.3f}"


def print_table(results: list[BenchResult]) -> None:
    """One row per figure: value, unit, target, pass/fail."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="interestlens benchmarks")
    for col in ("bench", "figure", "value", "unit", "target", "ok", "note"):
        table.add_column(col, overflow="fold")
    for res in results:
        for fig in res.figures:
            ok = "" if fig.ok is None else ("yes" if fig.ok else "NO")
            table.add_row(res.bench, fig.name, fmt_value(fig), fig.unit, fig.target, ok, fig.note)
    Console(stderr=False, width=160).print(table)


def ensure_importable() -> None:
    """`python bench/x.py` puts bench/ on sys.path, not the repo root: add it so `bench.*` imports work."""
    root = str(REPO_ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)
