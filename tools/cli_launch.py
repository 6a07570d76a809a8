"""The commands that start something: `demo` (a throwaway store end to end), the `mcp` and `serve` servers,
and the `chat` terminal assistant."""

from __future__ import annotations

import json
import sys
import tempfile
from importlib import resources
from typing import Annotated, Any

import typer
from rich.console import Console

from interestlens.stores.catalog_io import read_catalog_jsonl
from interestlens.tools.chat import run_chat
from interestlens.tools.cli_context import JsonOpt, UserOpt, local_agent, read_user_texts, state, wants_json
from interestlens.tools.render import make_console, print_learned, print_recommendations
from interestlens.tools.specs import TOOLS_BY_NAME


def _packaged_path(name: str) -> Any:
    return resources.files("interestlens.agent").joinpath(f"data/{name}")


def demo(
    ctx: typer.Context,
    user: Annotated[str, typer.Option("--user", "-u", help="User id for the demo user.")] = "demo",
    context: Annotated[str | None, typer.Option("--context", "-c")] = None,
    k: Annotated[int, typer.Option("-k", "--k")] = 5,
    json_: JsonOpt = False,
) -> None:
    """Ingest the packaged demo catalog, observe the demo user's texts, and recommend."""
    current = state(ctx)
    err = Console(stderr=True, highlight=False)
    with (
        resources.as_file(_packaged_path("demo_catalog.jsonl")) as cat,
        resources.as_file(_packaged_path("demo_user.jsonl")) as usr,
        tempfile.TemporaryDirectory(prefix="interestlens-demo-") as tmp,
    ):
        overrides = {} if current.store is not None else {"store": tmp}
        items = read_catalog_jsonl(cat)
        texts = read_user_texts(usr)
        with local_agent(ctx, **overrides) as agent:
            err.print(f"demo: adding {len(items)} catalog items")
            agent.add_items(items, progress=True)
            err.print(f"demo: observing {len(texts)} texts from user {user!r}")
            observed = agent.observe(user, texts)
            result = TOOLS_BY_NAME["recommend"].invoke(agent, {"user_id": user, "context": context, "k": k})
    if wants_json(ctx, json_):
        sys.stdout.write(
            json.dumps(
                {"observe": observed.model_dump(mode="json"), "recommend": result.model_dump(mode="json")},
                indent=2,
            )
            + "\n"
        )
        return
    console = make_console()
    print_learned(console, observed.added + observed.reinforced)
    console.print()
    print_recommendations(console, result)


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
    # The server frameworks (mcp, starlette, uvicorn) are loaded only by the command that serves.
    from interestlens.tools.mcp_server import serve

    current = state(ctx)
    if http is None:
        serve(current.agent, transport="stdio", user_id=bound_user)
    else:
        serve(current.agent, transport="http", host=host, port=http, token=token, user_id=bound_user)


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

    run_service(state(ctx).agent, host=host, port=port, token=token, user_id=bound_user)


def chat(ctx: typer.Context, user: UserOpt, k: Annotated[int, typer.Option("-k", "--k")] = 5) -> None:
    """A small terminal assistant: what you say updates your profile; ask for recommendations any time."""
    with local_agent(ctx) as agent:
        run_chat(agent, user, k=k)
