"""The agent's tool surface, defined once.

Each `ToolSpec` names a tool, describes it for a model, and carries the pydantic model its arguments
must validate against, the pydantic model it returns, the function that runs it on an `InterestAgent`,
and `render_text` for the concise text a model reads. LangChain tools, OpenAI function specs, the MCP
server, the CLI and the chat loop are all generated from `TOOLS`, so every surface validates the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from interestlens.agent.errors import InvalidInputError
from interestlens.agent.models import (
    EvidenceSpan,
    Explanation,
    InterestProfile,
    ObserveResult,
    Recommendation,
    RecommendationResult,
    SubInterest,
)
from interestlens.stores.ids import USER_ID_PATTERN

if TYPE_CHECKING:
    from interestlens.agent.service import InterestAgent

MAX_TEXTS = 100
MAX_TEXT_CHARS = 200_000
MAX_QUOTE_CHARS = 160
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


class _Args(BaseModel):
    # Unknown argument names are a caller mistake worth reporting, not something to ignore silently.
    model_config = ConfigDict(extra="forbid")


class ObserveArgs(_Args):
    user_id: UserId
    texts: list[Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]] = Field(
        min_length=1,
        max_length=MAX_TEXTS,
        description="Things the user wrote (posts, reviews, chat messages, tags), one text per entry.",
    )
    history: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list,
        max_length=1000,
        description="Catalog item ids the user has already consumed (never recommended back).",
    )


class ProfileArgs(_Args):
    user_id: UserId


class RecommendArgs(_Args):
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


class ExplainArgs(_Args):
    user_id: UserId
    item_id: str = Field(min_length=1, max_length=256, description="The recommended item's id.")


class ForgetArgs(_Args):
    user_id: UserId


class ForgetResult(BaseModel):
    user_id: str
    forgotten: bool = True


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    args_model: type[BaseModel]
    result_model: type[BaseModel]
    run: Callable[[InterestAgent, Any], BaseModel]
    read_only: bool = True
    destructive: bool = False

    def schema_model(self, user_bound: bool = False) -> type[BaseModel]:
        """The arguments a caller supplies: all of them, or all but `user_id` when the session is bound
        to one user (then a model acting for that user cannot name another user's id)."""
        return _without_user_id(self.args_model) if user_bound else self.args_model

    def parse_args(self, raw: dict[str, Any] | BaseModel, user_id: str | None = None) -> BaseModel:
        """Validate raw arguments (injecting a bound `user_id`); errors become one clear InvalidInputError."""
        if isinstance(raw, self.args_model) and user_id is None:
            return raw
        if isinstance(raw, BaseModel):
            raw = raw.model_dump()
        if user_id is not None:
            given = raw.get("user_id")
            if given is not None and given != user_id:
                raise InvalidInputError(
                    f"{self.name}: this session is bound to user {user_id!r}; it cannot act for {given!r}"
                )
            raw = {**raw, "user_id": user_id}
        try:
            return self.args_model.model_validate(raw)
        except ValidationError as e:
            raise InvalidInputError(f"invalid arguments for {self.name}: {format_validation_error(e)}") from e

    def invoke(
        self, agent: InterestAgent, raw: dict[str, Any] | BaseModel, user_id: str | None = None
    ) -> BaseModel:
        return self.run(agent, self.parse_args(raw, user_id))


@cache
def _without_user_id(model: type[BaseModel]) -> type[BaseModel]:
    fields: dict[str, Any] = {n: (f.annotation, f) for n, f in model.model_fields.items() if n != "user_id"}
    return create_model(model.__name__, __base__=_Args, __doc__=model.__doc__, **fields)


def format_validation_error(e: ValidationError) -> str:
    parts = []
    for err in e.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def _observe(agent: InterestAgent, a: ObserveArgs) -> ObserveResult:
    return agent.observe(a.user_id, list(a.texts), history=list(a.history))


def _profile(agent: InterestAgent, a: ProfileArgs) -> InterestProfile:
    return agent.profile(a.user_id)


def _recommend(agent: InterestAgent, a: RecommendArgs) -> RecommendationResult:
    return agent.recommend(a.user_id, a.context, a.k, expand=list(a.expand))


def _explain(agent: InterestAgent, a: ExplainArgs) -> Explanation:
    return agent.explain(a.user_id, a.item_id)


def _forget(agent: InterestAgent, a: ForgetArgs) -> ForgetResult:
    agent.forget(a.user_id)
    return ForgetResult(user_id=a.user_id)


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name="observe",
        description="Record what a user wrote (posts, reviews, chat) and update their interest profile. "
        "Returns the sub-interests added or reinforced, each grounded in a quoted span of the text.",
        args_model=ObserveArgs,
        result_model=ObserveResult,
        run=_observe,
        read_only=False,
    ),
    ToolSpec(
        name="profile",
        description="Show a user's interest profile: likes and dislikes with weights and the quoted "
        "evidence each one rests on.",
        args_model=ProfileArgs,
        result_model=InterestProfile,
        run=_profile,
    ),
    ToolSpec(
        name="recommend",
        description="Recommend catalog items for a user, optionally for a situation (context). Each item "
        "comes with a justification that quotes the user's own words.",
        args_model=RecommendArgs,
        result_model=RecommendationResult,
        run=_recommend,
    ),
    ToolSpec(
        name="explain",
        description="Explain why an item was recommended to a user: the intents, the sub-interests and "
        "the quoted evidence behind it.",
        args_model=ExplainArgs,
        result_model=Explanation,
        run=_explain,
    ),
    ToolSpec(
        name="forget",
        description="Delete everything stored about a user (profile, texts, cached results). Irreversible.",
        args_model=ForgetArgs,
        result_model=ForgetResult,
        run=_forget,
        read_only=False,
        destructive=True,
    ),
)
TOOLS_BY_NAME: dict[str, ToolSpec] = {t.name: t for t in TOOLS}


