"""OpenTelemetry traces: off by default; with trace=True a root span per call, stage spans, LLM-call spans whose
token counts add up to the request's accounting, no user text on any span; the CLI's --trace writes them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from interestlens.agent.config import Settings
from interestlens.agent.service import InterestAgent

TEXT = "I adore hand-drawn animation. I can't stand zombie films."


@pytest.fixture(scope="module")
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # the application's provider: where a host's spans go
    yield exporter
    exporter.clear()


def _agent(tmp_path, embedder, demo_items, *, trace_on: bool, llm=None, **overrides) -> InterestAgent:
    a = InterestAgent(
        Settings(store=str(tmp_path / "store"), llm="none", trace=trace_on, **overrides), llm=llm, embedder=embedder
    )
    a.add_items(demo_items[:40])
    return a


def test_no_spans_unless_asked(tmp_path, embedder, demo_items, spans):
    spans.clear()
    with _agent(tmp_path, embedder, demo_items, trace_on=False) as a:
        a.observe("u1", [TEXT])
        a.recommend("u1", k=3)
    assert spans.get_finished_spans() == ()


def test_root_and_stage_spans_without_llm(tmp_path, embedder, demo_items, spans):
    with _agent(tmp_path, embedder, demo_items, trace_on=True) as a:
        spans.clear()
        a.observe("u1", [TEXT])
        a.recommend("u1", k=3)
    finished = spans.get_finished_spans()
    roots = {s.name: s for s in finished if s.parent is None}
    assert {"interestlens.observe", "interestlens.recommend"} <= set(roots)
    rec = roots["interestlens.recommend"]
    stages = [s for s in finished if s.parent is not None and s.parent.span_id == rec.context.span_id]
    assert "interestlens.stage.retrieve" in {s.name for s in stages}
    for s in stages:  # inside the call, laid end to end
        assert rec.start_time <= s.start_time <= s.end_time <= rec.end_time + 1_000_000
    assert rec.attributes["interestlens.llm_calls"] == 0 and rec.attributes["interestlens.user_id"] == "u1"
    for s in finished:  # ids and counts only: the user's words never leave on a span
        assert not any(isinstance(v, str) and ("animation" in v or "zombie" in v) for v in s.attributes.values())


@pytest.mark.slow
def test_llm_spans_add_up_to_the_request_accounting(tmp_path, embedder, demo_items, spans, tiny_llm):
    with _agent(tmp_path, embedder, demo_items, trace_on=True, llm=tiny_llm, use_llm_decompose=True) as a:
        spans.clear()
        result = a.observe("u1", [TEXT])
    finished = spans.get_finished_spans()
    root = next(s for s in finished if s.name == "interestlens.observe")
    calls = [s for s in finished if s.name == "interestlens.llm.generate"]
    assert len(calls) == result.stats.llm_calls >= 1  # every attempt, failed ones too, has its span
    assert all(c.context.trace_id == root.context.trace_id for c in calls)
    assert sum(c.attributes.get("llm.prompt_tokens", 0) for c in calls) == result.stats.prompt_tokens > 0
    assert sum(c.attributes.get("llm.completion_tokens", 0) for c in calls) == result.stats.completion_tokens
    assert root.attributes["interestlens.prompt_tokens"] == result.stats.prompt_tokens
    assert all(c.attributes["llm.prompt_version"] for c in calls)


def test_cli_trace_writes_json_lines(tmp_path, demo_items):
    catalog = tmp_path / "items.jsonl"
    catalog.write_text("".join(json.dumps(i.model_dump(mode="json")) + "\n" for i in demo_items[:30]))
    store, out = str(tmp_path / "store"), tmp_path / "trace.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}

    def cli(*argv: str) -> None:
        subprocess.run([sys.executable, "-m", "interestlens.tools.cli", "--store", store, "--llm", "none", *argv],
                       env=env, check=True, capture_output=True, text=True)

    cli("catalog", "add", str(catalog))
    cli("--trace", str(out), "observe", "-u", "u1", TEXT)
    names = [json.loads(line)["name"] for line in out.read_text().splitlines()]
    assert "interestlens.observe" in names and any(n.startswith("interestlens.stage.") for n in names)
