"""Prompt-behaviour suites: YAML cases run against one pipeline stage, asserting what the system guarantees.

A suite file is a list of cases (or `{cases: [...]}`):
```yaml
- id: dislike-horror
  stage: decompose            # decompose | compose | recommend
  texts: ["I love sci-fi but I can't stand horror."]
  context: null               # the request (compose / recommend)
  catalog: demo               # "demo" (packaged catalog) or a list of inline items; omitted -> demo
  other_users: {u2: ["text"]} # observed first as other users (hostile: their data must never leak)
  requires: capable-llm       # optional: skipped with the default tiny model
  threshold: 0.55             # optional: similarity for must_find / must_not_find / polarity
  assertions:
    must_find: [science fiction]
    must_not_find: [cooking]
    polarity: {horror: dislike}
    evidence_substrings: true
    intents: {min: 1, max: 4}
    justification_cites_evidence: true
    include_category: {domain: movie}
    exclude_category: {domain: podcast}
    ids_valid: true           # every id from the catalog (and candidates), no duplicates, no history
    no_other_user_data: true
    schema_valid: true
    judge: {rubric: "..."}    # LLM-as-judge (prompts/judge.j2); needs a capable model to mean anything
```
An individual assertion may be marked as needing a capable model by listing its name under
`requires_capable: [must_find, judge]`. Such assertions (and whole cases with `requires: capable-llm`) are
skipped unless the configured LLM is not the packaged default.

Suites are addressed by a packaged suite's name (`hostile` -> evals/suites/hostile.yaml) or by a file path. On the
packaged LLM a suite runs for minutes, so `run_suite(progress=True)` prints one line per case on stderr, and
`junit_path` writes JUnit XML (xml.etree: no dependency) for CI systems that read test reports.
`call_stage` is the entry point for external tools; evals/promptfoo_provider.py is the shipped promptfoo provider.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from interestlens.agent.config import Settings
from interestlens.agent.errors import InterestLensError, InvalidInputError, LLMError
from interestlens.agent.models import (
    Intent,
    InterestOrigin,
    InterestProfile,
    Item,
    Polarity,
    RecommendationResult,
    SourceText,
    StageStats,
    content_hash,
)

log = logging.getLogger(__name__)

DEFAULT_LLM = "smollm2"
CAPABLE = "capable-llm"


class Assertions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    must_find: list[str] = Field(default_factory=list)
    must_not_find: list[str] = Field(default_factory=list)
    polarity: dict[str, Polarity] = Field(default_factory=dict)
    evidence_substrings: bool = False
    intents: dict[Literal["min", "max"], int] | None = None
    justification_cites_evidence: bool = False
    include_category: dict[str, str] = Field(default_factory=dict)
    exclude_category: dict[str, str] = Field(default_factory=dict)
    ids_valid: bool = False
    no_other_user_data: bool = False
    schema_valid: bool = False
    judge: dict[str, str] | None = None


class SuiteCase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    stage: Literal["decompose", "compose", "recommend"]
    texts: list[str] = Field(min_length=1)
    context: str | None = None
    history: list[str] = Field(default_factory=list)
    catalog: Literal["demo"] | list[Item] = "demo"
    candidate_ids: list[str] | None = None
    k: int = Field(default=10, ge=1, le=100)
    other_users: dict[str, list[str]] = Field(default_factory=dict)
    requires: str | None = None
    requires_capable: list[str] = Field(default_factory=list)
    threshold: float = Field(default=0.55, ge=0.0, le=1.0)
    description: str = ""
    assertions: Assertions = Field(default_factory=Assertions)


class AssertionResult(BaseModel):
    case_id: str
    assertion: str
    status: Literal["pass", "fail", "skip", "error"]
    detail: str = ""


class SuiteReport(BaseModel):
    suite: str
    llm: str
    results: list[AssertionResult]
    stats: dict[str, int] = Field(default_factory=dict)
    case_seconds: dict[str, float] = Field(default_factory=dict)  # every case in suite order, 0 when skipped
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not any(r.status in ("fail", "error") for r in self.results)

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "fail": 0, "skip": 0, "error": 0}
        for r in self.results:
            out[r.status] += 1
        return out


class JudgeVerdict(BaseModel):
    """Bounded so that small models terminate under a grammar."""

    passed: bool
    reason: str = Field(max_length=300)


def packaged_suites() -> list[str]:
    """File names of the suites shipped in evals/suites/ ("hostile.yaml", ...)."""
    return sorted(
        p.name
        for p in resources.files("interestlens.evals").joinpath("suites").iterdir()
        if p.name.endswith(".yaml")
    )


def suite_name(path: str | Path) -> str:
    """The name a suite is addressed and reported by: its file stem ("hostile")."""
    return Path(str(path)).stem


def read_suite_text(path: str | Path) -> str:
    """The YAML of a suite given as a file path or as the name of a packaged suite ("hostile")."""
    p = Path(path)
    if p.is_file():
        return p.read_text(encoding="utf-8")
    text = str(path)
    bare = "/" not in text and "\\" not in text and p.suffix in ("", ".yaml", ".yml")
    if bare:  # "hostile" or "hostile.yaml" -> evals/suites/hostile.yaml
        ref = resources.files("interestlens.evals").joinpath(f"suites/{p.stem}.yaml")
        if ref.is_file():
            return ref.read_text(encoding="utf-8")
        names = ", ".join(suite_name(n) for n in packaged_suites())
        raise InvalidInputError(f"no suite named {text!r} (packaged suites: {names}; or give a YAML file path)")
    raise InvalidInputError(f"{path}: no such file (suite file not found)")


def load_suite(path: str | Path) -> list[SuiteCase]:
    text = read_suite_text(path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InvalidInputError(f"{path}: invalid YAML: {e}") from e
    if isinstance(raw, dict):
        raw = raw.get("cases")
    if not isinstance(raw, list):
        raise InvalidInputError(f"{path}: a suite is a list of cases (or a mapping with 'cases')")
    cases = []
    for n, c in enumerate(raw, start=1):
        try:
            cases.append(SuiteCase.model_validate(c))
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err.get("loc", ()))
            raise InvalidInputError(f"{path}: case #{n}: {loc}: {err['msg']}") from e
    ids = [c.id for c in cases]
    if len(ids) != len(set(ids)):
        raise InvalidInputError(f"{path}: duplicate case ids")
    return cases


def demo_catalog() -> list[Item]:
    from interestlens.stores.catalog_io import read_catalog_jsonl

    ref = resources.files("interestlens.agent").joinpath("data/demo_catalog.jsonl")
    with resources.as_file(ref) as p:
        return list(read_catalog_jsonl(p))


# ------------------------------------------------------------------------------------------ running stages


class StageRunner:
    """Agents over temporary stores, one per distinct catalog; users are forgotten after every call."""

    def __init__(self, settings: Settings, root: str | Path | None = None) -> None:
        from interestlens.agent.embeddings import make_embedder

        self.settings = settings
        self._tmp = None if root is not None else tempfile.TemporaryDirectory(prefix="interestlens-suite-")
        self.root = Path(root) if root is not None else Path(self._tmp.name)  # type: ignore[union-attr]
        self.embedder = make_embedder(
            settings.embedder, base_url=settings.openai_base_url, api_key=settings.openai_api_key
        )
        self._agents: dict[str, Any] = {}
        self._llm: Any = None
        self._llm_loaded = False
        self._lock = threading.Lock()

    def llm(self) -> Any:
        if not self._llm_loaded:
            from interestlens.agent.llm import make_llm

            self._llm = make_llm(self.settings.llm, self.settings)
            self._llm_loaded = True
        return self._llm

    def agent(self, catalog: Literal["demo"] | list[Item]) -> Any:
        from interestlens.agent.service import FLOOR_LLMS, InterestAgent
        from interestlens.stores.chroma_store import ChromaStore

        items = demo_catalog() if catalog == "demo" else catalog
        key = "demo" if catalog == "demo" else content_hash(*(i.content_hash() for i in items))
        if key not in self._agents:
            store = ChromaStore(str(self.root / f"store-{key}"), self.embedder)
            update: dict[str, Any] = {"store": str(self.root / f"store-{key}")}
            if self.settings.llm in FLOOR_LLMS:  # the suite runs what a user of this model gets by default
                update |= {f: False for f in ("use_llm_decompose", "use_llm_compose", "rerank")
                           if getattr(self.settings, f) is None}
            agent = InterestAgent(
                self.settings.model_copy(update=update),
                llm=self.llm(),
                embedder=self.embedder,
                store=store,
            )
            agent.add_items(items)
            self._agents[key] = agent
        return self._agents[key]

    def run(self, case: SuiteCase) -> dict[str, Any]:
        """Run the case's stage; returns a JSON-able dict (the `call_stage` contract)."""
        with self._lock:
            agent = self.agent(case.catalog)
            uid = "suite-" + content_hash(case.id, length=12)
            others = {
                f"suite-other-{content_hash(case.id, o, length=8)}": t for o, t in case.other_users.items()
            }
            stats = StageStats()
            try:
                for ouid, otexts in others.items():
                    agent.forget(ouid)
                    agent.observe(ouid, otexts)
                agent.forget(uid)
                sources = [SourceText(text=t, source="chat") for t in case.texts]
                obs = agent.observe(uid, sources, history=case.history)
                stats.add(obs.stats)
                profile: InterestProfile = agent.profile(uid)
                out: dict[str, Any] = {
                    "stage": case.stage,
                    "profile": profile.model_dump(mode="json"),
                    "sources": [s.model_dump(mode="json") for s in agent.store.get_sources(uid)],
                    "other_sources": [
                        s.model_dump(mode="json") for o in others for s in agent.store.get_sources(o)
                    ],
                    "catalog_ids": sorted(agent.store.item_ids()),
                }
                if case.stage == "compose":
                    from interestlens.agent.compose import compose_intents

                    llm = agent.llm if agent.stage_on("use_llm_compose") else None
                    intents = compose_intents(
                        profile,
                        case.context,
                        llm=llm,
                        embedder=self.embedder,
                        settings=self.settings,
                        stats=stats,
                    )
                    out["intents"] = [i.model_dump(mode="json") for i in intents]
                elif case.stage == "recommend":
                    res = agent.recommend(
                        uid, context=case.context, k=case.k, candidate_ids=case.candidate_ids
                    )
                    stats.add(res.stats)
                    out["result"] = res.model_dump(mode="json")
                    out["intents"] = [i.model_dump(mode="json") for i in res.intents]
                out["stats"] = stats.model_dump(mode="json")
                return out
            finally:
                agent.forget(uid)
                for ouid in others:
                    agent.forget(ouid)

    def judge(self, rubric: str, output: dict[str, Any], case: SuiteCase) -> tuple[bool, str]:
        from interestlens.agent.prompting import render

        llm = self.llm()
        if llm is None:
            raise InvalidInputError("judge assertions need an LLM (--llm)")
        shown = {k: v for k, v in output.items() if k in ("intents", "result", "profile")}
        prompt = render(
            "judge",
            rubric=rubric,
            texts=case.texts,
            context=case.context or "",
            output=json.dumps(shown, ensure_ascii=False)[:6000],
        )
        verdict = llm.generate(prompt, JudgeVerdict, max_tokens=200, temperature=0.0).value
        return verdict.passed, verdict.reason

    def close(self) -> None:
        for agent in self._agents.values():
            agent.close()
        self._agents.clear()
        if self._tmp is not None:
            self._tmp.cleanup()


