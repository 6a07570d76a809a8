"""`interestlens serve`: one long-lived process with an HTTP JSON API over every registry verb.

For backends that are not Python, and so calls skip model loading: `POST /v1/<tool>` with the tool's JSON
arguments returns the tool's result model as JSON (the same registry, strict validation and user binding as
the other surfaces); `GET /healthz`; OpenAPI docs at `/docs`; the MCP server (streamable HTTP) at `/mcp`;
a one-user web page at `/` (tools/web_page.py).
The bearer-token rules are MCP's: required on any bind but 127.0.0.1 / localhost, at least 16 characters.
Errors are JSON `{"error": ..., "type": ...}`: 400 bad input, 401 no token, 404 unknown id, 503 a backend.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from interestlens.agent.errors import InterestLensError, InvalidInputError, LLMError, StoreError, UnknownIdError
from interestlens.agent.version import __version__
from interestlens.tools.mcp_server import BearerTokenMiddleware, SharedAgent, build_mcp_server, check_bind, check_token
from interestlens.tools.specs import TOOLS, ToolSpec
from interestlens.tools.web_page import with_page

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from interestlens.agent.service import InterestAgent

DEFAULT_PORT = 8766
_STATUS = ((UnknownIdError, 404), (InvalidInputError, 400), (StoreError, 503), (LLMError, 503))


def _error(e: Exception) -> JSONResponse:
    status = next((code for cls, code in _STATUS if isinstance(e, cls)), 400)
    return JSONResponse({"error": str(e), "type": type(e).__name__}, status_code=status)


def _endpoint(spec: ToolSpec, agent: SharedAgent, user_id: str | None) -> Callable[[Request], Any]:
    async def run(request: Request) -> JSONResponse:
        try:
            raw = json.loads(await request.body() or b"{}")
        except (ValueError, UnicodeDecodeError) as e:
            return _error(InvalidInputError(f"the request body is not JSON: {e}"))
        if not isinstance(raw, dict):
            return _error(InvalidInputError("the request body must be a JSON object of the tool's arguments"))
        try:
            args = spec.parse_args(raw, user_id)  # strict: "3" is not 3, unknown names are refused
            result = await agent.acall(lambda a: spec.run(a, args))
        except InterestLensError as e:
            return _error(e)
        return JSONResponse(result.model_dump(mode="json"))

    return run


def build_app(
    agent_factory: Callable[[], InterestAgent], *, token: str | None = None, user_id: str | None = None,
    host: str = "127.0.0.1",
) -> ASGIApp:
    """The FastAPI app (wrapped in the bearer check when `token`); `user_id` binds it to one user."""
    check_token(token)
    agent = SharedAgent(agent_factory)  # one agent for the API and the mounted MCP server
    mcp = build_mcp_server(agent_factory, host=host, user_id=user_id, shared=agent)
    mcp_app = mcp.streamable_http_app()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with mcp.session_manager.run():  # the mounted MCP app needs its session manager running
            yield

    app = FastAPI(
        title="interestlens", version=__version__, lifespan=lifespan,
        description="Interest profiles and recommendations grounded in what users wrote. One POST per verb.",
    )
    for spec in TOOLS:
        if user_id is not None and spec.admin:
            continue  # a session bound to one user cannot edit the catalog
        model = spec.schema_model(user_bound=user_id is not None)
        app.add_api_route(
            f"/v1/{spec.name}", _endpoint(spec, agent, user_id), methods=["POST"], name=spec.name,
            summary=spec.description.split(". ")[0], description=spec.description,
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/json": {"schema": model.model_json_schema(ref_template="#/components/schemas/{model}")}
            }}},
            responses={200: {"content": {"application/json": {"schema": spec.result_model.model_json_schema()}}}},
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    app.mount("/", mcp_app)  # its route is /mcp; mounted last so /v1, /docs and /healthz win
    # The page (GET / and /ui) holds no user data and is served without the token; its data calls need it.
    return with_page(BearerTokenMiddleware(app, token) if token else app, token_required=bool(token),
                     user_bound=user_id is not None)


def serve(
    agent_factory: Callable[[], InterestAgent], *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
    token: str | None = None, user_id: str | None = None,
) -> None:
    """Run the service until the process is stopped."""
    check_bind(host, token, "the API")
    import uvicorn

    app = build_app(agent_factory, token=token, user_id=user_id, host=host)
    print(
        f"interestlens {__version__} serving http://{host}:{port} (API /v1/<verb>, docs /docs, MCP /mcp)"
        + (" (bearer token required)" if token else ""),
        file=sys.stderr, flush=True,
    )
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning")).run()
