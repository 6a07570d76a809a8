"""The contracts between the agent and its backends: `Embedder`, `Store` and the store's `Behaviour` log.

Why a module of its own: stores/ implement these and the agent's stages call them, so they sit below both, next
to the domain model. It imports nothing of the project but agent.models, so stores/ can import it without
pulling in the agent (tests/test_architecture.py holds that line). `ChromaStore` (stores/chroma_store.py)
satisfies `Store` structurally; the signatures are checked against it in the same test.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

import numpy as np

from interestlens.agent.models import (
    Interaction,
    InterestProfile,
    Item,
    RecommendationResult,
    SourceText,
    SubInterest,
)


@runtime_checkable
class Embedder(Protocol):
    model_id: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Shape (len(texts), dim), float32, rows L2-normalised."""
        ...


@runtime_checkable
class Behaviour(Protocol):
    """The interaction log behind a store, where the agent reaches it directly (undo of a feedback row)."""

    def delete_interaction(self, user_id: str, item_id: str, ts: datetime | None) -> int:
        """Remove the one row keyed (user, item, ts); how many went (0 when it was not there)."""
        ...


@runtime_checkable
class Store(Protocol):
    """What the agent and its stages read and write: catalog, profiles, user side data, behaviour.

    Optional capabilities are looked up with getattr, not listed here: `user_lease(user_id)` (a context manager
    serialising one user's read-merge-write across processes), and `client` / `namespace` (a Chroma client the
    change history lives next to). A store without them still works: locks are per process, no history.
    """

    behaviour: Behaviour

    # -- catalog
    def upsert_items(self, items: Iterable[Item | dict], batch_size: int = 256, progress: bool = False) -> int:
        """Add new items, update changed ones; how many were written."""
        ...

    def get_items(self, ids: Sequence[str]) -> list[Item]:
        """Items in the order asked; unknown ids are skipped."""
        ...

    def get_item(self, item_id: str) -> Item:
        """The item, or UnknownIdError."""
        ...

    def count_items(self) -> int: ...

    def iter_items(self, batch_size: int = 1000) -> Iterator[Item]: ...

    def item_ids(self) -> list[str]: ...

    def item_embeddings(self, ids: Sequence[str]) -> dict[str, np.ndarray]: ...

    def query_items(self, embeddings: np.ndarray, n: int, where: dict | None = None) -> list[list[tuple[str, float]]]:
        """Nearest items per query row as (item_id, cosine similarity), best first; `where`: a Chroma filter."""
        ...

    def list_items(self, limit: int = 20, offset: int = 0, where: dict | None = None) -> tuple[list[Item], int]:
        """A page of items matching `where`, and how many match."""
        ...

    def delete_items(self, ids: Sequence[str]) -> list[str]:
        """Remove these items; the ids that existed."""
        ...

    # -- profiles
    def save_profile(self, profile: InterestProfile) -> None: ...

    def load_profile(self, user_id: str) -> InterestProfile | None: ...

    def interest_embeddings(self, user_id: str) -> dict[str, np.ndarray]:
        """The stored vector of each interest of the user's committed profile, by interest id."""
        ...

    def has_profile(self, user_id: str) -> bool: ...

    def list_users(self) -> list[str]: ...

    def all_interests(self) -> list[tuple[str, SubInterest, np.ndarray]]:
        """(user_id, interest, embedding) for every stored interest of every user."""
        ...

    # -- user side data
    def add_sources(self, user_id: str, sources: list[SourceText]) -> None: ...

    def get_sources(self, user_id: str) -> list[SourceText]: ...

    def cache_get(self, user_id: str, key: str) -> dict | None: ...

    def cache_put(self, user_id: str, key: str, value: dict) -> None: ...

    def cache_records(self, user_id: str) -> list[dict]: ...

    def save_last_result(self, user_id: str, result: RecommendationResult) -> None: ...

    def load_last_result(self, user_id: str) -> RecommendationResult | None: ...

    # -- behaviour
    def add_interactions(self, interactions: Iterable[Interaction | dict]) -> int: ...

    def popularity_scores(self) -> dict[str, float]: ...

    def cooccurrence_scores(
        self, seed_item_ids: Sequence[str], exclude: set[str] | frozenset[str] = frozenset(), n: int = 200
    ) -> dict[str, float]: ...

    def ease_scores(
        self, seed_item_ids: Sequence[str], exclude: set[str] | frozenset[str] = frozenset(), n: int = 200
    ) -> dict[str, float]: ...

    def user_interacted_items(self, user_id: str) -> list[str]: ...

    def user_interactions(self, user_id: str) -> list[Interaction]: ...

    # -- lifecycle
    def delete_user(self, user_id: str, *, purge: bool = True) -> None:
        """Remove every record of the user (`purge`: also the deleted bytes on disk)."""
        ...

    def close(self) -> None: ...
