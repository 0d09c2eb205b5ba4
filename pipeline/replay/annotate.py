"""Annotated replay video: each processed frame with its tracked boxes and track ids drawn on."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from models.errors import SourceError
from pipeline.detection.base import as_bgr

if TYPE_CHECKING:
    from pipeline.camera.processor import FrameResult


def _colour(track_id: int) -> tuple[int, int, int]:
    """A stable, well-spread BGR colour per track id (golden-ratio hue steps)."""
    hue = int((track_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.uint8([[[hue, 220, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


class AnnotatedWriter:
    """MP4 (``mp4v``) writer of annotated frames; the size is taken from the first frame."""

    def __init__(self, path: str | Path, fps: float, camera_id: str, modality: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps if fps > 0 else 10.0
        self.label = f"{camera_id} ({modality})"
        self._writer: cv2.VideoWriter | None = None

    def write(self, result: FrameResult) -> None:
        image = as_bgr(result.frame.image).copy()
        if self._writer is None:
            h, w = image.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise SourceError(f"cannot write annotated video {self.path}")
        tr = result.tracked
        for tid, box in zip(tr.track_ids.tolist(), tr.xyxy, strict=True):
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            colour = _colour(tid)
            cv2.rectangle(image, (x1, y1), (x2, y2), colour, 2)
            cv2.putText(image, str(tid), (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
        cv2.putText(image, f"{self.label} frame {result.frame.index + 1}", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                    (255, 255, 255), 1, cv2.LINE_AA)
        self._writer.write(image)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
