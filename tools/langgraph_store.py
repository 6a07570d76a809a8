"""A LangGraph `BaseStore` over interest profiles: long-term memory an agent graph already knows how to use.

Namespace `("interestlens", <user_id>)`; one item per sub-interest, keyed by the interest id, whose value is the
interest (name, polarity, weight, evidence with the user's own words). The verbs map onto the agent's:
- `put(ns, key, {"text": "..."})`  observes that text for the user (the key names nothing: ids come from the
  decomposition; the interests it produced are then `get`-able);
- `put(ns, key, None)` / `delete(ns, key)`  deletes that interest (an entry in the user's history, undoable);
- `get(ns, key)`  one interest; `search(ns, query=...)`  the user's interests, most similar to the query first
  (MiniLM cosine), else by weight; `filter={"polarity": "dislike"}` keeps matching values;
- `list_namespaces()`  one namespace per user with a profile.
What comes back is the user's data: a graph that puts it in a prompt should fence it as data.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from langgraph.store.base import BaseStore, GetOp, Item, ListNamespacesOp, Op, PutOp, Result, SearchItem, SearchOp

from interestlens.agent.errors import InvalidInputError, UnknownIdError
from interestlens.agent.models import SubInterest
from interestlens.agent.profile import interest_text

if TYPE_CHECKING:
    from interestlens.agent.service import InterestAgent

ROOT = "interestlens"


def _user(namespace: tuple[str, ...]) -> str:
    if len(namespace) != 2 or namespace[0] != ROOT:
        raise InvalidInputError(f"namespace must be ({ROOT!r}, user_id), got {namespace!r}")
    return namespace[1]


def _value(interest: SubInterest) -> dict[str, Any]:
    return interest.model_dump(mode="json")


class InterestLensStore(BaseStore):
    """See the module docstring. Synchronous; the async methods run the same code."""

    def __init__(self, agent: InterestAgent) -> None:
        self.agent = agent

    def _profile(self, user_id: str) -> Any:
        try:
            return self.agent.profile(user_id)
        except UnknownIdError:
            return None

    def _item(self, ns: tuple[str, ...], interest: SubInterest, updated: datetime, score: float | None = None,
              search: bool = False) -> Item:
        created = interest.first_seen or updated
        if search:
            return SearchItem(ns, interest.id, _value(interest), created, updated, score)
        return Item(value=_value(interest), key=interest.id, namespace=ns, created_at=created, updated_at=updated)

    def _get(self, op: GetOp) -> Item | None:
        profile = self._profile(_user(op.namespace))
        interest = profile.get(op.key) if profile else None
        return self._item(op.namespace, interest, profile.updated_at) if interest else None

    def _put(self, op: PutOp) -> None:
        user = _user(op.namespace)
        if op.value is None:
            self.agent.delete_interest(user, op.key)
            return
        text = op.value.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError('put needs a value {"text": "<what the user wrote>"} (or None to delete)')
        self.agent.observe(user, text)

    def _search(self, op: SearchOp) -> list[SearchItem]:
        user = _user(op.namespace_prefix)
        profile = self._profile(user)
        if profile is None:
            return []
        interests = [
            i for i in profile.interests
            if all(_value(i).get(k) == v for k, v in (op.filter or {}).items())
        ]
        if op.query and interests:
            vecs = self.agent.embedder.embed([op.query, *(interest_text(i) for i in interests)])
            scores = (vecs[1:] @ vecs[0]).tolist()
        else:
            scores = [float(i.weight) for i in interests]
        order = np.argsort(-np.asarray(scores), kind="stable")[op.offset : op.offset + op.limit]
        return [
            self._item(op.namespace_prefix, interests[j], profile.updated_at, round(scores[j], 6), search=True)
            for j in order
        ]

    def _namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        users = sorted(self.agent.store.list_users())  # the Store protocol, not a Chroma collection
        names = [(ROOT, u) for u in users]
        return names[op.offset : op.offset + op.limit]

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                results.append(self._get(op))
            elif isinstance(op, PutOp):
                results.append(self._put(op))
            elif isinstance(op, SearchOp):
                results.append(self._search(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._namespaces(op))
            else:
                raise InvalidInputError(f"unsupported store operation {type(op).__name__}")
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        import anyio.to_thread

        ops = list(ops)
        return await anyio.to_thread.run_sync(self.batch, ops)
