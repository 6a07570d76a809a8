"""The vectors a store writes: the embedder's (shape-checked) for items and interests, a placeholder elsewhere.

Every collection needs a vector per record, but profiles, sources, caches, results, leases and history are
looked up by id or metadata only, so they carry a 1-d dummy; index repair (stores/index_repair.py) rebuilds
their vectors from that alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from interestlens.agent.errors import StoreError
from interestlens.agent.protocols import Embedder

DUMMY = [0.0]  # vector for records that are looked up by id/metadata only


def embed_checked(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """The embedder's vectors for `texts` as float32, or StoreError when it answers with the wrong shape."""
    vecs = np.asarray(embedder.embed(texts), dtype=np.float32)
    if vecs.shape != (len(texts), embedder.dim):
        raise StoreError(f"embedder returned shape {vecs.shape}, expected ({len(texts)}, {embedder.dim})")
    return vecs
