"""`InterestAgent`: the one entry object. It wires the stages to the store and the backends.

observe:   texts (+ consumed items) -> link named titles -> decompose -> ground -> merge into the stored profile
recommend: profile (+ optional expansion) -> compose intents -> retrieve (vector + behaviour, fused, filtered,
           diversified) -> rerank with the LLM (or template justifications) -> remembered for `explain`
Every surface (CLI, LangChain, OpenAI functions, MCP, chat, evals) goes through this class.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from interestlens.agent.compose import compose_intents
from interestlens.agent.config import Settings
from interestlens.agent.conversation import is_message_like, plan_turns, to_messages
from interestlens.agent.decompose import decompose, polarity_of
from interestlens.agent.embeddings import make_embedder
from interestlens.agent.errors import InvalidInputError, UnknownIdError
from interestlens.agent.expand import expand_adjacent, expand_collaborative, expand_knowledge
from interestlens.agent.facets import FacetIndex, facet_index_for, request_facets
from interestlens.agent.filters import parse_where
from interestlens.agent.fusion import FUSION_FILE, Fusion, LinearFusion, load_fusion
from interestlens.agent.linking import TitleLinker, link_interests
from interestlens.agent.llm import make_llm
from interestlens.agent.llm.base import Stopwatch, StructuredLLM
from interestlens.agent.models import (
    Candidate,
    CatalogCount,
    CatalogPage,
    CatalogRemoveResult,
    EvidenceSpan,
    Explanation,
    FeedbackKind,
    FeedbackResult,
    HistoryEntry,
    HistoryList,
    HistoryOp,
    ImportResult,
    Interaction,
    InterestChange,
    InterestOrigin,
    InterestProfile,
    Item,
    ItemHit,
    ObserveResult,
    Polarity,
    RecommendationResult,
    SourceText,
    StageStats,
    SubInterest,
    Topic,
    UserExport,
)
from interestlens.agent.profile import MAX_WEIGHT, merge_interests
from interestlens.agent.protocols import Embedder, Store
from interestlens.agent.rerank import justify_without_llm
from interestlens.agent.rerank import rerank as llm_rerank
from interestlens.agent.retrieve import CandidatePool, RequestFacets, build_pool, retrieve
from interestlens.agent.text import decode_user_bytes, validate_text
from interestlens.agent.topics import build_topics
from interestlens.agent.tracing import traced
from interestlens.stores.catalog_files import read_catalog_file
from interestlens.stores.catalog_io import read_interactions_jsonl
from interestlens.stores.chroma_store import ChromaStore, with_metadata_text
from interestlens.stores.history import HistoryStore
from interestlens.stores.ids import validate_user_id

EXPANSIONS = ("adjacent", "collaborative", "knowledge")
FLOOR_LLMS = ("smollm2",)  # packaged models whose LLM stages are off unless asked for (Settings, "auto")
MAX_K = 500
_UNSET: Any = object()


@dataclass
class _ChatInput:
    """What `observe` takes from chat messages (see agent/conversation.py)."""

    texts: list[SourceText] = field(default_factory=list)
    references: list[SubInterest] = field(default_factory=list)
    reference_sources: list[SourceText] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


class InterestAgent:
    """Decompose what users write into grounded sub-interests and recommend items with cited justifications.

    >>> agent = InterestAgent(Settings(store="/tmp/il", llm="none"))
    >>> agent.add_items([Item(id="b1", title="Dune", text="Dune. Desert planet epic science fiction.")])
    >>> agent.observe("u1", "I love epic science fiction but I can't stand horror.")
    >>> agent.recommend("u1", k=5).recommendations
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        llm: StructuredLLM | str | None = _UNSET,
        embedder: Embedder | None = None,
        store: Store | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.embedder = embedder or make_embedder(
            self.settings.embedder, base_url=self.settings.openai_base_url, api_key=self.settings.openai_api_key
        )
        # Typed as the protocol (a type checker holds ChromaStore to it here; tests/test_architecture.py checks the
        # signatures): any other Store may be passed.
        self.store: Store = ChromaStore(self.settings.store, self.embedder) if store is None else store
        # The LLM loads on first use: recommend without rerank never pays for it.
        self._llm_spec: StructuredLLM | str | None = self.settings.llm if llm is _UNSET else llm
        self._llm: StructuredLLM | None = None
        self._llm_loaded = False
        self._llm_lock = threading.Lock()
        self._linker: TitleLinker | None = None
        self._fusion: Fusion | None = None
        self._facet_index: FacetIndex | None = None
        self._history: HistoryStore | None = None
        self._titles: tuple[int, list[tuple[str, str]]] | None = None  # (catalog size, [(title, id)])
        self._user_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # ------------------------------------------------------------------ backends
    @property
    def llm(self) -> StructuredLLM | None:
        if not self._llm_loaded:
            with self._llm_lock:
                if not self._llm_loaded:
                    spec = self._llm_spec
                    if isinstance(spec, str):
                        self._llm = make_llm(spec, self.settings)
                    else:
                        self._llm = spec
                    self._llm_loaded = True
        return self._llm

    @property
    def llm_id(self) -> str:
        spec = self._llm_spec
        if spec is None or spec in ("none", ""):
            return "none"
        if isinstance(spec, str):
            return spec
        return spec.model_id

    @property
    def fusion(self) -> Fusion:
        """The fitted ranker named in settings (or `<store>/fusion.json`), else the linear blend of settings."""
        if self._fusion is None:
            path = self.settings.fusion_model
            if path is None and "://" not in self.settings.store:
                default = Path(self.settings.store).expanduser() / FUSION_FILE
                path = str(default) if default.is_file() else None
            self._fusion = load_fusion(path) if path else LinearFusion(self.settings.fusion_weights)
        return self._fusion

    def request_facets(self, profile: InterestProfile, context: str | None) -> RequestFacets | None:
        """The request's catalog facets (agent.facets), or None when the catalog has no facet metadata."""
        if self._facet_index is None:
            self._facet_index = facet_index_for(self.store)
        index = self._facet_index
        if not index.by_facet:
            return None
        # Popularity comes from the pool builder, which reads it once per request.
        facets = RequestFacets(request_facets(profile, context, index, self.embedder), index)
        return facets if facets else None

    def set_fusion(self, fusion: Fusion | None) -> None:
        """Use this fusion from now on (None: back to what settings name)."""
        self._fusion = fusion

    def stage_on(self, flag: str) -> bool:
        """Whether an LLM stage runs: its setting when set, else auto (see Settings): off for the packaged floor
        model named by default (`smollm2`), on for any LLM the caller chose."""
        value = getattr(self.settings, flag)
        if value is not None:
            return bool(value)
        return not (isinstance(self._llm_spec, str) and self._llm_spec in FLOOR_LLMS)

    @contextlib.contextmanager
    def _user_lock(self, user_id: str) -> Iterator[None]:
        # Profile updates are read-merge-write: serialise them per user within this process, and across
        # processes through the store's lease where it has one (a Chroma server shared by several processes).
        with self._locks_guard:
            lock = self._user_locks.setdefault(user_id, threading.Lock())
        lease = getattr(self.store, "user_lease", None)
        with lock, (lease(user_id) if lease is not None else contextlib.nullcontext()):
            yield

    def _title_linker(self) -> TitleLinker:
        if self._linker is None:
            self._linker = TitleLinker(self.store.iter_items(), popularity=self.store.popularity_scores())
        return self._linker

    # ------------------------------------------------------------------ catalog
    def add_items(self, items: Iterable[Item], progress: bool = False) -> int:
        fields = self.settings.item_text_fields
        n = self.store.upsert_items(
            (with_metadata_text(it, fields) if isinstance(it, Item) else it for it in items), progress=progress
        )
        self._linker = None
        self._facet_index = None
        return n

    def add_interactions(self, interactions: Iterable[Interaction]) -> int:
        n = self.store.add_interactions(interactions)
        self._linker = None  # popularity breaks title ties
        return n

    # ------------------------------------------------------------------ observe
    def _to_sources(self, texts: str | SourceText | Sequence[str | SourceText]) -> list[SourceText]:
        if isinstance(texts, str | SourceText | bytes):
            texts = [texts]  # type: ignore[list-item]
        if not isinstance(texts, list | tuple):
            raise InvalidInputError(f"texts must be a string or a list of strings, got {type(texts).__name__}")
        now = datetime.now(UTC)
        sources: list[SourceText] = []
        for t in texts:
            if isinstance(t, bytes):
                t = decode_user_bytes(t)
            if isinstance(t, str):
                t = SourceText(text=t, ts=now, source="chat")
            if not isinstance(t, SourceText):
                raise InvalidInputError(f"texts must be strings or SourceText, got {type(t).__name__}")
            # Evidence offsets index the cleaned text (control characters removed), so store that.
            cleaned = validate_text(t.text, self.settings.max_text_chars)
            sources.append(t if cleaned == t.text else SourceText(**{**t.model_dump(), "text": cleaned, "id": ""}))
        return sources

    @traced("observe")
    def observe(
        self,
        user_id: str,
        texts: str | SourceText | Sequence[str | SourceText] | Sequence[Any] = (),
        *,
        history: Sequence[str] = (),
        messages: Sequence[Any] | None = None,
        seen: Sequence[str] = (),
    ) -> ObserveResult:
        """Decompose texts (and consumed items) into sub-interests and merge them into the user's profile.

        `history`: items consumed and liked (evidence and seeds); `seen`: consumed without a verdict (only
        never recommended again).

        `texts` may also be chat messages (`[{"role", "content"}]`, LangChain messages), or pass them as
        `messages`: only user turns are observed; requests and chit-chat are not stored; a reply such as
        "yes, more like that" becomes a like of the item the previous assistant turn suggested.
        """
        validate_user_id(user_id)
        chat = self._from_messages(messages if messages is not None else texts) if (
            messages is not None or self._is_messages(texts)
        ) else None
        if chat is not None:
            texts = chat.texts
            if not texts and not chat.references and not history:
                return self._nothing_observed(user_id, chat.requests)
        sources = self._to_sources(texts) if texts else []
        history = [str(h) for h in history]
        if not sources and not history and not (chat and chat.references):
            raise InvalidInputError("observe needs at least one text or history item")
        stats = StageStats()
        now = datetime.now(UTC)

        history_items = self.store.get_items(history)
        unknown = sorted(set(history) - {i.id for i in history_items})
        if unknown:
            stats.warnings.append(f"unknown history item ids skipped: {', '.join(unknown[:10])}")
        history_sources = [
            SourceText(text=i.text, source="history", item_id=i.id, ts=now) for i in history_items
        ]

        # Titles the user names ("something like Super Troopers") become evidence and retrieval seeds.
        sw = Stopwatch()
        linked: list[SubInterest] = []
        if sources and self.store.count_items():
            linked = link_interests(self._title_linker(), sources, polarity_of, now=now)
        stats.latency_ms["link"] = sw.ms

        llm = self.llm if self.stage_on("use_llm_decompose") else None
        # The cache is the store's, scoped to this user, so `forget` removes it with the rest.
        interests = decompose(
            sources + history_sources, llm=llm, embedder=self.embedder, settings=self.settings,
            stats=stats, cache=self.store, user_id=user_id, now=now,
        )
        referenced = chat.references if chat else []
        ref_sources = chat.reference_sources if chat else []
        with self._user_lock(user_id):
            before = self.store.load_profile(user_id)
            profile = before.model_copy(deep=True) if before else InterestProfile(user_id=user_id)
            for h in history_items:
                if h.id not in profile.history:
                    profile.history.append(h.id)
            known_seen = {str(i) for i in seen} - set(profile.history) - set(profile.seen)
            profile.seen.extend(sorted(i.id for i in self.store.get_items(sorted(known_seen))))
            outcome = merge_interests(
                profile, linked + referenced + interests, self.embedder, self.settings, now=now
            )
            self.store.add_sources(user_id, sources + ref_sources + history_sources)
            self.store.save_profile(outcome.profile)
            self._record(
                HistoryOp.OBSERVE, before, outcome.profile,
                source_text="\n".join(s.text for s in sources + ref_sources)[:2000] or None,
                item_id=",".join(h.id for h in history_items)[:256] or None,
            )
        return ObserveResult(
            user_id=user_id,
            added=outcome.added,
            reinforced=outcome.reinforced,
            linked_item_ids=sorted({i for s in linked for i in s.linked_item_ids}),
            profile_version=outcome.profile.version,
            stats=stats,
            requests=chat.requests if chat else [],
            referenced_item_ids=[i for s in referenced for i in s.linked_item_ids],
        )

    # ------------------------------------------------------------------ chat messages
    @staticmethod
    def _is_messages(texts: Any) -> bool:
        return isinstance(texts, list | tuple) and bool(texts) and all(is_message_like(t) for t in texts)

    def _from_messages(self, raw: Any) -> _ChatInput:
        """User turns to observe, replies about the last suggestion (as linked interests), and requests."""
        if isinstance(raw, str | bytes) or not isinstance(raw, list | tuple):
            raise InvalidInputError("messages must be a list of {role, content} messages")
        messages = to_messages(raw)
        has_items = self.store.count_items() > 0

        def link(text: str) -> list[Item]:
            return self._titles_in(text) if has_items else []

        def find_ids(ids: list[str]) -> list[Item]:
            return self.store.get_items(ids) if has_items else []

        plan = plan_turns(messages, find_ids, link)
        now = datetime.now(UTC)
        out = _ChatInput(requests=[t.text for t in plan.requests])
        for turn in plan.preferences:
            out.texts.append(SourceText(text=turn.text, ts=now, source="chat"))
        for turn in plan.references:
            item = turn.item
            if item is None:
                continue
            src = self._to_sources([SourceText(text=turn.text, ts=now, source="chat", item_id=item.id)])[0]
            start, end = turn.span
            end = min(end, len(src.text))
            out.reference_sources.append(src)
            out.references.append(
                SubInterest(
                    name=item.title[:120] or item.id, description=item.text[:200], polarity=turn.polarity,
                    weight=1.0, confidence=0.8, first_seen=now, last_seen=now, linked_item_ids=[item.id],
                    evidence=[EvidenceSpan(source_id=src.id, start=start, end=end, text=src.text[start:end])],
                    extractor="chat-reference",
                )
            )
        return out

    def _titles_in(self, text: str) -> list[Item]:
        """Catalog items whose exact title an assistant turn contains (whole words, case-sensitive), in order.

        Lenient on purpose, unlike the user-text linker: an assistant naming an item means that item."""
        count = self.store.count_items()
        if self._titles is None or self._titles[0] != count:
            self._titles = (count, [(it.title, it.id) for it in self.store.iter_items() if len(it.title) >= 3])
        hits: list[tuple[int, int, str]] = []
        for title, item_id in self._titles[1]:
            pos = text.find(title)
            if pos >= 0 and re.search(rf"(?<!\w){re.escape(title)}(?!\w)", text):
                hits.append((pos, -len(title), item_id))
        hits.sort()
        return self.store.get_items([i for _, _, i in hits])

    def _nothing_observed(self, user_id: str, requests: list[str]) -> ObserveResult:
        profile = self.store.load_profile(user_id)
        return ObserveResult(
            user_id=user_id, profile_version=profile.version if profile else 0, requests=requests
        )

    # ------------------------------------------------------------------ profile
    def profile(self, user_id: str) -> InterestProfile:
        validate_user_id(user_id)
        profile = self.store.load_profile(user_id)
        if profile is None:
            raise UnknownIdError(f"unknown user '{user_id}': observe some text for this user first")
        return profile

    def _target(self, profile: InterestProfile, interest_id: str) -> SubInterest:
        target = profile.get(interest_id)
        if target is None:
            raise UnknownIdError(f"user '{profile.user_id}' has no interest '{interest_id}'")
        return target

    def _change(
        self, user_id: str, op: HistoryOp, mutate: Callable[[InterestProfile], None], *,
        create: bool = False, source_text: str | None = None, item_id: str | None = None,
        sources: Sequence[SourceText] = (),
    ) -> InterestProfile:
        """Read, change, save and record one edit of the user's profile (under the user lock)."""
        validate_user_id(user_id)
        with self._user_lock(user_id):
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
            self._record(op, before, profile, source_text=source_text, item_id=item_id)
            return profile

    def set_muted(self, user_id: str, interest_id: str, muted: bool = True) -> InterestProfile:
        """Mute (kept, not used for recommendations) or unmute an interest."""

        def mutate(p: InterestProfile) -> None:
            self._target(p, interest_id).muted = muted

        return self._change(user_id, HistoryOp.MUTE if muted else HistoryOp.UNMUTE, mutate)

    def delete_interest(self, user_id: str, interest_id: str) -> InterestProfile:
        def mutate(p: InterestProfile) -> None:
            self._target(p, interest_id)
            p.interests = [i for i in p.interests if i.id != interest_id]

        return self._change(user_id, HistoryOp.DELETE, mutate)

    def rename_interest(self, user_id: str, interest_id: str, name: str) -> InterestProfile:
        """Give an interest a new name (its id, evidence and weight stay)."""
        new_name = _interest_name(name)

        def mutate(p: InterestProfile) -> None:
            self._target(p, interest_id).name = new_name

        return self._change(user_id, HistoryOp.RENAME, mutate, source_text=new_name)

    def reweight_interest(self, user_id: str, interest_id: str, weight: float) -> InterestProfile:
        """Set an interest's weight (0 to MAX_WEIGHT; 1 is a plain statement)."""
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= MAX_WEIGHT:
            raise InvalidInputError(f"weight must be a number between 0 and {MAX_WEIGHT}, got {weight!r}")

        def mutate(p: InterestProfile) -> None:
            self._target(p, interest_id).weight = float(weight)

        return self._change(user_id, HistoryOp.REWEIGHT, mutate)

    def flip_interest(self, user_id: str, interest_id: str) -> InterestProfile:
        """A like becomes a dislike and back. The id encodes polarity, so the interest gets its new id."""

        def mutate(p: InterestProfile) -> None:
            cur = self._target(p, interest_id)
            cur.polarity = Polarity.DISLIKE if cur.polarity is Polarity.LIKE else Polarity.LIKE
            new_id = SubInterest(name=cur.name, polarity=cur.polarity).id
            cur.id = new_id if all(i.id != new_id for i in p.interests) else f"{new_id}-{len(p.interests)}"

        return self._change(user_id, HistoryOp.FLIP, mutate)

    def add_interest(
        self, user_id: str, name: str, polarity: Polarity | str = Polarity.LIKE, weight: float = 1.0,
        description: str = "",
    ) -> InterestProfile:
        """Add an interest by hand (origin manual); the typed name is its evidence. Creates the profile if new."""
        new_name = _interest_name(name)
        try:
            pol = Polarity(polarity)
        except ValueError:
            raise InvalidInputError(f"polarity must be like or dislike, got {polarity!r}") from None
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= MAX_WEIGHT:
            raise InvalidInputError(f"weight must be a number between 0 and {MAX_WEIGHT}, got {weight!r}")
        now = datetime.now(UTC)
        src = SourceText(text=new_name, ts=now, source="manual")
        interest = SubInterest(
            name=new_name, description=str(description)[:500], polarity=pol, weight=float(weight), confidence=1.0,
            evidence=[EvidenceSpan(source_id=src.id, start=0, end=len(new_name), text=new_name)],
            first_seen=now, last_seen=now, origin=InterestOrigin.MANUAL, extractor="manual",
        )

        def mutate(p: InterestProfile) -> None:
            if p.get(interest.id) is not None:
                raise InvalidInputError(
                    f"user '{user_id}' already has interest '{interest.id}' ({new_name}): reweight or flip it"
                )
            p.interests.append(interest)

        return self._change(user_id, HistoryOp.ADD, mutate, create=True, source_text=new_name, sources=[src])

    def undo(self, user_id: str) -> InterestProfile:
        """Revert the latest change not yet undone (observe, feedback or an edit); repeat to walk back."""
        validate_user_id(user_id)
        store = self.history_store
        if store is None:
            raise InvalidInputError("this store keeps no history, so there is nothing to undo")
        with self._user_lock(user_id):
            entries = store.entries(user_id)
            undone = {e.undoes for e in entries if e.operation is HistoryOp.UNDO}
            target = next(
                (e for e in reversed(entries) if e.operation is not HistoryOp.UNDO and e.id not in undone), None
            )
            if target is None:
                if not entries and not self.store.has_profile(user_id):
                    raise UnknownIdError(f"unknown user '{user_id}'")
                raise InvalidInputError(f"nothing to undo for user '{user_id}'")
            current = self.store.load_profile(user_id)
            restored = (target.profile_before or InterestProfile(user_id=user_id)).model_copy(deep=True)
            restored.version = (current.version if current else 0) + 1
            restored.updated_at = datetime.now(UTC)
            self.store.save_profile(restored)
            if target.interaction_ts is not None and target.item_id:  # a feedback's behaviour row goes too
                self.store.behaviour.delete_interaction(user_id, target.item_id, target.interaction_ts)
                self._linker = None  # popularity changed
            self._record(HistoryOp.UNDO, current, restored, undoes=target.id, item_id=target.item_id)
            return restored

    # ------------------------------------------------------------------ history, export, import
    @property
    def history_store(self) -> HistoryStore | None:
        """Per-user change history, in the same Chroma as the profile (None for a store without a client)."""
        if self._history is None:
            client = getattr(self.store, "client", None)
            if client is not None:
                self._history = HistoryStore(client, getattr(self.store, "namespace", ""))
        return self._history

    def _record(
        self, op: HistoryOp, before: InterestProfile | None, after: InterestProfile, *,
        source_text: str | None = None, item_id: str | None = None, undoes: str | None = None,
        interaction_ts: datetime | None = None,
    ) -> None:
        store = self.history_store
        if store is None:
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
        store.append(
            HistoryEntry(
                user_id=after.user_id, operation=op, changes=changes, source_text=source_text, item_id=item_id,
                profile_version=after.version, undoes=undoes, profile_before=before, interaction_ts=interaction_ts,
            )
        )

    def history(self, user_id: str, limit: int | None = None) -> HistoryList:
        """Every change to the user's profile, newest first: time, operation, before/after, source text or item."""
        validate_user_id(user_id)
        store = self.history_store
        entries = store.entries(user_id) if store is not None else []
        if not entries and not self.store.has_profile(user_id):
            raise UnknownIdError(f"unknown user '{user_id}': nothing is stored about this user")
        entries.reverse()
        return HistoryList(user_id=user_id, entries=entries[:limit] if limit else entries)

    def export_user(self, user_id: str) -> UserExport:
        """Everything stored about the user, as one JSON-serialisable model (`import_user` restores it)."""
        uid = validate_user_id(user_id)
        store = self.history_store
        data = UserExport(
            user_id=uid,
            profile=self.store.load_profile(uid),
            sources=self.store.get_sources(uid),
            history=store.entries(uid) if store is not None else [],
            interactions=self.store.user_interactions(uid),
            last_result=self.store.load_last_result(uid),
            llm_cache=self.store.cache_records(uid),
        )
        if not (data.profile or data.sources or data.history or data.interactions):
            raise UnknownIdError(f"unknown user '{uid}': nothing is stored about this user")
        return data

    def import_user(
        self, data: UserExport | dict[str, Any] | str, *, user_id: str | None = None, replace: bool = False
    ) -> ImportResult:
        """Restore an export (optionally under another id). An existing user is refused unless `replace`."""
        try:
            if isinstance(data, str):
                export = UserExport.model_validate_json(data)
            elif isinstance(data, dict):
                export = UserExport.model_validate(data)
            else:
                export = data
        except ValidationError as e:
            raise InvalidInputError(f"not an interestlens user export: {e.errors()[0]['msg']}") from e
        uid = validate_user_id(user_id or export.user_id)
        if self._has_data(uid):
            if not replace:
                raise InvalidInputError(f"user '{uid}' already has data: forget it first or pass replace=True")
            self.forget(uid)
        with self._user_lock(uid):
            profile = export.profile.model_copy(update={"user_id": uid}) if export.profile else None
            self.store.add_sources(uid, export.sources)
            if profile is not None:
                self.store.save_profile(profile)
            store = self.history_store
            if store is not None:
                for entry in export.history:
                    store.append(entry.model_copy(update={"user_id": uid}))
            if export.interactions:
                self.store.add_interactions([i.model_copy(update={"user_id": uid}) for i in export.interactions])
            for rec in export.llm_cache:
                if isinstance(rec, dict) and isinstance(rec.get("key"), str) and isinstance(rec.get("value"), dict):
                    self.store.cache_put(uid, rec["key"], rec["value"])
            if export.last_result is not None and profile is not None:
                self.store.save_last_result(uid, export.last_result.model_copy(update={"user_id": uid}))
            if profile is not None:
                self._record(HistoryOp.IMPORT, None, profile, source_text=f"import of {export.user_id}")
        return ImportResult(
            user_id=uid, interests=len(profile.interests) if profile else 0, sources=len(export.sources),
            history=len(export.history), interactions=len(export.interactions),
        )

    def _has_data(self, user_id: str) -> bool:
        store = self.history_store
        return bool(
            self.store.has_profile(user_id)
            or (store is not None and store.count(user_id))
            or self.store.get_sources(user_id)
            or self.store.user_interacted_items(user_id)
        )

    # ------------------------------------------------------------------ feedback
    @traced("feedback")
    def feedback(
        self, user_id: str, item_id: str, kind: FeedbackKind | str, note: str | None = None
    ) -> FeedbackResult:
        """The user's verdict on an item: liked / disliked (an interest grounded in the item and the note, and a
        behaviour row) or seen. Liked and seen items join the history (never recommended again); a disliked
        item is excluded through its dislike."""
        validate_user_id(user_id)
        try:
            verdict = FeedbackKind(kind)
        except ValueError:
            raise InvalidInputError(f"feedback must be liked, disliked or seen, got {kind!r}") from None
        item = self.store.get_item(item_id)
        note = (note or "").strip() or None
        if note is not None:
            note = validate_text(note, self.settings.max_text_chars)
        now = datetime.now(UTC)
        sources: list[SourceText] = []
        interest: SubInterest | None = None
        if verdict is not FeedbackKind.SEEN:
            label = (item.title or item.text)[:200]
            item_src = SourceText(text=label, ts=now, source="feedback", item_id=item.id)
            sources.append(item_src)
            evidence = [EvidenceSpan(source_id=item_src.id, start=0, end=len(label), text=label)]
            if note:
                note_src = SourceText(text=note, ts=now, source="feedback", item_id=item.id)
                sources.append(note_src)
                evidence.insert(0, EvidenceSpan(source_id=note_src.id, start=0, end=len(note), text=note))
            interest = SubInterest(
                name=(item.title or item.id)[:120], description=item.text[:200],
                polarity=Polarity.LIKE if verdict is FeedbackKind.LIKED else Polarity.DISLIKE,
                weight=1.0, confidence=0.95, evidence=evidence, first_seen=now, last_seen=now,
                origin=InterestOrigin.FEEDBACK, linked_item_ids=[item.id], extractor="feedback",
            )
        with self._user_lock(user_id):
            before = self.store.load_profile(user_id)
            profile = before.model_copy(deep=True) if before else InterestProfile(user_id=user_id)
            if verdict is not FeedbackKind.DISLIKED and item.id not in profile.history:
                profile.history.append(item.id)
            if interest is not None:
                outcome = merge_interests(profile, [interest], self.embedder, self.settings, now=now)
                profile = outcome.profile
                interest = next(
                    (i for i in profile.interests if item.id in i.linked_item_ids), interest
                )
            else:
                profile.version = (before.version if before else 0) + 1
                profile.updated_at = now
            value = {FeedbackKind.LIKED: 1.0, FeedbackKind.SEEN: 1.0, FeedbackKind.DISLIKED: -1.0}[verdict]
            self.store.add_interactions([Interaction(user_id=user_id, item_id=item.id, value=value, ts=now)])
            if sources:
                self.store.add_sources(user_id, sources)
            self.store.save_profile(profile)
            self._record(
                HistoryOp.FEEDBACK, before, profile, source_text=note or verdict.value, item_id=item.id,
                interaction_ts=now,
            )
        self._linker = None  # popularity changed
        return FeedbackResult(
            user_id=user_id, item_id=item.id, kind=verdict, interest=interest, profile_version=profile.version
        )

    # ------------------------------------------------------------------ catalog management
    def load_catalog(
        self, path: str | Path, interactions: str | Path | None = None, progress: bool = False
    ) -> int:
        """Add the items of a .jsonl or .csv file (and optional interactions JSONL); returns items written."""
        n = self.add_items(read_catalog_file(path), progress=progress)
        if interactions is not None:
            self.add_interactions(read_interactions_jsonl(interactions))
        return n

    def list_items(
        self, limit: int = 20, offset: int = 0, where: str | dict[str, Any] | None = None
    ) -> CatalogPage:
        _check_page(limit, offset)
        items, total = self.store.list_items(limit, offset, parse_where(where))
        return CatalogPage(items=[ItemHit(item=i) for i in items], total=total, offset=offset)

    def get_items(self, ids: Sequence[str]) -> CatalogPage:
        """The items asked for, in order; ids not in the catalog are listed in `unknown_ids`."""
        if isinstance(ids, str):
            ids = [ids]
        found = self.store.get_items(list(ids))
        known = {i.id for i in found}
        return CatalogPage(
            items=[ItemHit(item=i) for i in found], total=len(found),
            unknown_ids=[i for i in dict.fromkeys(ids) if i not in known],
        )

    def count_items(self, where: str | dict[str, Any] | None = None) -> CatalogCount:
        parsed = parse_where(where)
        count = self.store.count_items() if parsed is None else self.store.list_items(0, 0, parsed)[1]
        return CatalogCount(count=count, where=parsed)

    def remove_items(self, ids: Sequence[str]) -> CatalogRemoveResult:
        if isinstance(ids, str):
            ids = [ids]
        if not ids:
            raise InvalidInputError("remove needs at least one item id")
        removed = self.store.delete_items(list(ids))
        self._linker = None
        self._facet_index = None
        return CatalogRemoveResult(removed=removed, unknown=[i for i in dict.fromkeys(ids) if i not in removed])

    def search_items(self, query: str, k: int = 10, where: str | dict[str, Any] | None = None) -> CatalogPage:
        """Items nearest to a text (cosine similarity of the embeddings), optionally filtered by `where`."""
        query = validate_text((query or "").strip(), self.settings.max_text_chars) if query else ""
        if not query.strip():
            raise InvalidInputError("search needs a non-empty query")
        _check_page(k, 0)
        parsed = parse_where(where)
        hits = self.store.query_items(self.embedder.embed([query]), k, where=parsed)[0]
        items = {i.id: i for i in self.store.get_items([h for h, _ in hits])}
        total = self.store.count_items() if parsed is None else self.store.list_items(0, 0, parsed)[1]
        return CatalogPage(
            items=[ItemHit(item=items[h], score=round(s, 4)) for h, s in hits if h in items],
            total=total, query=query,
        )

    @traced("forget")
    def forget(self, user_id: str, *, purge: bool = True) -> bool:
        """Remove every trace of the user: profile, interests, sources, history, caches, remembered results.

        `purge` (default) also removes the deleted bytes from disk: Chroma's write-ahead log and SQLite's
        free pages (stores/purge.py); evaluations turn it off for their temporary users, as it rewrites the
        store file. Returns False when nothing was stored about the user (so a caller can say so)."""
        validate_user_id(user_id)
        # Under the user lock: every write for this user (observe, edits, recommend's last result) takes it
        # too, and checks the profile still exists, so nothing is written back after this.
        with self._user_lock(user_id):
            existed = self._has_data(user_id)
            if self.history_store is not None:  # first: the store's purge below then covers its records too
                self.history_store.delete_user(user_id)
            self.store.delete_user(user_id, purge=purge)
        return existed

    # ------------------------------------------------------------------ recommend
    @traced("recommend")
    def recommend(
        self,
        user_id: str,
        context: str | None = None,
        k: int = 10,
        *,
        expand: Sequence[str] = (),
        where: str | dict[str, Any] | None = None,
        rerank: bool | None = None,
        candidate_ids: Sequence[str] | None = None,
    ) -> RecommendationResult:
        validate_user_id(user_id)
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
            raise InvalidInputError(f"k must be an integer between 1 and {MAX_K}, got {k!r}")
        if context is not None:
            context = context.strip() or None
            if context is not None:
                validate_text(context, self.settings.max_text_chars)
        bad = [e for e in expand if e not in EXPANSIONS]
        if bad:
            raise InvalidInputError(f"unknown expansion {bad[0]!r}: choose from {', '.join(EXPANSIONS)}")

        where = parse_where(where)  # validated before anything runs; a JSON string is accepted too
        profile = self.store.load_profile(user_id)
        stored = profile is not None
        if profile is None:
            if context is None:
                raise UnknownIdError(f"unknown user '{user_id}': observe some text first or pass a context")
            profile = InterestProfile(user_id=user_id)
        stats = StageStats()
        if self.store.count_items() == 0:
            stats.warnings.append(
                "the catalog is empty: add items first (`interestlens catalog add FILE`, agent.add_items or "
                "agent.load_catalog), then recommend"
            )
        total = Stopwatch()
        working = profile.model_copy(deep=True)
        working.interests.extend(self._expand(working, expand, stats))

        use_rerank = self.stage_on("rerank") if rerank is None else rerank
        use_compose = self.stage_on("use_llm_compose")
        llm = self.llm if (use_compose or use_rerank) else None
        sw = Stopwatch()
        intents = compose_intents(
            working, context, llm=llm if use_compose else None,
            embedder=self.embedder, settings=self.settings, stats=stats,
        )
        stats.latency_ms["compose_total"] = sw.ms
        n_candidates = max(k, self.settings.rerank_top_n if use_rerank else k)
        candidates = retrieve(
            intents, working, self.store, self.embedder, self.settings, k=n_candidates, where=where,
            candidate_ids=list(candidate_ids) if candidate_ids is not None else None,
            stats=stats, fusion=self.fusion, facets=self.request_facets(working, context),
        )
        if use_rerank and llm is not None and candidates:
            recs = llm_rerank(
                candidates, intents, working, context, llm=llm, settings=self.settings, stats=stats,
                top_n=self.settings.rerank_top_n, k=k,
            )
        else:
            recs = justify_without_llm(candidates, intents, working)
        result = RecommendationResult(
            user_id=user_id, context=context, intents=intents, recommendations=recs[:k], stats=stats
        )
        stats.latency_ms["total"] = total.ms
        if stored:  # remembered for `explain`; a context-only request for an unknown user writes nothing
            with self._user_lock(user_id):
                if self.store.has_profile(user_id):  # forgotten while we ranked: write nothing back
                    self.store.save_last_result(user_id, result)
        return result

    def candidate_pool(
        self, user_id: str, context: str | None = None, *, candidate_ids: Sequence[str] | None = None,
        where: dict[str, Any] | None = None,
    ) -> CandidatePool:
        """The candidates `recommend` would fuse, with their feature rows (for fitting a fusion; no LLM)."""
        profile = self.profile(user_id)
        intents = compose_intents(
            profile, context, llm=None, embedder=self.embedder, settings=self.settings, stats=StageStats()
        )
        return build_pool(
            intents, profile, self.store, self.embedder, self.settings, where=where,
            candidate_ids=list(candidate_ids) if candidate_ids is not None else None,
            facets=self.request_facets(profile, context),
        )

    def _expand(self, profile: InterestProfile, kinds: Sequence[str], stats: StageStats) -> list[SubInterest]:
        out: list[SubInterest] = []
        for kind in dict.fromkeys(kinds):
            if kind == "adjacent":
                if self.llm is None:
                    stats.warnings.append("adjacent expansion needs an LLM; skipped")
                    continue
                out += expand_adjacent(
                    profile, llm=self.llm, embedder=self.embedder, settings=self.settings, stats=stats
                )
            elif kind == "collaborative":
                out += expand_collaborative(profile, self.store, self.embedder, self.settings)
            elif kind == "knowledge":
                out += expand_knowledge(profile, self.store, self.settings)
        return out

    # ------------------------------------------------------------------ explain
    @traced("explain")
    def explain(self, user_id: str, item_id: str) -> Explanation:
        """The chain item -> intents -> sub-interests -> evidence spans for one item."""
        profile = self.profile(user_id)
        item = self.store.get_item(item_id)
        last = self.store.load_last_result(user_id)
        rec = next((r for r in last.recommendations if r.item.id == item_id), None) if last else None
        if last is not None and rec is not None:
            intents = [i for i in last.intents if i.id in rec.intent_ids]
            justification, evidence, score = rec.justification, rec.cited_evidence, rec.score
        else:
            # Not recommended recently: explain against the current intents without an LLM call.

            stats = StageStats()
            all_intents = compose_intents(
                profile, None, llm=None, embedder=self.embedder, settings=self.settings, stats=stats
            )
            emb = self.store.item_embeddings([item.id])[item.id]
            qv = self.embedder.embed([i.query for i in all_intents]) if all_intents else None
            best = int((qv @ emb).argmax()) if qv is not None else None
            intents = [all_intents[best]] if best is not None else []
            cand = Candidate(item=item, score=0.0, intent_ids=[i.id for i in intents])
            recs = justify_without_llm([cand], intents, profile)
            justification = recs[0].justification if recs else ""
            evidence = recs[0].cited_evidence if recs else []
            score = None
        interest_ids = {iid for it in intents for iid in it.interest_ids}
        interests = [i for i in profile.interests if i.id in interest_ids]
        if not evidence:
            evidence = [e for i in interests for e in i.evidence][:5]
        return Explanation(
            user_id=user_id, item=item, intents=intents, interests=interests, evidence=evidence,
            justification=justification, score=score,
        )

    # ------------------------------------------------------------------ topics
    @traced("topics")
    def topics(self) -> list[Topic]:
        return build_topics(self.store, self.embedder, llm=self.llm, settings=self.settings, stats=StageStats())

    # ------------------------------------------------------------------ async
    async def aobserve(self, user_id: str, texts: Any, *, history: Sequence[str] = ()) -> ObserveResult:
        return await asyncio.to_thread(self.observe, user_id, texts, history=history)

    async def arecommend(
        self, user_id: str, context: str | None = None, k: int = 10, **kw: Any
    ) -> RecommendationResult:
        return await asyncio.to_thread(self.recommend, user_id, context, k, **kw)

    async def aexplain(self, user_id: str, item_id: str) -> Explanation:
        return await asyncio.to_thread(self.explain, user_id, item_id)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> InterestAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _interest_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError("an interest name must be a non-empty string")
    cleaned = " ".join(name.split())
    if len(cleaned) > 120:
        raise InvalidInputError(f"an interest name has at most 120 characters, got {len(cleaned)}")
    return cleaned


def _check_page(limit: int, offset: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_K:
        raise InvalidInputError(f"limit must be an integer between 1 and {MAX_K}, got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInputError(f"offset must be a non-negative integer, got {offset!r}")
