"""The MCP server through the SDK's own client: stdio and streamable HTTP subprocesses, bearer tokens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from interestlens.agent.config import Settings
from interestlens.agent.service import InterestAgent
from interestlens.agent.version import __version__
from interestlens.tools.mcp_server import build_mcp_server
from interestlens.tools.specs import TOOLS

ALICE = "I love slow-burn science fiction like Interstellar, where space feels huge and lonely."
BOB = "Korean home cooking is how I unwind: kimchi jjigae every week, japchae next."
TOKEN = "s3cret-token-of-24-chars"  # at least 16 characters are required
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory, embedder, demo_items) -> str:
    from interestlens.agent.config import Settings
    from interestlens.agent.service import InterestAgent

    path = str(tmp_path_factory.mktemp("mcp-store"))
    with InterestAgent(Settings(store=path, llm="none"), llm=None, embedder=embedder) as a:
        a.add_items(demo_items[:80])
        a.observe("zed", [ALICE])
    return path


async def _exercise(session: ClientSession) -> dict:
    init = await session.initialize()
    assert init.serverInfo.name == "interestlens" and init.serverInfo.version == __version__
    prompts = {p.name for p in (await session.list_prompts()).prompts}
    assert prompts == {"recommend_for_me", "what_do_you_know_about_me"}
    asked = await session.get_prompt("recommend_for_me", {"user_id": "alice", "context": "a rainy evening"})
    assert "user alice" in asked.messages[0].content.text and "<<<DATA" in asked.messages[0].content.text
    tools = {t.name: t for t in (await session.list_tools()).tools}
    assert set(tools) == {t.name for t in TOOLS}  # every registry verb (helper D added memory/catalog verbs)
    assert (
        tools["recommend"].outputSchema
        and tools["recommend"].inputSchema["properties"]["k"]["maximum"] == 100
    )
    obs_a = await session.call_tool("observe", {"user_id": "alice", "texts": [ALICE]})
    assert not obs_a.isError, obs_a.content
    assert (await session.call_tool("observe", {"user_id": "bob", "texts": [BOB]})).isError is False
    rec = await session.call_tool("recommend", {"user_id": "alice", "k": 3})
    assert not rec.isError, rec.content
    structured = rec.structuredContent
    assert structured["user_id"] == "alice" and 0 < len(structured["recommendations"]) <= 3
    assert rec.content[0].text.startswith("Recommendations for alice")
    for r in structured["recommendations"]:
        assert all(span["text"] in ALICE for span in r["cited_evidence"])  # never bob's words
    bad = await session.call_tool("recommend", {"user_id": "alice", "k": 0})
    assert bad.isError
    resource = await session.read_resource("interestlens://profile/alice")
    profile = json.loads(resource.contents[0].text)
    assert profile["user_id"] == "alice" and profile["interests"]
    assert "kimchi" not in resource.contents[0].text
    return structured


def _stdio_params(store_dir: str, *llm: str) -> StdioServerParameters:
    args = ["-m", "interestlens.tools.cli", "--store", store_dir, *llm, "mcp"]
    return StdioServerParameters(command=sys.executable, args=args, env=ENV)


async def _over_stdio(params: StdioServerParameters) -> dict:
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        return await _exercise(session)


def test_stdio(store_dir):
    anyio.run(_over_stdio, _stdio_params(store_dir, "--llm", "none"))


@pytest.mark.slow
def test_stdio_with_default_tiny_model(store_dir):
    """The packaged model loads inside the server; stdout must still carry only protocol messages."""

    async def run() -> None:
        params = _stdio_params(store_dir)
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            args = {"user_id": "zed", "k": 3, "context": "a film tonight"}
            rec = await session.call_tool("recommend", args)
            assert not rec.isError, rec.content
            assert rec.structuredContent["user_id"] == "zed" and rec.structuredContent["recommendations"]

    anyio.run(run)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_http(store_dir: str, *extra: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "interestlens.tools.cli",
        "--store",
        store_dir,
        "--llm",
        "none",
        "mcp",
        "--http",
        str(port),
        *extra,
    ]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read())
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=1)
            break
        except urllib.error.HTTPError:
            break  # answering (406/401): up
        except OSError:
            time.sleep(0.2)
    return proc, url


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_http_with_token(store_dir):
    proc, url = _start_http(store_dir, "--token", TOKEN)
    try:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(
                urllib.request.Request(
                    url, data=b"{}", method="POST", headers={"Content-Type": "application/json"}
                )
            )
        assert e.value.code == 401
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(
                urllib.request.Request(
                    url, data=b"{}", method="POST", headers={"Authorization": "Bearer wrong"}
                )
            )
        assert e.value.code == 401

        async def run() -> dict:
            import httpx

            client = httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=300)
            async with (
                client,
                streamable_http_client(url, http_client=client) as (read, write, _),
                ClientSession(read, write) as session,
            ):
                return await _exercise(session)

        assert anyio.run(run)["user_id"] == "alice"
    finally:
        _stop(proc)


def test_non_loopback_without_token_is_refused(store_dir):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "interestlens.tools.cli",
            "--store",
            store_dir,
            "--llm",
            "none",
            "mcp",
            "--http",
            str(_free_port()),
            "--host",
            "0.0.0.0",
        ],
        env={k: v for k, v in ENV.items() if k != "INTERESTLENS_MCP_TOKEN"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: refusing to serve MCP on 0.0.0.0 without a bearer token")
    assert Path(store_dir).exists()


def test_prompts_of_a_bound_server_fill_in_its_user(store_dir):
    """A server bound to one user offers prompts without a user argument and refuses to speak for another."""
    server = build_mcp_server(lambda: InterestAgent(Settings(store=store_dir, llm="none")), user_id="alice")

    async def run() -> None:
        listed = {p.name: p for p in await server.list_prompts()}
        assert [a.name for a in listed["recommend_for_me"].arguments or []] == ["context"]
        assert not listed["what_do_you_know_about_me"].arguments
        msg = await server.get_prompt("what_do_you_know_about_me", {})
        assert "user alice" in msg.messages[0].content.text
        with pytest.raises(Exception, match=r"unexpected|bob|user_id"):
            await server.get_prompt("what_do_you_know_about_me", {"user_id": "bob"})

    anyio.run(run)


def test_user_id_completions_through_the_sdk_client(store_dir):
    """completion/complete for `user_id` (prompts and the profile resource): prefix matches from the store; a
    bound server offers only its own user."""
    from mcp.shared.memory import create_connected_server_and_client_session
    from mcp.types import PromptReference, ResourceTemplateReference

    from interestlens.tools.mcp_server import PROFILE_RESOURCE

    def factory() -> InterestAgent:
        return InterestAgent(Settings(store=store_dir, llm="none"))

    async def run() -> None:
        async with create_connected_server_and_client_session(build_mcp_server(factory)) as session:
            ref = ResourceTemplateReference(type="ref/resource", uri=PROFILE_RESOURCE)
            got = await session.complete(ref, {"name": "user_id", "value": "z"})
            assert got.completion.values == ["zed"]
            prompt = PromptReference(type="ref/prompt", name="what_do_you_know_about_me")
            assert (await session.complete(prompt, {"name": "user_id", "value": "q"})).completion.values == []
        async with create_connected_server_and_client_session(build_mcp_server(factory, user_id="alice")) as bound:
            ref = ResourceTemplateReference(type="ref/resource", uri=PROFILE_RESOURCE)
            assert (await bound.complete(ref, {"name": "user_id", "value": ""})).completion.values == ["alice"]
            assert (await bound.complete(ref, {"name": "user_id", "value": "z"})).completion.values == []

    anyio.run(run)