_RUNNERS: dict[str, StageRunner] = {}

STAGES: tuple[str, ...] = ("decompose", "compose", "recommend")
# the SuiteCase fields that describe a stage call (the rest: assertions, requires, threshold... belong to suites)
STAGE_FIELDS: tuple[str, ...] = ("id", "texts", "context", "history", "catalog", "candidate_ids", "k", "other_users")


def call_stage(stage: str, payload: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """Run one stage for an external evaluation tool; `payload` holds STAGE_FIELDS (texts, context, k, ...).

    Returns {"stage", "profile", "sources", "intents"?, "result"?, "stats"}. Runners are cached per settings.
    An unknown stage, an unknown payload field or an invalid value raises InvalidInputError naming it; callers
    that receive extra fields of their own (promptfoo's `__evalId`...) drop them first
    (evals/promptfoo_provider.py).
    """
    if stage not in STAGES:
        raise InvalidInputError(f"unknown stage {stage!r} (one of: {', '.join(STAGES)})")
    unknown = sorted(set(payload) - set(STAGE_FIELDS))
    if unknown:
        raise InvalidInputError(f"unknown field(s) {', '.join(unknown)} (stage fields: {', '.join(STAGE_FIELDS)})")
    body = {k: v for k, v in payload.items() if k != "id"}
    try:
        case = SuiteCase.model_validate(
            {"id": payload.get("id") or content_hash(json.dumps(body, default=str)), "stage": stage, **body}
        )
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err.get("loc", ()))
        raise InvalidInputError(f"{loc}: {err['msg']}") from e
    settings = settings or Settings()
    key = settings.model_dump_json()
    if key not in _RUNNERS:
        _RUNNERS[key] = StageRunner(settings)
    return _RUNNERS[key].run(case)


