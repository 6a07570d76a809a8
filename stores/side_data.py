"""User side data: source texts, the decomposition cache and the last recommendation result.

JSON documents keyed by user in their own collections (`sources`, `llm_cache`, `last_results`), each with a 1-d
dummy vector and `user_id` metadata, so `delete_user` can remove them and verify it by reading Chroma alone.
Records read back in the order they were written carry a `seq` (time.time_ns()) in their metadata.
"""

from __future__ import annotations

import json
import time
from typing import Any

from interestlens.agent.errors import InvalidInputError, StoreError
from interestlens.agent.models import RecommendationResult, SourceText, content_hash
from interestlens.stores.vectors import DUMMY


def documents_by_seq(collection: Any, uid: str) -> list[str]:
    """The documents of the user's records in `collection`, oldest `seq` first."""
    res = collection.get(where={"user_id": uid}, include=["documents", "metadatas"])
    rows = sorted(zip(res["metadatas"] or [], res["documents"] or [], strict=True), key=lambda r: r[0]["seq"])
    return [d for _, d in rows]


class SideData:
    """Reads and writes of the side-data collections; user ids are validated by the caller (ChromaStore)."""

    def __init__(self, sources: Any, cache: Any, results: Any) -> None:
        self.sources = sources
        self.cache = cache
        self.results = results

    def add_sources(self, uid: str, sources: list[SourceText]) -> None:
        """Store user texts (evidence targets). Sources already stored (same id) are left as they are."""
        if not all(isinstance(s, SourceText) for s in sources):
            raise InvalidInputError("add_sources expects SourceText objects")
        unique = {f"{uid}/{s.id}": s for s in sources}
        if not unique:
            return
        existing = set(self.sources.get(ids=list(unique), include=[])["ids"])
        new = [(rid, s) for rid, s in unique.items() if rid not in existing]
        if not new:
            return
        seq = time.time_ns()
        try:
            self.sources.upsert(
                ids=[rid for rid, _ in new],
                embeddings=[DUMMY] * len(new),
                metadatas=[{"user_id": uid, "seq": seq + k} for k in range(len(new))],
                documents=[s.model_dump_json() for _, s in new],
            )
        except Exception as e:
            raise StoreError(f"cannot save sources of {uid}: {e}") from e

    def get_sources(self, uid: str) -> list[SourceText]:
        """The user's texts in the order they were added."""
        return [SourceText.model_validate_json(d) for d in documents_by_seq(self.sources, uid)]

    @staticmethod
    def _cache_id(uid: str, key: str) -> str:
        return f"{uid}/{content_hash(key, length=32)}"

    def cache_get(self, uid: str, key: str) -> dict | None:
        res = self.cache.get(ids=[self._cache_id(uid, key)], include=["documents"])
        if not res["ids"]:
            return None
        record = json.loads(res["documents"][0])
        return record["value"] if record.get("key") == key else None  # a hash collision is a miss

    def cache_put(self, uid: str, key: str, value: dict) -> None:
        try:
            doc = json.dumps({"key": key, "value": value})
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"cache value is not JSON-serialisable: {e}") from e
        self.cache.upsert(
            ids=[self._cache_id(uid, key)], embeddings=[DUMMY], metadatas=[{"user_id": uid}], documents=[doc]
        )

    def cache_records(self, uid: str) -> list[dict]:
        """The user's decomposition-cache records ({key, value}), for export."""
        res = self.cache.get(where={"user_id": uid}, include=["documents"])
        return [json.loads(d) for d in res["documents"] or []]

    def save_last_result(self, uid: str, result: RecommendationResult) -> None:
        self.results.upsert(
            ids=[uid], embeddings=[DUMMY], metadatas=[{"user_id": uid}], documents=[result.model_dump_json()]
        )

    def load_last_result(self, uid: str) -> RecommendationResult | None:
        res = self.results.get(ids=[uid], include=["documents"])
        return RecommendationResult.model_validate_json(res["documents"][0]) if res["ids"] else None
