"""Fusion, EASE, the leave-user-out protocol, cross-validation over users, the one estimand, `interestlens tune`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from interestlens.agent.config import MMR_LAMBDA_DEFAULT, Settings
from interestlens.agent.errors import InvalidInputError
from interestlens.agent.fusion import (
    FEATURE_INDEX,
    FEATURES,
    QUERY_FEATURES,
    LinearFusion,
    fit_lambdarank,
    load_fusion,
)
from interestlens.agent.retrieve import served_mmr_lambda
from interestlens.evals import metrics as M
from interestlens.evals.data import load_dataset
from interestlens.evals.fitting import (
    FIT_CANDIDATES,
    LabelledPool,
    PoolBatch,
    cross_validated_fusions,
    cross_validated_mmr_lambda,
    fit_fusion,
    fit_linear,
    fold_of_users,
    mmr_ndcg_by_lambda,
    pools_ndcg,
)
from interestlens.stores.behaviour import build_matrices, ease_scores, fit_ease

# ---------------------------------------------------------------------------------------------- EASE


def test_ease_matches_the_closed_form_and_excludes_seeds():
    pairs = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "c"), ("u3", "b"), ("u3", "c"), ("u4", "a"),
             ("u4", "b"), ("u4", "d")]
    m = build_matrices(0, pairs)
    model = fit_ease(m, lam=1.0, max_items=10)
    x = m.binary[:, model.items].toarray().astype(float)
    p = np.linalg.inv(x.T @ x + np.eye(x.shape[1]))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    got = ease_scores(m, model, ["a"], n=10)
    cols = [m.item_ids[int(j)] for j in model.items]
    row = b[cols.index("a")]
    expected = {cols[j]: row[j] for j in range(len(cols)) if cols[j] != "a" and row[j] > 0}
    assert "a" not in got and got.keys() == expected.keys()
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, rel=1e-5)


def test_ease_fits_only_the_most_consumed_items():
    pairs = [(f"u{u}", f"i{i}") for u in range(6) for i in range(u + 1)]  # i0 consumed by all, i5 by one
    model = fit_ease(build_matrices(0, pairs), lam=1.0, max_items=3)
    assert len(model.items) == 3 and model.weights.shape == (3, 3)


# ---------------------------------------------------------------------------------------------- fusion


def _pool(user: str, n: int, rng: np.random.Generator) -> LabelledPool:
    f = np.zeros((n, len(FEATURES)))
    f[:, FEATURE_INDEX["ease_raw"]] = rng.random(n)
    f[:, FEATURE_INDEX["popularity_raw"]] = rng.random(n)
    labels = (f[:, FEATURE_INDEX["ease_raw"]] > 0.9).astype(np.int8)  # the planted signal
    ids = [f"{user}-{i}" for i in range(n)]
    return LabelledPool(user, user, ids, f, labels, [i for i, y in zip(ids, labels, strict=True) if y])


def test_linear_fusion_is_the_weighted_sum_of_ranks():
    f = np.zeros((3, len(FEATURES)))
    f[:, FEATURE_INDEX["text_rank"]] = [1.0, 0.5, 0.0]
    f[:, FEATURE_INDEX["popularity_rank"]] = [0.0, 1.0, 0.5]
    f[:, FEATURE_INDEX["text_raw"]] = 99.0  # raw columns never enter the linear blend
    assert LinearFusion({"text": 2.0, "popularity": 1.0}).score(f).tolist() == [2.0, 2.0, 0.5]
    with pytest.raises(InvalidInputError, match="unknown fusion signal"):
        LinearFusion({"clicks": 1.0})


def test_lambdarank_learns_a_planted_signal_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    pools = [_pool(f"u{i}", 60, rng) for i in range(30)]
    model = fit_lambdarank([(p.features, p.labels) for p in pools], seed=0)
    fresh = [_pool(f"new{i}", 60, rng) for i in range(10)]

    def ndcg(score) -> float:
        return float(np.mean([M.ndcg_at_k([p.ids[i] for i in np.argsort(-score(p))], p.relevant) for p in fresh]))

    assert ndcg(lambda p: model.score(p.features)) > 0.9
    assert ndcg(lambda p: p.features[:, FEATURE_INDEX["popularity_raw"]]) < 0.5  # the unplanted signal
    test = fresh[0]
    path = tmp_path / "fusion.json"
    model.save(path)
    again = load_fusion(path)
    assert np.allclose(again.score(test.features), model.score(test.features))
    payload = json.loads(path.read_text())
    payload["features"] = payload["features"][:-1]
    path.write_text(json.dumps(payload))
    with pytest.raises(InvalidInputError, match="other features"):
        load_fusion(path)


def test_lambdarank_does_not_depend_on_the_order_of_a_pools_rows():
    """Bagging samples rows by position: the same pools in another candidate order must give the same model."""
    rng = np.random.default_rng(1)
    pools = [_pool(f"u{i}", 60, rng) for i in range(30)]
    shuffled = [(p.features[perm], p.labels[perm]) for p in pools for perm in [rng.permutation(len(p.labels))]]
    a = fit_lambdarank([(p.features, p.labels) for p in pools], seed=0)
    b = fit_lambdarank(shuffled, seed=0)
    probe = np.vstack([p.features for p in pools[:5]])
    assert np.array_equal(a.score(probe), b.score(probe))


def test_lambdarank_never_scores_an_item_lower_for_more_evidence_also_after_a_round_trip(tmp_path):
    """Monotone constraints: a planted signal that is non-monotone on the training users (positives in a middle
    band of popularity) cannot make a higher value of any candidate-level column lower the score."""
    rng = np.random.default_rng(3)
    pools = [_pool(f"u{i}", 60, rng) for i in range(30)]
    for p in pools:
        pop = p.features[:, FEATURE_INDEX["popularity_raw"]]
        p.labels = ((pop > 0.4) & (pop < 0.6)).astype(np.int8)  # a quirk an unconstrained tree would learn
        p.features[:, FEATURE_INDEX["n_seeds"]] = rng.integers(0, 3)
    model = fit_lambdarank([(p.features, p.labels) for p in pools], seed=0)
    path = tmp_path / "fusion.json"
    model.save(path)
    loaded = load_fusion(path)
    probe = np.vstack([p.features for p in pools[:5]])
    for name in FEATURES:
        if name in QUERY_FEATURES:
            continue
        for step in (0.05, 0.3, 1.0):
            raised = probe.copy()
            raised[:, FEATURE_INDEX[name]] += step
            for m in (model, loaded):
                assert (m.score(raised) >= m.score(probe) - 1e-12).all(), name



def test_too_few_queries_to_fit_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="too few queries"):
        fit_lambdarank([(np.zeros((3, len(FEATURES))), np.array([1, 0, 0]))])


WEIGHTS = Settings().fusion.weights


def test_cross_validation_never_scores_a_user_with_a_model_that_saw_them():
    rng = np.random.default_rng(1)
    pools = [_pool(f"u{i}", 40, rng) for i in range(20) for _ in range(2)]
    by_user, folds = cross_validated_fusions(pools, WEIGHTS, k=4, seed=0)
    assert set(folds.values()) == {0, 1, 2, 3}
    for user, model in by_user.items():
        trained_on = set(model.meta["train_users"])
        assert user not in trained_on
        assert trained_on == {u for u, f in folds.items() if f != folds[user]}
        assert model.meta["selected"] in FIT_CANDIDATES
    assert fold_of_users(["a", "b", "c"], 2, 0) == fold_of_users(["c", "a", "b"], 2, 0)  # order-free


def test_pool_batch_ndcg_equals_the_metric_registrys_ndcg():
    """The vectorised NDCG the fits maximise is the reported metric: ties keep pool order, padding never ranks,
    positives outside the pool lower the ideal DCG's reach exactly as ndcg_at_k counts them."""
    rng = np.random.default_rng(3)
    pools = [_pool(f"u{i}", n, rng) for i, n in enumerate([5, 12, 40, 3])]
    pools[1].relevant.append("not-in-the-pool")
    pools[1].features[:, FEATURE_INDEX["ease_rank"]] = 0.5  # all tied: pool order decides
    fusion = LinearFusion({"ease": 1.0, "text": 0.5})
    expected = [M.ndcg_at_k([p.ids[i] for i in np.argsort(-fusion.score(p.features), kind="stable")], p.relevant)
                for p in pools]
    assert np.allclose(pools_ndcg(pools, fusion), expected)
    assert np.allclose(PoolBatch.of(pools).linear_ndcg(fusion.weights), expected)


