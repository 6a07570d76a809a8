"""Stage 4: group the profile's active likes into a few retrieval intents, steered by the latest message.

LLM path, by labelling: the model sees a numbered list of interests and answers with groups of *indices* (a
runtime Literal enum, so an unknown id cannot even be generated) and a short name per group, the few words a
person reads. Nothing else is written: the rationale and the retrieval query are built from the members, as on
the non-LLM path (a written query and rationale were ~75% of the reply's tokens, ~2.5 s on 2 cores).
Non-LLM path (also the fallback): agglomerative clustering of interest embeddings, weighted by effective
weight and boosted by similarity to the message; the query is the member names plus the message's keywords.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, create_model

from interestlens.agent.clustering import cluster_labels, label_groups
from interestlens.agent.config import Settings
from interestlens.agent.errors import LLMError, LLMOutputError
from interestlens.agent.llm.base import Stopwatch, StructuredLLM
from interestlens.agent.llm.call import structured_call
from interestlens.agent.models import Intent, InterestProfile, StageStats, SubInterest
from interestlens.agent.profile import effective_weight, interest_text
from interestlens.agent.prompting import render
from interestlens.agent.protocols import Embedder
from interestlens.agent.text import STOP_WORDS

MAX_NAME = 48
MAX_RATIONALE = 160
MAX_QUERY = 120
MAX_LLM_NAME = 40  # what the model may write: a name of 1 to 4 words (the grammar bounds the reply's length)
MIN_GROUP_SIMILARITY = 0.3  # cosine to the centroid of its fellow members for an interest to stay in an LLM group
_LIST_MARKERS = re.compile(r"^\s*(?:\d+[.):]\s*)+|\s+\d+\s*$")  # "4. Space Exploration 5" -> "Space Exploration"
MAX_PROMPT_INTERESTS = 24  # keeps the numbered list inside a small model's context window

# Words of a message that say nothing about what to retrieve: the stop words and the rest of a request's wording.
_STOPWORDS = STOP_WORDS | frozenset(
    {"wanted", "likes", "show", "recommendations", "find", "tonight", "today", "shall", "ones", "thing", "things"}
)


def context_keywords(context: str | None, limit: int = 8) -> list[str]:
    """Content words of the message, in order, without stopwords or repeats."""
    if not context:
        return []
    words = re.findall(r"[A-Za-z0-9][A-Za-z0-9'\-]*", context)
    out: list[str] = []
    for w in words:
        lw = w.lower()
        if lw in _STOPWORDS or len(lw) < 3 or lw in out:
            continue
        out.append(lw)
    return out[:limit]


def _group_name(names: list[str]) -> str:
    """An intent's template name: its strongest member's, then "& N more", the count kept whole."""
    if len(names) == 1:
        return _clip(names[0], MAX_NAME)
    suffix = f" & {len(names) - 1} more"
    return _clip(names[0], MAX_NAME - len(suffix)) + suffix


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    if len(text) <= n:
        return text
    cut = text[:n].rsplit(" ", 1)[0]
    return (cut or text[:n]).rstrip(" ,;:-")


def _relevance(
    likes: Sequence[SubInterest], context: str | None, embedder: Embedder, settings: Settings, now: datetime
) -> tuple[np.ndarray, np.ndarray]:
    """(interest embeddings, relevance): effective weight x (1 + boost x cosine to the message)."""
    embs = embedder.embed([interest_text(i) for i in likes])
    weights = np.array([effective_weight(i, now, settings.profile.half_life_days) for i in likes], dtype=np.float64)
    if context:
        sims = embs @ embedder.embed([context])[0]
        weights = weights * (1.0 + settings.compose.context_boost * np.clip(sims, 0.0, 1.0))
    return embs, weights


def _intent_weights(groups: list[list[int]], relevance: np.ndarray) -> list[float]:
    raw = [float(relevance[g].sum()) for g in groups]
    total = sum(raw) or 1.0
    return [r / total for r in raw]


def _query_from(names: Sequence[str], keywords: Sequence[str]) -> str:
    members = _clip(", ".join(names), MAX_QUERY - (min(40, 2 + len(" ".join(keywords))) if keywords else 0))
    return _clip(f"{members}; {' '.join(keywords)}" if keywords else members, MAX_QUERY)


def _rationale(names: Sequence[str], context: str | None) -> str:
    text = f"Groups {len(names)} interest{'s' if len(names) > 1 else ''}: {', '.join(names)}"
    return _clip(text + (" (weighted by your message)" if context else ""), MAX_RATIONALE)


def _context_only_intent(context: str) -> Intent:
    keywords = context_keywords(context)
    return Intent(
        name=_clip(context, MAX_NAME) or "Your request",
        rationale="From your message (no stored interests yet).",
        interest_ids=[],
        query=_clip(context, MAX_QUERY) or " ".join(keywords),
        weight=1.0,
    )


def cluster_groups(embs: np.ndarray, max_groups: int, distance: float) -> list[list[int]]:
    """Agglomerative (average linkage, cosine) groups of rows under a distance threshold.

    The caller keeps the `max_groups` most relevant groups: forcing fewer clusters instead chains unrelated
    interests into one muddy intent whose query matches nothing well.
    """
    n = len(embs)
    if n == 0:
        return []
    if n == 1 or max_groups <= 1:
        return [list(range(n))]
    return label_groups(cluster_labels(embs, distance))


def compose_without_llm(
    likes: Sequence[SubInterest], context: str | None, *, embedder: Embedder, settings: Settings,
    now: datetime | None = None,
) -> list[Intent]:
    now = now or datetime.now(UTC)
    embs, rel = _relevance(likes, context, embedder, settings, now)
    groups = cluster_groups(embs, settings.compose.max_intents, settings.compose.cluster_distance)
    # Members strongest first, so the name and the clipped query keep what matters most now.
    groups = [sorted(g, key=lambda i: -rel[i]) for g in groups]
    groups.sort(key=lambda g: -float(rel[g].sum()))
    groups = groups[: settings.compose.max_intents]
    weights = _intent_weights(groups, rel)
    keywords = context_keywords(context)
    intents = []
    for g, w in zip(groups, weights, strict=True):
        names = [likes[i].name for i in g]
        name = _group_name(names)
        intents.append(
            Intent(
                name=_clip(name, MAX_NAME) or _clip(names[0], MAX_NAME),
                rationale=_rationale(names, context),
                interest_ids=[likes[i].id for i in g],
                query=_query_from(names, keywords),
                weight=w,
            )
        )
    return intents


def _response_model(n_interests: int, max_intents: int) -> type[BaseModel]:
    index = Literal[tuple(range(1, n_interests + 1))]  # type: ignore[valid-type]
    draft = create_model(
        "IntentDraft",
        name=(str, Field(min_length=1, max_length=MAX_LLM_NAME)),
        members=(list[index], Field(min_length=1, max_length=min(n_interests, 8))),  # type: ignore[valid-type]
    )
    return create_model(
        "ComposeReply", intents=(list[draft], Field(min_length=1, max_length=max_intents))  # type: ignore[valid-type]
    )


def compose_with_llm(
    likes: Sequence[SubInterest], context: str | None, *, llm: StructuredLLM, embedder: Embedder,
    settings: Settings, stats: StageStats, now: datetime | None = None,
) -> list[Intent]:
    """Raises LLMError when the reply is unusable (caller falls back)."""
    now = now or datetime.now(UTC)
    embs, rel = _relevance(likes, context, embedder, settings, now)
    order = sorted(range(len(likes)), key=lambda i: -rel[i])[:MAX_PROMPT_INTERESTS]
    shown = [likes[i] for i in order]
    prompt = render(
        "compose",
        interests=[{"n": n, "name": i.name, "description": i.description} for n, i in enumerate(shown, 1)],
        context=context,
        max_intents=settings.compose.max_intents,
    )
    reply = structured_call(llm, prompt, _response_model(len(shown), settings.compose.max_intents), stats=stats,
                            max_tokens=24 + 40 * settings.compose.max_intents)
    groups: list[list[int]] = []
    drafts = []
    seen_groups: set[tuple[int, ...]] = set()
    for d in reply.intents:  # type: ignore[attr-defined]
        members = list(dict.fromkeys(order[m - 1] for m in d.members))
        key = tuple(sorted(members))
        if not members or key in seen_groups:
            continue  # empty or repeated group
        seen_groups.add(key)
        groups.append(members)
        drafts.append(d)
    if not groups:
        raise LLMOutputError("compose reply had no usable groups")
    # Validate the grouping against embeddings, as evidence is validated against the text: a member far from
    # every other member of its group was lumped in (small models put everything in one group); it leaves
    # and is regrouped by proximity below.
    strays: list[int] = []
    for g in groups:
        if len(g) > 1:
            # Each member against the centroid of the others: a nearest-neighbour test lets chains through.
            total = embs[g].sum(axis=0)
            keep = []
            for m in g:
                rest = total - embs[m]
                norm = float(np.linalg.norm(rest)) or 1.0
                if float(embs[m] @ rest) / norm >= MIN_GROUP_SIMILARITY:
                    keep.append(m)
            keep = keep or g[:1]
            strays += [m for m in g if m not in keep]
            g[:] = keep
    weights = _intent_weights(groups, rel)
    keywords = context_keywords(context)
    intents = []
    for d, g, w in zip(drafts, groups, weights, strict=True):
        names = [likes[i].name for i in g]
        name = _clip(_LIST_MARKERS.sub("", d.name), MAX_NAME)
        if not _shares_word(name, " ".join(names)):  # an invented name (seen: a person's name) -> template
            name = _group_name(names)
        intents.append(
            Intent(
                name=name,
                rationale=_rationale(names, context),
                interest_ids=[likes[i].id for i in g],
                query=_query_from(names, keywords),
                weight=w,
            )
        )
    if strays and len(intents) < settings.compose.max_intents:
        regrouped = compose_without_llm([likes[i] for i in strays], context, embedder=embedder,
                                        settings=settings, now=now)
        intents += regrouped[: settings.compose.max_intents - len(intents)]
        total = sum(i.weight for i in intents) or 1.0
        for intent in intents:  # weights are shares of the request, summing to 1
            intent.weight /= total
    intents.sort(key=lambda i: -i.weight)
    return intents


def _shares_word(a: str, b: str) -> bool:
    wa = {w for w in re.findall(r"\w+", a.lower()) if len(w) > 2}
    wb = {w for w in re.findall(r"\w+", b.lower()) if len(w) > 2}
    return bool(wa & wb)


def compose_intents(
    profile: InterestProfile,
    context: str | None,
    *,
    llm: StructuredLLM | None,
    embedder: Embedder,
    settings: Settings,
    stats: StageStats,
    now: datetime | None = None,
) -> list[Intent]:
    """1..max_intents intents over the active likes (or one from the context alone); [] when neither."""
    sw = Stopwatch()
    context = context.strip() if context and context.strip() else None
    likes = profile.likes()
    try:
        if not likes:
            return [_context_only_intent(context)] if context else []
        if llm is not None:
            try:
                return compose_with_llm(
                    likes, context, llm=llm, embedder=embedder, settings=settings, stats=stats, now=now
                )
            except LLMError as e:
                stats.fallbacks += 1
                stats.warnings.append(f"compose: LLM output unusable, used clustering ({str(e)[:120]})")
        return compose_without_llm(likes, context, embedder=embedder, settings=settings, now=now)
    finally:
        stats.latency_ms["compose"] = stats.latency_ms.get("compose", 0.0) + sw.ms
