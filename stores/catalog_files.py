"""Catalog files by extension: `.jsonl` (one {id, title, text, metadata} per line) or `.csv`.

CSV: a header row; `id` is required, `title` and `text` are the item's text (one of them non-empty), every
other column becomes metadata: numbers stay numbers, `a|b|c` becomes a list (e.g. genres), empty cells are left
out. Errors name the file and line.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from interestlens.agent.errors import InvalidInputError
from interestlens.agent.models import Item
from interestlens.stores.catalog_io import CatalogReadResult, read_catalog_jsonl

LIST_SEPARATOR = "|"


def _value(cell: str) -> Any:
    cell = cell.strip()
    if LIST_SEPARATOR in cell:
        return [p.strip() for p in cell.split(LIST_SEPARATOR) if p.strip()]
    for cast in (int, float):
        try:
            value = cast(cell)
        except ValueError:
            continue
        if cast is float and value != value:  # NaN is not a filterable value
            return cell
        return value
    return cell


def read_catalog_csv(path: str | Path) -> CatalogReadResult:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InvalidInputError(f"{path}: cannot read: {e.strerror or e}") from e
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise InvalidInputError(f"{path.name}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start})") from e
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames or "id" not in reader.fieldnames:
        raise InvalidInputError(f"{path.name}:1: the header needs an `id` column (and title and/or text)")
    by_id: dict[str, Item] = {}
    n_rows = 0
    try:
        for row in reader:
            lineno = reader.line_num
            if None in row:
                raise InvalidInputError(f"{path.name}:{lineno}: more cells than header columns")
            if not any((v or "").strip() for v in row.values()):
                continue
            n_rows += 1
            metadata = {
                k: _value(v) for k, v in row.items() if k not in ("id", "title", "text") and v and v.strip()
            }
            try:
                item = Item(
                    id=(row.get("id") or "").strip(), title=(row.get("title") or "").strip(),
                    text=(row.get("text") or "").strip(), metadata=metadata,
                )
            except ValidationError as e:
                err = e.errors()[0]
                loc = ".".join(str(p) for p in err.get("loc", ()))
                raise InvalidInputError(f"{path.name}:{lineno}: {loc + ': ' if loc else ''}{err['msg']}") from e
            by_id[item.id] = item
    except csv.Error as e:
        raise InvalidInputError(f"{path.name}:{reader.line_num}: malformed CSV: {e}") from e
    result = CatalogReadResult(by_id.values())
    result.duplicates = n_rows - len(by_id)
    return result


def read_catalog_file(path: str | Path) -> CatalogReadResult:
    """Items of a .jsonl or .csv catalog file (chosen by extension)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_catalog_csv(path)
    if suffix in (".jsonl", ".ndjson", ".json"):
        return read_catalog_jsonl(path)
    raise InvalidInputError(f"{path.name}: unknown catalog format {suffix or '(no extension)'}: use .jsonl or .csv")
