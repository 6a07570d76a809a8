"""Interest profiles, saved crash-safe and incrementally.

Two collections: `interests` (one record per sub-interest content, cosine space, embedding of "name: description";
metadata user_id, version (the profile version that first wrote it), interest_id, name, polarity, origin, muted,
weight) and `profiles` (the profile minus its interests, plus the manifest: the ordered ids of its interest records).

A record's id is the user id plus a digest of the interest's JSON, so an interest that did not change between two
saves is the same record and is neither embedded nor written again: a save costs what changed, not the profile's
size. A save writes the records that are new, then switches the profile record (the commit point) to the new
manifest, then deletes this user's records that the committed manifest does not name and that a save of the same or
an older version wrote. Readers only follow the manifest, so a kill at any point leaves the previous or the new
profile, and what a killed save wrote is collected by the next one.

Stores written before manifests (a `gen` per save, records carrying `gen` and `pos`) are still read; their next save
rewrites them in this format.

Reads keep what they fetched and saves what they wrote (`_RecordCache`): a record's id is the digest of its document,
so what an id names never changes while the record exists. A read then costs the profile record and the records
not yet held, not the profile's size (reading 500 records with their vectors took ~40 ms of every observe).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from interestlens.agent.errors import StoreError
from interestlens.agent.models import InterestProfile, SubInterest, interest_text
from interestlens.agent.protocols import Embedder
from interestlens.stores.vectors import DUMMY, embed_checked

_PROFILE_READ_RETRIES = 5
_MANIFEST_KEY = "interest_records"  # in the profile record's document, beside the profile's own fields
# Interest records held in memory (~2 KB each with a 384-d vector): a 500-interest profile and its neighbours.
RECORD_CACHE_SIZE = 10_000


def record_id(uid: str, document: str) -> str:
    """The interest record's id: the same content of the same user is the same record."""
    return f"{uid}/{hashlib.sha256(document.encode('utf-8')).hexdigest()[:32]}"


def _manifest(rec_document: str) -> list[str] | None:
    """The committed record ids in profile order; None for a profile record written before manifests."""
    ids = json.loads(rec_document).get(_MANIFEST_KEY)
    return list(ids) if ids is not None else None


@dataclass(frozen=True)
class _Record:
    """An interest record as read back: its document, and its interest id and vector once they were read."""

    document: str
    interest_id: str | None = None
    vector: np.ndarray | None = None  # float32, read-only: shared by every read that returns it


def _record_of(res: dict, k: int, with_vectors: bool) -> _Record:
    """Row k of a Chroma get() result as a _Record (interest id and vector only when they were read)."""
    return _Record(
        res["documents"][k],
        res["metadatas"][k]["interest_id"] if with_vectors else None,
        np.asarray(res["embeddings"][k], dtype=np.float32) if with_vectors else None,
    )


