"""What the memory and catalog verbs take and return: API shapes around the stored contract (agent/models.py).

None of these is stored: a store keeps profiles, sources, history entries and interactions (models.py); these
are the requests and answers of `InterestAgent.feedback`, `history`, `export_user` / `import_user` and the
catalog verbs (`list_items`, `search_items`, ...), and the chat turns `observe` reads.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from interestlens.agent.models import (
    Candidate,
    EvidenceSpan,
    Explanation,
    HistoryEntry,
    Intent,
    Interaction,
    InterestProfile,
    Item,
    ObserveResult,
    Recommendation,
    RecommendationResult,
    SourceText,
    SubInterest,
    Topic,
    utcnow,
)


class ChatMessage(BaseModel):
    """One chat turn, OpenAI/LangChain shape. Only `user` turns are observed; the others are context."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["user", "assistant", "system", "tool"]
    content: str
    remember: bool = True  # False: this user turn is context only, never stored


class FeedbackKind(StrEnum):
    LIKED = "liked"
    DISLIKED = "disliked"
    SEEN = "seen"


class FeedbackResult(BaseModel):
    user_id: str
    item_id: str
    kind: FeedbackKind
    interest: SubInterest | None = None  # the like/dislike grounded in the item (and the note); None for seen
    excluded: bool = True  # the item is in the user's history: never recommended again
    profile_version: int


class HistoryList(BaseModel):
    user_id: str
    entries: list[HistoryEntry] = Field(default_factory=list)  # newest first


class UserExport(BaseModel):
    """Everything stored about one user (an access request); `InterestAgent.import_user` restores it."""

    format: Literal["interestlens.user/1"] = "interestlens.user/1"
    user_id: str
    exported_at: datetime = Field(default_factory=utcnow)
    profile: InterestProfile | None = None
    sources: list[SourceText] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list)  # oldest first
    interactions: list[Interaction] = Field(default_factory=list)
    last_result: RecommendationResult | None = None
    llm_cache: list[dict[str, Any]] = Field(default_factory=list)  # decomposition cache records {key, value}


class ImportResult(BaseModel):
    user_id: str
    interests: int
    sources: int
    history: int
    interactions: int


# --------------------------------------------------------------------------------------------------- catalog


class ItemHit(BaseModel):
    item: Item
    score: float | None = None  # cosine similarity for a text search; None for a plain listing


class CatalogPage(BaseModel):
    """Catalog items (a page of a listing, a search's hits, or the items asked for by id)."""

    items: list[ItemHit] = Field(default_factory=list)
    total: int = 0  # items matching (the whole catalog, or the `where` filter)
    offset: int = 0
    query: str | None = None
    unknown_ids: list[str] = Field(default_factory=list)


class CatalogCount(BaseModel):
    count: int
    where: dict[str, Any] | None = None


class CatalogRemoveResult(BaseModel):
    removed: list[str] = Field(default_factory=list)
    unknown: list[str] = Field(default_factory=list)


def export_json_schemas() -> dict[str, dict[str, Any]]:
    """JSON schemas of the public models (for docs, other languages and tool specs)."""
    models: list[type[BaseModel]] = [
        SourceText, EvidenceSpan, SubInterest, Intent, InterestProfile, Item, Interaction, Candidate,
        Recommendation, RecommendationResult, ObserveResult, Explanation, Topic, ChatMessage, FeedbackResult,
        HistoryEntry, UserExport, CatalogPage,
    ]
    return {m.__name__: m.model_json_schema() for m in models}
