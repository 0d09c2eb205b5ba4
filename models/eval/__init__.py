"""Retrieval evaluation for video visible-infrared re-ID: CMC, mAP, mINP in both directions."""

from models.eval.metrics import (
    DirectionResult,
    RetrievalResult,
    eval_func,
    evaluate_direction,
    evaluate_vvi,
    squared_euclidean,
)
from models.eval.rerank import k_reciprocal_rerank

__all__ = [
    "DirectionResult",
    "RetrievalResult",
    "eval_func",
    "evaluate_direction",
    "evaluate_vvi",
    "k_reciprocal_rerank",
    "squared_euclidean",
]
