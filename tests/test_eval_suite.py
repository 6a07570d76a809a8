"""Prompt-behaviour suites: packaged suites pass with the default tiny model; assertions catch failures."""

from __future__ import annotations

import json

import pytest

from interestlens.agent.config import Settings
from interestlens.agent.errors import InvalidInputError
from interestlens.evals.suite import (
    StageRunner,
    SuiteCase,
    call_stage,
    check_case,
    load_suite,
    packaged_suites,
    run_suite,
)


@pytest.fixture(scope="module")
def runner():
    r = StageRunner(Settings(llm="smollm2", n_ctx=2048))
    yield r
    r.close()


def test_packaged_suites_load():
    assert {"decomposition.yaml", "composition.yaml", "hostile.yaml"} <= set(packaged_suites())
    for name in ("decomposition", "composition", "hostile"):
        cases = load_suite(name)
        assert cases and all(c.assertions for c in cases)


@pytest.mark.slow
@pytest.mark.parametrize("suite", ["decomposition", "composition", "hostile"])
def test_packaged_suite_passes_with_default_model(suite, runner, tmp_path):
    out = tmp_path / f"{suite}.json"
    report = run_suite(suite, Settings(llm="smollm2", n_ctx=2048), out, runner=runner)
    failures = [r for r in report.results if r.status in ("fail", "error")]
    assert not failures, failures
    assert report.counts()["pass"] > 0
    saved = json.loads(out.read_text())
    assert saved["results"] and saved["llm"] == "smollm2"
    # assertions that need a capable model are reported as skipped, not silently dropped
    if suite == "decomposition":
        assert any(r.status == "skip" for r in report.results)


@pytest.mark.slow
def test_assertions_detect_violations(runner):
    case = SuiteCase.model_validate(
        {
            "id": "detector",
            "stage": "decompose",
            "texts": ["I love jazz piano. I can't stand horror movies."],
            "assertions": {
                "must_find": ["quantum chromodynamics"],
                "polarity": {"horror movies": "like"},
                "evidence_substrings": True,
            },
        }
    )
    out = runner.run(case)
    results = {r.assertion.split(":")[0]: r.status for r in check_case(runner, case, out, capable=False)}
    assert results["must_find"] == "fail"
    assert results["polarity"] == "fail"
    assert results["evidence_substrings"] == "pass"
    # tampered evidence is caught
    tampered = json.loads(json.dumps(out))
    span = next(e for i in tampered["profile"]["interests"] for e in i["evidence"])
    span["text"] = span["text"] + " (invented)"
    res = check_case(
        runner,
        case.model_copy(
            update={"assertions": case.assertions.model_copy(update={"must_find": [], "polarity": {}})}
        ),
        tampered,
        capable=False,
    )
    assert [r.status for r in res if r.assertion == "evidence_substrings"] == ["fail"]


def test_bad_suite_files_are_clear_errors(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("- id: x\n  stage: summarise\n  texts: [hi]\n")
    with pytest.raises(InvalidInputError, match="case #1"):
        load_suite(p)
    p.write_text("not: [a, list")
    with pytest.raises(InvalidInputError, match="YAML"):
        load_suite(p)
    with pytest.raises(InvalidInputError, match="not found"):
        load_suite(tmp_path / "missing.yaml")


@pytest.mark.slow
def test_call_stage_contract():
    out = call_stage(
        "recommend", {"texts": ["I love epic science fiction films."], "k": 3}, Settings(llm="none")
    )
    assert out["stage"] == "recommend"
    assert len(out["result"]["recommendations"]) == 3
    assert out["profile"]["interests"]
