"""What the user tells the agent, into the stored profile: `observe` (texts, chat messages, consumed items) and
`feedback` (a verdict on one item).

observe: texts (+ chat turns, consumed items) -> link named titles (agent.linking) -> decompose -> merge into the
stored profile under the user's lock, with one history entry (agent.memory_ops).
Why a module of its own: the façade (agent/service.py) only validates the user id and wires the backends in;
the pipeline is here, as plain functions over the `Store` protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from interestlens.agent.api_models import FeedbackKind, FeedbackResult
from interestlens.agent.config import Settings
from interestlens.agent.conversation import is_message_like, plan_turns, to_messages
from interestlens.agent.decompose import decompose
from interestlens.agent.errors import InvalidInputError
from interestlens.agent.linking import AssistantTitles, TitleLinker, link_interests
from interestlens.agent.llm.base import Stopwatch, StructuredLLM
from interestlens.agent.memory_ops import UserMemory
from interestlens.agent.models import (
    EvidenceSpan,
    HistoryOp,
    Interaction,
    InterestOrigin,
    InterestProfile,
    Item,
    ObserveResult,
    Polarity,
    SourceText,
    StageStats,
    SubInterest,
)
from interestlens.agent.profile import merge_interests, prune_stale, working_copy
from interestlens.agent.protocols import Embedder, Store
from interestlens.agent.text import decode_user_bytes, validate_text

# A reply about the item the assistant just suggested ("yes, more like that") is one plain statement (weight 1)
# held below a title the user names (linking.TITLE_LINK_CONFIDENCE, 0.9): the reply may be about another
# suggestion of the same turn. Feedback on an item is explicit, so it ranks above both, under a manual entry (1.0).
# The values keep that ordering; none was tuned on an evaluation.
CHAT_REFERENCE_WEIGHT = 1.0
CHAT_REFERENCE_CONFIDENCE = 0.8
FEEDBACK_WEIGHT = 1.0
FEEDBACK_CONFIDENCE = 0.95


@dataclass
class ChatInput:
    """What `observe` takes from chat messages (see agent/conversation.py)."""

    texts: list[SourceText] = field(default_factory=list)
    references: list[SubInterest] = field(default_factory=list)
    reference_sources: list[SourceText] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


def to_sources(texts: str | SourceText | Sequence[str | SourceText], max_chars: int) -> list[SourceText]:
    """User texts as cleaned `SourceText`s (bytes decoded, control characters removed, length checked)."""
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
        cleaned = validate_text(t.text, max_chars)
        sources.append(t if cleaned == t.text else SourceText(**{**t.model_dump(), "text": cleaned, "id": ""}))
    return sources


def is_messages(texts: Any) -> bool:
    return isinstance(texts, list | tuple) and bool(texts) and all(is_message_like(t) for t in texts)


def from_messages(raw: Any, store: Store, titles: AssistantTitles, max_chars: int) -> ChatInput:
    """User turns to observe, replies about the last suggestion (as linked interests), and requests."""
    if isinstance(raw, str | bytes) or not isinstance(raw, list | tuple):
        raise InvalidInputError("messages must be a list of {role, content} messages")
    messages = to_messages(raw)
    has_items = store.count_items() > 0

    def link(text: str) -> list[Item]:
        return titles.find(store, text) if has_items else []

    def find_ids(ids: list[str]) -> list[Item]:
        return store.get_items(ids) if has_items else []

    plan = plan_turns(messages, find_ids, link)
    now = datetime.now(UTC)
    out = ChatInput(requests=[t.text for t in plan.requests])
    for turn in plan.preferences:
        out.texts.append(SourceText(text=turn.text, ts=now, source="chat"))
    for turn in plan.references:
        item = turn.item
        if item is None:
            continue
        src = to_sources([SourceText(text=turn.text, ts=now, source="chat", item_id=item.id)], max_chars)[0]
        start, end = turn.span
        end = min(end, len(src.text))
        out.reference_sources.append(src)
        out.references.append(
            SubInterest(
                name=item.title[:120] or item.id, description=item.text[:200], polarity=turn.polarity,
                weight=CHAT_REFERENCE_WEIGHT, confidence=CHAT_REFERENCE_CONFIDENCE, first_seen=now, last_seen=now,
                linked_item_ids=[item.id],
                evidence=[EvidenceSpan(source_id=src.id, start=start, end=end, text=src.text[start:end])],
                extractor="chat-reference",
            )
        )
    return out


def observe(
    store: Store,
    embedder: Embedder,
    settings: Settings,
    memory: UserMemory,
    user_id: str,
    texts: Any,
    *,
    history: Sequence[str],
    messages: Sequence[Any] | None,
    seen: Sequence[str],
    linker: Callable[[], TitleLinker],
    titles: AssistantTitles,
    decompose_llm: Callable[[], StructuredLLM | None],
) -> ObserveResult:
    """`InterestAgent.observe` after the user id is checked: `linker` and `decompose_llm` load on first use."""
    max_chars = settings.decompose.max_text_chars
    chat = from_messages(messages if messages is not None else texts, store, titles, max_chars) if (
        messages is not None or is_messages(texts)
    ) else None
    if chat is not None:
        texts = chat.texts
        if not texts and not chat.references and not history:
            profile = store.load_profile(user_id)
            return ObserveResult(
                user_id=user_id, profile_version=profile.version if profile else 0, requests=chat.requests
            )
    sources = to_sources(texts, settings.decompose.max_text_chars) if texts else []
    history = [str(h) for h in history]
    if not sources and not history and not (chat and chat.references):
        raise InvalidInputError("observe needs at least one text or history item")
    stats = StageStats()
    now = datetime.now(UTC)

    history_items = store.get_items(history)
    unknown = sorted(set(history) - {i.id for i in history_items})
    if unknown:
        stats.warnings.append(f"unknown history item ids skipped: {', '.join(unknown[:10])}")
    history_sources = [SourceText(text=i.text, source="history", item_id=i.id, ts=now) for i in history_items]

    # Titles the user names ("something like Super Troopers") become evidence and retrieval seeds.
    sw = Stopwatch()
    linked: list[SubInterest] = []
    if sources and store.count_items():
        linked = link_interests(linker(), sources, now=now)
    stats.latency_ms["link"] = sw.ms

    # The cache is the store's, scoped to this user, so `forget` removes it with the rest.
    interests = decompose(
        sources + history_sources, llm=decompose_llm(), embedder=embedder, settings=settings,
        stats=stats, cache=store, user_id=user_id, now=now,
    )
    referenced = chat.references if chat else []
    ref_sources = chat.reference_sources if chat else []
    with memory.lock(user_id):
        before = store.load_profile(user_id)
        # The merge copies what it changes; `before` stays as read, for the history entry.
        profile = working_copy(before) if before else InterestProfile(user_id=user_id)
        for h in history_items:
            if h.id not in profile.history:
                profile.history.append(h.id)
        known_seen = {str(i) for i in seen} - set(profile.history) - set(profile.seen)
        profile.seen.extend(sorted(i.id for i in store.get_items(sorted(known_seen))))
        found = linked + referenced + interests
        outcome = merge_interests(  # stored vectors are read only when there is something to merge
            profile, found, embedder, settings, now=now,
            stored_vectors=store.interest_embeddings(user_id) if before and found else None,
        )
        pruned = prune_stale(outcome.profile, settings.profile.half_life_days, settings.profile.prune_below)
        store.add_sources(user_id, sources + ref_sources + history_sources)
        store.save_profile(outcome.profile)
        memory.record(
            HistoryOp.OBSERVE, before, outcome.profile,
            source_text="\n".join(s.text for s in sources + ref_sources)[:2000] or None,
            item_id=",".join(h.id for h in history_items)[:256] or None,
        )
    return ObserveResult(
        user_id=user_id,
        added=outcome.added,
        reinforced=[i for i in outcome.reinforced if i not in pruned],
        flipped=outcome.flipped,
        pruned=pruned,
        linked_item_ids=sorted({i for s in linked for i in s.linked_item_ids}),
        profile_version=outcome.profile.version,
        stats=stats,
        requests=chat.requests if chat else [],
        referenced_item_ids=[i for s in referenced for i in s.linked_item_ids],
    )


def feedback(
    store: Store, embedder: Embedder, settings: Settings, memory: UserMemory,
    user_id: str, item_id: str, kind: FeedbackKind | str, note: str | None,
) -> FeedbackResult:
    """`InterestAgent.feedback` after the user id is checked (the caller drops its title linker after)."""
    try:
        verdict = FeedbackKind(kind)
    except ValueError:
        raise InvalidInputError(f"feedback must be liked, disliked or seen, got {kind!r}") from None
    item = store.get_item(item_id)
    note = (note or "").strip() or None
    if note is not None:
        note = validate_text(note, settings.decompose.max_text_chars)
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
            weight=FEEDBACK_WEIGHT, confidence=FEEDBACK_CONFIDENCE, evidence=evidence, first_seen=now,
            last_seen=now, origin=InterestOrigin.FEEDBACK, linked_item_ids=[item.id], extractor="feedback",
        )
    with memory.lock(user_id):
        before = store.load_profile(user_id)
        profile = working_copy(before) if before else InterestProfile(user_id=user_id)
        if verdict is not FeedbackKind.DISLIKED and item.id not in profile.history:
            profile.history.append(item.id)
        if interest is not None:
            outcome = merge_interests(
                profile, [interest], embedder, settings, now=now,
                stored_vectors=store.interest_embeddings(user_id) if before else None,
            )
            profile = outcome.profile
            interest = next((i for i in profile.interests if item.id in i.linked_item_ids), interest)
        else:
            profile.version = (before.version if before else 0) + 1
            profile.updated_at = now
        value = {FeedbackKind.LIKED: 1.0, FeedbackKind.SEEN: 1.0, FeedbackKind.DISLIKED: -1.0}[verdict]
        store.add_interactions([Interaction(user_id=user_id, item_id=item.id, value=value, ts=now)])
        if sources:
            store.add_sources(user_id, sources)
        store.save_profile(profile)
        memory.record(
            HistoryOp.FEEDBACK, before, profile, source_text=note or verdict.value, item_id=item.id,
            interaction_ts=now,
        )
    return FeedbackResult(
        user_id=user_id, item_id=item.id, kind=verdict, interest=interest, profile_version=profile.version
    )
