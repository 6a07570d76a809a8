"""Profile merging and decay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from interestlens.agent.models import EvidenceSpan, InterestProfile, Polarity, SubInterest
from interestlens.agent.profile import effective_weight, interest_text, merge_interests, prune, prune_stale

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _interest(
    name: str,
    pol: Polarity = Polarity.LIKE,
    *,
    start: int = 0,
    ts: datetime = T0,
    weight: float = 1.0,
    desc: str = "",
) -> SubInterest:
    span = EvidenceSpan(source_id="s1", start=start, end=start + len(name), text=name)
    return SubInterest(
        name=name, description=desc, polarity=pol, weight=weight, evidence=[span], first_seen=ts, last_seen=ts
    )


def test_new_interests_added_and_version_bumped(embedder, settings):
    prof = InterestProfile(user_id="u")
    out = merge_interests(
        prof, [_interest("jazz piano"), _interest("trail running")], embedder, settings, now=T0
    )
    assert [i.name for i in out.added] == ["jazz piano", "trail running"]
    assert out.profile.version == 1 and out.profile.updated_at == T0
    assert prof.interests == []  # input untouched


def test_reinforce_near_duplicate(embedder, settings):
    later = T0 + timedelta(days=10)
    prof = merge_interests(
        InterestProfile(user_id="u"), [_interest("science fiction movies")], embedder, settings, now=T0
    ).profile
    prof.interests[0].muted = True
    out = merge_interests(
        prof, [_interest("science fiction films", start=40, ts=later)], embedder, settings, now=later
    )
    assert not out.added and len(out.reinforced) == 1
    merged = out.profile.interests[0]
    assert len(out.profile.interests) == 1
    assert merged.weight == pytest.approx(1.0 + settings.reinforce_step * 1.0)
    assert len(merged.evidence) == 2 and merged.last_seen == later
    assert merged.muted  # muting survives reinforcement
    # The very same span again: evidence is not duplicated.
    again = merge_interests(
        out.profile, [_interest("science fiction films", start=40, ts=later)], embedder, settings, now=later
    )
    assert len(again.profile.interests[0].evidence) == 2
    assert again.profile.version == 3


def test_dislike_overrides_like(embedder, settings):
    prof = merge_interests(
        InterestProfile(user_id="u"), [_interest("horror movies")], embedder, settings, now=T0
    ).profile
    later = T0 + timedelta(days=1)
    out = merge_interests(
        prof,
        [_interest("horror movies", Polarity.DISLIKE, start=50, ts=later)],
        embedder,
        settings,
        now=later,
    )
    assert len(out.profile.interests) == 1
    horror = out.profile.interests[0]
    assert horror.polarity is Polarity.DISLIKE and out.flipped == [horror]
    assert horror.evidence[0].start == 50  # the overriding statement is cited first
    assert horror.id == SubInterest(name="horror movies", polarity=Polarity.DISLIKE).id


def test_distinct_interests_not_merged(embedder, settings):
    prof = merge_interests(
        InterestProfile(user_id="u"), [_interest("jazz piano")], embedder, settings
    ).profile
    out = merge_interests(prof, [_interest("sourdough baking")], embedder, settings)
    assert len(out.profile.interests) == 2 and len(out.added) == 1


def test_decay_half_life_and_prune():
    it = _interest("jazz", weight=2.0)
    assert effective_weight(it, T0, 90) == pytest.approx(2.0)
    assert effective_weight(it, T0 + timedelta(days=90), 90) == pytest.approx(1.0)
    assert effective_weight(it, T0 + timedelta(days=180), 90) == pytest.approx(0.5)
    assert effective_weight(it, T0 - timedelta(days=5), 90) == pytest.approx(2.0)  # clock skew never boosts
    muted = _interest("old muted")
    muted.muted = True
    prof = InterestProfile(
        user_id="u", interests=[it, _interest("fresh", ts=T0 + timedelta(days=400)), muted]
    )
    dropped = prune(prof, T0 + timedelta(days=400), 90, floor=0.2)
    assert [d.name for d in dropped] == ["jazz"]
    assert {i.name for i in prof.interests} == {"fresh", "old muted"}


def test_prune_stale_measures_decay_against_the_profiles_newest_evidence():
    # Texts written years ago and observed today are all as old as each other: nothing is stale.
    old = InterestProfile(user_id="u", interests=[_interest("jazz", weight=0.6), _interest("noir", weight=0.6)])
    assert prune_stale(old, 90, floor=0.05) == []
    assert len(old.interests) == 2
    # One interest unseen for a year while the user kept talking: it decayed to 0.6 / 2**4 < 0.05 and goes.
    muted = _interest("muted too", weight=0.6)
    muted.muted = True
    prof = InterestProfile(
        user_id="u",
        interests=[_interest("jazz", weight=0.6), muted, _interest("hiking", ts=T0 + timedelta(days=365))],
    )
    assert [d.name for d in prune_stale(prof, 90, floor=0.05)] == ["jazz"]
    assert [i.name for i in prof.interests] == ["muted too", "hiking"]
    assert prune_stale(prof, 90, floor=0.0) == []  # 0 turns pruning off


def test_merge_with_the_stored_vectors_embeds_only_the_new_interests(embedder, settings):
    """Passing the store's vectors changes the cost, never the outcome: the same merge as embedding everything."""
    texts: list[str] = []

    class Counting:
        model_id, dim = embedder.model_id, embedder.dim

        def embed(self, batch):
            texts.extend(batch)
            return embedder.embed(batch)

    prof = merge_interests(
        InterestProfile(user_id="u"),
        [_interest("science fiction movies"), _interest("jazz piano"), _interest("horror movies", Polarity.DISLIKE)],
        embedder, settings, now=T0,
    ).profile
    later = T0 + timedelta(days=3)
    new = [_interest("science fiction films", start=40, ts=later), _interest("sourdough baking", start=70, ts=later)]
    plain = merge_interests(prof, new, embedder, settings, now=later)
    own = embedder.embed([interest_text(i) for i in prof.interests])
    vectors = dict(zip((i.id for i in prof.interests), own, strict=True))
    stored = merge_interests(prof, new, Counting(), settings, now=later, stored_vectors=vectors)
    assert texts == [interest_text(i) for i in new]  # the profile's own interests were not embedded again
    assert stored.profile == plain.profile
    assert [i.id for i in stored.reinforced] == [i.id for i in plain.reinforced] and len(plain.reinforced) == 1
    assert [i.id for i in stored.added] == [i.id for i in plain.added]
    # an interest the store has no vector for (say, a profile saved by an older release) is embedded
    texts.clear()
    partial = {k: v for k, v in vectors.items() if k != prof.interests[1].id}
    again = merge_interests(prof, new, Counting(), settings, now=later, stored_vectors=partial)
    assert texts == [interest_text(prof.interests[1])] + [interest_text(i) for i in new]
    assert again.profile == plain.profile
