"""Result caches for decomposition: where the LLM path keeps its replies, keyed by prompt and schema.

`decompose` accepts any `CacheLike` and binds it with `as_cache`: None, an object with get/put, a (get, put)
pair of callables, or a store with per-user cache_get/cache_put.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeAlias

from interestlens.agent.protocols import Store


class ResultCache(Protocol):
    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...


class DictCache:
    """In-process cache (tests, or an agent without a store)."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.data.get(key)

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.data[key] = value


class StoreCache:
    """Binds a store's per-user cache (ChromaStore.cache_get/cache_put) to one user id."""

    def __init__(self, store: Store, user_id: str) -> None:
        self.store = store
        self.user_id = user_id

    def get(self, key: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.store.cache_get(self.user_id, key)
        return result

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.store.cache_put(self.user_id, key, value)


class _CallableCache:
    def __init__(
        self, get: Callable[[str], dict[str, Any] | None], put: Callable[[str, dict[str, Any]], None]
    ):
        self.get = get  # type: ignore[method-assign]
        self.put = put  # type: ignore[method-assign]


# What `decompose` accepts as a cache: see `as_cache`.
CacheLike: TypeAlias = (
    ResultCache | Store | tuple[Callable[[str], dict[str, Any] | None], Callable[[str, dict[str, Any]], None]] | None
)


def as_cache(cache_like: CacheLike, user_id: str = "") -> ResultCache | None:
    """Accept None, a get/put object, a (get, put) pair of callables, or a store with cache_get/cache_put."""
    if cache_like is None:
        return None
    if isinstance(cache_like, tuple) and len(cache_like) == 2:
        return _CallableCache(*cache_like)
    if hasattr(cache_like, "cache_get") and hasattr(cache_like, "cache_put"):
        return StoreCache(cache_like, user_id)
    if hasattr(cache_like, "get") and hasattr(cache_like, "put"):
        return cache_like  # type: ignore[no-any-return]
    raise TypeError(
        "cache must be None, an object with get/put, a (get, put) pair, or a store with cache_get/put"
    )
