"""The final selection's intent floor (agent/selection.intent_floor): every like intent speaks in the shown top k."""

from __future__ import annotations

import numpy as np
import pytest

from interestlens.agent.config import Settings
from interestlens.agent.selection import cap_series, intent_floor, series_key, speaking_intent


class _NoFetch:
    """Every vector is passed in: the floor must not need the store (any call fails the test)."""

    def item_embeddings(self, ids):  # pragma: no cover - reaching it is the failure
        raise AssertionError(f"fetched {ids}")


A, B = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
HORROR = np.array([0.0, 0.0, 1.0])
VECS = np.stack([A, B])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _setup():
    # a0..a5 answer intent A; b0 is B's best own match but reads as horror, b1 is the next; n0 nobody's.
    embs = {f"a{n}": _unit(A + 0.1 * n * HORROR) for n in range(6)}
    embs |= {"b0": _unit(B + 2 * HORROR), "b1": _unit(B + 0.05 * A), "n0": _unit(A + B + HORROR)}
    by_intent = {f"a{n}": {"A": 1.0 / (60 + n)} for n in range(6)}
    by_intent |= {"b0": {"B": 1 / 61}, "b1": {"B": 1 / 62, "A": 1 / 90}}
    ranked = ["a0", "a1", "a2", "a3", "n0", "a4", "a5", "b0", "b1"]
    return embs, by_intent, ranked


def test_an_intent_without_a_voice_gets_the_last_shown_slot_and_the_rest_keeps_its_order():
    embs, by_intent, ranked = _setup()
    chosen = ["a0", "a1", "a2", "a3", "a4", "a5"]
    out = intent_floor(chosen, ranked, by_intent, ["A", "B"], VECS, embs, _NoFetch(), None, Settings(), shown=4)
    assert out[:3] == ["a0", "a1", "a2"] and out[3] == "b0"
    assert out[4:] == ["a3", "a4", "a5"]  # the displaced item moves to the first unshown place


def test_the_floor_skips_a_disliked_match_and_never_silences_another_intents_only_voice():
    embs, by_intent, ranked = _setup()
    dislikes = HORROR[None, :]
    chosen = ["n0", "n0x", "a0"]
    embs["n0x"] = embs["n0"]
    out = intent_floor(chosen, ranked, by_intent, ["A", "B"], VECS, embs, _NoFetch(), dislikes, Settings(), shown=3)
    assert "b0" not in out  # cosine 0.89 to the dislike
    assert out == ["n0", "b1", "a0", "n0x"]  # a0 is A's only voice: the slot above it is the one given


def test_nothing_changes_when_every_intent_already_speaks():
    embs, by_intent, ranked = _setup()
    chosen = ["a0", "b1", "a1"]
    assert speaking_intent("b1", by_intent, {"A": 0.05, "B": 0.99}) == "B"
    out = intent_floor(chosen, ranked, by_intent, ["A", "B"], VECS, embs, _NoFetch(), None, Settings(), shown=3)
    assert out == chosen


@pytest.mark.parametrize("shown", [0, 1])
def test_a_list_too_short_for_two_voices_is_left_alone(shown):
    embs, by_intent, ranked = _setup()
    chosen = ["a0"]
    out = intent_floor(chosen, ranked, by_intent, ["A", "B"], VECS, embs, _NoFetch(), None, Settings(), shown=shown)
    assert out == chosen


@pytest.mark.parametrize(("title", "key"), [
    ("Star Wars: Episode V - The Empire Strikes Back (1980)", "star wars"),
    ("Star Wars: Episode I - The Phantom Menace (1999)", "star wars"),
    ("Toy Story 2 (1999)", "toy story"),
    ("Toy Story (1995)", "toy story"),
    ("Godfather: Part II, The (1974)", "godfather"),
    ("Godfather, The (1972)", "godfather"),
    ("Rocky III (1982)", "rocky"),
    ("Alien (1979)", "alien"),
    ("Aliens (1986)", "aliens"),  # only sharing a word keeps titles apart
    ("Fargo (1996)", "fargo"),
    ("  ", ""),
])
def test_series_key(title, key):
    assert series_key(title) == key


def test_cap_series_moves_extra_episodes_below_other_series():
    titles = {"e5": "Star Wars: Episode V (1980)", "e6": "Star Wars: Episode VI (1983)",
              "e1": "Star Wars: Episode I (1999)", "e2": "Star Wars: Episode II (2002)",
              "m": "Matrix, The (1999)", "f": "Fargo (1996)"}
    order = ["e5", "e6", "e1", "m", "e2", "f"]
    assert cap_series(order, titles, 4, 2) == ["e5", "e6", "m", "f"]
    # An episode over the cap comes back only when nothing else is left, in its order.
    assert cap_series(order, titles, 6, 2) == ["e5", "e6", "m", "f", "e1", "e2"]
    assert cap_series(order, titles, 4, 0) == order[:4]  # 0: off
    # Items without a title never count as one series.
    assert cap_series(["x", "y", "z"], {}, 3, 1) == ["x", "y", "z"]
