"""`interestlens` command line: catalog, observe, profile, recommend, explain, forget, topics, demo, mcp,
chat, eval.

Global options (before the command): `--llm` (smollm2 | gguf:PATH | openai:MODEL | none), `--store`
(directory or http://host:port), `--json` (also accepted after any command). Results go to stdout; progress,
logs and errors go to stderr. User mistakes print one line `error: ...` and exit 2; runtime failures (a
backend down) exit 1.

This module is the app: the global options, the command tree (the commands live in cli_user, cli_store,
cli_eval and cli_launch; what they share in cli_context) and the entry point that maps errors to exit codes.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import click
import typer

from interestlens.agent.errors import InterestLensError, LLMError, StoreError
from interestlens.agent.version import __version__
from interestlens.tools.cli_context import JsonOpt, State
from interestlens.tools.cli_eval import eval_app, tune_command
from interestlens.tools.cli_launch import chat, demo, mcp, serve
from interestlens.tools.cli_store import catalog_app, store_app, topics
from interestlens.tools.cli_user import (
    explain,
    export_user,
    feedback,
    forget,
    history,
    import_user,
    observe,
    profile_app,
    recommend,
)

app = typer.Typer(
    name="interestlens",
    help="Grounded interest profiles and recommendations with quoted evidence.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
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
        # OpenTelemetry is loaded only when a call is traced.
        from interestlens.agent.tracing import enable_tracing

        enable_tracing(trace_to)
    ctx.obj = State(llm=llm, store=store, json=json_, server=server, token=token, trace=bool(trace_to))


# The command tree, in the order `interestlens --help` lists it (commands first, then the groups).
for _command in (observe, recommend, explain, forget, topics, feedback, history):
    app.command()(_command)
app.command("export")(export_user)
app.command("import")(import_user)
for _command in (demo, mcp, serve, chat):
    app.command()(_command)
app.command("tune")(tune_command)
app.add_typer(catalog_app, name="catalog")
app.add_typer(profile_app, name="profile")
app.add_typer(eval_app, name="eval")
app.add_typer(store_app, name="store")


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
