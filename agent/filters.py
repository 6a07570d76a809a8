"""`where` filters on item metadata (Chroma's syntax): parsed and validated before any query runs, and evaluated
in Python (`matches_where`) for items that did not come from a filtered query.

Accepted from Python as a dict and from tools and the CLI as a JSON string (a strict tool schema cannot
describe an open-ended object), e.g. `{"domain": "film"}` or `{"$and": [{"year": {"$gte": 1990}},
{"genres": {"$contains": "Drama"}}]}`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from interestlens.agent.errors import InvalidInputError

MAX_WHERE_CHARS = 4000
_OPERATORS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$contains", "$not_contains"}
_LOGICAL = {"$and", "$or"}
_MAX_DEPTH = 8


def _check(node: Any, path: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise InvalidInputError(f"where{path}: nested deeper than {_MAX_DEPTH} levels")
    if not isinstance(node, dict) or not node:
        raise InvalidInputError(f"where{path}: expected a non-empty object, got {json.dumps(node)[:80]}")
    for key, value in node.items():
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"where{path}: field names must be non-empty strings")
        if key in _LOGICAL:
            if not isinstance(value, list) or not value:
                raise InvalidInputError(f"where{path}.{key}: expected a non-empty list of conditions")
            for n, sub in enumerate(value):
                _check(sub, f"{path}.{key}[{n}]", depth + 1)
            continue
        if key.startswith("$"):
            raise InvalidInputError(f"where{path}: unknown operator {key!r} (use $and or $or at this level)")
        if isinstance(value, dict):
            if len(value) != 1:
                raise InvalidInputError(f"where{path}.{key}: one operator per condition, got {sorted(value)}")
            (op, arg), = value.items()
            if op not in _OPERATORS:
                raise InvalidInputError(
                    f"where{path}.{key}: unknown operator {op!r}; use one of {', '.join(sorted(_OPERATORS))}"
                )
            if op in ("$in", "$nin"):
                if not isinstance(arg, list) or not arg or not all(_scalar(a) for a in arg):
                    raise InvalidInputError(f"where{path}.{key}.{op}: expected a non-empty list of values")
            elif op in ("$gt", "$gte", "$lt", "$lte"):
                if isinstance(arg, bool) or not isinstance(arg, int | float):
                    raise InvalidInputError(f"where{path}.{key}.{op}: expected a number, got {arg!r}")
            elif not _scalar(arg):
                raise InvalidInputError(f"where{path}.{key}.{op}: expected a string, number or boolean")
        elif not _scalar(value):
            raise InvalidInputError(f"where{path}.{key}: expected a value or {{operator: value}}")


def _scalar(v: Any) -> bool:
    return isinstance(v, str | bool | int | float) and not (isinstance(v, float) and v != v)


def _to_chroma(node: dict[str, Any]) -> dict[str, Any]:
    """Chroma wants one key per object and at least two members under $and/$or: normalise to that."""
    parts: list[dict[str, Any]] = []
    for key, value in node.items():
        if key in _LOGICAL:
            subs = [_to_chroma(s) for s in value]
            parts.append(subs[0] if len(subs) == 1 else {key: subs})
        else:
            parts.append({key: value})
    return parts[0] if len(parts) == 1 else {"$and": parts}


def parse_where(where: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """A validated where filter (None for none); a clear InvalidInputError for anything malformed."""
    if where is None:
        return None
    if isinstance(where, str):
        if not where.strip():
            return None
        if len(where) > MAX_WHERE_CHARS:
            raise InvalidInputError(f"where: at most {MAX_WHERE_CHARS} characters")
        try:
            where = json.loads(where)
        except json.JSONDecodeError as e:
            raise InvalidInputError(f"where is not valid JSON: {e.msg} at char {e.pos}") from e
    if not isinstance(where, dict):
        raise InvalidInputError(f"where must be a JSON object, got {type(where).__name__}")
    if not where:
        return None
    _check(where, "", 0)
    return _to_chroma(where)


def matches_where(metadata: Mapping[str, Any], where: Mapping[str, Any] | None) -> bool:
    """Evaluate a Chroma-style metadata filter in Python (for items that did not come from a filtered query).

    Supports {field: value}, $eq $ne $gt $gte $lt $lte $in $nin $contains $not_contains, $and, $or.
    A list-valued field matches $eq/$in when any element does.
    """
    if not where:
        return True
    try:
        for key, cond in where.items():
            if key == "$and":
                if not all(matches_where(metadata, c) for c in cond):
                    return False
            elif key == "$or":
                if not any(matches_where(metadata, c) for c in cond):
                    return False
            elif key.startswith("$"):
                raise InvalidInputError(f"unsupported where operator {key!r}")
            elif not _match_field(metadata.get(key), cond if isinstance(cond, dict) else {"$eq": cond}):
                return False
    except (TypeError, AttributeError, RecursionError) as e:
        # A malformed filter ({"$gt": "x"} on numbers, {"$and": 3}, a non-string key) is the caller's mistake.
        raise InvalidInputError(f"invalid where filter {where!r:.200}: {type(e).__name__}: {e}") from e
    return True


def _match_field(value: Any, cond: Mapping[str, Any]) -> bool:
    values = value if isinstance(value, list) else [value]
    for op, arg in cond.items():
        if op == "$eq":
            ok = arg in values
        elif op == "$ne":
            ok = arg not in values
        elif op == "$in":
            ok = any(v in arg for v in values)
        elif op == "$nin":
            ok = not any(v in arg for v in values)
        elif op == "$contains":
            ok = arg in values or (isinstance(value, str) and isinstance(arg, str) and arg in value)
        elif op == "$not_contains":
            ok = not (arg in values or (isinstance(value, str) and isinstance(arg, str) and arg in value))
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            if value is None or isinstance(value, list | str | bool):
                return False
            ok = {"$gt": value > arg, "$gte": value >= arg, "$lt": value < arg, "$lte": value <= arg}[op]
        else:
            raise InvalidInputError(f"unsupported where operator {op!r}")
        if not ok:
            return False
    return True