def _near_duplicate_pools(users: int, rng: np.random.Generator) -> tuple[list[LabelledPool], dict[str, np.ndarray]]:
    """Per user 50 items: the fused top 10 are near-duplicates of which only the first is a positive; the five
    positives after them point elsewhere, so diversity finds them."""
    pools, embs = [], {}
    for u in range(users):
        ids = [f"u{u}-{i}" for i in range(50)]
        f = np.zeros((50, len(FEATURES)))
        f[:, FEATURE_INDEX["text_rank"]] = np.linspace(1.0, 0.02, 50)  # distinct: the fused order is the id order
        labels = np.zeros(50, dtype=np.int8)
        labels[[0, 10, 11, 12, 13, 14]] = 1
        twin = rng.normal(size=8)
        for i, item in enumerate(ids):
            v = twin + 0.01 * rng.normal(size=8) if i < 10 else rng.normal(size=8)
            embs[item] = v / np.linalg.norm(v)
        pools.append(LabelledPool(f"u{u}", f"u{u}", ids, f, labels, [i for i, y in zip(ids, labels, strict=True) if y]))
    return pools, embs


def test_mmr_lambda_one_is_the_fused_order_and_cross_validation_finds_planted_diversity():
    pools, embs = _near_duplicate_pools(10, np.random.default_rng(4))
    fusion = LinearFusion({"text": 1.0})
    models = {p.user_id: fusion for p in pools}
    by_lam = mmr_ndcg_by_lambda(pools, models, embs, grid=(0.5, 1.0))
    assert np.allclose(by_lam[1.0], pools_ndcg(pools, fusion))  # no diversity: the order the fits maximise
    assert (by_lam[0.5] > by_lam[1.0]).all()
    folds = fold_of_users([p.user_id for p in pools], 5, 0)
    r = cross_validated_mmr_lambda(pools, models, folds, embs, setting=1.0)
    assert all(lam < 1.0 for lam in r["folds_chose"]) and len(r["folds_chose"]) == 5
    assert r["cv_ndcg@10"] > r["setting_ndcg@10"] == round(float(by_lam[1.0].mean()), 4)
    assert r["cv_minus_setting"]["mean_diff"] > 0 and r["cv_minus_setting"]["n_users"] == 10


