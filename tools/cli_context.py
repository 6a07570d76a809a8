"""What every `interestlens` command shares: the global options' state, the agent or server a verb runs on,
the common options, reading the user's files, and printing a result (JSON or the terminal view)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import BaseModel

from interestlens.agent.config import Settings
from interestlens.agent.errors import InvalidInputError
from interestlens.agent.models import SourceText
from interestlens.tools.remote import call_server
from interestlens.tools.render import make_console, print_result, render_json
from interestlens.tools.specs import TOOLS_BY_NAME

if TYPE_CHECKING:
    from interestlens.agent.service import InterestAgent

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
WhereOpt = Annotated[
    str | None,
    typer.Option("--where", help='Metadata filter, JSON in Chroma syntax: \'{"domain": "film"}\''),
]
UserOpt = Annotated[str, typer.Option("--user", "-u", help="User id.")]


@dataclass
class State:
    llm: str | None = None
    store: str | None = None
    json: bool = False
    server: str | None = None  # an `interestlens serve` URL: verbs run there, nothing is loaded here
    token: str | None = None
    trace: bool = False  # --trace: OpenTelemetry spans for this call (agent/tracing.py)

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {}
        if self.llm is not None:
            values["llm"] = self.llm
        if self.store is not None:
            values["store"] = self.store
        if self.trace:
            values["trace"] = True
        values.update(overrides)
        return Settings(**values)

    def agent(self, **overrides: Any) -> InterestAgent:
        # Loaded on first use: the service brings the stores and models, which `--help` and --server never need.
        from interestlens.agent.service import InterestAgent

        return InterestAgent(self.settings(**overrides))


def state(ctx: typer.Context) -> State:
    return ctx.ensure_object(State)


def wants_json(ctx: typer.Context, json_: bool) -> bool:
    """--json after the command, or before it (a global option)."""
    return json_ or state(ctx).json


@contextmanager
def local_agent(ctx: typer.Context, **overrides: Any) -> Iterator[InterestAgent]:
    if state(ctx).server:
        command = ctx.command_path.removeprefix("interestlens ")
        raise InvalidInputError(f"`{command}` works on a local store only; it is not available with --server")
    agent = state(ctx).agent(**overrides)
    try:
        yield agent
    finally:
        agent.close()


def run_verb(ctx: typer.Context, verb: str, args: dict[str, Any], **overrides: Any) -> BaseModel:
    """Run one registry verb: on the `--server` service when given, else on a local agent (`overrides`
    such as llm="none" apply locally; the service runs with its own settings)."""
    current = state(ctx)
    if current.server:
        return call_server(current.server, verb, args, token=current.token)
    with local_agent(ctx, **overrides) as agent:
        return TOOLS_BY_NAME[verb].invoke(agent, args)


def emit(ctx: typer.Context, result: Any, as_json: bool = False) -> None:
    if wants_json(ctx, as_json):
        sys.stdout.write(render_json(result) + "\n")
    else:
        print_result(make_console(), result)


def read_text_file(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InvalidInputError(f"{path}: cannot read: {e.strerror or e}") from e
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise InvalidInputError(
            f"{path}: not valid UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
            "convert it to UTF-8"
        ) from e


def read_user_texts(path: Path) -> list[SourceText]:
    """A .jsonl file gives one text per line ({"text": ..., "ts"?, "source"?} or a JSON string);
    any other file is one text."""
    content = read_text_file(path)
    if path.suffix.lower() != ".jsonl":
        return [SourceText(text=content, source="file")]
    out: list[SourceText] = []
    for lineno, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if isinstance(data, str):
                data = {"text": data}
            if not isinstance(data, dict):
                raise ValueError("expected an object with a text field, or a string")
            fields = {k: v for k, v in data.items() if k in SourceText.model_fields}
            out.append(SourceText.model_validate(fields))
        except ValueError as e:  # JSONDecodeError and ValidationError are ValueErrors
            raise InvalidInputError(f"{path.name}:{lineno}: {str(e).splitlines()[0]}") from e
    return out


def split_csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]

