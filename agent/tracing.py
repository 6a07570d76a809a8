"""Optional OpenTelemetry traces: one span per agent call, stage spans, one span per LLM call. Off by default.

With `Settings(trace=True)` (`INTERESTLENS_TRACE=1`, the CLI's `--trace`) each public agent call (observe,
recommend, ...) becomes a root span `interestlens.<verb>` carrying the request's totals (LLM calls, prompt and
completion tokens, fallbacks), with a child span per stage whose duration is the stage latency the request
measured (`StageStats.latency_ms`; stages run one after another, so they are laid end to end from the call's
start), and a real child span per LLM call (`interestlens.llm.generate`, `interestlens.llm.score_labels`) with
model, template version and tokens.
Spans go to the application's global TracerProvider (a host that set up OpenTelemetry gets them there);
`enable_tracing(target)` installs one for the CLI's `--trace`: "console" (stderr), "otlp" (the OTEL_EXPORTER_OTLP_*
settings), or a file path (one JSON span per line). No user text is put on a span: ids and counts only.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from opentelemetry import trace

from interestlens.agent.version import __version__

F = TypeVar("F", bound=Callable[..., Any])
_TRACER_NAME = "interestlens"


def tracer() -> trace.Tracer:
    return trace.get_tracer(_TRACER_NAME)


@contextlib.contextmanager
def llm_span(kind: str, *, model_id: str, version: str | None = None) -> Iterator[dict[str, Any]]:
    """A span around one LLM call; the caller fills the yielded dict (tokens, outcome) before it closes."""
    attrs: dict[str, Any] = {}
    if not trace.get_current_span().is_recording():  # only inside a traced agent call
        yield attrs
        return
    with tracer().start_as_current_span(f"interestlens.llm.{kind}") as span:
        span.set_attribute("llm.model", model_id)
        if version:
            span.set_attribute("llm.prompt_version", version)
        try:
            yield attrs
        finally:
            for key, value in attrs.items():
                span.set_attribute(f"llm.{key}", value)


def _stats_of(result: Any) -> Any:
    return getattr(result, "stats", None)


def traced(verb: str) -> Callable[[F], F]:
    """Decorate an agent method: a root span per call, stage spans and totals from the result's StageStats."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not getattr(getattr(self, "settings", None), "trace", False):
                return fn(self, *args, **kwargs)
            start_ns = time.time_ns()
            with tracer().start_as_current_span(f"interestlens.{verb}", start_time=start_ns) as span:
                if args and isinstance(args[0], str):
                    span.set_attribute("interestlens.user_id", args[0])  # an id, never the user's text
                result = fn(self, *args, **kwargs)
                stats = _stats_of(result)
                if stats is not None:
                    _record(span, stats, start_ns)
                return result

        return cast(F, run)

    return wrap


def _record(span: trace.Span, stats: Any, start_ns: int) -> None:
    for key in ("llm_calls", "prompt_tokens", "completion_tokens", "invalid_outputs", "fallbacks"):
        span.set_attribute(f"interestlens.{key}", int(getattr(stats, key, 0)))
    if stats.warnings:
        span.set_attribute("interestlens.warnings", len(stats.warnings))
    t = start_ns
    for stage, ms in stats.latency_ms.items():
        if stage in ("total", "compose_total"):  # sums of other stages, not stages of their own
            continue
        end = t + int(ms * 1e6)
        child = tracer().start_span(f"interestlens.stage.{stage}", start_time=t)
        child.set_attribute("interestlens.latency_ms", float(ms))
        child.end(end_time=end)
        t = end


class JsonLinesExporter:
    """A SpanExporter writing one JSON object per finished span to a file (appending)."""

    def __init__(self, path: str | Path) -> None:
        self._file = Path(path).open("a", encoding="utf-8")  # noqa: SIM115 - lives as long as the exporter

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        for s in spans:
            self._file.write(json.dumps(json.loads(s.to_json()), separators=(",", ":")) + "\n")
        self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._file.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self._file.flush()
        return True


def enable_tracing(target: str) -> None:
    """Install the global TracerProvider, exporting to `target` ("console" | "otlp" | a file path). Agents
    trace only with Settings(trace=True)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    if target == "console":
        exporter: Any = ConsoleSpanExporter(out=sys.stderr)
    elif target == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        exporter = JsonLinesExporter(target)
    resource = Resource.create({"service.name": "interestlens", "service.version": __version__})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # a CLI call is short: export as spans end
    trace.set_tracer_provider(provider)
