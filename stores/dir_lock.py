"""One process at a time per embedded store directory.

Chroma's in-memory vector index is not shared between processes, so a second process opening the same directory
would silently diverge: it gets a StoreError pointing at `chroma run` instead. Within one process several
ChromaStore objects share Chroma's cached System for the path, which is safe, so the lock is counted per process.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from interestlens.agent.errors import StoreError

LOCK_NAME = ".interestlens.lock"

# One file lock per embedded directory per process: several ChromaStore objects in one process share Chroma's
# cached System for that path, which is safe; only other processes must be kept out.
_DIR_LOCKS: dict[str, list[Any]] = {}  # resolved dir -> [FileLock, refcount]
_DIR_LOCKS_GUARD = threading.Lock()


def acquire_dir_lock(directory: Path, timeout: float) -> str:
    """Take (or share, within this process) the directory's lock; the key to release it with."""
    key = str(directory.resolve())
    with _DIR_LOCKS_GUARD:
        if key in _DIR_LOCKS:
            _DIR_LOCKS[key][1] += 1
            return key
        lock = FileLock(str(directory / LOCK_NAME), timeout=timeout)
        try:
            lock.acquire()
        except Timeout:
            raise StoreError(
                f"store directory {directory} is in use by another process. Embedded Chroma cannot be shared "
                f"between processes: run `chroma run --path {directory} --host 127.0.0.1 --port 8000` "
                f"and use "
                f"--store http://127.0.0.1:8000 (INTERESTLENS_STORE) in every process instead."
            ) from None
        _DIR_LOCKS[key] = [lock, 1]
        return key


def release_dir_lock(key: str) -> None:
    """Drop one holder of the lock; the file lock goes when the last one in this process does."""
    with _DIR_LOCKS_GUARD:
        entry = _DIR_LOCKS.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            entry[0].release()
            del _DIR_LOCKS[key]
