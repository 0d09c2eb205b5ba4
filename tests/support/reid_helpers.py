"""A controlled test encoder whose similarity structure is known, and clip builders.

``CodeEncoder`` reads an identity code painted on the crops: the crop's left half is split into
``N_CODES`` horizontal bands and identity ``i`` paints band ``i`` bright (in any colour or gray
level, so RGB and thermal renderings of one person carry the same code). Its vector is the
one-hot of that band plus a small, deterministic per-clip component, so two clips of one
identity have cosine ~0.97 whatever their modality and clips of different identities ~0. It is
a test model standing in for a trained X-ReID; tests using it say so in their names.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from pipeline.bus.messages import Clip, make_clip_id

N_CODES = 12
DIM = 32


def paint_person(h: int, w: int, identity: int, modality: str, seed: int = 0) -> np.ndarray:
    """An RGB crop of ``identity``: textured clothes (varying by seed) plus the code bands."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    band = h // N_CODES
    colour = np.array([255, 255, 255]) if modality == "ir" else rng.integers(180, 256, 3)
    img[identity * band:(identity + 1) * band, : w // 2] = colour
    if modality == "ir":
        img[:] = img.mean(axis=2, keepdims=True).astype(np.uint8)
    return img


def read_code(crop: np.ndarray) -> np.ndarray:
    """Per-band brightness of the left half, (N_CODES,) in [0, 1]."""
    h, w = crop.shape[:2]
    left = cv2.resize(np.ascontiguousarray(crop[:, : w // 2]), (8, N_CODES * 4), interpolation=cv2.INTER_AREA)
    return left.reshape(N_CODES, -1).mean(axis=1) / 255.0


class CodeEncoder:
    """The controlled test encoder (see module doc); same surface as ``ReidEncoder``."""

    def __init__(self, seq_len: int = 4, model_id: str = "code-test@0", fail_on_identity: int | None = None) -> None:
        self.seq_len, self.model_id, self.embed_dim = seq_len, model_id, DIM
        self.fail_on_identity = fail_on_identity
        self.calls: list[int] = []

    def encode(self, clips: Sequence[Sequence[np.ndarray]], modalities: Sequence[str],
               camera_ids: Sequence[str] | None = None) -> np.ndarray:
        self.calls.append(len(clips))
        out = np.zeros((len(clips), DIM), np.float32)
        for i, crops in enumerate(clips):
            code = np.mean([read_code(c) for c in crops], axis=0)
            ident = int(np.argmax(code))
            if ident == self.fail_on_identity:
                raise RuntimeError(f"test encoder refuses identity {ident}")
            out[i, ident] = 1.0
            # a small per-clip component in the spare dimensions: deterministic in the pixels
            spare = np.frombuffer(np.asarray(crops[0][:4, :4]).tobytes(), np.uint8)[: DIM - N_CODES]
            out[i, N_CODES:N_CODES + len(spare)] = (spare.astype(np.float32) / 255.0 - 0.5) * 0.1
            out[i] /= np.linalg.norm(out[i])
        return out


def jpeg(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buf.tobytes()


def make_clip(camera: str, uid: str, identity: int, modality: str = "rgb", t: int = 4, segment: int = 0,
              t0: float = 1000.0, frames: tuple[bytes, ...] | None = None, size: tuple[int, int] = (96, 48)) -> Clip:
    if frames is None:
        frames = tuple(jpeg(paint_person(size[0], size[1], identity, modality, seed=hash((uid, k)) % 2**32))
                       for k in range(t))
    n = len(frames)
    return Clip(make_clip_id(camera, uid, segment), camera, modality, uid, segment, t0, t0 + n,
                frames, np.tile(np.array([0, 0, 48, 96], np.float32), (n, 1)), t0 + np.arange(n, dtype=np.float64),
                np.linspace(0.5, 0.9, n).astype(np.float32), n)
