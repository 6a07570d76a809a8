"""Agglomerative clustering of embeddings: the one wrapper that decomposition, compose and topics share.

Average linkage over cosine distance, cut at a distance threshold rather than at a number of clusters: forcing
fewer clusters chains unrelated rows into one muddy group.
"""

from __future__ import annotations

import numpy as np


def cluster_labels(vecs: np.ndarray, distance: float, *, penalty: np.ndarray | None = None) -> np.ndarray:
    """A cluster label per row of `vecs`: rows within cosine `distance` (average linkage) share one.

    `penalty` (one per pair of rows) is added to the cosine distances, to keep apart rows that would otherwise
    merge (decomposition: two sentences of one text). Rows are L2-normalised embeddings.
    """
    if len(vecs) == 1:
        return np.zeros(1, dtype=int)
    # Optional heavy dependency: loaded on the first clustering, not on import.
    from sklearn.cluster import AgglomerativeClustering

    if penalty is None:
        model = AgglomerativeClustering(
            n_clusters=None, distance_threshold=distance, metric="cosine", linkage="average"
        )
        return np.asarray(model.fit_predict(vecs))
    dist = np.clip(1.0 - vecs @ vecs.T, 0.0, 2.0) + penalty
    np.fill_diagonal(dist, 0.0)
    model = AgglomerativeClustering(
        n_clusters=None, distance_threshold=distance, metric="precomputed", linkage="average"
    )
    return np.asarray(model.fit_predict(dist))


def label_groups(labels: np.ndarray) -> list[list[int]]:
    """Row indices per cluster, clusters in order of their first row."""
    groups: dict[int, list[int]] = {}
    for idx, lab in enumerate(labels):
        groups.setdefault(int(lab), []).append(idx)
    return list(groups.values())
