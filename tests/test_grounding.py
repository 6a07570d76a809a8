"""Grounding and text utilities: spans are always verbatim, absent or far-fetched evidence is dropped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from interestlens.agent.errors import InvalidInputError
from interestlens.agent.grounding import InterestDraft, find_span, ground_interests, verify_span
from interestlens.agent.models import Polarity, SourceText
from interestlens.agent.text import (
    chunk_text,
    decode_user_bytes,
    normalise_for_match,
    split_clauses,
    validate_text,
)

SRC = SourceText(text="I  LOVE “hard” sci-fi novels.\nBut I can't stand horror movies, honestly.")


def test_find_span_exact():
    span = find_span(SRC, "I can't stand horror movies")
    assert span is not None and verify_span(SRC, span)
    assert span.text == "I can't stand horror movies"


def test_find_span_normalised_maps_back_to_original_offsets():
    span = find_span(SRC, 'i love "hard" sci-fi novels')  # case, spacing and quote style differ
    assert span is not None and verify_span(SRC, span)
    assert span.text == "I  LOVE “hard” sci-fi novels"
    loose = find_span(SRC, "i cant stand horror movies")  # punctuation dropped by the model
    assert loose is not None and verify_span(SRC, loose)
    assert loose.text.startswith("I can't stand")


def test_find_span_absent_or_trivial_is_none():
    assert find_span(SRC, "I adore romantic comedies") is None
    assert find_span(SRC, "I") is None
    assert find_span(SRC, "   ") is None
    assert find_span(SRC, "ovi") is None  # inside a word, not a word-bounded match


def test_ground_interests_drops_absent_and_far(embedder):
    ts = datetime(2024, 1, 2, tzinfo=UTC)
    src = SourceText(text="I love baking sourdough bread. I can't stand horror movies.", ts=ts)
    drafts = [
        InterestDraft(name="sourdough baking", quotes=["I love baking sourdough bread", "I enjoy opera"]),
        InterestDraft(
            name="horror movies", polarity=Polarity.DISLIKE, quotes=["i can't stand horror movies"]
        ),
        InterestDraft(name="opera", quotes=["I enjoy opera"]),  # quote not in the text
        InterestDraft(
            name="quantum chromodynamics lectures", quotes=["I love baking sourdough bread"]
        ),  # far
    ]
    grounded, dropped = ground_interests(drafts, [src], embedder, 0.15, extractor="test")
    names = {g.name for g in grounded}
    assert names == {"sourdough baking", "horror movies"}
    assert dropped == 2
    for g in grounded:
        assert g.evidence and all(verify_span(src, e) for e in g.evidence)
        assert g.first_seen == ts and g.extractor == "test"
    horror = next(g for g in grounded if g.name == "horror movies")
    assert horror.polarity is Polarity.DISLIKE


def test_ground_interests_reassigns_pasted_quote(embedder):
    """A tiny model pastes one quote under an unrelated name: the better-matching name keeps it."""
    src = SourceText(text="I love hard science fiction. I can't stand horror movies.")
    drafts = [
        InterestDraft(
            name="hard science fiction", quotes=["I love hard science fiction", "I can't stand horror movies"]
        ),
        InterestDraft(
            name="horror movies", polarity=Polarity.DISLIKE, quotes=["I can't stand horror movies"]
        ),
    ]
    grounded, _ = ground_interests(drafts, [src], embedder, 0.15)
    scifi = next(g for g in grounded if g.name == "hard science fiction")
    assert [e.text for e in scifi.evidence] == ["I love hard science fiction"]


def test_split_clauses_keeps_offsets():
    text = (
        "I love sci-fi movies, but I can't stand horror. I liked Avengers: Infinity War (2018) and also jazz!"
    )
    spans = split_clauses(text)
    parts = [text[s:e] for s, e in spans]
    assert parts == [
        "I love sci-fi movies",
        "I can't stand horror",
        "I liked Avengers: Infinity War (2018)",
        "jazz",
    ]


def test_chunk_text_covers_text_on_sentence_boundaries():
    text = " ".join(f"Sentence number {i} is here." for i in range(50))
    chunks = chunk_text(text, 100)
    assert len(chunks) > 1
    assert all(e - s <= 100 for s, e in chunks)
    assert "".join(text[s:e] for s, e in chunks).strip() == text.strip()
    assert all(text[s:e].rstrip().endswith(".") for s, e in chunks)


def test_decode_and_validate():
    assert decode_user_bytes("caf\u00e9\x00 ok\r\nline\x07".encode()) == "caf\u00e9 ok\nline"
    with pytest.raises(InvalidInputError, match="UTF-8"):
        decode_user_bytes(b"\xff\xfe bad")
    with pytest.raises(InvalidInputError, match="empty"):
        validate_text(" \n\t ", 100)
    with pytest.raises(InvalidInputError, match="100"):
        validate_text("x" * 101, 100)
    assert validate_text("fine\x00", 100) == "fine"
    assert normalise_for_match("  The  “Matrix”\u2014Reloaded ") == 'the "matrix"-reloaded'
