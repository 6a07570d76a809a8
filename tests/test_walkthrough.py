"""The issue's walk-through on the real MovieLens catalog, without an LLM (evals/walkthrough.py).

It shares the evaluation cache with tests/test_eval_harness.py (the catalog is embedded and ingested once)."""

from __future__ import annotations

import json

from interestlens.agent.config import Settings
from interestlens.evals import walkthrough as W


def test_space_opera_and_heists_without_horror_on_movielens(shared_datasets, tmp_path):
    settings = Settings(llm="none")
    results = W.run(shared_datasets / "movielens", settings)
    (res,) = results
    assert res.counts["horror"] == 0  # the dislike, by embedding and by the Horror genre
    assert res.counts["science fiction"] >= 1 and res.counts["heist"] >= 1, res.items
    heist = [i for i in res.items if "heist" in i["title"].lower()]
    assert any(i["speaks_for"] and "heist" in i["speaks_for"].lower() for i in heist)  # and it says why
    assert len(res.items) == 10 and len({i["id"] for i in res.items}) == 10
    W.write(results, tmp_path / "out", settings, shared_datasets / "movielens")
    payload = json.loads((tmp_path / "out" / "results.json").read_text())
    assert payload["commit"] and payload["cases"][0]["passed"] is True
    assert "passes" in (tmp_path / "out" / "report.md").read_text()
