"""Offline people detector for thermal frames: warm blobs the size and shape of a person.

People are warmer than almost everything around them, so on a white-hot frame they are bright
blobs. The detector estimates the local background (a median over a window much larger than a
person), keeps pixels warmer than it by a margin that adapts to the frame's own noise (robust
sigma of the residual) but never less than ``min_contrast`` gray levels, closes small gaps
(legs, a cold backpack), labels connected components and keeps those whose size and
height/width ratio fit a person. The score grows with the blob's mean excess heat over the
threshold, mapped into [0, 1] like the other detectors so one tracker configuration fits all.

Warm objects that are not people (radiators, engines, lamps, reflections) pass this test when
their shape fits; ``pipeline.tracking.persistence`` removes them by behaviour.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from models.errors import ContractError
from pipeline.config.settings import DetectorCfg, HeatCfg
from pipeline.detection.base import Detections, nms

log = logging.getLogger(__name__)

_BG_WORK_PX = 15   # the background median runs with this kernel on a frame shrunk to match background_px


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8 intensity of a white-hot frame given as (H, W), (H, W, 1) or gray (H, W, 3) uint8.

    Raises:
        ContractError: for anything else.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ContractError(f"heat detector needs a uint8 frame, got {getattr(image, 'dtype', type(image).__name__)}")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[..., 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    raise ContractError(f"heat detector needs (H, W), (H, W, 1) or (H, W, 3), got {image.shape}")


def local_background(gray: np.ndarray, window_px: int) -> np.ndarray:
    """Median of ``gray`` over about ``window_px`` pixels around each pixel, (H, W) float32.

    Computed on a shrunk copy (median blur with a fixed small kernel), then resized back: a large
    median at full resolution would cost far more than the rest of the detector.
    """
    h, w = gray.shape
    shrink = max(1.0, window_px / _BG_WORK_PX)
    small = cv2.resize(gray, (max(1, round(w / shrink)), max(1, round(h / shrink))), interpolation=cv2.INTER_AREA)
    k = min(_BG_WORK_PX, (min(small.shape) // 2) * 2 - 1) if min(small.shape) > 2 else 1
    if k >= 3:
        small = cv2.medianBlur(small, k)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)


class HeatDetector:
    """Warm-blob person detector (``detector.kind: heat``).

    Args:
        cfg: the detector section; ``cfg.heat`` holds the thermal limits, ``cfg.conf`` the score threshold.
    """

    name = "heat"

    def __init__(self, cfg: DetectorCfg) -> None:
        self.cfg = cfg
        self.heat: HeatCfg = cfg.heat
        k = self.heat.close_px
        self._close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        self._open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))

    def warm_mask(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(mask of warm pixels (H, W) uint8 0/1, excess heat over background (H, W) float32, threshold)."""
        heat = self.heat
        excess = gray.astype(np.float32) - local_background(gray, heat.background_px)
        sample = excess[::2, ::2]
        med = float(np.median(sample))
        sigma = 1.4826 * float(np.median(np.abs(sample - med)))
        thresh = max(heat.min_contrast, med + heat.threshold_sigma * sigma)
        mask = (excess > thresh).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._open)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._close)
        return mask, excess, thresh

    def detect(self, image: np.ndarray) -> Detections:
        gray = to_gray(image)
        h, w = gray.shape
        heat = self.heat
        mask, excess, thresh = self.warm_mask(gray)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if n <= 1:
            return Detections.empty()
        excess_sum = np.bincount(labels.ravel(), weights=excess.ravel(), minlength=n)[1:]
        parts = stats[1:].astype(np.float64)                       # x, y, w, h, area per component
        keep = parts[:, 4] >= heat.min_part_px
        groups = join_parts(parts[keep, :4], heat.join_gap)
        kept_sum, kept_area = excess_sum[keep], parts[keep, 4]
        boxes: list[tuple[float, float, float, float]] = []
        scores: list[float] = []
        max_area = heat.max_area_fraction * h * w
        for x1, y1, x2, y2, members in groups:
            bw, bh, area = x2 - x1, y2 - y1, float(kept_area[members].sum())
            if area < heat.min_area_px or bw * bh > max_area or bh < heat.min_height_px:
                continue
            if not heat.min_aspect <= bh / bw <= heat.max_aspect:
                continue
            mean_excess = float(kept_sum[members].sum()) / area
            # excess at the threshold scores ~0.5, twice the threshold ~0.75
            scores.append(float(1.0 - np.exp(-0.7 * mean_excess / thresh)))
            boxes.append((x1, y1, x2, y2))
        if not boxes:
            return Detections.empty()
        dets = Detections(np.asarray(boxes, np.float32), np.asarray(scores, np.float32))
        dets = dets[dets.scores >= self.cfg.conf]
        return dets[nms(dets.xyxy, dets.scores, self.cfg.nms_iou)]


def join_parts(xywh: np.ndarray, join_gap: float) -> list[tuple[float, float, float, float, np.ndarray]]:
    """Group warm blobs that are parts of one person: stacked (their columns overlap by at least half
    the narrower one) and separated by a vertical gap of at most ``join_gap`` times the taller one.

    A cold belt, trousers, a bag or the knees split a person into head, torso and legs, with small
    gaps between them; two people side by side share no columns and stay apart. A far person just
    above a near one in the image can be joined with them (a known limit; keep ``join_gap`` small).

    Returns:
        (x1, y1, x2, y2, member indices) per group.
    """
    boxes = [[float(x), float(y), float(x + bw), float(y + bh), [i]] for i, (x, y, bw, bh) in enumerate(xywh)]
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                overlap = min(a[2], b[2]) - max(a[0], b[0])
                narrower = min(a[2] - a[0], b[2] - b[0])
                gap = max(a[1], b[1]) - min(a[3], b[3])
                if overlap >= 0.5 * narrower and gap <= join_gap * max(a[3] - a[1], b[3] - b[1]):
                    boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]), a[4] + b[4]]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return [(x1, y1, x2, y2, np.asarray(m, np.int64)) for x1, y1, x2, y2, m in boxes]
