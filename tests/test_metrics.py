"""Ranking metrics against hand-computed values (and ranx when installed); sampled candidate construction."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from interestlens.evals import metrics as M
from interestlens.evals.data import EvalCase, case_rng, sampled_candidates

RANKED = ["a", "b", "c", "d", "e"]
RELEVANT = {"b", "e", "z"}  # "z" is never retrieved


def test_recall_precision_hit_hand_computed():
    assert M.recall_at_k(RANKED, RELEVANT, 2) == pytest.approx(1 / 3)
    assert M.recall_at_k(RANKED, RELEVANT, 5) == pytest.approx(2 / 3)
    assert M.precision_at_k(RANKED, RELEVANT, 5) == pytest.approx(2 / 5)
    assert M.hit_at_k(RANKED, RELEVANT, 1) == 0.0
    assert M.hit_at_k(RANKED, RELEVANT, 2) == 1.0
    assert M.recall_at_k(RANKED, set(), 5) == 0.0


def test_ndcg_hand_computed():
    # hits at ranks 2 and 5; ideal: 3 relevant within k=5 -> ranks 1, 2, 3
    dcg = 1 / math.log2(3) + 1 / math.log2(6)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert M.ndcg_at_k(RANKED, RELEVANT, 5) == pytest.approx(dcg / idcg)
    # k=2: one hit at rank 2; ideal has min(2, 3) = 2 hits
    assert M.ndcg_at_k(RANKED, RELEVANT, 2) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert M.ndcg_at_k(["x", "y"], {"x"}, 10) == pytest.approx(1.0)
    # a duplicated relevant id earns nothing the second time
    assert M.ndcg_at_k(["x", "x"], {"x", "y"}, 2) == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_mrr_hand_computed():
    assert M.mrr(RANKED, RELEVANT) == pytest.approx(0.5)
    assert M.mrr(RANKED, {"e"}, 4) == 0.0
    assert M.mrr(RANKED, {"e"}) == pytest.approx(0.2)
    assert M.mrr([], {"e"}) == 0.0


def test_cross_check_against_ranx():
    ranx = pytest.importorskip("ranx")
    rng = random.Random(3)
    qrels, run, ours = {}, {}, {"ndcg@10": [], "recall@10": [], "mrr": [], "hit_rate@10": []}
    for q in range(30):
        ranked = rng.sample([f"i{n}" for n in range(40)], 20)
        relevant = set(rng.sample([f"i{n}" for n in range(40)], rng.randint(1, 6)))
        qrels[f"q{q}"] = dict.fromkeys(relevant, 1)
        run[f"q{q}"] = {item: float(20 - r) for r, item in enumerate(ranked)}
        ours["ndcg@10"].append(M.ndcg_at_k(ranked, relevant, 10))
        ours["recall@10"].append(M.recall_at_k(ranked, relevant, 10))
        ours["mrr"].append(M.mrr(ranked, relevant))
        ours["hit_rate@10"].append(M.hit_at_k(ranked, relevant, 10))
    theirs = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), list(ours))
    for name, vals in ours.items():
        assert np.mean(vals) == pytest.approx(theirs[name], abs=1e-9), name


def test_list_metrics():
    assert M.catalog_coverage([["a", "b"], ["b", "c"]], 10, k=2) == pytest.approx(0.3)
    emb = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0]), "c": np.array([1.0, 0.0])}
    # pairs: a-b 0, a-c 1, b-c 0 -> mean 1/3
    assert M.intra_list_diversity(["a", "b", "c"], emb) == pytest.approx(1 - 1 / 3)
    assert M.intra_list_diversity(["a"], emb) == 0.0
    pop = {"a": 0.5, "b": 0.25}
    assert M.novelty(["a", "b"], pop) == pytest.approx((1 + 2) / 2)
    assert M.novelty(["zz"], pop) == pytest.approx(-math.log2(0.125))  # floor: half the smallest probability


def test_bootstrap_resamples_users_and_is_seeded():
    values = [1.0, 1.0, 1.0, 0.0]
    groups = ["u1", "u1", "u1", "u2"]
    lo, hi = M.bootstrap_ci(values, groups, n_boot=500, seed=1)
    assert (lo, hi) == M.bootstrap_ci(values, groups, n_boot=500, seed=1)
    # resampling whole users: each draw is all-u1 (1.0), all-u2 (0.0) or mixed (0.75)
    assert lo == pytest.approx(0.0) and hi == pytest.approx(1.0)
    assert M.bootstrap_ci([0.5] * 6, list("aabbcc")) == pytest.approx((0.5, 0.5))


def test_paired_permutation_test():
    groups = [f"u{i}" for i in range(12)]
    a = [0.9] * 12
    b = [0.1] * 12
    res = M.paired_permutation_test(a, b, groups, n_perm=2000, seed=0)
    assert res["mean_diff"] == pytest.approx(0.8)
    assert res["p_value"] < 0.01
    same = M.paired_permutation_test(a, a, groups, n_perm=500, seed=0)
    assert same["p_value"] == pytest.approx(1.0)


def _case() -> EvalCase:
    return EvalCase(case_id="c1", user_id="u1", history=["h1", "h2"], positives=["p1", "p2"])


def test_sampled_candidates_seeded_and_clean():
    case = _case()
    catalog = ["h1", "h2", "p1", "p2"] + [f"n{i}" for i in range(60)]
    first = sampled_candidates(case, "p1", catalog, case_rng(7, "c1", "p1"))
    again = sampled_candidates(case, "p1", catalog, case_rng(7, "c1", "p1"))
    other = sampled_candidates(case, "p1", catalog, case_rng(8, "c1", "p1"))
    assert first == again and first != other
    assert len(first) == 20 and len(set(first)) == 20
    assert "p1" in first
    negatives = set(first) - {"p1"}
    assert not negatives & {"h1", "h2", "p2"}
    assert negatives <= set(catalog)


def test_sampled_candidates_uniform_over_allowed_pool():
    case = _case()
    catalog = ["h1", "h2", "p1", "p2"] + [f"n{i}" for i in range(25)]
    counts: dict[str, int] = {}
    for s in range(400):
        for i in sampled_candidates(case, "p2", catalog, random.Random(s)):
            counts[i] = counts.get(i, 0) + 1
    assert counts["p2"] == 400
    neg = [counts.get(f"n{i}", 0) for i in range(25)]
    # each of 25 allowed items is drawn with probability 19/25 -> 304 of 400
    assert min(neg) > 250 and max(neg) < 350
