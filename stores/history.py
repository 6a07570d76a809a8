"""Per-user profile history (every observe, feedback and edit), kept in the store's Chroma.

One record per `HistoryEntry` in a `history` collection (1-d dummy vector, `user_id` metadata, a `seq`
for order), so it lives next to the profile: shared by every client of a `chroma run` server, exported with
the user, and removed by `delete_user`.
"""

from __future__ import annotations

import time
from typing import Any

from interestlens.agent.errors import StoreError
from interestlens.agent.models import HistoryEntry
from interestlens.stores.ids import validate_user_id
from interestlens.stores.purge import open_user_data_collection
from interestlens.stores.side_data import documents_by_seq
from interestlens.stores.vectors import DUMMY

COLLECTION = "history"


class HistoryStore:
    """History records on the same Chroma client (and namespace) as a ChromaStore."""

    def __init__(self, client: Any, namespace: str = "") -> None:
        name = f"{namespace}_{COLLECTION}" if namespace else COLLECTION
        try:
            self._col = open_user_data_collection(client, name)
        except Exception as e:
            raise StoreError(f"cannot open the history collection: {e}") from e

    def append(self, entry: HistoryEntry) -> None:
        uid = validate_user_id(entry.user_id)
        try:
            self._col.upsert(
                ids=[f"{uid}/{entry.id}"],
                embeddings=[DUMMY],
                metadatas=[{"user_id": uid, "seq": time.time_ns(), "operation": entry.operation.value}],
                documents=[entry.model_dump_json()],
            )
        except Exception as e:
            raise StoreError(f"cannot write the history of {uid}: {e}") from e

    def entries(self, user_id: str) -> list[HistoryEntry]:
        """The user's entries, oldest first."""
        uid = validate_user_id(user_id)
        return [HistoryEntry.model_validate_json(d) for d in documents_by_seq(self._col, uid)]

    def count(self, user_id: str) -> int:
        uid = validate_user_id(user_id)
        return len(self._col.get(where={"user_id": uid}, include=[])["ids"])

    def delete_user(self, user_id: str) -> None:
        uid = validate_user_id(user_id)
        try:
            self._col.delete(where={"user_id": uid})
        except Exception as e:
            raise StoreError(f"cannot delete the history of {uid}: {e}") from e
