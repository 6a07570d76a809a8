"""Grounding: every interest must point at verbatim spans of what the user wrote, or it is dropped.

An LLM (especially a tiny one) paraphrases, invents and mis-quotes. `find_span` locates a quote in a source
text (exact first, then case/whitespace/quote-folded, then punctuation-insensitive) and always returns the
*original* substring at the matched offsets, so a span can never contain text the user did not write.
`ground_interests` turns drafts (name + quotes) into SubInterests with checked evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
from pydantic import BaseModel, Field

from interestlens.agent.models import EvidenceSpan, Polarity, SourceText, SubInterest, utcnow
from interestlens.agent.protocols import Embedder
from interestlens.agent.text import normalise_with_map, split_clauses

# A quote shorter than this (after folding) matches too much to count as evidence ("I", "it").
MIN_QUOTE_CHARS = 3
# A span whose cosine to another draft's name beats this draft's by more than this belongs to the other draft.
RIVAL_MARGIN = 0.15
# ... and a span far worse for a name than the text's best-matching clause for it is not that name's evidence.
CLAUSE_MARGIN = 0.3
MAX_CLAUSES = 2000
_QUOTE_EDGES = " \t\n\"'`\u201c\u201d\u2018\u2019.,;:!?\u2026"


class InterestDraft(BaseModel):
    """An interest as an extractor proposes it, before grounding: quotes are claims, not yet spans."""

    name: str
    description: str = ""
    polarity: Polarity = Polarity.LIKE
    weight: float = Field(default=1.0, ge=0.0)
    quotes: list[str] = Field(default_factory=list)
    confidence: float = Field(default=0.6, ge=0.0, le=1.0)


def _folded_find(text: str, quote: str, *, alnum_only: bool) -> tuple[int, int] | None:
    norm_text, idx = normalise_with_map(text, alnum_only=alnum_only)
    norm_quote, _ = normalise_with_map(quote, alnum_only=alnum_only)
    if len(norm_quote.replace(" ", "")) < MIN_QUOTE_CHARS:
        return None
    pos = norm_text.find(norm_quote)
    if pos < 0:
        return None
    while pos >= 0:
        after = pos + len(norm_quote)
        if _bounded(norm_text, pos, after, norm_quote):
            return idx[pos], idx[after - 1] + 1
        pos = norm_text.find(norm_quote, pos + 1)
    return None


def _bounded(text: str, start: int, end: int, quote: str) -> bool:
    """Match on word boundaries, so that "art" is not found inside "party"."""
    before_ok = start == 0 or not text[start - 1].isalnum() or not quote[0].isalnum()
    after_ok = end >= len(text) or not text[end].isalnum() or not quote[-1].isalnum()
    return before_ok and after_ok


def find_span(source: SourceText, quote: str) -> EvidenceSpan | None:
    """The span of `source.text` that `quote` refers to, or None. Never returns text that is not in the
    source."""
    text = source.text
    if not quote or not quote.strip():
        return None
    stripped = quote.strip(_QUOTE_EDGES)
    if len(stripped) < MIN_QUOTE_CHARS:
        return None
    for candidate in dict.fromkeys((quote.strip(), stripped)):
        pos = text.find(candidate)
        while pos >= 0:
            if _bounded(text, pos, pos + len(candidate), candidate):
                return EvidenceSpan(source_id=source.id, start=pos, end=pos + len(candidate), text=candidate)
            pos = text.find(candidate, pos + 1)
    for alnum_only in (False, True):
        hit = _folded_find(text, stripped, alnum_only=alnum_only)
        if hit is not None:
            start, end = hit
            return EvidenceSpan(source_id=source.id, start=start, end=end, text=text[start:end])
    return None


def find_span_any(sources: Sequence[SourceText], quote: str) -> tuple[SourceText, EvidenceSpan] | None:
    for src in sources:
        span = find_span(src, quote)
        if span is not None:
            return src, span
    return None


def verify_span(source: SourceText, span: EvidenceSpan) -> bool:
    """True when the span really is `source.text[start:end]` (used by tests and by stages citing evidence)."""
    return span.source_id == source.id and source.text[span.start : span.end] == span.text


def as_utc(ts: datetime) -> datetime:
    """Naive timestamps are taken as UTC so that they compare with aware ones."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


