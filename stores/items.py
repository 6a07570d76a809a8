"""The catalog: items in one cosine-space Chroma collection, and how an item becomes a record there.

A record's metadata is the item's Chroma-legal metadata (for `where` filters) + `_il_hash` (content hash, to
skip unchanged items) + `_il_item` (full Item JSON, so reads round-trip exactly even for metadata Chroma cannot
hold, e.g. empty lists). Its vector encodes `item_embedding_text`.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError
from tqdm import tqdm

from interestlens.agent.errors import InvalidInputError, StoreError, UnknownIdError
from interestlens.agent.models import Item
from interestlens.agent.protocols import Embedder
from interestlens.stores.ids import validate_item_id
from interestlens.stores.vectors import embed_checked

_RESERVED_PREFIXES = ("_il_", "chroma:", "$", "#")
_INT64 = 2**63


def item_embedding_text(item: Item) -> str:
    """What an item's vector encodes: its text, prefixed by the title unless the text contains it."""
    if item.title and item.title not in item.text:
        return f"{item.title}. {item.text}"
    return item.text


def with_metadata_text(item: Item, fields: Sequence[str]) -> Item:
    """The item with chosen metadata fields appended to its text ("Movielens genres: Comedy, Drama."), so that
    its document says what the title alone does not (ReDial's item text is a bare title). Fields already
    spelled out in the text, missing or empty are skipped; the item is returned unchanged when nothing is added.
    """
    parts: list[str] = []
    for name in fields:
        value = item.metadata.get(name)
        values = value if isinstance(value, list) else [value]
        shown = [str(v) for v in values if v is not None and str(v).strip() and not isinstance(v, dict | list)]
        if not shown:
            continue
        label = name.replace("_", " ").capitalize()
        if f"{label}:" in item.text:
            continue
        parts.append(f"{label}: {', '.join(shown)}.")
    if not parts:
        return item
    text = item.text.rstrip()
    sep = " " if text.endswith((".", "!", "?")) else ". " if text else ""
    return item.model_copy(update={"text": text + sep + " ".join(parts)})


def flatten_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """The subset of item metadata Chroma can store and filter on (scalars, non-empty homogeneous lists)."""
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or key.startswith(_RESERVED_PREFIXES):
            continue
        if _legal_scalar(value):
            out[key] = value
        elif (
            isinstance(value, list)
            and value
            and len({type(v) for v in value}) == 1
            and all(_legal_scalar(v) for v in value)
        ):
            out[key] = list(value)
    return out


def _legal_scalar(v: Any) -> bool:
    if isinstance(v, bool | str):
        return True
    if isinstance(v, int):
        return -_INT64 <= v < _INT64
    if isinstance(v, float):
        return math.isfinite(v)
    return False


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for it in items:
        batch.append(it)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# Up to this many items, a query scores every stored vector exactly (a 10,000 x 384 float32 matrix is 15 MB and
# one product takes ~2 ms): HNSW misses a few true neighbours (recall of the top 50 measured 0.997 on the MovieLens
# catalog) and which ones differs between two builds of the same catalog, since its graph is built by several
# threads (70 of 100 top-50 lists were identical across two builds). Above it, the ANN proposes and the exact
# score of the stored vectors orders what it proposed.
EXACT_SEARCH_MAX_ITEMS = 50_000
_ANN_OVERFETCH = 50  # fetched beyond n (and at least 2n) from the ANN before the exact re-scoring
_TOKEN_KEY = "il_catalog_token"  # in the collection's metadata: a new value on every catalog write


class CatalogEpoch:
    """How many catalog writes this process has made to one embedded store's items collection.

    Embedded mode: the directory lock keeps other processes out and every ItemCollection of the directory in this
    process shares one epoch, so an unchanged epoch means an unchanged catalog, and the cached vectors and count
    are checked without a Chroma call (the token and count reads were 5 round trips, ~8 ms, of every recommend).
    """

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def bump(self) -> None:
        with self._lock:
            self.value += 1


_EPOCHS: dict[str, CatalogEpoch] = {}
_EPOCHS_GUARD = threading.Lock()


def catalog_epoch(key: str) -> CatalogEpoch:
    """The epoch shared by every ItemCollection of one embedded items collection (`key`: directory and name)."""
    with _EPOCHS_GUARD:
        return _EPOCHS.setdefault(key, CatalogEpoch())


