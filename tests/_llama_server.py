"""Start a real llama_cpp OpenAI-compatible server on 127.0.0.1 for tests.

`running_llama_server(model_path, chat_format=None)` yields "http://127.0.0.1:PORT/v1". chat_format None uses
the GGUF's own template (forced tool calls and JSON mode work); "chatml-function-calling" lets a ChatML model
such as SmolLM2 answer tool_choice="auto" requests (agents that choose tools themselves).
The server runs through `python -m interestlens.agent.llm.llamacpp`, i.e. llama_cpp.server with the CPU
weight-repack workaround applied.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

STARTUP_TIMEOUT_S = 60.0
FUNCTION_CALLING_CHAT_FORMAT = "chatml-function-calling"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running_llama_server(
    model_path: str | Path, chat_format: str | None = None, n_ctx: int = 2048
) -> Iterator[str]:
    port = free_port()
    threads = max(1, (os.cpu_count() or 2) // 2)
    base_url = f"http://127.0.0.1:{port}/v1"
    cmd = [
        sys.executable,
        "-m",
        "interestlens.agent.llm.llamacpp",
        "--model",
        str(model_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--verbose",
        "False",
        # Half the cores for prompt and generation: all of them on a busy machine makes llama.cpp crawl.
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(threads),
    ]
    if chat_format:
        cmd += ["--chat_format", chat_format]
    with tempfile.NamedTemporaryFile("w+", prefix="llama-server-", suffix=".log", delete=False) as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not _ready(base_url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    tail = Path(log.name).read_text(errors="replace")[-4000:]
                    state = (
                        f"exited with {proc.returncode}" if proc.poll() is not None else "not ready in time"
                    )
                    raise RuntimeError(f"llama_cpp.server {state}: {' '.join(cmd)}\n{tail}")
                time.sleep(0.25)
            yield base_url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            Path(log.name).unlink(missing_ok=True)
