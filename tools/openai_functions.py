"""OpenAI function-calling specs and dispatch, generated from the tool registry.

`openai_tool_specs()` produces strict schemas (agent/llm/schema.py `openai_strict_schema`): every property
required, `additionalProperties: false`, optional fields made nullable (null means "use the default").
Keywords strict mode rejects are dropped; the pydantic args model still enforces them at dispatch.
`dispatch_tool_call` never raises: bad JSON, unknown tools, invalid arguments and agent errors all become an
error tool message the model can read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from interestlens.agent.errors import InterestLensError, InvalidInputError
from interestlens.agent.llm.schema import openai_strict_schema
from interestlens.tools.render import render_text
from interestlens.tools.specs import TOOLS, USER_TOOLS, ToolSpec, get_tool

if TYPE_CHECKING:
    from interestlens.agent.service import InterestAgent


def strict_parameters(args_model: type[BaseModel]) -> dict[str, Any]:
    """The strict JSON schema of a pydantic args model (optional fields nullable: null means the default)."""
    return openai_strict_schema(args_model, arguments=True)


DEFAULT_PREFIX = "interestlens_"  # "profile" or "forget" alone collide easily with a host's other tools
# Destructive verbs a host must ask for by name (`include=`): a model should not find forget by default.
OPT_IN = frozenset({"forget", "catalog_remove"})


def chosen_specs(user_bound: bool, include: Sequence[str] | None) -> list[ToolSpec]:
    """The verbs a host offers: `include` by name, else every verb but the destructive `OPT_IN` ones."""
    pool = USER_TOOLS if user_bound else TOOLS  # user-bound: no catalog administration
    if include is None:
        return [t for t in pool if t.name not in OPT_IN]
    unknown = sorted(set(include) - {t.name for t in TOOLS})
    if unknown:
        raise InvalidInputError(f"unknown tool(s) {', '.join(unknown)}; known: {', '.join(t.name for t in TOOLS)}")
    return [t for t in pool if t.name in set(include)]


def openai_tool_specs(
    user_bound: bool = False, *, prefix: str = DEFAULT_PREFIX, include: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The `tools=[...]` list for the Chat Completions API. With `user_bound`, `user_id` is left out of
    every schema and supplied by `dispatch_tool_call(..., user_id=...)` instead of by the model.

    Names carry `prefix` (default "interestlens_"). `include`: the verbs to offer; by default every verb but
    the destructive ones in `OPT_IN` (forget, catalog_remove), which a host names to get them."""
    return [
        {
            "type": "function",
            "function": {
                "name": prefix + spec.name,
                "description": spec.description,
                "parameters": strict_parameters(spec.schema_model(user_bound)),
                "strict": True,
            },
        }
        for spec in chosen_specs(user_bound, include)
    ]


def response_tool_specs(
    user_bound: bool = False, *, prefix: str = DEFAULT_PREFIX, include: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The same tools in the Responses API's flat shape (`tools=` of `client.responses.create`)."""
    specs = openai_tool_specs(user_bound, prefix=prefix, include=include)
    return [{"type": "function", **s["function"]} for s in specs]


def run_response_item(
    agent: InterestAgent, item: Any, user_id: str | None = None, prefix: str = DEFAULT_PREFIX
) -> dict[str, Any]:
    """Run one Responses API `function_call` output item; returns its `function_call_output` input item."""
    if _field(item, "type") != "function_call":
        raise InvalidInputError(f"not a function_call item: type {_field(item, 'type')!r}")
    call_id = _field(item, "call_id") or ""
    call = {"id": call_id, "function": {"name": _field(item, "name"), "arguments": _field(item, "arguments")}}
    message, _ = run_tool_call(agent, call, user_id, prefix=prefix)
    return {"type": "function_call_output", "call_id": call_id, "output": message["content"]}


def _field(tool_call: Any, name: str) -> Any:
    if isinstance(tool_call, dict):
        return tool_call.get(name)
    return getattr(tool_call, name, None)


def dispatch_tool_call(
    agent: InterestAgent, tool_call: Any, user_id: str | None = None, prefix: str = DEFAULT_PREFIX
) -> dict[str, Any]:
    """Run one tool call (an SDK `ChatCompletionMessageToolCall` or its dict) and return the tool message.
    `user_id` binds the call to that user (use with `openai_tool_specs(user_bound=True)`). The name may
    carry `prefix` or not."""
    return run_tool_call(agent, tool_call, user_id, prefix=prefix)[0]


def run_tool_call(
    agent: InterestAgent, tool_call: Any, user_id: str | None = None, prefix: str = DEFAULT_PREFIX
) -> tuple[dict[str, Any], BaseModel | None]:
    """Like `dispatch_tool_call`, also returning the validated result (None when the call failed)."""
    call_id = _field(tool_call, "id") or ""
    function = _field(tool_call, "function") or {}
    name = _field(function, "name") or ""
    name = name.removeprefix(prefix) if prefix and name.startswith(prefix) else name
    raw_args = _field(function, "arguments")

    def reply(content: str, result: BaseModel | None = None) -> tuple[dict[str, Any], BaseModel | None]:
        return {"role": "tool", "tool_call_id": call_id, "content": content}, result

    try:
        spec = get_tool(name)
        if isinstance(raw_args, str):
            try:
                args = json.loads(raw_args) if raw_args.strip() else {}
            except json.JSONDecodeError as e:
                return reply(f"error: arguments for {name} are not valid JSON ({e.msg} at char {e.pos})")
        else:
            args = raw_args or {}
        if not isinstance(args, dict):
            return reply(f"error: arguments for {name} must be a JSON object")
        # Strict schemas send null for omitted optional fields; null means "use the default".
        required = {n for n, f in spec.args_model.model_fields.items() if f.is_required()}
        args = {k: v for k, v in args.items() if v is not None or k in required}
        result = spec.invoke(agent, args, user_id)
    except InterestLensError as e:
        return reply(f"error: {e}")
    except Exception as e:  # a tool message, not a crash: the conversation can continue
        return reply(f"error: {name or 'tool'} failed: {type(e).__name__}: {e}")
    return reply(render_text(result), result)
