"""MCP server (FastMCP) exposing the tool registry, over stdio or streamable HTTP.

Tools return structured output (the pydantic result, with its JSON schema as outputSchema) plus the
`render_text` summary as text content. The profile is also a resource: `interestlens://profile/{user_id}`.

Safety: HTTP binds 127.0.0.1 by default; on any other address a bearer token is required and checked on
every request. In stdio mode stdout carries only protocol messages: file descriptor 1 is re-pointed at
stderr before anything loads, so stray prints (including from C libraries such as llama.cpp) cannot
corrupt the stream.
"""

from __future__ import annotations

import hmac
import inspect
import ipaddress
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from io import TextIOWrapper
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import anyio
import anyio.to_thread
from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.utilities.func_metadata import FuncMetadata
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import (
    CallToolResult,
    Completion,
    CompletionArgument,
    PromptReference,
    ResourceTemplateReference,
    TextContent,
    ToolAnnotations,
)
from pydantic import BaseModel, Field
from pydantic_core import PydanticUndefined

from interestlens.agent.errors import InvalidInputError
from interestlens.agent.prompting import RenderedPrompt, render
from interestlens.agent.version import __version__
from interestlens.tools.render import render_text
from interestlens.tools.specs import TOOLS, ToolSpec
from interestlens.tools.tool_args import ProfileArgs

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from interestlens.agent.service import InterestAgent

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_HTTP_PORT = 8765
MIN_TOKEN_CHARS = 16
MAX_COMPLETIONS = 100  # the MCP spec's cap on values per completion response
TOKENLESS_HOSTS = ("127.0.0.1", "localhost")  # any other bind, other loopback addresses too, needs a token
PROFILE_RESOURCE = "interestlens://profile/{user_id}"


class SharedAgent:
    """Creates the agent on first use (so the server answers `initialize` at once) and serialises calls:
    one model and one store handle are shared, and neither is safe for concurrent use."""

    def __init__(self, factory: Callable[[], InterestAgent]) -> None:
        self._factory = factory
        self._agent: InterestAgent | None = None
        self._lock = threading.Lock()

    def call(self, fn: Callable[[InterestAgent], T]) -> T:
        with self._lock:
            if self._agent is None:
                self._agent = self._factory()
            return fn(self._agent)

    async def acall(self, fn: Callable[[InterestAgent], T]) -> T:
        return await anyio.to_thread.run_sync(self.call, fn)


def _signature_from_model(model: type[BaseModel], return_annotation: Any) -> inspect.Signature:
    """A function signature whose parameters are the args model's fields (constraints included), so
    FastMCP publishes the same input schema the registry defines."""
    params = []
    for name, f in model.model_fields.items():
        annotation = Annotated[(f.annotation, *f.metadata, Field(description=f.description))]
        if f.default is not PydanticUndefined:
            default = f.default
        elif f.default_factory is not None:
            default = f.default_factory()  # type: ignore[call-arg]
        else:
            default = inspect.Parameter.empty
        params.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        )
    return inspect.Signature(params, return_annotation=return_annotation)


class _RawArguments(FuncMetadata):
    """Hands the client's arguments to the tool function as sent. FastMCP's own model would coerce them
    (`true` to k=1) and drop unknown names silently; the registry's model validates them strictly instead."""

    async def call_fn_with_arg_validation(
        self,
        fn: Callable[..., Any],
        fn_is_async: bool,
        arguments_to_validate: dict[str, Any],
        arguments_to_pass_directly: dict[str, Any] | None,
    ) -> Any:
        if not isinstance(arguments_to_validate, dict):
            raise InvalidInputError("tool arguments must be a JSON object")
        return await fn(**arguments_to_validate)


def _tool_function(spec: ToolSpec, agent: SharedAgent, user_id: str | None = None) -> Callable[..., Any]:
    async def tool_fn(**kwargs: Any) -> CallToolResult:
        # The registry's model is the authority: strict types, no unknown names, the bound user only.
        args = spec.parse_args(kwargs, user_id)
        result = await agent.acall(lambda a: spec.run(a, args))
        return CallToolResult(
            content=[TextContent(type="text", text=render_text(result))],
            structuredContent=result.model_dump(mode="json"),
        )

    tool_fn.__name__ = spec.name
    tool_fn.__doc__ = spec.description
    tool_fn.__signature__ = _signature_from_model(  # type: ignore[attr-defined]
        spec.schema_model(user_bound=user_id is not None), spec.result_model
    )
    return tool_fn


