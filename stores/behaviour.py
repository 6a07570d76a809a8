"""Behavioural signals from interactions: popularity, item-item co-occurrence and EASE.

Rows live where `interaction_rows.py` keeps them: a SQLite file in embedded mode, the Chroma server itself in
server mode (so every client of one server sees the same behaviour).

Signals use implicit feedback: a user either interacted with an item (value > 0) or not. Ratings are kept for
callers but not used as weights, since a low star rating is still evidence of co-consumption.
The sparse user x item matrix is rebuilt lazily when the rows' `generation` token changes, which also notices
writes from other processes.

EASE (Steck 2019, "Embarrassingly Shallow Autoencoders"): the closed-form item-item model
B = I - P / diag(P), P = (X^T X + lambda I)^-1, zero diagonal, fit on the binary matrix. It is the strongest
simple collaborative baseline on sparse data. The inverse is cubic in the number of items, so it is fit on the
`ease_max_items` most-consumed items only (others score 0), and lazily, once per generation.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from pydantic import ValidationError

from interestlens.agent.errors import InvalidInputError
from interestlens.agent.models import Interaction
from interestlens.stores.ids import validate_item_id, validate_user_id
from interestlens.stores.interaction_rows import InteractionRows, Row, SqliteInteractions

# EASE's L2 strength: fixed at 20 before any evaluation (small data: a few hundred users), never tuned on
# reported cases. Item cap: the inverse is cubic; 3,000 items is ~1 s on 2 cores and covers the items that
# carry collaborative signal in both datasets here.
EASE_LAMBDA = 20.0
EASE_MAX_ITEMS = 3000


@dataclass
class BehaviourMatrices:
    generation: int | str
    item_ids: list[str]
    item_index: dict[str, int]
    normalised: sp.csc_matrix  # users x items, binary, columns scaled to unit L2 norm
    normalised_t: sp.csr_matrix  # its transpose (items x users), for the second product
    popularity: dict[str, float]
    binary: sp.csc_matrix  # users x items, 0/1


class BehaviourStore:
    """Signals (popularity, co-occurrence, EASE) over interaction rows, with matrices cached per generation."""

    def __init__(
        self, rows: InteractionRows | str | Path, *, ease_lambda: float = EASE_LAMBDA,
        ease_max_items: int = EASE_MAX_ITEMS,
    ) -> None:
        self.rows: InteractionRows = SqliteInteractions(rows) if isinstance(rows, str | Path) else rows
        self.ease_lambda = ease_lambda
        self.ease_max_items = ease_max_items
        self._ease: EaseModel | None = None
        self._lock = threading.RLock()
        self._cache: BehaviourMatrices | None = None

    @property
    def location(self) -> str:
        return self.rows.location

    # -- writes ------------------------------------------------------------------------------------

    def add(self, interactions: Iterable[Interaction | dict]) -> int:
        """Insert interactions in one batch; returns how many were new. A bad row rejects the batch."""
        rows: list[Row] = []
        for n, raw in enumerate(interactions, start=1):
            try:
                it = raw if isinstance(raw, Interaction) else Interaction.model_validate(raw)
            except ValidationError as e:
                raise InvalidInputError(f"interaction #{n}: {e.errors()[0]['msg']}") from e
            try:
                validate_user_id(it.user_id)
                validate_item_id(it.item_id)
            except InvalidInputError as e:
                raise InvalidInputError(f"interaction #{n}: {e}") from e
            if not math.isfinite(it.value):
                raise InvalidInputError(f"interaction #{n}: value must be a finite number")
            rows.append((it.user_id, it.item_id, float(it.value), it.ts.isoformat() if it.ts else ""))
        if not rows:
            return 0
        with self._lock:
            return self.rows.insert(rows)

    def delete_user(self, user_id: str, *, purge: bool = False) -> int:
        return self.delete_users([user_id], purge=purge)

    def delete_users(self, user_ids: Sequence[str], *, purge: bool = False) -> int:
        """Every row of these users. `purge` also leaves no byte of them on disk where the backend can."""
        with self._lock:
            return self.rows.delete_users(list(user_ids), purge=purge)

    def delete_interaction(self, user_id: str, item_id: str, ts: datetime | None) -> int:
        """The one row keyed (user, item, ts); 0 when it is not there."""
        with self._lock:
            return self.rows.delete_row(user_id, item_id, ts.isoformat() if ts else "")

    # -- reads -------------------------------------------------------------------------------------

    def count(self, user_id: str | None = None) -> int:
        return self.rows.count(user_id)

    def user_interactions(self, user_id: str) -> list[Interaction]:
        """Every row of the user, oldest first (for export)."""
        return [
            Interaction(user_id=user_id, item_id=i, value=v, ts=t or None) for i, v, t in self.rows.user_rows(user_id)
        ]

    def user_items(self, user_id: str) -> list[str]:
        """Items the user interacted with, oldest first where timestamps exist."""
        first: dict[str, str] = {}
        for item, _, ts in self.rows.user_rows(user_id):
            first[item] = min(first.get(item, ts), ts)
        return sorted(first, key=lambda i: (first[i], i))

    def popularity_scores(self) -> dict[str, float]:
        """log1p(number of users who interacted), divided by the maximum, so the top item scores 1.0."""
        return dict(self._matrices().popularity)

    def cooccurrence_scores(
        self, seed_item_ids: Sequence[str], exclude: set[str] | frozenset[str] = frozenset(), n: int = 200
    ) -> dict[str, float]:
        """Sum over seeds of item-item cosine on the binary user x item matrix; top `n`, seeds excluded."""
        return cooccurrence_scores(self._matrices(), seed_item_ids, exclude, n)

    def ease_scores(
        self, seed_item_ids: Sequence[str], exclude: set[str] | frozenset[str] = frozenset(), n: int = 200
    ) -> dict[str, float]:
        """EASE scores of the user's row (the seed items) over the fitted items; top `n` positive, seeds excluded."""
        m = self._matrices()
        with self._lock:
            if self._ease is None or self._ease.generation != m.generation:
                self._ease = fit_ease(m, self.ease_lambda, self.ease_max_items)
            model = self._ease
        return ease_scores(m, model, seed_item_ids, exclude, n)

    def _matrices(self) -> BehaviourMatrices:
        with self._lock:
            gen = self.rows.generation()
            if self._cache is not None and self._cache.generation == gen:
                return self._cache
            self._cache = build_matrices(gen, self.rows.positive_pairs())
            return self._cache

    def close(self) -> None:
        with self._lock:
            self.rows.close()


