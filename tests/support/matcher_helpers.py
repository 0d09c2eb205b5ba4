"""Embeddings with a known similarity structure, for matcher tests."""

from __future__ import annotations

import numpy as np

from pipeline.bus.messages import Embedding, make_clip_id

DIM = 16


def unit(v: np.ndarray) -> np.ndarray:
    return (np.asarray(v, dtype=np.float64) / np.linalg.norm(v)).astype(np.float32)


def person(i: int, dim: int = DIM) -> np.ndarray:
    """Identity ``i``'s direction: orthogonal to every other identity's."""
    return np.eye(dim, dtype=np.float32)[i]


def view(i: int, cos: float, noise_axis: int, dim: int = DIM) -> np.ndarray:
    """A vector at cosine ``cos`` from ``person(i)``, leaning towards axis ``noise_axis``."""
    return unit(cos * person(i, dim) + np.sqrt(1 - cos ** 2) * np.eye(dim, dtype=np.float32)[noise_axis])


def emb(camera: str, uid: str, vec: np.ndarray, t0: float, t1: float, modality: str = "rgb", segment: int = 0,
        model: str = "test@0") -> Embedding:
    return Embedding(make_clip_id(camera, uid, segment), camera, modality, uid, segment, float(t0), float(t1),
                     unit(vec), model)


def drain_matcher(store, cfg, embs):
    """A matcher stage over ``store`` that has taken every embedding of ``embs`` through an in-memory bus."""
    from pipeline.bus import STREAM_EMBEDDINGS, MemoryBus
    from pipeline.matcher.matcher import Matcher
    from pipeline.matcher.stage import MatcherStage

    bus = MemoryBus()
    stage = MatcherStage(bus, store, Matcher(cfg))
    for e in embs:
        bus.publish(STREAM_EMBEDDINGS, e.to_bytes())
    stage.drain()
    return stage