class _RecordCache:
    """Interest records by id, least recently used dropped first. Safe to share: an id names one content."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, ids: Sequence[str], with_vectors: bool) -> dict[str, _Record]:
        """The held records of `ids` (with their vectors when asked: records held without one are left out)."""
        out: dict[str, _Record] = {}
        with self._lock:
            for rid in ids:
                rec = self._records.get(rid)
                if rec is not None and (not with_vectors or rec.vector is not None):
                    self._records.move_to_end(rid)
                    out[rid] = rec
        return out

    def put(self, records: dict[str, _Record]) -> None:
        with self._lock:
            for rid, rec in records.items():
                if rec.vector is not None:
                    rec.vector.setflags(write=False)
                old = self._records.get(rid)
                if old is not None and rec.vector is None:
                    rec = old  # a documents-only read does not forget a vector already held
                self._records[rid] = rec
                self._records.move_to_end(rid)
            while len(self._records) > self.size:
                self._records.popitem(last=False)

    def drop(self, ids: Sequence[str]) -> None:
        with self._lock:
            for rid in ids:
                self._records.pop(rid, None)

    def drop_user(self, uid: str) -> None:
        prefix = f"{uid}/"
        with self._lock:
            for rid in [r for r in self._records if r.startswith(prefix)]:
                del self._records[rid]


class ProfileCommits:
    """Profile reads and incremental, crash-safe writes on the `interests` and `profiles` collections.

    User ids are validated by the caller (ChromaStore); `max_batch`: the most records one Chroma call may carry."""

    def __init__(self, interests: Any, profiles: Any, max_batch: int) -> None:
        self.interests = interests
        self.profiles = profiles
        self.max_batch = max_batch
        self._cache = _RecordCache(RECORD_CACHE_SIZE)

    def save(self, uid: str, profile: InterestProfile, embedder: Embedder) -> None:
        """Crash-safe replace of the user's profile (see the module docstring for the write order)."""
        interests = profile.interests
        documents = [it.model_dump_json() for it in interests]
        ids = [record_id(uid, d) for d in documents]
        try:
            present = set(self._existing(list(dict.fromkeys(ids))))
            todo: list[int] = []  # positions whose record must be written, each record once
            for k, rid in enumerate(ids):
                if rid not in present:
                    present.add(rid)
                    todo.append(k)
            vecs = embed_checked(embedder, [interest_text(interests[k]) for k in todo]) if todo else []
            for s in range(0, len(todo), self.max_batch):
                chunk = todo[s : s + self.max_batch]
                self.interests.upsert(
                    ids=[ids[k] for k in chunk],
                    embeddings=vecs[s : s + len(chunk)],
                    metadatas=[self._record_meta(uid, profile.version, interests[k]) for k in chunk],
                    documents=[documents[k] for k in chunk],
                )
                # Documents only: the vectors Chroma returns are its own normalisation of these (they differ in the
                # last bits), so the next read that needs them fetches them, for these records alone.
                self._cache.put({ids[k]: _Record(documents[k], interests[k].id) for k in chunk})
            head = json.loads(profile.model_dump_json(exclude={"interests"}))
            head[_MANIFEST_KEY] = ids
            self.profiles.upsert(  # the commit point
                ids=[uid],
                embeddings=[DUMMY],
                metadatas=[{"user_id": uid, "version": profile.version, "n_interests": len(ids)}],
                documents=[json.dumps(head)],
            )
            self._collect(uid, set(ids), profile.version)
        except StoreError:
            raise
        except Exception as e:
            raise StoreError(f"cannot save the profile of {uid}: {e}") from e

    @staticmethod
    def _record_meta(uid: str, version: int, it: SubInterest) -> dict[str, Any]:
        return {
            "user_id": uid, "version": version, "interest_id": it.id, "name": it.name,
            "polarity": it.polarity.value, "origin": it.origin.value, "muted": it.muted, "weight": float(it.weight),
        }

    def _existing(self, ids: list[str]) -> list[str]:
        found: list[str] = []
        for s in range(0, len(ids), self.max_batch):
            found.extend(self.interests.get(ids=ids[s : s + self.max_batch], include=[])["ids"])
        return found

    def _collect(self, uid: str, committed: set[str], version: int) -> None:
        """Delete this user's records that the manifest just committed does not name. Only those written by a save
        of the same or an older version and not named by the manifest current now, so a newer save's records (another
        process on a shared server) survive; saves of one user are serialised by the user lease, which is what keeps
        a record that a concurrent, not yet committed save reuses."""
        rec = self.profiles.get(ids=[uid], include=["documents"])
        if rec["ids"]:
            committed = committed | set(_manifest(rec["documents"][0]) or [])
        # Ids first, metadata only of the few records not committed: the user's metadata was ~25 ms at 500 records.
        unnamed = [rid for rid in self.interests.get(where={"user_id": uid}, include=[])["ids"] if rid not in committed]
        stale: list[str] = []
        for s in range(0, len(unnamed), self.max_batch):
            res = self.interests.get(ids=unnamed[s : s + self.max_batch], include=["metadatas"])
            stale += [
                rid for rid, m in zip(res["ids"], res["metadatas"] or [], strict=True)
                if int(m.get("version", 0)) <= version
            ]
        self._cache.drop(stale)
        for s in range(0, len(stale), self.max_batch):
            self.interests.delete(ids=stale[s : s + self.max_batch])

    def _head(self, uid: str) -> tuple[str, dict] | None:
        """The profile record's document and metadata, None when the user has no profile."""
        rec = self.profiles.get(ids=[uid], include=["documents", "metadatas"])
        return (rec["documents"][0], rec["metadatas"][0]) if rec["ids"] else None

    def _current(self, uid: str, include: list[str]) -> tuple[dict, list[int], dict] | None:
        """(profile record, the row of each interest in profile order, interest records), retried if a concurrent
        save moved on between the two reads."""
        for _ in range(_PROFILE_READ_RETRIES):
            head = self._head(uid)
            if head is None:
                return None
            doc, meta = head
            manifest = _manifest(doc)
            if manifest is None:  # written before manifests: one generation, ordered by `pos`
                res = self.interests.get(
                    where={"$and": [{"user_id": uid}, {"gen": meta["gen"]}]},
                    include=list(dict.fromkeys([*include, "metadatas"])),
                )
                order = sorted(range(len(res["ids"])), key=lambda k: res["metadatas"][k]["pos"])
                complete = len(res["ids"]) == meta["n_interests"]
            else:
                unique = list(dict.fromkeys(manifest))
                res = {"ids": [], **{f: [] for f in include}}
                for s in range(0, len(unique), self.max_batch):
                    part = self.interests.get(ids=unique[s : s + self.max_batch], include=include)
                    res["ids"].extend(part["ids"])
                    for f in include:
                        res[f].extend(part[f] if part[f] is not None else [])
                row = {rid: k for k, rid in enumerate(res["ids"])}
                complete = len(row) == len(unique)
                order = [row[rid] for rid in manifest] if complete else []
            if complete:
                return {"document": doc, "metadata": meta}, order, res
            time.sleep(0.05)
        raise StoreError(f"the stored profile of {uid} is incomplete (a concurrent save, or a damaged store)")

    def committed_records(self, uid: str) -> list[str]:
        """The ids of the interest records the committed profile names, in profile order (for checks and tools)."""
        cur = self._current(uid, [])
        if cur is None:
            return []
        _, order, res = cur
        return [res["ids"][k] for k in order]

    def exists(self, uid: str) -> bool:
        return bool(self.profiles.get(ids=[uid], include=[])["ids"])

    def _committed(self, uid: str, with_vectors: bool) -> tuple[dict, list[_Record]] | None:
        """(profile record, its interest records in profile order) of a manifest profile, records held in the cache
        not read again; retried if a concurrent save moved on between the two reads. None when there is no profile;
        a profile written before manifests goes through `_current`."""
        for _ in range(_PROFILE_READ_RETRIES):
            head = self._head(uid)
            if head is None:
                return None
            doc, meta = head
            manifest = _manifest(doc)
            if manifest is None:
                return self._legacy(uid, with_vectors)
            unique = list(dict.fromkeys(manifest))
            held = self._cache.get(unique, with_vectors)
            missing = [rid for rid in unique if rid not in held]
            include = ["documents", "metadatas", "embeddings"] if with_vectors else ["documents"]
            fetched: dict[str, _Record] = {}
            for s in range(0, len(missing), self.max_batch):
                part = self.interests.get(ids=missing[s : s + self.max_batch], include=include)
                for k, rid in enumerate(part["ids"]):
                    fetched[rid] = _record_of(part, k, with_vectors)
            if len(fetched) == len(missing):
                self._cache.put(fetched)
                held.update(fetched)
                return {"document": doc, "metadata": meta}, [held[rid] for rid in manifest]
            time.sleep(0.05)
        raise StoreError(f"the stored profile of {uid} is incomplete (a concurrent save, or a damaged store)")

    def _legacy(self, uid: str, with_vectors: bool) -> tuple[dict, list[_Record]] | None:
        """A profile written before manifests, read as before (not cached: its next save rewrites it)."""
        cur = self._current(uid, ["documents", "metadatas", "embeddings"] if with_vectors else ["documents"])
        if cur is None:
            return None
        rec, order, res = cur
        return rec, [_record_of(res, k, with_vectors) for k in order]

    def load(self, uid: str) -> InterestProfile | None:
        cur = self._committed(uid, with_vectors=False)
        if cur is None:
            return None
        rec, records = cur
        data = json.loads(rec["document"])
        data.pop(_MANIFEST_KEY, None)
        data["interests"] = [json.loads(r.document) for r in records]
        return InterestProfile.model_validate(data)

    def interest_embeddings(self, uid: str) -> dict[str, np.ndarray]:
        """The stored vector of each committed interest, by interest id (read-only arrays)."""
        cur = self._committed(uid, with_vectors=True)
        if cur is None:
            return {}
        return {r.interest_id: r.vector for r in cur[1] if r.interest_id is not None and r.vector is not None}

    def forget_user(self, uid: str) -> None:
        """Drop the user's records from the cache (their profile is being deleted)."""
        self._cache.drop_user(uid)

    def users(self) -> list[str]:
        """Users that have a saved profile."""
        return sorted(self.profiles.get(include=[])["ids"])

    def all_interests(self) -> list[tuple[str, SubInterest, np.ndarray]]:
        """(user_id, interest, embedding) for every committed interest of every user, each user's in profile order."""
        profiles = self.profiles.get(include=["documents", "metadatas"])
        place: dict[str, tuple[str, int]] = {}  # record id -> (user, position), for manifest profiles
        legacy: dict[str, str] = {}  # user -> committed generation, for profiles written before manifests
        heads = zip(profiles["ids"], profiles["documents"] or [], profiles["metadatas"] or [], strict=True)
        for uid, doc, meta in heads:
            manifest = _manifest(doc)
            if manifest is None:
                legacy[uid] = meta["gen"]
            else:
                place.update({rid: (uid, pos) for pos, rid in enumerate(manifest)})
        res = self.interests.get(include=["documents", "metadatas", "embeddings"])
        embs = res["embeddings"] if res["embeddings"] is not None else []
        rows = []
        for rid, m, d, e in zip(res["ids"], res["metadatas"] or [], res["documents"] or [], embs, strict=True):
            if rid in place:
                rows.append((*place[rid], d, e))
            elif "gen" in m and legacy.get(m["user_id"]) == m["gen"]:
                rows.append((m["user_id"], m["pos"], d, e))
        rows.sort(key=lambda r: (r[0], r[1]))
        return [(u, SubInterest.model_validate_json(d), np.asarray(e, dtype=np.float32)) for u, _, d, e in rows]
