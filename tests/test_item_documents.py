"""Item documents from metadata: what gets embedded, the same for the agent and the evaluation baselines."""

from __future__ import annotations

import json

from interestlens.agent.models import Item
from interestlens.evals.data import load_dataset
from interestlens.stores.items import item_embedding_text, with_metadata_text


def test_metadata_fields_are_appended_once_and_only_when_present():
    item = Item(id="1", title="Heat (1995)", text="Heat (1995)",
                metadata={"movielens_genres": ["Action", "Crime"], "year": 1995, "tags": [], "director": None})
    doc = with_metadata_text(item, ["movielens_genres", "tags", "director"])
    assert doc.text == "Heat (1995). Movielens genres: Action, Crime."
    assert with_metadata_text(doc, ["movielens_genres"]).text == doc.text  # idempotent
    assert with_metadata_text(item, []) is item and with_metadata_text(item, ["missing"]) is item
    assert item.text == "Heat (1995)"  # the original is not mutated
    assert "Crime" in item_embedding_text(doc)


def test_dataset_documents_and_cache_key_follow_the_fields(tmp_path):
    (tmp_path / "catalog.jsonl").write_text(json.dumps(
        {"id": "1", "title": "Heat (1995)", "text": "Heat (1995)", "metadata": {"genres": ["Crime"]}}) + "\n")
    (tmp_path / "cases.dev.jsonl").write_text(json.dumps(
        {"case_id": "c", "user_id": "u", "texts": [], "history": [], "positives": ["1"]}) + "\n")
    bare = load_dataset(tmp_path, "dev")
    rich = load_dataset(tmp_path, "dev", text_fields=["genres"])
    assert bare.item("1").text == "Heat (1995)" and rich.item("1").text == "Heat (1995). Genres: Crime."
    assert bare.catalog_hash != rich.catalog_hash  # cached embeddings and stores never mix the two
