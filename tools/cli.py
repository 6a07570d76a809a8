"""`interestlens` command line: catalog, observe, profile, recommend, explain, forget, topics, demo, mcp,
chat, eval.

Global options (before the command): `--llm` (smollm2 | gguf:PATH | openai:MODEL | none), `--store`
(directory or http://host:port), `--json` (also accepted after any command). Results go to stdout; progress,
logs and errors go to stderr. User mistakes print one line `error: ...` and exit 2; runtime failures (a
backend down) exit 1.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape

from interestlens.agent.errors import InterestLensError, InvalidInputError, LLMError, StoreError
from interestlens.agent.models import RecommendationResult, SourceText
from interestlens.agent.prompting import clean_line
from interestlens.tools.remote import call_server
from interestlens.tools.specs import TOOLS_BY_NAME, render_text

if TYPE_CHECKING:
    from interestlens.agent.config import Settings
    from interestlens.agent.service import InterestAgent


# ----------------------------------------------------------------------------------------------- terminal safety
def safe(text: object) -> str:
    """Catalog or model text for the terminal: one line, no control characters (no escape sequences that
    could recolour, retitle or rewrite the terminal), rich markup escaped."""
    return escape(clean_line(text))


def safe_block(text: str) -> str:
    """Like `safe`, line by line (keeps the line structure of render_text output)."""
    lines = str(text).splitlines()
    return "\n".join(line[: len(line) - len(line.lstrip(" "))] + safe(line) if line.strip() else "" for line in lines)


app = typer.Typer(
    name="interestlens",
    help="Grounded interest profiles and recommendations with quoted evidence.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
catalog_app = typer.Typer(help="Manage the item catalog.", no_args_is_help=True)
profile_app = typer.Typer(help="Show or edit a user's interest profile.")
eval_app = typer.Typer(help="Offline evaluation (see evals/).", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
app.add_typer(profile_app, name="profile")
app.add_typer(eval_app, name="eval")

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
        from interestlens.agent.config import Settings

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
        from interestlens.agent.service import InterestAgent

        return InterestAgent(self.settings(**overrides))


def _state(ctx: typer.Context) -> State:
    return ctx.ensure_object(State)


@contextmanager
def _agent(ctx: typer.Context, **overrides: Any) -> Iterator[InterestAgent]:
    if _state(ctx).server:
        command = ctx.command_path.removeprefix("interestlens ")
        raise InvalidInputError(f"`{command}` works on a local store only; it is not available with --server")
    agent = _state(ctx).agent(**overrides)
    try:
        yield agent
    finally:
        agent.close()


def _run_verb(ctx: typer.Context, verb: str, args: dict[str, Any], **overrides: Any) -> BaseModel:
    """Run one registry verb: on the `--server` service when given, else on a local agent (`overrides`
    such as llm="none" apply locally; the service runs with its own settings)."""
    state = _state(ctx)
    if state.server:
        return call_server(state.server, verb, args, token=state.token)
    with _agent(ctx, **overrides) as agent:
        return TOOLS_BY_NAME[verb].invoke(agent, args)


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _emit(ctx: typer.Context, result: Any, as_json: bool = False) -> None:
    if as_json or _state(ctx).json:
        if isinstance(result, BaseModel):
            sys.stdout.write(result.model_dump_json(indent=2) + "\n")
        else:
            payload = (
                [r.model_dump(mode="json") if isinstance(r, BaseModel) else r for r in result]
                if isinstance(result, list)
                else result
            )
            sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        return
    if isinstance(result, RecommendationResult):
        print_recommendations(_console(), result)
    elif isinstance(result, CatalogAddResult):
        _console().print(
            f"Read {result.items_read} items ({result.duplicate_ids} duplicate ids); "
            f"wrote {result.items_written} new or changed; {result.interactions_written} interactions added."
        )
    elif isinstance(result, BaseModel):
        _console().print(safe_block(render_text(result)))
    else:
        _console().print(safe_block(json.dumps(result, indent=2, default=str)))


def print_recommendations(console: Console, result: RecommendationResult) -> None:
    """Ranked items, each with its justification and the user's words it rests on."""
    if not result.recommendations:
        console.print(safe_block(render_text(result)))
        return
    head = f"Recommendations for [bold]{safe(result.user_id)}[/bold]"
    if result.context:
        head += f" — context: [italic]{safe(result.context)}[/italic]"
    console.print(head)
    for r in result.recommendations:
        domain = r.item.metadata.get("domain")
        tag = f" [dim]({safe(domain)})[/dim]" if domain else ""
        console.print(f"[bold]{r.rank}. {safe(r.item.title)}[/bold]{tag} [dim]{safe(r.item.id)}[/dim]")
        if r.justification:
            console.print(f"   {safe(r.justification)}")
        for span in r.cited_evidence[:2]:
            console.print(f"   [green]“{safe(span.text)}”[/green]")


