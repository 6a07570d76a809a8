"""Where interaction rows live: a SQLite file (embedded mode) or the Chroma server itself (server mode).

Both keep rows keyed by (user, item, ts), so re-ingesting a file is idempotent, and both keep a `generation`
token that changes on every write, so a reader (this process or another client of the same server) knows
when its cached matrices are stale. Embedded mode uses SQLite because 100k rows are milliseconds there and
minutes of Chroma upserts; server mode pays that price once so every client of one server sees the same
behaviour (popularity, co-occurrence, EASE, feedback), which a file on each client cannot give.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from interestlens.agent.errors import StoreError
from interestlens.stores.purge import open_user_data_collection

Row = tuple[str, str, float, str]  # user_id, item_id, value, ts ('' when unknown)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS interactions (
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    value REAL NOT NULL,
    ts TEXT NOT NULL,            -- ISO timestamp or '' when unknown (NULL would defeat the primary key)
    PRIMARY KEY (user_id, item_id, ts)
);
CREATE INDEX IF NOT EXISTS interactions_item ON interactions(item_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('generation', 0);
"""


class InteractionRows(Protocol):
    """The row storage a BehaviourStore computes its signals from."""

    location: str

    def insert(self, rows: Sequence[Row]) -> int: ...  # how many were new
    def delete_users(self, user_ids: Sequence[str], *, purge: bool) -> int: ...
    def delete_row(self, user_id: str, item_id: str, ts: str) -> int: ...
    def count(self, user_id: str | None = None) -> int: ...
    def user_rows(self, user_id: str) -> list[tuple[str, float, str]]: ...  # (item, value, ts), oldest first
    def positive_pairs(self) -> list[tuple[str, str]]: ...  # distinct (user, item) with value > 0
    def all_rows(self) -> Iterator[Row]: ...
    def generation(self) -> str: ...
    def close(self) -> None: ...


