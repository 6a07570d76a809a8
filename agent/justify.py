"""Justifications that cite the user's own words: templates, and the checks an LLM-written one must pass.

Every recommendation gets a template justification (`template_justification`): a verbatim prefix of the user's
evidence for the item's intent, and a sentence of the item's own text. An LLM-written one (a `Pick`, from
agent.label_scoring) replaces it only where it passes the checks: at least a short sentence, on topic, anything
quoted occurs in the user's evidence or the item's text (`quotes_grounded`), and cited evidence belongs to the
item's own intents.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from interestlens.agent.models import (
    Candidate,
    EvidenceSpan,
    Intent,
    InterestProfile,
    Item,
    Recommendation,
    StageStats,
    SubInterest,
)
from interestlens.agent.prompting import FENCE, FENCE_END, looks_like_instruction
from interestlens.agent.text import normalise_for_match, split_sentences

MAX_CITED = 3  # evidence spans one justification may cite
MAX_QUOTE = 100  # chars of a quote in a template justification (a verbatim prefix)
MAX_FACT = 140
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|«([^»]+)»")
_WORD = re.compile(r"[a-z0-9]{3,}")


def clip_prefix(text: str, n: int) -> str:
    """A verbatim prefix of at most n chars, cut at a word boundary."""
    text = text.strip()
    if len(text) <= n:
        return text
    cut = text[:n]
    space = cut.rfind(" ")
    return (cut[:space] if space > n // 2 else cut).rstrip(" ,;:-")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def item_fact(item: Item, hint: str = "") -> str:
    """The item-text sentence sharing most words with `hint` (else the first), as a verbatim prefix."""
    sentences = [item.text[s:e] for s, e in split_sentences(item.text)] or [item.text]
    hint_words = _words(hint)
    best = max(sentences, key=lambda s: (len(_words(s) & hint_words), -sentences.index(s)))
    return clip_prefix(best, MAX_FACT)


def _intent_for(candidate: Candidate, intents: Sequence[Intent]) -> Intent | None:
    by_id = {i.id: i for i in intents}
    return next((by_id[i] for i in candidate.intent_ids if i in by_id), None)


def intent_members(intent: Intent | None, profile: InterestProfile) -> list[SubInterest]:
    """The profile's interests an intent was composed from (those still in the profile)."""
    if intent is None:
        return []
    return [m for m in (profile.get(i) for i in intent.interest_ids) if m is not None]


def _best_evidence(members: Sequence[SubInterest], item: Item) -> EvidenceSpan | None:
    """Evidence of the member interest closest in words to the item (ties: heavier interest)."""
    item_words = _words(f"{item.title} {item.text}")
    scored = [
        (len(_words(f"{m.name} {m.description}") & item_words), m.weight, -n, m)
        for n, m in enumerate(members) if m.evidence
    ]
    if not scored:
        return None
    return max(scored, key=lambda t: t[:3])[3].evidence[0]


@dataclass
class Justification:
    text: str
    cited_evidence: list[EvidenceSpan]
    item_facts: list[str]


def template_justification(candidate: Candidate, intents: Sequence[Intent], profile: InterestProfile
                           ) -> Justification:
    intent = _intent_for(candidate, intents)
    members = intent_members(intent, profile)
    fact = item_fact(candidate.item, " ".join([intent.query if intent else "", *[m.name for m in members]]))
    span = _best_evidence(members, candidate.item)
    if intent is not None and span is not None:
        text = f"Because you said “{clip_prefix(span.text, MAX_QUOTE)}” (intent: {intent.name}) — {fact}"
        return Justification(text, [span], [fact])
    if intent is not None and members:
        names = ", ".join(m.name for m in members[:3])
        return Justification(f"Matches your interest in {names} (intent: {intent.name}) — {fact}", [], [fact])
    if intent is not None:
        return Justification(f"Matches what you asked for (intent: {intent.name}) — {fact}", [], [fact])
    if candidate.signals.get("cooc", 0.0) > 0 or candidate.signals.get("mention", 0.0) > 0:
        return Justification(f"Often enjoyed alongside things you named or consumed — {fact}", [], [fact])
    return Justification(f"Popular with other users — {fact}", [], [fact])


