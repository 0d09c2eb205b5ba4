"""Generated two-camera footage whose people carry a readable identity mark, and the test encoder that reads it.

``painted_scenes`` renders ``models.data.scenes`` footage (the same synthetic people cross an RGB
camera and then a thermal one, with MOT ground truth whose ids are global) and paints a mark on
each person's torso: a saturated primary colour in RGB, a distinct gray level in thermal.
``MarkEncoder`` is a controlled test encoder that reads the mark from the centre of a crop and
returns that person's one-hot direction plus a small per-clip component: its similarity
structure is known (same person ~0.99, different people ~0), unlike a trained X-ReID's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from models.data.scenes import SceneCfg, write_scenes
from pipeline.tracking.mot import read_mot

RGB_MARKS = ((230, 30, 30), (30, 220, 30), (40, 40, 230))   # person 1, 2, 3 (RGB)
IR_MARKS = (90, 165, 240)                                   # person 1, 2, 3 (gray level)
DIM = 16
ALPHA = 0.6


def painted_scenes(root: Path, num_frames: int = 160, seed: int = 0) -> dict:
    """Render and mark the scenes under ``root``; returns scenes.json (3 people, cam0-rgb, cam1-ir)."""
    write_scenes(root, SceneCfg(num_people=3, num_frames=num_frames, seed=seed))
    meta = json.loads((root / "scenes.json").read_text())
    for cam in meta["cameras"]:
        gt = read_mot(root / cam["gt"])
        src = root / cam["video"]
        dst = src.with_name("marked.avi")
        cap = cv2.VideoCapture(str(src))
        out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"MJPG"), meta["fps"], (meta["width"], meta["height"]))
        frame_no = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frame_no += 1
            for _, pid, x, y, w, h, *_ in gt[gt[:, 0] == frame_no]:
                x0, x1 = int(x + 0.3 * w), int(x + 0.7 * w)
                y0, y1 = int(y + 0.25 * h), int(y + 0.6 * h)
                region = frame[max(0, y0):y1, max(0, x0):x1]
                mark = RGB_MARKS[int(pid) - 1][::-1] if cam["modality"] == "rgb" else (IR_MARKS[int(pid) - 1],) * 3
                # a tint, not a fill: the texture (and the detector's gradients) survive
                region[:] = (ALPHA * np.array(mark, np.float32) + (1 - ALPHA) * region).astype(np.uint8)
            out.write(frame)
        cap.release()
        out.release()
        cam["video"] = str(dst.relative_to(root))
    return meta


def read_mark(crop: np.ndarray, modality: str) -> int:
    """0-based person index from the centre of an RGB crop."""
    h, w = crop.shape[:2]
    centre = crop[int(0.35 * h):int(0.5 * h), int(0.4 * w):int(0.6 * w)].reshape(-1, 3)
    med = np.median(centre, axis=0)
    if modality == "rgb":
        return int(np.argmin([np.abs(med - np.array(c)).sum() for c in RGB_MARKS]))
    # thermal people render near-white (~230): the tint lands at ALPHA * mark + (1 - ALPHA) * 230
    return int(np.argmin([abs(float(med.mean()) - (ALPHA * g + (1 - ALPHA) * 230)) for g in IR_MARKS]))


class MarkEncoder:
    """The controlled test encoder for ``painted_scenes`` footage (same surface as ``ReidEncoder``)."""

    def __init__(self, seq_len: int = 4, model_id: str = "mark-test@0") -> None:
        self.seq_len, self.model_id, self.embed_dim = seq_len, model_id, DIM

    def encode(self, clips: Sequence[Sequence[np.ndarray]], modalities: Sequence[str],
               camera_ids: Sequence[str] | None = None) -> np.ndarray:
        out = np.zeros((len(clips), DIM), np.float32)
        for i, (crops, modality) in enumerate(zip(clips, modalities, strict=True)):
            votes = np.bincount([read_mark(c, modality) for c in crops], minlength=len(IR_MARKS))
            out[i, int(np.argmax(votes))] = 1.0
            rng = np.random.default_rng(int(np.asarray(crops[0]).sum()))
            out[i, len(IR_MARKS):] = rng.normal(0, 0.05, DIM - len(IR_MARKS))
            out[i] /= np.linalg.norm(out[i])
        return out
