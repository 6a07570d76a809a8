"""OpenAI Agents SDK tools (`agents.FunctionTool`) generated from the tool registry.

The same strict schemas, prefix, opt-in destructive verbs and dispatch as `openai_functions`: a call never
raises into the Runner; bad arguments and agent errors come back as text the model can read. Calls run in
a worker thread and are serialised, since one agent's model and store handle are not safe for concurrent use.
Destructive verbs (forget, catalog_remove) are offered only by name and, by default, need the host's approval
through the SDK's human-in-the-loop interruptions.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio
from agents import FunctionTool

from interestlens.tools.openai_functions import (
    DEFAULT_PREFIX,
    OPT_IN,
    chosen_specs,
    run_tool_call,
    strict_parameters,
)

if TYPE_CHECKING:
    from agents.tool_context import ToolContext

    from interestlens.agent.service import InterestAgent
    from interestlens.tools.specs import ToolSpec


def agents_sdk_tools(
    agent: InterestAgent,
    *,
    user_id: str | None = None,
    prefix: str = DEFAULT_PREFIX,
    include: Sequence[str] | None = None,
    approve_destructive: bool = True,
) -> list[FunctionTool]:
    """`Agent(tools=agents_sdk_tools(il_agent, user_id="alice"))`. With `user_id` every call is bound to that
    user and `user_id` is left out of the schemas. `include`/`prefix` as in `openai_tool_specs`."""
    lock = threading.Lock()
    bound = user_id is not None

    def make(spec: ToolSpec) -> FunctionTool:
        name = prefix + spec.name

        def run_locked(args_json: str) -> str:
            call = {"id": "", "function": {"name": name, "arguments": args_json}}
            with lock:
                message, _ = run_tool_call(agent, call, user_id, prefix=prefix)
            return str(message["content"])

        async def on_invoke(_: ToolContext[Any], args_json: str) -> str:
            return await anyio.to_thread.run_sync(run_locked, args_json)

        return FunctionTool(
            name=name,
            description=spec.description,
            params_json_schema=strict_parameters(spec.schema_model(bound)),
            on_invoke_tool=on_invoke,
            strict_json_schema=True,
            needs_approval=approve_destructive and spec.name in OPT_IN,
        )

    return [make(spec) for spec in chosen_specs(bound, include)]