def test_mmr_lambda_keeps_the_setting_when_diversity_earns_nothing():
    """Positives at the top of the fused order: every lambda that keeps them ties, and a tie keeps the setting."""
    pools, embs = _near_duplicate_pools(6, np.random.default_rng(5))
    for p in pools:
        p.labels[:] = 0
        p.labels[0] = 1
        p.relevant[:] = [p.ids[0]]
    models = {p.user_id: LinearFusion({"text": 1.0}) for p in pools}
    r = cross_validated_mmr_lambda(pools, models, fold_of_users([p.user_id for p in pools], 3, 0), embs, 0.7)
    assert r["folds_chose"] == [0.7, 0.7, 0.7] and r["cv_minus_setting"]["mean_diff"] == 0.0


def test_mmr_lambda_served_is_the_setting_else_the_fusions_else_the_prior():
    fitted = LinearFusion({"text": 1.0}, {"mmr_lambda": 0.9})
    assert served_mmr_lambda(fitted, Settings()) == 0.9
    assert served_mmr_lambda(LinearFusion({"text": 1.0}), Settings()) == MMR_LAMBDA_DEFAULT
    assert served_mmr_lambda(fitted, Settings(retrieve={"mmr_lambda": 0.0})) == 0.0  # 0 is a setting, not unset
    with pytest.raises(ValueError):
        Settings(retrieve={"mmr_lambda": 1.5})


def test_linear_fit_finds_the_planted_signal_and_round_trips(tmp_path):
    rng = np.random.default_rng(4)
    pools = [_pool(f"u{i}", 60, rng) for i in range(20)]
    for p in pools:
        p.features[:, FEATURE_INDEX["ease_rank"]] = p.features[:, FEATURE_INDEX["ease_raw"]]
        p.features[:, FEATURE_INDEX["popularity_rank"]] = p.features[:, FEATURE_INDEX["popularity_raw"]]
    model = fit_linear(pools, {"popularity": 1.0})  # starts on the wrong signal
    assert model.weights["ease"] > 4 * model.weights["popularity"]
    got = pools_ndcg(pools, model)
    assert all(np.isclose(v, 1.0) for v, p in zip(got, pools, strict=True) if p.relevant)  # positives first
    path = tmp_path / "fusion.json"
    model.save(path)
    again = load_fusion(path)
    assert again.kind == "linear" and again.weights == model.weights
    assert np.allclose(again.score(pools[0].features), model.score(pools[0].features))


