"""SYNTHETIC thermal footage from an RGB video, so the demo has a second, infrared-like camera.

This is NOT real thermal imagery and says nothing about how the re-ID model fares on real
infrared; it only gives the pipeline a single-channel, thermal-looking stream of the same scene.
Rendering, per frame (white-hot: brighter = warmer):

1. people are "warm": pixels that differ from the scene's median background (computed once over
   frames spread through the video) form a soft foreground mask, closed and blurred into blobs;
   people standing still long enough fade into the cold background (motion-based, like the mask);
2. the background is "cold": its luminance is compressed into a dark, low-contrast band
   (sunlit surfaces are a little warmer than shaded ones);
3. the sensor: rendered at half resolution (thermal cores are low-res, e.g. 384x288) and scaled
   back, blurred (soft germanium optics), with temporal noise and fixed column-pattern noise.

The output is written once as a single-channel MJPEG AVI next to the source in the cache.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from models.errors import SourceError
from pipeline.ingest.looks import rerender_video

log = logging.getLogger(__name__)

RENDER_VERSION = 1   # bump when the rendering changes: cached files are named by it
BACKGROUND_SAMPLES = 40


def estimate_background(path: Path, samples: int = BACKGROUND_SAMPLES) -> np.ndarray:
    """Median over ``samples`` frames spread through the video: (H, W, 3) float32 in [0, 1]."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise SourceError(f"cannot decode {path} to render pseudo-thermal footage")
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    picks = set(np.linspace(0, max(total - 1, 0), samples).astype(int).tolist())
    frames, i = [], 0
    while len(frames) < len(picks):
        ok = cap.grab()
        if not ok:
            break
        if i in picks:
            ok, frame = cap.retrieve()
            if ok:
                frames.append(frame)
        i += 1
    cap.release()
    if not frames:
        raise SourceError(f"{path} has no readable frames")
    return np.median(np.stack(frames), axis=0).astype(np.float32) / 255.0


class PseudoThermal:
    """Renders BGR frames of one scene as synthetic white-hot thermal frames (seeded, deterministic)."""

    def __init__(self, background: np.ndarray, seed: int = 0) -> None:
        self.background = background
        h, w = background.shape[:2]
        self._rng = np.random.default_rng(seed)
        self._columns = self._rng.normal(0.0, 0.012, (1, w // 2)).astype(np.float32)  # fixed pattern
        bg_gray = cv2.cvtColor(background, cv2.COLOR_BGR2GRAY)
        self._cold = 0.18 + 0.14 * cv2.GaussianBlur(bg_gray, (0, 0), 3.0)  # dark, low-contrast scene
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 9))

    def render(self, frame_bgr: np.ndarray) -> np.ndarray:
        """(H, W, 3) BGR uint8 -> (H, W) uint8 synthetic thermal frame."""
        img = frame_bgr.astype(np.float32) / 255.0
        diff = np.abs(img - self.background).max(axis=2)
        mask = np.clip((diff - 0.08) / 0.12, 0.0, 1.0)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._kernel)
        mask = cv2.GaussianBlur(mask, (0, 0), 2.0)
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        body = 0.72 + 0.18 * (1.0 - gray)  # darker clothing reads a little warmer; skin/hair vary the blob
        heat = self._cold * (1.0 - mask) + body * mask
        h, w = heat.shape
        small = cv2.resize(heat, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), 0.8)
        small += self._columns + self._rng.normal(0.0, 0.015, small.shape).astype(np.float32)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.clip(out * 255.0, 0, 255).astype(np.uint8)


def render_video(src: Path, dst: Path, seed: int = 0) -> Path:
    """Render all of ``src`` as a single-channel MJPEG AVI at ``dst`` (written atomically)."""
    renderer = PseudoThermal(estimate_background(src), seed)
    rerender_video(src, dst, renderer.render, is_color=False)
    log.info("rendered SYNTHETIC pseudo-thermal frames of %s to %s", src, dst)
    return dst


def ensure_pseudo_thermal(src: Path, cache_dir: Path) -> Path:
    """The cached SYNTHETIC thermal rendering of ``src``, rendered on first use."""
    dst = cache_dir / f"{src.stem}-pseudo-thermal-v{RENDER_VERSION}.avi"
    if dst.is_file() and dst.stat().st_size > 0:
        return dst
    return render_video(src, dst)
