"""Prompt-behaviour suites: packaged suites pass with the default tiny model; assertions catch failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from interestlens.agent.config import Settings
from interestlens.agent.errors import InvalidInputError
from interestlens.evals.stage_runner import StageRunner
from interestlens.evals.suite import call_stage, run_suite
from interestlens.evals.suite_cases import SuiteCase, load_suite, packaged_suites
from interestlens.evals.suite_checks import check_case


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


TINY_SUITE = """
- id: dislike-kept
  stage: decompose
  texts: ["I love science fiction films but I can't stand horror."]
  assertions:
    polarity: {horror: dislike}
    evidence_substrings: true
- id: impossible-find
  stage: decompose
  texts: ["I love jazz piano."]
  assertions:
    must_find: [quantum chromodynamics]
    evidence_substrings: true
- id: needs-capable
  stage: decompose
  requires: capable-llm
  texts: ["I like board games."]
  assertions:
    schema_valid: true
"""


def test_suites_are_addressed_by_name(tmp_path):
    assert load_suite("hostile") == load_suite("hostile.yaml")
    with pytest.raises(InvalidInputError, match=r"no suite named 'hostle'.*composition, decomposition, hostile"):
        load_suite("hostle")
    # a path is a path: a missing file is not silently replaced by the packaged suite of the same stem
    with pytest.raises(InvalidInputError, match="no such file"):
        load_suite(tmp_path / "hostile.yaml")
    (tmp_path / "mine.yaml").write_text(TINY_SUITE)
    assert [c.id for c in load_suite(tmp_path / "mine.yaml")] == ["dislike-kept", "impossible-find", "needs-capable"]


@pytest.mark.slow
def test_cli_suite_progress_json_and_junit(tmp_path):
    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY_SUITE)
    junit = tmp_path / "junit" / "tiny.xml"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    r = subprocess.run(
        [sys.executable, "-m", "interestlens.tools.cli", "--llm", "none", "eval", "suite", str(suite), "--json",
         "--junit", str(junit)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert r.returncode == 1, r.stderr  # a failing case fails the command
    report = json.loads(r.stdout)  # stdout is the JSON report alone; progress went to stderr
    progress = [ln for ln in r.stderr.splitlines() if ln.startswith("[")]
    assert [ln.split(" ")[0] for ln in progress] == ["[1/3]", "[2/3]", "[3/3]"], r.stderr
    assert " ok " in progress[0] and " FAIL " in progress[1] and "must_find" in progress[1]
    assert " skip " in progress[2]
    assert list(report["case_seconds"]) == ["dislike-kept", "impossible-find", "needs-capable"]

    root = ET.parse(junit).getroot()
    ts = root.find("testsuite")
    assert ts is not None and ts.get("name") == "tiny"
    assert (ts.get("tests"), ts.get("failures"), ts.get("errors"), ts.get("skipped")) == ("3", "1", "0", "1")
    assert float(ts.get("time") or 0) == pytest.approx(report["seconds"], abs=0.01)
    cases = {tc.get("name"): tc for tc in ts.iter("testcase")}
    assert list(cases) == list(report["case_seconds"]) and {tc.get("classname") for tc in cases.values()} == {"tiny"}
    failure = cases["impossible-find"].find("failure")
    assert failure is not None and failure.get("message") == "failed: must_find:quantum chromodynamics"
    assert cases["dislike-kept"].find("failure") is None and cases["dislike-kept"].find("error") is None
    assert cases["needs-capable"].find("skipped") is not None
    failed_in_report = {x["case_id"] for x in report["results"] if x["status"] == "fail"}
    assert failed_in_report == {tc.get("name") for tc in ts.iter("testcase") if tc.find("failure") is not None}

    quiet = subprocess.run(
        [sys.executable, "-m", "interestlens.tools.cli", "--llm", "none", "eval", "suite", str(suite), "--json",
         "--quiet"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert quiet.returncode == 1 and json.loads(quiet.stdout)["suite"] == str(suite)
    assert not [ln for ln in quiet.stderr.splitlines() if ln.startswith("[")], quiet.stderr


def test_cli_lists_suites_and_rejects_unknown_names():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "interestlens.tools.cli", "eval", "suite", "--list", "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {n.removesuffix(".yaml"): len(load_suite(n)) for n in packaged_suites()}
    r = subprocess.run(
        [sys.executable, "-m", "interestlens.tools.cli", "eval", "suite", "hostle"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert r.returncode == 2 and "no suite named 'hostle'" in r.stderr and "hostile" in r.stderr
