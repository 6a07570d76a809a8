"""LangChain tools generated from the tool registry (`interestlens.tools.specs.TOOLS`).

Each tool returns `(text, artifact)`: the model reads `render_text(result)`, while the caller keeps the
validated pydantic result (e.g. a `RecommendationResult`) as the ToolMessage artifact.
Errors a model can act on (bad arguments, unknown ids) come back as the tool message text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, ValidationError

from interestlens.agent.errors import InterestLensError
from interestlens.tools.render import render_text
from interestlens.tools.specs import TOOLS, USER_TOOLS, ToolSpec, format_validation_error, get_tool

if TYPE_CHECKING:
    from interestlens.agent.service import InterestAgent


class _RegistryTool(StructuredTool):
    """A StructuredTool whose raw input is validated by the registry's model, not by LangChain.

    LangChain's own parsing coerces loosely (`true` becomes k=1) and, for a tool with no arguments left once
    `user_id` is bound, drops every argument unseen, so `forget({"user_id": "bob"})` would act on the
    bound user. Here an unknown argument, a loose type, or another user's id is refused.
    """

    spec: Any = None
    bound_user: str | None = None

    def _to_args_and_kwargs(
        self, tool_input: str | dict[str, Any], tool_call_id: str | None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if isinstance(tool_input, str):
            raise ToolException(f"error: {self.name} takes a JSON object of named arguments, not a string")
        if not isinstance(tool_input, dict):
            raise ToolException(f"error: {self.name} takes a JSON object of named arguments")
        try:
            parsed = self.spec.parse_args(dict(tool_input), self.bound_user)
        except InterestLensError as e:
            raise ToolException(f"error: {e}") from e
        return (), {"parsed": parsed}


def _make_tool(agent: InterestAgent, spec: ToolSpec, user_id: str | None) -> StructuredTool:
    def run(parsed: BaseModel) -> tuple[str, BaseModel]:
        try:
            result = spec.run(agent, parsed)
        except InterestLensError as e:
            raise ToolException(f"error: {e}") from e
        return render_text(result), result

    tool = _RegistryTool.from_function(
        func=run,
        name=spec.name,
        description=spec.description,
        args_schema=spec.schema_model(user_bound=user_id is not None),
        response_format="content_and_artifact",
        handle_tool_error=True,
        handle_validation_error=lambda e: (
            f"error: invalid arguments for {spec.name}: "
            + (format_validation_error(e) if isinstance(e, ValidationError) else str(e))
        ),
    )
    tool.spec = spec
    tool.bound_user = user_id
    return tool


def make_langchain_tools(agent: InterestAgent, user_id: str | None = None) -> list[BaseTool]:
    """One StructuredTool per registry entry, bound to `agent`. With `user_id`, the tools act for that user
    only: `user_id` disappears from their schemas, so the model cannot reach another user's data."""
    if user_id is not None:
        get_tool("profile").parse_args(
            {"user_id": user_id}
        )  # a malformed id fails here, not mid-conversation
    # user-bound: no catalog administration tools
    return [_make_tool(agent, spec, user_id) for spec in (TOOLS if user_id is None else USER_TOOLS)]
