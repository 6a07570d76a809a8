"""Does the LLM's ranking earn a weight? Its weight in the rerank fusion, fit per model by cross-validation.

For every case of a split (all cases: no subset), the no-LLM pipeline ranks as `interestlens-nollm` does in the
harness (the fusion each user gets is fit on other users only, `fusion_per_user`; the user's own behaviour is
held out). The LLM then scores the top `reranker.top_n` (label log-probabilities, one forward pass,
agent.label_scoring) and the two are fused as `recommend` fuses them (`agent.rerank.fused_order`):
rank(retrieval) + w * rank(LLM).

The weight w is chosen from `WEIGHT_GRID` by K-fold cross-validation over users: on each fold the w with the best
mean ndcg@10 over the training users (ties to the smaller w) scores the held-out users. Reported, on one estimand
(the mean over queries; intervals and the paired test resample users): the no-LLM pipeline (w = 0), the LLM's
order alone (a baseline of the signal on its own), and the cross-validated weight. The weight fit on all users is
what to deploy for that model: `llm_rank_weights.json` in the output folder, for
`INTERESTLENS_RERANKER__LLM_RANK_WEIGHTS`.

    python -m interestlens.evals.llm_weight --data ../shared/datasets/redial --split dev --llm smollm2 \\
        --out evals/results/llm-weight-redial-dev
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interestlens.agent.config import Settings
from interestlens.agent.embeddings import make_embedder
from interestlens.agent.errors import InterestLensError, InvalidInputError
from interestlens.agent.label_scoring import llm_rank_scores
from interestlens.agent.llm import make_llm
from interestlens.agent.models import Candidate, StageStats
from interestlens.agent.rerank import fused_order
from interestlens.evals import metrics as M
from interestlens.evals.baselines import CatalogEmbeddings, item_text
from interestlens.evals.data import load_dataset
from interestlens.evals.eval_results import git_commit
from interestlens.evals.fitting import DEFAULT_FOLDS, fusion_per_user
from interestlens.evals.leave_user_out import AgentEnvironment, default_cache_dir, fresh_user, user_loop
from interestlens.evals.protocols import FULL_K, PROTOCOL_TEXT, PROTOCOLS, build_queries

log = logging.getLogger(__name__)

# Weights tried for the LLM's rank-normalised score (the retrieval rank has weight 1); "llm alone" is the
# LLM's order with retrieval breaking ties, the signal run on its own.
WEIGHT_GRID = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
LLM_ALONE = 1e6
METRIC = "ndcg@10"


@dataclass
class ScoredQuery:
    """One query: the pipeline's ranking, the LLM's scores of its head, the ground truth."""

    user: str
    key: str
    ranked: list[str]  # the no-LLM pipeline's order, seen items removed
    base: dict[str, float]  # head item -> the pipeline's score
    llm: dict[str, float]  # head item -> the LLM's label log-share ({} when the pass failed)
    relevant: list[str]

    def ranking(self, weight: float, llm: dict[str, float] | None = None) -> list[str]:
        head = {i: self.base[i] for i in self.ranked if i in self.base}  # in the pipeline's order (ties)
        order, _ = fused_order(head, self.llm if llm is None else llm, weight)
        return order + [i for i in self.ranked if i not in self.base]

    def random_head(self, seed: int) -> list[str]:
        """The head in a seeded random order: what an LLM alone must beat to carry any signal."""
        rng = np.random.default_rng([seed, *self.key.encode("utf-8")[:32]])
        return self.ranking(LLM_ALONE, {i: float(rng.random()) for i in self.base})

    def score(self, weight: float, metric: str = METRIC) -> float:
        return M.query_scores(self.ranking(weight), self.relevant)[metric]


def score_queries(
    data_dir: str | Path, split: str, protocol: str, llm_spec: str, settings: Settings, *, limit: int | None,
    seed: int, folds: int, fusion: str, cache_dir: Path, progress: bool,
) -> tuple[list[ScoredQuery], dict[str, Any]]:
    """Every query of the split ranked by the no-LLM pipeline, its head scored by the LLM."""
    from tqdm import tqdm

    ds = load_dataset(data_dir, split, limit=limit, text_fields=settings.catalog.item_text_fields)
    if not ds.cases:
        raise InvalidInputError(f"{Path(data_dir) / f'cases.{split}.jsonl'}: no cases to evaluate")
    embedder = make_embedder(settings.embedder, base_url=settings.openai.base_url, api_key=settings.openai.api_key)
    emb = CatalogEmbeddings(ds, embedder, cache_dir)
    if hasattr(embedder, "prime"):
        embedder.prime([item_text(ds, i) for i in emb.ids], emb.matrix)
    env = AgentEnvironment(ds, settings, cache_dir, embedder, progress)
    llm = make_llm(llm_spec, settings)
    top_n = settings.reranker.top_n
    k = FULL_K if protocol == "full" else 20
    ops = {"llm_passes": 0, "failed_passes": 0, "prompt_tokens": 0, "pass_ms": [], "errors": 0}
    out: list[ScoredQuery] = []
    try:
        fusion_by_user, fusion_info = fusion_per_user(env, ds, data_dir, split, protocol, seed, fusion, folds,
                                                      progress)
        agent = env.agent(with_llm=False)
        bar = tqdm(total=len(ds.cases), desc=f"llm-weight {ds.name}/{split}", disable=not progress, unit="case")
        for user, cases in user_loop(env, ds.cases):
            agent.set_fusion(fusion_by_user.get(user))
            for case in cases:
                consumed = ds.consumed(case)
                try:
                    with fresh_user(agent, ds, case) as (uid, _obs):
                        profile = agent.profile(uid)
                        for q in build_queries(ds, case, protocol, seed):
                            res = agent.recommend(uid, context=case.context, k=k, rerank=False,
                                                  candidate_ids=q.candidate_ids)
                            recs = [r for r in res.recommendations if r.item.id not in consumed]
                            head = [Candidate(item=r.item, score=r.score) for r in recs[:top_n]]
                            stats = StageStats()
                            t_pass = time.perf_counter()
                            try:
                                llm_scores = llm_rank_scores(head, res.intents, profile, case.context, llm,
                                                             settings, stats)
                            except InterestLensError as e:
                                log.warning("LLM scoring failed on %s: %s", q.key, e)
                                llm_scores, ops["failed_passes"] = {}, ops["failed_passes"] + 1
                            ops["llm_passes"] += stats.llm_calls
                            ops["prompt_tokens"] += stats.prompt_tokens
                            ops["pass_ms"].append((time.perf_counter() - t_pass) * 1000.0)
                            out.append(ScoredQuery(case.user_id, q.key, [r.item.id for r in recs],
                                                   {c.item.id: c.score for c in head}, llm_scores,
                                                   list(q.relevant)))
                except InterestLensError as e:
                    log.warning("case %s failed: %s", case.case_id, e)
                    ops["errors"] += 1
                bar.update(1)
        bar.close()
    finally:
        env.close()
        close = getattr(llm, "close", None)
        if close is not None:
            close()
    info = {"fusion": fusion_info, "model_id": llm.model_id, "dataset": ds.name, "n_cases": len(ds.cases),
            "behaviour": ds.behaviour_description, "ops": ops}
    return out, info


def _mean(queries: Sequence[ScoredQuery], weight: float) -> float:
    return float(np.mean([q.score(weight) for q in queries])) if queries else 0.0


def best_weight(queries: Sequence[ScoredQuery], grid: Sequence[float] = WEIGHT_GRID) -> float:
    """The grid weight with the best mean ndcg@10 over `queries`; ties go to the smaller weight."""
    best, best_value = grid[0], -1.0
    for w in grid:
        value = _mean(queries, w)
        if value > best_value + 1e-12:
            best, best_value = w, value
    return best


def cross_validated_weights(
    queries: Sequence[ScoredQuery], folds: int, seed: int, grid: Sequence[float] = WEIGHT_GRID
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """user -> the weight chosen without that user (K folds over users), and each fold's record."""
    users = sorted({q.user for q in queries})
    if len(users) < 2:
        raise InvalidInputError("cross-validating the LLM weight needs at least 2 users")
    order = np.random.default_rng(seed).permutation(len(users))
    fold_of = {users[i]: n % min(folds, len(users)) for n, i in enumerate(order)}
    by_user: dict[str, float] = {}
    record = []
    for f in range(min(folds, len(users))):
        train = [q for q in queries if fold_of[q.user] != f]
        w = best_weight(train, grid)
        held = sorted(u for u, g in fold_of.items() if g == f)
        by_user.update(dict.fromkeys(held, w))
        record.append({"fold": f, "weight": w, "train_users": len({q.user for q in train}), "test_users": held,
                       "train_ndcg@10_by_weight": {str(g): round(_mean(train, g), 5) for g in grid}})
    return by_user, record


