"""Running one pipeline stage for a suite case: agents over temporary stores, the case's user forgotten after.

`StageRunner.run` returns the JSON-able dict that suite checks read and `call_stage` (evals/suite.py) returns;
`StageRunner.judge` asks the LLM to grade an output against a rubric (prompts/judge.j2).
"""

from __future__ import annotations

import json
import tempfile
import threading
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from interestlens.agent.compose import compose_intents
from interestlens.agent.config import Settings
from interestlens.agent.embeddings import make_embedder
from interestlens.agent.errors import InvalidInputError
from interestlens.agent.llm import make_llm
from interestlens.agent.models import InterestProfile, Item, SourceText, StageStats, content_hash
from interestlens.agent.prompting import render
from interestlens.agent.service import FLOOR_LLMS, InterestAgent
from interestlens.evals.suite_cases import SuiteCase
from interestlens.stores.catalog_io import read_catalog_jsonl
from interestlens.stores.chroma_store import ChromaStore


class JudgeVerdict(BaseModel):
    """Bounded so that small models terminate under a grammar."""

    passed: bool
    reason: str = Field(max_length=300)


def demo_catalog() -> list[Item]:
    ref = resources.files("interestlens.agent").joinpath("data/demo_catalog.jsonl")
    with resources.as_file(ref) as p:
        return list(read_catalog_jsonl(p))


class StageRunner:
    """Agents over temporary stores, one per distinct catalog; users are forgotten after every call."""

    def __init__(self, settings: Settings, root: str | Path | None = None) -> None:
        self.settings = settings
        self._tmp = None if root is not None else tempfile.TemporaryDirectory(prefix="interestlens-suite-")
        self.root = Path(root) if root is not None else Path(self._tmp.name)  # type: ignore[union-attr]
        self.embedder = make_embedder(
            settings.embedder, base_url=settings.openai.base_url, api_key=settings.openai.api_key
        )
        self._agents: dict[str, InterestAgent] = {}
        self._llm: Any = None
        self._llm_loaded = False
        self._lock = threading.Lock()

    def llm(self) -> Any:
        if not self._llm_loaded:
            self._llm = make_llm(self.settings.llm, self.settings)
            self._llm_loaded = True
        return self._llm

    def agent(self, catalog: Literal["demo"] | list[Item]) -> InterestAgent:
        items = demo_catalog() if catalog == "demo" else catalog
        key = "demo" if catalog == "demo" else content_hash(*(i.content_hash() for i in items))
        if key not in self._agents:
            store = ChromaStore(str(self.root / f"store-{key}"), self.embedder)
            update: dict[str, Any] = {"store": str(self.root / f"store-{key}")}
            if self.settings.llm in FLOOR_LLMS:  # the suite runs what a user of this model gets by default
                stages = self.settings.llm_stages
                update["llm_stages"] = {name: False if on is None else on for name, on in stages.model_dump().items()}
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
                    llm = agent.llm if agent.stage_on("compose") else None
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
