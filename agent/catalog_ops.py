"""Catalog reads and removals behind `InterestAgent`: list, get, count, remove and search items.

Why a module of its own: these are plain store queries with argument checks, no stage of the pipeline; the
façade (agent/service.py) calls them and drops its catalog-derived caches (title linker, facet index) after a
removal. Reading catalog files (stores/) stays in the façade, the only agent module that imports stores/.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from interestlens.agent.api_models import CatalogCount, CatalogPage, CatalogRemoveResult, ItemHit
from interestlens.agent.errors import InvalidInputError
from interestlens.agent.filters import parse_where
from interestlens.agent.protocols import Embedder, Store
from interestlens.agent.text import validate_text

MAX_K = 500  # the most items one page, search or recommendation returns


def check_page(limit: int, offset: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_K:
        raise InvalidInputError(f"limit must be an integer between 1 and {MAX_K}, got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInputError(f"offset must be a non-negative integer, got {offset!r}")


def _matching(store: Store, parsed: dict[str, Any] | None) -> int:
    return store.count_items() if parsed is None else store.list_items(0, 0, parsed)[1]


def list_items(store: Store, limit: int, offset: int, where: str | dict[str, Any] | None) -> CatalogPage:
    check_page(limit, offset)
    items, total = store.list_items(limit, offset, parse_where(where))
    return CatalogPage(items=[ItemHit(item=i) for i in items], total=total, offset=offset)


def get_items(store: Store, ids: Sequence[str]) -> CatalogPage:
    if isinstance(ids, str):
        ids = [ids]
    found = store.get_items(list(ids))
    known = {i.id for i in found}
    return CatalogPage(
        items=[ItemHit(item=i) for i in found], total=len(found),
        unknown_ids=[i for i in dict.fromkeys(ids) if i not in known],
    )


def count_items(store: Store, where: str | dict[str, Any] | None) -> CatalogCount:
    parsed = parse_where(where)
    return CatalogCount(count=_matching(store, parsed), where=parsed)


def remove_items(store: Store, ids: Sequence[str]) -> CatalogRemoveResult:
    if isinstance(ids, str):
        ids = [ids]
    if not ids:
        raise InvalidInputError("remove needs at least one item id")
    removed = store.delete_items(list(ids))
    return CatalogRemoveResult(removed=removed, unknown=[i for i in dict.fromkeys(ids) if i not in removed])


def search_items(
    store: Store, embedder: Embedder, query: str, k: int, where: str | dict[str, Any] | None, *, max_chars: int
) -> CatalogPage:
    query = validate_text((query or "").strip(), max_chars) if query else ""
    if not query.strip():
        raise InvalidInputError("search needs a non-empty query")
    check_page(k, 0)
    parsed = parse_where(where)
    hits = store.query_items(embedder.embed([query]), k, where=parsed)[0]
    items = {i.id: i for i in store.get_items([h for h, _ in hits])}
    return CatalogPage(
        items=[ItemHit(item=items[h], score=round(s, 4)) for h, s in hits if h in items],
        total=_matching(store, parsed), query=query,
    )
