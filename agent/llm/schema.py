"""JSON schemas from pydantic response models, shaped for what each backend can enforce.

- `grammar_schema(Model)`: for llama.cpp's JSON-schema-to-GBNF converter. $refs are inlined, keywords the
  converter ignores or mishandles are dropped (pydantic validates them afterwards anyway), and every string
  and list gets an upper bound, because an unbounded string lets a tiny model write until max_tokens runs out.
- `model_gbnf(Model)`: the GBNF grammar itself, with a JSON-safe `char` rule (the converter's own rule admits
  raw control characters such as newlines, which make the JSON invalid).
- `budget_gbnf(Model, max_tokens)`: a grammar whose longest possible output fits in `max_tokens`, for the retry
  of a reply cut at max_tokens (see `LlamaCppLLM.generate`).
- `openai_strict_schema(Model)`: for OpenAI `response_format={"type": "json_schema", "strict": true}`: every
  object closed (`additionalProperties: false`) with every property required, and only keywords strict mode
  accepts. `openai_strict_schema(Model, arguments=True)`: the same for strict function parameters (the tool
  surfaces), where optional properties are nullable instead (see the function).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from functools import lru_cache, partial
from typing import Any

from pydantic import BaseModel

from interestlens.agent.errors import InterestLensError

# Applied where the response model leaves a string or list unbounded.
DEFAULT_MAX_STRING = 300
DEFAULT_MAX_ITEMS = 12

# Formats the llama.cpp converter turns into exact rules; others are dropped (pydantic checks them).
_GRAMMAR_FORMATS = {"date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5"}
_GRAMMAR_KEYWORDS = {
    "type",
    "properties",
    "required",
    "items",
    "prefixItems",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "allOf",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "additionalProperties",
    "format",
}
# Reply schemas keep only these: what every server offering strict mode accepts (pydantic checks the rest).
_STRICT_KEYWORDS = {
    "type",
    "properties",
    "required",
    "items",
    "enum",
    "const",
    "anyOf",
    "additionalProperties",
    "description",
}
# Argument schemas drop only these, which OpenAI strict mode refuses, and keep their other bounds (pattern,
# minimum / maximum, item counts); the args model enforces every bound at dispatch anyway.
_STRICT_REFUSED = {"default", "title", "minLength", "maxLength"}

# Control characters and DEL are excluded: JSON forbids raw control characters inside strings.
_JSON_SAFE_CHAR = (
    r'char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'
)


# The retry grammar: printable ASCII only (no escapes), so every token the grammar admits is at least one byte
# and one output character, and whitespace between tokens is dropped. Its worst case in bytes then bounds tokens.
_ASCII_CHAR = r"char ::= [\x20\x21\x23-\x5B\x5D-\x7E]"
_NO_SPACE = 'space ::= ""'
_NUMBER_BYTES = {"integer": 17, "number": 40, "boolean": 5, "null": 4}  # llama.cpp's rules bound digits to 16
_FORMAT_BYTES = 40  # date-time, uuid ... quoted


class SchemaError(InterestLensError):
    """A response model that cannot be turned into a bounded schema (e.g. a recursive model)."""


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace every local `$ref` by a copy of its target and drop `$defs`. Recursive models are refused."""
    defs: dict[str, Any] = {**schema.get("definitions", {}), **schema.get("$defs", {})}

    def resolve(node: Any, stack: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [resolve(x, stack) for x in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if not ref.startswith("#/") or name not in defs:
                raise SchemaError(f"unsupported $ref {ref!r} in response schema")
            if name in stack:
                raise SchemaError(f"recursive response model ({name}) cannot be bounded for a grammar")
            target = resolve(copy.deepcopy(defs[name]), (*stack, name))
            # Siblings of $ref (pydantic puts description/default there) refine the target.
            siblings = {k: resolve(v, stack) for k, v in node.items() if k != "$ref"}
            return {**target, **siblings}
        return {k: resolve(v, stack) for k, v in node.items() if k not in ("$defs", "definitions")}

    return resolve(schema, ())


def _schema_types(node: dict[str, Any]) -> set[str]:
    t = node.get("type")
    if isinstance(t, list):
        return set(t)
    return {t} if isinstance(t, str) else set()


def _rewrite(node: Any, keep: Callable[[str, Any], bool], close: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
    """`node` with only the keywords `keep` accepts, each (sub)schema finished by `close`, innermost first."""
    if isinstance(node, list):
        return [_rewrite(x, keep, close) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if not keep(key, value):
            continue
        if key == "properties":
            out[key] = {name: _rewrite(sub, keep, close) for name, sub in value.items()}
        elif isinstance(value, dict | list) and key != "required":
            out[key] = _rewrite(value, keep, close)
        else:
            out[key] = value
    return close(out)


def _grammar_keyword(key: str, value: Any) -> bool:
    return key in _GRAMMAR_KEYWORDS and (key != "format" or value in _GRAMMAR_FORMATS)


def _bound(out: dict[str, Any], max_string: int, max_items: int) -> dict[str, Any]:
    types = _schema_types(out)
    if "string" in types and "enum" not in out and "const" not in out and "format" not in out:
        out["maxLength"] = min(int(out.get("maxLength", max_string)), max_string)
        if out.get("minLength", 0) > out["maxLength"]:
            out["minLength"] = out["maxLength"]
    if "array" in types:
        out["maxItems"] = min(int(out.get("maxItems", max_items)), max_items)
        if out.get("minItems", 0) > out["maxItems"]:
            out["minItems"] = out["maxItems"]
    if "object" in types and "properties" in out and "additionalProperties" not in out:
        # Pydantic models ignore extra keys by default; the grammar should not offer them at all.
        out["additionalProperties"] = False
    return out


def grammar_schema(
    model: type[BaseModel], *, max_string: int = DEFAULT_MAX_STRING, max_items: int = DEFAULT_MAX_ITEMS
) -> dict[str, Any]:
    """Bounded, $ref-free schema of `model` for llama.cpp's JSON-schema-to-grammar converter.

    `max_string`/`max_items` cap every string/list, including ones the model bounds more loosely.
    """
    bound = partial(_bound, max_string=max_string, max_items=max_items)
    return _rewrite(inline_refs(model.model_json_schema()), _grammar_keyword, bound)


def _char_rule_fix(gbnf: str) -> str:
    lines = [(_JSON_SAFE_CHAR if line.startswith("char ::=") else line) for line in gbnf.splitlines()]
    return "\n".join(lines)


@lru_cache(maxsize=256)
def _gbnf_cached(schema_json: str) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return _char_rule_fix(json_schema_to_gbnf(schema_json))
    except (AssertionError, KeyError, ValueError) as e:
        raise SchemaError(f"cannot build a grammar from the response schema: {e}") from e


def schema_gbnf(schema: dict[str, Any]) -> str:
    """GBNF grammar for an already prepared (see `grammar_schema`) JSON schema."""
    # Key order is kept: it is the order in which the model writes the fields.
    return _gbnf_cached(json.dumps(schema))


def model_gbnf(
    model: type[BaseModel], *, max_string: int = DEFAULT_MAX_STRING, max_items: int = DEFAULT_MAX_ITEMS
) -> str:
    """GBNF grammar accepting exactly the bounded JSON objects of `model` (property order as declared)."""
    return schema_gbnf(grammar_schema(model, max_string=max_string, max_items=max_items))


def worst_case_bytes(node: Any) -> int:
    """Longest JSON (in bytes) that the retry grammar of a `grammar_schema` node admits."""
    if not isinstance(node, dict):
        return 4
    if "const" in node:
        return len(json.dumps(node["const"]))
    if "enum" in node:
        return max((len(json.dumps(v)) for v in node["enum"]), default=4)
    alternatives = node.get("anyOf") or node.get("oneOf")
    if alternatives:
        return max(worst_case_bytes(a) for a in alternatives)
    types = _schema_types(node) or {"object"}
    worst = 0
    for t in types:
        if t == "string":
            bound = _FORMAT_BYTES if "format" in node else 2 + int(node.get("maxLength", DEFAULT_MAX_STRING))
            worst = max(worst, bound)
        elif t == "array":
            n = int(node.get("maxItems", DEFAULT_MAX_ITEMS))
            worst = max(worst, 2 + n * (worst_case_bytes(node.get("items", {})) + 1))
        elif t == "object":
            props = node.get("properties", {})
            worst = max(worst, 2 + sum(len(json.dumps(k)) + 2 + worst_case_bytes(v) for k, v in props.items()))
        else:
            worst = max(worst, _NUMBER_BYTES.get(t, 40))
    return worst


def _min_string(node: Any) -> int:
    """The largest minLength anywhere in the schema: strings cannot be bounded below it."""
    if isinstance(node, list):
        return max((_min_string(x) for x in node), default=0)
    if not isinstance(node, dict):
        return 0
    own = int(node.get("minLength", 0)) if "string" in _schema_types(node) else 0
    return max([own, *(_min_string(v) for v in node.values() if isinstance(v, dict | list))])


def budget_gbnf(model: type[BaseModel], max_tokens: int, *, max_items: int = DEFAULT_MAX_ITEMS) -> tuple[str, int]:
    """(grammar, token budget) such that no output of the grammar is longer than the budget.

    Strings are shortened first, then lists, until the worst case fits `max_tokens`; if even the tightest bounds
    do not fit (required fields, minimum lengths), the budget grows to that worst case. The grammar admits only
    printable ASCII without escapes and no whitespace, so every admitted token is at least one byte.
    """
    floor = max(1, _min_string(inline_refs(model.model_json_schema())))

    def worst(s: int, n: int) -> int:
        return worst_case_bytes(grammar_schema(model, max_string=s, max_items=n))

    items = max_items
    while items > 1 and worst(floor, items) > max_tokens:
        items -= 1
    lo, hi = floor, DEFAULT_MAX_STRING  # largest string bound that fits (worst is monotone in it)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if worst(mid, items) <= max_tokens else (lo, mid - 1)
    schema = grammar_schema(model, max_string=lo, max_items=items)
    lines = [
        _ASCII_CHAR if line.startswith("char ::=") else _NO_SPACE if line.startswith("space ::=") else line
        for line in schema_gbnf(schema).splitlines()
    ]
    return "\n".join(lines), max(max_tokens, worst_case_bytes(schema))


def _reply_keyword(key: str, _value: Any) -> bool:
    return key in _STRICT_KEYWORDS


def _argument_keyword(key: str, _value: Any) -> bool:
    return key not in _STRICT_REFUSED


def _nullable(prop: dict[str, Any]) -> dict[str, Any]:
    """`prop` that also accepts null. anyOf (not a type list): llama.cpp's schema-to-grammar converter
    understands it, and OpenAI accepts it; the description stays on the outside, where hosts show it."""
    if "anyOf" in prop:
        if not any(s.get("type") == "null" for s in prop["anyOf"]):
            prop = {**prop, "anyOf": [*prop["anyOf"], {"type": "null"}]}
        return prop
    inner = {k: v for k, v in prop.items() if k != "description"}
    out: dict[str, Any] = {"anyOf": [inner, {"type": "null"}]}
    if prop.get("description"):
        out["description"] = prop["description"]
    return out


def _close(out: dict[str, Any], nullable_optional: bool) -> dict[str, Any]:
    if ("properties" in out or "object" in _schema_types(out)) and not isinstance(
        out.get("additionalProperties"), dict
    ):  # a dict[str, X] field keeps its value schema; strict servers may refuse it, nothing better exists
        out.setdefault("type", "object")
        props = out.setdefault("properties", {})
        if nullable_optional:
            required = set(out.get("required", []))
            for name, prop in props.items():
                if name not in required:
                    props[name] = _nullable(prop)
        out["required"] = list(props)
        out["additionalProperties"] = False
    return out


def openai_strict_schema(model: type[BaseModel], *, arguments: bool = False) -> dict[str, Any]:
    """Schema for OpenAI strict structured outputs (refs inlined): every object closed, every property required.

    A reply schema (the default) lists optional properties as required as they are: the reply is validated as
    sent, so a null where the model has a default would fail; and it keeps only `_STRICT_KEYWORDS`.
    `arguments=True` is for strict function parameters (tools/openai_functions.py): optional properties also
    accept null, which dispatch reads as "use the default" (it drops them before validating), and only the
    keywords strict mode refuses (`_STRICT_REFUSED`) are dropped.
    """
    keep = _argument_keyword if arguments else _reply_keyword
    return _rewrite(inline_refs(model.model_json_schema()), keep, partial(_close, nullable_optional=arguments))


def describe_schema(model: type[BaseModel]) -> str:
    """Compact JSON of the bounded schema, for prompts that must state the expected shape in words."""
    return json.dumps(grammar_schema(model), separators=(",", ":"))
