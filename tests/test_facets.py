"""Facets from catalog metadata: soft boosts, exclusions and requirements (real MiniLM, real catalogs)."""

from __future__ import annotations

import json

import pytest

from interestlens.agent.facets import (
    FacetIndex,
    FacetQuery,
    facet_index_for,
    facet_scores,
    item_facets,
    passes_hard,
    request_facets,
)
from interestlens.agent.models import InterestProfile, Item, Polarity, SubInterest


def _profile(*interests: tuple[str, Polarity]) -> InterestProfile:
    return InterestProfile(
        user_id="u", interests=[SubInterest(name=n, polarity=p, weight=0.5) for n, p in interests]
    )


@pytest.fixture(scope="module")
def demo_index(demo_items) -> FacetIndex:
    return FacetIndex(demo_items)


@pytest.fixture(scope="module")
def movielens_index() -> FacetIndex:
    from conftest import SHARED_DATASETS

    path = SHARED_DATASETS / "movielens" / "catalog.jsonl"
    if not path.exists():
        pytest.skip("shared MovieLens catalog not present")
    with path.open(encoding="utf-8") as f:
        return FacetIndex(Item.model_validate(json.loads(line)) for line in f if line.strip())


def test_item_facets_from_metadata():
    item = Item(
        id="x", title="T", metadata={"genres": ["Sci-Fi", "Thriller"], "year": 1994, "director": "Ann", "type": "Film"}
    )
    assert item_facets(item) == {"genre:science fiction", "genre:thriller", "decade:1990s", "creator:ann", "type:film"}
    assert item_facets(Item(id="y", title="U", metadata={"year": "not a year", "genres": 3})) == set()


def test_walkthrough_profile_maps_to_genres(movielens_index, embedder):
    prof = _profile(
        ("science fiction epics", Polarity.LIKE), ("clever heist thrillers", Polarity.LIKE),
        ("horror movies", Polarity.DISLIKE),
    )
    q = request_facets(prof, None, movielens_index, embedder)
    assert "genre:science fiction" in q.soft
    assert {"genre:crime", "genre:thriller"} & set(q.soft)
    assert "genre:horror" in q.exclude and "genre:horror" not in q.soft
    assert all(0 < w <= 1 for w in q.soft.values())
    horror = next(i for i, fs in movielens_index.item_facets.items() if "genre:horror" in fs)
    assert not passes_hard(q, horror, movielens_index)  # the dislike filters by metadata


def test_request_hard_conditions(demo_index, embedder):
    q = request_facets(_profile(("jazz", Polarity.LIKE)), "a film for tonight, from the 90s, no horror", demo_index,
                       embedder)
    assert "type:movie" in q.require and "decade:1990s" in q.require and "genre:horror" in q.exclude
    ok = [i for i in demo_index.item_facets if passes_hard(q, i, demo_index)]
    assert ok
    for i in ok:
        fs = demo_index.item_facets[i]
        assert "type:movie" in fs and "decade:1990s" in fs and "genre:horror" not in fs
    books = [i for i, fs in demo_index.item_facets.items() if "type:book" in fs]
    assert books and not any(passes_hard(q, i, demo_index) for i in books)


def test_negated_type_word_is_not_required(demo_index, embedder):
    q = request_facets(None, "no horror movies please", demo_index, embedder)
    assert "type:movie" not in q.require and "genre:horror" in q.exclude


def test_facet_scores_bounded_and_ordered(demo_index, embedder):
    q = request_facets(_profile(("slow-burn sci-fi", Polarity.LIKE)), None, demo_index, embedder)
    ids = list(demo_index.item_facets)
    scores = facet_scores(q, [*ids, "unknown-id"], demo_index)
    assert set(scores) == {*ids, "unknown-id"} and scores["unknown-id"] == 0.0
    assert all(0.0 <= s <= 1.0 for s in scores.values())
    scifi = [i for i in ids if "genre:science fiction" in demo_index.item_facets[i]]
    other = [i for i in ids if not demo_index.item_facets[i] & set(q.soft)]
    assert scifi and other and min(scores[i] for i in scifi) > max(scores[i] for i in other)


def test_empty_query_passes_everything(demo_index):
    q = FacetQuery()
    assert all(passes_hard(q, i, demo_index) for i in demo_index.item_facets)
    assert set(facet_scores(q, list(demo_index.item_facets), demo_index).values()) == {0.0}


def test_hostile_request_is_bounded(demo_index, embedder):
    q = request_facets(None, "no " * 50_000 + "horror", demo_index, embedder)
    assert isinstance(q, FacetQuery)


def test_index_cached_per_store_until_catalog_changes(tmp_path, embedder, demo_items):
    from interestlens.agent import InterestAgent, Settings

    with InterestAgent(Settings(store=str(tmp_path / "s"), llm="none"), llm=None, embedder=embedder) as agent:
        agent.add_items(list(demo_items)[:20])
        first = facet_index_for(agent.store)
        assert facet_index_for(agent.store) is first and len(first) == 20
        agent.add_items(list(demo_items)[20:25])
        second = facet_index_for(agent.store)
        assert second is not first and len(second) == 25


def test_index_cached_by_caller_version(tmp_path, embedder, demo_items):
    from interestlens.agent import InterestAgent, Settings

    with InterestAgent(Settings(store=str(tmp_path / "s"), llm="none"), llm=None, embedder=embedder) as agent:
        agent.add_items(list(demo_items)[:10])
        first = facet_index_for(agent.store, version=1)
        agent.add_items(list(demo_items)[10:12])
        assert facet_index_for(agent.store, version=1) is first  # the caller says nothing changed
        assert len(facet_index_for(agent.store, version=2)) == 12