class SqliteInteractions:
    """Rows in a local SQLite file (WAL journal, deleted rows zeroed)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA secure_delete=ON")  # deleted rows are zeroed, not left in free pages
            self._conn.executescript(_SCHEMA)
            self._conn.commit()
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open interaction store {self.path}: {e}") from e
        self._lock = threading.RLock()

    def insert(self, rows: Sequence[Row]) -> int:
        with self._lock:
            try:
                with self._conn:
                    before = self.count()
                    self._conn.executemany(
                        "INSERT INTO interactions(user_id, item_id, value, ts) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT(user_id, item_id, ts) DO UPDATE SET value = excluded.value",
                        rows,
                    )
                    self._bump()
                    return self.count() - before
            except sqlite3.Error as e:
                raise StoreError(f"cannot write interactions to {self.path}: {e}") from e

    def delete_users(self, user_ids: Sequence[str], *, purge: bool) -> int:
        """`purge` also empties SQLite's WAL file, which still holds the pages as they were."""
        with self._lock:
            with self._conn:
                cur = self._conn.executemany(
                    "DELETE FROM interactions WHERE user_id = ?", [(u,) for u in user_ids]
                )
                if cur.rowcount > 0:  # an unchanged generation keeps every reader's matrices (and EASE) valid
                    self._bump()
            if purge:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return cur.rowcount

    def delete_row(self, user_id: str, item_id: str, ts: str) -> int:
        with self._lock, self._conn:
            cur = self._conn.execute(
                "DELETE FROM interactions WHERE user_id = ? AND item_id = ? AND ts = ?", (user_id, item_id, ts)
            )
            if cur.rowcount > 0:
                self._bump()
            return cur.rowcount

    def _bump(self) -> None:
        self._conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")

    def count(self, user_id: str | None = None) -> int:
        with self._lock:
            if user_id is None:
                return self._conn.execute("SELECT COUNT(*) FROM interactions").fetchone()[0]
            return self._conn.execute(
                "SELECT COUNT(*) FROM interactions WHERE user_id = ?", (user_id,)
            ).fetchone()[0]

    def user_rows(self, user_id: str) -> list[tuple[str, float, str]]:
        with self._lock:
            return self._conn.execute(
                "SELECT item_id, value, ts FROM interactions WHERE user_id = ? ORDER BY ts, item_id", (user_id,)
            ).fetchall()

    def positive_pairs(self) -> list[tuple[str, str]]:
        with self._lock:
            return self._conn.execute(
                "SELECT DISTINCT user_id, item_id FROM interactions WHERE value > 0"
            ).fetchall()

    def all_rows(self) -> Iterator[Row]:
        with self._lock:
            rows = self._conn.execute("SELECT user_id, item_id, value, ts FROM interactions").fetchall()
        yield from rows

    def generation(self) -> str:
        with self._lock:
            return str(self._conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


_GENERATION_ID = "~generation"
_DUMMY = [0.0]
_PAGE = 5000


class ChromaInteractions:
    """Rows as records of an `interactions` collection on the (shared) Chroma server.

    Record id `<user>/<hash of item and ts>` (the user-id prefix every user record has), metadata user_id,
    item_id, value, ts. The `~generation` record's document is rewritten with a fresh token after every write.
    """

    def __init__(self, client: Any, namespace: str = "", location: str = "") -> None:
        name = f"{namespace}_interactions" if namespace else "interactions"
        self.location = f"{location} ({name})"
        try:
            self.collection = open_user_data_collection(client, name)
        except Exception as e:
            raise StoreError(f"cannot open the interactions collection on {location}: {e}") from e
        self._lock = threading.RLock()
        try:
            self._max_batch = max(1, int(client.get_max_batch_size()))
        except Exception:
            self._max_batch = 1000

    @staticmethod
    def _id(row: Row) -> str:
        key = hashlib.sha256(f"{row[1]}\x00{row[3]}".encode()).hexdigest()[:32]
        return f"{row[0]}/{key}"

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StoreError:
            raise
        except Exception as e:
            raise StoreError(f"cannot {what} interactions on {self.location}: {e}") from e

    def _bump(self) -> None:
        self._call("write", self.collection.upsert, ids=[_GENERATION_ID], embeddings=[_DUMMY],
                   documents=[uuid.uuid4().hex])

    def insert(self, rows: Sequence[Row]) -> int:
        latest = {self._id(r): r for r in rows}  # the last row of a key wins, as in SQLite's upsert
        new = 0
        with self._lock:
            keys = list(latest)
            for start in range(0, len(keys), self._max_batch):
                chunk = keys[start : start + self._max_batch]
                existing = set(self._call("read", self.collection.get, ids=chunk, include=[])["ids"])
                new += len(chunk) - len(existing)
                self._call(
                    "write", self.collection.upsert, ids=chunk, embeddings=[_DUMMY] * len(chunk),
                    metadatas=[
                        {"user_id": latest[k][0], "item_id": latest[k][1], "value": latest[k][2], "ts": latest[k][3]}
                        for k in chunk
                    ],
                )
            self._bump()
        return new

    def delete_users(self, user_ids: Sequence[str], *, purge: bool) -> int:
        with self._lock:
            n = sum(self.count(u) for u in user_ids)
            if n:
                self._call("delete", self.collection.delete, where={"user_id": {"$in": list(user_ids)}})
                self._bump()
        return n

    def delete_row(self, user_id: str, item_id: str, ts: str) -> int:
        key = self._id((user_id, item_id, 0.0, ts))
        with self._lock:
            n = len(self._call("read", self.collection.get, ids=[key], include=[])["ids"])
            if n:
                self._call("delete", self.collection.delete, ids=[key])
                self._bump()
        return n

    def _pages(self, where: dict | None) -> Iterator[dict]:
        offset = 0
        while True:
            page = self._call(
                "read", self.collection.get, where=where, include=["metadatas"], limit=_PAGE, offset=offset
            )
            metas = page["metadatas"] or []
            yield from (m for m in metas if m and "item_id" in m)  # not the ~generation record
            if len(metas) < _PAGE:
                return
            offset += _PAGE

    def count(self, user_id: str | None = None) -> int:
        if user_id is None:
            return self._call("count", self.collection.count) - (1 if self.generation() else 0)
        return sum(1 for _ in self._pages({"user_id": user_id}))

    def user_rows(self, user_id: str) -> list[tuple[str, float, str]]:
        rows = [(m["item_id"], float(m["value"]), str(m["ts"])) for m in self._pages({"user_id": user_id})]
        return sorted(rows, key=lambda r: (r[2], r[0]))

    def positive_pairs(self) -> list[tuple[str, str]]:
        pairs = {(m["user_id"], m["item_id"]) for m in self._pages({"value": {"$gt": 0}})}
        return sorted(pairs)

    def all_rows(self) -> Iterator[Row]:
        for m in self._pages(None):
            yield (m["user_id"], m["item_id"], float(m["value"]), str(m["ts"]))

    def generation(self) -> str:
        docs = self._call("read", self.collection.get, ids=[_GENERATION_ID], include=["documents"])["documents"]
        return str(docs[0]) if docs else ""

    def close(self) -> None:
        return None