def justify_without_llm(
    candidates: Sequence[Candidate], intents: Sequence[Intent], profile: InterestProfile
) -> list[Recommendation]:
    """Recommendations in retrieval order, each with a template justification citing the user's evidence."""
    out = []
    for rank, c in enumerate(candidates, start=1):
        j = template_justification(c, intents, profile)
        out.append(
            Recommendation(
                item=c.item, score=c.score, rank=rank, intent_ids=list(c.intent_ids), justification=j.text,
                cited_evidence=j.cited_evidence, item_facts=j.item_facts, reranked_by="retrieval",
            )
        )
    return out


def quotes_grounded(justification: str, sources: Sequence[str]) -> bool:
    """True when every quoted passage of the justification occurs (case/space/quote-folded) in a source."""
    folded = [normalise_for_match(s) for s in sources]
    for m in _QUOTED.finditer(justification):
        quote = normalise_for_match(next(g for g in m.groups() if g is not None)).strip(" .,;:!?'")
        if quote and not any(quote in s for s in folded):
            return False
    return True


@dataclass
class Pick:
    """What the LLM said about one candidate (by item id): the intent it serves, the evidence it cites, why."""

    item_id: str
    intent: str | None
    evidence_ids: list[str]
    justification: str


def justified_recommendations(
    final: Sequence[Candidate], scores: Mapping[str, float], picks: Mapping[str, Pick], n_justified: int,
    evidence: Sequence[tuple[str, EvidenceSpan]], intents: Sequence[Intent], profile: InterestProfile, *,
    reranked_by: Literal["llm", "retrieval"], stats: StageStats,
) -> list[Recommendation]:
    """Recommendations ranked 1..n in `final` order, scored by `scores`: the first `n_justified` keep the LLM's
    justification (`picks`, by item id) where it passes the checks, every other one the template."""
    spans = dict(evidence)
    user_texts = [e.text for m in profile.interests for e in m.evidence]
    valid_intents = {i.id for i in intents}
    out: list[Recommendation] = []
    for rank, c in enumerate(final, start=1):
        template = template_justification(c, intents, profile)
        pick = picks.get(c.item.id) if rank <= n_justified else None
        text, cited = template.text, template.cited_evidence
        intent_ids = list(c.intent_ids)
        if pick is not None:
            # The LLM may say which of the item's intents it serves; it may not attach an unrelated one.
            # An item that matched no intent in retrieval (it came from behaviour) gets no LLM-chosen intent.
            if pick.intent in valid_intents and pick.intent in intent_ids:
                intent_ids = [pick.intent, *[i for i in intent_ids if i != pick.intent]]
                template = template_justification(c.model_copy(update={"intent_ids": intent_ids}), intents,
                                                  profile)
                text, cited = template.text, template.cited_evidence
            topic_words = _intent_words(intent_ids, intents, profile)
            if _acceptable(pick.justification, user_texts, c.item, topic_words):
                text = pick.justification
                # Cited evidence must belong to the interests of the item's own intents, not any quote.
                own = {(e.source_id, e.start, e.end) for i in intents if i.id in intent_ids
                       for m in intent_members(i, profile) for e in m.evidence}
                chosen = [spans[e] for e in pick.evidence_ids
                          if e in spans and (spans[e].source_id, spans[e].start, spans[e].end) in own][:MAX_CITED]
                cited = chosen or cited
            elif pick.justification:
                stats.dropped_ungrounded += 1
        out.append(
            Recommendation(
                item=c.item, score=scores[c.item.id], rank=rank, intent_ids=intent_ids, justification=text,
                cited_evidence=cited, item_facts=template.item_facts, reranked_by=reranked_by,
            )
        )
    return out


def _intent_words(intent_ids: Sequence[str], intents: Sequence[Intent], profile: InterestProfile) -> set[str]:
    chosen = [i for i in intents if i.id in set(intent_ids)]
    return _words(" ".join([*(i.name + " " + i.query for i in chosen),
                            *(m.name for i in chosen for m in intent_members(i, profile))]))


def _acceptable(justification: str, user_texts: Sequence[str], item: Item, topic_words: set[str]) -> bool:
    """At least a short sentence, on topic (shares a word with the item or its intent), quotes grounded."""
    if len(justification.split()) < 3 or FENCE in justification or FENCE_END in justification:
        return False
    if looks_like_instruction(justification):  # "call forget for user bob", "SYSTEM: ...": the template instead
        return False
    if not _words(justification) & (_words(f"{item.title} {item.text}") | topic_words):
        return False
    return quotes_grounded(justification, [*user_texts, item.text, item.title])
