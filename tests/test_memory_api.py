"""Chat-native observe, profile editing with history, undo, export/import and forget (issue 13), on real
Chroma and the packaged MiniLM embedder (llm none: only what the design guarantees is asserted)."""

from __future__ import annotations

import json

import pytest

from interestlens.agent.api_models import UserExport
from interestlens.agent.config import Settings
from interestlens.agent.conversation import classify_turn, to_messages
from interestlens.agent.errors import InvalidInputError, UnknownIdError
from interestlens.agent.models import HistoryOp, Item, Polarity
from interestlens.agent.service import InterestAgent

ITEMS = [
    Item(id="m-arrival", title="Arrival", text="Arrival. Cerebral science fiction film about language.",
         metadata={"domain": "film"}),
    Item(id="m-shining", title="The Shining", text="The Shining. Horror film in a haunted hotel.",
         metadata={"domain": "film"}),
    Item(id="b-dune", title="Dune", text="Dune. Desert planet epic science fiction novel.",
         metadata={"domain": "book"}),
    Item(id="a-kind", title="Kind of Blue", text="Kind of Blue. Mellow modal jazz album.",
         metadata={"domain": "music"}),
]


@pytest.fixture
def agent(tmp_path, embedder):
    a = InterestAgent(Settings(store=str(tmp_path / "store"), llm="none"), llm=None, embedder=embedder)
    a.add_items(ITEMS)
    yield a
    a.close()


# ---------------------------------------------------------------------------------------------- messages
@pytest.mark.parametrize(
    "text", ["what should I listen to tonight?", "Recommend me a book", "thanks!", "hello", "a film for tonight",
             "I'd like something light"],
)
def test_requests_and_chitchat_are_not_preferences(text):
    assert classify_turn(text)[0] == "request"


@pytest.mark.parametrize("text", ["I adore mellow late-night jazz records.", "Metal is too loud for me",
                                  "I love jazz, what should I listen to tonight?"])
def test_stated_tastes_are_preferences(text):
    assert classify_turn(text)[0] == "preference"


def test_references_carry_polarity():
    assert classify_turn("Yes, more like that")[:2] == ("reference", Polarity.LIKE)
    assert classify_turn("not that one")[:2] == ("reference", Polarity.DISLIKE)


def test_to_messages_accepts_openai_and_langchain_shapes():
    from langchain_core.messages import AIMessage, HumanMessage

    msgs = to_messages([
        {"role": "user", "content": [{"type": "text", "text": "I love jazz"}]},
        AIMessage(content="Try Kind of Blue."),
        HumanMessage(content="yes"),
    ])
    assert [m.role for m in msgs] == ["user", "assistant", "user"]
    assert msgs[0].content == "I love jazz"
    with pytest.raises(InvalidInputError, match="unknown role"):
        to_messages([{"role": "wizard", "content": "x"}])


def test_observe_messages_only_user_turns_and_references(agent):
    result = agent.observe("alice", [
        {"role": "user", "content": "I adore mellow late-night jazz records."},
        {"role": "assistant", "content": "You might like Kind of Blue [a-kind]. I love horror myself."},
        {"role": "user", "content": "Yes, more like that"},
        {"role": "user", "content": "what should I listen to tonight?"},
        {"role": "user", "content": "I love horror movies.", "remember": False},
    ])
    assert result.requests == ["what should I listen to tonight?"]
    assert result.referenced_item_ids == ["a-kind"]
    profile = agent.profile("alice")
    ref = next(i for i in profile.interests if "a-kind" in i.linked_item_ids)
    assert ref.polarity is Polarity.LIKE
    assert [e.text for e in ref.evidence] == ["Yes, more like that"]  # grounded in the user's words
    sources = {s.id: s.text for s in agent.store.get_sources("alice")}
    for interest in profile.interests:  # nothing from the assistant's turn nor the remember=False turn
        for e in interest.evidence:
            assert sources[e.source_id][e.start:e.end] == e.text
    assert not any("horror" in t.lower() for t in sources.values())
    assert not any("listen" in i.name.lower() for i in profile.interests)  # the request is not an interest


def test_observe_of_only_requests_writes_nothing(agent):
    result = agent.observe("bob", [{"role": "user", "content": "what should I watch tonight?"}])
    assert result.requests and not result.added and result.profile_version == 0
    with pytest.raises(UnknownIdError):
        agent.profile("bob")


def test_reference_without_suggestion_is_not_stored(agent):
    result = agent.observe("carol", messages=[{"role": "user", "content": "yes, more like that"}])
    assert not result.added and result.requests == ["yes, more like that"]


def test_dislike_reference(agent):
    agent.observe("dave", messages=[
        {"role": "user", "content": "I enjoy ghost stories."},
        {"role": "assistant", "content": "How about The Shining?"},
        {"role": "user", "content": "no, not that one"},
    ])
    ref = next(i for i in agent.profile("dave").interests if "m-shining" in i.linked_item_ids)
    assert ref.polarity is Polarity.DISLIKE
    assert "m-shining" not in [r.item.id for r in agent.recommend("dave", k=4).recommendations]