def build_matrices(generation: int | str, pairs: Sequence[tuple[str, str]]) -> BehaviourMatrices:
    user_index: dict[str, int] = {}
    item_index: dict[str, int] = {}
    r = np.fromiter(
        (user_index.setdefault(u, len(user_index)) for u, _ in pairs), dtype=np.int64, count=len(pairs)
    )
    c = np.fromiter(
        (item_index.setdefault(i, len(item_index)) for _, i in pairs), dtype=np.int64, count=len(pairs)
    )
    item_ids = list(item_index)
    x = sp.csc_matrix((np.ones(len(pairs), dtype=np.float32), (r, c)), shape=(len(user_index), len(item_ids)))
    counts = np.asarray(x.sum(axis=0)).ravel()  # users per item (pairs are distinct)
    norms = np.sqrt(counts)
    norms[norms == 0] = 1.0
    normalised = (x @ sp.diags(1.0 / norms).astype(np.float32)).tocsc()
    logc = np.log1p(counts)
    top = float(logc.max()) if logc.size else 0.0
    popularity = {iid: float(logc[k] / top) for k, iid in enumerate(item_ids)} if top > 0 else {}
    return BehaviourMatrices(generation, item_ids, item_index, normalised, normalised.T.tocsr(), popularity, x)


def _top_positive(scores: np.ndarray, n: int) -> np.ndarray:
    positive = np.flatnonzero(scores > 0)
    if positive.size > n:
        positive = positive[np.argpartition(-scores[positive], n - 1)[:n]]
    return positive[np.argsort(-scores[positive], kind="stable")]


def cooccurrence_scores(
    m: BehaviourMatrices, seed_item_ids: Sequence[str], exclude: set[str] | frozenset[str] = frozenset(), n: int = 200
) -> dict[str, float]:
    """Sum over seeds of item-item cosine on the binary user x item matrix; top `n`, seeds excluded."""
    seeds = sorted({m.item_index[s] for s in seed_item_ids if s in m.item_index})
    if not seeds or n <= 0:
        return {}
    user_vec = np.asarray(m.normalised[:, seeds].sum(axis=1)).ravel()
    scores = m.normalised_t @ user_vec
    banned = set(seeds) | {m.item_index[e] for e in exclude if e in m.item_index}
    scores[list(banned)] = 0.0
    return {m.item_ids[i]: float(scores[i]) for i in _top_positive(scores, n)}


@dataclass
class EaseModel:
    generation: int | str
    items: np.ndarray  # matrix columns the model covers
    weights: np.ndarray  # B, items x items, zero diagonal


def fit_ease(m: BehaviourMatrices, lam: float, max_items: int) -> EaseModel:
    """B = I - P / diag(P) with P = (X^T X + lam I)^-1 (Steck 2019), on the `max_items` most-consumed items."""
    counts = np.asarray(m.binary.sum(axis=0)).ravel()
    active = np.flatnonzero(counts > 0)
    if active.size > max_items:
        active = np.sort(active[np.argsort(-counts[active], kind="stable")[:max_items]])
    if active.size < 2:
        return EaseModel(m.generation, active, np.zeros((0, 0), dtype=np.float32))
    x = m.binary[:, active]
    gram = (x.T @ x).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    b = (-p / np.diag(p)[None, :]).astype(np.float32)
    np.fill_diagonal(b, 0.0)
    return EaseModel(m.generation, active, b)


def ease_scores(
    m: BehaviourMatrices, model: EaseModel, seed_item_ids: Sequence[str],
    exclude: set[str] | frozenset[str] = frozenset(), n: int = 200,
) -> dict[str, float]:
    """x_u B over the model's items for the user's row x_u (the seed items); top `n` positive, seeds excluded."""
    if model.weights.size == 0 or n <= 0:
        return {}
    pos = {int(j): k for k, j in enumerate(model.items)}
    known = [m.item_index[s] for s in dict.fromkeys(seed_item_ids) if s in m.item_index]
    row = [pos[j] for j in known if j in pos]
    if not row:
        return {}
    scores = model.weights[row].sum(axis=0)
    banned = set(row) | {pos[m.item_index[e]] for e in exclude if e in m.item_index and m.item_index[e] in pos}
    scores[list(banned)] = 0.0
    return {m.item_ids[int(model.items[k])]: float(scores[k]) for k in _top_positive(scores, n)}
