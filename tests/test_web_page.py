"""The one-user web page of `interestlens serve`, driven end to end in headless Chromium (issue 14 item 5).

Real parts: the CLI's `serve` process (token-protected) and `build_app` bound to one user under uvicorn, a real
embedded store and catalog, the system Chromium through Playwright. Each main state is screenshotted into the
test's tmp dir (the files must exist); everything else is asserted on the DOM and, for every change, on the
JSON API too, so the page shows what other hosts see.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
if CHROMIUM is None:
    pytest.skip("no Chromium executable (apt-get install chromium; .ci/setup does it)", allow_module_level=True)

import uvicorn  # noqa: E402
from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402

from interestlens.agent.config import Settings  # noqa: E402
from interestlens.agent.models import Item  # noqa: E402
from interestlens.agent.service import InterestAgent  # noqa: E402
from interestlens.tools.http_service import build_app  # noqa: E402

pytestmark = pytest.mark.slow

TOKEN = "page-token-0123456789abcdef"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
INJECT = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
TEXT = (
    "I love slow-burn science fiction like Interstellar, where space feels huge and lonely. "
    f"I can't stand horror movies with jump scares. {INJECT}"
)
EVIL_TITLE = '<img src=x onerror="window.__pwned=3">Drift <script>window.__pwned=4</script>'
EVIL = Item(
    id="evil-1", title=EVIL_TITLE,
    text="Like Interstellar: slow-burn science fiction where space feels huge and lonely, one astronaut adrift.",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(
    url: str, proc: subprocess.Popen[str] | None = None, headers: dict[str, str] | None = None,
    log: Path | None = None,
) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", headers=headers or {}, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"serve exited: {log.read_text() if log else ''}")
    pytest.fail(f"{url} did not come up")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, embedder: Any, demo_items: list[Item]) -> Iterator[str]:
    """`interestlens serve --token` on a store with a small catalog (one item with markup in its title)."""
    store = str(tmp_path_factory.mktemp("page-store"))
    with InterestAgent(Settings(store=store, llm="none"), llm=None, embedder=embedder) as a:
        a.add_items([*demo_items[:15], EVIL])
    port = _free_port()
    cmd = [sys.executable, "-m", "interestlens.tools.cli", "--store", store, "--llm", "none", "serve",
           "--port", str(port), "--token", TOKEN]
    log = tmp_path_factory.mktemp("page-log") / "serve.log"
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=err, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_up(url, proc, {"Authorization": f"Bearer {TOKEN}"}, log)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if "Traceback" in (text := log.read_text()):
            sys.stderr.write(text[text.index("Traceback"):][-6000:])  # the server's side of a failure


@pytest.fixture(scope="module")
def bound_service(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[str]:
    """`build_app` bound to user bob, no token, under uvicorn in this process (what `serve --user bob` runs)."""
    agent = InterestAgent(Settings(store=str(tmp_path_factory.mktemp("page-bound")), llm="none"), llm=None,
                          embedder=embedder)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(lambda: agent, user_id="bob"), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_up(url)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        agent.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _api(url: str, verb: str, args: dict[str, Any], token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{url}/v1/{verb}", json=args, headers=headers, timeout=120)


def _do(page: Page, action: Any) -> None:
    """Run a UI action and wait until the page's request(s) for it have finished."""
    done = page.get_attribute("body", "data-done") or "0"
    action()
    # A selector, not wait_for_function: the page's CSP (rightly) forbids the eval that one needs.
    page.wait_for_selector(f'body[data-busy="0"]:not([data-done="{done}"])', state="attached", timeout=60_000)