def evaluate(
    queries: Sequence[ScoredQuery], folds: int, seed: int, n_boot: int = 1000
) -> dict[str, Any]:
    """The three rows (no LLM, LLM alone, cross-validated weight), the paired test, the weight to deploy."""
    if not queries:
        raise InvalidInputError("no scored queries")
    by_user, record = cross_validated_weights(queries, folds, seed)
    groups = [q.user for q in queries]
    rows: dict[str, dict[str, Any]] = {}
    per_query: dict[str, list[dict[str, float]]] = {}
    for name, rank_of in (("interestlens-nollm (w = 0)", lambda q: q.ranking(0.0)),
                          ("head in random order", lambda q: q.random_head(seed)),
                          ("llm alone", lambda q: q.ranking(LLM_ALONE)),
                          ("interestlens + llm (w by cv)", lambda q: q.ranking(by_user[q.user]))):
        scores = [M.query_scores(rank_of(q), q.relevant) for q in queries]
        per_query[name] = scores
        row: dict[str, Any] = {}
        for metric in ("ndcg@10", "hit@10", "mrr"):
            vals = [s[metric] for s in scores]
            row[metric] = float(np.mean(vals))
            row[f"{metric}_ci"] = list(M.bootstrap_ci(vals, groups, n_boot=n_boot, seed=seed))
        rows[name] = row
    test = M.paired_permutation_test([s[METRIC] for s in per_query["interestlens + llm (w by cv)"]],
                                     [s[METRIC] for s in per_query["interestlens-nollm (w = 0)"]], groups, seed=seed)
    curve = {str(w): _mean(queries, w) for w in (*WEIGHT_GRID, LLM_ALONE)}
    return {"systems": rows, "paired_test_cv_vs_nollm": test, "per_fold": record, "curve_all_users": curve,
            "weight_fit_on_all_users": best_weight(queries), "n_queries": len(queries),
            "n_users": len(set(groups)), "scored_queries": sum(bool(q.llm) for q in queries)}