def test_selection_is_inner_cross_validated_and_never_worse_than_its_simple_candidates():
    """With a planted signal every candidate's inner figure is recorded, the winner is the best of them, and the
    candidates nothing is fit for are scored on the training users as they are."""
    rng = np.random.default_rng(5)
    pools = [_pool(f"u{i}", 50, rng) for i in range(24)]
    for p in pools:
        p.features[:, FEATURE_INDEX["ease_rank"]] = p.features[:, FEATURE_INDEX["ease_raw"]]
    model = fit_fusion(pools, 0, {"popularity": 1.0})
    inner = model.meta["inner_cv_ndcg10"]
    assert set(inner) == set(FIT_CANDIDATES)
    assert model.meta["selected"] == max(inner, key=lambda n: (inner[n], -FIT_CANDIDATES.index(n)))
    assert inner[model.meta["selected"]] >= inner["ease alone"] >= 0.9 > inner["popularity alone"]
    assert model.meta["train_users"] == sorted(p.user_id for p in pools)


def test_a_fusion_file_of_unknown_kind_is_a_clear_error(tmp_path):
    path = tmp_path / "fusion.json"
    path.write_text(json.dumps({"kind": "mystery", "features": list(FEATURES)}))
    with pytest.raises(InvalidInputError, match="unknown kind"):
        load_fusion(path)
    path.write_text("[1, 2]")
    with pytest.raises(InvalidInputError, match="other features"):
        load_fusion(path)


# ---------------------------------------------------------------------------------------------- protocol


def _dataset(root: Path, n_users: int = 8) -> Path:
    genres = ["Space science fiction.", "Family drama.", "Road comedy."]
    items = [{"id": str(i), "title": f"Movie {i}", "text": f"Movie {i}. {genres[i % 3]}"} for i in range(30)]
    cases = []
    for u in range(n_users):
        g = u % 3
        for c in range(2):
            liked = [str(i) for i in range(30) if i % 3 == g]
            cases.append({"case_id": f"c{u}-{c}", "user_id": f"u{u}",
                          "texts": [{"text": f"I love {genres[g].lower().rstrip('.')} films"}],
                          "history": [liked[c]], "positives": liked[2 + c : 5 + c]})
    root.mkdir(parents=True, exist_ok=True)
    (root / "catalog.jsonl").write_text("\n".join(json.dumps(i) for i in items) + "\n")
    (root / "cases.dev.jsonl").write_text("\n".join(json.dumps(c) for c in cases) + "\n")
    return root


def test_leave_user_out_counts_other_users_positives_never_the_users_own(tmp_path):
    ds = load_dataset(_dataset(tmp_path / "ds"), "dev")
    case = ds.cases[0]
    usable = ds.behaviour_for(case)
    owners = {x.user_id.split(".")[0] for x in usable}
    assert "beh-u0" not in owners and len(owners) == 7
    other = next(c for c in ds.cases if c.user_id != case.user_id)
    assert set(other.positives) <= {x.item_id for x in usable}  # other users' positives count
    assert len(ds.own_behaviour(case)) + len(usable) == len(ds.behaviour)


def test_one_estimand_when_per_query_and_per_user_means_differ():
    # User a: one query, difference +1. User b: nine queries, difference 0. Per-query mean 0.1, per-user 0.5.
    groups = ["a"] + ["b"] * 9
    sys_a = [1.0] + [0.0] * 9
    sys_b = [0.0] * 10
    test = M.paired_permutation_test(sys_a, sys_b, groups, n_perm=2000, seed=0)
    assert test["mean_diff"] == pytest.approx(0.1)
    assert test["diff_ci_lo"] <= test["mean_diff"] <= test["diff_ci_hi"]
    lo, hi = M.bootstrap_ci(sys_a, groups, seed=0)
    assert lo <= float(np.mean(sys_a)) <= hi


