"""OpenCV's HOG + linear-SVM people detector: offline, CPU only, weaker than YOLO.

The default people model has a 64x128 window in which a person stands about 96 px tall, so small
people (PETS09: 50-110 px) are found only on an upscaled frame. Its boxes are the whole window,
much wider and taller than the person; they are shrunk about their centre (measured on PETS09
ground truth: the person is ~0.5 of the window width and ~0.75 of its height). SVM margins become
[0, 1] scores by ``1 - exp(-margin)``, so one confidence threshold fits HOG and YOLO alike.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from pipeline.config.settings import DetectorCfg
from pipeline.detection.base import Detections, as_bgr, nms
from pipeline.detection.conditioning import Denoiser

log = logging.getLogger(__name__)


class HogDetector:
    """People detector on OpenCV's ``HOGDescriptor_getDefaultPeopleDetector``."""

    name = "hog"

    def __init__(self, cfg: DetectorCfg) -> None:
        self.cfg = cfg
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.denoiser = Denoiser(cfg.denoise)

    def detect(self, image: np.ndarray) -> Detections:
        bgr = as_bgr(image)
        self.denoiser.observe(bgr)
        bgr = self.denoiser.apply(bgr)
        h, w = bgr.shape[:2]
        up = self.cfg.hog_upscale
        img = cv2.resize(bgr, (round(w * up), round(h * up)), interpolation=cv2.INTER_LINEAR) if up != 1.0 else bgr
        stride = (self.cfg.hog_win_stride, self.cfg.hog_win_stride)
        rects, margins = self._hog.detectMultiScale(img, hitThreshold=0.0, winStride=stride, padding=(8, 8),
                                                    scale=self.cfg.hog_scale)
        if len(rects) == 0:
            return Detections.empty()
        ltwh = np.asarray(rects, np.float32).reshape(-1, 4) / up
        scores = (1.0 - np.exp(-np.maximum(np.asarray(margins, np.float32).reshape(-1), 0.0))).astype(np.float32)
        sw, sh = self.cfg.hog_box_shrink
        cx, cy = ltwh[:, 0] + ltwh[:, 2] / 2, ltwh[:, 1] + ltwh[:, 3] / 2
        bw, bh = ltwh[:, 2] * sw, ltwh[:, 3] * sh
        xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1).astype(np.float32)
        dets = Detections(xyxy, scores).clipped(w, h)
        dets = dets[dets.scores >= self.cfg.conf]
        return dets[nms(dets.xyxy, dets.scores, self.cfg.nms_iou)]
