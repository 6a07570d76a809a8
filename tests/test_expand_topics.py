"""Expansion (adjacent / collaborative / knowledge) and cross-user topics on a real embedded Chroma store."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest
from test_retrieve import CATALOG, INTERACTIONS

from interestlens.agent.expand import expand_adjacent, expand_collaborative, expand_knowledge
from interestlens.agent.models import (
    EvidenceSpan,
    InterestOrigin,
    InterestProfile,
    Polarity,
    StageStats,
    SubInterest,
)
from interestlens.agent.topics import build_topics

SECRET = "my neighbour Karl told me in confidence"


def _like(name: str, user: str, weight: float = 1.0, linked: tuple[str, ...] = ()) -> SubInterest:
    quote = f"{SECRET}: {name}"
    return SubInterest(
        name=name, weight=weight, last_seen=datetime.now(UTC), linked_item_ids=list(linked),
        evidence=[EvidenceSpan(source_id=f"src-{user}", start=0, end=len(quote), text=quote)],
    )


def _users() -> dict[str, InterestProfile]:
    return {
        "u1": InterestProfile(user_id="u1", interests=[
            _like("space opera science fiction", "u1", 2.0), _like("jazz piano", "u1"),
            SubInterest(name="horror movies", polarity=Polarity.DISLIKE),
        ]),
        "u2": InterestProfile(user_id="u2", interests=[
            _like("science fiction space opera novels", "u2"), _like("jazz piano trios", "u2"),
            _like("film noir detective movies", "u2"), _like("slasher horror films", "u2"),
        ]),
        "u3": InterestProfile(user_id="u3", interests=[
            _like("space opera sci-fi", "u3"), _like("bebop jazz piano", "u3"),
            _like("noir detective films", "u3"), _like("baking sourdough bread", "u3", 3.0),
        ]),
    }


@pytest.fixture
def three_users(store):
    for p in _users().values():
        store.save_profile(p)
    return store


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_topics_across_three_users(three_users, embedder, settings):
    stats = StageStats()
    topics = build_topics(three_users, embedder, llm=None, settings=settings, stats=stats)
    assert topics and stats.llm_calls == 0
    by_member = {n: t for t in topics for n in t.interest_names}
    sci = by_member["space opera science fiction"]
    assert sci is by_member["space opera sci-fi"] and set(sci.user_share) == {"u1", "u2", "u3"}
    assert by_member["jazz piano"] is by_member["bebop jazz piano"]
    assert "horror movies" not in by_member  # dislikes are not topics
    for user in ("u1", "u2", "u3"):
        assert sum(t.user_share.get(user, 0.0) for t in topics) == pytest.approx(1.0, abs=1e-3)
    assert sum(t.size for t in topics) == 10
    assert topics == sorted(topics, key=lambda t: -t.size)
    assert sci.name in sci.interest_names  # fallback name: the most central interest


@pytest.mark.slow
def test_topics_named_by_tiny_llm(three_users, embedder, settings, tiny_llm):
    stats = StageStats()
    topics = build_topics(three_users, embedder, llm=tiny_llm, settings=settings, stats=stats)
    multi = [t for t in topics if len(t.interest_names) > 1]
    # one call per multi-member topic, plus the one retry of an invalid reply (agent/llm/call.py)
    assert len(multi) >= 1 and len(multi) <= stats.llm_calls <= len(multi) + stats.invalid_outputs
    assert all(0 < len(t.name) <= 40 for t in multi)


def test_collaborative_expansion_marks_origin_and_leaks_nothing(three_users, embedder, settings):
    u1 = _users()["u1"]
    out = expand_collaborative(u1, three_users, embedder, settings)
    names = [i.name for i in out]
    assert any("noir" in n for n in names), names  # held by both neighbours, missing for u1
    assert not any("horror" in n or "slasher" in n for n in names)  # u1 dislikes horror
    assert not any("bread" in n for n in names)  # only one neighbour holds it (k-anonymity)
    for i in out:
        assert i.origin is InterestOrigin.EXPANDED_COLLABORATIVE
        assert i.evidence == [] and i.linked_item_ids == []
        assert SECRET not in i.model_dump_json()
        assert i.weight < max(x.weight for x in u1.likes())


def test_knowledge_expansion_from_cooccurrence(store, settings):
    store.upsert_items(CATALOG)
    store.add_interactions(INTERACTIONS)
    profile = InterestProfile(user_id="u9", history=["sf1"])
    out = expand_knowledge(profile, store, settings)
    assert out
    top = out[0]
    assert top.origin is InterestOrigin.EXPANDED_KNOWLEDGE and top.evidence == []
    assert "science fiction" in top.name and ("Orbit of Exiles" in top.name or "Galaxy Tactics" in top.name)
    assert expand_knowledge(InterestProfile(user_id="u8"), store, settings) == []


@pytest.mark.slow
def test_adjacent_expansion_with_tiny_llm(embedder, settings, tiny_llm):
    u1 = _users()["u1"]
    stats = StageStats()
    out = expand_adjacent(u1, llm=tiny_llm, embedder=embedder, settings=settings, stats=stats, max_new=3)
    assert stats.llm_calls == 1 + min(stats.invalid_outputs, 1) and len(out) <= 3  # one call, one retry at most
    existing = {i.name.lower() for i in u1.interests}
    for i in out:
        assert i.origin is InterestOrigin.EXPANDED_ADJACENT and i.evidence == []
        assert i.name.lower() not in existing


def test_adjacent_expansion_failing_backend(embedder, settings):
    from interestlens.agent.llm import OpenAICompatibleLLM

    llm = OpenAICompatibleLLM("nothing", base_url=f"http://127.0.0.1:{_closed_port()}/v1", timeout=2)
    stats = StageStats()
    assert expand_adjacent(_users()["u1"], llm=llm, embedder=embedder, settings=settings, stats=stats) == []
    assert stats.fallbacks == 1
    assert expand_adjacent(_users()["u1"], llm=None, embedder=embedder, settings=settings, stats=stats) == []
