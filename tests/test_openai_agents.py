"""OpenAI Agents SDK tools: the SDK's own Runner drives interestlens through a real local llama.cpp server."""

from __future__ import annotations

import json
import re

import pytest
from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
from openai import AsyncOpenAI

from interestlens.agent.config import Settings
from interestlens.agent.errors import UnknownIdError
from interestlens.agent.service import InterestAgent
from interestlens.tools.openai_agents import agents_sdk_tools

ALICE = "I love slow-burn science fiction like Interstellar, where space feels huge and lonely."
BOB = "Korean home cooking is how I unwind: kimchi jjigae every week, japchae next."

set_tracing_disabled(True)  # the SDK's default trace exporter posts to a hosted endpoint
pytestmark = pytest.mark.anyio  # the SDK is async; anyio's pytest plugin runs these on asyncio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def il_agent(tmp_path_factory, embedder, demo_items):
    a = InterestAgent(Settings(store=str(tmp_path_factory.mktemp("store")), llm="none"), llm=None, embedder=embedder)
    a.add_items(demo_items[:80])
    a.observe("alice", [ALICE])
    a.observe("bob", [BOB])
    yield a
    a.close()


def test_tools_are_prefixed_strict_and_destructive_ones_opt_in(il_agent):
    tools = agents_sdk_tools(il_agent, user_id="alice")
    names = {t.name for t in tools}
    assert "interestlens_recommend" in names and "interestlens_forget" not in names
    assert all(t.strict_json_schema and t.params_json_schema["additionalProperties"] is False for t in tools)
    assert all("user_id" not in t.params_json_schema["properties"] for t in tools)  # bound: the host supplies it
    forget = agents_sdk_tools(il_agent, user_id="alice", include=["forget", "profile"])
    assert {t.name: t.needs_approval for t in forget} == {"interestlens_profile": False, "interestlens_forget": True}


@pytest.fixture
async def client(llama_server):
    async with AsyncOpenAI(base_url=llama_server, api_key="x") as c:  # closed inside the test's event loop
        yield c


def _sdk_agent(client: AsyncOpenAI, tools, choice: str) -> Agent:
    model = OpenAIChatCompletionsModel(model="local", openai_client=client)
    return Agent(
        name="recommender",
        instructions="You are a recommendation assistant. Use the tools.",
        model=model,
        tools=tools,
        model_settings=ModelSettings(tool_choice=choice, temperature=0, max_tokens=120),  # a 135M model must be told
        tool_use_behavior="stop_on_first_tool",  # the tool's text is the run's output: no free-form answer to judge
    )


@pytest.mark.slow
async def test_runner_calls_recommend_bound_to_one_user(il_agent, client):
    sdk_agent = _sdk_agent(client, agents_sdk_tools(il_agent, user_id="alice"), "interestlens_recommend")
    result = await Runner.run(sdk_agent, "Recommend 5 science fiction films for me.", max_turns=2)
    out = result.final_output
    assert isinstance(out, str) and not out.startswith("error"), out
    assert out.startswith("Recommendations for alice")  # the model's arguments vary by CPU; the binding does not
    ids = re.findall(r"\[(mov-\d+)\]", out)
    assert ids and not il_agent.get_items(ids).unknown_ids  # catalog items, listed as the registry renders them
    assert "kimchi" not in out.lower()  # bob's profile never reaches alice's session


@pytest.mark.slow
async def test_forget_waits_for_approval_then_runs(il_agent, client):
    il_agent.observe("carol", ["I enjoy quiet jazz records on rainy evenings."])
    tools = agents_sdk_tools(il_agent, user_id="carol", include=["forget"])
    sdk_agent = _sdk_agent(client, tools, "interestlens_forget")
    result = await Runner.run(sdk_agent, "Forget everything about me.", max_turns=2)
    assert [i.name for i in result.interruptions] == ["interestlens_forget"]
    assert il_agent.profile("carol").interests  # nothing deleted before the host approved
    state = result.to_state()
    state.approve(result.interruptions[0])
    resumed = await Runner.run(sdk_agent, state, max_turns=2)
    assert not resumed.interruptions and not str(resumed.final_output).startswith("error"), resumed.final_output
    with pytest.raises(UnknownIdError):  # forgotten: the user is gone
        il_agent.profile("carol")


async def test_bad_arguments_come_back_as_text(il_agent):
    from agents.tool_context import ToolContext

    tool = next(t for t in agents_sdk_tools(il_agent, user_id="alice") if t.name == "interestlens_recommend")
    ctx = ToolContext(context=None, tool_name=tool.name, tool_call_id="c1", tool_arguments="{}")
    out = await tool.on_invoke_tool(ctx, json.dumps({"k": "five"}))
    assert out.startswith("error") and "k" in out


@pytest.mark.slow
async def test_responses_items_round_trip_through_the_sdk(il_agent, client):
    """Responses API items for real: the SDK turns the model's tool call into a `function_call` item,
    `run_response_item` answers it with a `function_call_output` item, the SDK converts both back to chat
    messages, and the model answers them."""
    from agents.models.chatcmpl_converter import Converter
    from openai.types.responses import ResponseFunctionToolCall

    from interestlens.tools.openai_functions import run_response_item

    tools = agents_sdk_tools(il_agent, user_id="alice")
    first = await Runner.run(_sdk_agent(client, tools, "interestlens_profile"), "What do you know about me?",
                             max_turns=2)
    call = next(i.raw_item for i in first.new_items if i.type == "tool_call_item")
    assert isinstance(call, ResponseFunctionToolCall) and call.name == "interestlens_profile"
    output = run_response_item(il_agent, call, user_id="alice")
    assert output["type"] == "function_call_output" and output["call_id"] == call.call_id
    assert output["output"].startswith("Profile of alice")
    turn = [{"role": "user", "content": "What do you know about me?"}, call.model_dump(exclude_none=True), output]
    messages = Converter.items_to_messages(turn)  # the SDK's own Responses-items -> chat messages conversion
    assert messages[-1]["role"] == "tool" and messages[-1]["tool_call_id"] == call.call_id
    for m in messages:  # llama-cpp-python's server refuses content null beside tool_calls (OpenAI accepts it)
        if m.get("content") is None:
            m["content"] = ""
    final = await client.chat.completions.create(model="local", messages=messages, temperature=0, max_tokens=24)
    assert final.choices[0].message.role == "assistant"