@pytest.mark.slow
def test_tune_fits_stores_and_the_agent_loads_it(tmp_path, capsys):
    from typer.testing import CliRunner

    from interestlens.agent.service import InterestAgent
    from interestlens.tools.cli import app, main

    data = _dataset(tmp_path / "ds")
    store = tmp_path / "store"
    env = {"INTERESTLENS_EVAL_CACHE": str(tmp_path / "cache")}
    res = CliRunner().invoke(app, ["--store", str(store), "--llm", "none", "tune", "--data", str(data),
                                   "--folds", "2", "--json"], env=env)
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[res.output.index("{"):])
    assert report["selected"] in FIT_CANDIDATES and report["n_users"] == 8
    assert set(report["inner_cv_ndcg10"]) <= set(FIT_CANDIDATES)
    assert "fusion (cv)" in report["cross_validated_offline_ndcg@10"]
    mmr = report["mmr_lambda_cv"]
    assert len(mmr["folds_chose"]) == 2 and mmr["setting"] == MMR_LAMBDA_DEFAULT
    assert set(mmr["folds_chose"]) <= set(mmr["grid"]) and 0.0 <= mmr["cv_ndcg@10"] <= 1.0
    text = CliRunner().invoke(app, ["--store", str(store), "--llm", "none", "tune", "--data", str(data),
                                    "--folds", "2"], env=env)
    assert text.exit_code == 0 and "MMR lambda, cross-validated: folds chose" in text.output
    agent = InterestAgent(Settings(store=str(store), llm="none"))
    try:
        assert agent.fusion.kind == report["kind"] and agent.fusion.describe()["selected"] == report["selected"]
        assert report["mmr_lambda"] in mmr["grid"]  # fit on every user, stored with the fusion, served with it
        assert served_mmr_lambda(agent.fusion, agent.settings) == report["mmr_lambda"]
        assert served_mmr_lambda(agent.fusion, Settings(retrieve={"mmr_lambda": 0.35})) == 0.35  # a setting wins
    finally:
        agent.close()
    with pytest.raises(SystemExit) as refused:
        main(["--store", str(store), "--llm", "none", "tune", "--data", str(data), "--split", "test"])
    assert refused.value.code == 2 and "never on a split named test" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_cross_validates_on_dev_and_never_fits_on_test(tmp_path):
    from interestlens.evals.harness import run_recommend_eval

    data = _dataset(tmp_path / "ds")
    dev_lines = (data / "cases.dev.jsonl").read_text().splitlines()
    test_cases = [json.loads(line) for line in dev_lines[:6]]
    for c in test_cases:  # the same shapes, other users
        c["case_id"], c["user_id"] = "t" + c["case_id"], "v" + c["user_id"]
    test_lines = [json.dumps(c) for c in test_cases]
    (data / "cases.test.jsonl").write_text("\n".join(test_lines) + "\n")
    common = {"systems": "popularity,ease,interestlens-nollm", "settings": Settings(llm="none"),
              "progress": False, "cache_dir": tmp_path / "cache", "folds": 2}
    dev = run_recommend_eval(data, "dev", "full", out_dir=tmp_path / "dev", **common)
    fusion = dev.config["fusion"]
    assert "cross-validation" in fusion["mode"]
    assert {f["selected"] for f in fusion["per_fold"].values()} <= set(FIT_CANDIDATES)
    assert set(fusion["fold_of_user"]) == {f"u{i}" for i in range(8)}
    assert dev.config["commit"] and dev.config["settings"]["llm"] == "none"
    assert "Ablation" in (tmp_path / "dev" / "report.md").read_text()
    mmr = fusion["mmr_lambda_cv"]
    assert mmr["served"].startswith("each fold's users") and len(mmr["folds_chose"]) == 2
    assert {f["mmr_lambda"] for f in fusion["per_fold"].values()} == set(mmr["folds_chose"])  # what was served
    test = run_recommend_eval(data, "test", "full", **common)
    fit = test.config["fusion"]
    assert fit["mode"] == "fit on split(s) dev" and fit["selected"] in FIT_CANDIDATES
    assert not set(fit["train_users"]) & {c.user_id for c in load_dataset(data, "test").cases}
    # The lambda a test split is served is the one fit with that model on the dev users (what `tune` stores).
    assert fit["mmr_lambda_fit"]["fit_on"] == ["dev"] and fit["mmr_lambda"] == fit["mmr_lambda_fit"]["served"]
    assert fit["mmr_lambda"] in {float(g) for g in fit["mmr_lambda_fit"]["ndcg@10_by_lambda_on_fit_users"]}
