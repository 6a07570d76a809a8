"""The one-user web page of `interestlens serve` (GET / and /ui).

Why a page at all: a person should be able to see what the service holds about them (interests, the words each
rests on, how weights moved) and act on it (mute, delete, feedback, forget) without writing a client. Why it is
a static file: the page only calls the public `POST /v1/<verb>` JSON endpoints, so it shows exactly what every
other host sees and adds no server logic. The HTML carries no user data, so it is served without the bearer
token (the page asks for the token and sends it on every data call); the data calls stay behind the token.

Defence in depth: the page inserts user and item text with textContent only, and its Content-Security-Policy
allows just its own inline script and style (by hash) and same-origin fetches, so an injected handler could not
run even if some text did reach the DOM as markup.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

PAGE_PATHS = frozenset({"/", "/ui", "/ui/"})
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


@cache
def _template() -> str:
    return resources.files("interestlens.tools").joinpath("page/index.html").read_text(encoding="utf-8")


def page_html(*, token_required: bool, user_bound: bool) -> str:
    """The page, told only whether data calls need a token and whether the service is bound to one user."""
    return (
        _template()
        .replace("__IL_TOKEN_REQUIRED__", "1" if token_required else "0")
        .replace("__IL_USER_BOUND__", "1" if user_bound else "0")
    )


def content_security_policy(html: str) -> str:
    """Only this page's inline script and style (by sha256), fetches to this origin, no frames, no plugins."""
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in _INLINE.findall(html):
        digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode()
        hashes[kind].append(f"'sha256-{digest}'")
    script, style = (" ".join(hashes[k]) or "'none'" for k in ("script", "style"))
    return (
        "default-src 'none'; "
        f"script-src {script}; style-src {style}; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


class PageMiddleware:
    """Answers GET/HEAD on PAGE_PATHS with the page; everything else (lifespan included) goes to `app`, which
    keeps its own bearer check."""

    def __init__(self, app: ASGIApp, *, token_required: bool, user_bound: bool) -> None:
        self.app = app
        self._body = page_html(token_required=token_required, user_bound=user_bound).encode("utf-8")
        self._headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(self._body)).encode()),
            (b"content-security-policy", content_security_policy(self._body.decode("utf-8")).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cache-control", b"no-store"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and scope["path"] in PAGE_PATHS:
            await send({"type": "http.response.start", "status": 200, "headers": self._headers})
            await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else self._body})
            return
        await self.app(scope, receive, send)


def with_page(app: ASGIApp, *, token_required: bool, user_bound: bool) -> ASGIApp:
    """`app` (already wrapped in its bearer check when it has one) with the page in front of it."""
    return PageMiddleware(app, token_required=token_required, user_bound=user_bound)
