"""Chunks of the input for decomposition, and the merge of what the chunks yield.

A segment is a range of one source text, so evidence offsets stay in the source; a chunk is a few consecutive
segments that fit one LLM prompt. Interests found in different chunks under one (name, polarity) are merged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from interestlens.agent.models import SourceText, SubInterest
from interestlens.agent.text import chunk_text


@dataclass(frozen=True)
class Segment:
    """A range of one source text: the unit chunks are made of, so evidence offsets stay in the source."""

    source: SourceText
    start: int
    end: int

    @property
    def text(self) -> str:
        return self.source.text[self.start : self.end]


def split_segments(sources: Sequence[SourceText], max_chars: int) -> list[Segment]:
    out = []
    for src in sources:
        for s, e in chunk_text(src.text, max_chars):
            out.append(Segment(src, s, e))
    return out


def pack_segments(segments: Sequence[Segment], max_chars: int, max_texts: int = 8) -> list[list[Segment]]:
    """Group consecutive segments (many short tags, a few chat lines) into chunks of at most max_chars."""
    chunks: list[list[Segment]] = []
    cur: list[Segment] = []
    size = 0
    for seg in segments:
        n = seg.end - seg.start
        if cur and (size + n > max_chars or len(cur) >= max_texts):
            chunks.append(cur)
            cur, size = [], 0
        cur.append(seg)
        size += n
    if cur:
        chunks.append(cur)
    return chunks


def merge_same_name(interests: Sequence[SubInterest]) -> list[SubInterest]:
    """Merge interests with the same (name, polarity) found in different chunks: evidence unioned, max
    weight."""
    merged: dict[str, SubInterest] = {}
    for it in interests:
        prev = merged.get(it.id)
        if prev is None:
            merged[it.id] = it.model_copy(deep=True)
            continue
        keys = {(e.source_id, e.start, e.end) for e in prev.evidence}
        prev.evidence.extend(e for e in it.evidence if (e.source_id, e.start, e.end) not in keys)
        prev.weight = max(prev.weight, it.weight)
        prev.confidence = max(prev.confidence, it.confidence)
        prev.first_seen = min(prev.first_seen, it.first_seen)
        prev.last_seen = max(prev.last_seen, it.last_seen)
        if not prev.description:
            prev.description = it.description
    return list(merged.values())
