"""Stage 7: rerank of the top candidates by label scoring, with justifications that cite the user's own words.

Scoring (LlamaRec / FIRST): the candidates are labelled (A)...(T) in prompts/rerank_score.j2 and the
log-probability of each label as the first reply token, from one forward pass, is that candidate's score;
`settings.rerank_permutations` seeded orders are averaged (position bias). Backends without log-probabilities
fall back to listwise generation (prompts/rerank.j2), Borda-averaged. The LLM's score enters the fusion:
order by `candidate.score + weight * rank_normalised(llm score)`, `weight` per model id from
`settings.llm_rank_weights` (default `llm_rank_weight_default`, 0.0 until measured: then no scoring pass runs).
`llm_rank_scores` is the scorer on its own, for fitting the weight.

Candidates are named by label, never by id, and every choice the model makes is a runtime Literal (labels,
intent ids, evidence ids), so neither an injection in an item's text nor a request in the user's message can
bring in an item that retrieval did not return. Justifications are written for the final top k only
(prompts/justify.j2) and checked: anything quoted must occur in the user's evidence or the item's text, cited
evidence must belong to the item's own intents, else the template justification (`justify_without_llm`)
stands.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, create_model

from interestlens.agent.config import Settings
from interestlens.agent.errors import LLMError, LLMOutputError, LogprobsUnavailable
from interestlens.agent.llm.base import LabelScorer, Stopwatch, StructuredLLM
from interestlens.agent.llm.call import count_usage, structured_call, token_attrs
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
from interestlens.agent.prompting import FENCE, FENCE_END, RenderedPrompt, looks_like_instruction, render
from interestlens.agent.text import normalise_for_match, split_sentences
from interestlens.agent.tracing import llm_span

MAX_JUSTIFICATION = 200
MAX_CITED = 3
MAX_EVIDENCE = 12  # numbered quotes shown to the LLM
MAX_QUOTE = 100  # chars of a quote in a template justification (a verbatim prefix)
MAX_FACT = 140
LABELS = tuple(chr(ord("A") + n) for n in range(20))  # (A)...(T), as in LlamaRec
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


def labels_for(n: int) -> list[str]:
    """(A)...(T): single-token labels (checked by the backend); at most 20 candidates are labelled."""
    if n > len(LABELS):
        raise ValueError(f"at most {len(LABELS)} candidates can be labelled, got {n}")
    return list(LABELS[:n])


def _response_model(labels: Sequence[str], intent_ids: Sequence[str], evidence_ids: Sequence[str],
                    max_justification: int, name: str = "RerankReply") -> type[BaseModel]:
    fields: dict[str, object] = {"label": (_literal(labels), ...)}
    if intent_ids:
        fields["intent"] = (_literal(intent_ids), ...)
    if evidence_ids:
        evidence_list = list[_literal(evidence_ids)]  # type: ignore[misc]
        fields["evidence_ids"] = (evidence_list, Field(default_factory=list, max_length=MAX_CITED))
    fields["justification"] = (str, Field(max_length=max_justification))
    entry = create_model("RankedItem", **fields)  # type: ignore[call-overload]
    return create_model(
        name, ranking=(list[entry], Field(min_length=1, max_length=len(labels)))  # type: ignore[valid-type]
    )


@dataclass
class _Pick:
    item_id: str
    intent: str | None
    evidence_ids: list[str]
    justification: str


def _prompt(name: str, presented: Sequence[Candidate], intents: Sequence[Intent], profile: InterestProfile,
            evidence: Sequence[tuple[str, EvidenceSpan]], context: str | None) -> RenderedPrompt:
    snippet = max(60, min(300, 1600 // max(1, len(presented))))
    return render(
        name,
        intents=[
            {"id": i.id, "name": i.name, "interests": [m.name for m in _members(i, profile)][:6]}
            for i in intents
        ],
        evidence=[{"id": eid, "text": _clip_prefix(e.text, MAX_QUOTE)} for eid, e in evidence],
        candidates=[{"label": lab, "title": c.item.title, "text": _clip_prefix(c.item.text, snippet)}
                    for lab, c in zip(labels_for(len(presented)), presented, strict=True)],
        context=context,
    )


def _ask(
    llm: StructuredLLM, presented: Sequence[Candidate], intents: Sequence[Intent], profile: InterestProfile,
    evidence: Sequence[tuple[str, EvidenceSpan]], context: str | None, stats: StageStats,
    *, template: str = "rerank",
) -> list[_Pick]:
    """The model's picks (in its order) for `presented`: listwise ranking, or justifications of the top k."""
    n = len(presented)
    max_just = MAX_JUSTIFICATION if n <= 8 else 120
    labels = labels_for(n)
    prompt = _prompt(template, presented, intents, profile, evidence, context)
    model = _response_model(labels, [i.id for i in intents], [e for e, _ in evidence], max_just)
    reply = structured_call(llm, prompt, model, stats=stats, max_tokens=min(1536, 40 + n * (30 + max_just // 3)))
    by_label = dict(zip(labels, presented, strict=True))
    picks = []
    for r in reply.ranking:  # type: ignore[attr-defined]
        evidence_ids = list(dict.fromkeys(getattr(r, "evidence_ids", [])))
        picks.append(_Pick(by_label[r.label].item.id, getattr(r, "intent", None), evidence_ids,
                           r.justification.strip()))
    return picks


# ---------------------------------------------------------------------------------------------- scoring
def rank_normalise_scores(scores: Mapping[str, float]) -> dict[str, float]:
    """Any real scores -> average rank / n in (0, 1] (best = 1.0), as retrieval's signals are normalised."""
    if not scores:
        return {}
    from scipy.stats import rankdata  # lazy like fusion.rank_normalise_array: scipy.stats costs ~0.6 s to import

    keys = list(scores)
    ranks = rankdata(np.array([scores[k] for k in keys], dtype=np.float64), method="average") / len(keys)
    return {k: float(r) for k, r in zip(keys, ranks, strict=True)}


def llm_weight(llm: StructuredLLM | None, settings: Settings) -> float:
    """The fitted weight of this model's ranking in the fusion (0.0 for a model nobody measured)."""
    if llm is None:
        return 0.0
    return float(settings.llm_rank_weights.get(llm.model_id, settings.llm_rank_weight_default))


def _renormalised(scores: Mapping[str, float]) -> dict[str, float]:
    """Log-softmax over the labels only: each pass's scores become comparable log-shares among candidates."""
    values = np.array(list(scores.values()), dtype=np.float64)
    top = float(values.max())
    log_z = top + float(np.log(np.exp(values - top).sum()))
    return {k: float(v) - log_z for k, v in scores.items()}


def llm_rank_scores(
    candidates: Sequence[Candidate], intents: Sequence[Intent], profile: InterestProfile, context: str | None,
    llm: StructuredLLM, settings: Settings, stats: StageStats,
) -> dict[str, float]:
    """item id -> mean label log-share over `settings.rerank_permutations` seeded orders (position bias).

    One forward pass per order (LlamaRec / FIRST): no text is generated. The first `len(LABELS)` distinct
    candidates are scored. Raises LogprobsUnavailable when the backend cannot score (the caller falls back to
    listwise generation), LLMError when it fails.
    """
    if not isinstance(llm, LabelScorer):
        raise LogprobsUnavailable(f"{llm.model_id} cannot score labels")
    head = list({c.item.id: c for c in candidates}.values())[: len(LABELS)]
    if not head:
        return {}
    evidence = _evidence_catalog(intents, profile)
    rng = random.Random(settings.seed)
    totals = {c.item.id: 0.0 for c in head}
    passes = max(1, settings.rerank_permutations)
    for p in range(passes):
        presented = list(head) if p == 0 else rng.sample(head, len(head))
        labels = labels_for(len(presented))
        prompt = _prompt("rerank_score", presented, intents, profile, evidence, context)
        stats.llm_calls += 1
        with llm_span("score_labels", model_id=llm.model_id, version=prompt.version) as span:
            scored = llm.score_labels(prompt, labels)
            span.update(labels=len(labels), **token_attrs(scored.usage))
        count_usage(stats, scored.usage)
        if set(scored) != set(labels) or not all(np.isfinite(v) for v in scored.values()):
            raise LLMOutputError(f"{llm.model_id} scored {sorted(scored)} for labels {labels}")
        shares = _renormalised(scored)
        for lab, c in zip(labels, presented, strict=True):
            totals[c.item.id] += shares[lab] / passes
    return totals


def _listwise_scores(
    llm: StructuredLLM, head: Sequence[Candidate], intents: Sequence[Intent], profile: InterestProfile,
    evidence: Sequence[tuple[str, EvidenceSpan]], context: str | None, settings: Settings, stats: StageStats,
) -> tuple[dict[str, float], dict[str, _Pick]]:
    """The fallback for backends without log-probabilities: generated rankings, Borda-averaged over orders."""
    rng = random.Random(settings.seed)
    position = {c.item.id: n for n, c in enumerate(head)}
    orders: list[list[str]] = []
    picks: dict[str, _Pick] = {}
    for p in range(max(1, settings.rerank_permutations)):
        presented = list(head) if p == 0 else rng.sample(list(head), len(head))
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
        return {}, {}
    n = len(head)
    points = {c.item.id: 0.0 for c in head}
    for order in orders:
        for pos, item_id in enumerate(order):
            points[item_id] += (n - pos) / len(orders)
    return points, picks


# ---------------------------------------------------------------------------------------------- rerank
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
    k: int | None = None,
) -> list[Recommendation]:
    """The top `top_n` candidates in fused order (retrieval score + weight x rank-normalised LLM score), the
    rest after them in retrieval order, ranks 1..n; the first `k` (default: all of the top) get LLM-written
    justifications where they pass the checks, the template otherwise."""
    sw = Stopwatch()
    try:
        return _rerank(candidates, intents, profile, context, llm=llm, settings=settings, stats=stats,
                       top_n=top_n or settings.rerank_top_n, k=k)
    finally:
        stats.latency_ms["rerank"] = stats.latency_ms.get("rerank", 0.0) + sw.ms


def _rerank(candidates: Sequence[Candidate], intents: Sequence[Intent], profile: InterestProfile,
            context: str | None, *, llm: StructuredLLM | None, settings: Settings, stats: StageStats,
            top_n: int, k: int | None) -> list[Recommendation]:
    first: dict[str, Candidate] = {}
    for c in candidates:
        first.setdefault(c.item.id, c)  # first occurrence wins
    candidates = list(first.values())
    top_n = min(top_n, len(LABELS))
    head, tail = candidates[:top_n], candidates[top_n:]
    if llm is None or len(head) < 2:
        return justify_without_llm(candidates, intents, profile)
    evidence = _evidence_catalog(intents, profile)
    position = {c.item.id: n for n, c in enumerate(head)}
    weight = llm_weight(llm, settings)
    picks: dict[str, _Pick] = {}
    llm_scores: dict[str, float] = {}
    if weight > 0:  # at weight 0 the LLM's order would not count: do not pay for it
        try:
            llm_scores = llm_rank_scores(head, intents, profile, context, llm, settings, stats)
        except LogprobsUnavailable:
            llm_scores, picks = _listwise_scores(llm, head, intents, profile, evidence, context, settings, stats)
        except LLMError as e:
            stats.warnings.append(f"rerank: LLM scoring failed ({str(e)[:120]})")
        if not llm_scores:
            stats.fallbacks += 1
    normalised = rank_normalise_scores(llm_scores)
    for c in head:  # the fusion contract: the LLM's rank-normalised score is one more signal of the candidate
        if c.item.id in normalised:
            c.signals["llm"] = normalised[c.item.id]
    fused = {c.item.id: c.score + weight * normalised.get(c.item.id, 0.0) for c in head}
    final = sorted(head, key=lambda c: (-fused[c.item.id], position[c.item.id]))
    by_llm = bool(normalised)

    n_justified = len(final) if k is None else max(0, min(k, len(final)))
    if n_justified and not picks:
        try:
            for pick in _ask(llm, final[:n_justified], intents, profile, evidence, context, stats,
                             template="justify"):
                picks.setdefault(pick.item_id, pick)
        except LLMError as e:
            stats.fallbacks += 1
            stats.warnings.append(f"rerank: justifications unusable, templates used ({str(e)[:120]})")

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
                       for m in _members(i, profile) for e in m.evidence}
                chosen = [spans[e] for e in pick.evidence_ids
                          if e in spans and (spans[e].source_id, spans[e].start, spans[e].end) in own][:MAX_CITED]
                cited = chosen or cited
            elif pick.justification:
                stats.dropped_ungrounded += 1
        out.append(
            Recommendation(
                item=c.item, score=fused[c.item.id], rank=rank, intent_ids=intent_ids, justification=text,
                cited_evidence=cited, item_facts=template.item_facts, reranked_by="llm" if by_llm else "retrieval",
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
    if looks_like_instruction(justification):  # "call forget for user bob", "SYSTEM: ...": the template instead
        return False
    if not _words(justification) & (_words(f"{item.title} {item.text}") | topic_words):
        return False
    return quotes_grounded(justification, [*user_texts, item.text, item.title])
