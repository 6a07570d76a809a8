"""Opening Chroma: a `chroma run` server with bounded requests, or an embedded directory held by this process.

Server mode probes the server with our own timeout first and bounds every later request, and its collections
turn transport failures (refused, reset, timed out) into StoreError. Embedded mode takes the directory lock
(stores/dir_lock.py) and repairs a vector index a kill left half-written (stores/index_repair.py) before anything
reads it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from interestlens.agent.errors import InvalidInputError, StoreError
from interestlens.stores.dir_lock import acquire_dir_lock, release_dir_lock
from interestlens.stores.index_repair import repair_indexes


def default_state_dir(url: str) -> Path:
    """Local directory for http-mode data Chroma does not hold (interactions), one per server address."""
    base = Path(os.environ.get("INTERESTLENS_STATE_DIR") or Path.home() / ".interestlens" / "state")
    parsed = urlparse(url)
    return base / f"{parsed.hostname or 'localhost'}-{parsed.port or 8000}"


def transport_error(location: str, e: Exception) -> StoreError:
    kind = "timed out" if isinstance(e, httpx.TimeoutException) else "failed"
    return StoreError(
        f"the Chroma server at {location} {kind} ({type(e).__name__}: {e or 'no answer'}): check that "
        "`chroma run` is up and reachable"
    )


class GuardedCollection:
    """A Chroma collection whose transport failures (refused, reset, timed out) surface as StoreError."""

    def __init__(self, collection: Any, location: str) -> None:
        self._collection = collection
        self._location = location

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._collection, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except httpx.TransportError as e:
                raise transport_error(self._location, e) from e

        return call


def _chroma_settings() -> Any:
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False)


def connect_server(location: str, timeout: httpx.Timeout) -> Any:
    """An HttpClient for http(s)://host:port whose every request is bounded by `timeout`."""
    import chromadb

    parsed = urlparse(location)
    if not parsed.hostname:
        raise InvalidInputError(f"store URL {location!r} has no host: use http://host:port")
    settings = _chroma_settings()
    try:
        # Our own bounded probe first: the Chroma client's constructor talks to the server with no
        # timeout at all, so a server that accepts and never answers would hang it.
        httpx.get(f"{location.rstrip('/')}/api/v2/heartbeat", timeout=timeout).raise_for_status()
        client = chromadb.HttpClient(
            host=parsed.hostname,
            port=parsed.port or (443 if parsed.scheme == "https" else 8000),
            ssl=parsed.scheme == "https",
            settings=settings,
        )
        session = getattr(getattr(client, "_server", None), "_session", None)
        if isinstance(session, httpx.Client):
            session.timeout = timeout  # every later request is bounded too
        client.heartbeat()
    except Exception as e:
        raise StoreError(
            f"cannot reach the Chroma server at {location}: {e}. Start one with "
            "`chroma run --path DIR --host 127.0.0.1 --port 8000`."
        ) from e
    return client


def open_directory(
    directory: Path,
    lock_timeout: float,
    vectors_for: Callable[[str, Sequence[str]], Sequence[Sequence[float]] | None],
) -> tuple[Any, str]:
    """(PersistentClient, directory-lock key) for an embedded store; `vectors_for` rebuilds a truncated index.

    The lock is released again when the store cannot be opened."""
    import chromadb

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create store directory {directory}: {e}") from e
    if not directory.is_dir():
        raise StoreError(f"store location {directory} is not a directory")
    settings = _chroma_settings()
    lock_key = acquire_dir_lock(directory, lock_timeout)
    try:
        client = repair_indexes(  # after a kill mid-write
            lambda: chromadb.PersistentClient(path=str(directory), settings=settings), directory, vectors_for
        )
    except Exception as e:
        release_dir_lock(lock_key)
        raise StoreError(f"cannot open Chroma store in {directory}: {e}") from e
    return client, lock_key
