"""Outputs of an evaluation run: results.json, report.md (systems x metrics with CIs) and metrics.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from interestlens.evals.eval_results import EvalResults

TABLE_METRICS = ("ndcg@10", "recall@10", "hit@10", "mrr", "coverage@10", "diversity@10", "novelty@10")
OPS_COLUMNS = (
    "latency_ms_p50",
    "latency_ms_p95",
    "llm_calls",
    "tokens",
    "invalid_outputs",
    "fallbacks",
    "hallucinated_ids",
    "duplicate_ids",
    "history_ids",
    "seen_ids",
    "errors",
)
PLOT_METRICS = ("ndcg@10", "recall@10", "hit@10")


def write_outputs(results: EvalResults, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results.model_dump(mode="json"), indent=2) + "\n")
    (out_dir / "report.md").write_text(render_markdown(results))
    plot_metrics(results, out_dir / "metrics.png")


def _fmt(v: Any, digits: int = 4) -> str:
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def render_markdown(results: EvalResults) -> str:
    r = results
    lines = [
        f"# Recommendation evaluation: {r.dataset} / {r.split} / {r.protocol}",
        "",
        f"{r.n_cases} cases, {r.n_users} users, {r.config.get('n_queries', '?')} queries; LLM: `{r.llm}`; "
        f"seed {r.config.get('seed')}; limit {r.config.get('limit')}; wall {r.config.get('wall_s')} s.",
        f"Behaviour signals: {r.config.get('behaviour', '')}.",
        "Values are means over queries; [lo, hi] are 95% bootstrap intervals resampling users.",
        "",
        "| system | " + " | ".join(TABLE_METRICS) + " |",
        "|---|" + "---|" * len(TABLE_METRICS),
    ]
    for name, s in r.systems.items():
        cells = []
        for m in TABLE_METRICS:
            v = s.get(m)
            ci = s.get(f"{m}_ci")
            cells.append(f"{_fmt(v)} [{_fmt(ci[0], 3)}, {_fmt(ci[1], 3)}]" if ci else _fmt(v))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Cost and safety",
        "",
        "| system | " + " | ".join(OPS_COLUMNS) + " |",
        "|---|" + "---|" * len(OPS_COLUMNS),
    ]
    for name, s in r.systems.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(s.get(c), 1) for c in OPS_COLUMNS) + " |")
    sig = r.significance
    lines += ["", "## Significance", ""]
    if sig:
        lines.append(f"{sig['test']} on {sig['metric']} against the best baseline, `{sig['baseline']}`:")
        lines.append("")
        for name, t in sig["comparisons"].items():
            verdict = "significant" if t["significant_at_0.05"] else "not significant"
            lines.append(
                f"- `{name}` − `{sig['baseline']}`: {t['mean_diff']:+.4f} "
                f"(95% CI [{t['diff_ci_lo']:+.4f}, {t['diff_ci_hi']:+.4f}]), p = {t['p_value']:.4f} "
                f"over {t['n_users']} users: {verdict} at 0.05"
            )
    else:
        lines.append("No interestlens system and baseline pair in this run.")
    fusion = r.config.get("fusion") or {}
    if fusion:
        lines += ["", "## Fusion", "", f"interestlens systems fuse their signals with: {fusion.get('mode')}"
                  f" ({fusion.get('kind', 'linear')})."]
        ablation = fusion.get("ablation_offline_ndcg@10")
        if ablation:
            lines += ["", f"Ablation, ndcg@10 ({fusion.get('ablation_note', '')}):", "",
                      "| ranking | ndcg@10 |", "|---|---|"]
            lines += [f"| {name} | {value:.4f} |" for name, value in ablation.items()]
    lines += ["", f"Code: commit `{r.config.get('commit', 'unknown')}`; the resolved settings are in results.json.",
              "", "## Command", "", "```", str(r.config.get("command", "")), "```", ""]
    return "\n".join(lines)


def plot_metrics(results: EvalResults, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(results.systems)
    x = np.arange(len(names))
    width = 0.8 / len(PLOT_METRICS)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(names) + 2), 4.2))
    for j, metric in enumerate(PLOT_METRICS):
        vals = np.array([results.systems[n].get(metric, 0.0) for n in names])
        cis = [results.systems[n].get(f"{metric}_ci") or [v, v] for n, v in zip(names, vals, strict=True)]
        err = np.array(
            [
                [max(v - lo, 0.0) for v, (lo, _) in zip(vals, cis, strict=True)],
                [max(hi - v, 0.0) for v, (_, hi) in zip(vals, cis, strict=True)],
            ]
        )
        ax.bar(x + (j - (len(PLOT_METRICS) - 1) / 2) * width, vals, width, yerr=err, capsize=2, label=metric)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=25, ha="right")
    ax.set_ylabel("score (95% CI over users)")
    ax.set_title(f"{results.dataset} / {results.split} / {results.protocol} ({results.n_cases} cases)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
