"""What a fixed camera offers a detector: a background model that says where something moves.

A sliding-window detector such as HOG spends nearly all its time on lawn, road and walls. With a
fixed camera, OpenCV's MOG2 background subtractor finds the few regions that change; searching
only around them (plus a margin for the detector's window) makes HOG several times faster and
removes most false positives on static structure (sign posts, lamp posts, parked cars), which a
full-frame search keeps finding frame after frame.

``ForegroundModel.update`` is called once per frame, in order; ``regions`` then gives the boxes to
search and ``fraction`` the share of moving pixels inside given boxes (for static-box rejection).
Everything runs on a downscaled copy of the frame (``MotionCfg.scale``): the mask only has to be
good enough to place search regions, not to outline people.

MOG2's shadow test (darker than the background, same chromaticity) cannot tell a shadow from a
person on a gray frame, where every pixel has the background's chromaticity: on PETS09 rendered
as night near-infrared it filed ~all moving pixels as shadow and the mask came out empty
(0% of people with >10% foreground, 79% without the test). Shadow detection is therefore used
on colour frames only; the first frame after a reset decides which kind the camera sends.
"""

from __future__ import annotations

import cv2
import numpy as np

from models.errors import ContractError
from pipeline.config.settings import MotionCfg

_SHADOW = 127   # MOG2 marks shadows 127 and foreground 255; shadows are not people
_FOREGROUND = 200


class ForegroundModel:
    """MOG2 background model of one camera and the search regions it proposes."""

    def __init__(self, cfg: MotionCfg) -> None:
        self.cfg = cfg
        self.reset()

    def reset(self) -> None:
        """Forget the background (a new scene or a restarted source)."""
        cfg = self.cfg
        self._mog: cv2.BackgroundSubtractorMOG2 | None = None   # built on the first frame: colour or gray
        self.gray = False   # whether this camera's frames are gray (no shadow detection)
        dilate = max(1, round(cfg.dilate_px * cfg.scale)) | 1
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (dilate, dilate))
        self._mask: np.ndarray | None = None     # (h, w) uint8 {0, 1} at analysis scale
        self._integral: np.ndarray | None = None
        self._shape: tuple[int, int] = (0, 0)   # source frame (H, W)
        self.frames = 0

    @property
    def warm(self) -> bool:
        """Whether the background model has seen enough frames to be trusted."""
        return self.frames > self.cfg.warmup_frames

    def update(self, image: np.ndarray) -> None:
        """Feed the next frame ((H, W, 3) or (H, W) uint8) to the background model."""
        if image.ndim not in (2, 3) or image.dtype != np.uint8:
            raise ContractError(f"ForegroundModel needs a uint8 (H, W[, C]) frame, got {image.shape} {image.dtype}")
        h, w = image.shape[:2]
        s = self.cfg.scale
        small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        if self._mog is None:
            self.gray = is_gray(small)
            cfg = self.cfg
            self._mog = cv2.createBackgroundSubtractorMOG2(history=cfg.history, varThreshold=cfg.var_threshold,
                                                           detectShadows=cfg.detect_shadows and not self.gray)
        raw = self._mog.apply(small)
        mask = (raw > _FOREGROUND).astype(np.uint8)
        self._mask = cv2.medianBlur(mask, 3)  # salt noise from compression artefacts
        self._integral = None
        self._shape = (h, w)
        self.frames += 1

    def regions(self) -> np.ndarray:
        """(K, 4) float32 xyxy source-pixel boxes around moving blobs, margins added, overlaps merged.

        Before warm-up (and every ``full_frame_every`` frames when set) the whole frame is one region.
        """
        h, w = self._shape
        if self._mask is None:
            return np.zeros((0, 4), np.float32)
        every = self.cfg.full_frame_every
        if not self.warm or (every and self.frames % every == 0):
            return np.array([[0, 0, w, h]], np.float32)
        s = self.cfg.scale
        grown = cv2.dilate(self._mask, self._kernel)
        n, _, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
        min_area = self.cfg.min_blob_area_px * s * s
        blobs = stats[1:][stats[1:, cv2.CC_STAT_AREA] >= min_area].astype(np.float32)
        if len(blobs) == 0:
            return np.zeros((0, 4), np.float32)
        x, y, bw, bh = (blobs[:, i] / s for i in range(4))
        # the detector's window holds the person with a margin; a blob may be a partial person
        m = np.maximum(self.cfg.roi_margin * np.maximum(bh, self.cfg.min_region_px), 16.0)
        boxes = np.stack([x - m, y - m, x + bw + m, y + bh + m], axis=1)
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
        return merge_overlapping(boxes)

    def fraction(self, xyxy: np.ndarray) -> np.ndarray:
        """(N,) share of moving pixels inside each (N, 4) source-pixel box (0 for empty boxes)."""
        if self._mask is None or len(xyxy) == 0:
            return np.zeros((len(xyxy),), np.float32)
        if self._integral is None:
            self._integral = cv2.integral(self._mask)
        mh, mw = self._mask.shape
        b = np.rint(np.asarray(xyxy, np.float64) * self.cfg.scale).astype(np.int64)
        b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, mw)
        b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, mh)
        ii = self._integral
        inside = ii[b[:, 3], b[:, 2]] - ii[b[:, 1], b[:, 2]] - ii[b[:, 3], b[:, 0]] + ii[b[:, 1], b[:, 0]]
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        return np.where(area > 0, inside / np.maximum(area, 1), 0.0).astype(np.float32)


def is_gray(image: np.ndarray, max_mean_diff: float = 2.0) -> bool:
    """Whether ``image`` ((h, w) or (h, w, 3) uint8) carries no colour: one channel, or three nearly equal ones.

    ``max_mean_diff`` (mean absolute difference between channels, gray levels) tolerates the
    chroma noise a video codec leaves on a gray picture.
    """
    if image.ndim == 2 or image.shape[2] == 1:
        return True
    c = image.astype(np.int16)
    return float(np.abs(c[..., 0] - c[..., 1]).mean()) <= max_mean_diff and \
        float(np.abs(c[..., 1] - c[..., 2]).mean()) <= max_mean_diff


def merge_overlapping(boxes: np.ndarray) -> np.ndarray:
    """Union of overlapping (N, 4) xyxy boxes until none overlap (search each pixel once)."""
    out = [b for b in np.asarray(boxes, np.float32)]
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, c = out[i], out[j]
                if a[0] < c[2] and c[0] < a[2] and a[1] < c[3] and c[1] < a[3]:
                    out[i] = np.array([min(a[0], c[0]), min(a[1], c[1]), max(a[2], c[2]), max(a[3], c[3])], np.float32)
                    del out[j]
                    merged = True
                    break
            if merged:
                break
    return np.stack(out).astype(np.float32) if out else np.zeros((0, 4), np.float32)
