"""Repair of a vector index that a killed process left half-written (embedded stores only).

User-data collections persist their HNSW index after every write (stores/purge.py), so a SIGKILL can land
while Chroma rewrites a segment's `index_metadata.pickle`; the file is then empty and every later read of that
collection fails ("Error deserializing pickle file"). The records themselves (ids, documents, metadata) are
intact in SQLite, and every vector of these collections can be rebuilt from them: a placeholder for records
looked up by id, the interest's own text for interest vectors. So on open, an empty index file's segment is
dropped and its collection's vectors are written again; nothing stored is lost.

A kill can also leave index files that load but that Chroma's write-ahead log no longer applies to ("Failed to
apply logs to the hnsw segment writer" on the first read). So after that, every rebuildable collection is read
once; one that fails is rebuilt the same way, with a fresh client (the failed one keeps the broken index open).
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

_log = logging.getLogger(__name__)
_INDEX_FILE = "index_metadata.pickle"


def _vector_segment_names(directory: Path) -> dict[str, str]:
    """Segment id (its folder's name) -> collection name, for every vector segment, from Chroma's SQLite catalog."""
    db = sqlite3.connect(f"file:{directory / 'chroma.sqlite3'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT s.id, c.name FROM segments s JOIN collections c ON s.collection = c.id WHERE s.scope = 'VECTOR'"
        ).fetchall()
    finally:
        db.close()
    return dict(rows)


def truncated_segments(directory: Path) -> dict[str, Path]:
    """Collection name -> segment folder, for every vector segment whose index metadata file is empty."""
    empty = {p.parent.name: p.parent for p in directory.glob(f"*/{_INDEX_FILE}") if p.stat().st_size == 0}
    if not empty:
        return {}
    return {name: empty[seg] for seg, name in _vector_segment_names(directory).items() if seg in empty}


VectorsFor = Callable[[str, Sequence[str]], Sequence[Sequence[float]] | None]


def vector_segments(directory: Path, names: Sequence[str]) -> dict[str, Path]:
    """Collection name -> its vector segment's folder, for those of `names` that have one on disk."""
    wanted = set(names)
    return {name: directory / seg for seg, name in _vector_segment_names(directory).items()
            if name in wanted and (directory / seg).is_dir()}


def unreadable_collections(client: Any, vectors_for: VectorsFor) -> list[str]:
    """The rebuildable collections (vectors_for(name, []) is not None) whose first read fails inside Chroma."""
    from chromadb.errors import ChromaError

    broken = []
    for col in client.list_collections():
        name = col if isinstance(col, str) else col.name
        if vectors_for(name, []) is None:
            continue  # the catalog: not rebuilt here, so not probed either (its index can be large)
        try:
            client.get_collection(name).get(limit=1, include=[])
        except ChromaError as e:
            _log.warning("collection %s cannot be read (%s): rebuilding its vector index", name, e)
            broken.append(name)
    return broken


def repair_indexes(open_client: Callable[[], Any], directory: Path, vectors_for: VectorsFor) -> Any:
    """A client on `directory` whose rebuildable collections all read: truncated indexes and indexes the log no
    longer applies to are rebuilt (see the module docstring)."""
    client = open_client()
    repair_truncated_indexes(client, directory, vectors_for)
    broken = unreadable_collections(client, vectors_for)
    if not broken:
        return client
    segments = vector_segments(directory, broken)
    client.clear_system_cache()  # drops the cached system that holds the broken indexes open
    del client
    client = open_client()
    for name in broken:
        if name in segments:
            _rebuild(client, name, segments[name], vectors_for)
    return client


def repair_truncated_indexes(client: Any, directory: Path, vectors_for: VectorsFor) -> list[str]:
    """Rebuild the vectors of each collection whose index a crash truncated; returns the collections repaired.

    `vectors_for(collection_name, documents)` gives the vectors to write back, or None when the collection's
    vectors cannot be rebuilt from its documents (its index is then left alone and the error stands)."""
    return [name for name, segment in truncated_segments(directory).items()
            if _rebuild(client, name, segment, vectors_for)]


def _rebuild(client: Any, name: str, segment: Path, vectors_for: VectorsFor) -> bool:
    """Drop a collection's vector segment folder and write its records back with rebuilt vectors."""
    col = client.get_collection(name)
    shutil.rmtree(segment)  # the broken index: Chroma starts an empty one
    res = col.get(include=["documents", "metadatas"])
    ids, docs, metas = res["ids"], res["documents"] or [], res["metadatas"] or []
    if ids:
        vectors = vectors_for(name, docs)
        if vectors is None:
            return False
        col.delete(ids=ids)  # the records exist without vectors: add them again, whole
        col.add(ids=ids, embeddings=list(vectors), documents=docs, metadatas=metas)
    _log.warning("rebuilt the vector index of %s (%d records) after an interrupted write", name, len(ids))
    return True
