"""recommend and explain, behind `InterestAgent`.

recommend: profile (+ optional expansion) -> compose intents -> retrieve (vector + behaviour, fused, filtered,
           diversified) -> rerank with the LLM (or template justifications) -> remembered for `explain`
Why a module of its own: the façade (agent/service.py) resolves the backends (LLM on first use, the fusion, the
request's facets) and the user lock; the pipeline is here, as plain functions over the `Store` protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from interestlens.agent.candidate_pool import CandidatePool, build_pool
from interestlens.agent.catalog_ops import MAX_K
from interestlens.agent.compose import compose_intents
from interestlens.agent.config import Settings
from interestlens.agent.errors import InvalidInputError, UnknownIdError
from interestlens.agent.expand import expand_adjacent, expand_collaborative, expand_knowledge
from interestlens.agent.facets import RequestFacets
from interestlens.agent.filters import parse_where
from interestlens.agent.fusion import Fusion
from interestlens.agent.justify import justify_without_llm
from interestlens.agent.llm.base import Stopwatch, StructuredLLM
from interestlens.agent.models import (
    Candidate,
    Explanation,
    InterestProfile,
    RecommendationResult,
    StageStats,
    SubInterest,
)
from interestlens.agent.profile import working_copy
from interestlens.agent.protocols import Embedder, Store
from interestlens.agent.rerank import rerank as llm_rerank
from interestlens.agent.retrieve import retrieve
from interestlens.agent.text import validate_text

EXPANSIONS = ("adjacent", "collaborative", "knowledge")
FacetsFor = Callable[[InterestProfile, str | None], RequestFacets | None]


def check_request(
    k: int, context: str | None, expand: Sequence[str], where: str | dict[str, Any] | None, settings: Settings
) -> tuple[str | None, dict[str, Any] | None]:
    """Validate a recommend call before anything runs; the stripped context (None when blank) and parsed filter."""
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise InvalidInputError(f"k must be an integer between 1 and {MAX_K}, got {k!r}")
    if context is not None:
        context = context.strip() or None
        if context is not None:
            validate_text(context, settings.decompose.max_text_chars)
    bad = [e for e in expand if e not in EXPANSIONS]
    if bad:
        raise InvalidInputError(f"unknown expansion {bad[0]!r}: choose from {', '.join(EXPANSIONS)}")
    return context, parse_where(where)  # a JSON string filter is accepted too


def expand_profile(
    profile: InterestProfile, kinds: Sequence[str], stats: StageStats, *, store: Store, embedder: Embedder,
    settings: Settings, llm: Callable[[], StructuredLLM | None],
) -> list[SubInterest]:
    out: list[SubInterest] = []
    for kind in dict.fromkeys(kinds):
        if kind == "adjacent":
            model = llm()
            if model is None:
                stats.warnings.append("adjacent expansion needs an LLM; skipped")
                continue
            out += expand_adjacent(profile, llm=model, embedder=embedder, settings=settings, stats=stats)
        elif kind == "collaborative":
            out += expand_collaborative(profile, store, embedder, settings)
        elif kind == "knowledge":
            out += expand_knowledge(profile, store, settings)
    return out


def recommend(
    store: Store,
    embedder: Embedder,
    settings: Settings,
    user_id: str,
    context: str | None,
    k: int,
    *,
    expand: Sequence[str],
    where: dict[str, Any] | None,
    candidate_ids: Sequence[str] | None,
    llm: Callable[[], StructuredLLM | None],
    use_rerank: bool,
    use_compose: bool,
    fusion: Fusion,
    facets_for: FacetsFor,
    lock: Callable[[str], AbstractContextManager[None]],
) -> RecommendationResult:
    """`InterestAgent.recommend` after `check_request`: `llm` loads only when a stage that needs it runs."""
    profile = store.load_profile(user_id)
    stored = profile is not None
    if profile is None:
        if context is None:
            raise UnknownIdError(f"unknown user '{user_id}': observe some text first or pass a context")
        profile = InterestProfile(user_id=user_id)
    stats = StageStats()
    if store.count_items() == 0:
        stats.warnings.append(
            "the catalog is empty: add items first (`interestlens catalog add FILE`, agent.add_items or "
            "agent.load_catalog), then recommend"
        )
    total = Stopwatch()
    working = working_copy(profile)  # nothing below changes an interest, only the list (expansions join it)
    working.interests.extend(
        expand_profile(working, expand, stats, store=store, embedder=embedder, settings=settings, llm=llm)
    )

    model = llm() if (use_compose or use_rerank) else None
    sw = Stopwatch()
    intents = compose_intents(
        working, context, llm=model if use_compose else None, embedder=embedder, settings=settings, stats=stats,
    )
    stats.latency_ms["compose_total"] = sw.ms
    n_candidates = max(k, settings.reranker.top_n if use_rerank else k)
    candidates = retrieve(
        intents, working, store, embedder, settings, k=n_candidates, where=where,
        candidate_ids=list(candidate_ids) if candidate_ids is not None else None,
        stats=stats, fusion=fusion, facets=facets_for(working, context), shown=k,
    )
    if use_rerank and model is not None and candidates:
        recs = llm_rerank(
            candidates, intents, working, context, llm=model, settings=settings, stats=stats,
            top_n=settings.reranker.top_n, k=k,
        )
    else:
        recs = justify_without_llm(candidates, intents, working)
    result = RecommendationResult(
        user_id=user_id, context=context, intents=intents, recommendations=recs[:k], stats=stats
    )
    stats.latency_ms["total"] = total.ms
    if stored:  # remembered for `explain`; a context-only request for an unknown user writes nothing
        with lock(user_id):
            if store.has_profile(user_id):  # forgotten while we ranked: write nothing back
                store.save_last_result(user_id, result)
    return result


def candidate_pool(
    store: Store, embedder: Embedder, settings: Settings, profile: InterestProfile, context: str | None, *,
    candidate_ids: Sequence[str] | None, where: dict[str, Any] | None, facets_for: FacetsFor,
) -> CandidatePool:
    """The candidates `recommend` would fuse, with their feature rows (no LLM)."""
    intents = compose_intents(profile, context, llm=None, embedder=embedder, settings=settings, stats=StageStats())
    return build_pool(
        intents, profile, store, embedder, settings, where=where,
        candidate_ids=list(candidate_ids) if candidate_ids is not None else None,
        facets=facets_for(profile, context),
    )


def explain(
    store: Store, embedder: Embedder, settings: Settings, user_id: str, profile: InterestProfile, item_id: str
) -> Explanation:
    """The chain item -> intents -> sub-interests -> evidence spans for one item (`profile`: the user's)."""
    item = store.get_item(item_id)
    last = store.load_last_result(user_id)
    rec = next((r for r in last.recommendations if r.item.id == item_id), None) if last else None
    if last is not None and rec is not None:
        intents = [i for i in last.intents if i.id in rec.intent_ids]
        justification, evidence, score = rec.justification, rec.cited_evidence, rec.score
    else:
        # Not recommended recently: explain against the current intents without an LLM call.
        stats = StageStats()
        all_intents = compose_intents(profile, None, llm=None, embedder=embedder, settings=settings, stats=stats)
        emb = store.item_embeddings([item.id])[item.id]
        qv = embedder.embed([i.query for i in all_intents]) if all_intents else None
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
