"""Evaluation datasets in the shared format: catalog.jsonl, cases.<split>.jsonl, optional interactions.jsonl.

Leakage rules live here, in one place:
- a case's `positives` are ground truth only; nothing a system sees is derived from this split's positives;
- behaviour (popularity, co-occurrence, EASE) comes from `interactions.jsonl` when present; otherwise from the
  history + positives of every case of every split in the folder, one basket per case (a dialogue is a session),
  minus the user's own cases while that user is scored ("leave-user-out"). That is what a deployment has: every
  other user's behaviour counts, the user's own held-out positives never do. (Cases of one user are correlated,
  a movie liked in one dialogue is mentioned in the next, so all of the user's cases are held out together.)
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from interestlens.agent.errors import InvalidInputError
from interestlens.agent.models import Interaction, Item, SourceText
from interestlens.stores.catalog_io import read_catalog_jsonl, read_jsonl
from interestlens.stores.items import with_metadata_text

SAMPLED_NEGATIVES = 19


class Mention(BaseModel):
    """One item a user named in their texts, with the user's own label."""

    model_config = ConfigDict(extra="ignore")

    item_id: str = Field(min_length=1)
    liked: Literal[0, 1, 2] = 2


class EvalCase(BaseModel):
    """One case: what the user wrote, their request, what they consumed, what they went on to like."""

    model_config = ConfigDict(extra="ignore")

    case_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    texts: list[SourceText] = Field(default_factory=list)
    context: str | None = None
    history: list[str] = Field(default_factory=list)
    positives: list[str] = Field(min_length=1)
    # Items the user named in `texts` with their own label (1 liked, 0 did not like, 2 did not say): used only by
    # the decomposition benchmark (evals/decomposition.py), never by a system under test.
    mentions: list[Mention] = Field(default_factory=list)


_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_.@:-]")


def eval_user_id(case: EvalCase) -> str:
    """A fresh, valid agent user id per case (cases of one person must not share a profile)."""
    safe = _UNSAFE_ID.sub("_", case.case_id)[:100]
    return f"eval-{safe}-{hashlib.sha256(case.case_id.encode()).hexdigest()[:8]}"


def behaviour_user_id(user_id: str, case_id: str = "") -> str:
    """The behaviour row owner for one case's basket: `beh-<user>` plus a digest of the case."""
    base = "beh-" + _UNSAFE_ID.sub("_", user_id)[:100]
    return f"{base}.{hashlib.sha256(case_id.encode()).hexdigest()[:10]}" if case_id else base


def _behaviour_owner(row_user_id: str) -> str:
    return row_user_id.split(".", 1)[0]


