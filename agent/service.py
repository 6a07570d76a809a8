"""`InterestAgent`: the one entry object. It wires the stages to the store and the backends.

observe:   texts (+ consumed items) -> link named titles -> decompose -> ground -> merge into the stored profile
recommend: profile (+ optional expansion) -> compose intents -> retrieve (vector + behaviour, fused, filtered,
           diversified) -> rerank with the LLM (or template justifications) -> remembered for `explain`
Every surface (CLI, LangChain, OpenAI functions, MCP, chat, evals) goes through this class.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from interestlens.agent.config import Settings
from interestlens.agent.embeddings import Embedder, make_embedder
from interestlens.agent.errors import InvalidInputError, UnknownIdError
from interestlens.agent.llm.base import Stopwatch, StructuredLLM
from interestlens.agent.models import (
    Explanation,
    Interaction,
    InterestProfile,
    Item,
    ObserveResult,
    RecommendationResult,
    SourceText,
    StageStats,
    SubInterest,
    Topic,
)
from interestlens.stores.ids import validate_user_id

EXPANSIONS = ("adjacent", "collaborative", "knowledge")
MAX_K = 500
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
        store: Any = None,
    ) -> None:
        self.settings = settings or Settings()
        self.embedder = embedder or make_embedder(
            self.settings.embedder, base_url=self.settings.openai_base_url, api_key=self.settings.openai_api_key
        )
        if store is None:
            from interestlens.stores.chroma_store import ChromaStore

            store = ChromaStore(self.settings.store, self.embedder)
        self.store = store
        # The LLM loads on first use: recommend without rerank never pays for it.
        self._llm_spec: StructuredLLM | str | None = self.settings.llm if llm is _UNSET else llm
        self._llm: StructuredLLM | None = None
        self._llm_loaded = False
        self._llm_lock = threading.Lock()
        self._linker: Any = None
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
                        from interestlens.agent.llm import make_llm

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

    def _user_lock(self, user_id: str) -> threading.Lock:
        # Profile updates are read-merge-write: serialise them per user within this process.
        with self._locks_guard:
            return self._user_locks.setdefault(user_id, threading.Lock())

    def _title_linker(self) -> Any:
        if self._linker is None:
            from interestlens.agent.linking import TitleLinker

            self._linker = TitleLinker(self.store.iter_items(), popularity=self.store.popularity_scores())
        return self._linker

    # ------------------------------------------------------------------ catalog
    def add_items(self, items: Iterable[Item], progress: bool = False) -> int:
        n = self.store.upsert_items(items, progress=progress)
        self._linker = None
        return n

    def add_interactions(self, interactions: Iterable[Interaction]) -> int:
        n = self.store.add_interactions(interactions)
        self._linker = None  # popularity breaks title ties
        return n

    # ------------------------------------------------------------------ observe
    def _to_sources(self, texts: str | SourceText | Sequence[str | SourceText]) -> list[SourceText]:
        from interestlens.agent.text import decode_user_bytes, validate_text

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

    def observe(
        self,
        user_id: str,
        texts: str | SourceText | Sequence[str | SourceText],
        *,
        history: Sequence[str] = (),
    ) -> ObserveResult:
        """Decompose texts (and consumed items) into sub-interests and merge them into the user's profile."""
        from interestlens.agent.decompose import decompose, polarity_of
        from interestlens.agent.profile import merge_interests

        validate_user_id(user_id)
        sources = self._to_sources(texts) if texts else []
        history = [str(h) for h in history]
        if not sources and not history:
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
            linker = self._title_linker()
            for src in sources:
                for item, span in linker.link(src):
                    polarity = polarity_of(src.text, span.start, span.end)
                    linked.append(
                        SubInterest(
                            name=item.title[:120],
                            # The item's own text, so the interest embeds by what the item is about.
                            description=item.text[:200],
                            polarity=polarity,
                            weight=1.0,
                            confidence=0.9,
                            evidence=[span],
                            first_seen=src.ts or now,
                            last_seen=src.ts or now,
                            linked_item_ids=[item.id],
                            extractor="title-link",
                        )
                    )
        stats.latency_ms["link"] = sw.ms

        llm = self.llm if self.settings.use_llm_decompose else None
        # The cache is the store's, scoped to this user, so `forget` removes it with the rest.
        interests = decompose(
            sources + history_sources, llm=llm, embedder=self.embedder, settings=self.settings,
            stats=stats, cache=self.store, user_id=user_id, now=now,
        )
        with self._user_lock(user_id):
            profile = self.store.load_profile(user_id) or InterestProfile(user_id=user_id)
            for h in history_items:
                if h.id not in profile.history:
                    profile.history.append(h.id)
            outcome = merge_interests(profile, linked + interests, self.embedder, self.settings, now=now)
            self.store.add_sources(user_id, sources + history_sources)
            self.store.save_profile(outcome.profile)
        return ObserveResult(
            user_id=user_id,
            added=outcome.added,
            reinforced=outcome.reinforced,
            linked_item_ids=sorted({i for s in linked for i in s.linked_item_ids}),
            profile_version=outcome.profile.version,
            stats=stats,
        )

    # ------------------------------------------------------------------ profile
    def profile(self, user_id: str) -> InterestProfile:
        validate_user_id(user_id)
        profile = self.store.load_profile(user_id)
        if profile is None:
            raise UnknownIdError(f"unknown user '{user_id}': observe some text for this user first")
        return profile

    def _edit_interest(self, user_id: str, interest_id: str, *, muted: bool | None, delete: bool) -> InterestProfile:
        with self._user_lock(user_id):
            profile = self.profile(user_id)
            target = profile.get(interest_id)
            if target is None:
                raise UnknownIdError(f"user '{user_id}' has no interest '{interest_id}'")
            if delete:
                profile.interests = [i for i in profile.interests if i.id != interest_id]
            elif muted is not None:
                target.muted = muted
            profile.version += 1
            profile.updated_at = datetime.now(UTC)
            self.store.save_profile(profile)
            return profile

    def set_muted(self, user_id: str, interest_id: str, muted: bool = True) -> InterestProfile:
        return self._edit_interest(user_id, interest_id, muted=muted, delete=False)

    def delete_interest(self, user_id: str, interest_id: str) -> InterestProfile:
        return self._edit_interest(user_id, interest_id, muted=None, delete=True)

    def forget(self, user_id: str) -> None:
        """Remove every trace of the user: profile, interests, sources, caches, remembered results."""
        validate_user_id(user_id)
        with self._user_lock(user_id):
            self.store.delete_user(user_id)

    # ------------------------------------------------------------------ recommend
    def recommend(
        self,
        user_id: str,
        context: str | None = None,
        k: int = 10,
        *,
        expand: Sequence[str] = (),
        where: dict[str, Any] | None = None,
        rerank: bool | None = None,
        candidate_ids: Sequence[str] | None = None,
    ) -> RecommendationResult:
        from interestlens.agent.compose import compose_intents
        from interestlens.agent.rerank import justify_without_llm
        from interestlens.agent.rerank import rerank as llm_rerank
        from interestlens.agent.retrieve import retrieve

        validate_user_id(user_id)
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
            raise InvalidInputError(f"k must be an integer between 1 and {MAX_K}, got {k!r}")
        if context is not None:
            from interestlens.agent.text import validate_text

            context = context.strip() or None
            if context is not None:
                validate_text(context, self.settings.max_text_chars)
        bad = [e for e in expand if e not in EXPANSIONS]
        if bad:
            raise InvalidInputError(f"unknown expansion {bad[0]!r}: choose from {', '.join(EXPANSIONS)}")
        profile = self.store.load_profile(user_id)
        stored = profile is not None
        if profile is None:
            if context is None:
                raise UnknownIdError(f"unknown user '{user_id}': observe some text first or pass a context")
            profile = InterestProfile(user_id=user_id)
        stats = StageStats()
        total = Stopwatch()
        working = profile.model_copy(deep=True)
        working.interests.extend(self._expand(working, expand, stats))

        use_rerank = self.settings.rerank if rerank is None else rerank
        llm = self.llm if (self.settings.use_llm_compose or use_rerank) else None
        sw = Stopwatch()
        intents = compose_intents(
            working, context, llm=llm if self.settings.use_llm_compose else None,
            embedder=self.embedder, settings=self.settings, stats=stats,
        )
        stats.latency_ms["compose_total"] = sw.ms
        seeds = [i for s in working.likes() for i in s.linked_item_ids] + list(working.history)
        n_candidates = max(k, self.settings.rerank_top_n if use_rerank else k)
        candidates = retrieve(
            intents, working, self.store, self.embedder, self.settings, k=n_candidates, where=where,
            candidate_ids=list(candidate_ids) if candidate_ids is not None else None,
            seed_item_ids=seeds, stats=stats,
        )
        if use_rerank and llm is not None and candidates:
            recs = llm_rerank(
                candidates, intents, working, context, llm=llm, settings=self.settings, stats=stats,
                top_n=self.settings.rerank_top_n,
            )
        else:
            recs = justify_without_llm(candidates, intents, working)
        result = RecommendationResult(
            user_id=user_id, context=context, intents=intents, recommendations=recs[:k], stats=stats
        )
        stats.latency_ms["total"] = total.ms
        if stored:  # remembered for `explain`; a context-only request for an unknown user writes nothing
            self.store.save_last_result(user_id, result)
        return result

    def _expand(self, profile: InterestProfile, kinds: Sequence[str], stats: StageStats) -> list[SubInterest]:
        from interestlens.agent import expand

        out: list[SubInterest] = []
        for kind in dict.fromkeys(kinds):
            if kind == "adjacent":
                if self.llm is None:
                    stats.warnings.append("adjacent expansion needs an LLM; skipped")
                    continue
                out += expand.expand_adjacent(
                    profile, llm=self.llm, embedder=self.embedder, settings=self.settings, stats=stats
                )
            elif kind == "collaborative":
                out += expand.expand_collaborative(profile, self.store, self.embedder, self.settings)
            elif kind == "knowledge":
                out += expand.expand_knowledge(profile, self.store, self.settings)
        return out

    # ------------------------------------------------------------------ explain
    def explain(self, user_id: str, item_id: str) -> Explanation:
        """The chain item -> intents -> sub-interests -> evidence spans for one item."""
        from interestlens.agent.compose import compose_intents
        from interestlens.agent.rerank import justify_without_llm

        profile = self.profile(user_id)
        item = self.store.get_item(item_id)
        last = self.store.load_last_result(user_id)
        rec = next((r for r in last.recommendations if r.item.id == item_id), None) if last else None
        if last is not None and rec is not None:
            intents = [i for i in last.intents if i.id in rec.intent_ids]
            justification, evidence, score = rec.justification, rec.cited_evidence, rec.score
        else:
            # Not recommended recently: explain against the current intents without an LLM call.
            from interestlens.agent.models import Candidate

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
    def topics(self) -> list[Topic]:
        from interestlens.agent.topics import build_topics

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
