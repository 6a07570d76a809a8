"""The LLM's view of the candidates: labelled (A)...(T) in a prompt, scored by label tokens or ranked in text.

Scoring (LlamaRec / FIRST): the candidates are labelled in prompts/rerank_score.j2 and the log-probability of
each label as the first reply token, from one forward pass, is that candidate's score; `settings.reranker.permutations`
seeded orders are averaged (position bias). Backends without log-probabilities fall back to listwise generation
(prompts/rerank.j2), Borda-averaged. The final top k get one written sentence each, keyed by label
(prompts/justify.j2), which agent.justify checks.

Candidates are named by label, never by id, and every choice the model makes is a runtime Literal (labels,
intent ids, evidence ids), so neither an injection in an item's text nor a request in the user's message can
bring in an item that retrieval did not return.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, create_model

from interestlens.agent.config import Settings
from interestlens.agent.errors import LLMError, LLMOutputError, LogprobsUnavailable
from interestlens.agent.justify import MAX_CITED, MAX_QUOTE, Pick, clip_prefix, intent_members
from interestlens.agent.llm.base import LabelScorer, StructuredLLM
from interestlens.agent.llm.call import count_usage, structured_call, token_attrs
from interestlens.agent.models import Candidate, EvidenceSpan, Intent, InterestProfile, StageStats
from interestlens.agent.prompting import RenderedPrompt, render
from interestlens.agent.tracing import llm_span

MAX_JUSTIFICATION = 120  # chars of a written justification: one short sentence (90 when more than 8 share a reply)
MAX_EVIDENCE = 12  # numbered quotes shown to the LLM
LABELS = tuple(chr(ord("A") + n) for n in range(20))  # (A)...(T), as in LlamaRec


def evidence_catalog(intents: Sequence[Intent], profile: InterestProfile) -> list[tuple[str, EvidenceSpan]]:
    """The user's evidence numbered E1, E2, ... for the prompt (the model cites quotes by these ids)."""
    out: list[tuple[str, EvidenceSpan]] = []
    seen: set[tuple[str, int, int]] = set()
    # Round-robin over intents so every intent gets quotes before any gets many.
    per_intent = [[e for m in intent_members(i, profile) for e in m.evidence] for i in intents]
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


def _justify_model(labels: Sequence[str], max_justification: int) -> type[BaseModel]:
    """One sentence per label, keyed by it: the reply holds nothing but the words a person reads. The intent is
    the one retrieval found the item by and the evidence the template's (agent.justify), so the model writes no
    ids (those were ~25 of the ~27 tokens per candidate the packaged model wrote)."""
    fields: dict[str, object] = {lab: (str, Field(max_length=max_justification)) for lab in labels}
    return create_model("JustifyReply", **fields)  # type: ignore[call-overload]


def intent_labels(intents: Sequence[Intent]) -> list[str]:
    """I1, I2, ... for the prompt and the reply's enum: an intent's own id costs ~8 tokens each time it is read
    or written."""
    return [f"I{n + 1}" for n in range(len(intents))]


def candidate_snippet(item: Candidate, n_chars: int) -> str:
    """The start of an item's text after its title (item text usually repeats the title first)."""
    text = item.item.text.strip()
    title = item.item.title.strip()
    if title and text.startswith(title):
        text = text[len(title):].lstrip(" .:;,-|")
    return clip_prefix(text, n_chars)


