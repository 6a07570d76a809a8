"""Suite checks: one function per `Assertions` field, registered under that field's name.

`check_case` runs, in the field order of `Assertions`, the check of every assertion a case sets (a field left at
its default is not checked). An assertion the case lists under `requires_capable` gives one "skip" result instead
when the LLM is the packaged default. Each check returns its results in order; its docstring states the
convention it checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from interestlens.agent.errors import InvalidInputError, LLMError
from interestlens.agent.models import Intent, InterestOrigin, InterestProfile, Polarity, RecommendationResult
from interestlens.evals.stage_runner import StageRunner
from interestlens.evals.suite_cases import CAPABLE, AssertionResult, Assertions, SuiteCase


@dataclass
class CheckContext:
    """A case's stage output, with the views several checks read."""

    runner: StageRunner
    case: SuiteCase
    out: dict[str, Any]
    sources: dict[str, str]  # the user's source id -> text
    named: list[tuple[str, dict[str, Any]]]  # (text matched against, record) of what the stage produced
    observed: list[dict[str, Any]]  # the profile's observed interests
    recs: list[dict[str, Any]]  # the recommendations (recommend stage; empty otherwise)

    @classmethod
    def of(cls, runner: StageRunner, case: SuiteCase, out: dict[str, Any]) -> CheckContext:
        return cls(
            runner=runner,
            case=case,
            out=out,
            sources={s["id"]: s["text"] for s in out["sources"]},
            named=_names_for_matching(case, out),
            observed=[i for i in out["profile"]["interests"] if i["origin"] == InterestOrigin.OBSERVED.value],
            recs=out.get("result", {}).get("recommendations", []) if case.stage == "recommend" else [],
        )

    def result(self, name: str, ok: bool, detail: str = "") -> AssertionResult:
        return AssertionResult(case_id=self.case.id, assertion=name, status="pass" if ok else "fail", detail=detail)


Check = Callable[[CheckContext, Any], list[AssertionResult]]
CHECKS: dict[str, Check] = {}


def check(name: str) -> Callable[[Check], Check]:
    """Register a check under the `Assertions` field it verifies."""
    if name not in Assertions.model_fields:
        raise ValueError(f"{name!r} is not an Assertions field")

    def register(fn: Check) -> Check:
        CHECKS[name] = fn
        return fn

    return register


def check_case(
    runner: StageRunner, case: SuiteCase, out: dict[str, Any], capable: bool
) -> list[AssertionResult]:
    ctx = CheckContext.of(runner, case, out)
    results: list[AssertionResult] = []
    for name, info in Assertions.model_fields.items():
        value = getattr(case.assertions, name)
        if value == info.get_default(call_default_factory=True):
            continue
        if name in case.requires_capable and not capable:
            results.append(
                AssertionResult(case_id=case.id, assertion=name, status="skip", detail=f"requires {CAPABLE}")
            )
            continue
        results.extend(CHECKS[name](ctx, value))
    return results


# ------------------------------------------------------------------------------------------------ matching


