"""Decomposition benchmark: does the non-LLM observe path find what a person would sign?

Two parts, both on the exact code `InterestAgent.observe` runs with `llm="none"` (title links + decompose):
- **ReDial mentions** (`cases.<split>.jsonl` rows with `mentions`: every movie the seeker named, with the seeker's own
  label 1 liked / 0 did not like / 2 did not say): linking precision and recall (linked items vs mentioned items,
  micro over cases) and polarity accuracy on the linked mentions that carry a 0/1 label.
- **A labelled set** (evals/data/decomposition_labelled.jsonl, written for this benchmark, walk-through kind): each
  text lists the interests a person would write down (polarity, the sentence that is its evidence, keywords a fair
  name contains) and titles that must or must not link. Scored: interest recall (an expected interest is found when
  a predicted interest's evidence overlaps its sentence), precision (a predicted interest is right when its evidence
  overlaps some expected sentence; every interest on a non-preference text is wrong), polarity accuracy and
  name-to-evidence agreement (the name contains one of the keywords) on the found ones.

Entry point: `run_decomposition_benchmark(data_dir, out_dir)`; writes results.json (with git commit and settings)
and report.md. `python -m interestlens.evals.decomposition --data ../shared/datasets/redial --out DIR` runs it.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from interestlens.agent.config import Settings
from interestlens.agent.decompose import decompose
from interestlens.agent.embeddings import Embedder, make_embedder
from interestlens.agent.linking import TitleLinker, link_interests
from interestlens.agent.models import Item, Polarity, SourceText, StageStats, SubInterest
from interestlens.agent.polarity import polarity_of
from interestlens.evals.data import EvalCase
from interestlens.evals.eval_results import git_commit

LABELLED = Path(__file__).resolve().parent / "data" / "decomposition_labelled.jsonl"
DEMO_CATALOG = Path(__file__).resolve().parents[1] / "agent" / "data" / "demo_catalog.jsonl"


def _read_items(path: Path) -> list[Item]:
    with path.open(encoding="utf-8") as f:
        return [Item.model_validate_json(line) for line in f if line.strip()]


def _read_cases(data_dir: Path, split: str) -> list[EvalCase]:
    path = data_dir / f"cases.{split}.jsonl"
    with path.open(encoding="utf-8") as f:
        return [EvalCase.model_validate_json(line) for line in f if line.strip()]


def observe_interests(
    sources: Sequence[SourceText], linker: TitleLinker, embedder: Embedder, settings: Settings
) -> list[SubInterest]:
    """What `InterestAgent.observe` adds with llm="none": title links plus the non-LLM decomposition."""
    stats = StageStats()
    linked = link_interests(linker, sources, polarity_of)
    found = decompose(sources, llm=None, embedder=embedder, settings=settings, stats=stats)
    return linked + found


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


# ---------------------------------------------------------------------------------------------------- ReDial


def score_mentions(cases: Sequence[EvalCase], linker: TitleLinker) -> dict[str, Any]:
    """Linking precision/recall against every case's `mentions`, and polarity accuracy on labelled ones."""
    tp = n_linked = n_mentioned = 0
    pol_right = pol_total = 0
    dislike_right = dislike_total = 0
    n_cases = 0
    for case in cases:
        if not case.texts:
            continue
        n_cases += 1
        mentioned = {m.item_id: m.liked for m in case.mentions}
        linked = {it.linked_item_ids[0]: it.polarity for it in link_interests(linker, case.texts, polarity_of)}
        n_linked += len(linked)
        n_mentioned += len(mentioned)
        tp += len(set(linked) & set(mentioned))
        for item_id, label in mentioned.items():
            if item_id not in linked or label == 2:
                continue
            want = Polarity.LIKE if label == 1 else Polarity.DISLIKE
            pol_total += 1
            pol_right += linked[item_id] is want
            if label == 0:
                dislike_total += 1
                dislike_right += linked[item_id] is Polarity.DISLIKE
    return {
        "cases": n_cases,
        "mentions": n_mentioned,
        "linked": n_linked,
        "link_precision": _ratio(tp, n_linked),
        "link_recall": _ratio(tp, n_mentioned),
        "polarity_accuracy": _ratio(pol_right, pol_total),
        "polarity_labelled_linked": pol_total,
        "dislike_recall": _ratio(dislike_right, dislike_total),
        "dislikes_labelled_linked": dislike_total,
    }


