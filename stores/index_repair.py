"""Repair of a vector index that a killed process left half-written (embedded stores only).

User-data collections persist their HNSW index after every write (stores/purge.py), so a SIGKILL can land
while Chroma rewrites a segment's `index_metadata.pickle`; the file is then empty and every later read of that
collection fails ("Error deserializing pickle file"). The records themselves (ids, documents, metadata) are
intact in SQLite, and every vector of these collections can be rebuilt from them: a placeholder for records
looked up by id, the interest's own text for interest vectors. So on open, an empty index file's segment is
dropped and its collection's vectors are written again; nothing stored is lost.
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


def truncated_segments(directory: Path) -> dict[str, Path]:
    """Collection name -> segment folder, for every vector segment whose index metadata file is empty."""
    empty = {p.parent.name: p.parent for p in directory.glob(f"*/{_INDEX_FILE}") if p.stat().st_size == 0}
    if not empty:
        return {}
    db = sqlite3.connect(f"file:{directory / 'chroma.sqlite3'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT s.id, c.name FROM segments s JOIN collections c ON s.collection = c.id "
            f"WHERE s.id IN ({','.join('?' * len(empty))})",
            list(empty),
        ).fetchall()
    finally:
        db.close()
    return {name: empty[seg] for seg, name in rows}


def repair_truncated_indexes(
    client: Any, directory: Path, vectors_for: Callable[[str, Sequence[str]], Sequence[Sequence[float]] | None]
) -> list[str]:
    """Rebuild the vectors of each collection whose index a crash truncated; returns the collections repaired.

    `vectors_for(collection_name, documents)` gives the vectors to write back, or None when the collection's
    vectors cannot be rebuilt from its documents (its index is then left alone and the error stands)."""
    repaired = []
    for name, segment in truncated_segments(directory).items():
        col = client.get_collection(name)
        shutil.rmtree(segment)  # the half-written index: Chroma starts an empty one
        res = col.get(include=["documents", "metadatas"])
        ids, docs, metas = res["ids"], res["documents"] or [], res["metadatas"] or []
        if ids:
            vectors = vectors_for(name, docs)
            if vectors is None:
                continue
            col.delete(ids=ids)  # the records exist without vectors: add them again, whole
            col.add(ids=ids, embeddings=list(vectors), documents=docs, metadatas=metas)
        _log.warning("rebuilt the vector index of %s (%d records) after an interrupted write", name, len(ids))
        repaired.append(name)
    return repaired
