"""The LLM rank weight's fit (evals/llm_weight.py): the fusion it fits, the cross-validation, a real small run."""

from __future__ import annotations

import json

import pytest

from interestlens.agent.config import Settings
from interestlens.agent.errors import InvalidInputError
from interestlens.agent.rerank import fuse_llm_rank
from interestlens.evals.llm_weight import (
    LLM_ALONE,
    ScoredQuery,
    best_weight,
    cross_validated_weights,
    evaluate,
    run,
)

HEAD = ["a", "b", "c", "d"]


def _query(user: str, llm: dict[str, float], relevant: list[str], key: str = "") -> ScoredQuery:
    base = {i: 1.0 - n / 10 for n, i in enumerate(HEAD)}  # pipeline order a, b, c, d
    return ScoredQuery(user, key or user, [*HEAD, "tail"], base, llm, relevant)


def test_weight_zero_keeps_the_pipeline_order_and_llm_alone_follows_the_llm():
    q = _query("u", {"a": -3.0, "b": -2.0, "c": -1.0, "d": -0.5}, ["d"])
    assert q.ranking(0.0) == ["a", "b", "c", "d", "tail"]
    assert q.ranking(LLM_ALONE) == ["d", "c", "b", "a", "tail"]  # the tail is never reordered
    assert q.score(LLM_ALONE) > q.score(0.0)


def test_a_failed_pass_leaves_the_pipeline_order():
    assert _query("u", {}, ["d"]).ranking(4.0) == ["a", "b", "c", "d", "tail"]


def test_fusion_is_on_ranks_so_the_scale_of_retrieval_scores_does_not_matter():
    llm = {"a": -5.0, "b": -0.1, "c": -3.0}
    small = fuse_llm_rank({"a": 0.3, "b": 0.2, "c": 0.1}, llm, 1.0)
    large = fuse_llm_rank({"a": 300.0, "b": 200.0, "c": 100.0}, llm, 1.0)
    assert small == large and max(small, key=small.get) == "b"


def test_random_head_is_a_seeded_permutation_of_the_head():
    q = _query("u", {}, ["a"], key="case-1")
    order = q.random_head(0)
    assert order == q.random_head(0) and sorted(order[:4]) == HEAD and order[4] == "tail"


def test_best_weight_ties_go_to_the_smaller_weight():
    useless = [_query(f"u{n}", {"a": -1.0, "b": -1.0, "c": -1.0, "d": -1.0}, ["a"]) for n in range(3)]
    assert best_weight(useless) == 0.0


def test_each_user_gets_a_weight_chosen_without_them():
    # Users h* are helped by the LLM (it puts the positive first), users x* are hurt by it.
    helped = [_query(f"h{n}", {"a": -9.0, "b": -9.0, "c": -9.0, "d": -0.1}, ["d"]) for n in range(6)]
    hurt = [_query(f"x{n}", {"a": -9.0, "b": -9.0, "c": -9.0, "d": -0.1}, ["a"]) for n in range(2)]
    by_user, record = cross_validated_weights([*helped, *hurt], folds=4, seed=0)
    assert set(by_user) == {q.user for q in [*helped, *hurt]}
    for fold in record:
        train_users = {q.user for q in [*helped, *hurt]} - set(fold["test_users"])
        assert fold["train_users"] == len(train_users)
        assert not set(fold["test_users"]) & train_users
    assert all(by_user[q.user] > 0 for q in helped)  # the majority helped: a positive weight


def test_evaluate_rows_and_one_estimand():
    qs = [_query(f"u{n}", {"a": -9.0, "b": -9.0, "c": -9.0, "d": -0.1}, ["d"]) for n in range(5)]
    r = evaluate(qs, folds=5, seed=0, n_boot=200)
    rows = r["systems"]
    assert set(rows) == {"interestlens-nollm (w = 0)", "head in random order", "llm alone",
                         "interestlens + llm (w by cv)"}
    diff = rows["interestlens + llm (w by cv)"]["ndcg@10"] - rows["interestlens-nollm (w = 0)"]["ndcg@10"]
    assert r["paired_test_cv_vs_nollm"]["mean_diff"] == pytest.approx(diff)
    with pytest.raises(InvalidInputError):
        evaluate([], folds=5, seed=0)


@pytest.mark.slow
def test_a_small_real_run_writes_results_with_commit_and_settings(shared_datasets, tmp_path, tiny_llm):
    r = run(shared_datasets / "movielens", "dev", "full", "smollm2", out_dir=tmp_path, limit=3, fusion="linear",
            settings=Settings(llm="none"), progress=False, command="pytest llm weight")
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["commit"] and saved["settings"]["reranker"]["top_n"] == 20
    assert saved["n_queries"] == 3 and saved["ops"]["llm_passes"] == 3 and saved["ops"]["failed_passes"] == 0
    assert saved["scored_queries"] == 3
    weights = json.loads((tmp_path / "llm_rank_weights.json").read_text())
    assert weights == {r["model_id"]: r["weight_fit_on_all_users"]}
    assert (tmp_path / "weight_curve.png").stat().st_size > 1000
    assert len((tmp_path / "scored_queries.jsonl").read_text().splitlines()) == 3
    assert "| llm alone |" in (tmp_path / "report.md").read_text()