def _read_text_file(path: Path) -> str:
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
    content = _read_text_file(path)
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


def _print_version(value: bool) -> None:
    if value:
        from interestlens.agent.version import __version__

        typer.echo(f"interestlens {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    llm: Annotated[
        str | None,
        typer.Option(
            "--llm",
            help="smollm2 (packaged, default) | gguf:PATH | openai:MODEL | none",
            envvar="INTERESTLENS_LLM",
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Store directory or Chroma server URL http://host:port (default ~/.interestlens)",
            envvar="INTERESTLENS_STORE",
        ),
    ] = None,
    json_: JsonOpt = False,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="URL of `interestlens serve` (http://127.0.0.1:8766): run verbs there, with no model loading here.",
            envvar="INTERESTLENS_SERVER",
        ),
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="Bearer token for --server.", envvar="INTERESTLENS_TOKEN")
    ] = None,
    trace_to: Annotated[
        str | None,
        typer.Option("--trace", help="OpenTelemetry spans of this call: console (stderr) | otlp | FILE (JSON lines)."),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
    ] = False,
) -> None:
    if trace_to:
        from interestlens.agent.tracing import enable_tracing

        enable_tracing(trace_to)
    ctx.obj = State(llm=llm, store=store, json=json_, server=server, token=token, trace=bool(trace_to))


# ----------------------------------------------------------------------------------------------- catalog
class CatalogAddResult(BaseModel):
    items_read: int
    items_written: int
    duplicate_ids: int = 0
    interactions_written: int = 0