def _names_for_matching(case: SuiteCase, out: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(text, record) pairs the stage produced: interests, intents, or recommended items."""
    if case.stage == "decompose":
        return [(_interest_text(i), i) for i in out["profile"]["interests"]]
    if case.stage == "compose":
        return [(f"{i['name']} — {i['query']}", i) for i in out.get("intents", [])]
    return [
        (r["item"]["title"] + " — " + r["item"]["text"][:200], r) for r in out["result"]["recommendations"]
    ]


def _interest_text(interest: dict[str, Any]) -> str:
    return interest["name"] + (f" — {interest['description']}" if interest.get("description") else "")


def _best_matches(runner: StageRunner, query: str, names: Sequence[str]) -> list[tuple[float, int]]:
    if not names:
        return []
    q = query.lower().strip()
    vecs = runner.embedder.embed([query, *names])
    sims = vecs[1:] @ vecs[0]
    # a name containing the expected phrase verbatim counts as a full match
    scored = [
        (1.0 if q and q in n.lower() else float(s), idx)
        for idx, (n, s) in enumerate(zip(names, sims, strict=True))
    ]
    return sorted(scored, reverse=True)


def _spans_verbatim(spans: Sequence[dict[str, Any]], sources: dict[str, str]) -> list[str]:
    bad = []
    for e in spans:
        text = sources.get(e["source_id"])
        if text is None or text[e["start"] : e["end"]] != e["text"]:
            bad.append(repr(e["text"])[:60])
    return bad


def _category_values(item: dict[str, Any], field: str) -> list[str]:
    v = item.get("metadata", {}).get(field)
    if isinstance(v, list):
        return [str(x).lower() for x in v]
    return [] if v is None else [str(v).lower()]


def _category_hits(ctx: CheckContext, field: str, value: str) -> list[str]:
    return [r["item"]["id"] for r in ctx.recs if value.lower() in _category_values(r["item"], field)]


# -------------------------------------------------------------------------------------------------- checks


@check("must_find")
def must_find(ctx: CheckContext, wanted: list[str]) -> list[AssertionResult]:
    """Each phrase matches something the stage produced (interest, intent or item) at similarity >= threshold;
    a produced name containing the phrase verbatim is a full match."""
    names = [n for n, _ in ctx.named]
    out = []
    for want in wanted:
        best = _best_matches(ctx.runner, want, names)
        top = best[0] if best else (0.0, -1)
        detail = f"best {names[top[1]][:60]!r} at {top[0]:.2f}" if top[1] >= 0 else "nothing produced"
        out.append(ctx.result(f"must_find:{want}", top[0] >= ctx.case.threshold, detail))
    return out


@check("must_not_find")
def must_not_find(ctx: CheckContext, unwanted: list[str]) -> list[AssertionResult]:
    """No produced thing matches the phrase at similarity >= threshold; for decompose only liked interests
    count (a dislike of the thing is the right output)."""
    likes = (
        [(n, r) for n, r in ctx.named if r.get("polarity", "like") == "like"]
        if ctx.case.stage == "decompose"
        else ctx.named
    )
    out = []
    for phrase in unwanted:
        best = _best_matches(ctx.runner, phrase, [n for n, _ in likes])
        top = best[0] if best else (0.0, -1)
        detail = f"closest {likes[top[1]][0][:60]!r} at {top[0]:.2f}" if top[1] >= 0 else "nothing produced"
        out.append(ctx.result(f"must_not_find:{phrase}", top[0] < ctx.case.threshold, detail))
    return out


@check("polarity")
def polarity(ctx: CheckContext, wanted: dict[str, Polarity]) -> list[AssertionResult]:
    """The interest closest to each name (above threshold) has the polarity; a match of that polarity among
    the three closest also counts."""
    interests = ctx.out["profile"]["interests"]
    interest_names = [_interest_text(i) for i in interests]
    out = []
    for name, pol in wanted.items():
        best = _best_matches(ctx.runner, name, interest_names)
        matching = [interests[idx] for s, idx in best if s >= ctx.case.threshold]
        ok = bool(matching) and (
            matching[0]["polarity"] == pol.value or any(m["polarity"] == pol.value for m in matching[:3])
        )
        shown = ", ".join(f"{m['name'][:30]}={m['polarity']}" for m in matching[:3]) or "no interest matched"
        out.append(ctx.result(f"polarity:{name}={pol.value}", ok, shown))
    return out


@check("evidence_substrings")
def evidence_substrings(ctx: CheckContext, _: bool) -> list[AssertionResult]:
    """Every observed interest has evidence, and every span is verbatim text of the user's own source at its
    offsets."""
    spans = [e for i in ctx.observed for e in i["evidence"]]
    bad = _spans_verbatim(spans, ctx.sources)
    ungrounded = [i["name"] for i in ctx.observed if not i["evidence"]]
    detail = (
        f"{len(spans)} spans checked"
        + (f"; not verbatim: {bad[:3]}" if bad else "")
        + (f"; interests without evidence: {ungrounded[:3]}" if ungrounded else "")
    )
    return [ctx.result("evidence_substrings", not bad and not ungrounded, detail)]


@check("intents")
def intents(ctx: CheckContext, bounds: dict[str, int]) -> list[AssertionResult]:
    """min <= number of intents <= max (either bound optional); every intent validates as an Intent."""
    produced = ctx.out.get("intents", [])
    n = len(produced)
    lo, hi = bounds.get("min", 0), bounds.get("max", 10**6)
    result = ctx.result("intents", lo <= n <= hi, f"{n} intents (want {lo}..{hi})")
    for i in produced:
        Intent.model_validate(i)
    return [result]


@check("justification_cites_evidence")
def justification_cites_evidence(ctx: CheckContext, _: bool) -> list[AssertionResult]:
    """There are recommendations, at least one cites user evidence, and each has a justification, cites only
    verbatim spans of the user's sources, cites evidence or item facts, and quotes facts found in the item."""
    problems = []
    for r in ctx.recs:
        if not r["justification"].strip():
            problems.append(f"{r['item']['id']}: empty justification")
        bad = _spans_verbatim(r["cited_evidence"], ctx.sources)
        if bad:
            problems.append(f"{r['item']['id']}: cites text not in the user's sources {bad[:2]}")
        if not r["cited_evidence"] and not r["item_facts"]:
            problems.append(f"{r['item']['id']}: cites neither evidence nor item facts")
        for fact in r["item_facts"]:
            if fact not in r["item"]["text"] and fact not in r["item"]["title"]:
                problems.append(f"{r['item']['id']}: item fact not in the item text")
    cited = sum(1 for r in ctx.recs if r["cited_evidence"])
    detail = f"{cited}/{len(ctx.recs)} cite user evidence" + (f"; {problems[:3]}" if problems else "")
    return [ctx.result("justification_cites_evidence", bool(ctx.recs) and not problems and cited > 0, detail)]


@check("include_category")
def include_category(ctx: CheckContext, wanted: dict[str, str]) -> list[AssertionResult]:
    """For each metadata field: value, some recommended item has it (case-insensitive; list fields: any)."""
    out = []
    for field, value in wanted.items():
        hits = _category_hits(ctx, field, value)
        out.append(ctx.result(f"include_category:{field}={value}", bool(hits), f"{len(hits)}/{len(ctx.recs)} items"))
    return out


@check("exclude_category")
def exclude_category(ctx: CheckContext, unwanted: dict[str, str]) -> list[AssertionResult]:
    """For each metadata field: value, no recommended item has it (case-insensitive; list fields: any)."""
    out = []
    for field, value in unwanted.items():
        hits = _category_hits(ctx, field, value)
        detail = f"found {hits[:5]}" if hits else f"0/{len(ctx.recs)} items"
        out.append(ctx.result(f"exclude_category:{field}={value}", not hits, detail))
    return out


@check("ids_valid")
def ids_valid(ctx: CheckContext, _: bool) -> list[AssertionResult]:
    """Something is recommended, every id is in the catalog (and the case's candidates when given), none twice,
    none from the case's history."""
    ids = [r["item"]["id"] for r in ctx.recs]
    catalog = set(ctx.out["catalog_ids"])
    allowed = set(ctx.case.candidate_ids) if ctx.case.candidate_ids is not None else catalog
    outside = [i for i in ids if i not in catalog or i not in allowed]
    dup = len(ids) - len(set(ids))
    hist = [i for i in ids if i in set(ctx.case.history)]
    return [
        ctx.result(
            "ids_valid",
            bool(ids) and not outside and not dup and not hist,
            f"{len(ids)} ids; outside={outside[:3]} duplicates={dup} history={hist[:3]}",
        )
    ]


@check("no_other_user_data")
def no_other_user_data(ctx: CheckContext, _: bool) -> list[AssertionResult]:
    """Other users were observed, no distinctive 5-word run (>= 20 characters, not in this user's texts) of
    their texts appears in this user's output, and no evidence cites their sources."""
    other_texts = [s["text"] for s in ctx.out["other_sources"]]
    other_ids = {s["id"] for s in ctx.out["other_sources"]} - set(ctx.sources)
    own = " ".join(ctx.case.texts).lower()
    blob = json.dumps({k: ctx.out.get(k) for k in ("profile", "intents", "result")}, ensure_ascii=False).lower()
    leaks = []
    for t in other_texts:
        words = t.lower().split()
        for s in range(max(1, len(words) - 4)):
            frag = " ".join(words[s : s + 5])
            if len(frag) >= 20 and frag in blob and frag not in own:
                leaks.append(frag)
                break
    spans = [e for i in ctx.out["profile"]["interests"] for e in i["evidence"]] + [
        e for r in ctx.recs for e in r["cited_evidence"]
    ]
    foreign = [e["source_id"] for e in spans if e["source_id"] in other_ids]
    detail = (
        f"other-user fragments: {leaks[:2]}; foreign source ids: {foreign[:2]}"
        if (leaks or foreign)
        else f"{len(other_texts)} other-user texts, none leaked"
    )
    return [ctx.result("no_other_user_data", not leaks and not foreign and bool(other_texts), detail)]


@check("schema_valid")
def schema_valid(ctx: CheckContext, _: bool) -> list[AssertionResult]:
    """The profile (and the result, when there is one) validate against the published models."""
    try:
        InterestProfile.model_validate(ctx.out["profile"])
        if "result" in ctx.out:
            RecommendationResult.model_validate(ctx.out["result"])
    except ValidationError as e:
        return [ctx.result("schema_valid", False, str(e)[:200])]
    return [ctx.result("schema_valid", True, "profile" + (" + result" if "result" in ctx.out else "") + " validate")]


@check("judge")
def judge(ctx: CheckContext, spec: dict[str, str]) -> list[AssertionResult]:
    """The LLM judges the output to meet `rubric` (prompts/judge.j2); no LLM or a failed call is an error."""
    try:
        ok, reason = ctx.runner.judge(spec.get("rubric", ""), ctx.out, ctx.case)
    except (LLMError, InvalidInputError) as e:
        return [AssertionResult(case_id=ctx.case.id, assertion="judge", status="error", detail=str(e)[:200])]
    return [ctx.result("judge", ok, reason[:200])]


_unchecked = set(Assertions.model_fields) - set(CHECKS)
if _unchecked:  # an assertion a suite may set but nothing checks would pass silently
    raise RuntimeError(f"Assertions without a check: {sorted(_unchecked)}")
