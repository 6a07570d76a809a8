"""The commands about one user: observe, recommend, explain, forget, feedback, history, export, import, and
`profile` with its edits (mute, unmute, delete, rename, reweight, flip, add, undo)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from interestlens.agent.errors import InvalidInputError
from interestlens.tools.cli_context import (
    JsonOpt,
    UserOpt,
    WhereOpt,
    emit,
    local_agent,
    read_text_file,
    read_user_texts,
    run_verb,
    split_csv,
    state,
    wants_json,
)
from interestlens.tools.specs import TOOLS_BY_NAME

profile_app = typer.Typer(help="Show or edit a user's interest profile.")

InterestOpt = Annotated[str, typer.Option("--interest", "-i", help="Interest id (see `profile --user U`).")]
NameOpt = Annotated[str, typer.Option("--name", help="Interest name.")]


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
            turns = json.loads(read_text_file(messages))
        except json.JSONDecodeError as e:
            raise InvalidInputError(f"{messages}: invalid JSON: {e.msg} (line {e.lineno})") from e
        if not isinstance(turns, list):
            raise InvalidInputError(f"{messages}: expected a JSON list of {{role, content}} messages")
        emit(ctx, run_verb(ctx, "observe", {"user_id": user, "messages": turns, "history": history or []}), json_)
        return
    sources: list[Any] = list(texts or [])
    if file is not None:
        sources.extend(read_user_texts(file))
    if not sources:
        raise InvalidInputError("nothing to observe: pass TEXT arguments or --file")
    args = {"user_id": user, "texts": [s if isinstance(s, str) else s.text for s in sources], "history": history or []}
    if state(ctx).server:  # the service takes plain texts (a file's timestamps stay local)
        emit(ctx, run_verb(ctx, "observe", args), json_)
        return
    TOOLS_BY_NAME["observe"].parse_args(args)  # the registry's bounds and user id, before touching the store
    with local_agent(ctx) as agent:
        result = agent.observe(user, sources, history=history or [])
    emit(ctx, result, json_)


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
    args = {"user_id": user, "context": context, "k": k, "expand": split_csv(expand), "where": where}
    result = run_verb(ctx, "recommend", args)
    for warning in result.stats.warnings:  # type: ignore[attr-defined]
        if "catalog is empty" in warning:
            typer.echo(f"warning: {warning}", err=True)
    emit(ctx, result, json_)


def explain(
    ctx: typer.Context,
    user: UserOpt,
    item: Annotated[str, typer.Option("--item", help="Item id.")],
    json_: JsonOpt = False,
) -> None:
    """Show the chain behind a recommended item: intents, interests, quoted evidence."""
    emit(ctx, run_verb(ctx, "explain", {"user_id": user, "item_id": item}, llm="none"), json_)


def forget(ctx: typer.Context, user: UserOpt, json_: JsonOpt = False) -> None:
    """Delete everything stored about a user."""
    emit(ctx, run_verb(ctx, "forget", {"user_id": user}, llm="none"), json_)


# ----------------------------------------------------------------------------------------------- memory
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
    emit(ctx, run_verb(ctx, "feedback", args, llm="none"), json_)


def history(
    ctx: typer.Context,
    user: UserOpt,
    limit: Annotated[int, typer.Option("--limit", help="Newest entries to show.")] = 20,
    json_: JsonOpt = False,
) -> None:
    """Every change to a user's profile, newest first (observe, feedback, edits, undo)."""
    if state(ctx).server:  # the service's history verb leaves the undo snapshots out
        emit(ctx, run_verb(ctx, "history", {"user_id": user, "limit": limit}), json_)
        return
    with local_agent(ctx, llm="none") as agent:
        result = agent.history(user, limit=limit)  # with the undo snapshots in --json
        emit(ctx, result if wants_json(ctx, json_) else TOOLS_BY_NAME["history"].invoke(
            agent, {"user_id": user, "limit": limit}
        ), json_)


