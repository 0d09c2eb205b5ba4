"""Detector outputs calibrated to what later stages need: tight person boxes and tracker-scale scores.

A HOG window is 64x128 with the person standing in its middle ~50% of the width and ~75% of the
height; re-ID crops cut from the raw window are half background. ``BoxCalibration`` maps a
window onto the person (scale about the centre, then shift by a fraction of the window), and
``fit_box_calibration`` measures that map against ground-truth boxes (the median ratio over
one-to-one matches), so the numbers in the config are measured, not guessed. On PETS09-S2L1
frames 1-400 the fit is width 0.515, height 0.735, offsets ~0 (benchmarks/mot_vtest.py prints it).

HOG scores are SVM margins (0 at the decision boundary, ~3 for a clear person); trackers want
[0, 1] confidences with their thresholds (ByteTrack: high 0.5, new track 0.6, low 0.1).
``margin_to_score`` maps margin ``m`` to ``1 - exp(-m / margin_scale)``: with ``margin_scale``
1.33, a margin of 0.92 (precision ~0.9 on PETS09) lands on the tracker's 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from models.errors import ConfigError


@dataclass(frozen=True)
class BoxCalibration:
    """Detector box -> person box: keep ``width`` x ``height`` of it, centre moved by ``dx``/``dy``.

    Offsets are fractions of the detector box's width/height (positive: right/down).
    """

    width: float = 1.0
    height: float = 1.0
    dx: float = 0.0
    dy: float = 0.0

    def __post_init__(self) -> None:
        if not (0.0 < self.width <= 2.0 and 0.0 < self.height <= 2.0):
            raise ConfigError(f"box calibration width/height must be in (0, 2], got {self.width}, {self.height}")
        if not (-1.0 <= self.dx <= 1.0 and -1.0 <= self.dy <= 1.0):
            raise ConfigError(f"box calibration offsets must be in [-1, 1], got {self.dx}, {self.dy}")

    def apply(self, xyxy: np.ndarray) -> np.ndarray:
        """(N, 4) detector boxes -> (N, 4) float32 person boxes."""
        xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
        w = xyxy[:, 2] - xyxy[:, 0]
        h = xyxy[:, 3] - xyxy[:, 1]
        cx = (xyxy[:, 0] + xyxy[:, 2]) / 2 + self.dx * w
        cy = (xyxy[:, 1] + xyxy[:, 3]) / 2 + self.dy * h
        nw, nh = w * self.width, h * self.height
        return np.stack([cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2], axis=1).astype(np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of (N, 4) and (M, 4) xyxy boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def fit_box_calibration(pairs: list[tuple[np.ndarray, np.ndarray]], start: BoxCalibration,
                        min_iou: float = 0.4) -> tuple[BoxCalibration, int]:
    """Measure the window -> person map from frames of (detector boxes, ground-truth boxes).

    Detector boxes are matched one-to-one to ground truth after applying ``start`` (a rough
    guess), at IoU >= ``min_iou``; the result is the median of the per-match ratios.

    Returns:
        the fitted calibration and the number of matches it rests on.

    Raises:
        ConfigError: when nothing matched (wrong footage, or a far-off ``start``).
    """
    rows = []
    for det, gt in pairs:
        det = np.asarray(det, np.float32).reshape(-1, 4)
        gt = np.asarray(gt, np.float32).reshape(-1, 4)
        if len(det) == 0 or len(gt) == 0:
            continue
        iou = box_iou(start.apply(det), gt)
        r, c = linear_sum_assignment(-iou)
        for i, j in zip(r, c, strict=True):
            if iou[i, j] < min_iou:
                continue
            d, g = det[i], gt[j]
            w, h = d[2] - d[0], d[3] - d[1]
            rows.append(((g[0] + g[2] - d[0] - d[2]) / 2 / w, (g[1] + g[3] - d[1] - d[3]) / 2 / h,
                         (g[2] - g[0]) / w, (g[3] - g[1]) / h))
    if not rows:
        raise ConfigError("box calibration: no detector box matched the ground truth")
    dx, dy, kw, kh = np.median(np.asarray(rows), axis=0)
    return BoxCalibration(width=float(kw), height=float(kh), dx=float(dx), dy=float(dy)), len(rows)


def margin_to_score(margin: np.ndarray, margin_scale: float) -> np.ndarray:
    """SVM margins -> [0, 1) float32 scores, ``1 - exp(-max(m, 0) / margin_scale)``."""
    if margin_scale <= 0:
        raise ConfigError(f"margin_scale must be > 0, got {margin_scale}")
    m = np.maximum(np.asarray(margin, np.float32), 0.0)
    return (1.0 - np.exp(-m / margin_scale)).astype(np.float32)