# ---------------------------------------------------------------------------------------------------- labelled set


def _overlaps(spans: Sequence[tuple[int, int]], lo: int, hi: int) -> bool:
    return any(s < hi and lo < e for s, e in spans)


def score_labelled(
    rows: Sequence[dict[str, Any]], linker: TitleLinker, embedder: Embedder, settings: Settings
) -> dict[str, Any]:
    """Interest recall, precision, polarity and name agreement of the observe path on the labelled texts."""
    expected_n = found_n = pol_ok = name_ok = strict_ok = 0
    predicted_n = predicted_ok = 0
    non_pref_texts = non_pref_clean = 0
    link_wanted = link_hit = forbidden = 0
    per_case: list[dict[str, Any]] = []
    for row in rows:
        text = row["text"]
        src = SourceText(text=text, source="chat")
        interests = observe_interests([src], linker, embedder, settings)
        spans = {it.id: [(e.start, e.end) for e in it.evidence if e.source_id == src.id] for it in interests}
        expect = row.get("expect", [])
        exp_spans = []
        for e in expect:
            lo = text.find(e["evidence"])
            exp_spans.append((lo, lo + len(e["evidence"])))
        case_out: dict[str, Any] = {
            "case_id": row["case_id"],
            "predicted": [f"{it.polarity.value}:{it.name}" for it in interests],
            "missed": [],
        }
        for e, (lo, hi) in zip(expect, exp_spans, strict=True):
            expected_n += 1
            covering = [it for it in interests if _overlaps(spans[it.id], lo, hi)]
            if not covering:
                case_out["missed"].append(e["evidence"])
                continue
            found_n += 1
            keywords = [k.lower() for k in e["keywords"]]

            def named(it: SubInterest, keywords: list[str] = keywords) -> bool:
                return any(k in it.name.lower() for k in keywords)

            want = Polarity(e["polarity"])
            best = max(covering, key=lambda it: (named(it), it.polarity is want))
            pol_ok += best.polarity is want
            name_ok += named(best)
            strict_ok += best.polarity is want and named(best)
        for it in interests:
            predicted_n += 1
            predicted_ok += any(_overlaps(spans[it.id], lo, hi) for lo, hi in exp_spans)
        if not expect:
            non_pref_texts += 1
            non_pref_clean += not interests
        titles = [t for it in interests if it.linked_item_ids for t in [it.name.lower()]]
        for want_title in row.get("links", []):
            link_wanted += 1
            link_hit += any(want_title.lower() in t for t in titles)
        for bad in row.get("no_links", []):
            hits = [t for t in titles if bad.lower() in t]
            forbidden += bool(hits)
            if hits:
                case_out.setdefault("forbidden_links", []).extend(hits)
        per_case.append(case_out)
    return {
        "texts": len(rows),
        "expected_interests": expected_n,
        "predicted_interests": predicted_n,
        "interest_recall": _ratio(found_n, expected_n),
        "interest_precision": _ratio(predicted_ok, predicted_n),
        # Found with the right polarity and a fair name: what a person would sign.
        "interest_recall_strict": _ratio(strict_ok, expected_n),
        "polarity_accuracy": _ratio(pol_ok, found_n),
        "name_agreement": _ratio(name_ok, found_n),
        "non_preference_texts_clean": _ratio(non_pref_clean, non_pref_texts),
        "expected_links_found": _ratio(link_hit, link_wanted),
        "forbidden_links": forbidden,
        "cases": per_case,
    }


# ---------------------------------------------------------------------------------------------------- entry point


