"""Interest expansion: new sub-interests the user did not state, always marked as such (origin EXPANDED_*).

- adjacent: the LLM proposes neighbouring interests with a reason (validated, deduplicated by embedding);
- collaborative: interests common among users whose interests overlap with this user's;
- knowledge: a pseudo-interest from items that co-occur with the user's history and named titles.

Expanded interests carry no evidence (they are not the user's words), a discounted weight, and never anything
of another user's beyond an interest name shared by at least `min_users` of them (no evidence, description or
linked items cross users).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from interestlens.agent.config import Settings
from interestlens.agent.errors import LLMError
from interestlens.agent.llm.base import Stopwatch, StructuredLLM
from interestlens.agent.llm.call import structured_call
from interestlens.agent.models import InterestOrigin, InterestProfile, Polarity, StageStats, SubInterest
from interestlens.agent.profile import effective_weight, interest_text
from interestlens.agent.prompting import render
from interestlens.agent.protocols import Embedder, Store

ADJACENT_DISCOUNT = 0.5
COLLABORATIVE_DISCOUNT = 0.5
KNOWLEDGE_DISCOUNT = 0.5
NEIGHBOUR_MIN_OVERLAP = 0.45  # mean best-match cosine of this user's likes to the other user's
MAX_NEIGHBOURS = 20


class _Suggestion(BaseModel):
    name: str = Field(min_length=2, max_length=60)
    reason: str = Field(max_length=160)


class _AdjacentReply(BaseModel):
    suggestions: list[_Suggestion] = Field(max_length=5)


def _base_weight(profile: InterestProfile, settings: Settings, now: datetime) -> float:
    likes = [i for i in profile.likes() if i.origin is InterestOrigin.OBSERVED] or profile.likes()
    if not likes:
        return 1.0
    return float(np.mean([effective_weight(i, now, settings.profile.half_life_days) for i in likes]))


def _expanded(
    name: str, description: str, origin: InterestOrigin, *, weight: float, confidence: float, extractor: str,
    now: datetime,
) -> SubInterest:
    """An expanded interest: a like with no evidence (the user did not say it), first and last seen now."""
    return SubInterest(
        name=name,
        description=description,
        polarity=Polarity.LIKE,
        weight=weight,
        confidence=confidence,
        evidence=[],
        first_seen=now,
        last_seen=now,
        origin=origin,
        extractor=extractor,
    )


def _novel(
    names: Sequence[str], profile: InterestProfile, embedder: Embedder, settings: Settings
) -> list[int]:
    """Indices of names that are neither near-duplicates of the profile's interests (or of each other)
    nor close to a dislike."""
    if not names:
        return []
    vecs = embedder.embed(list(names))
    existing = profile.interests
    ex = embedder.embed([interest_text(i) for i in existing]) if existing else np.zeros((0, vecs.shape[1]))
    ex_names = embedder.embed([i.name for i in existing]) if existing else ex
    dislike_mask = np.array([i.polarity is Polarity.DISLIKE and not i.muted for i in existing], dtype=bool)
    kept: list[int] = []
    for n, v in enumerate(vecs):
        if len(existing):
            sim = np.maximum(ex @ v, ex_names @ v)
            if sim.max() >= settings.profile.merge_similarity:
                continue
            if dislike_mask.any() and sim[dislike_mask].max() >= settings.retrieve.dislike_similarity:
                continue
        if any(float(vecs[k] @ v) >= settings.profile.merge_similarity for k in kept):
            continue
        kept.append(n)
    return kept


def expand_adjacent(
    profile: InterestProfile,
    *,
    llm: StructuredLLM | None,
    embedder: Embedder,
    settings: Settings,
    stats: StageStats,
    max_new: int = 5,
    now: datetime | None = None,
) -> list[SubInterest]:
    """Up to `max_new` LLM-proposed interests adjacent to the user's likes. No LLM or bad output -> []."""
    sw = Stopwatch()
    now = now or datetime.now(UTC)
    likes = profile.likes()
    try:
        if llm is None or not likes:
            return []
        prompt = render(
            "expand",
            likes=[i.name for i in likes[:20]],
            dislikes=[i.name for i in profile.dislikes()[:10]],
            max_new=max_new,
        )
        try:
            reply = structured_call(llm, prompt, _AdjacentReply, stats=stats, max_tokens=80 + 70 * max_new)
        except LLMError as e:
            stats.fallbacks += 1
            stats.warnings.append(f"expand_adjacent: LLM output unusable ({str(e)[:120]})")
            return []
        suggestions = [s for s in reply.suggestions if s.name.strip()][:max_new]
        keep = _novel([s.name.strip() for s in suggestions], profile, embedder, settings)
        weight = ADJACENT_DISCOUNT * _base_weight(profile, settings, now)
        return [
            _expanded(suggestions[k].name.strip(), suggestions[k].reason.strip(), InterestOrigin.EXPANDED_ADJACENT,
                      weight=weight, confidence=0.3, extractor=f"llm:{llm.model_id}", now=now)
            for k in keep
        ]
    finally:
        stats.latency_ms["expand_adjacent"] = stats.latency_ms.get("expand_adjacent", 0.0) + sw.ms


