"""promptfoo (from npm) runs the shipped example config against the shipped Python provider, and every test passes.

promptfoo is a Node tool: .ci/setup installs it into .promptfoo/ where npm exists (with a Node 22 runtime from
npm, which promptfoo 0.123 requires). Without it the end-to-end test skips and says how to get it; the provider
itself is tested directly in Python either way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import yaml

from interestlens.evals.promptfoo_provider import call_api, stage_arguments

ROOT = Path(__file__).resolve().parents[1]
PROMPTFOO_BIN = ROOT / ".promptfoo" / "node_modules" / ".bin"
CONFIG = resources.files("interestlens.evals").joinpath("promptfoo/promptfooconfig.yaml")
QUIET_ENV = {  # nothing leaves the machine: no telemetry, update check, sharing or remote generation
    "PROMPTFOO_DISABLE_TELEMETRY": "1",
    "PROMPTFOO_DISABLE_UPDATE": "1",
    "PROMPTFOO_DISABLE_SHARING": "1",
    "PROMPTFOO_DISABLE_REMOTE_GENERATION": "true",
    "HF_HUB_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
}


def _promptfoo() -> tuple[str, dict[str, str]] | str:
    """(promptfoo executable, env) or the reason it cannot run here."""
    env = {**os.environ, **QUIET_ENV, "PROMPTFOO_PYTHON": sys.executable}
    if (PROMPTFOO_BIN / "promptfoo").exists():
        env["PATH"] = f"{PROMPTFOO_BIN}{os.pathsep}{env.get('PATH', '')}"  # its Node 22 first
        exe = str(PROMPTFOO_BIN / "promptfoo")
    elif shutil.which("promptfoo"):
        exe = shutil.which("promptfoo") or "promptfoo"
    else:
        return "promptfoo is not installed: `bash .ci/setup` installs it into .promptfoo/ where npm exists"
    if not shutil.which("node", path=env["PATH"]):
        return "node is not installed"
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, env=env, timeout=120)
    if r.returncode != 0:
        return f"promptfoo does not start here: {(r.stdout + r.stderr).strip()[-300:]}"
    return exe, env


@pytest.mark.slow
def test_example_config_passes_under_promptfoo(tmp_path):
    found = _promptfoo()
    if isinstance(found, str):
        pytest.skip(found)
    exe, env = found
    env["PROMPTFOO_CONFIG_DIR"] = str(tmp_path / "promptfoo-home")  # its database and logs stay in tmp
    n_tests = len(yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["tests"])
    out = tmp_path / "out.json"
    with resources.as_file(CONFIG) as config:
        r = subprocess.run(
            [exe, "eval", "-c", str(config), "--no-cache", "--no-write", "--no-table", "--no-progress-bar",
             "-o", str(out)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )
    assert out.is_file(), (r.returncode, r.stdout[-3000:], r.stderr[-3000:])
    results = json.loads(out.read_text())["results"]
    failed = [
        (
            x["testCase"].get("description"),
            x.get("error") or (x.get("gradingResult") or {}).get("reason"),
            str((x.get("response") or {}).get("output"))[:300],
        )
        for x in results["results"]
        if not x["success"]
    ]
    assert not failed, (failed, r.stderr[-2000:])
    assert results["stats"]["successes"] == n_tests == len(results["results"])  # lists were not expanded
    assert results["stats"]["failures"] == 0 and results["stats"]["errors"] == 0
    assert r.returncode == 0, r.stderr[-2000:]


def test_vars_arrive_as_promptfoo_sends_them():
    # promptfoo's own vars are dropped; a list var arrives as a JSON string; a plain string is one text
    stage, payload = stage_arguments(
        "ignored",
        {"stage": "recommend", "texts": '["a", "b"]', "candidate_ids": '["x"]', "k": "3", "__evalId": "e1",
         "__evalStepId": "s", "__repeatIndex": 0},
        {"stage": "decompose"},
    )
    assert stage == "recommend"
    assert payload == {"texts": ["a", "b"], "candidate_ids": ["x"], "k": 3}
    assert stage_arguments("I like jazz", {"__evalId": "e"}, {"stage": "decompose"}) == (
        "decompose",
        {"texts": ["I like jazz"]},
    )
    assert stage_arguments("p", {"text": "one"}, {})[1] == {"texts": ["one"]}
    assert stage_arguments("p", {"history": "mov-0001"}, {})[1]["history"] == ["mov-0001"]


@pytest.mark.parametrize(
    ("vars_", "config", "fragment"),
    [
        ({"stage": "summarise"}, {}, "unknown stage 'summarise'"),
        ({"colour": "red"}, {"stage": "decompose"}, "unknown var(s) colour"),
        ({"text": "a", "texts": '["b"]'}, {}, "either var 'text' or var 'texts'"),
        ({"k": 0}, {"stage": "recommend"}, "k"),
        ({"catalog": "{not json"}, {}, "not valid JSON"),
        ({}, {"stage": "decompose", "settings": {"no_such_setting": 1}}, "unknown setting(s) no_such_setting"),
    ],
)
def test_bad_arguments_are_clean_errors(vars_, config, fragment):
    res = call_api("I like jazz", {"config": config}, {"vars": {**vars_, "__evalId": "e"}})
    assert set(res) == {"error"} and res["error"].startswith("interestlens: ")
    assert fragment in res["error"] and "Traceback" not in res["error"]


@pytest.mark.slow
def test_provider_runs_a_stage():
    res = call_api(
        "ignored",
        {"config": {"stage": "decompose", "llm": "none"}},
        {"vars": {"text": "I love science fiction films but I can't stand horror.", "__evalId": "e1"}},
    )
    out = json.loads(res["output"])
    polarity = {i["name"]: i["polarity"] for i in out["profile"]["interests"]}
    assert any("horror" in n and p == "dislike" for n, p in polarity.items()), polarity
    assert out["stage"] == "decompose" and "result" not in out
