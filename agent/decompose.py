"""Decomposition: user text -> grounded sub-interests (stages 1-2 of the pipeline). `decompose` picks the path.

Two paths with one output contract:
- `LLMDecomposer` (agent/decompose_llm.py): the split clauses, numbered, labelled by the model (like /
  dislike / none and a short topic); the evidence is the clause itself.
- `ClusterDecomposer` (agent/decompose_cluster.py): no LLM. Clauses are embedded and grouped by agglomerative
  clustering (cosine), separately for likes and dislikes; each group is named by its most central key phrase.
  This is the fallback whenever the LLM is absent, fails, answers invalidly or grounds nothing.
History items (SourceText.source == "history") are decomposed like user text.
What both paths share has a module each: the statement clauses (clauses.py, with polarity.py, key_phrases.py
and request_detection.py), chunks and the merge of their results (chunks.py), the LLM reply cache
(result_cache.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from interestlens.agent.attribution import mark_history_interests, mask_sources
from interestlens.agent.config import Settings
from interestlens.agent.decompose_cluster import ClusterDecomposer
from interestlens.agent.decompose_llm import LLMDecomposer
from interestlens.agent.llm.base import StructuredLLM
from interestlens.agent.models import SourceText, StageStats, SubInterest
from interestlens.agent.protocols import Embedder
from interestlens.agent.result_cache import CacheLike, as_cache


def decompose(
    sources: Sequence[SourceText],
    *,
    llm: StructuredLLM | None,
    embedder: Embedder,
    settings: Settings,
    stats: StageStats,
    cache: CacheLike = None,
    user_id: str = "",
    now: datetime | None = None,
) -> list[SubInterest]:
    """Sub-interests of `sources`: the LLM path when an LLM is given and enabled, else clause clustering.

    `cache` is None, an object with get/put, a (get, put) pair, or a store with cache_get/cache_put (bound to
    `user_id`).
    """
    sources = [s for s in sources if s.text.strip()]
    # Only the user's own first-person statements reach either decomposer: role text, other people's tastes,
    # hypotheticals, instructions and fake markup are blanked (same offsets, so evidence stays verbatim).
    sources, n_dropped = mask_sources(sources)
    if n_dropped:
        stats.warnings.append(f"decompose: {n_dropped} passage(s) not the user's own preference were ignored")
    if not sources:
        return []
    if llm is not None and settings.llm_stages.decompose is not False:  # the caller resolved "auto" (service)
        dec = LLMDecomposer(llm, embedder, settings, as_cache(cache, user_id))
        out = dec.decompose(sources, stats, user_id=user_id, now=now)
    else:
        out = ClusterDecomposer(embedder, settings).decompose(sources, stats, now=now)
    mark_history_interests(out, sources)
    return out
