"""CMC, mAP and mINP under the benchmarks' protocol, in both VVI directions.

``eval_func`` follows the reference evaluation (AsuradaYuci/X-ReID ``utils/metrics.py``):
gallery entries are ranked by squared Euclidean distance on L2-normalised features; for each
query the gallery entries sharing its identity **and** camera are dropped; queries left with no
true match are skipped (they count neither in CMC nor in mAP); the CMC is cut at ``max_rank``
(lowered to the gallery size when the gallery is smaller). Two deliberate differences, neither of
which changes a number the reference produces:

* the reference crashes when a query keeps fewer than ``max_rank`` gallery entries (its CMC rows
  become ragged); we pad each row with its last value, which is what the CMC means there (a
  query that has found its match by rank r has found it at every rank after);
* ties in distance are broken by gallery order (stable sort). The reference uses numpy's default
  sort, whose order among exactly equal distances is unspecified; on tie-free matrices the two
  orders are identical.

mINP (Ye et al., AGW) is added: per query, the number of true matches divided by the rank of the
hardest one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from models.errors import ContractError

log = logging.getLogger(__name__)

DEFAULT_MAX_RANK = 50
REPORT_RANKS = (1, 5, 10, 20)


def squared_euclidean(query: np.ndarray, gallery: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Squared Euclidean distances between rows, as the reference ranks them.

    Args:
        query: (Q, D) features.
        gallery: (G, D) features.
        normalize: L2-normalise rows first (the reference's ``FEAT_NORM: yes``).

    Returns:
        (Q, G) float64 distance matrix.
    """
    q = np.asarray(query, dtype=np.float64)
    g = np.asarray(gallery, dtype=np.float64)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ContractError(f"features must be (Q,D) and (G,D) with the same D, got {q.shape} and {g.shape}")
    if normalize:
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    d = (q * q).sum(1)[:, None] + (g * g).sum(1)[None, :] - 2.0 * q @ g.T
    return np.maximum(d, 0.0)


def _check_inputs(distmat: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray,
                  q_camids: np.ndarray, g_camids: np.ndarray) -> None:
    if distmat.ndim != 2:
        raise ContractError(f"distmat must be (Q,G), got shape {distmat.shape}")
    nq, ng = distmat.shape
    for name, arr, n in (("q_pids", q_pids, nq), ("q_camids", q_camids, nq),
                         ("g_pids", g_pids, ng), ("g_camids", g_camids, ng)):
        if arr.shape != (n,):
            raise ContractError(f"{name} must have shape ({n},) to match distmat {distmat.shape}, got {arr.shape}")


def eval_func(distmat: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray, q_camids: np.ndarray,
              g_camids: np.ndarray, max_rank: int = DEFAULT_MAX_RANK) -> tuple[np.ndarray, float, float, int]:
    """CMC curve, mAP and mINP of one retrieval direction (reference protocol, see module doc).

    Args:
        distmat: (Q, G) distances, smaller is closer.
        q_pids, g_pids: (Q,), (G,) identity labels.
        q_camids, g_camids: (Q,), (G,) camera labels.
        max_rank: length of the CMC curve (lowered to G when G is smaller).

    Returns:
        ``(cmc, mAP, mINP, num_valid_queries)``; ``cmc`` is float32 of length ``min(max_rank, G)``.

    Raises:
        ContractError: shapes disagree, or no query has a match left in the gallery.
    """
    distmat = np.asarray(distmat)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids)
    num_q, num_g = distmat.shape
    if num_g < max_rank:
        log.info("gallery has only %d entries: CMC cut at rank %d", num_g, num_g)
        max_rank = num_g
    order = np.argsort(distmat, axis=1, kind="stable")
    matches = g_pids[order] == q_pids[:, None]                       # (Q, G) bool, in rank order
    removed = matches & (g_camids[order] == q_camids[:, None])       # same identity AND same camera

    cmc_rows: list[np.ndarray] = []
    aps: list[float] = []
    inps: list[float] = []
    for i in range(num_q):
        hits = matches[i][~removed[i]].astype(np.float64)
        if not hits.any():
            continue                                                 # identity absent from gallery
        found = np.minimum(np.cumsum(hits), 1.0)[:max_rank]
        if found.shape[0] < max_rank:                                # ragged row: reference would crash
            found = np.concatenate([found, np.full(max_rank - found.shape[0], found[-1])])
        cmc_rows.append(found)
        num_rel = hits.sum()
        ranks = np.arange(1, hits.shape[0] + 1, dtype=np.float64)
        precision_at_hit = np.cumsum(hits) / ranks * hits
        aps.append(float(precision_at_hit.sum() / num_rel))
        hardest = int(np.flatnonzero(hits)[-1])
        inps.append(float(num_rel / (hardest + 1)))
    if not cmc_rows:
        raise ContractError("no query has a matching identity left in the gallery; nothing to evaluate")
    cmc = (np.asarray(cmc_rows, dtype=np.float32).sum(0) / len(cmc_rows)).astype(np.float32)
    return cmc, float(np.mean(aps)), float(np.mean(inps)), len(cmc_rows)