def write_outputs(result: dict[str, Any], out_dir: Path, queries: Sequence[ScoredQuery] = ()) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    if queries:  # what evaluate() reads, so a new analysis needs no new LLM pass
        with (out_dir / "scored_queries.jsonl").open("w", encoding="utf-8") as f:
            for q in queries:
                f.write(json.dumps(q.__dict__) + "\n")
    (out_dir / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    model_id = result["model_id"]
    (out_dir / "llm_rank_weights.json").write_text(
        json.dumps({model_id: result["weight_fit_on_all_users"]}, indent=2) + "\n")
    (out_dir / "report.md").write_text(render_markdown(result))
    _plot(result, out_dir / "weight_curve.png")


def render_markdown(r: dict[str, Any]) -> str:
    t = r["paired_test_cv_vs_nollm"]
    ops = r["ops"]
    passes = max(1, ops["llm_passes"])
    lines = [
        f"# LLM rank weight: {r['model_id']} on {r['dataset']} / {r['split']} / {r['protocol']}",
        "",
        f"{r['n_cases']} cases, {r['n_users']} users, {r['n_queries']} queries ({r['scored_queries']} scored by "
        f"the LLM); commit `{r['commit']}`; wall {r['wall_s']} s. Fusion of the no-LLM pipeline: "
        f"{r['fusion'].get('mode')}.",
        "Means over queries; [lo, hi] are 95% bootstrap intervals resampling users. The weight is chosen by "
        f"{r['folds']}-fold cross-validation over users from {list(WEIGHT_GRID)}.",
        "",
        "| system | ndcg@10 | hit@10 | mrr |",
        "|---|---|---|---|",
    ]
    for name, s in r["systems"].items():
        cells = [f"{s[m]:.4f} [{s[m + '_ci'][0]:.3f}, {s[m + '_ci'][1]:.3f}]" for m in ("ndcg@10", "hit@10", "mrr")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Cross-validated weight against w = 0, ndcg@10: {t['mean_diff']:+.4f} "
        f"[{t['diff_ci_lo']:+.4f}, {t['diff_ci_hi']:+.4f}], p = {t['p_value']:.3f} ({t['n_users']} users).",
        f"Folds chose: {[f['weight'] for f in r['per_fold']]}. Fit on all users (deploy): "
        f"**{r['weight_fit_on_all_users']}** (`llm_rank_weights.json`).",
        "",
        "ndcg@10 over all users by weight (in-sample, for the curve only): "
        + ", ".join(f"{w}: {v:.4f}" for w, v in r["curve_all_users"].items()),
        "",
        f"Scoring passes: {ops['llm_passes']}, failed {ops['failed_passes']}, case errors {ops['errors']}; "
        f"prompt tokens per pass {ops['prompt_tokens'] / passes:.0f}; pass latency p50 "
        f"{M.percentile(ops['pass_ms'], 50):.0f} ms, p95 {M.percentile(ops['pass_ms'], 95):.0f} ms.",
        "",
        f"Command: `{r['command']}`",
        "",
    ]
    return "\n".join(lines)


def _plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(float(w), v) for w, v in r["curve_all_users"].items() if float(w) < LLM_ALONE]
    weights, values = [w for w, _ in points], [v for _, v in points]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(weights, values, marker="o", label="all users, in-sample")
    ax.axhline(r["systems"]["llm alone"]["ndcg@10"], color="grey", ls=":", label="llm alone")
    ax.axhline(r["systems"]["interestlens + llm (w by cv)"]["ndcg@10"], color="C1", ls="--",
               label="weight by cross-validation")
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlabel("weight of the LLM's rank (retrieval rank = 1)")
    ax.set_ylabel("ndcg@10")
    ax.set_title(f"{r['model_id']} on {r['dataset']} / {r['split']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(
    data_dir: str | Path, split: str = "dev", protocol: str = "full", llm: str = "smollm2", *,
    out_dir: str | Path | None = None, limit: int | None = None, seed: int = 0, folds: int = DEFAULT_FOLDS,
    fusion: str = "cv", settings: Settings | None = None, cache_dir: str | Path | None = None,
    progress: bool = True, command: str | None = None,
) -> dict[str, Any]:
    if protocol not in PROTOCOLS:
        raise InvalidInputError(f"unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
    settings = settings or Settings()
    t0 = time.perf_counter()
    commit = git_commit()  # at the start: the code that was loaded, whatever changes in the tree meanwhile
    queries, info = score_queries(data_dir, split, protocol, llm, settings, limit=limit, seed=seed, folds=folds,
                                  fusion=fusion, cache_dir=Path(cache_dir) if cache_dir else default_cache_dir(),
                                  progress=progress)
    result = {
        "commit": commit, "split": split, "protocol": protocol, "protocol_text": PROTOCOL_TEXT[protocol],
        "llm": llm, "folds": folds, "seed": seed, "limit": limit, "weight_grid": list(WEIGHT_GRID),
        **info, **evaluate(queries, folds, seed),
        "settings": settings.model_dump(mode="json"),
        "estimand": "mean over queries; intervals and the paired test resample / flip whole users",
        "command": command or " ".join(shlex.quote(a) for a in sys.argv),
    }
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    if out_dir is not None:
        write_outputs(result, Path(out_dir), queries)
    return result


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="dev")
    ap.add_argument("--protocol", default="full", choices=PROTOCOLS)
    ap.add_argument("--llm", default="smollm2", help="smollm2, gemma3, gguf:PATH, openai:MODEL")
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", type=int, default=DEFAULT_FOLDS)
    ap.add_argument("--fusion", default="cv", help="cv (default), linear, or a fusion file")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    r = run(args.data, args.split, args.protocol, args.llm, out_dir=args.out, limit=args.limit, seed=args.seed,
            folds=args.folds, fusion=args.fusion)
    print((Path(args.out) / "report.md").read_text())
    print(f"llm weight, fit on all users: {r['weight_fit_on_all_users']}")


if __name__ == "__main__":
    main()
