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
from interestlens.tools.specs import TOOLS, ToolSpec, format_validation_error, get_tool, render_text

if TYPE_CHECKING:
    from interestlens.agent.service import InterestAgent


def _make_tool(agent: InterestAgent, spec: ToolSpec, user_id: str | None) -> StructuredTool:
    def run(**kwargs: Any) -> tuple[str, BaseModel]:
        try:
            result = spec.invoke(agent, kwargs, user_id)
        except InterestLensError as e:
            raise ToolException(f"error: {e}") from e
        return render_text(result), result

    return StructuredTool.from_function(
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


def make_langchain_tools(agent: InterestAgent, user_id: str | None = None) -> list[BaseTool]:
    """One StructuredTool per registry entry, bound to `agent`. With `user_id`, the tools act for that user
    only: `user_id` disappears from their schemas, so the model cannot reach another user's data."""
    if user_id is not None:
        get_tool("profile").parse_args(
            {"user_id": user_id}
        )  # a malformed id fails here, not mid-conversation
    return [_make_tool(agent, spec, user_id) for spec in TOOLS]