@dataclass(frozen=True)
class DirectionResult:
    """Retrieval figures of one direction (e.g. infrared queries against a visible gallery)."""

    name: str
    cmc: np.ndarray = field(repr=False)
    mAP: float
    mINP: float
    num_queries: int
    num_valid_queries: int
    num_gallery: int

    def __post_init__(self) -> None:
        if self.cmc.ndim != 1 or self.cmc.shape[0] == 0:
            raise ContractError(f"DirectionResult.cmc must be a non-empty 1-D curve, got {self.cmc.shape}")

    def rank(self, k: int) -> float:
        """CMC at rank ``k`` (the curve's last value when the gallery is shorter than ``k``)."""
        return float(self.cmc[min(k, self.cmc.shape[0]) - 1])

    def to_dict(self) -> dict[str, float | int | list[float]]:
        out: dict[str, float | int | list[float]] = {f"rank{k}": self.rank(k) for k in REPORT_RANKS}
        out.update(mAP=self.mAP, mINP=self.mINP, num_queries=self.num_queries,
                   num_valid_queries=self.num_valid_queries, num_gallery=self.num_gallery,
                   cmc=[float(v) for v in self.cmc])
        return out


@dataclass(frozen=True)
class RetrievalResult:
    """Both VVI protocols: infrared→visible and visible→infrared."""

    ir_to_rgb: DirectionResult
    rgb_to_ir: DirectionResult

    def directions(self) -> tuple[DirectionResult, DirectionResult]:
        return self.ir_to_rgb, self.rgb_to_ir

    def to_dict(self) -> dict[str, dict]:
        return {d.name: d.to_dict() for d in self.directions()}

    def table(self) -> str:
        """Fixed-width text table (percentages) for stdout."""
        head = f"{'direction':<12}" + "".join(f"{'R-' + str(k):>8}" for k in REPORT_RANKS) + f"{'mAP':>8}{'mINP':>8}"
        lines = [head, "-" * len(head)]
        for d in self.directions():
            cells = "".join(f"{100 * d.rank(k):8.2f}" for k in REPORT_RANKS)
            lines.append(f"{d.name:<12}{cells}{100 * d.mAP:8.2f}{100 * d.mINP:8.2f}")
        return "\n".join(lines)


def evaluate_direction(name: str, q_feats: np.ndarray, q_pids: np.ndarray, q_cams: np.ndarray,
                       g_feats: np.ndarray, g_pids: np.ndarray, g_cams: np.ndarray,
                       max_rank: int = DEFAULT_MAX_RANK, rerank: bool = False) -> DirectionResult:
    """One protocol: queries against a gallery (features normalised here; optional re-ranking)."""
    q_pids, q_cams, g_pids, g_cams = (np.asarray(a) for a in (q_pids, q_cams, g_pids, g_cams))
    dist = squared_euclidean(q_feats, g_feats)
    if rerank:
        from models.eval.rerank import k_reciprocal_rerank

        dist = k_reciprocal_rerank(dist, squared_euclidean(q_feats, q_feats), squared_euclidean(g_feats, g_feats))
    cmc, m_ap, m_inp, valid = eval_func(dist, q_pids, g_pids, q_cams, g_cams, max_rank)
    return DirectionResult(name=name, cmc=cmc, mAP=m_ap, mINP=m_inp, num_queries=dist.shape[0],
                           num_valid_queries=valid, num_gallery=dist.shape[1])


def evaluate_vvi(ir_feats: np.ndarray, ir_pids: np.ndarray, ir_cams: np.ndarray,
                 rgb_feats: np.ndarray, rgb_pids: np.ndarray, rgb_cams: np.ndarray,
                 max_rank: int = DEFAULT_MAX_RANK, rerank: bool = False) -> RetrievalResult:
    """Evaluate both protocols on one set of infrared and one set of visible sequences.

    Infrared→visible uses the infrared sequences as queries and the visible ones as gallery;
    visible→infrared swaps the roles (the reference evaluates the transposed matrix with the
    labels swapped, which is the same thing). HITSZ-VCM is evaluated this way; BUPTCampus has
    separate query/gallery lists per direction (``evaluate_direction`` twice).

    Args:
        ir_feats, rgb_feats: (N_ir, D), (N_rgb, D) sequence embeddings (normalised here).
        ir_pids, rgb_pids, ir_cams, rgb_cams: identity and camera labels per sequence.
        max_rank: CMC length.
        rerank: apply k-reciprocal re-ranking (Zhong et al. 2017) to each direction.
    """
    return RetrievalResult(
        ir_to_rgb=evaluate_direction("ir_to_rgb", ir_feats, ir_pids, ir_cams, rgb_feats, rgb_pids, rgb_cams,
                                     max_rank, rerank),
        rgb_to_ir=evaluate_direction("rgb_to_ir", rgb_feats, rgb_pids, rgb_cams, ir_feats, ir_pids, ir_cams,
                                     max_rank, rerank),
    )
