"""The issue's walk-through, as a check anyone can rerun: what a new user who says three things sees in the top 10.

A new user (no behaviour of their own; every other user's counts) observes one text on a catalog in the shared
format and asks for k items without a context. Each case states what a person expects of the list, in terms the
catalog's own metadata decides (genres, words of the item's text), and the check counts them:

    python -m interestlens.evals.walkthrough --data ../shared/datasets/movielens --out evals/results/walkthrough

Writes results.json (commit, settings, the lists and the counts) and report.md. `--llm none` is the default: the
no-LLM path is what is judged; pass `--llm` to look at another.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interestlens.agent.config import Settings
from interestlens.agent.embeddings import make_embedder
from interestlens.agent.models import Item
from interestlens.evals.baselines import CatalogEmbeddings, item_text
from interestlens.evals.data import load_dataset
from interestlens.evals.eval_results import git_commit
from interestlens.evals.leave_user_out import AgentEnvironment, default_cache_dir


@dataclass(frozen=True)
class Expectation:
    """`at_least` items (or `at_most`) of the list match: a genre in metadata.genres, or a word in the item text."""

    name: str
    genres: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    at_least: int | None = None
    at_most: int | None = None

    def matches(self, item: Item) -> bool:
        genres = {str(g).lower() for g in (item.metadata or {}).get("genres") or []}
        text = f"{item.title} {item.text}".lower()
        return bool(genres & {g.lower() for g in self.genres}) or any(w in text for w in self.words)

    def holds(self, count: int) -> bool:
        return (self.at_least is None or count >= self.at_least) and (self.at_most is None or count <= self.at_most)


@dataclass(frozen=True)
class WalkCase:
    name: str
    text: str
    expect: tuple[Expectation, ...]
    k: int = 10
    context: str | None = None


# The MovieLens text: "sci-fi and heists for the first, no horror anywhere".
CASES = (
    WalkCase(
        "space opera, heists, no horror",
        "I love big space operas and science fiction epics like Star Wars, with starships and alien worlds. Lately "
        "I'm also into clever heist thrillers. But I can't stand horror movies, gore makes me sick.",
        (
            Expectation("science fiction", genres=("Sci-Fi",), at_least=1),
            Expectation("heist", words=("heist",), at_least=1),
            Expectation("horror", genres=("Horror",), at_most=0),
            # Not five episodes of the one series named (retrieve.series_cap).
            Expectation("Star Wars episodes", words=("star wars: episode",), at_most=2),
        ),
    ),
)


@dataclass
class WalkResult:
    case: str
    text: str
    items: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    holds: dict[str, bool] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(self.holds.values())


def run(data_dir: str | Path, settings: Settings | None = None, cases: tuple[WalkCase, ...] = CASES,
        cache_dir: str | Path | None = None) -> list[WalkResult]:
    settings = settings or Settings(llm="none")
    ds = load_dataset(data_dir, "dev", text_fields=settings.catalog.item_text_fields)
    embedder = make_embedder(settings.embedder, base_url=settings.openai.base_url, api_key=settings.openai.api_key)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    catalog = CatalogEmbeddings(ds, embedder, cache)
    if hasattr(embedder, "prime"):  # the store ingest reuses the cached catalog vectors
        embedder.prime([item_text(ds, i) for i in catalog.ids], catalog.matrix)
    env = AgentEnvironment(ds, settings, cache, embedder, False)
    agent = env.agent(with_llm=settings.llm != "none")
    out = []
    try:
        for n, case in enumerate(cases):
            user = f"walkthrough-{n}"
            try:
                agent.observe(user, case.text)
                rec = agent.recommend(user, k=case.k, context=case.context)
            finally:
                agent.forget(user, purge=False)
            items = [r.item for r in rec.recommendations]
            intents = {i.id: i.name for i in rec.intents}
            res = WalkResult(case.name, case.text, [
                {"rank": r.rank, "id": r.item.id, "title": r.item.title,
                 "genres": (r.item.metadata or {}).get("genres"),
                 "speaks_for": intents.get(r.intent_ids[0]) if r.intent_ids else None}
                for r in rec.recommendations
            ])
            for e in case.expect:
                res.counts[e.name] = sum(e.matches(it) for it in items)
                res.holds[e.name] = e.holds(res.counts[e.name])
            out.append(res)
    finally:
        env.close()
    return out


def write(results: list[WalkResult], out_dir: Path, settings: Settings, data_dir: str | Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"commit": git_commit(), "data_dir": str(data_dir), "settings": settings.model_dump(mode="json"),
               "command": " ".join(sys.argv), "cases": [r.__dict__ | {"passed": r.passed} for r in results]}
    (out_dir / "results.json").write_text(json.dumps(payload, indent=2))
    lines = [f"# Walk-through (commit {payload['commit'][:7]})", ""]
    for r in results:
        lines += [f"## {r.case}: {'passes' if r.passed else 'FAILS'}", "", f"> {r.text}", "",
                  "| expectation | count | holds |", "|---|---|---|"]
        lines += [f"| {n} | {c} | {'yes' if r.holds[n] else 'no'} |" for n, c in r.counts.items()]
        lines += ["", "| rank | title | genres | speaks for |", "|---|---|---|---|"]
        lines += [f"| {i['rank']} | {i['title']} | {', '.join(i['genres'] or [])} | {i['speaks_for'] or '-'} |"
                  for i in r.items]
        lines.append("")
    (out_dir / "report.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", type=Path, default=Path("evals/results/walkthrough"))
    ap.add_argument("--llm", default="none")
    args = ap.parse_args(argv)
    settings = Settings(llm=args.llm)
    results = run(args.data, settings)
    write(results, args.out, settings, args.data)
    for r in results:
        print(f"{r.case}: {'passes' if r.passed else 'FAILS'} {r.counts}")
        for i in r.items:
            print(f"  {i['rank']:>2}. {i['title']} [{', '.join(i['genres'] or [])}] <- {i['speaks_for'] or '-'}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
