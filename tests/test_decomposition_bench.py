"""The decomposition benchmark runs end to end on real data and scores what the design guarantees."""

from __future__ import annotations

import json

import pytest

from interestlens.evals.decomposition import LABELLED, run_decomposition_benchmark


def test_labelled_set_is_well_formed():
    rows = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) >= 30
    for row in rows:
        for e in row["expect"]:
            assert e["polarity"] in ("like", "dislike") and e["keywords"]
            assert e["evidence"] in row["text"], row["case_id"]


def test_benchmark_writes_results_and_report(tmp_path, embedder, settings):
    from conftest import SHARED_DATASETS

    data = SHARED_DATASETS / "redial"
    if not (data / "cases.dev.jsonl").exists():
        pytest.skip("shared ReDial data not present")
    r = run_decomposition_benchmark(data, tmp_path, max_cases=60, embedder=embedder, settings=settings)
    saved = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert saved["git_commit"] and saved["settings"]["max_cases"] == 60
    assert saved["settings"]["resolved"]["decompose"]["chunk_chars"] == settings.decompose.chunk_chars
    assert "Decomposition benchmark" in (tmp_path / "report.md").read_text(encoding="utf-8")
    m, lab = r["mentions"], r["labelled"]
    assert m["cases"] > 0 and m["mentions"] > 0
    for key in ("link_precision", "link_recall", "polarity_accuracy"):
        assert 0.0 <= m[key] <= 1.0
    for key in ("interest_recall", "interest_precision", "polarity_accuracy", "name_agreement"):
        assert 0.0 <= lab[key] <= 1.0
    # Guaranteed by the design, not by a model: injected and non-preference texts yield nothing.
    by_id = {c["case_id"]: c for c in lab["cases"]}
    for cid in ("system-horror", "pretend-horror", "ignore-instructions", "fake-evidence", "assistant-role",
                "question-watch", "hello"):
        assert by_id[cid]["predicted"] == [], cid
    assert lab["forbidden_links"] == 0
