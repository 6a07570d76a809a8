"""Domain model: the pydantic contract between every stage, store and tool.

Everything that crosses a boundary (LLM output after validation, store records, tool inputs and
outputs) is one of these models. Offsets in `EvidenceSpan` index into `SourceText.text`, so any
recommendation can be traced item -> intent -> sub-interests -> evidence spans -> source text.
Here: what is stored and what the core verbs (observe, recommend, explain, topics) return; the requests and
answers of the memory and catalog verbs, which are never stored, are in api_models.py.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from unicodedata import category as unicodedata_category

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

# Metadata values Chroma can store and filter on.
MetadataValue = str | int | float | bool | list[str] | list[int] | list[float] | None


def utcnow() -> datetime:
    return datetime.now(UTC)


def content_hash(*parts: str, length: int = 16) -> str:
    """Stable short hash used for ids and cache keys (same content -> same id)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.hexdigest()[:length]


# Ingest bounds for catalog items (issue 12): one item must not cost minutes and gigabytes.
MAX_ITEM_TITLE_CHARS = 1_000
MAX_ITEM_TEXT_CHARS = 100_000
MAX_ITEM_METADATA_CHARS = 32_000  # as JSON
MAX_ITEM_METADATA_KEYS = 100
_MAX_ITEM_CHARS = {"title": MAX_ITEM_TITLE_CHARS, "text": MAX_ITEM_TEXT_CHARS}


def _clamp_future(ts: datetime | None) -> datetime | None:
    """A timestamp in the future (a bad clock, a hostile input) becomes now, so it still decays."""
    if ts is None:
        return None
    now = datetime.now(UTC)
    aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
    if aware <= now:
        return ts
    return now if ts.tzinfo is not None else now.replace(tzinfo=None)


# An optional timestamp that is never in the future (`_clamp_future`).
PastTimestamp = Annotated[datetime | None, AfterValidator(_clamp_future)]


def _check_id_text(v: Any) -> Any:
    """Ids are visible names: not blank, no control or format characters (newlines, escapes, bidi)."""
    if isinstance(v, str):
        if not v.strip():
            raise ValueError("id must not be blank")
        if any(unicodedata_category(ch)[0] == "C" for ch in v):
            raise ValueError("id must not contain control characters (newlines, tabs, escapes)")
    return v


def _check_encodable(v: Any, what: str) -> Any:
    """Text from JSON may hold a lone surrogate ("\\ud800"), which no store or model can encode."""
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"{what} contains an unpaired surrogate (\\u{ord(v[e.start]):04x}) at {e.start}") from e
    return v


class Polarity(StrEnum):
    LIKE = "like"
    DISLIKE = "dislike"


class InterestOrigin(StrEnum):
    """Where a sub-interest came from. Only `observed` ones are the user's own words."""

    OBSERVED = "observed"
    EXPANDED_ADJACENT = "expanded_adjacent"
    EXPANDED_COLLABORATIVE = "expanded_collaborative"
    EXPANDED_KNOWLEDGE = "expanded_knowledge"
    FEEDBACK = "feedback"  # from feedback on an item (liked / disliked), the user's own verdict
    MANUAL = "manual"  # added by hand (profile add), the user's own words


# Origins that are the user's own statements (never expansions): named items of these count as the user's.
USER_ORIGINS = frozenset({InterestOrigin.OBSERVED, InterestOrigin.FEEDBACK, InterestOrigin.MANUAL})


class SourceText(BaseModel):
    """One piece of user-written (or history-derived) text that evidence points into."""

    model_config = ConfigDict(frozen=True)

    id: str = ""
    text: str
    ts: PastTimestamp = None
    source: str = "chat"  # tag | review | chat | post | history | ...
    item_id: str | None = None  # set when the text is a consumed item's text (history as evidence)

    @model_validator(mode="after")
    def _default_id(self) -> SourceText:
        if not self.id:
            object.__setattr__(self, "id", "src-" + content_hash(self.source, self.text, str(self.ts)))
        return self


class EvidenceSpan(BaseModel):
    """A verbatim span of a source text: `source_text[start:end] == text`."""

    source_id: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str

    @model_validator(mode="after")
    def _ordered(self) -> EvidenceSpan:
        if self.end < self.start:
            raise ValueError("evidence span end precedes start")
        return self


