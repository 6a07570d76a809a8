"""Prompt-behaviour suites: YAML cases run against one pipeline stage, asserting what the system guarantees.

A suite file is a list of cases (or `{cases: [...]}`):
```yaml
- id: dislike-horror
  stage: decompose            # decompose | compose | recommend
  texts: ["I love sci-fi but I can't stand horror."]
  context: null               # the request (compose / recommend)
  catalog: demo               # "demo" (packaged catalog) or a list of inline items; omitted -> demo
  other_users: {u2: ["text"]} # observed first as other users (hostile: their data must never leak)
  requires: capable-llm       # optional: skipped with the default tiny model
  threshold: 0.55             # optional: similarity for must_find / must_not_find / polarity
  assertions:
    must_find: [science fiction]
    must_not_find: [cooking]
    polarity: {horror: dislike}
    evidence_substrings: true
    intents: {min: 1, max: 4}
    justification_cites_evidence: true
    include_category: {domain: movie}
    exclude_category: {domain: podcast}
    ids_valid: true           # every id from the catalog (and candidates), no duplicates, no history
    no_other_user_data: true
    schema_valid: true
    judge: {rubric: "..."}    # LLM-as-judge (prompts/judge.j2); needs a capable model to mean anything
```
An individual assertion may be marked as needing a capable model by listing its name under
`requires_capable: [must_find, judge]`. Such assertions (and whole cases with `requires: capable-llm`) are
skipped unless the configured LLM is not the packaged default.

Suites are addressed by a packaged suite's name (`hostile` -> evals/suites/hostile.yaml) or by a file path. On the
packaged LLM a suite runs for minutes, so `run_suite(progress=True)` prints one line per case on stderr, and
`junit_path` writes JUnit XML (xml.etree: no dependency) for CI systems that read test reports.
`call_stage` is the entry point for external tools; evals/promptfoo_provider.py is the shipped promptfoo provider.

Where the parts are: the case model and loading in evals/suite_cases.py, running a stage in evals/stage_runner.py,
the checks (one per assertion) in evals/suite_checks.py, progress, table and JUnit XML in evals/suite_report.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from interestlens.agent.config import Settings
from interestlens.agent.errors import InterestLensError, InvalidInputError
from interestlens.agent.models import StageStats, content_hash
from interestlens.evals.stage_runner import StageRunner
from interestlens.evals.suite_cases import (
    CAPABLE,
    DEFAULT_LLM,
    AssertionResult,
    SuiteCase,
    SuiteReport,
    load_suite,
    suite_name,
    validation_message,
)
from interestlens.evals.suite_checks import check_case
from interestlens.evals.suite_report import case_status, print_progress, print_report, write_junit

_RUNNERS: dict[str, StageRunner] = {}

STAGES: tuple[str, ...] = ("decompose", "compose", "recommend")
# the SuiteCase fields that describe a stage call (the rest: assertions, requires, threshold... belong to suites)
STAGE_FIELDS: tuple[str, ...] = ("id", "texts", "context", "history", "catalog", "candidate_ids", "k", "other_users")


def call_stage(stage: str, payload: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """Run one stage for an external evaluation tool; `payload` holds STAGE_FIELDS (texts, context, k, ...).

    Returns {"stage", "profile", "sources", "intents"?, "result"?, "stats"}. Runners are cached per settings.
    An unknown stage, an unknown payload field or an invalid value raises InvalidInputError naming it; callers
    that receive extra fields of their own (promptfoo's `__evalId`...) drop them first
    (evals/promptfoo_provider.py).
    """
    if stage not in STAGES:
        raise InvalidInputError(f"unknown stage {stage!r} (one of: {', '.join(STAGES)})")
    unknown = sorted(set(payload) - set(STAGE_FIELDS))
    if unknown:
        raise InvalidInputError(f"unknown field(s) {', '.join(unknown)} (stage fields: {', '.join(STAGE_FIELDS)})")
    body = {k: v for k, v in payload.items() if k != "id"}
    try:
        case = SuiteCase.model_validate(
            {"id": payload.get("id") or content_hash(json.dumps(body, default=str)), "stage": stage, **body}
        )
    except ValidationError as e:
        raise InvalidInputError(validation_message(e)) from e
    settings = settings or Settings()
    key = settings.model_dump_json()
    if key not in _RUNNERS:
        _RUNNERS[key] = StageRunner(settings)
    return _RUNNERS[key].run(case)


def run_suite(
    path: str | Path,
    settings: Settings | None = None,
    out_path: str | Path | None = None,
    *,
    print_table: bool = True,
    runner: StageRunner | None = None,
    progress: bool = False,
    junit_path: str | Path | None = None,
) -> SuiteReport:
    """Run every case of a suite (a file path or a packaged suite's name); prints a rich table, writes JSON to
    `out_path` and JUnit XML to `junit_path` when given. `progress` prints one line per case on stderr
    (`[3/8] case-id ... ok 1.2s`): a suite on the packaged LLM runs for minutes."""
    settings = settings or Settings()
    cases = load_suite(path)
    capable = settings.llm not in (DEFAULT_LLM, "none", "")
    own_runner = runner is None
    started = time.perf_counter()
    if progress:
        print_progress(f"{suite_name(path)}: {len(cases)} cases (llm: {settings.llm})")
    runner = runner or StageRunner(settings)
    results: list[AssertionResult] = []
    seconds: dict[str, float] = {}
    totals = StageStats()
    try:
        for n, case in enumerate(cases, start=1):
            t0 = time.perf_counter()
            if progress:
                print_progress(f"[{n}/{len(cases)}] {case.id} ...", end="")
            case_results = _run_case(runner, case, capable, totals)
            seconds[case.id] = round(time.perf_counter() - t0, 3)
            results.extend(case_results)
            if progress:
                failed = [r.assertion for r in case_results if r.status in ("fail", "error")]
                print_progress(
                    f" {case_status(case_results)} {seconds[case.id]:.1f}s"
                    + (f" ({', '.join(failed)})" if failed else "")
                )
    finally:
        if own_runner:
            runner.close()
    report = SuiteReport(
        suite=str(path),
        llm=settings.llm,
        results=results,
        stats={
            "llm_calls": totals.llm_calls,
            "invalid_outputs": totals.invalid_outputs,
            "fallbacks": totals.fallbacks,
            "dropped_ungrounded": totals.dropped_ungrounded,
        },
        case_seconds=seconds,
        seconds=round(time.perf_counter() - started, 3),
    )
    report.stats.update(report.counts())
    if print_table:
        print_report(report)
    if out_path is not None:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        Path(out_path).write_text(report.model_dump_json(indent=2) + "\n")
    if junit_path is not None:
        write_junit(report, junit_path)
    return report


def _run_case(runner: StageRunner, case: SuiteCase, capable: bool, totals: StageStats) -> list[AssertionResult]:
    if case.requires == CAPABLE and not capable:
        return [AssertionResult(case_id=case.id, assertion="*", status="skip", detail=f"case requires {CAPABLE}")]
    try:
        out = runner.run(case)
    except InterestLensError as e:
        return [AssertionResult(case_id=case.id, assertion="run", status="error", detail=str(e)[:300])]
    totals.add(StageStats.model_validate(out["stats"]))
    return check_case(runner, case, out, capable)
