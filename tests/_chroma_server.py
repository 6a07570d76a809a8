"""Start a real `chroma run` server on 127.0.0.1 for tests: `with running_chroma_server(dir) as url: ...`."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chroma_cli() -> str:
    """The `chroma` entry point installed next to this interpreter (the venv), else the one on PATH."""
    beside = Path(sys.executable).parent / "chroma"
    if beside.exists():
        return str(beside)
    found = shutil.which("chroma")
    if not found:
        raise RuntimeError("the `chroma` CLI is not installed (pip install chromadb)")
    return found


@contextlib.contextmanager
def running_chroma_server(path: str | os.PathLike[str], startup_timeout: float = 60.0) -> Iterator[str]:
    """Run `chroma run --path PATH` on a free port; yield http://127.0.0.1:PORT once its heartbeat answers."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = path.parent / f"chroma-server-{port}.log"
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [chroma_cli(), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"chroma server exited with {proc.returncode}: {log_path.read_text()[-2000:]}"
                )
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"chroma server not ready after {startup_timeout}s: {log_path.read_text()[-2000:]}"
                )
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
