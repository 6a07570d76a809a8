"""Making a deletion final on disk: Chroma's write-ahead log, SQLite free pages.

Chroma keeps every write in its log (`embeddings_queue`) until the collection's vector index has persisted
past it; by default that is every 1,000 records, so a forgotten user's text and ids stayed in the log.
Collections that hold user data therefore persist after every write (`USER_DATA_CONFIG`): Chroma then prunes
the log itself, right after each write. On a 20k-vector index, 100 upserts of 10 took 3.9 s with it and 4.1 s
without (`python -m bench.forget_purge`, 2 loaded cores; 7.2 vs 7.8 s in an earlier run): no measurable cost.

A delete is itself a log entry (it names the ids, which carry the user id), so `flush_logs` writes and
deletes one sentinel per collection to push the log past it. Deleted rows then survive only in SQLite's free
pages, which `vacuum_sqlite` rewrites. The log is never edited in place: that broke Chroma's compaction.

Left, upstream: the vector index (hnswlib in Chroma's Rust core) persists the unused tail of buffers it
allocated without zeroing, so `length.bin` / `data_level0.bin` can hold stray bytes of the process heap (in 3
of 3 runs, a fragment of a profile's JSON). glibc's M_PERTURB does not reach its thread cache, so that cannot
be scrubbed from here; tests/test_security_store.py checks every file but those two.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from interestlens.agent.errors import StoreError

# Persist the vector index after every write, so Chroma prunes its log at once (see the module docstring).
USER_DATA_SYNC_THRESHOLD = 2
USER_DATA_CONFIG: dict[str, Any] = {"hnsw": {"sync_threshold": USER_DATA_SYNC_THRESHOLD}}
_SENTINEL_ID = "~interestlens-log-flush"


def open_user_data_collection(
    client: Any, name: str, configuration: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None
) -> Any:
    """get_or_create a collection that holds user data; an older store's collection is switched over."""
    config = {"hnsw": {**(configuration or {}).get("hnsw", {}), **USER_DATA_CONFIG["hnsw"]}}
    col = client.get_or_create_collection(
        name, embedding_function=None, configuration=config, metadata=metadata or None
    )
    hnsw = (getattr(col, "configuration", None) or {}).get("hnsw") or {}
    if hnsw.get("sync_threshold") not in (None, USER_DATA_SYNC_THRESHOLD):
        col.modify(configuration=USER_DATA_CONFIG)
    return col


def flush_logs(collections: Iterable[Any], dim_of: dict[int, int]) -> None:
    """Push each collection's log past its last delete: one sentinel write and delete per collection.

    `dim_of` maps id(collection) to its vector dimension (the sentinel must match it)."""
    for col in collections:
        dim = dim_of.get(id(col), 1)
        try:
            for _ in range(USER_DATA_SYNC_THRESHOLD):
                col.upsert(ids=[_SENTINEL_ID], embeddings=[[1.0] + [0.0] * (dim - 1)])
                col.delete(ids=[_SENTINEL_ID])
        except StoreError:
            raise
        except Exception as e:
            raise StoreError(f"cannot flush the write-ahead log of {getattr(col, 'name', col)}: {e}") from e


def vacuum_sqlite(path: Path, timeout_s: float = 30.0) -> None:
    """Rewrite a SQLite file so deleted rows leave no bytes behind (free pages, the WAL file)."""
    if not path.exists():
        return
    try:
        con = sqlite3.connect(str(path), timeout=timeout_s)
        try:
            con.execute("VACUUM")
            if con.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            con.close()
    except sqlite3.Error as e:
        raise StoreError(f"cannot compact {path} after a delete: {e}") from e
