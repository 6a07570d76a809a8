"""OpenAI function calling: strict specs from the registry, dispatch that never raises, a real server."""

from __future__ import annotations

import json

import pytest

from interestlens.agent.errors import InvalidInputError
from interestlens.agent.models import RecommendationResult
from interestlens.tools.openai_functions import (
    dispatch_tool_call,
    openai_tool_specs,
    response_tool_specs,
    run_response_item,
    run_tool_call,
)
from interestlens.tools.specs import TOOLS, USER_TOOLS

ALICE = "I love slow-burn science fiction like Interstellar, where space feels huge and lonely."
BOB = "Korean home cooking is how I unwind: kimchi jjigae every week, japchae next."


@pytest.fixture(scope="module")
def agent(tmp_path_factory, embedder, demo_items):
    from interestlens.agent.config import Settings
    from interestlens.agent.service import InterestAgent

    a = InterestAgent(Settings(store=str(tmp_path_factory.mktemp("store")), llm="none"), llm=None, embedder=embedder)
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
    specs = openai_tool_specs(user_bound=user_bound, prefix="", include=[t.name for t in TOOLS])
    # every registry verb when asked for; a user-bound session gets no catalog administration (helper D)
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
    messages = [
        {"role": "system", "content": "You are a recommendation assistant. Use the tools."},
        {"role": "user", "content": "Recommend 5 science fiction films for me."},
    ]
    tools = openai_tool_specs(user_bound=True)
    resp = client.chat.completions.create(
        model="local",
        messages=messages,
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "interestlens_recommend"}},  # a 135M model must be told
        temperature=0,
        max_tokens=120,
    )
    call = resp.choices[0].message.tool_calls[0]
    assert call.function.name == "interestlens_recommend"
    msg, result = run_tool_call(agent, call, user_id="alice")
    assert msg["role"] == "tool" and msg["tool_call_id"] == call.id
    assert isinstance(result, RecommendationResult), msg["content"]
    assert result.user_id == "alice" and result.recommendations
    assert result.recommendations[0].item.title in msg["content"]
    # The README loop: the assistant's tool_calls message, then the tool message, then the model answers.
    assistant = resp.choices[0].message
    messages += [
        {
            "role": "assistant",
            "content": assistant.content or "",
            "tool_calls": [c.model_dump() for c in assistant.tool_calls],
        },
        msg,
    ]
    final = client.chat.completions.create(
        model="local", messages=messages, tools=tools, tool_choice="none", temperature=0, max_tokens=24
    )
    assert final.choices[0].message.tool_calls in (None, [])


def test_default_specs_are_prefixed_and_leave_destructive_verbs_out():
    names = [s["function"]["name"] for s in openai_tool_specs()]
    assert all(n.startswith("interestlens_") for n in names)
    assert "interestlens_recommend" in names and "interestlens_forget" not in names
    assert "interestlens_catalog_remove" not in names
    chosen = openai_tool_specs(include=["recommend", "forget"], prefix="il_")
    assert [s["function"]["name"] for s in chosen] == ["il_recommend", "il_forget"]
    with pytest.raises(InvalidInputError, match="teleport"):
        openai_tool_specs(include=["teleport"])
    flat = response_tool_specs(include=["profile"])
    assert flat[0]["type"] == "function" and flat[0]["name"] == "interestlens_profile" and flat[0]["strict"]


def test_responses_api_function_call_items(agent):
    """A Responses API `function_call` item in, a `function_call_output` item out (prefixed name)."""
    item = {
        "type": "function_call",
        "call_id": "fc_1",
        "name": "interestlens_profile",
        "arguments": json.dumps({"user_id": "alice"}),
    }
    out = run_response_item(agent, item)
    assert out["type"] == "function_call_output" and out["call_id"] == "fc_1" and "alice" in out["output"]
    bound = run_response_item(agent, {**item, "arguments": json.dumps({"user_id": "bob"})}, user_id="alice")
    assert bound["output"].startswith("error:") and "bound" in bound["output"]
    with pytest.raises(InvalidInputError):
        run_response_item(agent, {"type": "message", "content": []})
