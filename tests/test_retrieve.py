"""Retrieval on a real embedded Chroma store with MiniLM vectors: fusion, hard filters, MMR, sampled protocol.

The hand-built catalog here is shared with test_rerank.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from interestlens.agent.models import (
    EvidenceSpan,
    Intent,
    Interaction,
    InterestProfile,
    Item,
    Polarity,
    SourceText,
    StageStats,
    SubInterest,
)


def _item(id_: str, title: str, text: str, domain: str, genres: list[str], year: int) -> Item:
    return Item(id=id_, title=title, text=text, metadata={"domain": domain, "genres": genres, "year": year})


CATALOG: list[Item] = [
    # science fiction
    _item(
        "sf1",
        "Starfall Armada",
        "A space opera about rival fleets fighting across a galactic empire.",
        "book",
        ["science fiction"],
        2015,
    ),
    _item(
        "sf2",
        "The Hollow Stars",
        "Space opera science fiction: a starship crew explores a dying galaxy.",
        "book",
        ["science fiction"],
        2019,
    ),
    _item(
        "sf3",
        "Orbit of Exiles",
        "Science fiction novel of interstellar politics and spaceship battles.",
        "book",
        ["science fiction"],
        2011,
    ),
    _item(
        "sf4",
        "Nebula Run",
        "A science fiction film: smugglers race a spaceship through a nebula.",
        "movie",
        ["science fiction"],
        2020,
    ),
    _item(
        "sf5",
        "Red Planet Colony",
        "Hard science fiction film about settling Mars with rockets and habitats.",
        "movie",
        ["science fiction"],
        2016,
    ),
    _item(
        "sf6",
        "Ansible Dreams",
        "Space opera novel where alien empires negotiate across light years.",
        "book",
        ["science fiction"],
        2008,
    ),
    # jazz
    _item(
        "jz1",
        "Blue Night Trio",
        "A jazz piano trio album of late-night ballads and swing.",
        "music",
        ["jazz"],
        1962,
    ),
    _item(
        "jz2",
        "Saxophone Sketches",
        "Bebop jazz saxophone quartet recorded live in a small club.",
        "music",
        ["jazz"],
        1958,
    ),
    _item(
        "jz3",
        "Modal Morning",
        "Modal jazz album with trumpet and piano improvisation.",
        "music",
        ["jazz"],
        1965,
    ),
    _item("jz4", "Harlem Keys", "Stride and swing jazz piano solo recordings.", "music", ["jazz"], 1939),
    _item(
        "jz5",
        "Cool Currents",
        "Cool jazz record with soft trumpet, bass and brushed drums.",
        "music",
        ["jazz"],
        1957,
    ),
    # horror
    _item(
        "hr1",
        "The Haunting Below",
        "A horror movie: a terrifying haunted house, ghosts and screaming terror.",
        "movie",
        ["horror"],
        2018,
    ),
    _item(
        "hr2",
        "Blood Harvest",
        "Gory slasher horror film where a masked killer hunts teenagers.",
        "movie",
        ["horror"],
        2012,
    ),
    _item(
        "hr3",
        "Demon Night",
        "Horror movie about demonic possession and a terrifying exorcism.",
        "movie",
        ["horror"],
        2021,
    ),
    _item(
        "hr4",
        "Alien Screams",
        "Horror in space: a terrifying monster hunts a starship crew in the dark.",
        "movie",
        ["horror", "science fiction"],
        2017,
    ),
    # cooking
    _item(
        "ck1",
        "Pasta Every Day",
        "A cookbook of Italian pasta recipes and homemade sauces.",
        "book",
        ["cooking"],
        2014,
    ),
    _item(
        "ck2",
        "Fire and Smoke",
        "Barbecue cooking guide: grilling, smoking meat and rubs.",
        "book",
        ["cooking"],
        2017,
    ),
    _item(
        "ck3",
        "Bread Basics",
        "Baking book for sourdough bread, loaves and pastry.",
        "book",
        ["cooking"],
        2019,
    ),
    _item(
        "ck4",
        "Weeknight Curry",
        "Cookbook of quick Indian curry recipes and spices.",
        "book",
        ["cooking"],
        2020,
    ),
    # hiking / outdoors
    _item(
        "hk1",
        "Trails of the North",
        "Hiking guide to mountain trails, backpacking and camping.",
        "book",
        ["outdoors"],
        2016,
    ),
    _item(
        "hk2",
        "Summit Fever",
        "Documentary film about climbing mountains and alpine expeditions.",
        "movie",
        ["outdoors", "documentary"],
        2018,
    ),
    _item(
        "hk3",
        "Wild Camping",
        "Handbook for wilderness camping, tents and hiking gear.",
        "book",
        ["outdoors"],
        2021,
    ),
    # mystery
    _item(
        "my1",
        "The Locked Study",
        "A detective mystery novel: a murder in a locked room.",
        "book",
        ["mystery"],
        2010,
    ),
    _item(
        "my2",
        "Fog over Harbour",
        "Crime mystery where an inspector solves a harbour murder.",
        "book",
        ["mystery"],
        2013,
    ),
    _item(
        "my3", "Poison Pen", "Whodunit detective film about a poisoned author.", "movie", ["mystery"], 2019
    ),
    # comedy / misc
    _item(
        "co1",
        "Office Chaos",
        "Comedy film about a chaotic office party that goes wrong.",
        "movie",
        ["comedy"],
        2015,
    ),
    _item(
        "co2",
        "Road Trip Laughs",
        "Comedy movie of two friends on a disastrous road trip.",
        "movie",
        ["comedy"],
        2011,
    ),
    _item(
        "po1",
        "History Hour",
        "History podcast about ancient Rome and medieval kings.",
        "podcast",
        ["history"],
        2022,
    ),
    _item(
        "po2",
        "Deep Space Radio",
        "Astronomy podcast about black holes, planets and space telescopes.",
        "podcast",
        ["science"],
        2023,
    ),
    _item(
        "gm1",
        "Galaxy Tactics",
        "Strategy video game of space fleets and galactic conquest.",
        "game",
        ["science fiction", "strategy"],
        2018,
    ),
]

SOURCE = SourceText(
    id="src-u1",
    text="I love sprawling space opera science fiction. Late at night I listen to jazz piano. "
    "I can't stand horror movies.",
)


def span(source: SourceText, quote: str) -> EvidenceSpan:
    start = source.text.index(quote)
    return EvidenceSpan(source_id=source.id, start=start, end=start + len(quote), text=quote)


def make_profile(user_id: str = "u1", history: list[str] | None = None) -> InterestProfile:
    now = datetime.now(UTC)
    return InterestProfile(
        user_id=user_id,
        history=history or [],
        interests=[
            SubInterest(
                name="space opera science fiction",
                weight=2.0,
                last_seen=now,
                evidence=[span(SOURCE, "I love sprawling space opera science fiction")],
            ),
            SubInterest(
                name="jazz piano",
                weight=1.0,
                last_seen=now,
                evidence=[span(SOURCE, "Late at night I listen to jazz piano")],
            ),
            SubInterest(
                name="horror movies",
                polarity=Polarity.DISLIKE,
                last_seen=now,
                evidence=[span(SOURCE, "I can't stand horror movies")],
            ),
        ],
    )


def make_intents(profile: InterestProfile) -> list[Intent]:
    sf, jazz = profile.likes()
    return [
        Intent(
            name="Space opera",
            interest_ids=[sf.id],
            query="space opera science fiction starships",
            weight=0.6,
        ),
        Intent(name="Jazz", interest_ids=[jazz.id], query="jazz piano album", weight=0.4),
    ]


INTERACTIONS = [
    # readers of sf1 also read sf3 and gm1; jz1 listeners also take jz4; ck1 is broadly popular
    *[Interaction(user_id=f"r{n}", item_id=i) for n in range(6) for i in ("sf1", "sf3", "gm1", "ck1")],
    *[Interaction(user_id=f"l{n}", item_id=i) for n in range(4) for i in ("jz1", "jz4", "ck1")],
    Interaction(user_id="x1", item_id="my1"),
]


@pytest.fixture
def catalog_store(store):
    store.upsert_items(CATALOG)
    store.add_interactions(INTERACTIONS)
    return store


def _retrieve(store, embedder, settings, profile, intents, **kw):
    from interestlens.agent.retrieve import retrieve

    stats = kw.pop("stats", StageStats())
    return retrieve(intents, profile, store, embedder, settings, stats=stats, **kw)


def test_dislike_filter_removes_horror(catalog_store, embedder, settings):
    profile = make_profile()
    intents = [Intent(name="Films", query="scary terrifying movie night", weight=1.0)]
    no_dislike = profile.model_copy(update={"interests": profile.likes()})
    before = _retrieve(catalog_store, embedder, settings, no_dislike, intents, k=8)
    assert {"hr1", "hr3"} & {c.item.id for c in before}, (
        "the query should reach horror items without the filter"
    )
    stats = StageStats()
    after = _retrieve(catalog_store, embedder, settings, profile, intents, k=8, stats=stats)
    ids = {c.item.id for c in after}
    assert not ids & {"hr1", "hr2", "hr3"}
    assert after, "non-horror items remain"
    assert any("dislike" in w for w in stats.warnings)


def test_history_and_named_seeds_excluded_and_signals(catalog_store, embedder, settings):
    profile = make_profile(history=["sf1", "jz1"])
    profile.interests[0].linked_item_ids = ["sf2"]  # a title the user named: a seed, never recommended back
    cands = _retrieve(catalog_store, embedder, settings, profile, make_intents(profile), k=10)
    ids = [c.item.id for c in cands]
    assert len(ids) == len(set(ids)) == 10
    assert not {"sf1", "jz1", "sf2"} & set(ids)
    for c in cands:
        assert set(c.signals) == {"text", "popularity", "cooc", "ease", "mention", "facet"}
        assert all(0.0 <= v <= 1.0 for v in c.signals.values())
    # co-occurrence with the history surfaces sf3 / gm1 / jz4
    assert any(c.signals["cooc"] > 0 for c in cands if c.item.id in {"sf3", "gm1", "jz4"})
    scores = [c.score for c in cands]
    assert max(scores) == cands[0].score


def test_mmr_mixes_intents(catalog_store, embedder, settings):
    profile = make_profile()
    intents = make_intents(profile)
    cands = _retrieve(catalog_store, embedder, settings, profile, intents, k=6)
    genres = [c.item.metadata["genres"][0] for c in cands]
    assert "jazz" in genres and "science fiction" in genres
    contributing = {i for c in cands for i in c.intent_ids}
    assert contributing == {i.id for i in intents}
    # with lambda=1 (pure relevance) the heavier intent may dominate; MMR must not return fewer intents
    pure = _retrieve(
        catalog_store, embedder, settings.model_copy(update={"mmr_lambda": 1.0}), profile, intents, k=6
    )
    assert len({c.item.metadata["genres"][0] for c in cands}) >= len(
        {c.item.metadata["genres"][0] for c in pure}
    )


def test_candidate_ids_restrict_the_set(catalog_store, embedder, settings):
    profile = make_profile(history=["sf1"])
    allowed = ["sf1", "sf2", "ck2", "jz3", "hr2", "my1", "unknown-id"]
    # Text relevance alone, so the order below is the intents' (the default weights also weigh popularity).
    text_only = settings.model_copy(update={"fusion_weights": {"text": 1.0}})
    cands = _retrieve(
        catalog_store, embedder, text_only, profile, make_intents(profile), k=10, candidate_ids=allowed
    )
    ids = [c.item.id for c in cands]
    assert set(ids) <= {"sf2", "ck2", "jz3", "my1"}  # history, dislike and unknown ids are gone
    assert ids[0] in {"sf2", "jz3"}
    assert set(ids) == {"sf2", "ck2", "jz3", "my1"}


def test_where_filter_passes_through(catalog_store, embedder, settings):
    profile = make_profile(history=["sf1"])
    where = {"domain": "book"}
    cands = _retrieve(catalog_store, embedder, settings, profile, make_intents(profile), k=8, where=where)
    assert cands
    assert all(c.item.metadata["domain"] == "book" for c in cands)  # cooc items (gm1: a game) filtered too
    years = _retrieve(
        catalog_store,
        embedder,
        settings,
        profile,
        make_intents(profile),
        k=8,
        where={"year": {"$gte": 2015}},
        candidate_ids=[i.id for i in CATALOG],
    )
    assert years and all(c.item.metadata["year"] >= 2015 for c in years)


def test_cold_start_and_empty(catalog_store, embedder, settings):
    empty = InterestProfile(user_id="nobody")
    cands = _retrieve(catalog_store, embedder, settings, empty, [], k=3)
    assert cands[0].item.id == "ck1"  # most popular
    assert _retrieve(catalog_store, embedder, settings, empty, [], k=0) == []


def test_matches_where_and_rank_normalise():
    from interestlens.agent.filters import matches_where
    from interestlens.agent.fusion import rank_normalise

    md = {"domain": "book", "genres": ["jazz", "history"], "year": 2001}
    assert matches_where(md, {"domain": "book"})
    assert matches_where(md, {"genres": {"$in": ["jazz"]}})
    assert matches_where(md, {"$and": [{"year": {"$gt": 2000}}, {"domain": {"$ne": "movie"}}]})
    assert not matches_where(md, {"$or": [{"year": {"$lt": 1990}}, {"domain": "movie"}]})
    r = rank_normalise({"a": 3.0, "b": 1.0, "c": 1.0, "d": 0.0})
    assert r["a"] == 1.0 and r["b"] == r["c"] < 1.0 and "d" not in r


def test_proportional_select_shares_slots_by_intent_weight():
    """Two intents: items of the louder one have every top relevance, yet the list follows the weights."""
    from interestlens.agent.selection import proportional_select

    rng = np.random.default_rng(0)
    axes = np.eye(8)
    a_items = axes[0] + 0.05 * rng.normal(size=(10, 8))
    b_items = axes[1] + 0.05 * rng.normal(size=(10, 8))
    embs = np.vstack([a_items, b_items])
    embs /= np.linalg.norm(embs, axis=1, keepdims=True)
    rel = np.concatenate([np.linspace(1.0, 0.6, 10), np.linspace(0.5, 0.1, 10)])  # every A above every B
    intents = axes[:2]
    equal = proportional_select(rel, embs, intents, np.array([0.5, 0.5]), 6, 0.7)
    assert sum(i < 10 for i in equal) == 3 and sum(i >= 10 for i in equal) == 3
    assert equal[0] < 10  # ties go to the first intent, then they alternate
    skewed = proportional_select(rel, embs, intents, np.array([0.75, 0.25]), 8, 0.7)
    assert sum(i < 10 for i in skewed) == 6 and sum(i >= 10 for i in skewed) == 2
    only_a = proportional_select(rel[:10], embs[:10], intents, np.array([0.5, 0.5]), 4, 0.7)
    assert len(only_a) == 4  # an intent with no items gives its slots away