def run_decomposition_benchmark(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    split: str = "dev",
    max_cases: int | None = None,
    labelled: str | Path = LABELLED,
    embedder: Embedder | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Run both parts; write results.json and report.md into out_dir; return the results."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = settings or Settings(store="unused", llm="none")
    embedder = embedder or make_embedder("minilm")
    t0 = time.perf_counter()
    catalog = _read_items(data_dir / "catalog.jsonl")
    cases = [c for c in _read_cases(data_dir, split) if c.mentions or c.texts]
    if max_cases is not None:
        cases = cases[:max_cases]
    mentions = score_mentions(cases, TitleLinker(catalog))
    t1 = time.perf_counter()
    with Path(labelled).open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    # The labelled texts link against the dataset's catalog plus the demo catalog (books, music, films).
    lab_linker = TitleLinker(catalog + (_read_items(DEMO_CATALOG) if DEMO_CATALOG.exists() else []))
    lab = score_labelled(rows, lab_linker, embedder, settings)
    t2 = time.perf_counter()
    results = {
        "benchmark": "decomposition",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "settings": {
            "data": str(data_dir),
            "split": split,
            "max_cases": max_cases,
            "labelled": str(labelled),
            "llm": "none",
            "embedder": getattr(embedder, "model_id", type(embedder).__name__),
            "max_interests_per_chunk": settings.decompose.max_interests_per_chunk,
            "chunk_chars": settings.decompose.chunk_chars,
            "resolved": settings.model_dump(mode="json"),
        },
        "mentions": mentions,
        "labelled": lab,
        "seconds": {"mentions": round(t1 - t0, 2), "labelled": round(t2 - t1, 2)},
    }
    (out_dir / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    (out_dir / "report.md").write_text(render_report(results), encoding="utf-8")
    return results


def render_report(r: dict[str, Any]) -> str:
    m, lab = r["mentions"], r["labelled"]
    lines = [
        "# Decomposition benchmark",
        "",
        f"commit `{r['git_commit']}`, {r['created']}, "
        f"data `{r['settings']['data']}` ({r['settings']['split']}), llm none",
        "",
        "## Named titles (ReDial `mentions`)",
        "",
        "| cases | mentions | linked | link precision | link recall | polarity accuracy (n) | dislike recall (n) |",
        "|---|---|---|---|---|---|---|",
        f"| {m['cases']} | {m['mentions']} | {m['linked']} | {m['link_precision']} | {m['link_recall']} | "
        f"{m['polarity_accuracy']} ({m['polarity_labelled_linked']}) | {m['dislike_recall']} "
        f"({m['dislikes_labelled_linked']}) |",
        "",
        "## Labelled texts",
        "",
        "| texts | expected | predicted | recall | strict recall | precision | polarity | name agreement |"
        " non-preference clean | expected links | forbidden links |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {lab['texts']} | {lab['expected_interests']} | {lab['predicted_interests']} | {lab['interest_recall']} | "
        f"{lab['interest_recall_strict']} | "
        f"{lab['interest_precision']} | {lab['polarity_accuracy']} | {lab['name_agreement']} | "
        f"{lab['non_preference_texts_clean']} | {lab['expected_links_found']} | {lab['forbidden_links']} |",
        "",
        "| case | predicted | missed |",
        "|---|---|---|",
    ]
    for c in lab["cases"]:
        pred = "; ".join(c["predicted"]).replace("|", "/")
        missed = "; ".join(c["missed"]).replace("|", "/")
        extra = f" (forbidden: {', '.join(c['forbidden_links'])})" if c.get("forbidden_links") else ""
        lines.append(f"| {c['case_id']} | {pred}{extra} | {missed} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="interestlens-eval-decomposition", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="dataset folder (catalog.jsonl, cases.<split>.jsonl)")
    p.add_argument("--out", required=True, help="output folder for results.json and report.md")
    p.add_argument("--split", default="dev")
    p.add_argument("--max-cases", type=int, default=None)
    a = p.parse_args(argv)
    r = run_decomposition_benchmark(a.data, a.out, split=a.split, max_cases=a.max_cases)
    print(render_report({**r, "labelled": {**r["labelled"], "cases": []}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
