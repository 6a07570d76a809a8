"""`interestlens serve` driven by an HTTP client: every verb over JSON, strict errors, token, docs, MCP mount."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import anyio
import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from interestlens.agent.config import Settings
from interestlens.agent.service import InterestAgent
from interestlens.agent.version import __version__
from interestlens.tools.specs import TOOLS

TOKEN = "serve-token-0123456789"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_serve(store: str, token: str | None = TOKEN) -> tuple[subprocess.Popen, str]:
    """`interestlens serve` in its own process on a free port, once /healthz answers."""
    port = _free_port()
    argv = [sys.executable, "-m", "interestlens.tools.cli", "--store", store, "--llm", "none", "serve",
            "--port", str(port)] + (["--token", token] if token else [])
    proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", headers=headers, timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.3)
        if proc.poll() is not None:
            pytest.fail(f"serve exited: {proc.stderr.read()}")
    proc.kill()
    pytest.fail("serve did not answer /healthz within 120 s")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def service(tmp_path_factory, embedder, demo_items):
    store = str(tmp_path_factory.mktemp("serve-store"))
    with InterestAgent(Settings(store=store, llm="none"), llm=None, embedder=embedder) as a:
        a.add_items(demo_items[:80])
    proc, url = _start_serve(store)
    yield url
    _stop(proc)


def _client(url: str, token: str | None = TOKEN) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=120, headers={"Authorization": f"Bearer {token}"} if token else {})


def test_every_verb_over_json(service):
    with _client(service) as c:
        assert c.get("/healthz").json() == {"status": "ok", "version": __version__}
        paths = c.get("/openapi.json").json()["paths"]
        assert {f"/v1/{t.name}" for t in TOOLS} <= set(paths)
        assert "requestBody" in paths["/v1/recommend"]["post"]
        text = "I love slow-burn science fiction like Interstellar, where space feels huge and lonely."
        obs = c.post("/v1/observe", json={"user_id": "alice", "texts": [text]})
        assert obs.status_code == 200 and obs.json()["profile_version"] >= 1
        rec = c.post("/v1/recommend", json={"user_id": "alice", "k": 3}).json()
        assert rec["user_id"] == "alice" and 0 < len(rec["recommendations"]) <= 3
        top = rec["recommendations"][0]["item"]["id"]
        assert c.post("/v1/feedback", json={"user_id": "alice", "item_id": top, "feedback": "seen"}).status_code == 200
        again = c.post("/v1/recommend", json={"user_id": "alice", "k": 3}).json()
        assert top not in [r["item"]["id"] for r in again["recommendations"]]
        assert c.post("/v1/forget", json={"user_id": "alice"}).json()["forgotten"] is True


def test_errors_are_json_with_status(service):
    with _client(service) as c:
        strict = c.post("/v1/recommend", json={"user_id": "alice", "k": "3"})
        assert strict.status_code == 400 and "invalid arguments" in strict.json()["error"]
        assert c.post("/v1/recommend", json={"user_id": "alice", "k": 3, "extra": 1}).status_code == 400
        assert (
            c.post("/v1/profile", content=b"not json", headers={"content-type": "application/json"}).status_code == 400
        )
        unknown = c.post("/v1/explain", json={"user_id": "nobody-here", "item_id": "x"})
        assert unknown.status_code in (400, 404) and unknown.json()["type"]
    with _client(service, token=None) as anon:
        assert anon.post("/v1/profile", json={"user_id": "alice"}).status_code == 401
    with _client(service, token="wrong-token-0123456789") as bad:
        assert bad.get("/healthz").status_code == 401


def test_mcp_is_mounted_on_the_same_process(service):
    async def run() -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            httpx.AsyncClient(headers=headers, timeout=60) as http,
            streamable_http_client(f"{service}/mcp", http_client=http) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            init = await session.initialize()
            assert init.serverInfo.version == __version__
            assert {t.name for t in (await session.list_tools()).tools} == {t.name for t in TOOLS}

    anyio.run(run)


def test_non_loopback_without_token_is_refused(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "interestlens.tools.cli",
            "--store",
            str(tmp_path),
            "--llm",
            "none",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(_free_port()),
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "without a bearer token" in r.stderr


# ----------------------------------------------------------------------------------------------- CLI --server
def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    from interestlens.tools.cli import main

    try:
        main(list(argv))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_runs_verbs_on_the_service(service, capsys, monkeypatch):
    monkeypatch.setenv("INTERESTLENS_TOKEN", TOKEN)
    monkeypatch.setattr(InterestAgent, "__init__", _no_local_agent)  # proof that nothing is loaded here
    code, out, err = _cli(capsys, "--server", service, "observe", "-u", "cli-user",
                          "I adore hand-drawn animation. I can't stand zombie films.")
    assert code == 0, err
    code, out, err = _cli(capsys, "--server", service, "--json", "profile", "-u", "cli-user")
    assert code == 0, err
    profile = json.loads(out)
    polarities = {i["polarity"] for i in profile["interests"]}
    assert profile["user_id"] == "cli-user" and polarities == {"like", "dislike"}
    code, out, err = _cli(capsys, "--server", service, "recommend", "-u", "cli-user", "-k", "3")
    assert code == 0 and "Recommendations for cli-user" in out and "1. " in out, (out, err)
    first = profile["interests"][0]["id"]
    code, out, err = _cli(capsys, "--server", service, "--json", "profile", "mute", "-u", "cli-user", "-i", first)
    assert code == 0 and next(i for i in json.loads(out)["interests"] if i["id"] == first)["muted"], err
    code, out, err = _cli(capsys, "--server", service, "--json", "catalog", "count")
    assert code == 0 and json.loads(out)["count"] == 80


def _no_local_agent(self, *args, **kwargs):
    raise AssertionError("a local InterestAgent was built although --server was given")


def test_cli_server_errors_map_to_exit_codes(service, capsys, monkeypatch):
    monkeypatch.setenv("INTERESTLENS_TOKEN", TOKEN)
    code, _, err = _cli(capsys, "--server", service, "explain", "-u", "nobody-here", "--item", "x")
    assert code == 2 and "unknown user 'nobody-here'" in err  # the service's 404, as a local call words it
    code, _, err = _cli(capsys, "--server", service, "recommend", "-u", "cli-user", "-k", "0")
    assert code == 2 and "invalid arguments for recommend" in err  # validated before any round trip
    code, _, err = _cli(capsys, "--server", service, "topics")
    assert code == 2 and "not available with --server" in err
    monkeypatch.delenv("INTERESTLENS_TOKEN")
    code, _, err = _cli(capsys, "--server", service, "profile", "-u", "cli-user")
    assert code == 2 and "needs a bearer token" in err
    code, _, err = _cli(capsys, "--server", f"http://127.0.0.1:{_free_port()}", "profile", "-u", "cli-user")
    assert code == 1 and "cannot reach the interestlens service" in err


def test_two_services_share_one_chroma_server(tmp_path, embedder, demo_items):
    """Two `serve` processes on one `chroma run` server: what one writes the other reads, and concurrent
    observes of one user through both are all kept (the per-user lease of the reliability issue)."""
    from concurrent.futures import ThreadPoolExecutor

    from _chroma_server import running_chroma_server

    with running_chroma_server(tmp_path / "chroma") as chroma_url:
        with InterestAgent(Settings(store=chroma_url, llm="none"), llm=None, embedder=embedder) as a:
            a.add_items(demo_items[:40])
        (pa, url_a), (pb, url_b) = _start_serve(chroma_url, None), _start_serve(chroma_url, None)
        try:
            texts = ["I adore hand-drawn animation.", "I love quiet jazz records.", "Heist thrillers are my thing.",
                     "I can't stand zombie films."]

            def observe(job: tuple[str, str]) -> int:
                url, text = job
                return httpx.post(f"{url}/v1/observe", json={"user_id": "shared", "texts": [text]},
                                  timeout=120).status_code

            jobs = [(url_a if k % 2 == 0 else url_b, t) for k, t in enumerate(texts)]
            with ThreadPoolExecutor(4) as pool:
                assert list(pool.map(observe, jobs)) == [200] * len(texts)
            seen_by_b = httpx.post(f"{url_b}/v1/history", json={"user_id": "shared", "limit": 50}, timeout=60).json()
            observes = [e for e in seen_by_b["entries"] if e["operation"] == "observe"]
            assert len(observes) == len(texts)  # no write was lost to a concurrent one
            prof_a = httpx.post(f"{url_a}/v1/profile", json={"user_id": "shared"}, timeout=60).json()
            prof_b = httpx.post(f"{url_b}/v1/profile", json={"user_id": "shared"}, timeout=60).json()
            assert prof_a == prof_b and {i["polarity"] for i in prof_a["interests"]} == {"like", "dislike"}
        finally:
            _stop(pa)
            _stop(pb)