@catalog_app.command("add")
def catalog_add(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="Catalog .jsonl ({id, title, text, metadata} per line) or .csv (id,title,text + metadata columns)."
        ),
    ],
    interactions: Annotated[
        Path | None,
        typer.Option("--interactions", help="Interactions JSONL: {user_id, item_id, value?, ts?} per line."),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Add (or update) catalog items; unchanged items are skipped."""
    from interestlens.stores.catalog_files import read_catalog_file
    from interestlens.stores.catalog_io import read_interactions_jsonl

    items = read_catalog_file(file)
    inter = read_interactions_jsonl(interactions) if interactions is not None else []
    with _agent(ctx) as agent:
        written = agent.add_items(items, progress=True)
        n_inter = agent.add_interactions(inter) if inter else 0
    _emit(
        ctx,
        CatalogAddResult(
            items_read=len(items),
            items_written=written,
            duplicate_ids=getattr(items, "duplicates", 0),
            interactions_written=n_inter,
        ),
        json_,
    )


# ----------------------------------------------------------------------------------------------- tools
@app.command()
def observe(
    ctx: typer.Context,
    user: UserOpt,
    texts: Annotated[list[str] | None, typer.Argument(help="Texts the user wrote.")] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="UTF-8 text file (one text) or .jsonl (one {text} per line)."),
    ] = None,
    history: Annotated[
        list[str] | None, typer.Option("--history", help="Id of an item the user consumed (repeatable).")
    ] = None,
    messages: Annotated[
        Path | None,
        typer.Option(
            "--messages", help='A conversation: JSON file with a list of {"role": "user"|"assistant", "content"}.'
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Update a user's interest profile from what they wrote (texts, a file, or a conversation)."""
    if messages is not None:
        if texts or file is not None:
            raise InvalidInputError("give --messages, or texts/--file, not both")
        try:
            turns = json.loads(_read_text_file(messages))
        except json.JSONDecodeError as e:
            raise InvalidInputError(f"{messages}: invalid JSON: {e.msg} (line {e.lineno})") from e
        if not isinstance(turns, list):
            raise InvalidInputError(f"{messages}: expected a JSON list of {{role, content}} messages")
        _emit(ctx, _run_verb(ctx, "observe", {"user_id": user, "messages": turns, "history": history or []}), json_)
        return
    sources: list[Any] = list(texts or [])
    if file is not None:
        sources.extend(read_user_texts(file))
    if not sources:
        raise InvalidInputError("nothing to observe: pass TEXT arguments or --file")
    args = {"user_id": user, "texts": [s if isinstance(s, str) else s.text for s in sources], "history": history or []}
    if _state(ctx).server:  # the service takes plain texts (a file's timestamps stay local)
        _emit(ctx, _run_verb(ctx, "observe", args), json_)
        return
    TOOLS_BY_NAME["observe"].parse_args(args)  # the registry's bounds and user id, before touching the store
    with _agent(ctx) as agent:
        result = agent.observe(user, sources, history=history or [])
    _emit(ctx, result, json_)


@profile_app.callback(invoke_without_command=True)
def profile(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", "-u", help="User id.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Show a user's profile (likes, dislikes, weights, quoted evidence)."""
    if ctx.invoked_subcommand is not None:
        return
    if user is None:
        raise InvalidInputError("profile needs --user (or a subcommand: mute, unmute, delete)")
    _emit(ctx, _run_verb(ctx, "profile", {"user_id": user}, llm="none"), json_)


InterestOpt = Annotated[str, typer.Option("--interest", "-i", help="Interest id (see `profile --user U`).")]


@profile_app.command("mute")
def profile_mute(ctx: typer.Context, user: UserOpt, interest: InterestOpt, json_: JsonOpt = False) -> None:
    """Mute an interest: kept, but no longer used for recommendations."""
    _emit(ctx, _edit(ctx, user, "mute", interest_id=interest), json_)


@profile_app.command("unmute")
def profile_unmute(ctx: typer.Context, user: UserOpt, interest: InterestOpt, json_: JsonOpt = False) -> None:
    """Use a muted interest again."""
    _emit(ctx, _edit(ctx, user, "unmute", interest_id=interest), json_)


@profile_app.command("delete")
def profile_delete(ctx: typer.Context, user: UserOpt, interest: InterestOpt, json_: JsonOpt = False) -> None:
    """Delete one interest from a profile."""
    _emit(ctx, _edit(ctx, user, "delete", interest_id=interest), json_)


def _edit(ctx: typer.Context, user: str, operation: str, **fields: Any) -> BaseModel:
    return _run_verb(ctx, "edit_profile", {"user_id": user, "operation": operation, **fields}, llm="none")


def _split_csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@app.command()
def recommend(
    ctx: typer.Context,
    user: UserOpt,
    context: Annotated[
        str | None, typer.Option("--context", "-c", help="The situation, e.g. 'rainy Sunday'.")
    ] = None,
    k: Annotated[int, typer.Option("-k", "--k", help="Number of items.")] = 10,
    expand: Annotated[
        str | None, typer.Option("--expand", help="Comma-separated: adjacent,collaborative,knowledge")
    ] = None,
    where: WhereOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Recommend items with justifications quoting the user's own words."""
    args = {"user_id": user, "context": context, "k": k, "expand": _split_csv(expand), "where": where}
    result = _run_verb(ctx, "recommend", args)
    for warning in result.stats.warnings:  # type: ignore[attr-defined]
        if "catalog is empty" in warning:
            typer.echo(f"warning: {warning}", err=True)
    _emit(ctx, result, json_)


@app.command()
def explain(
    ctx: typer.Context,
    user: UserOpt,
    item: Annotated[str, typer.Option("--item", help="Item id.")],
    json_: JsonOpt = False,
) -> None:
    """Show the chain behind a recommended item: intents, interests, quoted evidence."""
    _emit(ctx, _run_verb(ctx, "explain", {"user_id": user, "item_id": item}, llm="none"), json_)


@app.command()
def forget(ctx: typer.Context, user: UserOpt, json_: JsonOpt = False) -> None:
    """Delete everything stored about a user."""
    _emit(ctx, _run_verb(ctx, "forget", {"user_id": user}, llm="none"), json_)


store_app = typer.Typer(help="Move a whole store.", no_args_is_help=True)
app.add_typer(store_app, name="store")


@store_app.command("copy")
def store_copy(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="Store to read: a directory or http://host:port.")],
    destination: Annotated[str, typer.Argument(help="Empty store to write: a directory or http://host:port.")],
    json_: JsonOpt = False,
) -> None:
    """Copy every record and interaction (embedded <-> server); the destination must be empty."""
    from interestlens.stores.chroma_store import ChromaStore
    from interestlens.stores.store_copy import copy_store

    with _agent(ctx, llm="none", store=source) as agent:
        dst = ChromaStore(destination, agent.embedder)
        try:
            report = copy_store(agent.store, dst, progress=not _state(ctx).json and not json_)
        finally:
            dst.close()
    if json_ or _state(ctx).json:
        _emit(ctx, report, True)
    else:
        copied = ", ".join(f"{n} {c}" for n, c in report.records.items())
        _console().print(escape(f"Copied {report.source} -> {report.destination}: {copied}; "
                                f"interactions {report.interactions}."))


@app.command()
def topics(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Group all users' interests into topics."""
    with _agent(ctx) as agent:
        result = agent.topics()
    if json_ or _state(ctx).json:
        _emit(ctx, result, True)
        return
    console = _console()
    if not result:
        console.print("No topics yet (observe some users first).")
    for t in result:
        console.print(
            f"[bold]{safe(t.name)}[/bold] [dim]{safe(t.id)}[/dim] ({t.size} interests): "
            + safe(", ".join(t.interest_names[:8]))
        )


# ----------------------------------------------------------------------------------------------- memory
@app.command()
def feedback(
    ctx: typer.Context,
    user: UserOpt,
    item: Annotated[str, typer.Option("--item", help="Item id.")],
    verdict: Annotated[str, typer.Argument(help="liked | disliked | seen")],
    note: Annotated[str | None, typer.Option("--note", help="The user's words about the item.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Record the user's verdict on an item (liked and seen items are never recommended again)."""
    args = {"user_id": user, "item_id": item, "feedback": verdict, "note": note}
    _emit(ctx, _run_verb(ctx, "feedback", args, llm="none"), json_)


@app.command()
def history(
    ctx: typer.Context,
    user: UserOpt,
    limit: Annotated[int, typer.Option("--limit", help="Newest entries to show.")] = 20,
    json_: JsonOpt = False,
) -> None:
    """Every change to a user's profile, newest first (observe, feedback, edits, undo)."""
    if _state(ctx).server:  # the service's history verb leaves the undo snapshots out
        _emit(ctx, _run_verb(ctx, "history", {"user_id": user, "limit": limit}), json_)
        return
    with _agent(ctx, llm="none") as agent:
        result = agent.history(user, limit=limit)  # with the undo snapshots in --json
        _emit(ctx, result if (json_ or _state(ctx).json) else TOOLS_BY_NAME["history"].invoke(
            agent, {"user_id": user, "limit": limit}
        ), json_)


@app.command("export")
def export_user(
    ctx: typer.Context,
    user: UserOpt,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file (default stdout).")] = None,
) -> None:
    """Everything stored about a user, as JSON (for an access request; `import` restores it)."""
    data = _run_verb(ctx, "export", {"user_id": user}, llm="none").model_dump_json(indent=2)
    if out is None:
        sys.stdout.write(data + "\n")
    else:
        out.write_text(data + "\n", encoding="utf-8")
        typer.echo(f"wrote {out}", err=True)


@app.command("import")
def import_user(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A file written by `export`.")],
    user: Annotated[str | None, typer.Option("--user", "-u", help="Import under this id instead.")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace an existing user's data.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Restore a user from an export."""
    with _agent(ctx, llm="none") as agent:
        result = agent.import_user(_read_text_file(file), user_id=user, replace=replace)
    if json_ or _state(ctx).json:
        _emit(ctx, result, True)
    else:
        typer.echo(
            f"Imported {result.user_id}: {result.interests} interests, {result.sources} texts, "
            f"{result.history} history entries, {result.interactions} interactions."
        )


NameOpt = Annotated[str, typer.Option("--name", help="Interest name.")]


@profile_app.command("rename")
def profile_rename(
    ctx: typer.Context, user: UserOpt, interest: InterestOpt, name: NameOpt, json_: JsonOpt = False
) -> None:
    """Rename an interest."""
    _emit(ctx, _edit(ctx, user, "rename", interest_id=interest, name=name), json_)


@profile_app.command("reweight")
def profile_reweight(
    ctx: typer.Context, user: UserOpt, interest: InterestOpt,
    weight: Annotated[float, typer.Option("--weight", help="0-5 (1 is a plain statement).")],
    json_: JsonOpt = False,
) -> None:
    """Set an interest's weight."""
    _emit(ctx, _edit(ctx, user, "reweight", interest_id=interest, weight=weight), json_)


@profile_app.command("flip")
def profile_flip(ctx: typer.Context, user: UserOpt, interest: InterestOpt, json_: JsonOpt = False) -> None:
    """Turn a like into a dislike, or back."""
    _emit(ctx, _edit(ctx, user, "flip", interest_id=interest), json_)


@profile_app.command("add")
def profile_add(
    ctx: typer.Context, user: UserOpt, name: NameOpt,
    dislike: Annotated[bool, typer.Option("--dislike", help="A dislike (default: a like).")] = False,
    weight: Annotated[float, typer.Option("--weight")] = 1.0,
    json_: JsonOpt = False,
) -> None:
    """Add an interest by hand."""
    _emit(ctx, _edit(ctx, user, "add", name=name, polarity="dislike" if dislike else "like", weight=weight), json_)


@profile_app.command("undo")
def profile_undo(ctx: typer.Context, user: UserOpt, json_: JsonOpt = False) -> None:
    """Revert the latest change to the profile (repeat to walk back)."""
    _emit(ctx, _edit(ctx, user, "undo"), json_)


@catalog_app.command("list")
def catalog_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit")] = 20,
    offset: Annotated[int, typer.Option("--offset")] = 0,
    where: WhereOpt = None,
    json_: JsonOpt = False,
) -> None:
    """List catalog items (a page)."""
    _emit(ctx, _run_verb(ctx, "catalog_list", {"limit": limit, "offset": offset, "where": where}, llm="none"), json_)


@catalog_app.command("get")
def catalog_get(
    ctx: typer.Context, ids: Annotated[list[str], typer.Argument(help="Item ids.")], json_: JsonOpt = False
) -> None:
    """Show catalog items by id."""
    result = _run_verb(ctx, "catalog_get", {"item_ids": ids}, llm="none")
    if result.unknown_ids and not result.items:
        raise InvalidInputError(f"unknown item id(s): {', '.join(result.unknown_ids[:10])}")
    _emit(ctx, result, json_)


@catalog_app.command("remove")
def catalog_remove(
    ctx: typer.Context, ids: Annotated[list[str], typer.Argument(help="Item ids.")], json_: JsonOpt = False
) -> None:
    """Remove items from the catalog."""
    _emit(ctx, _run_verb(ctx, "catalog_remove", {"item_ids": ids}, llm="none"), json_)


@catalog_app.command("count")
def catalog_count(ctx: typer.Context, where: WhereOpt = None, json_: JsonOpt = False) -> None:
    """How many items (optionally matching --where)."""
    _emit(ctx, _run_verb(ctx, "catalog_count", {"where": where}, llm="none"), json_)


@catalog_app.command("search")
def catalog_search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to look for, in words.")],
    k: Annotated[int, typer.Option("-k", "--k")] = 10,
    where: WhereOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Search the catalog by meaning."""
    _emit(ctx, _run_verb(ctx, "catalog_search", {"query": query, "k": k, "where": where}, llm="none"), json_)


# ----------------------------------------------------------------------------------------------- demo
def _packaged_path(name: str) -> Any:
    return resources.files("interestlens.agent").joinpath(f"data/{name}")


@app.command()
def demo(
    ctx: typer.Context,
    user: Annotated[str, typer.Option("--user", "-u", help="User id for the demo user.")] = "demo",
    context: Annotated[str | None, typer.Option("--context", "-c")] = None,
    k: Annotated[int, typer.Option("-k", "--k")] = 5,
    json_: JsonOpt = False,
) -> None:
    """Ingest the packaged demo catalog, observe the demo user's texts, and recommend."""
    from interestlens.stores.catalog_io import read_catalog_jsonl

    state = _state(ctx)
    err = Console(stderr=True, highlight=False)
    with (
        resources.as_file(_packaged_path("demo_catalog.jsonl")) as cat,
        resources.as_file(_packaged_path("demo_user.jsonl")) as usr,
        tempfile.TemporaryDirectory(prefix="interestlens-demo-") as tmp,
    ):
        overrides = {} if state.store is not None else {"store": tmp}
        items = read_catalog_jsonl(cat)
        texts = read_user_texts(usr)
        with _agent(ctx, **overrides) as agent:
            err.print(f"demo: adding {len(items)} catalog items")
            agent.add_items(items, progress=True)
            err.print(f"demo: observing {len(texts)} texts from user {user!r}")
            observed = agent.observe(user, texts)
            result = TOOLS_BY_NAME["recommend"].invoke(agent, {"user_id": user, "context": context, "k": k})
    if json_ or state.json:
        sys.stdout.write(
            json.dumps(
                {"observe": observed.model_dump(mode="json"), "recommend": result.model_dump(mode="json")},
                indent=2,
            )
            + "\n"
        )
        return
    console = _console()
    console.print("[bold]What we learned from the demo user's texts:[/bold]")
    for i in observed.added + observed.reinforced:
        quote = f" — “{safe(i.evidence[0].text)}”" if i.evidence else ""
        console.print(f"  {'+' if i.polarity.value == 'like' else '-'} {safe(i.name)}{quote}")
    console.print()
    print_recommendations(console, result)


# ----------------------------------------------------------------------------------------------- servers
@app.command()
def mcp(
    ctx: typer.Context,
    http: Annotated[
        int | None, typer.Option("--http", help="Serve streamable HTTP on this port (default: stdio).")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="HTTP bind address.")] = "127.0.0.1",
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="INTERESTLENS_MCP_TOKEN",
            help="Bearer token every HTTP request must carry (required on any bind but 127.0.0.1; "
            "at least 16 characters).",
        ),
    ] = None,
    bound_user: Annotated[
        str | None, typer.Option("--user", help="Serve this user only: every call for another user is refused.")
    ] = None,
) -> None:
    """Run the MCP server (stdio by default)."""
    from interestlens.tools.mcp_server import serve

    state = _state(ctx)
    if http is None:
        serve(state.agent, transport="stdio", user_id=bound_user)
    else:
        serve(state.agent, transport="http", host=host, port=http, token=token, user_id=bound_user)


@app.command()
def serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", help="HTTP port.")] = 8766,
    host: Annotated[str, typer.Option("--host", help="Bind address.")] = "127.0.0.1",
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="INTERESTLENS_TOKEN",
                     help="Bearer token every request must carry (required on any bind but 127.0.0.1)."),
    ] = None,
    bound_user: Annotated[
        str | None, typer.Option("--user", help="Serve this user only: every call for another user is refused.")
    ] = None,
) -> None:
    """Run the HTTP JSON API (POST /v1/<verb>, docs at /docs, MCP at /mcp) in one long-lived process."""
    from interestlens.tools.http_service import serve as run_service

    run_service(_state(ctx).agent, host=host, port=port, token=token, user_id=bound_user)