def _shot(page: Page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0


def _no_injected_elements(page: Page) -> None:
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img").count() == 0
    assert page.evaluate("document.scripts.length") == 1  # the page's own script only


def test_page_is_served_without_the_token_and_data_calls_need_it(service: str) -> None:
    for path in ("/", "/ui"):
        r = httpx.get(service + path, timeout=30)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "script-src 'sha256-" in csp and "connect-src 'self'" in csp and "unsafe-inline" not in csp
        assert 'data-token-required="1"' in r.text and 'data-user-bound="0"' in r.text
    assert httpx.post(f"{service}/v1/profile", json={"user_id": "alice"}, timeout=30).status_code == 401
    assert httpx.get(f"{service}/healthz", timeout=30).status_code == 401
    assert httpx.get(f"{service}/docs", timeout=30).status_code == 401
    assert httpx.get(f"{service}/docs", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).status_code == 200


def test_page_end_to_end(service: str, page: Page, tmp_path: Path) -> None:
    # Without the token the API refuses the page's first call and the page says so.
    _do(page, lambda: page.goto(f"{service}/?user=alice"))
    assert page.is_visible("#token-field") and page.is_visible("#user-field")
    assert page.input_value("#user-id") == "alice"
    assert page.is_visible("#error") and "unauthorized" in page.text_content("#error").lower()
    _shot(page, tmp_path / "01-token-needed.png")
    page.fill("#token", TOKEN)
    _do(page, lambda: page.click("#token-save"))
    assert page.is_hidden("#error")
    assert "Nothing is stored" in page.text_content("#profile-meta")

    # Observe: a like and a dislike, each with the user's own words marked in the original text.
    page.fill("#observe-text", TEXT)
    _do(page, lambda: page.click("#observe-btn"))
    assert page.is_hidden("#error"), page.text_content("#error")
    profile = _api(service, "profile", {"user_id": "alice"}).json()
    by_id = {i["id"]: i for i in profile["interests"]}
    dom_ids = page.eval_on_selector_all("#profile .interest[data-id]", "els => els.map(e => e.dataset.id)")
    assert sorted(dom_ids) == sorted(by_id)
    assert page.locator("#likes .interest.like").count() >= 1
    assert page.locator("#dislikes .interest.dislike").count() >= 1
    for iid, interest in by_id.items():
        card = page.locator(f'#profile .interest[data-id="{iid}"]')
        assert card.get_attribute("data-polarity") == interest["polarity"]
        assert interest["polarity"] in (card.get_attribute("class") or "").split()
        assert card.locator(".name").text_content() == interest["name"]
        assert f"weight {interest['weight']:.2f}" in card.locator(".weight-value").text_content()
        marks = card.locator("mark").all_text_contents()
        assert marks and all(m in TEXT for m in marks)
        assert all(any(e["text"] in m for m in marks) for e in interest["evidence"])
        assert card.locator(".weight-history li").count() >= 1  # (time, weight) from the history
    dislike_marks = page.locator("#dislikes .interest.dislike mark").all_text_contents()
    assert any("can't stand" in m for m in dislike_marks)
    # Markup in what the user wrote is shown as text: the literal characters, and no element made from them.
    assert INJECT in page.text_content("#profile")
    _no_injected_elements(page)
    _shot(page, tmp_path / "02-profile.png")

    # Recommendations: title, score, justification, the user's words cited; the markup title stays text.
    page.fill("#k", "10")
    _do(page, lambda: page.click("#recommend-btn"))
    recs = page.locator("#recs .rec[data-item-id]")
    assert 1 <= recs.count() <= 10
    for n in range(recs.count()):
        rec = recs.nth(n)
        assert rec.locator(".title").text_content() and rec.locator(".justification").text_content()
        assert rec.locator(".score").text_content().startswith("score ")
        assert all(m in TEXT for m in rec.locator(".cited mark").all_text_contents())
    evil = page.locator('#recs .rec[data-item-id="evil-1"]')
    assert evil.locator(".title").text_content() == EVIL_TITLE
    _no_injected_elements(page)
    _shot(page, tmp_path / "03-recommendations.png")

    # Feedback: liking the item records it (API history) and adds an interest named by its title, as text.
    _do(page, lambda: evil.locator('button.fb[data-feedback="liked"]').click())
    assert "fb-liked" in (evil.get_attribute("class") or "")
    assert "Recorded: liked" in evil.locator(".fb-status").text_content()
    latest = _api(service, "history", {"user_id": "alice", "limit": 1}).json()["entries"][0]
    assert latest["operation"] == "feedback" and latest["item_id"] == "evil-1"
    names = page.locator("#profile .interest .name").all_text_contents()
    assert EVIL_TITLE in names
    _no_injected_elements(page)

    # Mute, then unmute, one dislike: the page shows it and the API agrees.
    target = page.locator("#dislikes .interest.dislike").first.get_attribute("data-id")
    card = page.locator(f'#profile .interest[data-id="{target}"]')
    _do(page, lambda: card.locator("button.mute").click())
    assert card.get_attribute("data-muted") == "1" and "muted" in (card.get_attribute("class") or "").split()
    assert card.locator("button.unmute").count() == 1
    muted = {i["id"]: i["muted"] for i in _api(service, "profile", {"user_id": "alice"}).json()["interests"]}
    assert muted[target] is True
    _shot(page, tmp_path / "04-muted.png")
    _do(page, lambda: card.locator("button.unmute").click())
    assert card.get_attribute("data-muted") == "0"
    muted = {i["id"]: i["muted"] for i in _api(service, "profile", {"user_id": "alice"}).json()["interests"]}
    assert muted[target] is False

    # Delete one like: gone from the page and from the API; undo brings it back.
    gone = page.locator("#likes .interest.like").first.get_attribute("data-id")
    _do(page, lambda: page.locator(f'#profile .interest[data-id="{gone}"] button.delete').click())
    assert page.locator(f'#profile .interest[data-id="{gone}"]').count() == 0
    assert gone not in {i["id"] for i in _api(service, "profile", {"user_id": "alice"}).json()["interests"]}
    _do(page, lambda: page.click("#undo-btn"))
    assert page.locator(f'#profile .interest[data-id="{gone}"]').count() == 1
    assert gone in {i["id"] for i in _api(service, "profile", {"user_id": "alice"}).json()["interests"]}

    # An API error (a user id the service refuses) is shown in #error.
    page.fill("#user-id", "not a valid id!")
    _do(page, lambda: page.click("#user-load"))
    assert page.is_visible("#error") and "InvalidInputError" in page.text_content("#error")
    page.fill("#user-id", "alice")
    _do(page, lambda: page.click("#user-load"))
    assert page.is_hidden("#error")
    ids = {i["id"] for i in _api(service, "profile", {"user_id": "alice"}).json()["interests"]}
    assert set(page.eval_on_selector_all("#profile .interest[data-id]", "els => els.map(e => e.dataset.id)")) == ids

    # Forget: a dismissed confirm changes nothing; an accepted one empties the profile (the API says unknown user).
    page.once("dialog", lambda d: d.dismiss())
    _do(page, lambda: page.click("#forget-btn"))
    assert _api(service, "profile", {"user_id": "alice"}).status_code == 200
    page.once("dialog", lambda d: d.accept())
    _do(page, lambda: page.click("#forget-btn"))
    assert "Forgot everything stored about alice" in page.text_content("#forget-status")
    assert page.locator("#profile .interest").count() == 0 and page.locator("#recs .rec").count() == 0
    assert _api(service, "profile", {"user_id": "alice"}).status_code == 404
    _shot(page, tmp_path / "05-forgotten.png")


def test_page_bound_to_one_user(bound_service: str, page: Page, tmp_path: Path) -> None:
    # No token and no user field: every call is bob's, whatever the URL says.
    _do(page, lambda: page.goto(f"{bound_service}/?user=eve"))
    assert page.is_hidden("#token-field") and page.is_hidden("#user-field") and page.is_hidden("#error")
    page.fill("#observe-text", "I really enjoy long hikes in the mountains.")
    _do(page, lambda: page.click("#observe-btn"))
    assert page.is_hidden("#error"), page.text_content("#error")
    assert "bob" in page.text_content("#who")
    profile = _api(bound_service, "profile", {}, token=None).json()
    assert profile["user_id"] == "bob" and profile["interests"]
    dom_ids = page.eval_on_selector_all("#profile .interest[data-id]", "els => els.map(e => e.dataset.id)")
    assert sorted(dom_ids) == sorted(i["id"] for i in profile["interests"])
    assert _api(bound_service, "profile", {"user_id": "eve"}, token=None).status_code == 400
    _shot(page, tmp_path / "06-bound.png")