# ------------------------------------------------------------------------------------------ assertions


def _names_for_matching(case: SuiteCase, out: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(text, record) pairs the stage produced: interests, intents, or recommended items."""
    if case.stage == "decompose":
        return [
            (i["name"] + (f" — {i['description']}" if i.get("description") else ""), i)
            for i in out["profile"]["interests"]
        ]
    if case.stage == "compose":
        return [(f"{i['name']} — {i['query']}", i) for i in out.get("intents", [])]
    return [
        (r["item"]["title"] + " — " + r["item"]["text"][:200], r) for r in out["result"]["recommendations"]
    ]


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


def check_case(
    runner: StageRunner, case: SuiteCase, out: dict[str, Any], capable: bool
) -> list[AssertionResult]:
    a = case.assertions
    results: list[AssertionResult] = []

    def add(name: str, ok: bool, detail: str = "") -> None:
        results.append(
            AssertionResult(case_id=case.id, assertion=name, status="pass" if ok else "fail", detail=detail)
        )

    def skipped(name: str) -> bool:
        if name in case.requires_capable and not capable:
            results.append(
                AssertionResult(case_id=case.id, assertion=name, status="skip", detail=f"requires {CAPABLE}")
            )
            return True
        return False

    sources = {s["id"]: s["text"] for s in out["sources"]}
    named = _names_for_matching(case, out)
    names = [n for n, _ in named]
    observed = [i for i in out["profile"]["interests"] if i["origin"] == InterestOrigin.OBSERVED.value]

    for want in a.must_find:
        if skipped("must_find"):
            break
        best = _best_matches(runner, want, names)
        top = best[0] if best else (0.0, -1)
        add(
            f"must_find:{want}",
            top[0] >= case.threshold,
            f"best {names[top[1]][:60]!r} at {top[0]:.2f}" if top[1] >= 0 else "nothing produced",
        )
    for unwanted in a.must_not_find:
        if skipped("must_not_find"):
            break
        likes = (
            [(n, r) for n, r in named if r.get("polarity", "like") == "like"]
            if case.stage == "decompose"
            else named
        )
        best = _best_matches(runner, unwanted, [n for n, _ in likes])
        top = best[0] if best else (0.0, -1)
        add(
            f"must_not_find:{unwanted}",
            top[0] < case.threshold,
            f"closest {likes[top[1]][0][:60]!r} at {top[0]:.2f}" if top[1] >= 0 else "nothing produced",
        )
    if a.polarity and not skipped("polarity"):
        interest_names = [
            i["name"] + (f" — {i['description']}" if i.get("description") else "")
            for i in out["profile"]["interests"]
        ]
        for name, pol in a.polarity.items():
            best = _best_matches(runner, name, interest_names)
            matching = [out["profile"]["interests"][idx] for s, idx in best if s >= case.threshold]
            # the closest interest above threshold decides; a dislike anywhere among close matches also counts
            ok = bool(matching) and (
                matching[0]["polarity"] == pol.value or any(m["polarity"] == pol.value for m in matching[:3])
            )
            shown = (
                ", ".join(f"{m['name'][:30]}={m['polarity']}" for m in matching[:3]) or "no interest matched"
            )
            add(f"polarity:{name}={pol.value}", ok, shown)
    if a.evidence_substrings and not skipped("evidence_substrings"):
        spans = [e for i in observed for e in i["evidence"]]
        bad = _spans_verbatim(spans, sources)
        ungrounded = [i["name"] for i in observed if not i["evidence"]]
        add(
            "evidence_substrings",
            not bad and not ungrounded,
            f"{len(spans)} spans checked"
            + (f"; not verbatim: {bad[:3]}" if bad else "")
            + (f"; interests without evidence: {ungrounded[:3]}" if ungrounded else ""),
        )
    if a.intents is not None and not skipped("intents"):
        n = len(out.get("intents", []))
        lo, hi = a.intents.get("min", 0), a.intents.get("max", 10**6)
        add("intents", lo <= n <= hi, f"{n} intents (want {lo}..{hi})")
        for i in out.get("intents", []):
            Intent.model_validate(i)
    recs = out.get("result", {}).get("recommendations", []) if case.stage == "recommend" else []
    if a.justification_cites_evidence and not skipped("justification_cites_evidence"):
        problems = []
        for r in recs:
            if not r["justification"].strip():
                problems.append(f"{r['item']['id']}: empty justification")
            bad = _spans_verbatim(r["cited_evidence"], sources)
            if bad:
                problems.append(f"{r['item']['id']}: cites text not in the user's sources {bad[:2]}")
            if not r["cited_evidence"] and not r["item_facts"]:
                problems.append(f"{r['item']['id']}: cites neither evidence nor item facts")
            for fact in r["item_facts"]:
                if fact not in r["item"]["text"] and fact not in r["item"]["title"]:
                    problems.append(f"{r['item']['id']}: item fact not in the item text")
        cited = sum(1 for r in recs if r["cited_evidence"])
        add(
            "justification_cites_evidence",
            bool(recs) and not problems and cited > 0,
            f"{cited}/{len(recs)} cite user evidence" + (f"; {problems[:3]}" if problems else ""),
        )
    for field, value in a.include_category.items():
        if skipped("include_category"):
            break
        hits = [r["item"]["id"] for r in recs if value.lower() in _category_values(r["item"], field)]
        add(f"include_category:{field}={value}", bool(hits), f"{len(hits)}/{len(recs)} items")
    for field, value in a.exclude_category.items():
        if skipped("exclude_category"):
            break
        hits = [r["item"]["id"] for r in recs if value.lower() in _category_values(r["item"], field)]
        add(
            f"exclude_category:{field}={value}",
            not hits,
            f"found {hits[:5]}" if hits else f"0/{len(recs)} items",
        )
    if a.ids_valid and not skipped("ids_valid"):
        ids = [r["item"]["id"] for r in recs]
        catalog = set(out["catalog_ids"])
        allowed = set(case.candidate_ids) if case.candidate_ids is not None else catalog
        problems = [i for i in ids if i not in catalog or i not in allowed]
        dup = len(ids) - len(set(ids))
        hist = [i for i in ids if i in set(case.history)]
        add(
            "ids_valid",
            bool(ids) and not problems and not dup and not hist,
            f"{len(ids)} ids; outside={problems[:3]} duplicates={dup} history={hist[:3]}",
        )
    if a.no_other_user_data and not skipped("no_other_user_data"):
        other_texts = [s["text"] for s in out["other_sources"]]
        other_ids = {s["id"] for s in out["other_sources"]} - set(sources)
        leaks = []
        blob = json.dumps(
            {k: out.get(k) for k in ("profile", "intents", "result")}, ensure_ascii=False
        ).lower()
        for t in other_texts:
            # any distinctive 5-word run of another user's text appearing in this user's output is a leak
            words = t.lower().split()
            for s in range(max(1, len(words) - 4)):
                frag = " ".join(words[s : s + 5])
                if len(frag) >= 20 and frag in blob and frag not in " ".join(case.texts).lower():
                    leaks.append(frag)
                    break
        spans = [e for i in out["profile"]["interests"] for e in i["evidence"]] + [
            e for r in recs for e in r["cited_evidence"]
        ]
        foreign = [e["source_id"] for e in spans if e["source_id"] in other_ids]
        add(
            "no_other_user_data",
            not leaks and not foreign and bool(other_texts),
            f"other-user fragments: {leaks[:2]}; foreign source ids: {foreign[:2]}"
            if (leaks or foreign)
            else f"{len(other_texts)} other-user texts, none leaked",
        )
    if a.schema_valid and not skipped("schema_valid"):
        try:
            InterestProfile.model_validate(out["profile"])
            if "result" in out:
                RecommendationResult.model_validate(out["result"])
            add("schema_valid", True, "profile" + (" + result" if "result" in out else "") + " validate")
        except ValidationError as e:
            add("schema_valid", False, str(e)[:200])
    if a.judge is not None and not skipped("judge"):
        try:
            ok, reason = runner.judge(a.judge.get("rubric", ""), out, case)
            add("judge", ok, reason[:200])
        except (LLMError, InvalidInputError) as e:
            results.append(
                AssertionResult(case_id=case.id, assertion="judge", status="error", detail=str(e)[:200])
            )
    return results


def _case_status(results: Sequence[AssertionResult]) -> str:
    statuses = {r.status for r in results}
    if "error" in statuses:
        return "error"
    if "fail" in statuses:
        return "FAIL"
    if statuses == {"skip"}:
        return "skip"
    return "ok"


def run_suite(
    path: str | Path,
    settings: Settings | None = None,
    out_path: str | Path | None = None,
    *,
    print_table: bool = True,
    runner: StageRunner | None = None,
    progress: bool = False,
    junit_path: str | Path | None = None,
) -> SuiteReport:
    """Run every case of a suite (a file path or a packaged suite's name); prints a rich table, writes JSON to
    `out_path` and JUnit XML to `junit_path` when given. `progress` prints one line per case on stderr
    (`[3/8] case-id ... ok 1.2s`): a suite on the packaged LLM runs for minutes."""
    settings = settings or Settings()
    cases = load_suite(path)
    capable = settings.llm not in (DEFAULT_LLM, "none", "")
    own_runner = runner is None
    started = time.perf_counter()
    if progress:
        _progress(f"{suite_name(path)}: {len(cases)} cases (llm: {settings.llm})")
    runner = runner or StageRunner(settings)
    results: list[AssertionResult] = []
    seconds: dict[str, float] = {}
    totals = StageStats()
    try:
        for n, case in enumerate(cases, start=1):
            t0 = time.perf_counter()
            if progress:
                _progress(f"[{n}/{len(cases)}] {case.id} ...", end="")
            case_results = _run_case(runner, case, capable, totals)
            seconds[case.id] = round(time.perf_counter() - t0, 3)
            results.extend(case_results)
            if progress:
                failed = [r.assertion for r in case_results if r.status in ("fail", "error")]
                _progress(f" {_case_status(case_results)} {seconds[case.id]:.1f}s" + (f" ({', '.join(failed)})"
                          if failed else ""))
    finally:
        if own_runner:
            runner.close()
    report = SuiteReport(
        suite=str(path),
        llm=settings.llm,
        results=results,
        stats={
            "llm_calls": totals.llm_calls,
            "invalid_outputs": totals.invalid_outputs,
            "fallbacks": totals.fallbacks,
            "dropped_ungrounded": totals.dropped_ungrounded,
        },
        case_seconds=seconds,
        seconds=round(time.perf_counter() - started, 3),
    )
    report.stats.update(report.counts())
    if print_table:
        print_report(report)
    if out_path is not None:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        Path(out_path).write_text(report.model_dump_json(indent=2) + "\n")
    if junit_path is not None:
        write_junit(report, junit_path)
    return report


def _run_case(runner: StageRunner, case: SuiteCase, capable: bool, totals: StageStats) -> list[AssertionResult]:
    if case.requires == CAPABLE and not capable:
        return [AssertionResult(case_id=case.id, assertion="*", status="skip", detail=f"case requires {CAPABLE}")]
    try:
        out = runner.run(case)
    except InterestLensError as e:
        return [AssertionResult(case_id=case.id, assertion="run", status="error", detail=str(e)[:300])]
    totals.add(StageStats.model_validate(out["stats"]))
    return check_case(runner, case, out, capable)


def _progress(line: str, end: str = "\n") -> None:
    sys.stderr.write(line + end)
    sys.stderr.flush()


_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(text: str) -> str:
    """XML 1.0 cannot carry most control characters even escaped; case ids and details may hold user text."""
    return _XML_ILLEGAL.sub("\ufffd", text)


def junit_xml(report: SuiteReport) -> ET.Element:
    """JUnit XML for CI systems: one <testsuite> named after the suite, one <testcase> per case (classname = the
    suite's name), a <failure> listing the failed checks, an <error> where the stage could not run, <skipped> for
    a case that needs a capable LLM. Assertions skipped inside a passing case are listed in its <system-out>."""
    name = suite_name(report.suite)
    by_case: dict[str, list[AssertionResult]] = {c: [] for c in report.case_seconds}
    for r in report.results:
        by_case.setdefault(r.case_id, []).append(r)
    status = {c: _case_status(rs) for c, rs in by_case.items()}
    root = ET.Element("testsuites", name=_x(f"interestlens eval suite {name}"))
    suite = ET.SubElement(
        root,
        "testsuite",
        name=_x(name),
        tests=str(len(by_case)),
        failures=str(sum(s == "FAIL" for s in status.values())),
        errors=str(sum(s == "error" for s in status.values())),
        skipped=str(sum(s == "skip" for s in status.values())),
        time=f"{report.seconds:.3f}",
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="llm", value=_x(report.llm))
    for key, value in report.stats.items():
        ET.SubElement(props, "property", name=key, value=str(value))
    for case_id, rs in by_case.items():
        seconds = report.case_seconds.get(case_id, 0.0)
        tc = ET.SubElement(suite, "testcase", classname=_x(name), name=_x(case_id), time=f"{seconds:.3f}")
        details = _x("\n".join(f"{r.status}: {r.assertion}: {r.detail}" for r in rs))
        failed = [r for r in rs if r.status == "fail"]
        errors = [r for r in rs if r.status == "error"]
        if errors:
            message = "; ".join(f"{r.assertion}: {r.detail}" for r in errors)[:1000]
            el = ET.SubElement(tc, "error", message=_x(message))
            el.text = details
        elif failed:
            message = "failed: " + ", ".join(r.assertion for r in failed)
            el = ET.SubElement(tc, "failure", message=_x(message), type="AssertionFailure")
            el.text = details
        elif status[case_id] == "skip":
            ET.SubElement(tc, "skipped", message=_x("; ".join(r.detail for r in rs)[:1000]))
        if rs and not errors and not failed:
            ET.SubElement(tc, "system-out").text = details
    return root


def write_junit(report: SuiteReport, path: str | Path) -> None:
    tree = ET.ElementTree(junit_xml(report))
    ET.indent(tree)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)


def print_report(report: SuiteReport) -> None:
    from rich.console import Console
    from rich.table import Table

    colours = {"pass": "green", "fail": "red", "skip": "yellow", "error": "magenta"}
    table = Table(title=f"{report.suite} (llm: {report.llm})")
    for col in ("case", "assertion", "status", "detail"):
        table.add_column(col, overflow="fold")
    for r in report.results:
        table.add_row(r.case_id, r.assertion, f"[{colours[r.status]}]{r.status}[/]", r.detail)
    Console().print(table)
    c = report.counts()
    Console().print(
        f"pass {c['pass']}  fail {c['fail']}  skip {c['skip']}  error {c['error']}  "
        f"(llm calls {report.stats.get('llm_calls', 0)}, invalid outputs "
        f"{report.stats.get('invalid_outputs', 0)}, fallbacks {report.stats.get('fallbacks', 0)})"
    )


__all__ = [
    "STAGES",
    "STAGE_FIELDS",
    "SuiteCase",
    "SuiteReport",
    "call_stage",
    "junit_xml",
    "load_suite",
    "np",
    "packaged_suites",
    "run_suite",
    "write_junit",
]
