"""Baseline rankers evaluated beside interestlens on the same queries.

Every system answers `rank(query, k) -> SystemOutput` where a query is one case (full protocol: rank the
whole catalog) or one (case, positive) pair with its 20 candidates (sampled protocol). The case's history is
never ranked. Baselines share one embedding matrix of the catalog, cached on disk by catalog hash.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from interestlens.agent.embeddings import Embedder
from interestlens.agent.models import StageStats
from interestlens.evals.data import EvalCase, EvalDataset, case_rng
from interestlens.stores.behaviour import (
    EASE_LAMBDA,
    EASE_MAX_ITEMS,
    BehaviourMatrices,
    EaseModel,
    build_matrices,
    cooccurrence_scores,
    ease_scores,
    fit_ease,
)
from interestlens.stores.items import item_embedding_text

log = logging.getLogger(__name__)


@dataclass
class Query:
    """One ranking request. `candidate_ids` is None for the full protocol."""

    case: EvalCase
    relevant: list[str]
    candidate_ids: list[str] | None = None
    key: str = ""  # unique per query (case id, plus the positive for sampled pairs)


@dataclass
class SystemOutput:
    ranked: list[str]
    stats: StageStats | None = None
    latency_ms: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


def item_text(ds: EvalDataset, item_id: str) -> str:
    # The store's definition, so baseline vectors and stored item vectors are the same vectors.
    return item_embedding_text(ds.item(item_id))


class CatalogEmbeddings:
    """Item embeddings of a catalog, in catalog order, cached as .npy keyed by catalog hash and model."""

    def __init__(self, ds: EvalDataset, embedder: Embedder, cache_dir: Path) -> None:
        self.ids = ds.item_ids
        self.index = {i: n for n, i in enumerate(self.ids)}
        safe_model = "".join(c if c.isalnum() else "_" for c in embedder.model_id)
        path = cache_dir / f"emb-{ds.catalog_hash}-{safe_model}.npy"
        if path.is_file():
            mat = np.load(path)
            if mat.shape != (len(self.ids), embedder.dim):
                mat = None
        else:
            mat = None
        if mat is None:
            texts = [item_text(ds, i) for i in self.ids]
            mat = np.asarray(embedder.embed(texts), dtype=np.float32)
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, mat)
            tmp.replace(path)
        self.matrix: np.ndarray = mat

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        return self.matrix[[self.index[i] for i in ids]]

    def as_mapping(self) -> _EmbeddingView:
        return _EmbeddingView(self)


class _EmbeddingView:
    """Read-only Mapping-like view (id -> vector) for the diversity metric."""

    def __init__(self, emb: CatalogEmbeddings) -> None:
        self._emb = emb

    def __contains__(self, key: object) -> bool:
        return key in self._emb.index

    def __getitem__(self, key: str) -> np.ndarray:
        return self._emb.matrix[self._emb.index[key]]


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 1e-12 else np.zeros_like(x)


class ScoringBaseline:
    """Scores every catalog item; ranking, seen-item exclusion and candidate restriction are shared."""

    name = "baseline"
    is_llm = False

    def __init__(self, ds: EvalDataset) -> None:
        self.ds = ds
        self.ids = ds.item_ids
        self.index = {i: n for n, i in enumerate(self.ids)}

    def scores(self, query: Query, idx: np.ndarray | None) -> np.ndarray:
        """Scores for the catalog rows `idx` (None: every row)."""
        raise NotImplementedError

    def rank(self, query: Query, k: int) -> SystemOutput:
        t0 = time.perf_counter()
        if query.candidate_ids is not None:
            idx = np.array([self.index[i] for i in query.candidate_ids])
            s = self.scores(query, idx)
            order = np.argsort(-s, kind="stable")
            ranked = [query.candidate_ids[j] for j in order[:k]]
        else:
            s = np.asarray(self.scores(query, None), dtype=np.float64).copy()
            for h in self.ds.consumed(query.case):
                if h in self.index:
                    s[self.index[h]] = -np.inf
            top = min(k, len(s))
            part = np.argpartition(-s, top - 1)[:top]
            # stable tie-break by catalog order so results are reproducible
            order = part[np.lexsort((part, -s[part]))]
            ranked = [self.ids[j] for j in order if np.isfinite(s[j])]
        return SystemOutput(ranked=ranked, latency_ms=(time.perf_counter() - t0) * 1000.0)


class RandomBaseline(ScoringBaseline):
    name = "random"

    def __init__(self, ds: EvalDataset, seed: int) -> None:
        super().__init__(ds)
        self.seed = seed

    def scores(self, query: Query, idx: np.ndarray | None) -> np.ndarray:
        rng = np.random.default_rng(case_rng(self.seed, "random", query.key).getrandbits(63))
        return rng.random(len(self.ids) if idx is None else len(idx))


class PopularityBaseline(ScoringBaseline):
    """log1p(number of consumptions) in leakage-free behaviour (see evals.data)."""

    name = "popularity"

    def __init__(self, ds: EvalDataset) -> None:
        super().__init__(ds)
        self._cache: dict[str, np.ndarray] = {}

    def log_popularity(self, case: EvalCase) -> np.ndarray:
        key = "*" if self.ds.interactions is not None else case.user_id
        if key not in self._cache:
            pop = np.zeros(len(self.ids))
            for item_id, n in self.ds.popularity_counts(case).items():
                if item_id in self.index:
                    pop[self.index[item_id]] = n
            self._cache[key] = np.log1p(pop)
        return self._cache[key]

    def scores(self, query: Query, idx: np.ndarray | None) -> np.ndarray:
        p = self.log_popularity(query.case)
        return p if idx is None else p[idx]


def user_vector(case: EvalCase, ds: EvalDataset, emb: CatalogEmbeddings, embedder: Embedder) -> np.ndarray:
    """Mean of (mean text embedding) and (mean history-item embedding), whichever exist."""
    parts: list[np.ndarray] = []
    texts = [t.text for t in case.texts if t.text.strip()]
    if texts:
        parts.append(embedder.embed(texts).mean(axis=0))
    hist = [h for h in case.history if h in emb.index]
    if hist:
        parts.append(emb.vectors(hist).mean(axis=0))
    if not parts:
        return np.zeros(emb.matrix.shape[1], dtype=np.float32)
    parts = [p / max(float(np.linalg.norm(p)), 1e-12) for p in parts]
    u = np.mean(parts, axis=0)
    return u / max(float(np.linalg.norm(u)), 1e-12)


class EmbeddingBaseline(ScoringBaseline):
    name = "embedding"

    def __init__(self, ds: EvalDataset, emb: CatalogEmbeddings, embedder: Embedder) -> None:
        super().__init__(ds)
        self.emb = emb
        self.embedder = embedder
        self._user: dict[str, np.ndarray] = {}

    def user(self, case: EvalCase) -> np.ndarray:
        if case.case_id not in self._user:
            self._user = {case.case_id: user_vector(case, self.ds, self.emb, self.embedder)}
        return self._user[case.case_id]

    def scores(self, query: Query, idx: np.ndarray | None) -> np.ndarray:
        m = self.emb.matrix if idx is None else self.emb.matrix[idx]
        return m @ self.user(query.case)


class HybridBaseline(ScoringBaseline):
    """0.5 z-scored embedding similarity + 0.5 z-scored log1p popularity (z over the ranked set)."""

    name = "hybrid"

    def __init__(self, ds: EvalDataset, embedding: EmbeddingBaseline, popularity: PopularityBaseline) -> None:
        super().__init__(ds)
        self.embedding = embedding
        self.popularity = popularity

    def scores(self, query: Query, idx: np.ndarray | None) -> np.ndarray:
        e = self.embedding.scores(query, idx)
        p = self.popularity.scores(query, idx)
        return 0.5 * _zscore(np.asarray(e, dtype=np.float64)) + 0.5 * _zscore(np.asarray(p, dtype=np.float64))


class BM25Baseline(ScoringBaseline):
    """bm25s over item text; the query is the user's texts plus the texts of their history items."""

    name = "bm25"

    def __init__(self, ds: EvalDataset) -> None:
        import bm25s

        super().__init__(ds)
        self._bm25s = bm25s
        corpus = [item_text(ds, i) for i in self.ids]
        self.retriever = bm25s.BM25()
        self.retriever.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False)
        self.vocab = set(self.retriever.vocab_dict)
        self._last: tuple[str, np.ndarray] | None = None

    def scores(self, query: Query, idx: np.ndarray | None) -> np.ndarray:
        case = query.case
        if self._last is None or self._last[0] != case.case_id:
            text = " ".join([*(t.text for t in case.texts), *(item_text(self.ds, h) for h in case.history)])
            toks = self._bm25s.tokenize([text], stopwords="en", show_progress=False, return_ids=False)[0]
            toks = [t for t in toks if t in self.vocab]
            s = self.retriever.get_scores(toks) if toks else np.zeros(len(self.ids))
            self._last = (case.case_id, np.asarray(s, dtype=np.float64))
        s = self._last[1]
        return s if idx is None else s[idx]