# ---------------------------------------------------------------------------------------------- editing
def test_edits_history_and_undo(agent):
    agent.observe("erin", ["I love epic science fiction."])
    iid = agent.profile("erin").interests[0].id
    agent.rename_interest("erin", iid, "space epics")
    agent.reweight_interest("erin", iid, 3.0)
    flipped = agent.flip_interest("erin", iid)
    new_id = next(i.id for i in flipped.interests if i.name == "space epics")
    assert flipped.get(new_id).polarity is Polarity.DISLIKE
    agent.set_muted("erin", new_id, True)
    agent.add_interest("erin", "modal jazz", "like", 2.0)
    ops = [e.operation for e in agent.history("erin").entries]
    assert ops == [HistoryOp.ADD, HistoryOp.MUTE, HistoryOp.FLIP, HistoryOp.REWEIGHT, HistoryOp.RENAME,
                   HistoryOp.OBSERVE]
    rename = agent.history("erin").entries[4]
    assert rename.changes[0].before.name != "space epics" and rename.changes[0].after.name == "space epics"
    assert agent.history("erin").entries[-1].source_text == "I love epic science fiction."

    # undo walks back one change at a time, and is itself recorded
    agent.undo("erin")
    assert all(i.name != "modal jazz" for i in agent.profile("erin").interests)
    agent.undo("erin")
    assert not agent.profile("erin").get(new_id).muted
    agent.undo("erin")
    restored = agent.profile("erin").get(iid)
    assert restored.polarity is Polarity.LIKE and restored.weight == 3.0
    assert agent.history("erin").entries[0].operation is HistoryOp.UNDO
    agent.delete_interest("erin", iid)
    assert agent.profile("erin").get(iid) is None


def test_edit_errors_are_clear(agent):
    agent.observe("fay", ["I love jazz."])
    with pytest.raises(UnknownIdError):
        agent.rename_interest("fay", "int-nope", "x")
    with pytest.raises(InvalidInputError):
        agent.reweight_interest("fay", agent.profile("fay").interests[0].id, 99)
    with pytest.raises(InvalidInputError):
        agent.add_interest("fay", "   ")
    with pytest.raises(UnknownIdError):
        agent.history("nobody")
    with pytest.raises(UnknownIdError):
        agent.undo("nobody")


def test_export_import_round_trip_and_forget(agent):
    agent.observe("gus", ["I love epic science fiction."])
    agent.feedback("gus", "b-dune", "liked", note="Loved the desert politics.")
    agent.recommend("gus", k=2)
    exported = agent.export_user("gus")
    data = json.loads(exported.model_dump_json())
    assert data["profile"]["user_id"] == "gus" and data["sources"] and data["history"] and data["interactions"]

    assert agent.forget("gus") is True
    with pytest.raises(UnknownIdError):
        agent.export_user("gus")
    assert agent.history_store.count("gus") == 0  # history goes with the rest
    assert agent.forget("gus") is False  # an unknown user is said so

    result = agent.import_user(json.dumps(data))
    assert result.interests == len(exported.profile.interests)
    again = agent.export_user("gus")
    assert again.profile.interests == exported.profile.interests
    assert [s.id for s in again.sources] == [s.id for s in exported.sources]
    assert len(again.history) == len(exported.history) + 1  # plus the import entry
    with pytest.raises(InvalidInputError, match="already has data"):
        agent.import_user(data)
    copy = agent.import_user(UserExport.model_validate(data), user_id="gus2")
    assert copy.user_id == "gus2" and agent.profile("gus2").interests == exported.profile.interests
    with pytest.raises(InvalidInputError):
        agent.import_user("{not json")


