"""feedback(user, item, liked | disliked | seen, note?) on every surface (issue 13 item 2): real Chroma, MiniLM,
the real OpenAI dispatch, LangChain tools, the MCP server object and the CLI."""

from __future__ import annotations

import json

import anyio
import pytest
from typer.testing import CliRunner

from interestlens.agent.api_models import FeedbackKind
from interestlens.agent.config import Settings
from interestlens.agent.errors import InvalidInputError, UnknownIdError
from interestlens.agent.models import InterestOrigin, Polarity
from interestlens.agent.service import InterestAgent
from interestlens.tools.cli import app
from interestlens.tools.langchain_tools import make_langchain_tools
from interestlens.tools.mcp_server import build_mcp_server
from interestlens.tools.openai_functions import run_tool_call


@pytest.fixture
def agent(tmp_path, embedder, demo_items):
    a = InterestAgent(Settings(store=str(tmp_path / "store"), llm="none"), llm=None, embedder=embedder)
    a.add_items(demo_items[:60])
    a.observe("alice", ["I love slow-burn science fiction, where space feels huge and lonely."])
    yield a
    a.close()


def _top(agent: InterestAgent, k: int = 5) -> list[str]:
    return [r.item.id for r in agent.recommend("alice", k=k).recommendations]


def test_seen_item_is_never_recommended_again(agent):
    first = _top(agent)
    assert first
    result = agent.feedback("alice", first[0], "seen")
    assert result.kind is FeedbackKind.SEEN and result.excluded and result.interest is None
    assert first[0] in agent.profile("alice").history
    assert first[0] not in _top(agent, k=20)  # the next recommendation changed
    assert first[0] in agent.store.user_interacted_items("alice")  # a behaviour row
    assert agent.history("alice").entries[0].item_id == first[0]


def test_liked_with_note_is_a_grounded_feedback_interest(agent):
    item_id = _top(agent)[1]
    result = agent.feedback("alice", item_id, "liked", note="Loved the quiet ending.")
    interest = result.interest
    assert interest is not None and interest.polarity is Polarity.LIKE and item_id in interest.linked_item_ids
    sources = {s.id: s for s in agent.store.get_sources("alice")}
    texts = [sources[e.source_id].text[e.start:e.end] for e in interest.evidence]
    assert "Loved the quiet ending." in texts  # the note
    assert agent.store.get_item(item_id).title in texts  # and the item
    assert item_id not in _top(agent, k=20)


def test_disliked_item_is_excluded_and_not_a_seed(agent):
    item_id = _top(agent)[0]
    result = agent.feedback("alice", item_id, "disliked", note="Too slow for me.")
    assert result.interest.polarity is Polarity.DISLIKE
    assert result.interest.origin in (InterestOrigin.FEEDBACK, InterestOrigin.OBSERVED)
    assert item_id not in agent.profile("alice").history  # not a "more like this" seed
    assert item_id not in _top(agent, k=20)


def test_feedback_errors(agent):
    with pytest.raises(UnknownIdError):
        agent.feedback("alice", "no-such-item", "liked")
    with pytest.raises(InvalidInputError, match="liked, disliked or seen"):
        agent.feedback("alice", "mov-0001", "loved")
    before = agent.profile("alice")
    with pytest.raises(InvalidInputError):
        agent.feedback("alice", "mov-0001", "liked", note="x" * 10_000_000)
    assert agent.profile("alice").interests == before.interests  # nothing stored was lost


def test_feedback_on_every_surface(agent, tmp_path):
    ids = [it.id for it in agent.store.iter_items()][:4]
    # OpenAI function calling (user-bound)
    call = {"id": "c1", "function": {"name": "feedback", "arguments": json.dumps(
        {"item_id": ids[0], "feedback": "seen", "note": None})}}
    msg, result = run_tool_call(agent, call, user_id="alice")
    assert result is not None and result.item_id == ids[0], msg
    # LangChain
    tool = {t.name: t for t in make_langchain_tools(agent, user_id="alice")}["feedback"]
    out = tool.invoke({"type": "tool_call", "id": "c2", "name": "feedback",
                       "args": {"item_id": ids[1], "feedback": "liked"}})
    assert out.artifact.item_id == ids[1]
    # MCP (the server object, in process)
    mcp = build_mcp_server(lambda: agent)

    async def call_mcp():
        return await mcp.call_tool("feedback", {"user_id": "alice", "item_id": ids[2], "feedback": "disliked"})

    anyio.run(call_mcp)
    profile = agent.profile("alice")
    assert ids[0] in profile.history and ids[1] in profile.history
    assert any(ids[2] in i.linked_item_ids and i.polarity is Polarity.DISLIKE for i in profile.interests)


def test_feedback_cli(tmp_path, embedder, demo_items):
    store = str(tmp_path / "cli-store")
    with InterestAgent(Settings(store=store, llm="none"), llm=None, embedder=embedder) as a:
        a.add_items(demo_items[:30])
        a.observe("bob", ["I love slow-burn science fiction."])
    runner = CliRunner()
    base = ["--store", store, "--llm", "none"]
    r = runner.invoke(app, [*base, "feedback", "--user", "bob", "--item", "mov-0002", "seen", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["item_id"] == "mov-0002"
    r = runner.invoke(app, [*base, "feedback", "--user", "bob", "--item", "mov-0002", "meh"])
    assert r.exit_code != 0
    r = runner.invoke(app, [*base, "recommend", "--user", "bob", "-k", "10", "--json"])
    assert r.exit_code == 0 and "mov-0002" not in [x["item"]["id"] for x in json.loads(r.stdout)["recommendations"]]


def test_undo_of_feedback_removes_its_behaviour_row(agent):
    """Undo restores the profile and takes back the interaction the feedback wrote, not an older one."""
    item = _top(agent)[0]
    agent.store.add_interactions([{"user_id": "alice", "item_id": item, "ts": "2020-01-01T00:00:00Z"}])
    agent.feedback("alice", item, "liked")
    assert agent.store.behaviour.count("alice") == 2
    agent.undo("alice")
    rows = agent.store.user_interactions("alice")
    assert [(r.item_id, r.ts.year) for r in rows] == [(item, 2020)]
    assert item not in agent.profile("alice").history
