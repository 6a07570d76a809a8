"""Embedders: the ONNX Runtime MiniLM gives the torch vectors, so stores built with either interchange."""

from __future__ import annotations

import numpy as np
import pytest

from interestlens.agent.embeddings import (
    MiniLMEmbedder,
    OnnxMiniLMEmbedder,
    export_minilm_onnx,
    make_embedder,
    onnx_cache_dir,
)
from interestlens.agent.errors import InterestLensError

TEXTS = [
    "Toy Story (1995). Genres: Adventure, Animation, Children, Comedy, Fantasy. Tags: fun",
    "I love slow-burn science fiction that makes space feel huge and lonely.",
    "",  # blank input is embedded as a single space by every backend
    "   ",
    "a",
    "naïve café — 東京の映画 🎬🍿 Ünïcødé and mixed scripts: Привет, مرحبا",
    "word " * 600,  # longer than the 256-token window: both truncate the same way
    "Dune. Desert planet epic science fiction.",
]


@pytest.fixture(scope="module")
def torch_embedder() -> MiniLMEmbedder:
    return make_embedder("minilm-torch")  # type: ignore[return-value]


@pytest.fixture(scope="module")
def onnx_embedder() -> OnnxMiniLMEmbedder:
    return make_embedder("minilm-onnx")  # type: ignore[return-value]


def test_onnx_matches_torch_within_1e3_cosine(torch_embedder, onnx_embedder):
    a = torch_embedder.embed(TEXTS)
    b = onnx_embedder.embed(TEXTS)
    assert a.shape == b.shape == (len(TEXTS), 384)
    cos = np.sum(a * b, axis=1)
    assert cos.min() > 0.999, cos


def test_same_model_id_so_stores_are_interchangeable(torch_embedder, onnx_embedder):
    assert onnx_embedder.model_id == torch_embedder.model_id == "all-MiniLM-L6-v2"
    assert onnx_embedder.dim == torch_embedder.dim == 384


def test_vectors_are_unit_float32_and_batch_order_independent(onnx_embedder):
    fresh = OnnxMiniLMEmbedder(cache_size=0, onnx_path=onnx_embedder.onnx_path)
    together = fresh.embed(TEXTS)
    assert together.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    # Padding in a length-sorted batch must not change a text's vector.
    alone = np.stack([fresh.embed([t])[0] for t in TEXTS])
    assert np.sum(together * alone, axis=1).min() > 0.9999


def test_duplicate_texts_share_one_vector(onnx_embedder):
    v = onnx_embedder.embed(["same text", "other", "same text"])
    np.testing.assert_array_equal(v[0], v[2])


def test_similarity_is_meaningful(onnx_embedder):
    q, near, far = onnx_embedder.embed(["space exploration film", "astronauts travel to Mars", "bread"])
    assert float(q @ near) > float(q @ far)


def test_export_is_cached_and_rebuildable(tmp_path, monkeypatch, onnx_embedder):
    monkeypatch.setenv("INTERESTLENS_ONNX_CACHE", str(tmp_path))
    assert onnx_cache_dir() == tmp_path
    path = export_minilm_onnx()
    assert path.parent == tmp_path and path.stat().st_size > 10_000_000
    mtime = path.stat().st_mtime_ns
    assert export_minilm_onnx() == path and path.stat().st_mtime_ns == mtime  # second call reuses the file
    emb = OnnxMiniLMEmbedder(cache_size=0, onnx_path=path)
    ref = onnx_embedder.embed(TEXTS[:2])
    assert np.sum(emb.embed(TEXTS[:2]) * ref, axis=1).min() > 0.9999


def test_damaged_onnx_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(InterestLensError, match="cannot load ONNX model"):
        OnnxMiniLMEmbedder(onnx_path=bad)


def test_default_minilm_is_shared_and_known_specs(torch_embedder):
    assert make_embedder("minilm") is make_embedder("all-MiniLM-L6-v2")
    assert make_embedder("minilm").model_id == "all-MiniLM-L6-v2"
    assert make_embedder("minilm-torch") is torch_embedder
    with pytest.raises(InterestLensError, match="unknown embedder"):
        make_embedder("word2vec")
