"""The final selection from a fused, ranked pool: the dislike filter, then diversification down to k.

Dislikes: anything within `settings.retrieve.dislike_similarity` (cosine) of an active dislike is dropped. Diversity:
MMR (`mmr_lambda`) on item embeddings over the fused top of the pool, or, with 2+ intents and
`settings.retrieve.intent_slots`, MMR in slots shared out among the intents by weight (`proportional_select`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from interestlens.agent.candidate_pool import INTENT_TOP_N
from interestlens.agent.config import Settings
from interestlens.agent.models import InterestProfile, StageStats
from interestlens.agent.profile import interest_text
from interestlens.agent.protocols import Embedder, Store


def mmr_select(rel: np.ndarray, embs: np.ndarray, k: int, lam: float) -> list[int]:
    """Greedy maximal marginal relevance: lam * relevance - (1 - lam) * max similarity to what is chosen."""
    n = len(rel)
    if n == 0 or k <= 0:
        return []
    sims = embs @ embs.T
    chosen: list[int] = []
    max_sim = np.full(n, -np.inf)
    available = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
        score = lam * rel - (1.0 - lam) * penalty
        score[~available] = -np.inf
        best = int(np.argmax(score))
        chosen.append(best)
        available[best] = False
        max_sim = np.maximum(max_sim, sims[best])
    return chosen


def proportional_select(
    rel: np.ndarray, embs: np.ndarray, intent_vecs: np.ndarray, intent_w: np.ndarray, k: int, lam: float
) -> list[int]:
    """MMR in slots shared out among the intents by weight (Sainte-Lague quotients, as PM-2, Dang & Croft
    2012, does for query aspects): each slot goes to the intent with the largest w / (2 s + 1), s its slots so
    far, and is filled by the best MMR item among those closest to that intent (the intent the justification
    then names). So two equally weighted interests share the list instead of the louder one filling it; an
    intent with no item left gives its slot to plain MMR."""
    n = len(rel)
    if n == 0 or k <= 0:
        return []
    cos = embs @ intent_vecs.T
    owner = np.argmax(cos, axis=1)  # the intent each item is closest to
    lo, hi = cos.min(axis=0), cos.max(axis=0)
    fit = (cos - lo) / np.where(hi > lo, hi - lo, 1.0)  # per intent, min-max over the window
    sims = embs @ embs.T
    chosen: list[int] = []
    max_sim = np.full(n, -np.inf)
    available = np.ones(n, dtype=bool)
    slots = np.zeros(len(intent_w))
    for _ in range(min(k, n)):
        penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
        score = lam * rel - (1.0 - lam) * penalty
        score[~available] = -np.inf
        for intent in np.argsort(-(intent_w / (2 * slots + 1)), kind="stable"):
            # In an intent's slot, relevance is half the fused score, half the fit to that intent.
            mine = np.where(owner == intent, score - lam * 0.5 * (rel - fit[:, intent]), -np.inf)
            if np.isfinite(mine).any():
                best = int(np.argmax(mine))
                slots[intent] += 1
                break
        else:
            best = int(np.argmax(score))
        chosen.append(best)
        available[best] = False
        max_sim = np.maximum(max_sim, sims[best])
    return chosen


def dislike_vectors(profile: InterestProfile, embedder: Embedder) -> np.ndarray | None:
    """The active dislikes embedded as the user stated them (None when there are none)."""
    dislikes = profile.dislikes()
    if not dislikes:
        return None
    return embedder.embed([interest_text(d) for d in dislikes])


def filter_and_diversify(
    ranked: list[str], fused: Mapping[str, float], embs: dict[str, np.ndarray], store: Store,
    dislike_vecs: np.ndarray | None, k: int, settings: Settings, stats: StageStats,
    intents: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[str]:
    """Dislike filter over the fused top of the pool (fetched in chunks), then MMR (in slots shared out among
    the intents when `intents`, their vectors and weights, are given) down to k."""
    window = max(4 * k, 40) + (INTENT_TOP_N * len(intents[1]) if intents is not None else 0)
    kept: list[str] = []
    dropped = 0
    pos = 0
    while pos < len(ranked) and len(kept) < window:
        chunk = ranked[pos : pos + window]
        pos += len(chunk)
        need = [i for i in chunk if i not in embs]
        if need:
            embs.update(store.item_embeddings(need))
        chunk = [i for i in chunk if i in embs]
        if dislike_vecs is not None and chunk:
            close = (np.stack([embs[i] for i in chunk]) @ dislike_vecs.T).max(axis=1)
            dropped += int((close >= settings.retrieve.dislike_similarity).sum())
            chunk = [i for i, c in zip(chunk, close, strict=True) if c < settings.retrieve.dislike_similarity]
        kept.extend(chunk)
    if dropped:
        stats.warnings.append(f"retrieve: {dropped} candidate(s) removed as too close to a dislike")
    kept = kept[:window]
    if not kept:
        return []
    rel = np.array([fused[i] for i in kept], dtype=np.float64)
    # Min-max to [0, 1]: a fitted ranker's scores can be negative, and MMR trades relevance against cosine.
    span = rel.max() - rel.min()
    rel = (rel - rel.min()) / span if span > 0 else np.ones_like(rel)
    matrix = np.stack([embs[i] for i in kept])
    if intents is not None:
        order = proportional_select(rel, matrix, intents[0], intents[1], k, settings.retrieve.mmr_lambda)
    else:
        order = mmr_select(rel, matrix, k, settings.retrieve.mmr_lambda)
    return [kept[o] for o in order]
