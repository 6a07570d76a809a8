"""The `interestlens` CLI in real subprocesses: results on stdout, one-line errors and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ALICE = "I love slow-burn science fiction like Interstellar, where space feels huge and lonely."
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False", "COLUMNS": "200"}


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "interestlens.tools.cli", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, demo_items):
    path = tmp_path_factory.mktemp("cat") / "catalog.jsonl"
    path.write_text("".join(it.model_dump_json() + "\n" for it in demo_items[:60]), encoding="utf-8")
    return path


def test_end_to_end(tmp_path, catalog):
    store = str(tmp_path / "store")
    base = ("--store", store, "--llm", "none")
    inter = tmp_path / "inter.jsonl"
    inter.write_text(json.dumps({"user_id": "x", "item_id": "mov-0002"}) + "\n", encoding="utf-8")
    r = cli(*base, "--json", "catalog", "add", str(catalog), "--interactions", str(inter))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {
        "items_read": 60,
        "items_written": 60,
        "duplicate_ids": 0,
        "interactions_written": 1,
    }

    r = cli(*base, "observe", "--user", "alice", ALICE, "--json")
    assert r.returncode == 0, r.stderr
    observed = json.loads(r.stdout)
    assert observed["user_id"] == "alice" and observed["added"]

    r = cli(*base, "recommend", "--user", "alice", "-k", "3", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["user_id"] == "alice" and 0 < len(result["recommendations"]) <= 3
    first = result["recommendations"][0]["item"]

    interest_id = observed["added"][0]["id"]
    r = cli(*base, "--json", "profile", "mute", "--user", "alice", "--interest", interest_id)
    assert r.returncode == 0, r.stderr
    assert next(i for i in json.loads(r.stdout)["interests"] if i["id"] == interest_id)["muted"] is True

    r = cli(*base, "explain", "--user", "alice", "--item", first["id"], "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["item"]["id"] == first["id"]

    r = cli(*base, "profile", "--user", "alice")
    assert r.returncode == 0 and r.stdout.startswith("Profile of alice")

    r = cli(*base, "forget", "--user", "alice")
    assert r.returncode == 0 and "Forgot everything stored about alice." in r.stdout
    r = cli(*base, "profile", "--user", "alice")
    assert r.returncode == 2 and r.stderr.strip().startswith("error:")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("eval", "recommend", "--data", "/no/such/dir"), "not a directory"),
        (("eval", "suite", "/no/such/suite.yaml"), "no such file"),
        (("profile", "mute", "--user", "u1", "--interest", "int-nope"), "u1"),
        (("recommend", "--user", "bad id!"), "user"),
        (("recommend", "--user", "u1", "-k", "0"), "k"),
        (("recommend", "--user", "u1", "--expand", "sideways"), "expand"),
        (("observe", "--user", "u1"), "nothing to observe"),
        (("catalog", "add", "/no/such/file.jsonl"), "cannot read"),
    ],
)
def test_user_errors_are_one_line_exit_2(tmp_path, args, fragment):
    r = cli("--store", str(tmp_path / "store"), "--llm", "none", *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and fragment in lines[0]
    assert "Traceback" not in r.stderr


def test_non_utf8_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("J'adore les romans policiers très sombres".encode("latin-1"))
    r = cli(
        "--store", str(tmp_path / "store"), "--llm", "none", "observe", "--user", "u1", "--file", str(bad)
    )
    assert r.returncode == 2
    assert "not valid UTF-8" in r.stderr and "Traceback" not in r.stderr


def test_usage_error_exit_2(tmp_path):
    r = cli("recommend")  # --user missing
    assert r.returncode == 2 and "--user" in r.stderr


def test_version_is_the_installed_package_version():
    from importlib.metadata import version

    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"interestlens {version('interestlens')}"


def test_demo(tmp_path):
    r = cli("--llm", "none", "demo", "-k", "3")
    assert r.returncode == 0, r.stderr
    assert "Recommendations for demo" in r.stdout and "1. " in r.stdout
    assert "“" in r.stdout  # quoted evidence from the demo user's texts