def expand_collaborative(
    profile: InterestProfile, store: Store, embedder: Embedder, settings: Settings, *,
    max_new: int = 5, min_users: int = 2, now: datetime | None = None,
) -> list[SubInterest]:
    """Interests frequent among users with overlapping interests that this user lacks.

    A candidate needs at least `min_users` distinct neighbours holding it, so no single other user's interest
    is ever surfaced (k-anonymity); only the name is taken, never evidence, description or linked items.
    """
    now = now or datetime.now(UTC)
    own_likes = [i for i in profile.likes() if i.origin is InterestOrigin.OBSERVED]
    if not own_likes:
        return []
    rows = store.all_interests()
    stored_own = {i.id: e for u, i, e in rows if u == profile.user_id}
    missing = [i for i in own_likes if i.id not in stored_own]
    if missing:
        stored_own.update(zip([i.id for i in missing], embedder.embed([interest_text(i) for i in missing]),
                              strict=True))
    mine = np.stack([stored_own[i.id] for i in own_likes])
    all_mine = profile.interests
    mine_all = embedder.embed([interest_text(i) for i in all_mine])
    dislikes = np.stack([v for v, i in zip(mine_all, all_mine, strict=True)
                         if i.polarity is Polarity.DISLIKE and not i.muted] or [np.zeros(mine.shape[1])])

    others: dict[str, list[tuple[SubInterest, np.ndarray]]] = {}
    for user, interest, emb in rows:
        if user == profile.user_id or interest.muted or interest.polarity is not Polarity.LIKE:
            continue
        if interest.origin is not InterestOrigin.OBSERVED:
            continue  # do not propagate other users' expansions
        others.setdefault(user, []).append((interest, emb))
    overlap: dict[str, float] = {}
    for user, entries in others.items():
        theirs = np.stack([e for _, e in entries])
        overlap[user] = float((mine @ theirs.T).max(axis=1).mean())
    close = [u for u in overlap if overlap[u] >= NEIGHBOUR_MIN_OVERLAP]
    neighbours = sorted(close, key=lambda u: -overlap[u])[:MAX_NEIGHBOURS]

    pool: list[tuple[str, str, np.ndarray]] = []  # (user, name, embedding)
    for user in neighbours:
        for interest, emb in others[user]:
            if float((mine_all @ emb).max()) >= settings.profile.merge_similarity:
                continue  # the user already has it
            if float((dislikes @ emb).max()) >= settings.retrieve.dislike_similarity:
                continue
            pool.append((user, interest.name, emb))
    # Greedy grouping of near-duplicate names across users.
    groups: list[list[int]] = []
    for n, (_, _, emb) in enumerate(pool):
        for g in groups:
            if float(pool[g[0]][2] @ emb) >= settings.profile.merge_similarity:
                g.append(n)
                break
        else:
            groups.append([n])
    scored = []
    for g in groups:
        users = {pool[n][0] for n in g}
        if len(users) < min_users:
            continue
        vecs = np.stack([pool[n][2] for n in g])
        central = g[int((vecs @ vecs.T).sum(axis=1).argmax())]
        scored.append((sum(overlap[u] for u in users), len(users), pool[central][1]))
    scored.sort(key=lambda t: (-t[0], t[2]))
    if not scored:
        return []
    base = COLLABORATIVE_DISCOUNT * _base_weight(profile, settings, now)
    top = scored[0][0]
    out = []
    for score, n_users, name in scored[:max_new]:
        out.append(
            _expanded(name[:120], f"shared by {n_users} users with interests like yours",
                      InterestOrigin.EXPANDED_COLLABORATIVE, weight=base * score / top,
                      confidence=min(0.8, 0.2 + 0.1 * n_users), extractor="collaborative", now=now)
        )
    return out


def _genres(metadata: dict[str, Any]) -> list[str]:
    raw = metadata.get("genres", metadata.get("genre"))
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list):
        return [g for g in raw if isinstance(g, str)]
    return []


def expand_knowledge(
    profile: InterestProfile, store: Store, settings: Settings, *,
    max_new: int = 2, top_items: int = 10, now: datetime | None = None,
) -> list[SubInterest]:
    """Pseudo-interests named after the genres and titles of items co-consumed with the user's items."""
    now = now or datetime.now(UTC)
    seeds = list(dict.fromkeys(
        [*profile.history, *[i for s in profile.likes() if s.origin is InterestOrigin.OBSERVED
                             for i in s.linked_item_ids]]
    ))
    if not seeds:
        return []
    scores = store.cooccurrence_scores(seeds, exclude=set(seeds), n=top_items)
    if not scores:
        return []
    items = store.get_items(list(scores))
    genre_score: Counter[str] = Counter()
    for it in items:
        for g in _genres(it.metadata):
            genre_score[g.strip().lower()] += scores.get(it.id, 0.0)
    existing = {i.name.strip().lower() for i in profile.interests}
    base = KNOWLEDGE_DISCOUNT * _base_weight(profile, settings, now)
    out: list[SubInterest] = []
    groups: list[tuple[str, list[str]]] = []
    for genre, _ in genre_score.most_common(max_new):
        titles = [it.title for it in items if genre in {g.strip().lower() for g in _genres(it.metadata)}][:3]
        groups.append((f"{genre} like {', '.join(titles)}", titles))
    if not groups:
        titles = [it.title for it in items[:3]]
        groups.append((f"often paired with your items: {', '.join(titles)}", titles))
    for name, _titles in groups:
        name = name[:120].rstrip(", ")
        if name.lower() in existing:
            continue
        out.append(
            _expanded(name, "items often consumed together with ones you consumed or named",
                      InterestOrigin.EXPANDED_KNOWLEDGE, weight=base, confidence=0.4, extractor="cooccurrence",
                      now=now)
        )
    return out
