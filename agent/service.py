"""`InterestAgent`: the one entry object. It wires the stages to the store and the backends, and does no stage work.

observe:   texts (+ consumed items) -> link named titles -> decompose -> ground -> merge into the stored profile
           (agent/observe.py)
recommend: profile (+ optional expansion) -> compose intents -> retrieve (vector + behaviour, fused, filtered,
           diversified) -> rerank with the LLM (or template justifications) -> remembered for `explain`
           (agent/recommend.py)
Profile edits, undo, history, export, import and forget are in agent/memory_ops.py, catalog reads in
agent/catalog_ops.py. This is the only agent module that imports stores/ (tests/test_architecture.py).
Every surface (CLI, LangChain, OpenAI functions, MCP, chat, evals) goes through this class.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from interestlens.agent import catalog_ops, memory_ops
from interestlens.agent import observe as observe_ops
from interestlens.agent import recommend as recommend_ops
from interestlens.agent.api_models import (
    CatalogCount,
    CatalogPage,
    CatalogRemoveResult,
    FeedbackKind,
    FeedbackResult,
    HistoryList,
    ImportResult,
    UserExport,
)
from interestlens.agent.candidate_pool import CandidatePool
from interestlens.agent.config import Settings
from interestlens.agent.embeddings import make_embedder
from interestlens.agent.errors import UnknownIdError
from interestlens.agent.facets import FacetIndex, RequestFacets, facet_index_for, request_facets
from interestlens.agent.fusion import FUSION_FILE, Fusion, LinearFusion, load_fusion
from interestlens.agent.linking import AssistantTitles, TitleLinker
from interestlens.agent.llm import make_llm
from interestlens.agent.llm.base import StructuredLLM
from interestlens.agent.memory_ops import HistoryLog, UserMemory
from interestlens.agent.models import (
    Explanation,
    Interaction,
    InterestProfile,
    Item,
    ObserveResult,
    Polarity,
    RecommendationResult,
    SourceText,
    StageStats,
    Topic,
)
from interestlens.agent.protocols import Embedder, Store
from interestlens.agent.topics import build_topics
from interestlens.agent.tracing import traced
from interestlens.stores.catalog_files import read_catalog_file
from interestlens.stores.catalog_io import read_interactions_jsonl
from interestlens.stores.chroma_store import ChromaStore
from interestlens.stores.history import HistoryStore
from interestlens.stores.ids import validate_user_id
from interestlens.stores.items import with_metadata_text

FLOOR_LLMS = ("smollm2",)  # packaged models whose LLM stages are off unless asked for (Settings, "auto")
_UNSET: Any = object()


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
            self.settings.embedder, base_url=self.settings.openai.base_url, api_key=self.settings.openai.api_key
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
        self._titles = AssistantTitles()
        # Per-user locks and the change history (created on first use, next to the store's Chroma client).
        self._memory = UserMemory(self.store, make_history=HistoryStore)

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
            path = self.settings.fusion.model
            if path is None and "://" not in self.settings.store:
                default = Path(self.settings.store).expanduser() / FUSION_FILE
                path = str(default) if default.is_file() else None
            self._fusion = load_fusion(path) if path else LinearFusion(self.settings.fusion.weights)
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

    def stage_on(self, stage: str) -> bool:
        """Whether an LLM stage runs: its setting when set, else auto (see Settings): off for the packaged floor
        model named by default (`smollm2`), on for any LLM the caller chose."""
        value = getattr(self.settings.llm_stages, stage)
        if value is not None:
            return bool(value)
        return not (isinstance(self._llm_spec, str) and self._llm_spec in FLOOR_LLMS)

    def _user_lock(self, user_id: str) -> AbstractContextManager[None]:
        return self._memory.lock(user_id)

    def _title_linker(self) -> TitleLinker:
        if self._linker is None:
            self._linker = TitleLinker(self.store.iter_items(), popularity=self.store.popularity_scores())
        return self._linker

    def _catalog_changed(self) -> None:
        self._linker = None
        self._facet_index = None

    # ------------------------------------------------------------------ catalog
    def add_items(self, items: Iterable[Item], progress: bool = False) -> int:
        fields = self.settings.catalog.item_text_fields
        n = self.store.upsert_items(
            (with_metadata_text(it, fields) if isinstance(it, Item) else it for it in items), progress=progress
        )
        self._catalog_changed()
        return n

    def add_interactions(self, interactions: Iterable[Interaction]) -> int:
        n = self.store.add_interactions(interactions)
        self._linker = None  # popularity breaks title ties
        return n

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
        return catalog_ops.list_items(self.store, limit, offset, where)

    def get_items(self, ids: Sequence[str]) -> CatalogPage:
        """The items asked for, in order; ids not in the catalog are listed in `unknown_ids`."""
        return catalog_ops.get_items(self.store, ids)

    def count_items(self, where: str | dict[str, Any] | None = None) -> CatalogCount:
        return catalog_ops.count_items(self.store, where)

    def remove_items(self, ids: Sequence[str]) -> CatalogRemoveResult:
        result = catalog_ops.remove_items(self.store, ids)
        self._catalog_changed()
        return result

    def search_items(self, query: str, k: int = 10, where: str | dict[str, Any] | None = None) -> CatalogPage:
        """Items nearest to a text (cosine similarity of the embeddings), optionally filtered by `where`."""
        return catalog_ops.search_items(
            self.store, self.embedder, query, k, where, max_chars=self.settings.decompose.max_text_chars
        )

    # ------------------------------------------------------------------ observe, feedback
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
        return observe_ops.observe(
            self.store, self.embedder, self.settings, self._memory, user_id, texts,
            history=history, messages=messages, seen=seen, linker=self._title_linker, titles=self._titles,
            decompose_llm=lambda: self.llm if self.stage_on("decompose") else None,
        )

    @traced("feedback")
    def feedback(
        self, user_id: str, item_id: str, kind: FeedbackKind | str, note: str | None = None
    ) -> FeedbackResult:
        """The user's verdict on an item: liked / disliked (an interest grounded in the item and the note, and a
        behaviour row) or seen. Liked and seen items join the history (never recommended again); a disliked
        item is excluded through its dislike."""
        validate_user_id(user_id)
        result = observe_ops.feedback(
            self.store, self.embedder, self.settings, self._memory, user_id, item_id, kind, note
        )
        self._linker = None  # popularity changed
        return result

    # ------------------------------------------------------------------ profile
    def profile(self, user_id: str) -> InterestProfile:
        validate_user_id(user_id)
        profile = self.store.load_profile(user_id)
        if profile is None:
            raise UnknownIdError(f"unknown user '{user_id}': observe some text for this user first")
        return profile

    def set_muted(self, user_id: str, interest_id: str, muted: bool = True) -> InterestProfile:
        """Mute (kept, not used for recommendations) or unmute an interest."""
        return memory_ops.set_muted(self._memory, validate_user_id(user_id), interest_id, muted)

    def delete_interest(self, user_id: str, interest_id: str) -> InterestProfile:
        return memory_ops.delete_interest(self._memory, validate_user_id(user_id), interest_id)

    def rename_interest(self, user_id: str, interest_id: str, name: str) -> InterestProfile:
        """Give an interest a new name (its id, evidence and weight stay)."""
        new_name = memory_ops.interest_name(name)
        return memory_ops.rename_interest(self._memory, validate_user_id(user_id), interest_id, new_name)

    def reweight_interest(self, user_id: str, interest_id: str, weight: float) -> InterestProfile:
        """Set an interest's weight (0 to MAX_WEIGHT; 1 is a plain statement)."""
        memory_ops.check_weight(weight)
        return memory_ops.reweight_interest(self._memory, validate_user_id(user_id), interest_id, weight)

    def flip_interest(self, user_id: str, interest_id: str) -> InterestProfile:
        """A like becomes a dislike and back. The id encodes polarity, so the interest gets its new id."""
        return memory_ops.flip_interest(self._memory, validate_user_id(user_id), interest_id)

    def add_interest(
        self, user_id: str, name: str, polarity: Polarity | str = Polarity.LIKE, weight: float = 1.0,
        description: str = "",
    ) -> InterestProfile:
        """Add an interest by hand (origin manual); the typed name is its evidence. Creates the profile if new."""
        interest, src = memory_ops.manual_interest(name, polarity, weight, description)
        return memory_ops.add_interest(self._memory, validate_user_id(user_id), interest, src)

    def undo(self, user_id: str) -> InterestProfile:
        """Revert the latest change not yet undone (observe, feedback or an edit); repeat to walk back."""
        restored, behaviour_changed = memory_ops.undo(self._memory, validate_user_id(user_id))
        if behaviour_changed:
            self._linker = None  # popularity changed
        return restored

    # ------------------------------------------------------------------ history, export, import, forget
    @property
    def history_store(self) -> HistoryLog | None:
        """Per-user change history, in the same Chroma as the profile (None for a store without a client)."""
        return self._memory.history

    def history(self, user_id: str, limit: int | None = None) -> HistoryList:
        """Every change to the user's profile, newest first: time, operation, before/after, source text or item."""
        return memory_ops.history(self._memory, validate_user_id(user_id), limit)

    def export_user(self, user_id: str) -> UserExport:
        """Everything stored about the user, as one JSON-serialisable model (`import_user` restores it)."""
        return memory_ops.export_user(self._memory, validate_user_id(user_id))

    def import_user(
        self, data: UserExport | dict[str, Any] | str, *, user_id: str | None = None, replace: bool = False
    ) -> ImportResult:
        """Restore an export (optionally under another id). An existing user is refused unless `replace`."""
        export = memory_ops.parse_export(data)
        uid = validate_user_id(user_id or export.user_id)
        return memory_ops.import_user(self._memory, export, uid, replace=replace, forget=self.forget)

    @traced("forget")
    def forget(self, user_id: str, *, purge: bool = True) -> bool:
        """Remove every trace of the user: profile, interests, sources, history, caches, remembered results.

        `purge` (default) also removes the deleted bytes from disk: Chroma's write-ahead log and SQLite's
        free pages (stores/purge.py); evaluations turn it off for their temporary users, as it rewrites the
        store file. Returns False when nothing was stored about the user (so a caller can say so)."""
        return memory_ops.forget(self._memory, validate_user_id(user_id), purge=purge)

    # ------------------------------------------------------------------ recommend, explain, topics
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
        context, parsed = recommend_ops.check_request(k, context, expand, where, self.settings)
        return recommend_ops.recommend(
            self.store, self.embedder, self.settings, user_id, context, k,
            expand=expand, where=parsed, candidate_ids=candidate_ids, llm=lambda: self.llm,
            use_rerank=self.stage_on("rerank") if rerank is None else rerank,
            use_compose=self.stage_on("compose"), fusion=self.fusion,
            facets_for=self.request_facets, lock=self._user_lock,
        )

    def candidate_pool(
        self, user_id: str, context: str | None = None, *, candidate_ids: Sequence[str] | None = None,
        where: dict[str, Any] | None = None,
    ) -> CandidatePool:
        """The candidates `recommend` would fuse, with their feature rows (for fitting a fusion; no LLM)."""
        return recommend_ops.candidate_pool(
            self.store, self.embedder, self.settings, self.profile(user_id), context,
            candidate_ids=candidate_ids, where=where, facets_for=self.request_facets,
        )

    @traced("explain")
    def explain(self, user_id: str, item_id: str) -> Explanation:
        """The chain item -> intents -> sub-interests -> evidence spans for one item."""
        profile = self.profile(user_id)
        return recommend_ops.explain(self.store, self.embedder, self.settings, user_id, profile, item_id)

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