class SubInterest(BaseModel):
    id: str = ""
    name: str = Field(min_length=1, max_length=120)
    description: str = ""
    polarity: Polarity = Polarity.LIKE
    weight: float = Field(default=1.0, ge=0.0)
    confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    evidence: list[EvidenceSpan] = Field(default_factory=list)
    first_seen: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow)
    origin: InterestOrigin = InterestOrigin.OBSERVED
    muted: bool = False
    linked_item_ids: list[str] = Field(default_factory=list)  # catalog items the user named for this interest
    extractor: str = ""  # "llm:<model>" or "cluster" etc.: who produced it

    @model_validator(mode="after")
    def _default_id(self) -> SubInterest:
        if not self.id:
            self.id = "int-" + content_hash(self.polarity.value, self.name.strip().lower())
        return self


def interest_text(interest: SubInterest) -> str:
    """What an interest's vector encodes (stored in the store, compared for near-duplicates): the name, plus the
    description when there is one."""
    return f"{interest.name}. {interest.description}".strip() if interest.description else interest.name


class Intent(BaseModel):
    id: str = ""
    name: str
    rationale: str = ""
    interest_ids: list[str] = Field(default_factory=list)
    query: str
    weight: float = Field(default=1.0, ge=0.0)

    @model_validator(mode="after")
    def _default_id(self) -> Intent:
        if not self.id:
            self.id = "intent-" + content_hash(self.name, self.query, length=10)
        return self


class InterestProfile(BaseModel):
    user_id: str
    interests: list[SubInterest] = Field(default_factory=list)
    version: int = 0
    updated_at: datetime = Field(default_factory=utcnow)
    history: list[str] = Field(default_factory=list)  # item ids consumed (never recommended back)
    # Items consumed without saying they were liked (rated, watched): never recommended, never used as seeds.
    seen: list[str] = Field(default_factory=list)

    def active(self) -> list[SubInterest]:
        return [i for i in self.interests if not i.muted]

    def likes(self) -> list[SubInterest]:
        return [i for i in self.active() if i.polarity is Polarity.LIKE]

    def dislikes(self) -> list[SubInterest]:
        return [i for i in self.active() if i.polarity is Polarity.DISLIKE]

    def get(self, interest_id: str) -> SubInterest | None:
        return next((i for i in self.interests if i.id == interest_id), None)


class Item(BaseModel):
    id: str = Field(min_length=1, max_length=256)
    title: str = ""
    text: str = ""
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)

    @field_validator("id", mode="before")
    @classmethod
    def _id_str(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v

    @field_validator("id")
    @classmethod
    def _id_chars(cls, v: str) -> str:
        return _check_encodable(_check_id_text(v), "id")

    @field_validator("title", "text")
    @classmethod
    def _text_bounds(cls, v: str, info: ValidationInfo) -> str:
        field = str(info.field_name)
        limit = _MAX_ITEM_CHARS[field]
        if len(v) > limit:
            raise ValueError(f"{field} is {len(v)} characters; at most {limit}")
        return _check_encodable(v, field)

    @field_validator("metadata")
    @classmethod
    def _metadata_bounds(cls, v: dict[str, Any]) -> dict[str, Any]:
        if len(v) > MAX_ITEM_METADATA_KEYS:
            raise ValueError(f"metadata has {len(v)} keys; at most {MAX_ITEM_METADATA_KEYS}")
        try:
            size = len(json.dumps(v, ensure_ascii=False))
        except (TypeError, ValueError) as e:
            raise ValueError(f"metadata is not JSON: {e}") from e
        if size > MAX_ITEM_METADATA_CHARS:
            raise ValueError(f"metadata is {size} characters as JSON; at most {MAX_ITEM_METADATA_CHARS}")
        for key, value in v.items():
            _check_encodable(key, "metadata key")
            for part in value if isinstance(value, list) else [value]:
                _check_encodable(part, f"metadata {key!r}")
        return v

    @model_validator(mode="after")
    def _text_default(self) -> Item:
        if not self.text:
            self.text = self.title
        if not self.title:
            self.title = self.text[:80]
        if not self.text.strip():
            raise ValueError("item needs a title or text")
        return self

    def content_hash(self) -> str:
        return content_hash(self.title, self.text, json.dumps(self.metadata, sort_keys=True, default=str))


class Interaction(BaseModel):
    """Behaviour (a rating, a view): feeds popularity and item-item co-occurrence signals."""

    user_id: str
    item_id: str
    value: float = 1.0
    ts: PastTimestamp = None

    @field_validator("item_id")
    @classmethod
    def _item_id_chars(cls, v: str) -> str:
        return _check_encodable(_check_id_text(v), "item_id")


class Candidate(BaseModel):
    item: Item
    score: float
    signals: dict[str, float] = Field(default_factory=dict)  # per-signal scores before fusion
    intent_ids: list[str] = Field(default_factory=list)


class Recommendation(BaseModel):
    item: Item
    score: float
    rank: int = Field(ge=1)
    intent_ids: list[str] = Field(default_factory=list)
    justification: str = ""
    cited_evidence: list[EvidenceSpan] = Field(default_factory=list)
    item_facts: list[str] = Field(default_factory=list)  # verbatim snippets of the item's text
    reranked_by: Literal["llm", "retrieval"] = "retrieval"


class StageStats(BaseModel):
    """Accounting for one request: what the LLM cost and where it fell back."""

    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    invalid_outputs: int = 0
    fallbacks: int = 0
    dropped_ungrounded: int = 0
    latency_ms: dict[str, float] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)

    def add(self, other: StageStats) -> None:
        self.llm_calls += other.llm_calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.invalid_outputs += other.invalid_outputs
        self.fallbacks += other.fallbacks
        self.dropped_ungrounded += other.dropped_ungrounded
        for k, v in other.latency_ms.items():
            self.latency_ms[k] = self.latency_ms.get(k, 0.0) + v
        self.warnings.extend(other.warnings)