def get_tool(name: str) -> ToolSpec:
    try:
        return TOOLS_BY_NAME[name]
    except KeyError:
        raise InvalidInputError(f"unknown tool {name!r}; known tools: {', '.join(TOOLS_BY_NAME)}") from None


# ---------------------------------------------------------------------------------------------------
# Text for a model: short, ranked, with justifications and the user's words quoted verbatim.


def _quote(text: str, limit: int = MAX_QUOTE_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return f'"{text}"'


def _evidence_lines(spans: list[EvidenceSpan], indent: str = "   ", limit: int = 3) -> list[str]:
    seen: set[str] = set()
    lines = []
    for span in spans:
        if span.text in seen:
            continue
        seen.add(span.text)
        lines.append(f"{indent}evidence: {_quote(span.text)}")
        if len(lines) >= limit:
            break
    return lines


def _interest_line(i: SubInterest) -> str:
    sign = "+" if i.polarity.value == "like" else "-"
    tags = []
    if i.muted:
        tags.append("muted")
    if i.origin.value != "observed":
        tags.append(i.origin.value)
    tag = f" ({', '.join(tags)})" if tags else ""
    return f"{sign} {i.name} [{i.id}] weight {i.weight:.2f}{tag}"


def _render_recommendation(r: Recommendation) -> list[str]:
    lines = [f"{r.rank}. {r.item.title} [{r.item.id}] score {r.score:.3f}"]
    if r.justification:
        lines.append(f"   why: {r.justification}")
    lines.extend(_evidence_lines(r.cited_evidence))
    for fact in r.item_facts[:2]:
        lines.append(f"   item: {_quote(fact)}")
    return lines


def render_text(result: BaseModel) -> str:
    """Concise text for a model (or a terminal) describing any tool result."""
    if isinstance(result, RecommendationResult):
        head = f"Recommendations for {result.user_id}"
        if result.context:
            head += f" (context: {_quote(result.context, 80)})"
        if not result.recommendations:
            return head + ": none found (observe some of the user's texts first, or add catalog items)."
        lines = [head + ":"]
        for r in result.recommendations:
            lines.extend(_render_recommendation(r))
        return "\n".join(lines)
    if isinstance(result, ObserveResult):
        lines = [f"Observed texts for {result.user_id}; profile version {result.profile_version}."]
        for label, interests in (("added", result.added), ("reinforced", result.reinforced)):
            for i in interests:
                lines.append(f"{label}: {_interest_line(i)}")
                lines.extend(_evidence_lines(i.evidence, limit=1))
        if not result.added and not result.reinforced:
            lines.append("No interests found in these texts.")
        if result.linked_item_ids:
            lines.append("mentioned catalog items: " + ", ".join(result.linked_item_ids[:20]))
        return "\n".join(lines)
    if isinstance(result, InterestProfile):
        lines = [
            f"Profile of {result.user_id} (version {result.version}, {len(result.interests)} interests):"
        ]
        for i in sorted(result.interests, key=lambda x: -x.weight):
            lines.append(_interest_line(i))
            lines.extend(_evidence_lines(i.evidence, limit=2))
        if not result.interests:
            lines.append("No interests yet.")
        return "\n".join(lines)
    if isinstance(result, Explanation):
        lines = [f"Why {result.item.title} [{result.item.id}] for {result.user_id}:"]
        if result.justification:
            lines.append(f"why: {result.justification}")
        for intent in result.intents:
            lines.append(f"intent: {intent.name}" + (f" — {intent.rationale}" if intent.rationale else ""))
        for i in result.interests:
            lines.append("interest: " + _interest_line(i))
        lines.extend(_evidence_lines(result.evidence, indent="", limit=5))
        return "\n".join(lines)
    if isinstance(result, ForgetResult):
        return f"Forgot everything stored about {result.user_id}."
    return result.model_dump_json(indent=1)
