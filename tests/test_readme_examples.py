"""README "Use it" runs as written (issue 13 item 7): its python blocks are executed in order in one namespace,
and its CLI lines run in the real console entry point, each in a fresh temporary directory (./il is a temp
store). The LLM is "none" (set in the example itself, and through INTERESTLENS_LLM for the CLI lines) so nothing
depends on what a model writes; the LangChain block builds its graph without calling any model."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False", "INTERESTLENS_LLM": "none",
       "COLUMNS": "200"}


def _use_it_blocks(lang: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Use it"):]
    section = section[: section.index("\n## ", 1)]
    return re.findall(rf"```{lang}\n(.*?)```", section, flags=re.DOTALL)


def test_readme_has_the_examples():
    assert len(_use_it_blocks("python")) >= 4 and len(_use_it_blocks("bash")) >= 1


def test_python_blocks_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")  # ChatOpenAI is constructed, never called
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    namespace: dict = {}
    try:
        for n, block in enumerate(_use_it_blocks("python")):
            try:
                exec(compile(block, f"README python block {n + 1}", "exec"), namespace)
            except Exception as e:
                pytest.fail(f"README python block {n + 1} failed: {type(e).__name__}: {e}\n{block}")
    finally:
        agent = namespace.get("agent")
        if agent is not None:
            agent.close()
    assert namespace["r"].referenced_item_ids == ["f3"]  # what the chat example promises in its comment
    assert namespace["r"].requests == ["What should I watch tonight?"]


def _cli_lines() -> list[list[str]]:
    """Each `interestlens ...` command of the CLI block (`;` separates two), comments dropped."""
    block = _use_it_blocks("bash")[0]
    commands: list[list[str]] = []
    for line in block.splitlines():
        argv: list[str] = []
        for token in [*shlex.split(line, comments=True), ";"]:
            if token == ";":
                if argv and argv[0] == "interestlens":
                    commands.append(argv[1:])
                argv = []
            else:
                argv.append(token)
    return commands


def test_cli_lines_run_as_written(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from interestlens.tools.cli import app

    monkeypatch.chdir(tmp_path)
    with resources.as_file(resources.files("interestlens.agent").joinpath("data/demo_catalog.jsonl")) as cat:
        (tmp_path / "items.jsonl").write_text(Path(cat).read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "interactions.jsonl").write_text(
        "".join(json.dumps({"user_id": f"u{k}", "item_id": "mov-0002"}) + "\n" for k in range(3)), encoding="utf-8"
    )
    (tmp_path / "chat.json").write_text(json.dumps([
        {"role": "assistant", "content": "You could try Solaris (1972)."},
        {"role": "user", "content": "Yes, more like that"},
    ]), encoding="utf-8")
    commands = _cli_lines()
    assert len(commands) >= 10
    runner = CliRunner()
    for argv in commands:  # in process (typer's runner): one model load for all lines
        r = runner.invoke(app, argv, env={"INTERESTLENS_LLM": "none", "HF_HUB_OFFLINE": "1"})
        assert r.exit_code == 0, f"interestlens {shlex.join(argv)}\n{r.output}\n{r.exception!r}"
    assert json.loads((tmp_path / "alice.json").read_text(encoding="utf-8"))["user_id"] == "alice"


def test_one_cli_line_in_a_real_subprocess(tmp_path):
    """The console entry point itself, once (the runner above shares a process)."""
    argv = next(c for c in _cli_lines() if "catalog" in c and "count" in c)
    p = subprocess.run([sys.executable, "-m", "interestlens.tools.cli", *argv], cwd=tmp_path,
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert p.returncode == 0, p.stderr
