"""Leave-user-out: the one loop over users that evaluation and fusion fitting share.

`AgentEnvironment` is one store per dataset (catalog and behaviour ingested once, cached by hash). `user_loop`
yields each user's cases with that user's own behaviour rows removed from the store, restored afterwards; inside,
`fresh_user` observes a case as a new agent user and forgets it afterwards. So no user is ever scored, or has a
candidate pool built, from a store that holds their own behaviour.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from interestlens.agent.config import Settings
from interestlens.agent.llm import make_llm
from interestlens.agent.models import Interaction, ObserveResult
from interestlens.agent.protocols import Embedder
from interestlens.agent.service import InterestAgent
from interestlens.evals.data import EvalCase, EvalDataset, eval_user_id
from interestlens.stores.chroma_store import ChromaStore


def default_cache_dir() -> Path:
    return Path(
        os.environ.get("INTERESTLENS_EVAL_CACHE") or Path.home() / ".cache" / "interestlens" / "evals"
    )


class AgentEnvironment:
    """One ChromaStore per dataset (catalog + behaviour ingested once, cached by hash) for the agents."""

    def __init__(
        self, ds: EvalDataset, settings: Settings, cache_dir: Path, embedder: Embedder, progress: bool
    ) -> None:
        self.ds = ds
        store_dir = cache_dir / f"store-{ds.name}-{ds.catalog_hash}-{ds.behaviour_hash()}"
        self.settings = settings.model_copy(update={"store": str(store_dir)})
        self.embedder = embedder
        self.store = ChromaStore(str(store_dir), embedder)
        ready = store_dir / ".eval-items-ready"
        if not ready.exists() or self.store.count_items() != len(ds.catalog):
            self.store.upsert_items(ds.catalog, progress=progress)
            ready.write_text(str(len(ds.catalog)))
        # Idempotent (rows keyed by user, item, ts): also restores rows a killed run left removed.
        self.store.add_interactions(ds.behaviour)
        self._llm: Any = None

    def llm(self) -> Any:
        if self._llm is None:
            self._llm = make_llm(self.settings.llm, self.settings)
        return self._llm

    def agent(self, *, with_llm: bool) -> InterestAgent:
        return InterestAgent(
            self.settings, llm=self.llm() if with_llm else None, embedder=self.embedder, store=self.store
        )

    def hold_out_user(self, case: EvalCase) -> list[Interaction]:
        """Leave-user-out: remove this user's split-derived behaviour while their cases run."""
        own = self.ds.own_behaviour(case)
        if own:
            self.store.behaviour.delete_users(sorted({x.user_id for x in own}))
        return own

    def restore_user(self, rows: list[Interaction]) -> None:
        if rows:
            self.store.add_interactions(rows)

    def close(self) -> None:
        self.store.close()


def group_by_user(cases: Sequence[EvalCase]) -> dict[str, list[EvalCase]]:
    by_user: dict[str, list[EvalCase]] = {}
    for c in cases:
        by_user.setdefault(c.user_id, []).append(c)
    return by_user


@contextmanager
def held_out(env: AgentEnvironment | None, case: EvalCase) -> Iterator[None]:
    """Leave-user-out: this user's own behaviour is absent from the store inside the block."""
    rows = env.hold_out_user(case) if env is not None else []
    try:
        yield
    finally:
        if env is not None:
            env.restore_user(rows)


def user_loop(
    env: AgentEnvironment | None, cases: Sequence[EvalCase]
) -> Iterator[tuple[str, list[EvalCase]]]:
    """(user id, that user's cases in file order), with the user's behaviour held out during each step."""
    for user, user_cases in group_by_user(cases).items():
        with held_out(env, user_cases[0]):
            yield user, user_cases


@contextmanager
def fresh_user(agent: InterestAgent, ds: EvalDataset, case: EvalCase) -> Iterator[tuple[str, ObserveResult | None]]:
    """The case as a new agent user: (its id, what observing its texts and history gave, None when it has
    neither), forgotten afterwards without the on-disk purge."""
    uid = eval_user_id(case)
    agent.forget(uid, purge=False)  # a crashed earlier run may have left this user behind
    try:
        obs = None
        if case.texts or case.history:
            # the user's other consumed items (their interactions.jsonl rows): a deployment knows them too
            seen = sorted(ds.consumed(case) - set(case.history))
            obs = agent.observe(uid, list(case.texts), history=list(case.history), seen=seen)
        yield uid, obs
    finally:
        agent.forget(uid, purge=False)
