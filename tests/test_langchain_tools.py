"""LangChain tools from the registry, inside a real LangChain agent loop against a real llama.cpp server."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, ToolMessage

from interestlens.agent.models import InterestProfile, RecommendationResult
from interestlens.tools.langchain_tools import make_langchain_tools
from interestlens.tools.specs import TOOLS

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


def test_tools_return_text_and_artifact(agent):
    tools = {t.name: t for t in make_langchain_tools(agent)}
    assert set(tools) == {t.name for t in TOOLS}  # every registry verb (helper D added memory/catalog verbs)
    msg = tools["recommend"].invoke(
        {"type": "tool_call", "id": "c1", "name": "recommend", "args": {"user_id": "alice", "k": 3}}
    )
    assert isinstance(msg, ToolMessage) and isinstance(msg.artifact, RecommendationResult)
    assert msg.content.startswith("Recommendations for alice") and len(msg.artifact.recommendations) <= 3
    bad = tools["recommend"].invoke(
        {"type": "tool_call", "id": "c2", "name": "recommend", "args": {"user_id": "alice", "k": 500}}
    )
    # The validation error goes back to the model as the tool message.
    assert bad.content.startswith("error: invalid arguments for recommend: k:") and bad.artifact is None


def test_user_bound_tools_cannot_reach_other_users(agent):
    tools = {t.name: t for t in make_langchain_tools(agent, user_id="alice")}
    assert "user_id" not in tools["profile"].tool_call_schema.model_json_schema().get("properties", {})
    msg = tools["profile"].invoke({"type": "tool_call", "id": "c1", "name": "profile", "args": {}})
    assert isinstance(msg.artifact, InterestProfile) and msg.artifact.user_id == "alice"
    assert all(span.text in ALICE for i in msg.artifact.interests for span in i.evidence)


def _force_then_answer(tool_name: str):
    """Agent middleware: force the first step to call `tool_name`, then answer from its result as text."""
    from langchain.agents.middleware import wrap_model_call

    @wrap_model_call
    def middleware(request, handler):
        results = [m for m in request.messages if isinstance(m, ToolMessage)]
        if not results:
            # A 135M model picks tools poorly: force the first step deterministically.
            return handler(request.override(tool_choice=tool_name))
        # llama_cpp.server rejects assistant messages whose content is null (how tool-call turns are
        # sent), so the final answer sees the tool result as text.
        question = next(m for m in request.messages if isinstance(m, HumanMessage))
        recap = HumanMessage(f"{question.content}\n\nTool results:\n{results[-1].content}\n\nAnswer briefly.")
        return handler(request.override(messages=[recap], tools=[], tool_choice=None))

    return middleware


@pytest.mark.slow
def test_langchain_agent_loop_calls_recommend(agent, llama_server):
    from langchain.agents import create_agent
    from langchain_openai import ChatOpenAI

    force_recommend_then_answer = _force_then_answer("recommend")
    model = ChatOpenAI(base_url=llama_server, api_key="unused", model="local", temperature=0, max_tokens=80)
    graph = create_agent(
        model, make_langchain_tools(agent, user_id="alice"), middleware=[force_recommend_then_answer]
    )
    out = graph.invoke({"messages": [HumanMessage("Recommend some films for me.")]})
    tool_msgs = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert len(tool_msgs) == 1 and tool_msgs[0].name == "recommend"
    artifact = tool_msgs[0].artifact
    assert isinstance(artifact, RecommendationResult), tool_msgs[0].content
    assert artifact.user_id == "alice" and artifact.recommendations
    assert out["messages"][-1].type == "ai"


def test_retriever_returns_documents_with_why(agent):
    from interestlens.tools.langchain_retriever import InterestLensRetriever

    docs = InterestLensRetriever(agent=agent, user_id="alice", k=3).invoke("a film for tonight")
    assert 0 < len(docs) <= 3
    for d in docs:
        assert d.page_content and d.metadata["item_id"] == d.id and d.metadata["user_id"] == "alice"
        assert d.metadata["justification"] and isinstance(d.metadata["intents"], list)
        assert all(quote in ALICE for quote in d.metadata["evidence"])  # alice's words, never bob's
    with pytest.raises(Exception, match="user"):
        InterestLensRetriever(agent=agent, user_id="bad id\n", k=3)


@pytest.mark.slow
def test_langchain_agent_loop_with_the_retriever(agent, llama_server, demo_items):
    from langchain.agents import create_agent
    from langchain_core.tools import create_retriever_tool
    from langchain_openai import ChatOpenAI

    from interestlens.tools.langchain_retriever import InterestLensRetriever

    tool = create_retriever_tool(
        InterestLensRetriever(agent=agent, user_id="alice", k=3), "find_items",
        "Items for this user; the query is the situation.",
    )

    force_then_answer = _force_then_answer("find_items")
    model = ChatOpenAI(base_url=llama_server, api_key="unused", model="local", temperature=0, max_tokens=60)
    out = create_agent(model, [tool], middleware=[force_then_answer]).invoke(
        {"messages": [HumanMessage("Find me something to watch tonight.")]}
    )
    tool_msgs = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert len(tool_msgs) == 1 and tool_msgs[0].name == "find_items"
    # Whatever query the model wrote, the tool result is catalog items' text (the design, not the model's words).
    assert any(it.text[:40] in tool_msgs[0].content for it in demo_items[:80])
    assert out["messages"][-1].type == "ai"


def test_langgraph_store_over_profiles(agent):
    """The BaseStore adapter: put observes, search ranks the user's interests, get/delete by interest id, and a
    compiled LangGraph graph reads it through its runtime store."""
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph
    from langgraph.store.base import BaseStore

    from interestlens.tools.langgraph_store import InterestLensStore

    store = InterestLensStore(agent)
    ns = ("interestlens", "carol")
    store.put(ns, "ignored", {"text": "I adore mellow late-night jazz records. I can't stand horror movies."})
    found = store.search(ns, query="jazz music")
    assert found and "jazz" in found[0].value["name"].lower() and found[0].score is not None
    dislikes = store.search(ns, filter={"polarity": "dislike"})
    assert dislikes and all(d.value["polarity"] == "dislike" for d in dislikes)
    one = store.get(ns, found[0].key)
    assert one is not None and one.value["evidence"][0]["text"] in "I adore mellow late-night jazz records."
    assert ("interestlens", "carol") in store.list_namespaces()
    store.delete(ns, dislikes[0].key)
    assert store.get(ns, dislikes[0].key) is None
    assert store.search(("interestlens", "nobody-yet")) == []
    with pytest.raises(Exception, match="namespace"):
        store.search(("memories", "carol"))

    class State(TypedDict):
        topic: str
        names: list[str]

    def recall(state: State, *, store: BaseStore) -> dict:
        return {"names": [i.value["name"] for i in store.search(ns, query=state["topic"], limit=2)]}

    graph = StateGraph(State)
    graph.add_node("recall", recall)
    graph.add_edge(START, "recall")
    graph.add_edge("recall", END)
    out = graph.compile(store=store).invoke({"topic": "jazz", "names": []})
    assert out["names"] and "jazz" in out["names"][0].lower()


@pytest.mark.slow
def test_langgraph_memory_loop_with_a_real_model(agent, llama_server):
    """The LangGraph memory pattern on a real llama.cpp model: a node writes the user's message to the store
    (observe), the next recalls the user's interests from it, and the model answers with them in its
    instructions. Asserted: what reached the model and the store, never what the model wrote."""
    from typing import TypedDict

    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.messages import AIMessage, SystemMessage
    from langchain_openai import ChatOpenAI
    from langgraph.graph import END, START, StateGraph
    from langgraph.store.base import BaseStore

    from interestlens.tools.langgraph_store import InterestLensStore

    class Seen(BaseCallbackHandler):
        def __init__(self) -> None:
            self.prompts: list[str] = []

        def on_chat_model_start(self, serialized, messages, **kwargs):
            self.prompts.extend(m.content for batch in messages for m in batch)

    seen = Seen()
    model = ChatOpenAI(base_url=llama_server, api_key="unused", model="local", temperature=0, max_tokens=40)

    class State(TypedDict):
        user: str
        message: str
        recalled: list[str]
        answer: str

    def remember(state: State, *, store: BaseStore) -> dict:
        store.put(("interestlens", state["user"]), "msg-1", {"text": state["message"]})
        return {}

    def recall(state: State, *, store: BaseStore) -> dict:
        found = store.search(("interestlens", state["user"]), query=state["message"], limit=3)
        return {"recalled": [f"{i.value['polarity']}: {i.value['name']}" for i in found]}

    def respond(state: State) -> dict:
        system = "The user's interests: " + "; ".join(state["recalled"]) + ". Suggest one film in a sentence."
        reply = model.invoke([SystemMessage(system), HumanMessage(state["message"])], config={"callbacks": [seen]})
        assert isinstance(reply, AIMessage)
        return {"answer": str(reply.content)}

    graph = StateGraph(State)
    for name, fn in (("remember", remember), ("recall", recall), ("respond", respond)):
        graph.add_node(name, fn)
    graph.add_edge(START, "remember")
    graph.add_edge("remember", "recall")
    graph.add_edge("recall", "respond")
    graph.add_edge("respond", END)
    text = "I adore heist films with clever plans. I can't stand gory horror."
    out = graph.compile(store=InterestLensStore(agent)).invoke({"user": "dana", "message": text, "recalled": []})
    names = {i.name for i in agent.profile("dana").interests}
    assert names and out["recalled"]  # the message became interests, and the store gave them back
    assert all(r.split(": ", 1)[1] in names for r in out["recalled"])
    assert any(all(r in p for r in out["recalled"]) for p in seen.prompts)  # the model saw what was recalled
    assert isinstance(out["answer"], str)