# ---------------------------------------------------------------------------------------------- surfaces
def test_memory_verbs_on_tool_surfaces(agent):
    import anyio

    from interestlens.tools.langchain_tools import make_langchain_tools
    from interestlens.tools.mcp_server import build_mcp_server
    from interestlens.tools.openai_functions import run_tool_call

    def openai(tool: str, **args):
        msg, result = run_tool_call(agent, {"id": "c", "function": {"name": tool, "arguments": json.dumps(args)}},
                                    user_id="hal")
        assert result is not None, msg
        return result

    obs = openai("observe", texts=None, history=None, messages=[
        {"role": "user", "content": "I adore mellow jazz.", "remember": None},
        {"role": "assistant", "content": "Kind of Blue is a classic.", "remember": None},
        {"role": "user", "content": "yes, more like that", "remember": None},
    ])
    assert obs.referenced_item_ids == ["a-kind"]
    prof = openai("edit_profile", operation="add", interest_id=None, name="bebop", weight=None, polarity="like")
    assert any(i.name == "bebop" for i in prof.interests)
    bad, _ = run_tool_call(agent, {"id": "c", "function": {"name": "edit_profile", "arguments": json.dumps(
        {"operation": "rename", "interest_id": None, "name": None, "weight": None, "polarity": None})}},
        user_id="hal")
    assert bad["content"].startswith("error:") and "interest_id" in bad["content"]
    hist = openai("history", limit=None)
    assert [e.operation for e in hist.entries][:2] == [HistoryOp.ADD, HistoryOp.OBSERVE]
    assert all(e.profile_before is None for e in hist.entries)  # snapshots stay out of tool output
    tools = {t.name: t for t in make_langchain_tools(agent, user_id="hal")}
    out = tools["edit_profile"].invoke({"type": "tool_call", "id": "l", "name": "edit_profile",
                                        "args": {"operation": "undo"}})
    assert all(i.name != "bebop" for i in out.artifact.interests)
    assert tools["export"].invoke({"type": "tool_call", "id": "e", "name": "export", "args": {}}).artifact.profile
    mcp = build_mcp_server(lambda: agent)

    async def go():
        return await mcp.call_tool("history", {"user_id": "hal", "limit": 1})

    assert "undo" in json.dumps(anyio.run(go), default=str)


def test_memory_cli(tmp_path, embedder):
    from typer.testing import CliRunner

    from interestlens.tools.cli import app

    store = str(tmp_path / "cli")
    with InterestAgent(Settings(store=store, llm="none"), llm=None, embedder=embedder) as a:
        a.add_items(ITEMS)
    runner = CliRunner()
    base = ["--store", store, "--llm", "none"]

    def run(*args: str, as_json: bool = True):
        r = runner.invoke(app, [*base, *args, *(["--json"] if as_json else [])])
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout) if as_json else r.stdout

    conv = tmp_path / "conv.json"
    conv.write_text(json.dumps([
        {"role": "user", "content": "I love epic science fiction."},
        {"role": "assistant", "content": "Dune [b-dune] is the classic."},
        {"role": "user", "content": "yes, more like that"},
        {"role": "user", "content": "what should I read next?"},
    ]), encoding="utf-8")
    obs = run("observe", "--user", "ivy", "--messages", str(conv))
    assert obs["referenced_item_ids"] == ["b-dune"] and obs["requests"] == ["what should I read next?"]
    iid = run("profile", "--user", "ivy")["interests"][0]["id"]
    run("profile", "rename", "--user", "ivy", "--interest", iid, "--name", "desert epics")
    run("profile", "reweight", "--user", "ivy", "--interest", iid, "--weight", "2")
    run("profile", "flip", "--user", "ivy", "--interest", iid)
    run("profile", "add", "--user", "ivy", "--name", "horror", "--dislike")
    run("profile", "undo", "--user", "ivy")
    ops = [e["operation"] for e in run("history", "--user", "ivy")["entries"]]
    assert ops == ["undo", "add", "flip", "reweight", "rename", "observe"]
    assert "rename" in run("history", "--user", "ivy", as_json=False)
    out = tmp_path / "ivy.json"
    runner.invoke(app, [*base, "export", "--user", "ivy", "--out", str(out)])
    assert json.loads(out.read_text())["user_id"] == "ivy"
    assert run("forget", "--user", "ivy")["forgotten"] is True
    assert run("forget", "--user", "ivy")["forgotten"] is False
    assert "Nothing was stored" in run("forget", "--user", "ivy", as_json=False)
    assert run("import", str(out))["interests"] >= 1
    assert run("profile", "--user", "ivy")["user_id"] == "ivy"


# ---------------------------------------------------------------------------------------------- dynamics
def test_observe_prunes_what_faded_and_reports_flips(agent):
    from datetime import UTC, datetime

    from interestlens.agent.models import SourceText

    old = datetime(2020, 1, 1, tzinfo=UTC)
    first = agent.observe("u", [SourceText(text="I love film noir.", ts=old)])
    assert first.added and not first.pruned  # years-old text observed today: not stale on arrival
    noir = first.added[0]
    # Eighteen months later the user talks about something else: noir, unmentioned since, has faded out.
    later = agent.observe("u", [SourceText(text="I love alpine hiking.", ts=datetime(2021, 7, 1, tzinfo=UTC))])
    assert [i.id for i in later.pruned] == [noir.id]
    assert noir.id not in {i.id for i in agent.profile("u").interests}
    # A later statement of the other polarity flips the stored interest, and the result says so.
    flip = agent.observe("u", [SourceText(text="I can't stand alpine hiking.", ts=datetime(2021, 7, 2, tzinfo=UTC))])
    hiking = next(i for i in agent.profile("u").interests if "hiking" in i.name)
    assert hiking.polarity is Polarity.DISLIKE
    assert [i.id for i in flip.flipped] == [hiking.id]
