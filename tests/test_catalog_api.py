"""Catalog management (list, get, remove, count, search, CSV/JSONL, load_catalog) and `where` filters everywhere
(issue 13 items 4 and 5): real Chroma, MiniLM, the real CLI, OpenAI dispatch, LangChain and MCP surfaces."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import anyio
import pytest
from typer.testing import CliRunner

from interestlens.agent.config import Settings
from interestlens.agent.errors import InvalidInputError
from interestlens.agent.filters import parse_where
from interestlens.agent.service import InterestAgent
from interestlens.stores.catalog_files import read_catalog_csv
from interestlens.tools.cli import app
from interestlens.tools.langchain_tools import make_langchain_tools
from interestlens.tools.mcp_server import build_mcp_server
from interestlens.tools.openai_functions import dispatch_tool_call, run_tool_call

CSV = """id,title,text,domain,genres,year
f1,Arrival,Cerebral science fiction film about language.,film,Sci-Fi|Drama,2016
f2,The Shining,Horror film in a haunted hotel.,film,Horror,1980
b1,Dune,Desert planet epic science fiction novel.,book,Sci-Fi,1965
a1,Kind of Blue,Mellow modal jazz album.,music,Jazz,1959
"""


@pytest.fixture
def csv_path(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text(CSV, encoding="utf-8")
    return path


@pytest.fixture
def agent(tmp_path, embedder, csv_path):
    a = InterestAgent(Settings(store=str(tmp_path / "store"), llm="none"), llm=None, embedder=embedder)
    assert a.load_catalog(csv_path) == 4
    yield a
    a.close()


def test_csv_reader_types_and_errors(tmp_path, csv_path):
    items = {i.id: i for i in read_catalog_csv(csv_path)}
    assert items["f1"].metadata == {"domain": "film", "genres": ["Sci-Fi", "Drama"], "year": 2016}
    bad = tmp_path / "bad.csv"
    bad.write_text("title,text\nx,y\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="id"):
        read_catalog_csv(bad)
    bad.write_text("id,title,text\n,x,y\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"bad\.csv:2"):
        read_catalog_csv(bad)
    bad.write_bytes(b"id,title\n1,\xff\n")
    with pytest.raises(InvalidInputError, match="UTF-8"):
        read_catalog_csv(bad)


def test_list_get_count_search_remove(agent):
    page = agent.list_items(limit=2)
    assert page.total == 4 and len(page.items) == 2
    assert agent.list_items(limit=10, where={"domain": "film"}).total == 2
    assert agent.count_items().count == 4
    assert agent.count_items('{"year": {"$lt": 1970}}').count == 2
    got = agent.get_items(["b1", "nope"])
    assert [h.item.id for h in got.items] == ["b1"] and got.unknown_ids == ["nope"]
    hits = agent.search_items("haunted hotel horror", k=2)
    assert len(hits.items) == 2 and all(h.score is not None for h in hits.items)
    assert hits.items[0].score >= hits.items[1].score
    films = agent.search_items("science fiction", k=4, where={"domain": "film"})
    assert {h.item.metadata["domain"] for h in films.items} == {"film"}
    removed = agent.remove_items(["f2", "zzz"])
    assert removed.removed == ["f2"] and removed.unknown == ["zzz"]
    assert agent.count_items().count == 3 and not agent.get_items(["f2"]).items


@pytest.mark.parametrize(
    "where", ["{", "[1]", '{"a": {"$foo": 1}}', '{"$and": 3}', '{"a": [1]}', '{"year": {"$gt": "x"}}',
              '{"$not": {"a": 1}}'],
)
def test_bad_where_is_a_clear_error(agent, where):
    with pytest.raises(InvalidInputError, match="where"):
        parse_where(where)
    with pytest.raises(InvalidInputError, match="where"):
        agent.recommend("u", "a film", where=where)


def test_where_filters_recommend(agent):
    agent.observe("alice", ["I love science fiction."])
    recs = agent.recommend("alice", "something for tonight", k=4, where='{"domain": "film"}').recommendations
    assert recs and {r.item.metadata["domain"] for r in recs} == {"film"}


def test_empty_catalog_warns(tmp_path, embedder):
    with InterestAgent(Settings(store=str(tmp_path / "empty"), llm="none"), llm=None, embedder=embedder) as a:
        a.observe("u", ["I love jazz."])
        result = a.recommend("u", k=3)
    assert result.recommendations == [] and any("catalog is empty" in w for w in result.stats.warnings)


def test_catalog_and_where_on_tool_surfaces(agent):
    # OpenAI (unbound: admin allowed)
    msg, page = run_tool_call(agent, {"id": "1", "function": {"name": "catalog_search", "arguments": json.dumps(
        {"query": "jazz", "k": 1, "where": '{"domain": "music"}'})}})
    assert page is not None and page.items[0].item.id == "a1", msg
    bad = dispatch_tool_call(agent, {"id": "2", "function": {"name": "recommend", "arguments": json.dumps(
        {"user_id": "x", "context": "film", "k": 3, "expand": None, "where": '{"a": {"$foo": 1}}'})}})
    assert bad["content"].startswith("error:") and "$foo" in bad["content"]
    # a user-bound session cannot administer the catalog
    refused = dispatch_tool_call(agent, {"id": "3", "function": {"name": "catalog_remove", "arguments": json.dumps(
        {"item_ids": ["a1"]})}}, user_id="alice")
    assert refused["content"].startswith("error:") and agent.count_items().count == 4
    # LangChain
    tools = {t.name: t for t in make_langchain_tools(agent, user_id="alice")}
    assert "catalog_remove" not in tools
    out = tools["catalog_count"].invoke({"type": "tool_call", "id": "4", "name": "catalog_count",
                                         "args": {"where": '{"domain": "film"}'}})
    assert out.artifact.count == 2
    # MCP
    mcp = build_mcp_server(lambda: agent)

    async def go():
        return await mcp.call_tool("catalog_get", {"item_ids": ["b1"]})

    result = anyio.run(go)
    assert "Dune" in json.dumps(result, default=str)


def test_catalog_cli(tmp_path, csv_path):
    store = str(tmp_path / "cli")
    runner = CliRunner()
    base = ["--store", store, "--llm", "none"]

    def run(*args: str) -> dict:
        r = runner.invoke(app, [*base, *args, "--json"])
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)

    assert run("catalog", "add", str(csv_path))["items_written"] == 4
    assert run("catalog", "count")["count"] == 4
    assert run("catalog", "count", "--where", '{"domain": "film"}')["count"] == 2
    assert run("catalog", "list", "--limit", "1")["total"] == 4
    assert run("catalog", "get", "b1")["items"][0]["item"]["title"] == "Dune"
    assert run("catalog", "search", "jazz album", "-k", "1")["items"][0]["item"]["id"] == "a1"
    assert run("catalog", "remove", "a1")["removed"] == ["a1"]
    run("observe", "--user", "u", "I love science fiction.")
    recs = run("recommend", "--user", "u", "--where", '{"domain": "book"}', "-k", "3")["recommendations"]
    assert [r["item"]["id"] for r in recs] == ["b1"]
    # a malformed filter is one error line and exit 2, in the real console entry point
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    p = subprocess.run([sys.executable, "-m", "interestlens.tools.cli", *base, "recommend", "--user", "u",
                        "--where", "{bad"], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2 and p.stderr.strip().startswith("error:") and "where" in p.stderr