@dataclass(frozen=True)
class _Vectors:
    """Every item's stored vector and its inverse norm, rows in id order (a stable sort breaks ties by id)."""

    stamp: object  # the catalog token (shared server) or epoch (embedded) read before the vectors were
    count: int
    ids: list[str]
    row_of: dict[str, int]
    raw: np.ndarray  # (items, dim) float32, as stored
    inv_norm: np.ndarray  # (items,) float32; 1 for a zero vector

    def cosine(self, q: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """(queries, rows) cosine of the query rows against all items (or `rows`), without copying the matrix."""
        if rows is None:
            return (_unit(q) @ self.raw.T) * self.inv_norm
        return (_unit(q) @ self.raw[rows].T) * self.inv_norm[rows]


def _top_rows(sims: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n highest values, best first; equal values (to 1e-6) in index order."""
    n = min(n, len(sims))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    keys = -np.round(sims.astype(np.float64), 6)
    part = np.argpartition(keys, n - 1)[:n] if n < len(keys) else np.arange(len(keys))
    cut = keys[part].max()
    part = np.flatnonzero(keys <= cut)  # every row tied with the n-th, so ids decide among them
    return part[np.lexsort((part, keys[part]))][:n]


def _unit(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    norms = np.linalg.norm(m, axis=-1, keepdims=True)
    return m / np.where(norms == 0, 1.0, norms)


def _coerce_item(raw: Item | dict, position: int) -> Item:
    if isinstance(raw, Item):
        return raw
    try:
        return Item.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "item"
        raise InvalidInputError(f"item #{position}: {where}: {err['msg']}") from e


class ItemCollection:
    """The catalog's reads and writes on its Chroma collection; ChromaStore's item methods forward here.

    `max_batch`: the most records one Chroma call may carry (the client's limit). The embedder is passed per
    call, as it is the store's (and may be swapped on it). `epoch`: embedded mode's write counter (see
    `CatalogEpoch`); None on a shared server, where another process may write, so the token and count are read."""

    def __init__(
        self, collection: Any, max_batch: int, reopen: Callable[[], Any] | None = None,
        epoch: CatalogEpoch | None = None,
    ) -> None:
        self.collection = collection
        self.max_batch = max_batch
        # A fresh handle reads the catalog token another process may have written (http mode, a shared server).
        self._reopen = reopen
        self._epoch = epoch
        self._vectors: _Vectors | None = None
        self._counted: tuple[int, int] | None = None  # (epoch, count), embedded mode

    def _token(self) -> str | None:
        col = self._reopen() if self._reopen is not None else self.collection
        return (col.metadata or {}).get(_TOKEN_KEY)

    def _stamp(self) -> object:
        """What says the catalog is unchanged: the epoch (embedded, no Chroma call), else the token."""
        return ("epoch", self._epoch.value) if self._epoch is not None else self._token()

    def dropped(self) -> None:
        """Forget the cached vectors and count, in every ItemCollection of this catalog in this process: after a
        write here, or one that bypassed this class (store copy writes the raw collection)."""
        self._vectors = None
        self._counted = None
        if self._epoch is not None:
            self._epoch.bump()

    def _touch(self) -> None:
        """A new catalog token, so that every process's cached vectors are reloaded on its next query."""
        self.dropped()
        meta = {k: v for k, v in (self.collection.metadata or {}).items() if not k.startswith("hnsw:")}
        try:
            self.collection.modify(metadata={**meta, _TOKEN_KEY: uuid.uuid4().hex})
        except Exception as e:
            raise StoreError(f"cannot mark the catalog changed: {e}") from e

    def _all_vectors(self, count: int) -> _Vectors:
        stamp = self._stamp()  # read before the vectors, so a write while they load makes them stale
        v = self._vectors
        if v is not None and v.stamp == stamp and v.count == count:
            return v
        ids: list[str] = []
        rows: list[Any] = []
        for offset in range(0, count, self.max_batch):
            res = self.collection.get(include=["embeddings"], limit=self.max_batch, offset=offset)
            ids.extend(res["ids"])
            rows.extend(res["embeddings"] if res["embeddings"] is not None else [])
        order = sorted(range(len(ids)), key=ids.__getitem__)
        ids = [ids[k] for k in order]
        raw = np.asarray(rows, dtype=np.float32)[order] if rows else np.zeros((0, 0), np.float32)
        norms = np.linalg.norm(raw, axis=1) if rows else np.zeros(0, np.float32)
        inv_norm = (1.0 / np.where(norms == 0, 1.0, norms)).astype(np.float32)
        self._vectors = _Vectors(stamp, count, ids, {i: k for k, i in enumerate(ids)}, raw, inv_norm)
        return self._vectors

    def _valid_vectors(self) -> _Vectors | None:
        """The cached vectors if they are still the catalog's (no load: for reads that need only a few)."""
        v = self._vectors
        if v is None or v.stamp != self._stamp() or v.count != self.count():
            return None
        return v

    def upsert(self, items: Iterable[Item | dict], embedder: Embedder, batch_size: int, progress: bool) -> int:
        """Add new items, update changed ones; unchanged ones (same content hash) are not re-embedded.

        Returns how many items were written. Each batch is validated before it is written, so an
        interrupted or failing ingest leaves complete earlier batches and can simply be re-run.
        """
        if batch_size < 1:
            raise InvalidInputError("batch_size must be at least 1")
        batch_size = min(batch_size, self.max_batch)
        total = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
        written = 0
        position = 0
        with tqdm(total=total, unit="item", desc="ingest", disable=not progress) as bar:
            for raw_batch in _batched(items, batch_size):
                batch: dict[str, Item] = {}
                for raw in raw_batch:
                    position += 1
                    item = _coerce_item(raw, position)
                    batch[item.id] = item  # last wins within a batch
                written += self._write(list(batch.values()), embedder)
                bar.update(len(raw_batch))
        return written

    def _write(self, items: list[Item], embedder: Embedder) -> int:
        hashes = {it.id: it.content_hash() for it in items}
        existing = self.collection.get(ids=list(hashes), include=["metadatas"])
        known = {
            i: (m or {}).get("_il_hash") for i, m in zip(existing["ids"], existing["metadatas"] or [], strict=True)
        }
        todo = [it for it in items if known.get(it.id) != hashes[it.id]]
        if not todo:
            return 0
        vecs = embed_checked(embedder, [item_embedding_text(it) for it in todo])
        metadatas = [
            {**flatten_metadata(it.metadata), "_il_hash": hashes[it.id], "_il_item": it.model_dump_json()}
            for it in todo
        ]
        try:
            self.collection.upsert(
                ids=[it.id for it in todo],
                embeddings=vecs,
                metadatas=metadatas,  # type: ignore[arg-type]
                documents=[it.text for it in todo],
            )
        except Exception as e:
            self.dropped()  # a failed write may have written part of the batch
            raise StoreError(f"cannot write items: {e}") from e
        self._touch()
        return len(todo)

    def get(self, ids: Sequence[str]) -> list[Item]:
        """Items in the order asked; unknown ids are skipped."""
        ids = [i for i in dict.fromkeys(ids) if isinstance(i, str) and i]
        if not ids:
            return []
        found: dict[str, Item] = {}
        for chunk in _batched(ids, self.max_batch):
            res = self.collection.get(ids=chunk, include=["metadatas"])
            for i, m in zip(res["ids"], res["metadatas"] or [], strict=True):
                found[i] = Item.model_validate_json(m["_il_item"])
        return [found[i] for i in ids if i in found]

    def get_one(self, item_id: str) -> Item:
        """The item, or UnknownIdError."""
        validate_item_id(item_id)
        items = self.get([item_id])
        if not items:
            raise UnknownIdError(f"unknown item id {item_id!r}")
        return items[0]

    def count(self) -> int:
        if self._epoch is None:
            return self.collection.count()
        epoch = self._epoch.value  # read before counting: a write meanwhile leaves the count stale, not trusted
        counted = self._counted
        if counted is not None and counted[0] == epoch:
            return counted[1]
        n = self.collection.count()
        self._counted = (epoch, n)
        return n

    def iter(self, batch_size: int) -> Iterator[Item]:
        offset = 0
        while True:
            res = self.collection.get(limit=batch_size, offset=offset, include=["metadatas"])
            if not res["ids"]:
                return
            for m in res["metadatas"] or []:
                yield Item.model_validate_json(m["_il_item"])
            offset += len(res["ids"])

    def ids(self) -> list[str]:
        return list(self.collection.get(include=[])["ids"])

    def embeddings(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        ids = [i for i in dict.fromkeys(ids) if isinstance(i, str) and i]
        out: dict[str, np.ndarray] = {}
        v = self._valid_vectors() if ids else None
        if v is not None:  # the exact search's copy of the catalog: a dictionary read, not a Chroma round trip
            return {i: v.raw[v.row_of[i]].copy() for i in ids if i in v.row_of}
        for chunk in _batched(ids, self.max_batch):
            res = self.collection.get(ids=chunk, include=["embeddings"])
            for i, e in zip(res["ids"], res["embeddings"] if res["embeddings"] is not None else [], strict=True):
                out[i] = np.asarray(e, dtype=np.float32)
        return out

    def query(self, embeddings: np.ndarray, n: int, where: dict | None, dim: int) -> list[list[tuple[str, float]]]:
        """Nearest items per query row as (item_id, cosine similarity), best first; `where`: Chroma filter.
        `dim`: the embedder's dimension, which each row must have."""
        q = np.asarray(embeddings, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != dim:
            raise InvalidInputError(f"query embeddings must have shape (n, {dim}), got {q.shape}")
        if q.shape[0] == 0:
            return []
        if not np.all(np.isfinite(q)):
            raise InvalidInputError("query embeddings contain NaN or infinity")
        count = self.count()
        if n <= 0 or count == 0:
            return [[] for _ in range(q.shape[0])]
        try:
            if count <= EXACT_SEARCH_MAX_ITEMS:
                return self._exact_query(q, n, where, count)
            fetch = min(count, max(2 * n, n + _ANN_OVERFETCH))
            res = self.collection.query(
                query_embeddings=q, n_results=fetch, where=where or None, include=["embeddings"]
            )
        except ValueError as e:
            raise InvalidInputError(f"invalid where filter {where!r}: {e}") from e
        except Exception as e:
            if "where" in str(e).lower() or "operator" in str(e).lower():
                raise InvalidInputError(f"invalid where filter {where!r}: {e}") from e
            raise StoreError(f"item query failed: {e}") from e
        out = []
        found = res["embeddings"] if res["embeddings"] is not None else []
        for row, ids, vecs in zip(q, res["ids"], found, strict=True):
            ids = list(ids)
            order = sorted(range(len(ids)), key=ids.__getitem__)
            ids = [ids[k] for k in order]
            sims = _unit(np.asarray(vecs, dtype=np.float32).reshape(len(ids), -1)[order]) @ _unit(row)
            out.append([(ids[k], float(sims[k])) for k in _top_rows(sims, n)])
        return out

    def _exact_query(self, q: np.ndarray, n: int, where: dict | None, count: int) -> list[list[tuple[str, float]]]:
        v = self._all_vectors(count)
        if not where:
            sims = v.cosine(q)  # (queries, items)
            return [[(v.ids[k], float(s[k])) for k in _top_rows(s, n)] for s in sims]
        allowed = self.collection.get(where=where, include=[])["ids"]
        rows = np.sort(np.fromiter((v.row_of[i] for i in allowed if i in v.row_of), dtype=np.int64))
        if len(rows) == 0:
            return [[] for _ in range(q.shape[0])]
        sims = v.cosine(q, rows)  # (queries, matching rows)
        return [[(v.ids[rows[k]], float(s[k])) for k in _top_rows(s, n)] for s in sims]

    def page(self, limit: int, offset: int, where: dict | None) -> tuple[list[Item], int]:
        """A page of items (insertion order) matching `where` (a validated Chroma filter), and how many match."""
        try:
            matching = self.collection.get(where=where or None, include=[])["ids"]
            total = len(matching)
            page = matching[offset : offset + limit]
        except ValueError as e:
            raise InvalidInputError(f"invalid where filter {where!r}: {e}") from e
        return self.get(page), total

    def delete(self, ids: Sequence[str]) -> list[str]:
        """Remove these items; returns the ids that existed (and are now gone)."""
        ids = [validate_item_id(i) for i in dict.fromkeys(ids)]
        existing = [
            i for chunk in _batched(ids, self.max_batch) for i in self.collection.get(ids=chunk, include=[])["ids"]
        ]
        try:
            for chunk in _batched(existing, self.max_batch):
                self.collection.delete(ids=chunk)
        except Exception as e:
            self.dropped()  # some chunks may be gone
            raise StoreError(f"cannot delete items: {e}") from e
        if existing:
            self._touch()
        return existing