class RecommendationResult(BaseModel):
    user_id: str
    context: str | None = None
    intents: list[Intent] = Field(default_factory=list)
    recommendations: list[Recommendation] = Field(default_factory=list)
    stats: StageStats = Field(default_factory=StageStats)


class ObserveResult(BaseModel):
    user_id: str
    added: list[SubInterest] = Field(default_factory=list)
    reinforced: list[SubInterest] = Field(default_factory=list)
    # Stored interests this observe turned to the other polarity ("I used to love horror, now I can't stand it").
    flipped: list[SubInterest] = Field(default_factory=list)
    # Stored interests removed because they decayed under settings.profile.prune_below (agent/profile.prune_stale).
    pruned: list[SubInterest] = Field(default_factory=list)
    linked_item_ids: list[str] = Field(default_factory=list)
    profile_version: int
    stats: StageStats = Field(default_factory=StageStats)
    # Chat turns recognised as requests, questions or chit-chat: answered, never stored as interests.
    requests: list[str] = Field(default_factory=list)
    # Catalog items an assistant turn suggested that a user turn referred to ("yes, more like that").
    referenced_item_ids: list[str] = Field(default_factory=list)


class Explanation(BaseModel):
    """The inspectable chain for one recommended item."""

    user_id: str
    item: Item
    intents: list[Intent]
    interests: list[SubInterest]
    evidence: list[EvidenceSpan]
    justification: str = ""
    score: float | None = None


class Topic(BaseModel):
    id: str
    name: str
    interest_names: list[str]
    size: int
    user_share: dict[str, float] = Field(default_factory=dict)  # user_id -> share of that user's weight


# ---------------------------------------------------------------------------------- profile history (stored)


class HistoryOp(StrEnum):
    OBSERVE = "observe"
    FEEDBACK = "feedback"
    ADD = "add"
    RENAME = "rename"
    REWEIGHT = "reweight"
    FLIP = "flip"
    MUTE = "mute"
    UNMUTE = "unmute"
    DELETE = "delete"
    UNDO = "undo"
    IMPORT = "import"


class InterestChange(BaseModel):
    interest_id: str
    name: str
    before: SubInterest | None = None  # None: the interest was added
    after: SubInterest | None = None  # None: the interest was removed


class HistoryEntry(BaseModel):
    """One change to a user's profile: when, what, before/after, and the text or item it came from."""

    id: str = ""
    user_id: str
    ts: datetime = Field(default_factory=utcnow)
    operation: HistoryOp
    changes: list[InterestChange] = Field(default_factory=list)
    source_text: str | None = None
    item_id: str | None = None
    profile_version: int = 0
    undoes: str | None = None  # for operation undo: the entry it reverted
    interaction_ts: datetime | None = None  # feedback: the behaviour row it wrote (user, item, ts), undo removes it
    # The whole profile before this change, so `undo` restores it exactly (None: there was no profile).
    profile_before: InterestProfile | None = None

    @model_validator(mode="after")
    def _default_id(self) -> HistoryEntry:
        if not self.id:
            self.id = "h-" + uuid.uuid4().hex[:20]
        return self

