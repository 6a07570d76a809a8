"""What each tool takes: the argument models every surface validates against, with their bounds.

One model per verb of the registry (tools/specs.py). The bounds are part of the contract: strict tool schemas
(OpenAI functions, grammar-constrained local servers) are generated from these models, and every surface
refuses what they refuse.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from interestlens.stores.ids import USER_ID_PATTERN

MAX_TEXTS = 100
MAX_TEXT_CHARS = 200_000
# Bounded so grammar-constrained local servers (llama.cpp) can compile the schema; a situation is short.
MAX_CONTEXT_CHARS = 1000

UserId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=USER_ID_PATTERN,
        description="The user's id: 1-128 characters of letters, digits and _ . @ : -",
    ),
]
ExpansionKind = Literal["adjacent", "collaborative", "knowledge"]
# A JSON string, not an object: strict tool schemas cannot describe an open-ended object. Parsed and validated
# (agent/filters.py) before anything runs.
WhereJson = Annotated[
    str | None,
    Field(
        max_length=MAX_CONTEXT_CHARS,  # bounded like context, so llama.cpp can compile the schema to a grammar
        description='Optional metadata filter as a JSON string in Chroma syntax, e.g. {"domain": "film"} or '
        '{"$and": [{"year": {"$gte": 1990}}, {"genres": {"$contains": "Drama"}}]}.',
    ),
]


class ToolArgs(BaseModel):
    # The base of every tool's arguments (no docstring: it would become a schema description).
    # Unknown argument names are a caller mistake worth reporting, not something to ignore silently.
    model_config = ConfigDict(extra="forbid")


class MessageArg(ToolArgs):
    role: Literal["user", "assistant", "system", "tool"] = Field(description="Who wrote the turn.")
    content: str = Field(max_length=MAX_TEXT_CHARS, description="The turn's text.")
    remember: bool | None = Field(
        default=True, description="False: use this user turn as context only, never store it (null: true)."
    )


class ObserveArgs(ToolArgs):
    user_id: UserId
    texts: list[Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]] = Field(
        default_factory=list,
        max_length=MAX_TEXTS,
        description="Things the user wrote (posts, reviews, tags), one text per entry.",
    )
    messages: list[MessageArg] = Field(
        default_factory=list,
        max_length=MAX_TEXTS,
        description="A conversation (user and assistant turns, in order): only the user's turns are observed, "
        "the assistant's are context ('yes, more like that' refers to what it suggested); requests and "
        "questions are not stored.",
    )
    history: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list,
        max_length=1000,
        description="Catalog item ids the user has already consumed (never recommended back).",
    )

    @model_validator(mode="after")
    def _something(self) -> ObserveArgs:
        if not (self.texts or self.messages or self.history):
            raise ValueError("give texts, messages or history")
        return self


class ProfileArgs(ToolArgs):
    user_id: UserId


class RecommendArgs(ToolArgs):
    user_id: UserId
    context: str | None = Field(
        default=None,
        max_length=MAX_CONTEXT_CHARS,
        description="What the user wants right now, e.g. 'something light for a rainy evening'.",
    )
    k: int = Field(default=10, ge=1, le=100, description="How many items to return.")
    expand: list[ExpansionKind] = Field(
        default_factory=list,
        max_length=3,
        description="Optional interest expansion: adjacent (related tastes), collaborative "
        "(similar users), knowledge (catalog topics). Expanded interests are never shown as the user's own.",
    )
    where: WhereJson = None


class ExplainArgs(ToolArgs):
    user_id: UserId
    item_id: str = Field(min_length=1, max_length=256, description="The recommended item's id.")


class ForgetArgs(ToolArgs):
    user_id: UserId


# ------------------------------------------------------------------------------ memory and catalog verbs
ItemId = Annotated[str, Field(min_length=1, max_length=256, description="A catalog item's id.")]


class FeedbackArgs(ToolArgs):
    user_id: UserId
    item_id: ItemId
    feedback: Literal["liked", "disliked", "seen"] = Field(
        description="liked / disliked: the user's verdict (updates the profile); seen: already consumed. "
        "Liked and seen items are never recommended again."
    )
    note: str | None = Field(default=None, max_length=2000, description="The user's words about it, if any.")


class HistoryArgs(ToolArgs):
    user_id: UserId
    limit: int = Field(default=20, ge=1, le=200, description="How many entries, newest first.")


EditOperation = Literal["rename", "reweight", "flip", "mute", "unmute", "delete", "add", "undo"]


class EditProfileArgs(ToolArgs):
    user_id: UserId
    operation: EditOperation = Field(
        description="rename (name), reweight (weight), flip (like <-> dislike), mute, unmute, delete: one "
        "interest by interest_id; add: a new interest (name, polarity, weight); undo: revert the latest change."
    )
    interest_id: str | None = Field(default=None, max_length=256, description="The interest (see profile).")
    name: str | None = Field(default=None, max_length=120, description="New name (rename) or name (add).")
    weight: float | None = Field(default=None, ge=0.0, le=5.0, description="Weight 0-5 (reweight, add).")
    polarity: Literal["like", "dislike"] | None = Field(default=None, description="For add (default like).")


class ExportArgs(ToolArgs):
    user_id: UserId


class CatalogListArgs(ToolArgs):
    limit: int = Field(default=20, ge=1, le=100, description="Items per page.")
    offset: int = Field(default=0, ge=0, description="Items to skip.")
    where: WhereJson = None


class CatalogGetArgs(ToolArgs):
    item_ids: list[ItemId] = Field(min_length=1, max_length=100, description="Item ids to fetch.")


class CatalogSearchArgs(ToolArgs):
    query: str = Field(min_length=1, max_length=MAX_CONTEXT_CHARS, description="What to look for, in words.")
    k: int = Field(default=10, ge=1, le=100, description="How many items.")
    where: WhereJson = None


class CatalogCountArgs(ToolArgs):
    where: WhereJson = None


class CatalogRemoveArgs(ToolArgs):
    item_ids: list[ItemId] = Field(min_length=1, max_length=1000, description="Item ids to remove.")
