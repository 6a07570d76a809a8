"""OpenAI function-calling specs and dispatch, generated from the tool registry.

`openai_tool_specs()` produces strict schemas: every property required, `additionalProperties: false`,
optional fields made nullable (null means "use the default"). Keywords strict mode rejects are dropped;
the pydantic args model still enforces them at dispatch. `dispatch_tool_call` never raises: bad JSON,
unknown tools, invalid arguments and agent errors all become an error tool message the model can read.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from interestlens.agent.errors import InterestLensError
from interestlens.tools.specs import TOOLS, USER_TOOLS, get_tool, render_text

if TYPE_CHECKING:
    from interestlens.agent.service import InterestAgent

# Strict mode does not accept these (the args model validates them at dispatch instead).
_UNSUPPORTED_KEYWORDS = ("default", "title", "minLength", "maxLength")


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite one (sub)schema for strict mode, in place, recursively."""
    for key in _UNSUPPORTED_KEYWORDS:
        schema.pop(key, None)
    if schema.get("type") == "object" or "properties" in schema:
        props: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", []))
        for name, prop in props.items():
            _strict(prop)
            if name not in required:
                props[name] = _nullable(prop)
        schema["required"] = list(props)
        schema["additionalProperties"] = False
    if isinstance(schema.get("items"), dict):
        _strict(schema["items"])
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            _strict(sub)
    return schema


def _nullable(prop: dict[str, Any]) -> dict[str, Any]:
    # anyOf (not a type list): llama.cpp's schema-to-grammar converter understands it, and OpenAI accepts it.
    if "anyOf" in prop:
        if not any(s.get("type") == "null" for s in prop["anyOf"]):
            prop["anyOf"].append({"type": "null"})
        return prop
    description = prop.pop("description", None)
    out: dict[str, Any] = {"anyOf": [prop, {"type": "null"}]}
    if description:
        out["description"] = description
    return out


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                target = copy.deepcopy(defs[node["$ref"].split("/")[-1]])
                extra = {k: v for k, v in node.items() if k != "$ref"}
                return walk({**target, **extra})
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def strict_parameters(args_model: type) -> dict[str, Any]:
    """The strict JSON schema of a pydantic args model."""
    return _strict(_inline_refs(copy.deepcopy(args_model.model_json_schema())))


def openai_tool_specs(user_bound: bool = False) -> list[dict[str, Any]]:
    """The `tools=[...]` list for the Chat Completions API. With `user_bound`, `user_id` is left out of
    every schema and supplied by `dispatch_tool_call(..., user_id=...)` instead of by the model."""
    return [
        {
            "type": "function",
            "function": {
                "name": spec.name,
                "description": spec.description,
                "parameters": strict_parameters(spec.schema_model(user_bound)),
                "strict": True,
            },
        }
        for spec in (USER_TOOLS if user_bound else TOOLS)  # user-bound: no catalog administration
    ]


def _field(tool_call: Any, name: str) -> Any:
    if isinstance(tool_call, dict):
        return tool_call.get(name)
    return getattr(tool_call, name, None)


def dispatch_tool_call(agent: InterestAgent, tool_call: Any, user_id: str | None = None) -> dict[str, Any]:
    """Run one tool call (an SDK `ChatCompletionMessageToolCall` or its dict) and return the tool message.
    `user_id` binds the call to that user (use with `openai_tool_specs(user_bound=True)`)."""
    return run_tool_call(agent, tool_call, user_id)[0]


def run_tool_call(
    agent: InterestAgent, tool_call: Any, user_id: str | None = None
) -> tuple[dict[str, Any], BaseModel | None]:
    """Like `dispatch_tool_call`, also returning the validated result (None when the call failed)."""
    call_id = _field(tool_call, "id") or ""
    function = _field(tool_call, "function") or {}
    name = _field(function, "name") or ""
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