def _transport_security(host: str) -> TransportSecuritySettings | None:
    """Host/Origin checks (DNS rebinding) on every loopback bind, not only 127.0.0.1: a page on an attacker's
    domain that resolves to 127.0.0.2 must not reach the server."""
    if not is_loopback(host):
        return None  # reachable from elsewhere: the bearer token guards it
    bare = host.strip("[]")
    shown = f"[{bare}]" if ":" in bare else bare
    hosts = list(dict.fromkeys([shown, "127.0.0.1", "localhost", "[::1]"]))
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[f"{h}:*" for h in hosts] + hosts,
        allowed_origins=[f"http://{h}:*" for h in hosts] + [f"http://{h}" for h in hosts],
    )


def _prompt_text(prompt: str, user_id: str = "", context: str | None = None) -> RenderedPrompt:
    return render("mcp_server", prompt=prompt, user_id=user_id, context=context)


def _add_prompts(mcp: FastMCP, bound: str | None) -> None:
    """Two MCP prompts, "recommend_for_me" and "what_do_you_know_about_me"; a bound server fills in its user."""

    def user_of(user_id: str | None) -> str:
        if bound is not None:
            if user_id not in (None, bound):
                raise InvalidInputError(f"this server is bound to user {bound!r}; it cannot act for {user_id!r}")
            return bound
        return ProfileArgs.model_validate({"user_id": user_id}).user_id

    if bound is None:

        def recommend_for_me(user_id: str, context: str | None = None) -> str:
            return _prompt_text("recommend_for_me", user_of(user_id), context).user

        def what_do_you_know_about_me(user_id: str) -> str:
            return _prompt_text("what_do_you_know_about_me", user_of(user_id)).user

    else:

        def recommend_for_me(context: str | None = None) -> str:  # type: ignore[misc]
            return _prompt_text("recommend_for_me", user_of(None), context).user

        def what_do_you_know_about_me() -> str:  # type: ignore[misc]
            return _prompt_text("what_do_you_know_about_me", user_of(None)).user

    mcp.prompt(name="recommend_for_me", description="Recommendations for the user, with reasons and their words.")(
        recommend_for_me
    )
    mcp.prompt(name="what_do_you_know_about_me", description="What is stored about the user, with evidence.")(
        what_do_you_know_about_me
    )


def build_mcp_server(
    agent_factory: Callable[[], InterestAgent],
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_HTTP_PORT,
    user_id: str | None = None,
    shared: SharedAgent | None = None,
) -> FastMCP:
    """A FastMCP server with every registry tool and the profile resource.

    `user_id`: bind the server to that user: `user_id` leaves every tool's schema, and a call naming any
    other user is refused. `shared`: the agent of a host app (`serve`) to use instead of a new one."""
    if user_id is not None:
        ProfileArgs.model_validate({"user_id": user_id})  # a malformed id fails here, not per call
    mcp = FastMCP(
        name="interestlens",
        instructions=_prompt_text("instructions").system,
        host=host,
        port=port,
        log_level="WARNING",
        transport_security=_transport_security(host),
    )
    mcp._mcp_server.version = __version__  # serverInfo names our version, not the SDK's
    agent = shared or SharedAgent(agent_factory)
    bound = user_id
    _add_prompts(mcp, bound)
    for spec in TOOLS:
        mcp.add_tool(
            _tool_function(spec, agent, user_id),
            name=spec.name,
            description=spec.description,
            annotations=ToolAnnotations(
                readOnlyHint=spec.read_only, destructiveHint=spec.destructive, idempotentHint=spec.read_only
            ),
            structured_output=True,
        )
        tool = mcp._tool_manager.get_tool(spec.name)
        if tool is not None:
            meta = tool.fn_metadata
            tool.fn_metadata = _RawArguments(
                arg_model=meta.arg_model, output_schema=meta.output_schema, output_model=meta.output_model,
                wrap_output=meta.wrap_output,
            )

    @mcp.resource(
        PROFILE_RESOURCE,
        name="profile",
        mime_type="application/json",
        description="A user's interest profile (JSON), with evidence spans.",
    )
    async def profile_resource(user_id: str) -> str:
        if bound is not None and user_id != bound:
            raise InvalidInputError(f"this server is bound to user {bound!r}; it cannot read {user_id!r}")
        args = ProfileArgs.model_validate({"user_id": user_id})
        profile = await agent.acall(lambda a: a.profile(args.user_id))
        return profile.model_dump_json()

    @mcp.completion()
    async def complete_user_id(
        ref: PromptReference | ResourceTemplateReference, argument: CompletionArgument, context: Any
    ) -> Completion | None:
        """User ids that start with what was typed, for the prompts' and the profile resource's `user_id`; a
        bound server offers only its own user (an unbound one already lets a token holder name any user)."""
        if argument.name != "user_id":
            return None
        users = [bound] if bound is not None else await agent.acall(lambda a: a.store.list_users())
        hits = sorted(u for u in users if u.startswith(argument.value or ""))
        return Completion(values=hits[:MAX_COMPLETIONS], total=len(hits), hasMore=len(hits) > MAX_COMPLETIONS)

    return mcp


