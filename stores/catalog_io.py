"""JSON-lines readers for catalogs, interactions and any pydantic model (the ../shared/datasets format).

Errors name the file and the 1-based line: `catalog.jsonl:12: reason`. Blank lines are skipped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from interestlens.agent.errors import InvalidInputError
from interestlens.agent.models import Interaction, Item

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


class CatalogReadResult(list[Item]):
    """The items (a list) plus how many duplicate ids were replaced by a later line."""

    duplicates: int = 0


MAX_LINE_BYTES = 1 << 20  # 1 MiB: far above any real item (bounded by agent.models limits), far below 50 MB
MAX_JSON_DEPTH = 32  # items and interactions are flat; deeper nesting is malformed or hostile


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        fh = path.open("rb")
    except OSError as e:
        raise InvalidInputError(f"{path}: cannot read: {e.strerror or e}") from e
    with fh:
        lineno = 0
        while True:
            # Bounded read: an oversized line is refused after MAX_LINE_BYTES, never loaded whole.
            raw = fh.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            lineno += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                raise InvalidInputError(
                    f"{path.name}:{lineno}: line longer than {MAX_LINE_BYTES} bytes (the limit for one record)"
                )
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InvalidInputError(
                    f"{path.name}:{lineno}: not valid UTF-8 "
                    f"(byte 0x{raw[e.start]:02x} at column {e.start + 1})"
                ) from e
            if lineno == 1:
                text = text.removeprefix("\ufeff")  # tolerate a BOM
            if text.strip():
                yield lineno, text


def _json_depth_exceeds(text: str, limit: int) -> bool:
    """True when brackets nest deeper than `limit` (outside strings): checked before json.loads recurses."""
    if text.count("[") + text.count("{") <= limit:
        return False  # the common case, at C speed
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _reason(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    return f"{loc}: {err['msg']}" if loc else err["msg"]


def read_jsonl(path: str | Path, model: type[M]) -> list[M]:
    """Each non-blank line parsed as `model`; a bad line raises InvalidInputError("FILE:LINE: reason")."""
    path = Path(path)
    out: list[M] = []
    for lineno, text in _lines(path):
        if _json_depth_exceeds(text, MAX_JSON_DEPTH):
            raise InvalidInputError(f"{path.name}:{lineno}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidInputError(f"{path.name}:{lineno}: invalid JSON: {e.msg} (column {e.colno})") from e
        except RecursionError as e:  # belt and braces: the depth check above should have caught it
            raise InvalidInputError(f"{path.name}:{lineno}: JSON nested too deeply") from e
        if not isinstance(data, dict):
            raise InvalidInputError(
                f"{path.name}:{lineno}: expected a JSON object, got {type(data).__name__}"
            )
        try:
            out.append(model.model_validate(data))
        except ValidationError as e:
            raise InvalidInputError(f"{path.name}:{lineno}: {_reason(e)}") from e
        except (RecursionError, ValueError, TypeError) as e:  # anything else a validator raises: still FILE:LINE
            raise InvalidInputError(f"{path.name}:{lineno}: {e}") from e
    return out


def read_catalog_jsonl(path: str | Path) -> CatalogReadResult:
    """Catalog items; for a duplicate id the last line wins (at the first position); see `.duplicates`."""
    items = read_jsonl(path, Item)
    by_id: dict[str, Item] = {}
    for it in items:
        by_id[it.id] = it
    result = CatalogReadResult(by_id.values())
    result.duplicates = len(items) - len(by_id)
    if result.duplicates:
        log.warning(
            "%s: %d duplicate item ids; the last line of each wins", Path(path).name, result.duplicates
        )
    return result


def read_interactions_jsonl(path: str | Path) -> list[Interaction]:
    return read_jsonl(path, Interaction)
