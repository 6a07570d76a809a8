"""The user's stored memory: per-user locks, the change history, hand edits, undo, export, import and forget.

Why a module of its own: every write of a profile (observe, feedback, an edit, undo, import) is read-change-save
under the user's lock and leaves one history entry; `UserMemory` is that one place, and the operations here are
plain functions over it, so the façade (agent/service.py) only validates ids and wires. The history store is a
stores/ class the façade passes in (`make_history`): stages see it only through the `HistoryLog` protocol.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from interestlens.agent.api_models import HistoryList, ImportResult, UserExport
from interestlens.agent.errors import InvalidInputError, UnknownIdError
from interestlens.agent.models import (
    EvidenceSpan,
    HistoryEntry,
    HistoryOp,
    InterestChange,
    InterestOrigin,
    InterestProfile,
    Polarity,
    SourceText,
    SubInterest,
)
from interestlens.agent.profile import MAX_WEIGHT
from interestlens.agent.protocols import Store


class HistoryLog(Protocol):
    """Per-user change history (stores/history.py `HistoryStore`)."""

    def append(self, entry: HistoryEntry) -> None: ...

    def entries(self, user_id: str) -> list[HistoryEntry]: ...

    def count(self, user_id: str) -> int: ...

    def delete_user(self, user_id: str) -> None: ...


class UserMemory:
    """Per-user locks and the change history around one store: every profile write goes through here."""

    def __init__(self, store: Store, make_history: Callable[[Any, str], HistoryLog]) -> None:
        self.store = store
        self._make_history = make_history
        self._history: HistoryLog | None = None
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @property
    def history(self) -> HistoryLog | None:
        """The history, in the same Chroma as the profile (None for a store without a client)."""
        if self._history is None:
            client = getattr(self.store, "client", None)
            if client is not None:
                self._history = self._make_history(client, getattr(self.store, "namespace", ""))
        return self._history

    @contextlib.contextmanager
    def lock(self, user_id: str) -> Iterator[None]:
        # Profile updates are read-merge-write: serialise them per user within this process, and across
        # processes through the store's lease where it has one (a Chroma server shared by several processes).
        with self._guard:
            lock = self._locks.setdefault(user_id, threading.Lock())
        lease = getattr(self.store, "user_lease", None)
        with lock, (lease(user_id) if lease is not None else contextlib.nullcontext()):
            yield

    def record(
        self, op: HistoryOp, before: InterestProfile | None, after: InterestProfile, *,
        source_text: str | None = None, item_id: str | None = None, undoes: str | None = None,
        interaction_ts: datetime | None = None,
    ) -> None:
        """One history entry: the interests that changed between `before` and `after`."""
        log = self.history
        if log is None:
            return
        old = {i.id: i for i in before.interests} if before else {}
        new = {i.id: i for i in after.interests}
        changes = [
            InterestChange(
                interest_id=iid, name=(new.get(iid) or old[iid]).name, before=old.get(iid), after=new.get(iid)
            )
            for iid in dict.fromkeys([*old, *new])
            if old.get(iid) != new.get(iid)
        ]
        log.append(
            HistoryEntry(
                user_id=after.user_id, operation=op, changes=changes, source_text=source_text, item_id=item_id,
                profile_version=after.version, undoes=undoes, profile_before=before, interaction_ts=interaction_ts,
            )
        )

    def change(
        self, user_id: str, op: HistoryOp, mutate: Callable[[InterestProfile], None], *,
        create: bool = False, source_text: str | None = None, item_id: str | None = None,
        sources: Sequence[SourceText] = (),
    ) -> InterestProfile:
        """Read, change, save and record one edit of the user's profile (under the user lock)."""
        with self.lock(user_id):
            before = self.store.load_profile(user_id)
            if before is None and not create:
                raise UnknownIdError(f"unknown user '{user_id}': observe some text for this user first")
            profile = before.model_copy(deep=True) if before else InterestProfile(user_id=user_id)
            mutate(profile)
            profile.version = (before.version if before else 0) + 1
            profile.updated_at = datetime.now(UTC)
            if sources:
                self.store.add_sources(user_id, list(sources))
            self.store.save_profile(profile)
            self.record(op, before, profile, source_text=source_text, item_id=item_id)
            return profile

    def has_data(self, user_id: str) -> bool:
        log = self.history
        return bool(
            self.store.has_profile(user_id)
            or (log is not None and log.count(user_id))
            or self.store.get_sources(user_id)
            or self.store.user_interacted_items(user_id)
        )


