"""The commands over the whole store rather than one user: `catalog` (add, list, get, remove, count, search),
`store copy`, and `topics` across all users' interests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.markup import escape

from interestlens.agent.errors import InvalidInputError
from interestlens.stores.catalog_files import read_catalog_file
from interestlens.stores.catalog_io import read_interactions_jsonl
from interestlens.tools.cli_context import JsonOpt, WhereOpt, emit, local_agent, run_verb, state, wants_json
from interestlens.tools.render import make_console, print_topics

catalog_app = typer.Typer(help="Manage the item catalog.", no_args_is_help=True)
store_app = typer.Typer(help="Move a whole store.", no_args_is_help=True)


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
    items = read_catalog_file(file)
    inter = read_interactions_jsonl(interactions) if interactions is not None else []
    with local_agent(ctx) as agent:
        written = agent.add_items(items, progress=True)
        n_inter = agent.add_interactions(inter) if inter else 0
    result = CatalogAddResult(
        items_read=len(items),
        items_written=written,
        duplicate_ids=getattr(items, "duplicates", 0),
        interactions_written=n_inter,
    )
    if wants_json(ctx, json_):
        emit(ctx, result, True)
    else:
        make_console().print(
            f"Read {result.items_read} items ({result.duplicate_ids} duplicate ids); "
            f"wrote {result.items_written} new or changed; {result.interactions_written} interactions added."
        )


@catalog_app.command("list")
def catalog_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit")] = 20,
    offset: Annotated[int, typer.Option("--offset")] = 0,
    where: WhereOpt = None,
    json_: JsonOpt = False,
) -> None:
    """List catalog items (a page)."""
    emit(ctx, run_verb(ctx, "catalog_list", {"limit": limit, "offset": offset, "where": where}, llm="none"), json_)


@catalog_app.command("get")
def catalog_get(
    ctx: typer.Context, ids: Annotated[list[str], typer.Argument(help="Item ids.")], json_: JsonOpt = False
) -> None:
    """Show catalog items by id."""
    result = run_verb(ctx, "catalog_get", {"item_ids": ids}, llm="none")
    if result.unknown_ids and not result.items:
        raise InvalidInputError(f"unknown item id(s): {', '.join(result.unknown_ids[:10])}")
    emit(ctx, result, json_)


@catalog_app.command("remove")
def catalog_remove(
    ctx: typer.Context, ids: Annotated[list[str], typer.Argument(help="Item ids.")], json_: JsonOpt = False
) -> None:
    """Remove items from the catalog."""
    emit(ctx, run_verb(ctx, "catalog_remove", {"item_ids": ids}, llm="none"), json_)


@catalog_app.command("count")
def catalog_count(ctx: typer.Context, where: WhereOpt = None, json_: JsonOpt = False) -> None:
    """How many items (optionally matching --where)."""
    emit(ctx, run_verb(ctx, "catalog_count", {"where": where}, llm="none"), json_)


@catalog_app.command("search")
def catalog_search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to look for, in words.")],
    k: Annotated[int, typer.Option("-k", "--k")] = 10,
    where: WhereOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Search the catalog by meaning."""
    emit(ctx, run_verb(ctx, "catalog_search", {"query": query, "k": k, "where": where}, llm="none"), json_)


@store_app.command("copy")
def store_copy(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="Store to read: a directory or http://host:port.")],
    destination: Annotated[str, typer.Argument(help="Empty store to write: a directory or http://host:port.")],
    json_: JsonOpt = False,
) -> None:
    """Copy every record and interaction (embedded <-> server); the destination must be empty."""
    # chromadb is loaded only by the commands that open a store.
    from interestlens.stores.chroma_store import ChromaStore
    from interestlens.stores.store_copy import copy_store

    with local_agent(ctx, llm="none", store=source) as agent:
        dst = ChromaStore(destination, agent.embedder)
        try:
            report = copy_store(agent.store, dst, progress=not state(ctx).json and not json_)
        finally:
            dst.close()
    if wants_json(ctx, json_):
        emit(ctx, report, True)
    else:
        copied = ", ".join(f"{n} {c}" for n, c in report.records.items())
        make_console().print(escape(f"Copied {report.source} -> {report.destination}: {copied}; "
                                    f"interactions {report.interactions}."))


def topics(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Group all users' interests into topics."""
    with local_agent(ctx) as agent:
        result = agent.topics()
    if wants_json(ctx, json_):
        emit(ctx, result, True)
        return
    print_topics(make_console(), result)
