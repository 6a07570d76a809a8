"""Stage 7: listwise LLM rerank of the top candidates, with justifications that cite the user's own words.

The response model is built per request: `item_id` is a Literal over the candidates' ids, `intent` over the
intent ids and `evidence_ids` over the numbered evidence quotes, so neither a prompt injection in an item's
text nor a request in the user's message can bring in an item that retrieval did not return. Duplicates are
dropped, missed candidates appended in retrieval order. With `settings.rerank_permutations > 1` the
candidates are shown in several seeded shuffles and the orders Borda-averaged (position bias of small models).

Justifications are checked: anything the LLM puts in quotes must occur in the user's evidence or the item's
text, otherwise the template justification (`justify_without_llm`) replaces it. Cited evidence is chosen by
id, so it is verbatim by construction; item facts are verbatim sentences of the item's text.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field, create_model

from interestlens.agent.compose import llm_generate
from interestlens.agent.config import Settings
from interestlens.agent.errors import LLMError
from interestlens.agent.llm.base import Stopwatch, StructuredLLM
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
from interestlens.agent.prompting import FENCE, FENCE_END, render
from interestlens.agent.text import normalise_for_match, split_sentences

MAX_JUSTIFICATION = 200
MAX_CITED = 3
MAX_EVIDENCE = 12  # numbered quotes shown to the LLM
MAX_QUOTE = 100  # chars of a quote in a template justification (a verbatim prefix)
MAX_FACT = 140
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|«([^»]+)»")
_WORD = re.compile(r"[a-z0-9]{3,}")


# ---------------------------------------------------------------------------------------------- helpers
def _clip_prefix(text: str, n: int) -> str:
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
    return _clip_prefix(best, MAX_FACT)


def _intent_for(candidate: Candidate, intents: Sequence[Intent]) -> Intent | None:
    by_id = {i.id: i for i in intents}
    return next((by_id[i] for i in candidate.intent_ids if i in by_id), None)


def _members(intent: Intent | None, profile: InterestProfile) -> list[SubInterest]:
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
    members = _members(intent, profile)
    fact = item_fact(candidate.item, " ".join([intent.query if intent else "", *[m.name for m in members]]))
    span = _best_evidence(members, candidate.item)
    if intent is not None and span is not None:
        text = f"Because you said “{_clip_prefix(span.text, MAX_QUOTE)}” (intent: {intent.name}) — {fact}"
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


# ---------------------------------------------------------------------------------------------- LLM path
def _evidence_catalog(intents: Sequence[Intent], profile: InterestProfile) -> list[tuple[str, EvidenceSpan]]:
    out: list[tuple[str, EvidenceSpan]] = []
    seen: set[tuple[str, int, int]] = set()
    # Round-robin over intents so every intent gets quotes before any gets many.
    per_intent = [[e for m in _members(i, profile) for e in m.evidence] for i in intents]
    depth = 0
    while len(out) < MAX_EVIDENCE and any(depth < len(p) for p in per_intent):
        for spans in per_intent:
            if depth < len(spans) and len(out) < MAX_EVIDENCE:
                e = spans[depth]
                key = (e.source_id, e.start, e.end)
                if key not in seen:
                    seen.add(key)
                    out.append((f"E{len(out) + 1}", e))
        depth += 1
    return out


def _literal(values: Sequence[str]) -> object:
    return Literal[tuple(values)]  # type: ignore[valid-type]


def _response_model(item_ids: Sequence[str], intent_ids: Sequence[str], evidence_ids: Sequence[str],
                    max_justification: int) -> type[BaseModel]:
    fields: dict[str, object] = {"item_id": (_literal(item_ids), ...)}
    if intent_ids:
        fields["intent"] = (_literal(intent_ids), ...)
    if evidence_ids:
        evidence_list = list[_literal(evidence_ids)]  # type: ignore[misc]
        fields["evidence_ids"] = (evidence_list, Field(default_factory=list, max_length=MAX_CITED))
    fields["justification"] = (str, Field(max_length=max_justification))
    entry = create_model("RankedItem", **fields)  # type: ignore[call-overload]
    return create_model(
        "RerankReply", ranking=(list[entry], Field(min_length=1, max_length=len(item_ids)))  # type: ignore[valid-type]
    )


@dataclass
class _Pick:
    item_id: str
    intent: str | None
    evidence_ids: list[str]
    justification: str


def _ask(
    llm: StructuredLLM, presented: Sequence[Candidate], intents: Sequence[Intent], profile: InterestProfile,
    evidence: Sequence[tuple[str, EvidenceSpan]], context: str | None, stats: StageStats,
) -> list[_Pick]:
    n = len(presented)
    snippet = max(60, min(300, 1600 // n))
    max_just = MAX_JUSTIFICATION if n <= 8 else 120
    prompt = render(
        "rerank",
        intents=[
            {"id": i.id, "name": i.name, "interests": [m.name for m in _members(i, profile)][:6]}
            for i in intents
        ],
        evidence=[{"id": eid, "text": _clip_prefix(e.text, MAX_QUOTE)} for eid, e in evidence],
        candidates=[{"id": c.item.id, "title": c.item.title, "text": _clip_prefix(c.item.text, snippet)}
                    for c in presented],
        context=context,
    )
    model = _response_model([c.item.id for c in presented], [i.id for i in intents], [e for e, _ in evidence],
                            max_just)
    reply = llm_generate(llm, prompt, model, stats=stats, max_tokens=min(1536, 40 + n * (30 + max_just // 3)))
    picks = []
    for r in reply.ranking:  # type: ignore[attr-defined]
        evidence_ids = list(dict.fromkeys(getattr(r, "evidence_ids", [])))
        picks.append(_Pick(r.item_id, getattr(r, "intent", None), evidence_ids, r.justification.strip()))
    return picks


def rerank(
    candidates: Sequence[Candidate],
    intents: Sequence[Intent],
    profile: InterestProfile,
    context: str | None,
    *,
    llm: StructuredLLM | None,
    settings: Settings,
    stats: StageStats,
    top_n: int | None = None,
) -> list[Recommendation]:
    """The top `top_n` candidates reordered by the LLM (the rest follow in retrieval order), ranks 1..n."""
    sw = Stopwatch()
    try:
        return _rerank(candidates, intents, profile, context, llm=llm, settings=settings, stats=stats,
                       top_n=top_n or settings.rerank_top_n)
    finally:
        stats.latency_ms["rerank"] = stats.latency_ms.get("rerank", 0.0) + sw.ms


def _rerank(candidates: Sequence[Candidate], intents: Sequence[Intent], profile: InterestProfile,
            context: str | None, *, llm: StructuredLLM | None, settings: Settings, stats: StageStats,
            top_n: int) -> list[Recommendation]:
    first: dict[str, Candidate] = {}
    for c in candidates:
        first.setdefault(c.item.id, c)  # first occurrence wins
    candidates = list(first.values())
    head, tail = candidates[:top_n], candidates[top_n:]
    if llm is None or len(head) < 2:
        return justify_without_llm(candidates, intents, profile)
    evidence = _evidence_catalog(intents, profile)
    spans = dict(evidence)
    position = {c.item.id: n for n, c in enumerate(head)}
    rng = random.Random(settings.seed)
    orders: list[list[str]] = []
    picks: dict[str, _Pick] = {}
    for p in range(max(1, settings.rerank_permutations)):
        presented = list(head) if p == 0 else rng.sample(head, len(head))
        try:
            reply = _ask(llm, presented, intents, profile, evidence, context, stats)
        except LLMError as e:
            stats.warnings.append(f"rerank: LLM output unusable ({str(e)[:120]})")
            continue
        order = list(dict.fromkeys(r.item_id for r in reply if r.item_id in position))
        order += [c.item.id for c in head if c.item.id not in set(order)]  # missed: retrieval order
        orders.append(order)
        for r in reply:
            picks.setdefault(r.item_id, r)
    if not orders:
        stats.fallbacks += 1
        return justify_without_llm(candidates, intents, profile)

    n = len(head)
    points = {c.item.id: 0.0 for c in head}
    for order in orders:
        for pos, item_id in enumerate(order):
            points[item_id] += (n - pos) / len(orders)
    final = sorted(head, key=lambda c: (-points[c.item.id], position[c.item.id]))

    user_texts = [e.text for m in profile.interests for e in m.evidence]
    valid_intents = {i.id for i in intents}
    out: list[Recommendation] = []
    for rank, c in enumerate(final, start=1):
        template = template_justification(c, intents, profile)
        pick = picks.get(c.item.id)
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
                       for m in _members(i, profile) for e in m.evidence}
                chosen = [spans[e] for e in pick.evidence_ids
                          if e in spans and (spans[e].source_id, spans[e].start, spans[e].end) in own][:MAX_CITED]
                cited = chosen or cited
            elif pick.justification:
                stats.dropped_ungrounded += 1
        out.append(
            Recommendation(
                item=c.item, score=c.score, rank=rank, intent_ids=intent_ids, justification=text,
                cited_evidence=cited, item_facts=template.item_facts, reranked_by="llm",
            )
        )
    for c, rec in zip(tail, justify_without_llm(tail, intents, profile), strict=True):
        out.append(rec.model_copy(update={"rank": len(out) + 1, "item": c.item}))
    return out


def _intent_words(intent_ids: Sequence[str], intents: Sequence[Intent], profile: InterestProfile) -> set[str]:
    chosen = [i for i in intents if i.id in set(intent_ids)]
    return _words(" ".join([*(i.name + " " + i.query for i in chosen),
                            *(m.name for i in chosen for m in _members(i, profile))]))


def _acceptable(justification: str, user_texts: Sequence[str], item: Item, topic_words: set[str]) -> bool:
    """At least a short sentence, on topic (shares a word with the item or its intent), quotes grounded."""
    if len(justification.split()) < 3 or FENCE in justification or FENCE_END in justification:
        return False
    if not _words(justification) & (_words(f"{item.title} {item.text}") | topic_words):
        return False
    return quotes_grounded(justification, [*user_texts, item.text, item.title])
