"""HOG people detection where the fixed camera sees motion: the offline default detector.

OpenCV's default people model (64x128 window, person ~96 px tall inside it) is run on upscaled
crops around MOG2 foreground regions only (``motion.py``), not on the whole frame. Raw windows
(``groupThreshold=0``) are kept with their SVM margins and reduced by non-maximum suppression,
so every box has a score; windows are then calibrated to the person's extent and margins mapped
onto the tracker's score scale (``box_calibration.py``). Boxes with too few moving pixels are
dropped once the background model is warm (``motion.min_foreground``): static structure that
looks like a person to HOG.

Measured on PETS09-S2L1 frames 1-400 (benchmarks/mot_vtest.py): the regions cover ~20-25% of
the frame, the detector runs several times faster than full-frame HOG at the same upscale, with
the same recall and higher precision.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from pipeline.config.settings import DetectorCfg
from pipeline.detection.base import Detections, as_bgr, nms
from pipeline.detection.box_calibration import BoxCalibration, margin_to_score
from pipeline.detection.conditioning import Denoiser
from pipeline.detection.motion import ForegroundModel, merge_overlapping

log = logging.getLogger(__name__)

_WIN_W, _WIN_H = 64, 128


class MotionHogDetector:
    """HOG on the moving regions of a fixed camera's frames (one instance per camera: it has state)."""

    name = "hog"
    per_camera = True  # holds a camera's background model: never shared between cameras

    def __init__(self, cfg: DetectorCfg) -> None:
        self.cfg = cfg
        self.foreground = ForegroundModel(cfg.motion)
        self.denoiser = Denoiser(cfg.denoise)   # night frames: HOG reads denoised crops
        self.calibration = BoxCalibration(width=cfg.hog_box_shrink[0], height=cfg.hog_box_shrink[1])
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.searched_fraction = 0.0  # share of the last frame's pixels that were searched
        self._attended = np.zeros((0, 4), np.float32)

    def attend(self, xyxy: np.ndarray) -> None:
        """Also search around these boxes in the next frame (the tracker's current tracks).

        A person who stands still fades into the background model; searching where tracks are
        keeps them detected for as long as the tracker holds them.
        """
        self._attended = np.asarray(xyxy, np.float32).reshape(-1, 4).copy()

    def detect(self, image: np.ndarray) -> Detections:
        bgr = as_bgr(image)
        h, w = bgr.shape[:2]
        self.foreground.update(bgr)
        if self.foreground.gray:   # one picture in three channels: their (codec) differences are only noise to HOG
            bgr = image.reshape(h, w) if image.ndim == 2 or image.shape[2] == 1 else cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        self.denoiser.observe(bgr)
        regions = self.foreground.regions()
        if self.cfg.motion.search_tracks and len(self._attended) and self.foreground.warm:
            regions = merge_overlapping(np.concatenate([regions, self._grow(self._attended, w, h)]))
        windows, margins = [], []
        searched = 0.0
        # a region must hold at least one upscaled window (plus HOG's padding) to be searched
        min_w, min_h = (_WIN_W + 16) / self.cfg.hog_upscale, (_WIN_H + 16) / self.cfg.hog_upscale
        regions = _grow_to(regions, min_w, min_h, w, h)
        for x1, y1, x2, y2 in np.rint(regions).astype(np.int64):
            rect, margin = self._search(bgr[y1:y2, x1:x2])
            if len(rect):
                rect[:, [0, 2]] += x1
                rect[:, [1, 3]] += y1
                windows.append(rect)
                margins.append(margin)
            searched += (x2 - x1) * (y2 - y1)
        self.searched_fraction = searched / max(w * h, 1)
        if not windows:
            return Detections.empty()
        xyxy = np.concatenate(windows)
        # denoised (night) frames: people's margins are lower; their own scale keeps them above the tracker's thresholds
        scale = self.cfg.denoise.hog_margin_scale if self.denoiser.active else self.cfg.hog_margin_scale
        scores = margin_to_score(np.concatenate(margins), scale)
        keep = scores >= self.cfg.conf
        xyxy, scores = xyxy[keep], scores[keep]
        keep = nms(xyxy, scores, self.cfg.nms_iou)  # on windows: people's windows overlap less than their boxes
        dets = Detections(self.calibration.apply(xyxy[keep]), scores[keep]).clipped(w, h)
        if self.cfg.motion.min_foreground > 0 and self.foreground.warm and len(dets):
            dets = dets[self.foreground.fraction(dets.xyxy) >= self.cfg.motion.min_foreground]
        return dets

    def _grow(self, xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
        """Person boxes -> search regions: back to the detector's window, plus the motion margin."""
        bw, bh = xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]
        mx = bw * (0.5 / self.calibration.width - 0.5) + self.cfg.motion.roi_margin * bh
        my = bh * (0.5 / self.calibration.height - 0.5) + self.cfg.motion.roi_margin * bh
        out = np.stack([xyxy[:, 0] - mx, xyxy[:, 1] - my, xyxy[:, 2] + mx, xyxy[:, 3] + my], axis=1)
        out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
        out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
        return out.astype(np.float32)

    def _search(self, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw HOG windows ((K, 4) xyxy crop pixels) and their margins in one region."""
        up = self.cfg.hog_upscale
        ch, cw = crop.shape[:2]
        if ch * up < _WIN_H or cw * up < _WIN_W:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        img = cv2.resize(self.denoiser.apply(crop), (round(cw * up), round(ch * up)), interpolation=cv2.INTER_LINEAR)
        stride = (self.cfg.hog_win_stride, self.cfg.hog_win_stride)
        rects, weights = self._hog.detectMultiScale(img, hitThreshold=0.0, winStride=stride, padding=(8, 8),
                                                    scale=self.cfg.hog_scale, groupThreshold=0)
        if len(rects) == 0:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        ltwh = np.asarray(rects, np.float32).reshape(-1, 4) / up
        xyxy = np.concatenate([ltwh[:, :2], ltwh[:, :2] + ltwh[:, 2:]], axis=1)
        return xyxy, np.asarray(weights, np.float32).reshape(-1)

    def reset(self) -> None:
        self.foreground.reset()
        self._attended = np.zeros((0, 4), np.float32)


def _grow_to(boxes: np.ndarray, min_w: float, min_h: float, width: int, height: int) -> np.ndarray:
    """Boxes grown about their centre to at least ``min_w`` x ``min_h``, kept inside the frame."""
    if len(boxes) == 0:
        return boxes
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    bw = np.minimum(np.maximum(boxes[:, 2] - boxes[:, 0], min_w), width)
    bh = np.minimum(np.maximum(boxes[:, 3] - boxes[:, 1], min_h), height)
    x1 = np.clip(cx - bw / 2, 0, width - bw)
    y1 = np.clip(cy - bh / 2, 0, height - bh)
    return np.stack([x1, y1, x1 + bw, y1 + bh], axis=1).astype(np.float32)
