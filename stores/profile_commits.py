"""Interest profiles, saved crash-safe by generations.

Two collections: `interests` (one record per sub-interest, cosine space, embedding of "name: description";
metadata user_id, gen (storage generation), version (profile version), pos) and `profiles` (the profile minus
its interests, with the generation it commits to and how many interests that generation has).

A save writes the new interest records under a fresh generation id, then switches the profile record (the
commit point) to that generation, then deletes older generations. Readers only follow the generation named by
the profile record, so a kill at any point leaves the previous or the new profile.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import numpy as np

from interestlens.agent.errors import StoreError
from interestlens.agent.models import InterestProfile, SubInterest, interest_text
from interestlens.agent.protocols import Embedder
from interestlens.stores.vectors import DUMMY, embed_checked

_PROFILE_READ_RETRIES = 5


class ProfileCommits:
    """Profile reads and generational writes on the `interests` and `profiles` collections.

    User ids are validated by the caller (ChromaStore); `max_batch`: the most records one Chroma call may carry."""

    def __init__(self, interests: Any, profiles: Any, max_batch: int) -> None:
        self.interests = interests
        self.profiles = profiles
        self.max_batch = max_batch

    def save(self, uid: str, profile: InterestProfile, embedder: Embedder) -> None:
        """Crash-safe replace of the user's profile (see the module docstring for the write order)."""
        interests = profile.interests
        vecs = embed_checked(embedder, [interest_text(i) for i in interests]) if interests else None
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
            for s in range(0, len(ids), self.max_batch):
                e = s + self.max_batch
                self.interests.upsert(
                    ids=ids[s:e],
                    embeddings=vecs[s:e],
                    metadatas=metadatas[s:e],  # type: ignore[index,arg-type]
                    documents=[it.model_dump_json() for it in interests[s:e]],
                )
            self.profiles.upsert(  # the commit point
                ids=[uid],
                embeddings=[DUMMY],
                metadatas=[{"user_id": uid, "gen": gen, "version": profile.version, "n_interests": len(ids)}],
                documents=[profile.model_dump_json(exclude={"interests"})],
            )
            # Only superseded generations (same or older version, not ours): never "all but mine", which
            # would delete what another process has just committed on a shared server.
            self.interests.delete(
                where={"$and": [{"user_id": uid}, {"gen": {"$ne": gen}}, {"version": {"$lte": profile.version}}]}
            )
        except StoreError:
            raise
        except Exception as e:
            raise StoreError(f"cannot save the profile of {uid}: {e}") from e

    def _current(self, uid: str, include: list[str]) -> tuple[dict, dict] | None:
        """(profile record, interest records of its generation), retried if a concurrent save moved on."""
        for _ in range(_PROFILE_READ_RETRIES):
            rec = self.profiles.get(ids=[uid], include=["documents", "metadatas"])
            if not rec["ids"]:
                return None
            meta = rec["metadatas"][0]
            res = self.interests.get(where={"$and": [{"user_id": uid}, {"gen": meta["gen"]}]}, include=include)
            if len(res["ids"]) == meta["n_interests"]:
                return {"document": rec["documents"][0], "metadata": meta}, res
            time.sleep(0.05)
        raise StoreError(f"the stored profile of {uid} is incomplete (a concurrent save, or a damaged store)")

    def exists(self, uid: str) -> bool:
        return bool(self.profiles.get(ids=[uid], include=[])["ids"])

    def load(self, uid: str) -> InterestProfile | None:
        cur = self._current(uid, ["documents", "metadatas"])
        if cur is None:
            return None
        rec, res = cur
        order = sorted(range(len(res["ids"])), key=lambda k: res["metadatas"][k]["pos"])
        data = json.loads(rec["document"])
        data["interests"] = [json.loads(res["documents"][k]) for k in order]
        return InterestProfile.model_validate(data)

    def interest_embeddings(self, uid: str) -> dict[str, np.ndarray]:
        cur = self._current(uid, ["metadatas", "embeddings"])
        if cur is None:
            return {}
        _, res = cur
        embs = res["embeddings"] if res["embeddings"] is not None else []
        return {m["interest_id"]: np.asarray(e, dtype=np.float32) for m, e in zip(res["metadatas"], embs, strict=True)}

    def users(self) -> list[str]:
        """Users that have a saved profile."""
        return sorted(self.profiles.get(include=[])["ids"])

    def all_interests(self) -> list[tuple[str, SubInterest, np.ndarray]]:
        """(user_id, interest, embedding) for every committed interest of every user."""
        profiles = self.profiles.get(include=["metadatas"])
        gens = {uid: m["gen"] for uid, m in zip(profiles["ids"], profiles["metadatas"] or [], strict=True)}
        res = self.interests.get(include=["documents", "metadatas", "embeddings"])
        embs = res["embeddings"] if res["embeddings"] is not None else []
        rows = [
            (m["user_id"], m["pos"], d, e)
            for m, d, e in zip(res["metadatas"] or [], res["documents"] or [], embs, strict=True)
            if gens.get(m["user_id"]) == m["gen"]
        ]
        rows.sort(key=lambda r: (r[0], r[1]))
        return [(u, SubInterest.model_validate_json(d), np.asarray(e, dtype=np.float32)) for u, _, d, e in rows]
