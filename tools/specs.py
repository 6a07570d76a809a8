"""The agent's tool surface, defined once.

Each `ToolSpec` names a tool, describes it for a model, and carries the pydantic model its arguments
must validate against, the pydantic model it returns and the function that runs it on an `InterestAgent`;
tools/render.py writes the concise text a model reads. LangChain tools, OpenAI function specs, the MCP
server, the CLI and the chat loop are all generated from `TOOLS`, so every surface validates the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError, create_model

from interestlens.agent.api_models import (
    CatalogCount,
    CatalogPage,
    CatalogRemoveResult,
    FeedbackResult,
    HistoryList,
    UserExport,
)
from interestlens.agent.errors import InvalidInputError
from interestlens.agent.models import Explanation, InterestProfile, ObserveResult, RecommendationResult
from interestlens.tools.tool_args import (
    CatalogCountArgs,
    CatalogGetArgs,
    CatalogListArgs,
    CatalogRemoveArgs,
    CatalogSearchArgs,
    EditProfileArgs,
    ExplainArgs,
    ExportArgs,
    FeedbackArgs,
    ForgetArgs,
    HistoryArgs,
    ObserveArgs,
    ProfileArgs,
    RecommendArgs,
    ToolArgs,
)

if TYPE_CHECKING:
    from interestlens.agent.service import InterestAgent


# The one result the agent has no model for: `forget` returns a bool.
class ForgetResult(BaseModel):
    user_id: str
    forgotten: bool = True  # False: nothing was stored about this user


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    args_model: type[BaseModel]
    result_model: type[BaseModel]
    run: Callable[[InterestAgent, Any], BaseModel]
    read_only: bool = True
    destructive: bool = False
    # Catalog administration: refused in a session bound to one user (a user's assistant must not edit the catalog).
    admin: bool = False

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
        if user_id is not None and self.admin:
            raise InvalidInputError(f"{self.name}: not available in a session bound to one user")
        if user_id is not None and "user_id" in self.args_model.model_fields:
            given = raw.get("user_id")
            if given is not None and given != user_id:
                raise InvalidInputError(
                    f"{self.name}: this session is bound to user {user_id!r}; it cannot act for {given!r}"
                )
            raw = {**raw, "user_id": user_id}
        try:
            # strict: `true` is not k=1 and "3" is not 3, on every surface (the Python API refuses them too).
            return self.args_model.model_validate(raw, strict=True)
        except ValidationError as e:
            raise InvalidInputError(f"invalid arguments for {self.name}: {format_validation_error(e)}") from e

    def invoke(
        self, agent: InterestAgent, raw: dict[str, Any] | BaseModel, user_id: str | None = None
    ) -> BaseModel:
        return self.run(agent, self.parse_args(raw, user_id))


@cache
def _without_user_id(model: type[BaseModel]) -> type[BaseModel]:
    fields: dict[str, Any] = {n: (f.annotation, f) for n, f in model.model_fields.items() if n != "user_id"}
    return create_model(model.__name__, __base__=ToolArgs, __doc__=model.__doc__, **fields)


def format_validation_error(e: ValidationError) -> str:
    parts = []
    for err in e.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def _observe(agent: InterestAgent, a: ObserveArgs) -> ObserveResult:
    if a.messages:
        if a.texts:
            raise InvalidInputError("observe: give texts or messages, not both")
        return agent.observe(
            a.user_id,
            messages=[{**m.model_dump(), "remember": m.remember is not False} for m in a.messages],
            history=list(a.history),
        )
    return agent.observe(a.user_id, list(a.texts), history=list(a.history))


def _profile(agent: InterestAgent, a: ProfileArgs) -> InterestProfile:
    return agent.profile(a.user_id)


def _recommend(agent: InterestAgent, a: RecommendArgs) -> RecommendationResult:
    return agent.recommend(a.user_id, a.context, a.k, expand=list(a.expand), where=a.where)


def _explain(agent: InterestAgent, a: ExplainArgs) -> Explanation:
    return agent.explain(a.user_id, a.item_id)


def _forget(agent: InterestAgent, a: ForgetArgs) -> ForgetResult:
    return ForgetResult(user_id=a.user_id, forgotten=agent.forget(a.user_id))


def _feedback(agent: InterestAgent, a: FeedbackArgs) -> FeedbackResult:
    return agent.feedback(a.user_id, a.item_id, a.feedback, a.note)


def _history(agent: InterestAgent, a: HistoryArgs) -> HistoryList:
    result = agent.history(a.user_id, limit=a.limit)
    # The undo snapshots stay in the store (and in export); a model reads the changes.
    return HistoryList(
        user_id=result.user_id, entries=[e.model_copy(update={"profile_before": None}) for e in result.entries]
    )


def _need(a: EditProfileArgs, *fields: str) -> None:
    missing = [f for f in fields if getattr(a, f) is None]
    if missing:
        raise InvalidInputError(f"edit_profile {a.operation} needs {', '.join(missing)}")


def _edit_profile(agent: InterestAgent, a: EditProfileArgs) -> InterestProfile:
    op = a.operation
    if op == "undo":
        return agent.undo(a.user_id)
    if op == "add":
        _need(a, "name")
        return agent.add_interest(
            a.user_id, a.name or "", a.polarity or "like", 1.0 if a.weight is None else a.weight
        )
    _need(a, "interest_id")
    iid = a.interest_id or ""
    if op == "rename":
        _need(a, "name")
        return agent.rename_interest(a.user_id, iid, a.name or "")
    if op == "reweight":
        _need(a, "weight")
        return agent.reweight_interest(a.user_id, iid, float(a.weight or 0.0))
    if op == "flip":
        return agent.flip_interest(a.user_id, iid)
    if op in ("mute", "unmute"):
        return agent.set_muted(a.user_id, iid, op == "mute")
    return agent.delete_interest(a.user_id, iid)


def _export(agent: InterestAgent, a: ExportArgs) -> UserExport:
    return agent.export_user(a.user_id)


def _catalog_list(agent: InterestAgent, a: CatalogListArgs) -> CatalogPage:
    return agent.list_items(a.limit, a.offset, where=a.where)


def _catalog_get(agent: InterestAgent, a: CatalogGetArgs) -> CatalogPage:
    return agent.get_items(list(a.item_ids))


def _catalog_search(agent: InterestAgent, a: CatalogSearchArgs) -> CatalogPage:
    return agent.search_items(a.query, a.k, where=a.where)


def _catalog_count(agent: InterestAgent, a: CatalogCountArgs) -> CatalogCount:
    return agent.count_items(where=a.where)


def _catalog_remove(agent: InterestAgent, a: CatalogRemoveArgs) -> CatalogRemoveResult:
    return agent.remove_items(list(a.item_ids))


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
    ToolSpec(
        name="feedback",
        description="Record the user's verdict on an item: liked, disliked or seen (optionally with their words). "
        "Updates the profile; liked and seen items are not recommended again.",
        args_model=FeedbackArgs,
        result_model=FeedbackResult,
        run=_feedback,
        read_only=False,
    ),
    ToolSpec(
        name="edit_profile",
        description="Edit a user's profile: rename, reweight, flip, mute, unmute or delete an interest, add one, "
        "or undo the latest change. Every change is kept in the user's history.",
        args_model=EditProfileArgs,
        result_model=InterestProfile,
        run=_edit_profile,
        read_only=False,
    ),
    ToolSpec(
        name="history",
        description="What changed in a user's profile, newest first: when, which operation, before and after, and "
        "the text or item it came from.",
        args_model=HistoryArgs,
        result_model=HistoryList,
        run=_history,
    ),
    ToolSpec(
        name="export",
        description="Everything stored about a user as JSON (profile, texts, history, interactions).",
        args_model=ExportArgs,
        result_model=UserExport,
        run=_export,
    ),
    ToolSpec(
        name="catalog_list",
        description="List catalog items (a page), optionally filtered by metadata (where).",
        args_model=CatalogListArgs,
        result_model=CatalogPage,
        run=_catalog_list,
    ),
    ToolSpec(
        name="catalog_get",
        description="Fetch catalog items by id.",
        args_model=CatalogGetArgs,
        result_model=CatalogPage,
        run=_catalog_get,
    ),
    ToolSpec(
        name="catalog_search",
        description="Search the catalog by meaning (not for one user: use recommend for that), optionally "
        "filtered by metadata (where).",
        args_model=CatalogSearchArgs,
        result_model=CatalogPage,
        run=_catalog_search,
    ),
    ToolSpec(
        name="catalog_count",
        description="How many catalog items there are, optionally matching a metadata filter (where).",
        args_model=CatalogCountArgs,
        result_model=CatalogCount,
        run=_catalog_count,
    ),
    ToolSpec(
        name="catalog_remove",
        description="Remove items from the catalog (administration; not available to a user-bound session).",
        args_model=CatalogRemoveArgs,
        result_model=CatalogRemoveResult,
        run=_catalog_remove,
        read_only=False,
        destructive=True,
        admin=True,
    ),
)
# What a session bound to one user may call (catalog administration is left out).
USER_TOOLS: tuple[ToolSpec, ...] = tuple(t for t in TOOLS if not t.admin)
TOOLS_BY_NAME: dict[str, ToolSpec] = {t.name: t for t in TOOLS}


def get_tool(name: str) -> ToolSpec:
    try:
        return TOOLS_BY_NAME[name]
    except KeyError:
        raise InvalidInputError(f"unknown tool {name!r}; known tools: {', '.join(TOOLS_BY_NAME)}") from None
