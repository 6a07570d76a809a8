"""Recommendation evaluation end to end on the shared datasets (first 5 cases), plus input errors.

Catalog embeddings and the per-dataset Chroma store are cached by content hash under INTERESTLENS_EVAL_CACHE
(default ~/.cache/interestlens/evals): the first run embeds the catalogs (minutes on 2 cores); reruns reuse.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interestlens.agent.config import Settings
from interestlens.agent.errors import InvalidInputError
from interestlens.evals.data import load_dataset
from interestlens.evals.harness import run_recommend_eval
from interestlens.evals.protocols import build_queries

REQUIRED_SYSTEM_KEYS = {
    "ndcg@10",
    "ndcg@10_ci",
    "recall@10",
    "mrr",
    "hit@10",
    "latency_ms_p50",
    "invalid_outputs",
    "fallbacks",
}


def _check_outputs(out: Path, systems: set[str]) -> dict:
    data = json.loads((out / "results.json").read_text())
    assert {"dataset", "split", "protocol", "n_cases", "n_users", "llm", "systems"} <= set(data)
    assert set(data["systems"]) == systems
    for name, s in data["systems"].items():
        assert set(s) >= REQUIRED_SYSTEM_KEYS, name
        lo, hi = s["ndcg@10_ci"]
        assert 0.0 <= lo <= s["ndcg@10"] + 1e-9 <= hi + 2e-9 <= 1.0 + 2e-9, name
        assert s["hallucinated_ids"] == 0 and s["duplicate_ids"] == 0 and s["history_ids"] == 0, name
    report = (out / "report.md").read_text()
    assert "| system |" in report and "## Command" in report
    assert (out / "metrics.png").stat().st_size > 1000
    return data


@pytest.mark.slow
def test_redial_full_baselines_and_nollm(shared_datasets, tmp_path):
    systems = ["random", "popularity", "bm25", "embedding", "hybrid", "interestlens-nollm"]
    res = run_recommend_eval(
        shared_datasets / "redial",
        "dev",
        "full",
        5,
        0,
        systems,
        tmp_path,
        Settings(llm="none"),
        progress=False,
        command="pytest redial full",
    )
    data = _check_outputs(tmp_path, set(systems))
    assert data["n_cases"] == 5 and data["protocol"] == "full" and data["llm"] == "none"
    assert data["significance"]["baseline"] in systems
    assert "interestlens-nollm" in data["significance"]["comparisons"]
    assert len(res.per_query("random")) == 5


@pytest.mark.slow
def test_movielens_sampled_with_itemcf_and_nollm(shared_datasets, tmp_path):
    systems = ["random", "popularity", "itemcf", "interestlens-nollm"]
    run_recommend_eval(
        shared_datasets / "movielens",
        "dev",
        "sampled",
        3,
        1,
        systems,
        tmp_path,
        Settings(llm="none"),
        progress=False,
    )
    data = _check_outputs(tmp_path, set(systems))
    n_pairs = sum(
        len(set(c.positives)) for c in load_dataset(shared_datasets / "movielens", "dev", limit=3).cases
    )
    assert data["config"]["n_queries"] == n_pairs
    # sampled: 20 candidates, so every system ranks the positive somewhere in its list
    assert data["systems"]["random"]["recall@50"] == pytest.approx(1.0)


@pytest.mark.slow
def test_redial_with_tiny_llm(shared_datasets, tmp_path, tiny_llm):
    systems = ["popularity", "interestlens"]
    run_recommend_eval(
        shared_datasets / "redial",
        "dev",
        "full",
        2,
        0,
        systems,
        tmp_path,
        Settings(llm="smollm2", n_ctx=2048),
        progress=False,
    )
    data = _check_outputs(tmp_path, set(systems))
    s = data["systems"]["interestlens"]
    assert data["llm"] == "smollm2"
    assert s["errors"] == 0


def test_sampled_queries_exclude_history_and_positives(shared_datasets):
    ds = load_dataset(shared_datasets / "movielens", "dev", limit=2)
    for case in ds.cases:
        queries = build_queries(ds, case, "sampled", seed=5)
        assert len(queries) == len(set(case.positives))
        consumed = ds.consumed(case)
        for q in queries:
            assert len(q.candidate_ids) == 20 and q.relevant[0] in q.candidate_ids
            negatives = set(q.candidate_ids) - set(q.relevant)
            assert not negatives & (set(case.positives) | set(case.history) | consumed)
        assert [q.candidate_ids for q in queries] == [
            q.candidate_ids for q in build_queries(ds, case, "sampled", 5)
        ]


def _write_dataset(root: Path, catalog_lines: list[str], case_lines: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "catalog.jsonl").write_text("\n".join(catalog_lines) + "\n")
    (root / "cases.dev.jsonl").write_text("\n".join(case_lines) + "\n")
    return root


GOOD_ITEMS = [
    json.dumps({"id": str(i), "title": f"Movie {i}", "text": f"Movie {i}. Drama."}) for i in range(30)
]
GOOD_CASE = json.dumps(
    {
        "case_id": "c1",
        "user_id": "u1",
        "texts": [{"text": "I like drama", "ts": None, "source": "chat"}],
        "context": None,
        "history": ["1"],
        "positives": ["2"],
    }
)


def test_malformed_catalog_line_names_file_and_line(tmp_path):
    d = _write_dataset(tmp_path / "ds", [*GOOD_ITEMS[:3], "{not json", *GOOD_ITEMS[3:]], [GOOD_CASE])
    with pytest.raises(InvalidInputError, match=r"catalog\.jsonl:4"):
        run_recommend_eval(
            d,
            "dev",
            "full",
            None,
            0,
            ["random"],
            tmp_path / "out",
            Settings(llm="none"),
            progress=False,
            cache_dir=tmp_path / "cache",
        )


def test_malformed_case_line_names_file_and_line(tmp_path):
    bad_case = json.dumps({"case_id": "c2", "user_id": "u1", "texts": [], "history": [], "positives": []})
    d = _write_dataset(tmp_path / "ds", GOOD_ITEMS, [GOOD_CASE, bad_case])
    with pytest.raises(InvalidInputError, match=r"cases\.dev\.jsonl:2"):
        load_dataset(d, "dev")
    with pytest.raises(InvalidInputError, match="not found"):
        load_dataset(d, "test")


def test_unknown_ids_and_protocol_are_rejected(tmp_path):
    case = json.dumps({"case_id": "c1", "user_id": "u1", "texts": [], "history": [], "positives": ["nope"]})
    d = _write_dataset(tmp_path / "ds", GOOD_ITEMS, [case])
    with pytest.raises(InvalidInputError, match="unknown item ids"):
        load_dataset(d, "dev")
    d2 = _write_dataset(tmp_path / "ds2", GOOD_ITEMS, [GOOD_CASE])
    with pytest.raises(InvalidInputError, match="protocol"):
        run_recommend_eval(
            d2, "dev", "weird", None, 0, ["random"], None, Settings(llm="none"), progress=False
        )
    with pytest.raises(InvalidInputError, match="unknown system"):
        run_recommend_eval(
            d2, "dev", "full", None, 0, ["nonsense"], None, Settings(llm="none"), progress=False
        )


def test_tiny_dataset_baselines_run_without_agent(tmp_path, embedder):
    d = _write_dataset(tmp_path / "ds", GOOD_ITEMS, [GOOD_CASE])
    res = run_recommend_eval(
        d,
        "dev",
        "sampled",
        None,
        0,
        "random,popularity,bm25,embedding,hybrid",
        tmp_path / "out",
        Settings(llm="none"),
        progress=False,
        cache_dir=tmp_path / "cache",
    )
    assert res.n_cases == 1 and res.config["n_queries"] == 1
    assert set(res.systems) == {"random", "popularity", "bm25", "embedding", "hybrid"}
    assert (tmp_path / "out" / "metrics.png").exists()


def test_commit_is_dirty_for_changed_code_not_for_rewritten_results(tmp_path):
    import subprocess

    from interestlens.evals.eval_results import git_commit

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "evals" / "results" / "run").mkdir(parents=True)
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "evals" / "results" / "run" / "results.json").write_text("{}\n")
    (tmp_path / "bench" / "results" / "b.json").write_text("{}\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    head = git_commit(tmp_path)
    assert len(head) == 40 and not head.endswith("+dirty")
    # An evaluation rewriting a committed result (or a benchmark's) is output, not a change of code.
    (tmp_path / "evals" / "results" / "run" / "results.json").write_text('{"ndcg": 0.1}\n')
    (tmp_path / "bench" / "results" / "b.json").write_text('{"p50": 1}\n')
    assert git_commit(tmp_path) == head
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == head + "+dirty"
