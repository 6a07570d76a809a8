"""OpenAI function calling: strict specs from the registry, dispatch that never raises, a real server."""

from __future__ import annotations

import json

import pytest

from interestlens.agent.models import RecommendationResult
from interestlens.tools.openai_functions import dispatch_tool_call, openai_tool_specs, run_tool_call
from interestlens.tools.specs import TOOLS, USER_TOOLS

ALICE = "I love slow-burn science fiction like Interstellar, where space feels huge and lonely."
BOB = "Korean home cooking is how I unwind: kimchi jjigae every week, japchae next."


@pytest.fixture(scope="module")
def agent(tmp_path_factory, embedder, demo_items):
    from interestlens.agent.config import Settings
    from interestlens.agent.service import InterestAgent

    a = InterestAgent(
        Settings(store=str(tmp_path_factory.mktemp("store")), llm="none"), llm=None, embedder=embedder
    )
    a.add_items(demo_items[:80])
    a.observe("alice", [ALICE])
    a.observe("bob", [BOB])
    yield a
    a.close()


def _walk(schema):
    yield schema
    for key in ("properties",):
        for sub in schema.get(key, {}).values():
            yield from _walk(sub)
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"])
    for sub in schema.get("anyOf", []):
        yield from _walk(sub)


@pytest.mark.parametrize("user_bound", [False, True])
def test_specs_are_strict(user_bound):
    specs = openai_tool_specs(user_bound=user_bound)
    # every registry verb; a user-bound session gets no catalog administration (helper D)
    assert [s["function"]["name"] for s in specs] == [t.name for t in (USER_TOOLS if user_bound else TOOLS)]
    for spec in specs:
        fn = spec["function"]
        assert fn["strict"] is True and fn["description"]
        params = fn["parameters"]
        for node in _walk(params):
            assert "default" not in node and "$ref" not in node and "maxLength" not in node
            if node.get("type") == "object":
                assert node["additionalProperties"] is False
                assert set(node["required"]) == set(node["properties"])
        if not fn["name"].startswith("catalog_"):  # catalog verbs act on no user (helper D)
            assert ("user_id" in params["properties"]) is (not user_bound)
    rec = next(s for s in specs if s["function"]["name"] == "recommend")["function"]["parameters"]
    assert {"type": "null"} in rec["properties"]["context"]["anyOf"]  # optional -> nullable


def _call(name, arguments, call_id="call_1"):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (_call("recommend", "{not json"), "not valid JSON"),
        (_call("teleport", "{}"), "unknown tool 'teleport'"),
        (_call("recommend", json.dumps({"user_id": "alice", "k": 0})), "invalid arguments for recommend: k"),
        (_call("recommend", "[1, 2]"), "must be a JSON object"),
        (_call("explain", json.dumps({"user_id": "alice", "item_id": "no-such-item"})), "error:"),
        (_call("profile", json.dumps({"user_id": "nobody"})), "error:"),
    ],
)
def test_dispatch_errors_become_tool_messages(agent, call, fragment):
    msg = dispatch_tool_call(agent, call)
    assert msg["role"] == "tool" and msg["tool_call_id"] == "call_1"
    assert msg["content"].startswith("error:") and fragment in msg["content"]


def test_dispatch_nulls_mean_defaults_and_users_are_isolated(agent):
    args = {"user_id": "alice", "context": None, "k": None, "expand": None}
    msg, result = run_tool_call(agent, _call("recommend", json.dumps(args)))
    assert isinstance(result, RecommendationResult) and result.user_id == "alice"
    assert 0 < len(result.recommendations) <= 10
    assert msg["content"].startswith("Recommendations for alice")
    for rec in result.recommendations:
        for span in rec.cited_evidence:
            assert span.text in ALICE  # never bob's words
    # A session bound to alice cannot read bob's profile, even if the model asks for it.
    denied = dispatch_tool_call(agent, _call("profile", json.dumps({"user_id": "bob"})), user_id="alice")
    assert "bound to user 'alice'" in denied["content"]
    own = dispatch_tool_call(agent, _call("profile", "{}"), user_id="alice")
    assert own["content"].startswith("Profile of alice") and "kimchi" not in own["content"]


@pytest.mark.slow
def test_forced_tool_call_through_real_llama_server(agent, llama_server):
    import openai

    client = openai.OpenAI(base_url=llama_server, api_key="unused")
    resp = client.chat.completions.create(
        model="local",
        messages=[
            {"role": "system", "content": "You are a recommendation assistant. Use the tools."},
            {"role": "user", "content": "Recommend 5 science fiction films for me."},
        ],
        tools=openai_tool_specs(user_bound=True),
        tool_choice={"type": "function", "function": {"name": "recommend"}},  # a 135M model must be told
        temperature=0,
        max_tokens=120,
    )
    call = resp.choices[0].message.tool_calls[0]
    assert call.function.name == "recommend"
    msg, result = run_tool_call(agent, call, user_id="alice")
    assert msg["role"] == "tool" and msg["tool_call_id"] == call.id
    assert isinstance(result, RecommendationResult), msg["content"]
    assert result.user_id == "alice" and result.recommendations
    assert result.recommendations[0].item.title in msg["content"]
