"""Behavioural signals from interactions: popularity and item-item co-occurrence.

Interactions live in a small SQLite file (the store directory in embedded mode, a local state directory in
http mode) because 100k rows are a few milliseconds for SQLite but minutes of Chroma upserts with dummy
vectors. Rows are keyed by (user, item, ts), so re-ingesting the same file is idempotent.

Signals use implicit feedback: a user either interacted with an item (value > 0) or not. Ratings are kept for
callers but not used as weights, since a low star rating is still evidence of co-consumption.
The sparse user x item matrix is rebuilt lazily when the `generation` counter in the file changes, which also
notices writes from other processes sharing the file.

EASE (Steck 2019, "Embarrassingly Shallow Autoencoders"): the closed-form item-item model
B = I - P / diag(P), P = (X^T X + lambda I)^-1, zero diagonal, fit on the binary matrix. It is the strongest
simple collaborative baseline on sparse data. The inverse is cubic in the number of items, so it is fit on the
`ease_max_items` most-consumed items only (others score 0), and lazily, once per generation.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from pydantic import ValidationError

from interestlens.agent.errors import InvalidInputError, StoreError
from interestlens.agent.models import Interaction
from interestlens.stores.ids import validate_item_id, validate_user_id

_SCHEMA = """
CREATE TABLE IF NOT EXISTS interactions (
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    value REAL NOT NULL,
    ts TEXT NOT NULL,            -- ISO timestamp or '' when unknown (NULL would defeat the primary key)
    PRIMARY KEY (user_id, item_id, ts)
);
CREATE INDEX IF NOT EXISTS interactions_item ON interactions(item_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('generation', 0);
"""

# EASE's L2 strength: fixed at 20 before any evaluation (small data: a few hundred users), never tuned on
# reported cases. Item cap: the inverse is cubic; 3,000 items is ~1 s on 2 cores and covers the items that
# carry collaborative signal in both datasets here.
EASE_LAMBDA = 20.0
EASE_MAX_ITEMS = 3000


@dataclass
class BehaviourMatrices:
    generation: int
    item_ids: list[str]
    item_index: dict[str, int]
    normalised: sp.csc_matrix  # users x items, binary, columns scaled to unit L2 norm
    normalised_t: sp.csr_matrix  # its transpose (items x users), for the second product
    popularity: dict[str, float]
    binary: sp.csc_matrix  # users x items, 0/1


class BehaviourStore:
    """Interactions in SQLite plus cached sparse matrices for popularity and co-occurrence."""

    def __init__(
        self, path: str | Path, *, ease_lambda: float = EASE_LAMBDA, ease_max_items: int = EASE_MAX_ITEMS
    ) -> None:
        self.path = Path(path)
        self.ease_lambda = ease_lambda
        self.ease_max_items = ease_max_items
        self._ease: EaseModel | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(_SCHEMA)
            self._conn.commit()
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open interaction store {self.path}: {e}") from e
        self._lock = threading.RLock()
        self._cache: BehaviourMatrices | None = None

    # -- writes ------------------------------------------------------------------------------------

    def add(self, interactions: Iterable[Interaction | dict]) -> int:
        """Insert interactions in one transaction; returns how many were new. A bad row rejects the batch."""
        rows: list[tuple[str, str, float, str]] = []
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
            try:
                with self._conn:
                    before = self._conn.execute("SELECT COUNT(*) FROM interactions").fetchone()[0]
                    self._conn.executemany(
                        "INSERT INTO interactions(user_id, item_id, value, ts) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT(user_id, item_id, ts) DO UPDATE SET value = excluded.value",
                        rows,
                    )
                    self._bump()
                    after = self._conn.execute("SELECT COUNT(*) FROM interactions").fetchone()[0]
            except sqlite3.Error as e:
                raise StoreError(f"cannot write interactions to {self.path}: {e}") from e
        return after - before

    def delete_user(self, user_id: str) -> int:
        return self.delete_users([user_id])

    def delete_users(self, user_ids: Sequence[str]) -> int:
        """Every row of these users, in one transaction."""
        with self._lock, self._conn:
            cur = self._conn.executemany("DELETE FROM interactions WHERE user_id = ?", [(u,) for u in user_ids])
            self._bump()
            return cur.rowcount

    def _bump(self) -> None:
        self._conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")

    # -- reads -------------------------------------------------------------------------------------

    def count(self, user_id: str | None = None) -> int:
        with self._lock:
            if user_id is None:
                return self._conn.execute("SELECT COUNT(*) FROM interactions").fetchone()[0]
            return self._conn.execute(
                "SELECT COUNT(*) FROM interactions WHERE user_id = ?", (user_id,)
            ).fetchone()[0]

    def user_items(self, user_id: str) -> list[str]:
        """Items the user interacted with, oldest first where timestamps exist."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT item_id, MIN(ts) AS t FROM interactions WHERE user_id = ? "
                "GROUP BY item_id ORDER BY t, item_id",
                (user_id,),
            ).fetchall()
        return [r[0] for r in rows]

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

    def _generation(self) -> int:
        return self._conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]

    def _matrices(self) -> BehaviourMatrices:
        with self._lock:
            gen = self._generation()
            if self._cache is not None and self._cache.generation == gen:
                return self._cache
            rows = self._conn.execute(
                "SELECT DISTINCT user_id, item_id FROM interactions WHERE value > 0"
            ).fetchall()
            self._cache = build_matrices(gen, rows)
            return self._cache

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def build_matrices(generation: int, pairs: Sequence[tuple[str, str]]) -> BehaviourMatrices:
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
    generation: int
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