class _BehaviourBaseline(ScoringBaseline):
    """Scores from the leave-user-out behaviour matrix (stores.behaviour's math, as the agent's signals use it).

    The matrix (and model) is built per scored user when behaviour is split-derived, once for interactions.jsonl.
    Items the model does not score (every item, for a user with no history) are ordered by popularity: the
    usual back-off, added as a tie-break of 1e-6 x log-popularity so it never reorders scored items.
    """

    def __init__(self, ds: EvalDataset, popularity: PopularityBaseline) -> None:
        super().__init__(ds)
        self.popularity = popularity
        self._key: str | None = None
        self._model: object = None
        self._last: tuple[str, np.ndarray] | None = None

    def _matrices(self, case: EvalCase) -> BehaviourMatrices:
        key = "*" if self.ds.interactions is not None else case.user_id
        if key != self._key:
            rows = self.ds.behaviour_for(case)
            self._model = self.fit(build_matrices(0, sorted({(x.user_id, x.item_id) for x in rows if x.value > 0})))
            self._key = key
        return self._model.matrices  # type: ignore[attr-defined]

    def fit(self, m: BehaviourMatrices) -> object:
        raise NotImplementedError

    def item_scores(self, seeds: list[str]) -> dict[str, float]:
        raise NotImplementedError

    def scores(self, query: Query, idx: np.ndarray | None) -> np.ndarray:
        case = query.case
        if self._last is None or self._last[0] != case.case_id:
            self._matrices(case)
            pop = self.popularity.log_popularity(case)
            s = 1e-6 * pop / max(float(pop.max()), 1e-12)
            for item_id, v in self.item_scores(list(case.history)).items():
                if item_id in self.index:
                    s[self.index[item_id]] += v
            self._last = (case.case_id, s)
        s = self._last[1]
        return s if idx is None else s[idx]