def seen_range(sources: Sequence[SourceText], now: datetime) -> tuple[datetime, datetime]:
    """(first, last) time of the sources that have one; (now, now) when none has."""
    times = [as_utc(s.ts) for s in sources if s.ts is not None]
    return (min(times), max(times)) if times else (now, now)


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a @ b.T  # embedder rows are L2-normalised


def ground_interests(
    drafts: Sequence[InterestDraft],
    sources: Sequence[SourceText],
    embedder: Embedder,
    min_similarity: float,
    *,
    extractor: str = "",
    now: datetime | None = None,
) -> tuple[list[SubInterest], int]:
    """Keep drafts whose quotes are found in `sources` and whose name is close enough to that evidence.

    Returns (grounded interests, number of drafts dropped). Unfound quotes are dropped silently; a draft
    with no
    evidence left, or whose name's best cosine to its evidence is below `min_similarity`, is dropped whole.
    """
    now = now or utcnow()
    found: list[tuple[InterestDraft, list[tuple[SourceText, EvidenceSpan]]]] = []
    dropped = 0
    for draft in drafts:
        name = draft.name.strip()
        spans: list[tuple[SourceText, EvidenceSpan]] = []
        seen: set[tuple[str, int, int]] = set()
        for quote in draft.quotes:
            hit = find_span_any(sources, quote)
            if hit is None:
                continue
            key = (hit[1].source_id, hit[1].start, hit[1].end)
            if key not in seen:
                seen.add(key)
                spans.append(hit)
        if not name or not spans:
            dropped += 1
            continue
        found.append((draft, spans))
    if not found:
        return [], dropped

    # One batched embedding call for all names and evidence texts.
    names = [d.name.strip() for d, _ in found]
    ev_texts = [span.text for _, spans in found for _, span in spans]
    clause_texts = [src.text[a:b] for src in sources for a, b in split_clauses(src.text)][:MAX_CLAUSES]
    vecs = embedder.embed(names + ev_texts + clause_texts)
    name_vecs = vecs[: len(names)]
    ev_vecs = vecs[len(names) : len(names) + len(ev_texts)]
    clause_vecs = vecs[len(names) + len(ev_texts) :]
    # How well the best passage of the whole text matches each name: evidence far below it is misattributed.
    best_clause = (
        _cosine_rows(name_vecs, clause_vecs).max(axis=1) if len(clause_vecs) else np.full(len(names), -1.0)
    )

    # sim[k, j]: name k vs evidence j. A span stays with a draft only when close enough to its name and not
    # clearly better explained by another draft's name (tiny models paste one quote under several names).
    sim = _cosine_rows(name_vecs, ev_vecs)
    best_for_span = sim.max(axis=0)
    out: list[SubInterest] = []
    offset = 0
    for k, (draft, all_spans) in enumerate(found):
        cols = range(offset, offset + len(all_spans))
        offset += len(all_spans)
        spans = [
            sp
            for sp, j in zip(all_spans, cols, strict=True)
            if sim[k, j] >= min_similarity
            and sim[k, j] >= best_for_span[j] - RIVAL_MARGIN
            and sim[k, j] >= best_clause[k] - CLAUSE_MARGIN
        ]
        if not spans:
            dropped += 1
            continue
        first, last = seen_range([src for src, _ in spans], now)
        out.append(
            SubInterest(
                name=draft.name.strip()[:120],
                description=draft.description.strip(),
                polarity=draft.polarity,
                weight=draft.weight,
                confidence=draft.confidence,
                evidence=[span for _, span in spans],
                first_seen=first,
                last_seen=last,
                extractor=extractor,
            )
        )
    return out, dropped