# ---------------------------------------------------------------------------------------------- hand edits
def interest_name(name: str) -> str:
    """A typed interest name, whitespace collapsed; InvalidInputError when blank or over 120 characters."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError("an interest name must be a non-empty string")
    cleaned = " ".join(name.split())
    if len(cleaned) > 120:
        raise InvalidInputError(f"an interest name has at most 120 characters, got {len(cleaned)}")
    return cleaned


def check_weight(weight: float) -> None:
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= MAX_WEIGHT:
        raise InvalidInputError(f"weight must be a number between 0 and {MAX_WEIGHT}, got {weight!r}")


def _target(profile: InterestProfile, interest_id: str) -> SubInterest:
    target = profile.get(interest_id)
    if target is None:
        raise UnknownIdError(f"user '{profile.user_id}' has no interest '{interest_id}'")
    return target


def set_muted(memory: UserMemory, user_id: str, interest_id: str, muted: bool) -> InterestProfile:
    def mutate(p: InterestProfile) -> None:
        _target(p, interest_id).muted = muted

    return memory.change(user_id, HistoryOp.MUTE if muted else HistoryOp.UNMUTE, mutate)


def delete_interest(memory: UserMemory, user_id: str, interest_id: str) -> InterestProfile:
    def mutate(p: InterestProfile) -> None:
        _target(p, interest_id)
        p.interests = [i for i in p.interests if i.id != interest_id]

    return memory.change(user_id, HistoryOp.DELETE, mutate)


def rename_interest(memory: UserMemory, user_id: str, interest_id: str, new_name: str) -> InterestProfile:
    def mutate(p: InterestProfile) -> None:
        _target(p, interest_id).name = new_name

    return memory.change(user_id, HistoryOp.RENAME, mutate, source_text=new_name)


def reweight_interest(memory: UserMemory, user_id: str, interest_id: str, weight: float) -> InterestProfile:
    def mutate(p: InterestProfile) -> None:
        _target(p, interest_id).weight = float(weight)

    return memory.change(user_id, HistoryOp.REWEIGHT, mutate)


def flip_interest(memory: UserMemory, user_id: str, interest_id: str) -> InterestProfile:
    def mutate(p: InterestProfile) -> None:
        cur = _target(p, interest_id)
        cur.polarity = Polarity.DISLIKE if cur.polarity is Polarity.LIKE else Polarity.LIKE
        new_id = SubInterest(name=cur.name, polarity=cur.polarity).id
        cur.id = new_id if all(i.id != new_id for i in p.interests) else f"{new_id}-{len(p.interests)}"

    return memory.change(user_id, HistoryOp.FLIP, mutate)


def manual_interest(
    name: str, polarity: Polarity | str, weight: float, description: str
) -> tuple[SubInterest, SourceText]:
    """A hand-added interest (origin manual) and its source, the typed name; checks every argument."""
    new_name = interest_name(name)
    try:
        pol = Polarity(polarity)
    except ValueError:
        raise InvalidInputError(f"polarity must be like or dislike, got {polarity!r}") from None
    check_weight(weight)
    now = datetime.now(UTC)
    src = SourceText(text=new_name, ts=now, source="manual")
    interest = SubInterest(
        name=new_name, description=str(description)[:500], polarity=pol, weight=float(weight), confidence=1.0,
        evidence=[EvidenceSpan(source_id=src.id, start=0, end=len(new_name), text=new_name)],
        first_seen=now, last_seen=now, origin=InterestOrigin.MANUAL, extractor="manual",
    )
    return interest, src


def add_interest(memory: UserMemory, user_id: str, interest: SubInterest, src: SourceText) -> InterestProfile:
    """Add `manual_interest`'s interest (creating the profile if new); refused when the user already has it."""
    new_name = interest.name

    def mutate(p: InterestProfile) -> None:
        if p.get(interest.id) is not None:
            raise InvalidInputError(
                f"user '{user_id}' already has interest '{interest.id}' ({new_name}): reweight or flip it"
            )
        p.interests.append(interest)

    return memory.change(user_id, HistoryOp.ADD, mutate, create=True, source_text=new_name, sources=[src])