@dataclass
class _Fitted:
    matrices: BehaviourMatrices
    ease: EaseModel | None = None


class ItemCFBaseline(_BehaviourBaseline):
    """Item-item cosine on the binary behaviour matrix, summed over the case's history (the agent's `cooc`)."""

    name = "itemcf"

    def fit(self, m: BehaviourMatrices) -> object:
        return _Fitted(m)

    def item_scores(self, seeds: list[str]) -> dict[str, float]:
        return cooccurrence_scores(self._model.matrices, seeds, n=len(self.ids))  # type: ignore[attr-defined]


class EaseBaseline(_BehaviourBaseline):
    """EASE (Steck 2019) on the behaviour matrix, scored from the case's history (the agent's `ease`)."""

    name = "ease"

    def __init__(
        self, ds: EvalDataset, popularity: PopularityBaseline, lam: float = EASE_LAMBDA,
        max_items: int = EASE_MAX_ITEMS,
    ) -> None:
        super().__init__(ds, popularity)
        self.lam = lam
        self.max_items = max_items

    def fit(self, m: BehaviourMatrices) -> object:
        return _Fitted(m, fit_ease(m, self.lam, self.max_items))

    def item_scores(self, seeds: list[str]) -> dict[str, float]:
        fitted: _Fitted = self._model  # type: ignore[assignment]
        assert fitted.ease is not None
        return ease_scores(fitted.matrices, fitted.ease, seeds, n=len(self.ids))


def popularity_probabilities(ds: EvalDataset) -> dict[str, float]:
    """p(i) = share of behaviour users who consumed i (for novelty)."""
    users_per_item: dict[str, set[str]] = {}
    all_users: set[str] = set()
    for x in ds.behaviour:
        users_per_item.setdefault(x.item_id, set()).add(x.user_id)
        all_users.add(x.user_id)
    n = max(len(all_users), 1)
    return {i: len(u) / n for i, u in users_per_item.items()}


BASELINE_NAMES = ("random", "popularity", "bm25", "embedding", "hybrid", "itemcf", "ease")


def build_baselines(
    names: Sequence[str], ds: EvalDataset, emb: CatalogEmbeddings | None, embedder: Embedder | None, seed: int
) -> dict[str, ScoringBaseline]:
    out: dict[str, ScoringBaseline] = {}
    pop = PopularityBaseline(ds)
    embedding = EmbeddingBaseline(ds, emb, embedder) if emb is not None and embedder is not None else None
    for name in names:
        if name == "random":
            out[name] = RandomBaseline(ds, seed)
        elif name == "popularity":
            out[name] = pop
        elif name == "bm25":
            out[name] = BM25Baseline(ds)
        elif name in ("embedding", "hybrid"):
            if embedding is None:
                raise ValueError(f"{name} needs catalog embeddings")
            out[name] = embedding if name == "embedding" else HybridBaseline(ds, embedding, pop)
        elif name == "itemcf":
            out[name] = ItemCFBaseline(ds, pop)
        elif name == "ease":
            out[name] = EaseBaseline(ds, pop)
    return out