def candidates_prompt(
    name: str, presented: Sequence[Candidate], intents: Sequence[Intent], profile: InterestProfile,
    evidence: Sequence[tuple[str, EvidenceSpan]], context: str | None,
) -> RenderedPrompt:
    """Template `name` rendered with `presented` labelled (A)... in that order: title and a text snippet each.

    The snippet shrinks with the number of candidates (50 chars each of 20, 200 of 5): the scoring pass costs
    prompt evaluation, ~2-7 ms a token on 2 cores with the packaged model (bench/llm_path.py)."""
    snippet = max(50, min(200, 1000 // max(1, len(presented))))
    return render(
        name,
        intents=[
            {"id": lab, "name": i.name, "interests": [m.name for m in intent_members(i, profile)][:6]}
            for lab, i in zip(intent_labels(intents), intents, strict=True)
        ],
        evidence=[{"id": eid, "text": clip_prefix(e.text, MAX_QUOTE)} for eid, e in evidence],
        candidates=[{"label": lab, "title": c.item.title, "text": candidate_snippet(c, snippet)}
                    for lab, c in zip(labels_for(len(presented)), presented, strict=True)],
        context=context,
    )


def ask_picks(
    llm: StructuredLLM, presented: Sequence[Candidate], intents: Sequence[Intent], profile: InterestProfile,
    evidence: Sequence[tuple[str, EvidenceSpan]], context: str | None, stats: StageStats,
    *, template: str = "rerank", after: LLMRanking | None = None,
) -> list[Pick]:
    """The model's picks (in its order) for `presented`: listwise ranking, or justifications of the top k
    (`template="justify"`: one sentence per candidate, in `presented` order). With `after` (a scoring pass that
    labelled every presented item), the justifications are that conversation's next turn (prompts/justify_next.j2):
    the candidates are already in the context, and in llama.cpp's KV cache, so only the request is evaluated."""
    n = len(presented)
    max_just = MAX_JUSTIFICATION if n <= 8 else 90
    labels = labels_for(n)
    continues = (template == "justify" and after is not None and after.last_prompt is not None
                 and all(c.item.id in after.last_labels for c in presented))
    if continues:
        assert after is not None and after.last_prompt is not None
        labels = [after.last_labels[c.item.id] for c in presented]
        prompt = after.last_prompt.continued(after.top_label, render("justify_next", labels=labels))
    else:
        prompt = candidates_prompt(template, presented, intents, profile, evidence, context)
    if template == "justify":
        reply = structured_call(llm, prompt, _justify_model(labels, max_just), stats=stats,
                                max_tokens=min(1536, 16 + n * (6 + max_just // 3)))
        return [Pick(c.item.id, None, [], str(getattr(reply, lab)).strip())
                for lab, c in zip(labels, presented, strict=True)]
    intent_of = dict(zip(intent_labels(intents), (i.id for i in intents), strict=True))
    model = _response_model(labels, list(intent_of), [e for e, _ in evidence], max_just)
    reply = structured_call(llm, prompt, model, stats=stats, max_tokens=min(1536, 40 + n * (30 + max_just // 3)))
    by_label = dict(zip(labels, presented, strict=True))
    picks = []
    for r in reply.ranking:  # type: ignore[attr-defined]
        evidence_ids = list(dict.fromkeys(getattr(r, "evidence_ids", [])))
        intent = getattr(r, "intent", None)
        picks.append(Pick(by_label[r.label].item.id, intent_of.get(intent) if intent else None, evidence_ids,
                          r.justification.strip()))
    return picks


def _renormalised(scores: Mapping[str, float]) -> dict[str, float]:
    """Log-softmax over the labels only: each pass's scores become comparable log-shares among candidates."""
    values = np.array(list(scores.values()), dtype=np.float64)
    top = float(values.max())
    log_z = top + float(np.log(np.exp(values - top).sum()))
    return {k: float(v) - log_z for k, v in scores.items()}


@dataclass(frozen=True)
class LLMRanking:
    """What the scoring passes found: item id -> mean label log-share, and the last pass (its prompt, each item's
    label in it, the label scored highest), which the justifications continue (`ask_picks(after=...)`)."""

    scores: dict[str, float]
    last_prompt: RenderedPrompt | None = None
    last_labels: dict[str, str] = field(default_factory=dict)
    top_label: str = ""


def llm_rank_scores(
    candidates: Sequence[Candidate], intents: Sequence[Intent], profile: InterestProfile, context: str | None,
    llm: StructuredLLM, settings: Settings, stats: StageStats,
) -> dict[str, float]:
    """item id -> mean label log-share over `settings.reranker.permutations` seeded orders (`score_candidates`)."""
    return score_candidates(candidates, intents, profile, context, llm, settings, stats).scores


def score_candidates(
    candidates: Sequence[Candidate], intents: Sequence[Intent], profile: InterestProfile, context: str | None,
    llm: StructuredLLM, settings: Settings, stats: StageStats,
) -> LLMRanking:
    """Mean label log-share per item over `settings.reranker.permutations` seeded orders (position bias).

    One forward pass per order (LlamaRec / FIRST): no text is generated. The first `len(LABELS)` distinct
    candidates are scored. Raises LogprobsUnavailable when the backend cannot score (the caller falls back to
    listwise generation), LLMError when it fails.
    """
    if not isinstance(llm, LabelScorer):
        raise LogprobsUnavailable(f"{llm.model_id} cannot score labels")
    head = list({c.item.id: c for c in candidates}.values())[: len(LABELS)]
    if not head:
        return LLMRanking({})
    evidence = evidence_catalog(intents, profile)
    rng = random.Random(settings.seed)
    totals = {c.item.id: 0.0 for c in head}
    passes = max(1, settings.reranker.permutations)
    for p in range(passes):
        presented = list(head) if p == 0 else rng.sample(head, len(head))
        labels = labels_for(len(presented))
        prompt = candidates_prompt("rerank_score", presented, intents, profile, evidence, context)
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
    return LLMRanking(totals, prompt, {c.item.id: lab for lab, c in zip(labels, presented, strict=True)},
                      max(labels, key=lambda lab: scored[lab]))


def listwise_scores(
    llm: StructuredLLM, head: Sequence[Candidate], intents: Sequence[Intent], profile: InterestProfile,
    evidence: Sequence[tuple[str, EvidenceSpan]], context: str | None, settings: Settings, stats: StageStats,
) -> tuple[dict[str, float], dict[str, Pick]]:
    """The fallback for backends without log-probabilities: generated rankings, Borda-averaged over orders."""
    rng = random.Random(settings.seed)
    position = {c.item.id: n for n, c in enumerate(head)}
    orders: list[list[str]] = []
    picks: dict[str, Pick] = {}
    for p in range(max(1, settings.reranker.permutations)):
        presented = list(head) if p == 0 else rng.sample(list(head), len(head))
        try:
            reply = ask_picks(llm, presented, intents, profile, evidence, context, stats)
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