class BearerTokenMiddleware:
    """Rejects every HTTP request without `Authorization: Bearer <token>` (constant-time comparison)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            supplied = b""
            for key, value in scope.get("headers", []):
                if key.lower() == b"authorization":
                    supplied = value
                    break
            if not hmac.compare_digest(supplied, self._expected):
                body = json.dumps({"error": "unauthorized: missing or wrong bearer token"}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b'Bearer realm="interestlens"'),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def check_token(token: str | None) -> None:
    """A bearer token worth the name: at least MIN_TOKEN_CHARS, no whitespace (a blank one would pass `if token`)."""
    if token is None:
        return
    if len(token) < MIN_TOKEN_CHARS or any(ch.isspace() for ch in token):
        raise InvalidInputError(
            f"the MCP bearer token must be at least {MIN_TOKEN_CHARS} characters with no whitespace "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )


def check_bind(host: str, token: str | None, what: str) -> None:
    """The rule for every HTTP surface: a real token, and none may be omitted except on 127.0.0.1 / localhost."""
    check_token(token)
    if host not in TOKENLESS_HOSTS and not token:
        raise InvalidInputError(
            f"refusing to serve {what} on {host} without a bearer token (pass --token): only 127.0.0.1 and "
            "localhost may go without one"
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def http_app(mcp: FastMCP, token: str | None) -> ASGIApp:
    check_token(token)
    app: ASGIApp = mcp.streamable_http_app()
    return BearerTokenMiddleware(app, token) if token else app


def _protocol_stdout() -> TextIOWrapper:
    """Keep fd 1 for the protocol only: the protocol gets a private duplicate, all else goes to stderr."""
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    return TextIOWrapper(os.fdopen(protocol_fd, "wb", buffering=0), encoding="utf-8", write_through=True)


def serve(
    agent_factory: Callable[[], InterestAgent],
    transport: Literal["stdio", "http"] = "stdio",
    host: str = "127.0.0.1",
    port: int = DEFAULT_HTTP_PORT,
    token: str | None = None,
    user_id: str | None = None,
) -> None:
    """Run the MCP server until the client disconnects (stdio) or the process is stopped (http).
    `user_id`: serve that user only (see build_mcp_server)."""
    if transport == "stdio":
        out = _protocol_stdout()
        mcp = build_mcp_server(agent_factory, user_id=user_id)

        async def run_stdio() -> None:
            from mcp.server.stdio import stdio_server

            async with stdio_server(stdout=anyio.wrap_file(out)) as (read_stream, write_stream):
                server = mcp._mcp_server  # FastMCP.run_stdio_async hard-codes sys.stdout; we need our stream
                await server.run(read_stream, write_stream, server.create_initialization_options())

        anyio.run(run_stdio)
        return
    if transport != "http":
        raise InvalidInputError(f"unknown MCP transport {transport!r} (use stdio or http)")
    check_bind(host, token, "MCP")
    import uvicorn

    mcp = build_mcp_server(agent_factory, host=host, port=port, user_id=user_id)
    print(
        f"interestlens MCP server on http://{host}:{port}/mcp"
        + (" (bearer token required)" if token else ""),
        file=sys.stderr,
        flush=True,
    )
    uvicorn.Server(uvicorn.Config(http_app(mcp, token), host=host, port=port, log_level="warning")).run()
