"""Domain model: the pydantic contract between every stage, store and tool.

Everything that crosses a boundary (LLM output after validation, store records, tool inputs and
outputs) is one of these models. Offsets in `EvidenceSpan` index into `SourceText.text`, so any
recommendation can be traced item -> intent -> sub-interests -> evidence spans -> source text.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


class Polarity(StrEnum):
    LIKE = "like"
    DISLIKE = "dislike"


class InterestOrigin(StrEnum):
    """Where a sub-interest came from. Only `observed` ones are the user's own words."""

    OBSERVED = "observed"
    EXPANDED_ADJACENT = "expanded_adjacent"
    EXPANDED_COLLABORATIVE = "expanded_collaborative"
    EXPANDED_KNOWLEDGE = "expanded_knowledge"


class SourceText(BaseModel):
    """One piece of user-written (or history-derived) text that evidence points into."""

    model_config = ConfigDict(frozen=True)

    id: str = ""
    text: str
    ts: datetime | None = None
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
    ts: datetime | None = None


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
    linked_item_ids: list[str] = Field(default_factory=list)
    profile_version: int
    stats: StageStats = Field(default_factory=StageStats)


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


def export_json_schemas() -> dict[str, dict[str, Any]]:
    """JSON schemas of the public models (for docs, other languages and tool specs)."""
    models: list[type[BaseModel]] = [
        SourceText, EvidenceSpan, SubInterest, Intent, InterestProfile, Item, Interaction, Candidate,
        Recommendation, RecommendationResult, ObserveResult, Explanation, Topic,
    ]
    return {m.__name__: m.model_json_schema() for m in models}
