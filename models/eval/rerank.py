"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), written from the paper.

The original distance is blended with a Jaccard distance between k-reciprocal neighbour sets
(encoded as soft, Gaussian-weighted indicator vectors and smoothed by local query expansion).
Queries and gallery are pooled, so the cost is O(N^2) memory for N = Q + G sequences: fine for
the benchmarks' few thousand tracklets, not for a million-entry gallery.
"""

from __future__ import annotations

import numpy as np

from models.errors import ContractError


def _reciprocal(ranks: np.ndarray, i: int, k: int) -> np.ndarray:
    """Indices j among i's k nearest whose own k nearest contain i."""
    forward = ranks[i, : k + 1]
    back = ranks[forward, : k + 1]
    return forward[np.any(back == i, axis=1)]


def k_reciprocal_rerank(q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray, k1: int = 20, k2: int = 6,
                        lambda_value: float = 0.3) -> np.ndarray:
    """Re-ranked (Q, G) distance matrix.

    Args:
        q_g: (Q, G) query-gallery distances.
        q_q: (Q, Q) query-query distances.
        g_g: (G, G) gallery-gallery distances.
        k1: size of the k-reciprocal neighbourhood.
        k2: size of the local query expansion.
        lambda_value: weight of the original distance in the blend.
    """
    num_q, num_g = q_g.shape
    if q_q.shape != (num_q, num_q) or g_g.shape != (num_g, num_g):
        raise ContractError(f"re-ranking needs (Q,Q)={q_q.shape} and (G,G)={g_g.shape} matching (Q,G)={q_g.shape}")
    n = num_q + num_g
    k1 = min(k1, n - 1)
    k2 = max(1, min(k2, n))
    dist = np.block([[q_q, q_g], [q_g.T, g_g]]).astype(np.float64)
    dist = dist / np.maximum(dist.max(axis=0, keepdims=True), 1e-12)   # scale each column to [0, 1]
    ranks = np.argsort(dist, axis=1, kind="stable")

    v = np.zeros((n, n), dtype=np.float64)
    half = max(1, int(round(k1 / 2)))
    for i in range(n):
        base = _reciprocal(ranks, i, k1)
        expanded = base
        for c in base:
            cand = _reciprocal(ranks, int(c), half)
            # grow the set with a neighbour's set when they overlap strongly (paper's 2/3 rule)
            if len(np.intersect1d(cand, base)) > 2.0 / 3.0 * len(cand):
                expanded = np.union1d(expanded, cand)
        w = np.exp(-dist[i, expanded])
        v[i, expanded] = w / w.sum()
    if k2 > 1:
        v = v[ranks[:, :k2]].mean(axis=1)                                # local query expansion

    jaccard = np.zeros((num_q, num_g), dtype=np.float64)
    for i in range(num_q):
        overlap = np.minimum(v[i][None, :], v[num_q:]).sum(axis=1)
        union = np.maximum(v[i][None, :], v[num_q:]).sum(axis=1)
        jaccard[i] = 1.0 - overlap / np.maximum(union, 1e-12)
    return jaccard * (1.0 - lambda_value) + dist[:num_q, num_q:] * lambda_value