# ---------------------------------------------------------------------------------------------- undo, history
def undo(memory: UserMemory, user_id: str) -> tuple[InterestProfile, bool]:
    """Revert the latest change not yet undone; the restored profile, and whether a behaviour row went too."""
    log = memory.history
    if log is None:
        raise InvalidInputError("this store keeps no history, so there is nothing to undo")
    store = memory.store
    with memory.lock(user_id):
        entries = log.entries(user_id)
        undone = {e.undoes for e in entries if e.operation is HistoryOp.UNDO}
        target = next(
            (e for e in reversed(entries) if e.operation is not HistoryOp.UNDO and e.id not in undone), None
        )
        if target is None:
            if not entries and not store.has_profile(user_id):
                raise UnknownIdError(f"unknown user '{user_id}'")
            raise InvalidInputError(f"nothing to undo for user '{user_id}'")
        current = store.load_profile(user_id)
        restored = (target.profile_before or InterestProfile(user_id=user_id)).model_copy(deep=True)
        restored.version = (current.version if current else 0) + 1
        restored.updated_at = datetime.now(UTC)
        store.save_profile(restored)
        behaviour_changed = False
        if target.interaction_ts is not None and target.item_id:  # a feedback's behaviour row goes too
            store.behaviour.delete_interaction(user_id, target.item_id, target.interaction_ts)
            behaviour_changed = True
        memory.record(HistoryOp.UNDO, current, restored, undoes=target.id, item_id=target.item_id)
        return restored, behaviour_changed


def history(memory: UserMemory, user_id: str, limit: int | None) -> HistoryList:
    log = memory.history
    entries = log.entries(user_id) if log is not None else []
    if not entries and not memory.store.has_profile(user_id):
        raise UnknownIdError(f"unknown user '{user_id}': nothing is stored about this user")
    entries.reverse()
    return HistoryList(user_id=user_id, entries=entries[:limit] if limit else entries)


# ---------------------------------------------------------------------------------------------- export, import
def export_user(memory: UserMemory, uid: str) -> UserExport:
    store, log = memory.store, memory.history
    data = UserExport(
        user_id=uid,
        profile=store.load_profile(uid),
        sources=store.get_sources(uid),
        history=log.entries(uid) if log is not None else [],
        interactions=store.user_interactions(uid),
        last_result=store.load_last_result(uid),
        llm_cache=store.cache_records(uid),
    )
    if not (data.profile or data.sources or data.history or data.interactions):
        raise UnknownIdError(f"unknown user '{uid}': nothing is stored about this user")
    return data


def parse_export(data: UserExport | dict[str, Any] | str) -> UserExport:
    try:
        if isinstance(data, str):
            return UserExport.model_validate_json(data)
        if isinstance(data, dict):
            return UserExport.model_validate(data)
        return data
    except ValidationError as e:
        raise InvalidInputError(f"not an interestlens user export: {e.errors()[0]['msg']}") from e


def import_user(
    memory: UserMemory, export: UserExport, uid: str, *, replace: bool, forget: Callable[[str], object]
) -> ImportResult:
    """Write `export` under `uid`; an existing user is refused unless `replace` (then `forget` runs first)."""
    if memory.has_data(uid):
        if not replace:
            raise InvalidInputError(f"user '{uid}' already has data: forget it first or pass replace=True")
        forget(uid)
    store = memory.store
    with memory.lock(uid):
        profile = export.profile.model_copy(update={"user_id": uid}) if export.profile else None
        store.add_sources(uid, export.sources)
        if profile is not None:
            store.save_profile(profile)
        log = memory.history
        if log is not None:
            for entry in export.history:
                log.append(entry.model_copy(update={"user_id": uid}))
        if export.interactions:
            store.add_interactions([i.model_copy(update={"user_id": uid}) for i in export.interactions])
        for rec in export.llm_cache:
            if isinstance(rec, dict) and isinstance(rec.get("key"), str) and isinstance(rec.get("value"), dict):
                store.cache_put(uid, rec["key"], rec["value"])
        if export.last_result is not None and profile is not None:
            store.save_last_result(uid, export.last_result.model_copy(update={"user_id": uid}))
        if profile is not None:
            memory.record(HistoryOp.IMPORT, None, profile, source_text=f"import of {export.user_id}")
    return ImportResult(
        user_id=uid, interests=len(profile.interests) if profile else 0, sources=len(export.sources),
        history=len(export.history), interactions=len(export.interactions),
    )


def forget(memory: UserMemory, user_id: str, *, purge: bool) -> bool:
    """Remove every record of the user; whether anything was stored."""
    # Under the user lock: every write for this user (observe, edits, recommend's last result) takes it
    # too, and checks the profile still exists, so nothing is written back after this.
    with memory.lock(user_id):
        existed = memory.has_data(user_id)
        log = memory.history
        if log is not None:  # first: the store's purge below then covers its records too
            log.delete_user(user_id)
        memory.store.delete_user(user_id, purge=purge)
    return existed