@dataclass
class EvalDataset:
    name: str
    directory: Path
    split: str
    catalog: list[Item]
    cases: list[EvalCase]
    interactions: list[Interaction] | None  # interactions.jsonl, when the folder has one
    behaviour: list[Interaction] = field(
        default_factory=list
    )  # leakage-free behaviour (see module docstring)
    catalog_hash: str = ""
    _by_id: dict[str, Item] = field(default_factory=dict, repr=False)
    _consumed: dict[str, set[str]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._by_id = {it.id: it for it in self.catalog}

    @property
    def item_ids(self) -> list[str]:
        return [it.id for it in self.catalog]

    def item(self, item_id: str) -> Item:
        return self._by_id[item_id]

    def has_item(self, item_id: str) -> bool:
        return item_id in self._by_id

    def consumed(self, case: EvalCase) -> set[str]:
        """Items the user already consumed: the case's history plus their rows in interactions.jsonl.

        Every system's ranking is filtered by this set (standard "seen items" filtering); otherwise a user's
        already-rated, unliked items take top slots that can never be positives.
        """
        if self._consumed is None:
            self._consumed = {}
            for x in self.interactions or ():
                self._consumed.setdefault(x.user_id, set()).add(x.item_id)
        return set(case.history) | self._consumed.get(case.user_id, set())

    def behaviour_hash(self) -> str:
        h = hashlib.sha256()
        for x in self.behaviour:
            h.update(f"{x.user_id}\x1f{x.item_id}\x1f{x.ts}\x1e".encode())
        return h.hexdigest()[:12]

    def own_behaviour(self, case: EvalCase) -> list[Interaction]:
        """This user's split-derived rows (every case of theirs), which leave-user-out removes while they run."""
        if self.interactions is not None:
            return []
        own = behaviour_user_id(case.user_id)
        return [x for x in self.behaviour if _behaviour_owner(x.user_id) == own]

    def behaviour_for(self, case: EvalCase) -> list[Interaction]:
        """Behaviour usable for this case: everything except this user's own split-derived rows."""
        if self.interactions is not None:
            return self.behaviour
        own = behaviour_user_id(case.user_id)
        return [x for x in self.behaviour if _behaviour_owner(x.user_id) != own]

    def popularity_counts(self, case: EvalCase | None = None) -> Counter[str]:
        """Distinct behaviour rows' owners per item (as the store's popularity signal counts them)."""
        rows = self.behaviour if case is None else self.behaviour_for(case)
        return Counter(item for _, item in {(x.user_id, x.item_id) for x in rows})

    @property
    def behaviour_description(self) -> str:
        if self.interactions is not None:
            return "interactions.jsonl (every row; the case users' held-out positives are not in it)"
        return ("history + positives of every case of every split in the folder, one basket per case, "
                "leave-user-out: the scored user's own cases never count")


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def load_dataset(
    data_dir: str | Path, split: str, limit: int | None = None, text_fields: Sequence[str] = ()
) -> EvalDataset:
    """Read a dataset folder. `limit` keeps the first N cases (file order: deterministic).

    `text_fields`: metadata fields appended to each item's text (Settings.item_text_fields), for every system.
    """

    directory = Path(data_dir)
    catalog_path = directory / "catalog.jsonl"
    cases_path = directory / f"cases.{split}.jsonl"
    for p in (catalog_path, cases_path):
        if not p.is_file():
            raise InvalidInputError(f"{p}: not found (expected the shared dataset format)")
    catalog = [with_metadata_text(it, text_fields) for it in read_catalog_jsonl(catalog_path)]
    cases = list(read_jsonl(cases_path, EvalCase))
    if limit is not None:
        cases = cases[: max(0, limit)]
    known = {it.id for it in catalog}
    for c in cases:
        missing = [i for i in [*c.history, *c.positives] if i not in known]
        if missing:
            raise InvalidInputError(f"{cases_path}: case {c.case_id} names unknown item ids {missing[:5]}")
    inter_path = directory / "interactions.jsonl"
    interactions = list(read_jsonl(inter_path, Interaction)) if inter_path.is_file() else None
    ds = EvalDataset(
        name=directory.name,
        directory=directory,
        split=split,
        catalog=catalog,
        cases=cases,
        interactions=interactions,
        catalog_hash=_hash_file(catalog_path) + (
            "-" + hashlib.sha256("\x1f".join(text_fields).encode()).hexdigest()[:6] if text_fields else ""
        ),
    )
    ds.behaviour = interactions if interactions is not None else _split_behaviour(directory, split, known)
    return ds


def _split_behaviour(directory: Path, split: str, known: set[str]) -> list[Interaction]:
    """History + positives of every case in every split file (all cases, not only limited ones), per case."""

    rows: list[Interaction] = []
    for path in sorted(directory.glob("cases.*.jsonl")):
        for c in read_jsonl(path, EvalCase):
            owner = behaviour_user_id(c.user_id, c.case_id)
            rows.extend(
                Interaction(user_id=owner, item_id=i) for i in dict.fromkeys([*c.history, *c.positives]) if i in known
            )
    return rows


def sampled_candidates(
    case: EvalCase,
    positive: str,
    item_ids: Sequence[str],
    rng: random.Random,
    n_negatives: int = SAMPLED_NEGATIVES,
    consumed: set[str] | None = None,
) -> list[str]:
    """The positive plus `n_negatives` items drawn uniformly from outside the case's history (or the wider
    `consumed` set) and positives, shuffled."""
    excluded = set(case.history) | set(case.positives) | (consumed or set())
    pool_size = len(item_ids)
    if pool_size - len(excluded & set(item_ids)) < n_negatives:
        raise InvalidInputError(
            f"catalog too small to sample {n_negatives} negatives for case {case.case_id}"
        )
    negatives: list[str] = []
    chosen: set[str] = set()
    # Rejection sampling: uniform over the allowed pool without materialising it per pair.
    while len(negatives) < n_negatives:
        cand = item_ids[rng.randrange(pool_size)]
        if cand in excluded or cand in chosen:
            continue
        chosen.add(cand)
        negatives.append(cand)
    out = [positive, *negatives]
    rng.shuffle(out)
    return out


def case_rng(seed: int, *parts: str) -> random.Random:
    """A deterministic RNG per (seed, case, ...): independent of which systems run, and in what order."""
    digest = hashlib.sha256("\x1f".join([str(seed), *parts]).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))
