"""Statement clauses: the clauses of the input that state a taste, the unit both decomposers work on.

The input's clauses (agent/text.py `split_clauses`) less injected instructions, requests and chit-chat, and
clauses without a content word; each kept clause carries its polarity (agent/polarity.py) and its candidate
names (agent/key_phrases.py). The cluster path groups them; the LLM path numbers them for the model to label.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from interestlens.agent.chunks import Segment
from interestlens.agent.key_phrases import key_phrases
from interestlens.agent.models import EvidenceSpan, Polarity, SourceText
from interestlens.agent.polarity import clause_polarity
from interestlens.agent.request_detection import is_request
from interestlens.agent.text import split_clauses

# Text addressed to the model rather than about the user ("ignore previous instructions ...").
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b.{0,40}\b(?:instructions?|rules|prompts?|above)\b"
    r"|\bsystem\s+prompt\b|\byou\s+are\s+now\b|\boutput\s*[{\[]",
    re.IGNORECASE,
)


@dataclass
class Clause:
    source: SourceText
    start: int
    end: int
    polarity: Polarity
    phrases: list[str]

    @property
    def text(self) -> str:
        return self.source.text[self.start : self.end]


def statement_clauses(
    segments: Sequence[Segment], exclude: Sequence[EvidenceSpan] = (), max_clauses: int = 2000
) -> list[Clause]:
    """The statement clauses of `segments`, at most `max_clauses`; clauses overlapping `exclude` are left out."""
    out = []
    for seg in segments:
        for s, e in split_clauses(seg.source.text, seg.start, seg.end):
            if any(x.source_id == seg.source.id and x.start < e and s < x.end for x in exclude):
                continue  # already evidence of an interest found by the LLM
            text = seg.source.text[s:e]
            if _INSTRUCTION.search(text):
                continue  # an injected instruction is not an interest
            if is_request(seg.source.text, s, e):
                continue  # "what should I watch?", "thanks": asking or chatting is not an interest
            phrases = key_phrases(text)
            if phrases:  # no content word: greeting or filler ("Hello", "What would you recommend?")
                out.append(Clause(seg.source, s, e, clause_polarity(text), phrases))
    if len(out) > max_clauses:
        # Spread the sample over the whole input rather than keeping only its start.
        step = len(out) / max_clauses
        out = [out[int(k * step)] for k in range(max_clauses)]
    return out