def export_user(
    ctx: typer.Context,
    user: UserOpt,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file (default stdout).")] = None,
) -> None:
    """Everything stored about a user, as JSON (for an access request; `import` restores it)."""
    data = run_verb(ctx, "export", {"user_id": user}, llm="none").model_dump_json(indent=2)
    if out is None:
        sys.stdout.write(data + "\n")
    else:
        out.write_text(data + "\n", encoding="utf-8")
        typer.echo(f"wrote {out}", err=True)


def import_user(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A file written by `export`.")],
    user: Annotated[str | None, typer.Option("--user", "-u", help="Import under this id instead.")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace an existing user's data.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Restore a user from an export."""
    with local_agent(ctx, llm="none") as agent:
        result = agent.import_user(read_text_file(file), user_id=user, replace=replace)
    if wants_json(ctx, json_):
        emit(ctx, result, True)
    else:
        typer.echo(
            f"Imported {result.user_id}: {result.interests} interests, {result.sources} texts, "
            f"{result.history} history entries, {result.interactions} interactions."
        )


# ----------------------------------------------------------------------------------------------- profile
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
    emit(ctx, run_verb(ctx, "profile", {"user_id": user}, llm="none"), json_)


def _edit(ctx: typer.Context, user: str, operation: str, **fields: Any) -> BaseModel:
    return run_verb(ctx, "edit_profile", {"user_id": user, "operation": operation, **fields}, llm="none")


@profile_app.command("mute")
def profile_mute(ctx: typer.Context, user: UserOpt, interest: InterestOpt, json_: JsonOpt = False) -> None:
    """Mute an interest: kept, but no longer used for recommendations."""
    emit(ctx, _edit(ctx, user, "mute", interest_id=interest), json_)


@profile_app.command("unmute")
def profile_unmute(ctx: typer.Context, user: UserOpt, interest: InterestOpt, json_: JsonOpt = False) -> None:
    """Use a muted interest again."""
    emit(ctx, _edit(ctx, user, "unmute", interest_id=interest), json_)


@profile_app.command("delete")
def profile_delete(ctx: typer.Context, user: UserOpt, interest: InterestOpt, json_: JsonOpt = False) -> None:
    """Delete one interest from a profile."""
    emit(ctx, _edit(ctx, user, "delete", interest_id=interest), json_)


@profile_app.command("rename")
def profile_rename(
    ctx: typer.Context, user: UserOpt, interest: InterestOpt, name: NameOpt, json_: JsonOpt = False
) -> None:
    """Rename an interest."""
    emit(ctx, _edit(ctx, user, "rename", interest_id=interest, name=name), json_)


@profile_app.command("reweight")
def profile_reweight(
    ctx: typer.Context, user: UserOpt, interest: InterestOpt,
    weight: Annotated[float, typer.Option("--weight", help="0-5 (1 is a plain statement).")],
    json_: JsonOpt = False,
) -> None:
    """Set an interest's weight."""
    emit(ctx, _edit(ctx, user, "reweight", interest_id=interest, weight=weight), json_)


@profile_app.command("flip")
def profile_flip(ctx: typer.Context, user: UserOpt, interest: InterestOpt, json_: JsonOpt = False) -> None:
    """Turn a like into a dislike, or back."""
    emit(ctx, _edit(ctx, user, "flip", interest_id=interest), json_)


@profile_app.command("add")
def profile_add(
    ctx: typer.Context, user: UserOpt, name: NameOpt,
    dislike: Annotated[bool, typer.Option("--dislike", help="A dislike (default: a like).")] = False,
    weight: Annotated[float, typer.Option("--weight")] = 1.0,
    json_: JsonOpt = False,
) -> None:
    """Add an interest by hand."""
    emit(ctx, _edit(ctx, user, "add", name=name, polarity="dislike" if dislike else "like", weight=weight), json_)


@profile_app.command("undo")
def profile_undo(ctx: typer.Context, user: UserOpt, json_: JsonOpt = False) -> None:
    """Revert the latest change to the profile (repeat to walk back)."""
    emit(ctx, _edit(ctx, user, "undo"), json_)
