"""The quote-style reply schema of LLM decomposition: interests with their evidence copied as quotes.

Every string and list is bounded so that a grammar-constrained tiny model terminates. The labelling path
(agent/decompose_llm.py) replies with clause numbers instead (`labels_model` there).
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, create_model

Quote = Annotated[str, StringConstraints(min_length=1, max_length=160)]


class LLMInterest(BaseModel):
    # Evidence first: a small model names a topic better right after copying the words it is about.
    evidence: list[Quote] = Field(min_length=1, max_length=3)
    name: str = Field(min_length=1, max_length=48)
    polarity: Literal["like", "dislike"]
    weight: Literal[1, 2, 3, 4, 5]  # an enum, so grammars that ignore numeric bounds still enforce it
    description: str = Field(max_length=120)


class LLMInterests(BaseModel):
    interests: list[LLMInterest] = Field(max_length=6)


@cache
def interests_model(max_items: int) -> type[LLMInterests]:
    """LLMInterests with the list bounded by settings.max_interests_per_chunk."""
    return create_model(  # type: ignore[call-overload,no-any-return]
        f"LLMInterests{max_items}",
        __base__=LLMInterests,
        interests=(list[LLMInterest], Field(max_length=max_items)),
    )
