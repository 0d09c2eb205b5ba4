"""Valid bus messages with every field filled, for round-trip and id tests to start from and bend."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.bus.messages import Clip, Embedding, make_clip_id


def _jpeg(seed: int) -> bytes:
    img = np.random.default_rng(seed).integers(0, 255, (32, 16, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def make_clip(t: int = 4, **kw) -> Clip:
    base = dict(camera_id="cam1", modality="rgb", track_uid="abc-7", segment=0, t_start=100.0, t_end=101.5,
                frames=tuple(_jpeg(i) for i in range(t)),
                boxes_xyxy=np.arange(t * 4, dtype=np.float32).reshape(t, 4),
                frame_ts=np.linspace(100.0, 101.5, t), det_scores=np.full(t, 0.9, np.float32), n_seen=12)
    base.update(kw)
    base.setdefault("clip_id", make_clip_id(base["camera_id"], base["track_uid"], base["segment"]))
    return Clip(**base)


def make_embedding(dim: int = 8, **kw) -> Embedding:
    v = np.random.default_rng(0).normal(size=dim).astype(np.float32)
    base = dict(clip_id="cam2:t1:3", camera_id="cam2", modality="ir", track_uid="t1", segment=3, t_start=5.0,
                t_end=6.0, vector=v / np.linalg.norm(v), model_id="xreid_tiny@0123abcd", thumbnail=_jpeg(9))
    base.update(kw)
    return Embedding(**base)
