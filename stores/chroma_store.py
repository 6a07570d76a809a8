"""Chroma-backed store: catalog items, per-user interest profiles, user side data and behaviour.

Layout (collections use `embedding_function=None`; vectors always come from our Embedder):
- `items`      one record per catalog item, cosine space. Metadata = the item's Chroma-legal metadata (for
  `where` filters) + `_il_hash` (content hash, to skip unchanged items) + `_il_item` (full Item JSON, so
  reads round-trip exactly even for metadata Chroma cannot hold, e.g. empty lists).
- `interests`  one record per sub-interest, cosine space, embedding of "name: description"; metadata
  user_id, gen (storage generation), version (profile version), pos.
- `profiles`, `sources`, `llm_cache`, `last_results`: JSON documents keyed by user, with a 1-d dummy vector.

Side data lives in Chroma (not a local SQLite file) so it works unchanged against a `chroma run` server
shared by several processes, and so `delete_user` is verifiable by reading Chroma alone: every user record
carries `user_id` metadata. Interactions (stores/interaction_rows.py) go to SQLite in the store directory in
embedded mode, and to an `interactions` collection on the server in http mode, so clients agree.

Profile saves are crash-safe: the new interest records are written under a fresh generation id, then the
profile record (the commit point) is switched to that generation, then older generations are deleted.
Readers only follow the generation named by the profile record, so a kill at any point leaves the previous
or the new profile.

Embedded mode takes an exclusive file lock on the directory: Chroma's in-memory vector index is not shared
between processes, so a second process gets a StoreError pointing at `chroma run` instead of silently
diverging.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import numpy as np
from filelock import FileLock, Timeout
from pydantic import ValidationError
from tqdm import tqdm

from interestlens.agent.errors import InvalidInputError, StoreError, UnknownIdError
from interestlens.agent.models import (
    Interaction,
    InterestProfile,
    Item,
    RecommendationResult,
    SourceText,
    SubInterest,
    content_hash,
    interest_text,
)
from interestlens.agent.protocols import Embedder
from interestlens.stores.behaviour import BehaviourStore
from interestlens.stores.history import COLLECTION as HISTORY_COLLECTION
from interestlens.stores.ids import validate_item_id, validate_user_id
from interestlens.stores.index_repair import repair_truncated_indexes
from interestlens.stores.interaction_rows import ChromaInteractions
from interestlens.stores.purge import flush_logs, open_user_data_collection, vacuum_sqlite

_RESERVED_PREFIXES = ("_il_", "chroma:", "$", "#")
_INT64 = 2**63
_DUMMY = [0.0]  # vector for records that are looked up by id/metadata only
_LOCK_NAME = ".interestlens.lock"
_BEHAVIOUR_FILE = "interactions.sqlite3"
_log = logging.getLogger(__name__)
_PROFILE_READ_RETRIES = 5
# A Chroma server that stops answering must not hang the caller forever (seconds).
HTTP_CONNECT_TIMEOUT_S = 5.0
HTTP_TIMEOUT_S = 60.0
# Cross-process user lease (server mode): held for one read-merge-write, taken over only once expired.
LEASE_TTL_S = 60.0
LEASE_WAIT_S = 120.0

COLLECTIONS = ("items", "interests", "profiles", "sources", "llm_cache", "last_results", "leases")
USER_COLLECTIONS = ("interests", "profiles", "sources", "llm_cache", "last_results", "leases")


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


# One file lock per embedded directory per process: several ChromaStore objects in one process share Chroma's
# cached System for that path, which is safe; only other processes must be kept out.
_DIR_LOCKS: dict[str, list[Any]] = {}  # resolved dir -> [FileLock, refcount]
_DIR_LOCKS_GUARD = threading.Lock()


def _acquire_dir_lock(directory: Path, timeout: float) -> str:
    key = str(directory.resolve())
    with _DIR_LOCKS_GUARD:
        if key in _DIR_LOCKS:
            _DIR_LOCKS[key][1] += 1
            return key
        lock = FileLock(str(directory / _LOCK_NAME), timeout=timeout)
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


def _release_dir_lock(key: str) -> None:
    with _DIR_LOCKS_GUARD:
        entry = _DIR_LOCKS.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            entry[0].release()
            del _DIR_LOCKS[key]


def default_state_dir(url: str) -> Path:
    """Local directory for http-mode data Chroma does not hold (interactions), one per server address."""
    base = Path(os.environ.get("INTERESTLENS_STATE_DIR") or Path.home() / ".interestlens" / "state")
    parsed = urlparse(url)
    return base / f"{parsed.hostname or 'localhost'}-{parsed.port or 8000}"


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for it in items:
        batch.append(it)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _transport_error(location: str, e: Exception) -> StoreError:
    kind = "timed out" if isinstance(e, httpx.TimeoutException) else "failed"
    return StoreError(
        f"the Chroma server at {location} {kind} ({type(e).__name__}: {e or 'no answer'}): check that "
        "`chroma run` is up and reachable"
    )


class _GuardedCollection:
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
                raise _transport_error(self._location, e) from e

        return call


class ChromaStore:
    """See the module docstring. `location`: a directory (embedded) or http(s)://host:port (Chroma server)."""

    def __init__(
        self,
        location: str,
        embedder: Embedder,
        *,
        state_dir: str | Path | None = None,
        namespace: str = "",
        lock_timeout: float = 2.0,
    ) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        self.location = str(location)
        self.embedder = embedder
        self.namespace = namespace
        self._lock_key: str | None = None
        self._closed = False
        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        if self.location.startswith(("http://", "https://")):
            self.mode = "http"
            parsed = urlparse(self.location)
            if not parsed.hostname:
                raise InvalidInputError(f"store URL {self.location!r} has no host: use http://host:port")
            timeout = httpx.Timeout(HTTP_TIMEOUT_S, connect=HTTP_CONNECT_TIMEOUT_S)
            try:
                # Our own bounded probe first: the Chroma client's constructor talks to the server with no
                # timeout at all, so a server that accepts and never answers would hang it.
                httpx.get(f"{self.location.rstrip('/')}/api/v2/heartbeat", timeout=timeout).raise_for_status()
                self.client = chromadb.HttpClient(
                    host=parsed.hostname,
                    port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                    ssl=parsed.scheme == "https",
                    settings=chroma_settings,
                )
                session = getattr(getattr(self.client, "_server", None), "_session", None)
                if isinstance(session, httpx.Client):
                    session.timeout = timeout  # every later request is bounded too
                self.client.heartbeat()
            except Exception as e:
                raise StoreError(
                    f"cannot reach the Chroma server at {self.location}: {e}. Start one with "
                    "`chroma run --path DIR --host 127.0.0.1 --port 8000`."
                ) from e
            side_dir = Path(state_dir) if state_dir else default_state_dir(self.location)
        else:
            self.mode = "embedded"
            directory = Path(self.location).expanduser()
            self._directory = directory
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot create store directory {directory}: {e}") from e
            if not directory.is_dir():
                raise StoreError(f"store location {directory} is not a directory")
            self._lock_key = _acquire_dir_lock(directory, lock_timeout)
            try:
                self.client = chromadb.PersistentClient(path=str(directory), settings=chroma_settings)
                repair_truncated_indexes(self.client, directory, self._rebuilt_vectors)  # after a kill mid-write
            except Exception as e:
                _release_dir_lock(self._lock_key)
                raise StoreError(f"cannot open Chroma store in {directory}: {e}") from e
            side_dir = Path(state_dir) if state_dir else directory
        try:
            self._open_collections()
            local_file = side_dir / ((f"{namespace}." if namespace else "") + _BEHAVIOUR_FILE)
            if self.mode == "http":  # one truth: every client of the server sees the same behaviour
                self.behaviour = BehaviourStore(ChromaInteractions(self.client, namespace, self.location))
                if local_file.exists():
                    _log.warning(
                        "interactions in %s (kept by an older version on this client) are not on the server: "
                        "`interestlens store copy` moves a store with its interactions",
                        local_file,
                    )
            else:
                self.behaviour = BehaviourStore(local_file)
        except Exception:
            self.close()
            raise
        try:
            self._max_batch = max(1, int(self.client.get_max_batch_size()))
        except Exception:
            self._max_batch = 1000

    # -- setup -------------------------------------------------------------------------------------

    def _name(self, base: str) -> str:
        return f"{self.namespace}_{base}" if self.namespace else base

    def _open_collections(self) -> None:
        vec_meta = {"embedder": self.embedder.model_id, "dim": int(self.embedder.dim)}
        cosine = {"hnsw": {"space": "cosine", "ef_search": 200, "ef_construction": 200}}
        try:
            self._items = self.client.get_or_create_collection(
                self._name("items"), embedding_function=None, configuration=cosine, metadata=vec_meta
            )
            self._interests = open_user_data_collection(self.client, self._name("interests"), cosine, vec_meta)
            self._profiles, self._sources, self._cache, self._results, self._leases = (
                open_user_data_collection(self.client, self._name(n))
                for n in ("profiles", "sources", "llm_cache", "last_results", "leases")
            )
            # stores/history.py writes it; opened here too so purge and copy see every user collection
            self._history = open_user_data_collection(self.client, self._name(HISTORY_COLLECTION))
        except httpx.TransportError as e:
            raise _transport_error(self.location, e) from e
        except Exception as e:
            raise StoreError(f"cannot open collections in {self.location}: {e}") from e
        for col in (self._items, self._interests):
            stored = col.metadata or {}
            if stored.get("embedder") != vec_meta["embedder"] or stored.get("dim") != vec_meta["dim"]:
                raise StoreError(
                    f"store {self.location} was built with embedder {stored.get('embedder')!r} "
                    f"(dim {stored.get('dim')}), not {vec_meta['embedder']!r} (dim {vec_meta['dim']}): "
                    "use the same embedder or a new store"
                )
        if self.mode == "http":
            self._items, self._interests, self._profiles, self._sources, self._cache, self._results = (
                _GuardedCollection(c, self.location)
                for c in (self._items, self._interests, self._profiles, self._sources, self._cache, self._results)
            )
            self._leases = _GuardedCollection(self._leases, self.location)
            self._history = _GuardedCollection(self._history, self.location)

    def collections(self) -> dict[str, Any]:
        """The raw Chroma collections by logical name (for inspection and tests)."""
        return {
            "items": self._items,
            "interests": self._interests,
            "profiles": self._profiles,
            "sources": self._sources,
            "llm_cache": self._cache,
            "last_results": self._results,
            "leases": self._leases,
            "history": self._history,
        }

    def _rebuilt_vectors(self, collection: str, documents: Sequence[str]) -> list[Any] | None:
        """The vectors of a user-data collection, rebuilt from its documents (index repair); None for items."""
        if collection == self._name("interests"):
            return list(self._embed([interest_text(SubInterest.model_validate_json(d)) for d in documents]))
        user_data = ("profiles", "sources", "llm_cache", "last_results", "leases", HISTORY_COLLECTION)
        if collection in {self._name(n) for n in user_data}:
            return [_DUMMY] * len(documents)
        return None  # the catalog: `catalog add` rebuilds it from the catalog file

    def _embed(self, texts: list[str]) -> np.ndarray:
        vecs = np.asarray(self.embedder.embed(texts), dtype=np.float32)
        if vecs.shape != (len(texts), self.embedder.dim):
            raise StoreError(f"embedder returned shape {vecs.shape}, expected ({len(texts)}, {self.embedder.dim})")
        return vecs

    # -- items -------------------------------------------------------------------------------------

    def upsert_items(self, items: Iterable[Item | dict], batch_size: int = 256, progress: bool = False) -> int:
        """Add new items, update changed ones; unchanged ones (same content hash) are not re-embedded.

        Returns how many items were written. Each batch is validated before it is written, so an
        interrupted or failing ingest leaves complete earlier batches and can simply be re-run.
        """
        if batch_size < 1:
            raise InvalidInputError("batch_size must be at least 1")
        batch_size = min(batch_size, self._max_batch)
        total = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
        written = 0
        position = 0
        with tqdm(total=total, unit="item", desc="ingest", disable=not progress) as bar:
            for raw_batch in _batched(items, batch_size):
                batch: dict[str, Item] = {}
                for raw in raw_batch:
                    position += 1
                    item = self._coerce_item(raw, position)
                    batch[item.id] = item  # last wins within a batch
                written += self._write_items(list(batch.values()))
                bar.update(len(raw_batch))
        return written

    @staticmethod
    def _coerce_item(raw: Item | dict, position: int) -> Item:
        if isinstance(raw, Item):
            return raw
        try:
            return Item.model_validate(raw)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err.get("loc", ())) or "item"
            raise InvalidInputError(f"item #{position}: {where}: {err['msg']}") from e

    def _write_items(self, items: list[Item]) -> int:
        hashes = {it.id: it.content_hash() for it in items}
        existing = self._items.get(ids=list(hashes), include=["metadatas"])
        known = {
            i: (m or {}).get("_il_hash") for i, m in zip(existing["ids"], existing["metadatas"] or [], strict=True)
        }
        todo = [it for it in items if known.get(it.id) != hashes[it.id]]
        if not todo:
            return 0
        vecs = self._embed([item_embedding_text(it) for it in todo])
        metadatas = [
            {**flatten_metadata(it.metadata), "_il_hash": hashes[it.id], "_il_item": it.model_dump_json()}
            for it in todo
        ]
        try:
            self._items.upsert(
                ids=[it.id for it in todo],
                embeddings=vecs,
                metadatas=metadatas,  # type: ignore[arg-type]
                documents=[it.text for it in todo],
            )
        except Exception as e:
            raise StoreError(f"cannot write items: {e}") from e
        return len(todo)

    def get_items(self, ids: Sequence[str]) -> list[Item]:
        """Items in the order asked; unknown ids are skipped."""
        ids = [i for i in dict.fromkeys(ids) if isinstance(i, str) and i]
        if not ids:
            return []
        found: dict[str, Item] = {}
        for chunk in _batched(ids, self._max_batch):
            res = self._items.get(ids=chunk, include=["metadatas"])
            for i, m in zip(res["ids"], res["metadatas"] or [], strict=True):
                found[i] = Item.model_validate_json(m["_il_item"])
        return [found[i] for i in ids if i in found]

    def get_item(self, item_id: str) -> Item:
        validate_item_id(item_id)
        items = self.get_items([item_id])
        if not items:
            raise UnknownIdError(f"unknown item id {item_id!r}")
        return items[0]

    def count_items(self) -> int:
        return self._items.count()

    def iter_items(self, batch_size: int = 1000) -> Iterator[Item]:
        offset = 0
        while True:
            res = self._items.get(limit=batch_size, offset=offset, include=["metadatas"])
            if not res["ids"]:
                return
            for m in res["metadatas"] or []:
                yield Item.model_validate_json(m["_il_item"])
            offset += len(res["ids"])

    def item_ids(self) -> list[str]:
        return list(self._items.get(include=[])["ids"])

    def item_embeddings(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        ids = [i for i in dict.fromkeys(ids) if isinstance(i, str) and i]
        out: dict[str, np.ndarray] = {}
        for chunk in _batched(ids, self._max_batch):
            res = self._items.get(ids=chunk, include=["embeddings"])
            for i, e in zip(res["ids"], res["embeddings"] if res["embeddings"] is not None else [], strict=True):
                out[i] = np.asarray(e, dtype=np.float32)
        return out

    def query_items(self, embeddings: np.ndarray, n: int, where: dict | None = None) -> list[list[tuple[str, float]]]:
        """Nearest items per query row as (item_id, cosine similarity), best first; `where`: Chroma filter."""
        q = np.asarray(embeddings, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.embedder.dim:
            raise InvalidInputError(f"query embeddings must have shape (n, {self.embedder.dim}), got {q.shape}")
        if q.shape[0] == 0:
            return []
        if not np.all(np.isfinite(q)):
            raise InvalidInputError("query embeddings contain NaN or infinity")
        count = self._items.count()
        if n <= 0 or count == 0:
            return [[] for _ in range(q.shape[0])]
        try:
            res = self._items.query(
                query_embeddings=q, n_results=min(n, count), where=where or None, include=["distances"]
            )
        except ValueError as e:
            raise InvalidInputError(f"invalid where filter {where!r}: {e}") from e
        except Exception as e:
            if "where" in str(e).lower() or "operator" in str(e).lower():
                raise InvalidInputError(f"invalid where filter {where!r}: {e}") from e
            raise StoreError(f"item query failed: {e}") from e
        return [
            [(i, 1.0 - float(d)) for i, d in zip(ids, dists, strict=True)]
            for ids, dists in zip(res["ids"], res["distances"] or [], strict=True)
        ]

    # -- profiles ----------------------------------------------------------------------------------

    def save_profile(self, profile: InterestProfile) -> None:
        """Crash-safe replace of the user's profile (see module docstring for the write order)."""
        uid = validate_user_id(profile.user_id)
        interests = profile.interests
        vecs = self._embed([interest_text(i) for i in interests]) if interests else None
        gen = uuid.uuid4().hex
        ids = [f"{uid}/{gen}/{pos}" for pos in range(len(interests))]
        metadatas = [
            {
                "user_id": uid,
                "gen": gen,
                "version": profile.version,
                "pos": pos,
                "interest_id": it.id,
                "name": it.name,
                "polarity": it.polarity.value,
                "origin": it.origin.value,
                "muted": it.muted,
                "weight": float(it.weight),
            }
            for pos, it in enumerate(interests)
        ]
        try:
            for s in range(0, len(ids), self._max_batch):
                e = s + self._max_batch
                self._interests.upsert(
                    ids=ids[s:e],
                    embeddings=vecs[s:e],
                    metadatas=metadatas[s:e],  # type: ignore[index,arg-type]
                    documents=[it.model_dump_json() for it in interests[s:e]],
                )
            self._profiles.upsert(  # the commit point
                ids=[uid],
                embeddings=[_DUMMY],
                metadatas=[{"user_id": uid, "gen": gen, "version": profile.version, "n_interests": len(ids)}],
                documents=[profile.model_dump_json(exclude={"interests"})],
            )
            # Only superseded generations (same or older version, not ours): never "all but mine", which
            # would delete what another process has just committed on a shared server.
            self._interests.delete(
                where={"$and": [{"user_id": uid}, {"gen": {"$ne": gen}}, {"version": {"$lte": profile.version}}]}
            )
        except StoreError:
            raise
        except Exception as e:
            raise StoreError(f"cannot save the profile of {uid}: {e}") from e

    def _current(self, uid: str, include: list[str]) -> tuple[dict, dict] | None:
        """(profile record, interest records of its generation), retried if a concurrent save moved on."""
        for _ in range(_PROFILE_READ_RETRIES):
            rec = self._profiles.get(ids=[uid], include=["documents", "metadatas"])
            if not rec["ids"]:
                return None
            meta = rec["metadatas"][0]
            res = self._interests.get(where={"$and": [{"user_id": uid}, {"gen": meta["gen"]}]}, include=include)
            if len(res["ids"]) == meta["n_interests"]:
                return {"document": rec["documents"][0], "metadata": meta}, res
            time.sleep(0.05)
        raise StoreError(f"the stored profile of {uid} is incomplete (a concurrent save, or a damaged store)")

    def has_profile(self, user_id: str) -> bool:
        uid = validate_user_id(user_id)
        return bool(self._profiles.get(ids=[uid], include=[])["ids"])

    @contextlib.contextmanager
    def user_lease(self, user_id: str) -> Iterator[None]:
        """Exclusive right to read-merge-write this user's profile, across every process sharing the server.

        Chroma has no compare-and-set, but `add` of an existing id is ignored: the first `add` of the lease
        record wins and everyone reads back who holds it. A holder that died is taken over after LEASE_TTL_S.
        Embedded mode needs none: the directory lock already keeps other processes out.
        """
        uid = validate_user_id(user_id)
        if self.mode != "http":
            yield
            return
        token = uuid.uuid4().hex
        deadline = time.monotonic() + LEASE_WAIT_S
        delay = 0.01
        while True:
            doc = json.dumps({"token": token, "expires": time.time() + LEASE_TTL_S})
            self._leases.add(ids=[uid], embeddings=[_DUMMY], metadatas=[{"user_id": uid}], documents=[doc])
            held = self._leases.get(ids=[uid], include=["documents"])
            if held["ids"]:
                holder = json.loads(held["documents"][0])
                if holder.get("token") == token:
                    break
                if float(holder.get("expires", 0)) < time.time():
                    self._leases.delete(ids=[uid])  # its holder died mid-update
                    continue
            if time.monotonic() > deadline:
                raise StoreError(f"timed out waiting for another process to finish updating user {uid}")
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
        try:
            yield
        finally:
            held = self._leases.get(ids=[uid], include=["documents"])
            if held["ids"] and json.loads(held["documents"][0]).get("token") == token:
                self._leases.delete(ids=[uid])

    def load_profile(self, user_id: str) -> InterestProfile | None:
        uid = validate_user_id(user_id)
        cur = self._current(uid, ["documents", "metadatas"])
        if cur is None:
            return None
        rec, res = cur
        order = sorted(range(len(res["ids"])), key=lambda k: res["metadatas"][k]["pos"])
        data = json.loads(rec["document"])
        data["interests"] = [json.loads(res["documents"][k]) for k in order]
        return InterestProfile.model_validate(data)

    def interest_embeddings(self, user_id: str) -> dict[str, np.ndarray]:
        uid = validate_user_id(user_id)
        cur = self._current(uid, ["metadatas", "embeddings"])
        if cur is None:
            return {}
        _, res = cur
        embs = res["embeddings"] if res["embeddings"] is not None else []
        return {m["interest_id"]: np.asarray(e, dtype=np.float32) for m, e in zip(res["metadatas"], embs, strict=True)}

    def list_users(self) -> list[str]:
        """Users that have a saved profile."""
        return sorted(self._profiles.get(include=[])["ids"])

    def all_interests(self) -> list[tuple[str, SubInterest, np.ndarray]]:
        """(user_id, interest, embedding) for every committed interest of every user."""
        profiles = self._profiles.get(include=["metadatas"])
        gens = {uid: m["gen"] for uid, m in zip(profiles["ids"], profiles["metadatas"] or [], strict=True)}
        res = self._interests.get(include=["documents", "metadatas", "embeddings"])
        embs = res["embeddings"] if res["embeddings"] is not None else []
        rows = [
            (m["user_id"], m["pos"], d, e)
            for m, d, e in zip(res["metadatas"] or [], res["documents"] or [], embs, strict=True)
            if gens.get(m["user_id"]) == m["gen"]
        ]
        rows.sort(key=lambda r: (r[0], r[1]))
        return [(u, SubInterest.model_validate_json(d), np.asarray(e, dtype=np.float32)) for u, _, d, e in rows]

    # -- user side data ----------------------------------------------------------------------------

    def add_sources(self, user_id: str, sources: list[SourceText]) -> None:
        """Store user texts (evidence targets). Sources already stored (same id) are left as they are."""
        uid = validate_user_id(user_id)
        if not all(isinstance(s, SourceText) for s in sources):
            raise InvalidInputError("add_sources expects SourceText objects")
        unique = {f"{uid}/{s.id}": s for s in sources}
        if not unique:
            return
        existing = set(self._sources.get(ids=list(unique), include=[])["ids"])
        new = [(rid, s) for rid, s in unique.items() if rid not in existing]
        if not new:
            return
        seq = time.time_ns()
        try:
            self._sources.upsert(
                ids=[rid for rid, _ in new],
                embeddings=[_DUMMY] * len(new),
                metadatas=[{"user_id": uid, "seq": seq + k} for k in range(len(new))],
                documents=[s.model_dump_json() for _, s in new],
            )
        except Exception as e:
            raise StoreError(f"cannot save sources of {uid}: {e}") from e

    def get_sources(self, user_id: str) -> list[SourceText]:
        """The user's texts in the order they were added."""
        uid = validate_user_id(user_id)
        res = self._sources.get(where={"user_id": uid}, include=["documents", "metadatas"])
        rows = sorted(zip(res["metadatas"] or [], res["documents"] or [], strict=True), key=lambda r: r[0]["seq"])
        return [SourceText.model_validate_json(d) for _, d in rows]

    def _cache_id(self, uid: str, key: str) -> str:
        return f"{uid}/{content_hash(key, length=32)}"

    def cache_get(self, user_id: str, key: str) -> dict | None:
        uid = validate_user_id(user_id)
        res = self._cache.get(ids=[self._cache_id(uid, key)], include=["documents"])
        if not res["ids"]:
            return None
        record = json.loads(res["documents"][0])
        return record["value"] if record.get("key") == key else None

    def cache_put(self, user_id: str, key: str, value: dict) -> None:
        uid = validate_user_id(user_id)
        try:
            doc = json.dumps({"key": key, "value": value})
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"cache value is not JSON-serialisable: {e}") from e
        self._cache.upsert(
            ids=[self._cache_id(uid, key)], embeddings=[_DUMMY], metadatas=[{"user_id": uid}], documents=[doc]
        )

    def save_last_result(self, user_id: str, result: RecommendationResult) -> None:
        uid = validate_user_id(user_id)
        self._results.upsert(
            ids=[uid], embeddings=[_DUMMY], metadatas=[{"user_id": uid}], documents=[result.model_dump_json()]
        )

    def load_last_result(self, user_id: str) -> RecommendationResult | None:
        uid = validate_user_id(user_id)
        res = self._results.get(ids=[uid], include=["documents"])
        return RecommendationResult.model_validate_json(res["documents"][0]) if res["ids"] else None

    # -- behaviour ---------------------------------------------------------------------------------

    def add_interactions(self, interactions: Iterable[Interaction | dict]) -> int:
        return self.behaviour.add(interactions)

    def popularity_scores(self) -> dict[str, float]:
        return self.behaviour.popularity_scores()

    def cooccurrence_scores(
        self, seed_item_ids: Sequence[str], exclude: set[str] | frozenset[str] = frozenset(), n: int = 200
    ) -> dict[str, float]:
        return self.behaviour.cooccurrence_scores(seed_item_ids, exclude, n)

    def ease_scores(
        self, seed_item_ids: Sequence[str], exclude: set[str] | frozenset[str] = frozenset(), n: int = 200
    ) -> dict[str, float]:
        return self.behaviour.ease_scores(seed_item_ids, exclude, n)

    def user_interacted_items(self, user_id: str) -> list[str]:
        return self.behaviour.user_items(validate_user_id(user_id))

    # -- lifecycle ---------------------------------------------------------------------------------

    def delete_user(self, user_id: str, *, purge: bool = True) -> None:
        """Remove every record of the user. The profile goes first, so a crash mid-way hides the rest.

        `purge` also removes the deleted bytes from disk (`purge_deleted`); temporary users of an evaluation
        skip it, as compaction rewrites the whole file."""
        uid = validate_user_id(user_id)
        try:
            self._profiles.delete(ids=[uid])
            for col in (self._interests, self._sources, self._cache, self._results, self._profiles, self._leases):
                col.delete(where={"user_id": uid})
        except StoreError:
            raise
        except Exception as e:
            raise StoreError(f"cannot delete user {uid}: {e}") from e
        self.behaviour.delete_user(uid, purge=purge)
        if purge:
            self.purge_deleted()

    def purge_deleted(self) -> None:
        """Leave no bytes of deleted records on disk (stores/purge.py): flush Chroma's log, compact its file.

        Server mode flushes the log (Chroma prunes it); the server's own SQLite file is the operator's to
        compact (`chroma utils vacuum --path DIR`), as a client cannot reach it."""
        user_cols = [c for name, c in self.collections().items() if name != "items"]
        rows = getattr(self.behaviour.rows, "collection", None)  # server mode keeps interactions in Chroma
        flush_logs([*user_cols, *([rows] if rows is not None else [])], {id(self._interests): int(self.embedder.dim)})
        if self.mode == "embedded":
            vacuum_sqlite(self._directory / "chroma.sqlite3")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        behaviour = getattr(self, "behaviour", None)
        if behaviour is not None:
            behaviour.close()
        client = getattr(self, "client", None)
        if client is not None:
            with contextlib.suppress(Exception):  # best effort: the lock release below must still happen
                client.close()
        if self._lock_key is not None:
            _release_dir_lock(self._lock_key)
            self._lock_key = None

    def __enter__(self) -> ChromaStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- catalog management and user export (helper D, issue 13) ----------------------------------------

    def list_items(self, limit: int = 20, offset: int = 0, where: dict | None = None) -> tuple[list[Item], int]:
        """A page of items (insertion order) matching `where` (a validated Chroma filter), and how many match."""
        try:
            matching = self._items.get(where=where or None, include=[])["ids"]
            total = len(matching)
            page = matching[offset : offset + limit]
        except ValueError as e:
            raise InvalidInputError(f"invalid where filter {where!r}: {e}") from e
        return self.get_items(page), total

    def delete_items(self, ids: Sequence[str]) -> list[str]:
        """Remove these items; returns the ids that existed (and are now gone)."""
        ids = [validate_item_id(i) for i in dict.fromkeys(ids)]
        existing = [
            i for chunk in _batched(ids, self._max_batch) for i in self._items.get(ids=chunk, include=[])["ids"]
        ]
        try:
            for chunk in _batched(existing, self._max_batch):
                self._items.delete(ids=chunk)
        except Exception as e:
            raise StoreError(f"cannot delete items: {e}") from e
        return existing

    def user_interactions(self, user_id: str) -> list[Interaction]:
        """Every interaction row of the user (for export)."""
        return self.behaviour.user_interactions(validate_user_id(user_id))

    def cache_records(self, user_id: str) -> list[dict]:
        """The user's decomposition-cache records ({key, value}), for export."""
        uid = validate_user_id(user_id)
        res = self._cache.get(where={"user_id": uid}, include=["documents"])
        return [json.loads(d) for d in res["documents"] or []]
