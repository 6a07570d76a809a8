"""`interestlens store copy SRC DST`: move a whole store between an embedded directory and a Chroma server.

Records are copied as they are stored (ids, vectors, documents, metadata), so profile generations, content
hashes and history order survive; interactions are copied row by row. The destination must be empty: a copy
never overwrites what is already there. Leases (transient write locks) are not copied.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from tqdm import tqdm

from interestlens.agent.errors import InvalidInputError, StoreError
from interestlens.stores.chroma_store import ChromaStore

_PAGE = 1000
_SKIPPED = {"leases"}  # transient: a lease names a writer process of the source


class StoreCopyReport(BaseModel):
    source: str
    destination: str
    records: dict[str, int]  # per collection, as copied (and then counted at the destination)
    interactions: int


def _copy_collection(src: Any, dst: Any, tick: Callable[[int], None]) -> int:
    offset = copied = 0
    while True:
        page = src.get(include=["embeddings", "documents", "metadatas"], limit=_PAGE, offset=offset)
        ids = page["ids"]
        if not ids:
            return copied
        kwargs: dict[str, Any] = {"ids": ids, "embeddings": page["embeddings"]}
        if page["documents"] is not None and any(d is not None for d in page["documents"]):
            kwargs["documents"] = page["documents"]
        if page["metadatas"] is not None and any(m for m in page["metadatas"]):
            kwargs["metadatas"] = page["metadatas"]
        dst.upsert(**kwargs)
        copied += len(ids)
        tick(len(ids))
        offset += len(ids)


def copy_store(src: ChromaStore, dst: ChromaStore, progress: bool = False) -> StoreCopyReport:
    """Copy every record of `src` into the empty store `dst`, then check the counts match."""
    if src.location == dst.location and src.namespace == dst.namespace:
        raise InvalidInputError("source and destination are the same store")
    src_cols, dst_cols = src.collections(), dst.collections()
    if dst.behaviour.count() or any(dst_cols[n].count() for n in dst_cols if n not in _SKIPPED):
        raise InvalidInputError(f"destination store {dst.location} is not empty: copy into a new store")
    names = [n for n in src_cols if n not in _SKIPPED]
    total = sum(src_cols[n].count() for n in names)
    bar = tqdm(total=total, desc="copy", unit="rec", disable=not progress)
    records: dict[str, int] = {}
    try:
        for name in names:
            records[name] = _copy_collection(src_cols[name], dst_cols[name], bar.update)
        rows = list(src.behaviour.rows.all_rows())
        interactions = dst.behaviour.rows.insert(rows) if rows else 0
    except StoreError:
        raise
    except Exception as e:
        raise StoreError(f"copy from {src.location} to {dst.location} failed: {e}") from e
    finally:
        bar.close()
        dst.catalog_written_directly()
    for name in names:
        if dst_cols[name].count() != records[name]:
            raise StoreError(f"copy check failed: {name} has {dst_cols[name].count()} of {records[name]} records")
    if dst.behaviour.count() != len(rows):
        raise StoreError(f"copy check failed: {dst.behaviour.count()} of {len(rows)} interactions")
    return StoreCopyReport(source=src.location, destination=dst.location, records=records, interactions=interactions)
