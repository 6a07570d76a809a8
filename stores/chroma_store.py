"""Chroma-backed store: catalog items, per-user interest profiles, user side data and behaviour.

`ChromaStore` opens the Chroma client (embedded directory or `chroma run` server) and its collections, and
hands each concern to the module that owns it; collections use `embedding_function=None`, vectors always come
from our Embedder (stores/vectors.py):
- `items`                            the catalog, cosine space: stores/items.py (`ItemCollection`);
- `interests`, `profiles`            profiles, committed by generation so a kill mid-save leaves the previous
                                     or the new one: stores/profile_commits.py (`ProfileCommits`);
- `sources`, `llm_cache`, `last_results`   user side data: stores/side_data.py (`SideData`);
- `leases`                           the cross-process user lease of server mode: stores/user_lease.py;
- `history`                          written by stores/history.py, opened here so purge and copy see it.

Side data lives in Chroma (not a local SQLite file) so it works unchanged against a `chroma run` server
shared by several processes, and so `delete_user` is verifiable by reading Chroma alone: every user record
carries `user_id` metadata. Interactions (stores/interaction_rows.py) go to SQLite in the store directory in
embedded mode, and to an `interactions` collection on the server in http mode, so clients agree.

Embedded mode takes an exclusive file lock on the directory (stores/dir_lock.py): Chroma's in-memory vector
index is not shared between processes, so a second process gets a StoreError pointing at `chroma run` instead
of silently diverging. A vector index a kill left half-written is rebuilt on open (stores/index_repair.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from interestlens.agent.errors import StoreError
from interestlens.agent.models import (
    Interaction,
    InterestProfile,
    Item,
    RecommendationResult,
    SourceText,
    SubInterest,
    interest_text,
)
from interestlens.agent.protocols import Embedder
from interestlens.stores.behaviour import BehaviourStore
from interestlens.stores.chroma_client import (
    GuardedCollection,
    connect_server,
    default_state_dir,
    open_directory,
    transport_error,
)
from interestlens.stores.dir_lock import release_dir_lock
from interestlens.stores.history import COLLECTION as HISTORY_COLLECTION
from interestlens.stores.ids import validate_user_id
from interestlens.stores.interaction_rows import ChromaInteractions
from interestlens.stores.items import ItemCollection, catalog_epoch
from interestlens.stores.profile_commits import ProfileCommits
from interestlens.stores.purge import flush_logs, open_user_data_collection, vacuum_sqlite
from interestlens.stores.side_data import SideData
from interestlens.stores.user_lease import hold_lease
from interestlens.stores.vectors import DUMMY, embed_checked

_BEHAVIOUR_FILE = "interactions.sqlite3"
_log = logging.getLogger(__name__)
# A Chroma server that stops answering must not hang the caller forever (seconds).
HTTP_CONNECT_TIMEOUT_S = 5.0
HTTP_TIMEOUT_S = 60.0

# Collections read by id or metadata only: a placeholder vector each, all index repair has to write back.
_ID_ONLY_COLLECTIONS = ("profiles", "sources", "llm_cache", "last_results", "leases", HISTORY_COLLECTION)


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
        self.location = str(location)
        self.embedder = embedder
        self.namespace = namespace
        self._lock_key: str | None = None
        self._closed = False
        if self.location.startswith(("http://", "https://")):
            self.mode = "http"
            timeout = httpx.Timeout(HTTP_TIMEOUT_S, connect=HTTP_CONNECT_TIMEOUT_S)
            self.client = connect_server(self.location, timeout)
            side_dir = Path(state_dir) if state_dir else default_state_dir(self.location)
        else:
            self.mode = "embedded"
            self._directory = Path(self.location).expanduser()
            self.client, self._lock_key = open_directory(self._directory, lock_timeout, self._rebuilt_vectors)
            side_dir = Path(state_dir) if state_dir else self._directory
        try:
            cols = self._open_collections()
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
            max_batch = max(1, int(self.client.get_max_batch_size()))
        except Exception:
            max_batch = 1000
        items_name = self._name("items")
        # Embedded: only this process writes the directory, so its own write counter says when the catalog changed.
        epoch = catalog_epoch(f"{self._lock_key}\0{items_name}") if self._lock_key is not None else None
        self._catalog = ItemCollection(
            cols["items"], max_batch, reopen=lambda: self.client.get_collection(items_name, embedding_function=None),
            epoch=epoch,
        )
        self._profile_commits = ProfileCommits(cols["interests"], cols["profiles"], max_batch)
        self._side = SideData(cols["sources"], cols["llm_cache"], cols["last_results"])
        self._leases = cols["leases"]
        self._history = cols["history"]

    # -- setup -------------------------------------------------------------------------------------

    def _name(self, base: str) -> str:
        return f"{self.namespace}_{base}" if self.namespace else base

    def _open_collections(self) -> dict[str, Any]:
        """The collections by logical name, checked against the embedder (transport-guarded in http mode)."""
        vec_meta = {"embedder": self.embedder.model_id, "dim": int(self.embedder.dim)}
        cosine = {"hnsw": {"space": "cosine", "ef_search": 200, "ef_construction": 200}}
        try:
            cols = {
                "items": self.client.get_or_create_collection(
                    self._name("items"), embedding_function=None, configuration=cosine, metadata=vec_meta
                ),
                "interests": open_user_data_collection(self.client, self._name("interests"), cosine, vec_meta),
            }
            for name in ("profiles", "sources", "llm_cache", "last_results", "leases"):
                cols[name] = open_user_data_collection(self.client, self._name(name))
            # stores/history.py writes it; opened here too so purge and copy see every user collection
            cols["history"] = open_user_data_collection(self.client, self._name(HISTORY_COLLECTION))
        except httpx.TransportError as e:
            raise transport_error(self.location, e) from e
        except Exception as e:
            raise StoreError(f"cannot open collections in {self.location}: {e}") from e
        for col in (cols["items"], cols["interests"]):
            stored = col.metadata or {}
            if stored.get("embedder") != vec_meta["embedder"] or stored.get("dim") != vec_meta["dim"]:
                raise StoreError(
                    f"store {self.location} was built with embedder {stored.get('embedder')!r} "
                    f"(dim {stored.get('dim')}), not {vec_meta['embedder']!r} (dim {vec_meta['dim']}): "
                    "use the same embedder or a new store"
                )
        if self.mode == "http":
            cols = {name: GuardedCollection(c, self.location) for name, c in cols.items()}
        return cols

    def collections(self) -> dict[str, Any]:
        """The raw Chroma collections by logical name (for inspection and tests)."""
        return {
            "items": self._catalog.collection,
            "interests": self._profile_commits.interests,
            "profiles": self._profile_commits.profiles,
            "sources": self._side.sources,
            "llm_cache": self._side.cache,
            "last_results": self._side.results,
            "leases": self._leases,
            "history": self._history,
        }

    @property
    def _items(self) -> Any:
        """The catalog's collection: bench/ingest.py swaps in a timing wrapper through this."""
        return self._catalog.collection

    @_items.setter
    def _items(self, collection: Any) -> None:
        self._catalog.collection = collection

    def _rebuilt_vectors(self, collection: str, documents: Sequence[str]) -> list[Any] | None:
        """The vectors of a user-data collection, rebuilt from its documents (index repair); None for items."""
        if collection == self._name("interests"):
            if not documents:
                return []
            texts = [interest_text(SubInterest.model_validate_json(d)) for d in documents]
            return list(embed_checked(self.embedder, texts))
        if collection in {self._name(n) for n in _ID_ONLY_COLLECTIONS}:
            return [DUMMY] * len(documents)
        return None  # the catalog: `catalog add` rebuilds it from the catalog file

    # -- items (stores/items.py) -------------------------------------------------------------------

    def upsert_items(self, items: Iterable[Item | dict], batch_size: int = 256, progress: bool = False) -> int:
        """Add new items, update changed ones (unchanged ones are not re-embedded); how many were written."""
        return self._catalog.upsert(items, self.embedder, batch_size, progress)

    def get_items(self, ids: Sequence[str]) -> list[Item]:
        """Items in the order asked; unknown ids are skipped."""
        return self._catalog.get(ids)

    def get_item(self, item_id: str) -> Item:
        return self._catalog.get_one(item_id)

    def count_items(self) -> int:
        return self._catalog.count()

    def iter_items(self, batch_size: int = 1000) -> Iterator[Item]:
        return self._catalog.iter(batch_size)

    def item_ids(self) -> list[str]:
        return self._catalog.ids()

    def item_embeddings(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        return self._catalog.embeddings(ids)

    def query_items(self, embeddings: np.ndarray, n: int, where: dict | None = None) -> list[list[tuple[str, float]]]:
        """Nearest items per query row as (item_id, cosine similarity), best first; `where`: Chroma filter."""
        return self._catalog.query(embeddings, n, where, self.embedder.dim)

    def list_items(self, limit: int = 20, offset: int = 0, where: dict | None = None) -> tuple[list[Item], int]:
        """A page of items (insertion order) matching `where` (a validated Chroma filter), and how many match."""
        return self._catalog.page(limit, offset, where)

    def delete_items(self, ids: Sequence[str]) -> list[str]:
        """Remove these items; returns the ids that existed (and are now gone)."""
        return self._catalog.delete(ids)

    def catalog_written_directly(self) -> None:
        """The raw items collection was written (store copy): cached catalog vectors and counts are dropped."""
        self._catalog.dropped()

    # -- profiles (stores/profile_commits.py) ------------------------------------------------------

    def save_profile(self, profile: InterestProfile) -> None:
        """Crash-safe replace of the user's profile (a new generation, then the commit)."""
        self._profile_commits.save(validate_user_id(profile.user_id), profile, self.embedder)

    def has_profile(self, user_id: str) -> bool:
        return self._profile_commits.exists(validate_user_id(user_id))

    @contextlib.contextmanager
    def user_lease(self, user_id: str) -> Iterator[None]:
        """Exclusive right to read-merge-write this user's profile, across every process sharing the server
        (stores/user_lease.py). Embedded mode needs none: the directory lock already keeps other processes out.
        """
        uid = validate_user_id(user_id)
        if self.mode != "http":
            yield
            return
        with hold_lease(self._leases, uid):
            yield

    def load_profile(self, user_id: str) -> InterestProfile | None:
        return self._profile_commits.load(validate_user_id(user_id))

    def interest_embeddings(self, user_id: str) -> dict[str, np.ndarray]:
        return self._profile_commits.interest_embeddings(validate_user_id(user_id))

    def list_users(self) -> list[str]:
        """Users that have a saved profile."""
        return self._profile_commits.users()

    def all_interests(self) -> list[tuple[str, SubInterest, np.ndarray]]:
        """(user_id, interest, embedding) for every committed interest of every user."""
        return self._profile_commits.all_interests()

    # -- user side data (stores/side_data.py) ------------------------------------------------------

    def add_sources(self, user_id: str, sources: list[SourceText]) -> None:
        """Store user texts (evidence targets). Sources already stored (same id) are left as they are."""
        self._side.add_sources(validate_user_id(user_id), sources)

    def get_sources(self, user_id: str) -> list[SourceText]:
        """The user's texts in the order they were added."""
        return self._side.get_sources(validate_user_id(user_id))

    def cache_get(self, user_id: str, key: str) -> dict | None:
        return self._side.cache_get(validate_user_id(user_id), key)

    def cache_put(self, user_id: str, key: str, value: dict) -> None:
        self._side.cache_put(validate_user_id(user_id), key, value)

    def cache_records(self, user_id: str) -> list[dict]:
        """The user's decomposition-cache records ({key, value}), for export."""
        return self._side.cache_records(validate_user_id(user_id))

    def save_last_result(self, user_id: str, result: RecommendationResult) -> None:
        self._side.save_last_result(validate_user_id(user_id), result)

    def load_last_result(self, user_id: str) -> RecommendationResult | None:
        return self._side.load_last_result(validate_user_id(user_id))

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

    def user_interactions(self, user_id: str) -> list[Interaction]:
        """Every interaction row of the user (for export)."""
        return self.behaviour.user_interactions(validate_user_id(user_id))

    # -- lifecycle ---------------------------------------------------------------------------------

    def delete_user(self, user_id: str, *, purge: bool = True) -> None:
        """Remove every record of the user. The profile goes first, so a crash mid-way hides the rest.

        `purge` also removes the deleted bytes from disk (`purge_deleted`); temporary users of an evaluation
        skip it, as compaction rewrites the whole file."""
        uid = validate_user_id(user_id)
        cols = self.collections()
        try:
            cols["profiles"].delete(ids=[uid])
            for name in ("interests", "sources", "llm_cache", "last_results", "profiles", "leases"):
                cols[name].delete(where={"user_id": uid})
        except StoreError:
            raise
        except Exception as e:
            raise StoreError(f"cannot delete user {uid}: {e}") from e
        finally:
            self._profile_commits.forget_user(uid)  # the records this process held in memory go too
        self.behaviour.delete_user(uid, purge=purge)
        if purge:
            self.purge_deleted()

    def purge_deleted(self) -> None:
        """Leave no bytes of deleted records on disk (stores/purge.py): flush Chroma's log, compact its file.

        Server mode flushes the log (Chroma prunes it); the server's own SQLite file is the operator's to
        compact (`chroma utils vacuum --path DIR`), as a client cannot reach it."""
        cols = self.collections()
        user_cols = [c for name, c in cols.items() if name != "items"]
        rows = getattr(self.behaviour.rows, "collection", None)  # server mode keeps interactions in Chroma
        flush_logs([*user_cols, *([rows] if rows is not None else [])], {id(cols["interests"]): int(self.embedder.dim)})
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
            release_dir_lock(self._lock_key)
            self._lock_key = None

    def __enter__(self) -> ChromaStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
