"""The final selection from a fused, ranked pool: the dislike filter, then diversification down to k.

Dislikes: anything within `settings.retrieve.dislike_similarity` (cosine) of an active dislike is dropped. Diversity:
MMR (`mmr_lambda`) on item embeddings over the fused top of the pool, or, with 2+ intents and
`settings.retrieve.intent_slots`, MMR in slots shared out among the intents by weight (`proportional_select`).
Coverage (`settings.retrieve.intent_floor`, `intent_floor`): a like intent no selected item speaks for gets its best
own match in the last slot, so a second thing the user said is never crowded out entirely.
Series (`settings.retrieve.series_cap`, `cap_series`): at most that many episodes of one series in the top k; five
Star Wars films are close in text but not near-duplicates in embedding space, so MMR alone lets them fill a list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from interestlens.agent.candidate_pool import INTENT_TOP_N
from interestlens.agent.config import Settings
from interestlens.agent.models import InterestProfile, StageStats
from interestlens.agent.profile import interest_text
from interestlens.agent.protocols import Embedder, Store

_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")
_SUBTITLE = re.compile(r"\s*:\s+|\s+-\s+")
_SEQUEL = re.compile(r"(?:\s+(?:\d+|[ivx]+|part\s+\w+|episode\s+\w+|chapter\s+\w+))+$")
_ARTICLE = re.compile(r",\s*(?:the|a|an)$")  # MovieLens writes "Matrix, The"


def series_key(title: str) -> str:
    """A title without its year, subtitle and sequel number: "Star Wars: Episode V - The Empire Strikes Back
    (1980)" and "Star Wars: Episode I (1999)" give "star wars", "Toy Story 2" gives "toy story". Conservative:
    titles that only share a word stay apart."""
    t = _YEAR.sub("", " ".join(title.split())).lower()
    t = _SUBTITLE.split(t, maxsplit=1)[0]
    t = _ARTICLE.sub("", t)
    return _SEQUEL.sub("", t).strip(" ,.;!?") or t.strip()


def cap_series(order: Sequence[str], titles: Mapping[str, str], k: int, cap: int) -> list[str]:
    """`order`'s first k items with at most `cap` per series; an item over the cap moves after the rest of the
    first k's candidates, so it returns only when nothing else is left."""
    if cap <= 0:
        return list(order[:k])
    count: dict[str, int] = {}
    kept: list[str] = []
    deferred: list[str] = []
    for i in order:
        key = series_key(titles.get(i, "")) or i
        if count.get(key, 0) >= cap:
            deferred.append(i)
            continue
        count[key] = count.get(key, 0) + 1
        kept.append(i)
    return (kept + deferred)[:k]


def mmr_window(k: int) -> int:
    """How many of the fused top (after the dislike filter) MMR chooses the k from."""
    return max(4 * k, 40)


def mmr_relevance(scores: np.ndarray) -> np.ndarray:
    """Fused scores min-max to [0, 1]: a fitted ranker's scores can be negative, and MMR trades relevance
    against cosine similarity."""
    span = scores.max() - scores.min() if len(scores) else 0.0
    return (scores - scores.min()) / span if span > 0 else np.ones_like(scores)


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


def speaking_intent(item_id: str, by_intent: Mapping[str, Mapping[str, float]], cos: Mapping[str, float]) -> str | None:
    """The intent an item's justification names: of the intents whose lists found it, the one it is closest to."""
    found = by_intent.get(item_id)
    if not found:
        return None
    return min(found, key=lambda iid: (-cos.get(iid, 0.0), iid))


def intent_floor(
    chosen: list[str], ranked: list[str], by_intent: Mapping[str, Mapping[str, float]], intent_ids: list[str],
    intent_vectors: np.ndarray, embs: dict[str, np.ndarray], store: Store, dislike_vecs: np.ndarray | None,
    settings: Settings, shown: int, scan: int = 50,
) -> list[str]:
    """`chosen` with each like intent that none of the first `shown` items speaks for given one of those slots,
    filled by its best own match (the first of its ranked list, among `ranked`, that is not disliked and speaks
    for it). The slot is the last shown one whose item is not another intent's only voice; the item it held moves
    down to the first unshown place. A floor of one, not a quota (PM-2 quotas measured worse, see
    RetrieveConfig.intent_slots), so the fused order keeps every slot above it."""
    def cos_of(i: str) -> dict[str, float]:
        return dict(zip(intent_ids, (intent_vectors @ embs[i]).tolist(), strict=True))

    head, tail = list(chosen[:shown]), list(chosen[shown:])
    need = [i for i in head if i not in embs]
    if need:
        embs.update(store.item_embeddings(need))
    voice = {i: speaking_intent(i, by_intent, cos_of(i)) if i in embs else None for i in head}
    out = head
    limit = settings.retrieve.dislike_similarity
    for intent in intent_ids:  # in weight order (compose orders intents by weight)
        if intent in voice.values():
            continue
        own = sorted((i for i in ranked if intent in by_intent.get(i, {}) and i not in voice),
                     key=lambda i: -by_intent[i][intent])[:scan]
        missing = [i for i in own if i not in embs]
        if missing:
            embs.update(store.item_embeddings(missing))
        pick = None
        for i in own:
            if i not in embs or speaking_intent(i, by_intent, cos_of(i)) != intent:
                continue
            if dislike_vecs is not None and float((dislike_vecs @ embs[i]).max()) >= limit:
                continue
            pick = i
            break
        if pick is None:
            continue
        counts = {v: list(voice.values()).count(v) for v in set(voice.values())}
        slot = next((n for n in range(len(out) - 1, -1, -1)
                     if voice[out[n]] is None or counts[voice[out[n]]] > 1), None)
        if slot is None:
            continue
        del voice[out[slot]]
        tail = [out[slot], *(i for i in tail if i != pick)]
        out[slot] = pick
        voice[pick] = intent
    return out + tail


def dislike_vectors(profile: InterestProfile, embedder: Embedder) -> np.ndarray | None:
    """The active dislikes embedded as the user stated them (None when there are none)."""
    dislikes = profile.dislikes()
    if not dislikes:
        return None
    return embedder.embed([interest_text(d) for d in dislikes])


def filter_and_diversify(
    ranked: list[str], fused: Mapping[str, float], embs: dict[str, np.ndarray], store: Store,
    dislike_vecs: np.ndarray | None, k: int, settings: Settings, stats: StageStats,
    intents: tuple[np.ndarray, np.ndarray] | None = None, *, take: int | None = None, mmr_lambda: float,
) -> list[str]:
    """Dislike filter over the fused top of the pool (fetched in chunks), then MMR (in slots shared out among
    the intents when `intents`, their vectors and weights, are given) down to k; `take` > k continues the same
    greedy order past k (the window stays k's)."""
    window = mmr_window(k) + (INTENT_TOP_N * len(intents[1]) if intents is not None else 0)
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
    rel = mmr_relevance(np.array([fused[i] for i in kept], dtype=np.float64))
    matrix = np.stack([embs[i] for i in kept])
    if intents is not None:
        order = proportional_select(rel, matrix, intents[0], intents[1], take or k, mmr_lambda)
    else:
        order = mmr_select(rel, matrix, take or k, mmr_lambda)
    return [kept[o] for o in order]
