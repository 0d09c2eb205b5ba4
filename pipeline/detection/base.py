"""Detector seam: ``Detections`` (parallel arrays, validated) and the ``Detector`` protocol.

Every detector returns person boxes only, in source-frame pixels, with a score in [0, 1] so one
confidence threshold and one tracker configuration fit every detector. Third-party outputs become
``Detections`` only in ``from_*`` constructors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from models.errors import ContractError


@dataclass(frozen=True, slots=True)
class Detections:
    """N person boxes of one frame.

    Attributes:
        xyxy: (N, 4) float32 boxes ``x1, y1, x2, y2`` in source pixels, ``x2 > x1``, ``y2 > y1``.
        scores: (N,) float32 confidences in [0, 1].
    """

    xyxy: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        xyxy, scores = self.xyxy, self.scores
        if not isinstance(xyxy, np.ndarray) or xyxy.ndim != 2 or xyxy.shape[1] != 4 or xyxy.dtype != np.float32:
            raise ContractError(f"Detections.xyxy must be (N, 4) float32, got {getattr(xyxy, 'shape', xyxy)} "
                                f"{getattr(xyxy, 'dtype', '')}")
        n = xyxy.shape[0]
        if not isinstance(scores, np.ndarray) or scores.shape != (n,) or scores.dtype != np.float32:
            raise ContractError(f"Detections.scores must be ({n},) float32, got {getattr(scores, 'shape', scores)} "
                                f"{getattr(scores, 'dtype', '')}")
        if n and not (np.all(np.isfinite(xyxy)) and np.all(xyxy[:, 2] > xyxy[:, 0]) and np.all(xyxy[:, 3] > xyxy[:, 1])):
            raise ContractError("Detections.xyxy must hold finite boxes with x2 > x1 and y2 > y1")
        if n and not (np.all(scores >= 0.0) and np.all(scores <= 1.0)):
            raise ContractError("Detections.scores must be in [0, 1]")

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    @classmethod
    def from_ultralytics(cls, boxes: object) -> Detections:
        """From an ultralytics ``Boxes`` (tensors or arrays with ``xyxy`` and ``conf``)."""
        xyxy = _numpy(boxes.xyxy).astype(np.float32).reshape(-1, 4)  # type: ignore[attr-defined]
        scores = _numpy(boxes.conf).astype(np.float32).reshape(-1)  # type: ignore[attr-defined]
        keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        return cls(xyxy[keep], np.clip(scores[keep], 0.0, 1.0))

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: np.ndarray | slice) -> Detections:
        """Boolean mask or index array → a new ``Detections`` with those rows."""
        return Detections(self.xyxy[index].reshape(-1, 4), self.scores[index].reshape(-1))

    @property
    def xywh(self) -> np.ndarray:
        """(N, 4) centre x, centre y, width, height."""
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        return np.concatenate([self.xyxy[:, :2] + wh / 2, wh], axis=1)

    def clipped(self, width: int, height: int) -> Detections:
        """Boxes clipped to the frame; boxes left with no area are dropped."""
        xyxy = self.xyxy.copy()
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, width)
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, height)
        keep = (xyxy[:, 2] - xyxy[:, 0] >= 1) & (xyxy[:, 3] - xyxy[:, 1] >= 1)
        return Detections(xyxy[keep], self.scores[keep])


class Detector(Protocol):
    """Finds people in one frame."""

    name: str

    def detect(self, image: np.ndarray) -> Detections:
        """Person boxes in ``image`` ((H, W, 3) BGR or (H, W) single-channel uint8) at or above the threshold."""


def as_bgr(image: np.ndarray) -> np.ndarray:
    """3-channel view of a frame: thermal frames are single-channel, detectors want three.

    Raises:
        ContractError: for anything that is not an (H, W), (H, W, 1) or (H, W, 3) uint8 image.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ContractError(f"frame must be a uint8 numpy array, got {getattr(image, 'dtype', type(image).__name__)}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ContractError(f"frame must be (H, W), (H, W, 1) or (H, W, 3), got {image.shape}")


def nms(xyxy: np.ndarray, scores: np.ndarray, iou_thresh: float) -> np.ndarray:
    """Indices kept by non-maximum suppression (OpenCV's implementation), best score first."""
    if len(xyxy) == 0:
        return np.zeros((0,), np.int64)
    ltwh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    keep = cv2.dnn.NMSBoxes(ltwh.tolist(), scores.astype(float).tolist(), 0.0, float(iou_thresh))
    return np.asarray(keep, np.int64).reshape(-1)


def _numpy(x: object) -> np.ndarray:
    """A torch tensor (any device) or array-like as a numpy array."""
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()  # type: ignore[attr-defined]
    return np.asarray(x)