@app.command()
def chat(ctx: typer.Context, user: UserOpt, k: Annotated[int, typer.Option("-k", "--k")] = 5) -> None:
    """A small terminal assistant: what you say updates your profile; ask for recommendations any time."""
    from interestlens.tools.chat import run_chat

    with _agent(ctx) as agent:
        run_chat(agent, user, k=k)


# ----------------------------------------------------------------------------------------------- evals
@eval_app.command("recommend")
def eval_recommend(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option("--data", help="Dataset directory.")],
    split: Annotated[str, typer.Option("--split")] = "dev",
    protocol: Annotated[str, typer.Option("--protocol", help="full | sampled")] = "full",
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many users.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    systems: Annotated[str | None, typer.Option("--systems", help="Comma-separated system names.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output directory.")] = None,
    fusion: Annotated[
        str, typer.Option("--fusion", help="cv (fit by cross-validation over users) | linear | PATH of a model")
    ] = "cv",
    folds: Annotated[int, typer.Option("--folds", help="K of the cross-validation over users.")] = 5,
    text_fields: Annotated[
        str | None, typer.Option("--text-fields", help="Metadata fields appended to item text (comma-separated).")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Run the recommendation evaluation on a dataset split."""
    if protocol not in ("full", "sampled"):
        raise InvalidInputError(f"--protocol must be full or sampled, not {protocol!r}")
    if not data.is_dir():
        raise InvalidInputError(f"--data {data}: not a directory")
    from interestlens.evals.harness import run_recommend_eval

    result = run_recommend_eval(
        data_dir=data,
        split=split,
        protocol=protocol,
        limit=limit,
        seed=seed,
        systems=_split_csv(systems) or None,
        out_dir=out,
        settings=_with_text_fields(_state(ctx).settings(), text_fields),
        progress=True,
        command="interestlens " + " ".join(sys.argv[1:]),
        fusion=fusion,
        folds=folds,
    )
    _emit(ctx, result, json_)


def _with_text_fields(settings: Settings, text_fields: str | None) -> Settings:
    if text_fields is None:
        return settings
    return settings.model_copy(update={"item_text_fields": _split_csv(text_fields)})


@app.command("tune")
def tune_command(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option("--data", help="Dataset directory (catalog, cases, interactions).")],
    split: Annotated[str, typer.Option("--split", help="Cases to fit on (never 'test').")] = "dev",
    protocol: Annotated[str, typer.Option("--protocol", help="full | sampled")] = "full",
    out: Annotated[Path | None, typer.Option("--out", help="Model file (default: <store>/fusion.json).")] = None,
    folds: Annotated[int, typer.Option("--folds", help="K of the cross-validation over users.")] = 5,
    text_fields: Annotated[
        str | None, typer.Option("--text-fields", help="Metadata fields appended to item text (comma-separated).")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Fit the retrieval fusion (LambdaRank over every signal) to your catalog and behaviour, and store it."""
    if not data.is_dir():
        raise InvalidInputError(f"--data {data}: not a directory")
    from interestlens.evals.fitting import tune

    settings = _with_text_fields(_state(ctx).settings(), text_fields)
    report = tune(data, split, protocol, settings=settings, out_path=out, folds=folds)
    if json_:
        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        typer.echo(f"fusion fit on {report['n_cases']} cases of {report['n_users']} users -> {report['out']}")
        for name, value in report["cross_validated_offline_ndcg@10"].items():
            typer.echo(f"  {name:<28} ndcg@10 {value:.4f}")


@eval_app.command("suite")
def eval_suite(
    ctx: typer.Context,
    suite: Annotated[
        str | None, typer.Argument(help="A packaged suite's name (hostile, decomposition, ...) or a YAML file.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the report here.")] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here (for CI systems).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No per-case progress on stderr.")] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the packaged suites and exit.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Run an evaluation suite: one progress line per case on stderr, a table (or --json) on stdout."""
    from interestlens.evals.suite import load_suite, packaged_suites, run_suite, suite_name

    as_json = json_ or _state(ctx).json
    if list_:
        names = {suite_name(n): len(load_suite(suite_name(n))) for n in packaged_suites()}
        if as_json:
            typer.echo(json.dumps(names, indent=2))
        else:
            for name, n in names.items():
                typer.echo(f"{name:<16} {n} cases")
        return
    if suite is None:
        raise InvalidInputError("name a suite (see `interestlens eval suite --list`) or give a YAML file")
    report = run_suite(
        suite, _state(ctx).settings(), out_path=out, print_table=not as_json, progress=not quiet, junit_path=junit
    )
    if as_json:
        _emit(ctx, report, True)
    if not report.passed:  # a failing suite fails the command (CI gates on it)
        raise typer.Exit(1)


# ----------------------------------------------------------------------------------------------- entry point
def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(code)


# Typer >= 0.20 vendors click (typer._click); older releases raise click's own exceptions.
_USAGE_ERRORS: tuple[type[Exception], ...] = tuple(
    e
    for e in (getattr(typer, "TyperException", None), getattr(click, "ClickException", None))
    if e is not None
)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: maps exceptions to one-line errors and exit codes (2 user error, 1 runtime)."""
    debug = os.environ.get("INTERESTLENS_DEBUG") == "1"
    try:
        rv = app(args=argv, prog_name="interestlens", standalone_mode=False)
    except typer.Exit as e:
        raise SystemExit(e.exit_code) from None
    except _USAGE_ERRORS as e:  # click/typer print their own message and hint
        e.show()  # type: ignore[attr-defined]
        raise SystemExit(getattr(e, "exit_code", 2) or 2) from None
    except typer.Abort:
        _fail("aborted", 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except (LLMError, StoreError) as e:  # the input was fine; a backend failed
        if debug:
            raise
        _fail(str(e), 1)
    except InterestLensError as e:
        if debug:
            raise
        _fail(str(e), 2)
    except Exception as e:
        if debug:
            raise
        _fail(f"{type(e).__name__}: {e} (set INTERESTLENS_DEBUG=1 for a traceback)", 1)
    if isinstance(rv, int) and rv:
        raise SystemExit(rv)


if __name__ == "__main__":
    main()
