"""Other cameras' looks rendered from one real recording, for benchmarks that need a second camera.

The project has one real pedestrian recording (vtest.avi). A second camera of the same people is made
from it by re-rendering each frame: another RGB camera (mirrored, white balance and exposure changed)
or a near-infrared night camera (gray from a channel mix unlike luminance, gamma, soft focus, sensor
noise at high gain). These are deterministic per seed so a benchmark's figures can be reproduced; they
are clearly synthetic views and are labelled so wherever they are written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from models.errors import SourceError

# Near-infrared reflectance of clothing follows visible colour only loosely: dyes that look dark can be
# bright in NIR. This mix (weights on R, G and the inverse of B) is deliberately unlike luminance.
NIR_MIX_R, NIR_MIX_G, NIR_MIX_INV_B = 0.55, 0.15, 0.30


@dataclass(frozen=True, slots=True)
class OtherRgbLook:
    """Another RGB camera: mirrored, warmer white balance, different exposure and contrast."""

    mirror: bool = True
    gains_bgr: tuple[float, float, float] = (0.82, 1.0, 1.18)   # warmer white balance
    exposure: float = 1.12
    contrast: float = 0.9

    @property
    def modality(self) -> str:
        return "rgb"

    def render(self, frame_bgr: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """(H, W, 3) BGR uint8 -> (H, W, 3) BGR uint8."""
        img = frame_bgr.astype(np.float32) / 255.0
        img = img * np.asarray(self.gains_bgr, np.float32) * self.exposure
        img = (img - 0.5) * self.contrast + 0.5
        out = np.clip(img * 255.0, 0, 255).astype(np.uint8)
        return out[:, ::-1].copy() if self.mirror else out


@dataclass(frozen=True, slots=True)
class NightNirLook:
    """A near-infrared night camera: channel-mix gray, gamma, optional 3x3 blur, Gaussian noise."""

    noise_sigma: float = 6.0
    blur: bool = True
    gamma: float = 0.8
    mirror: bool = False

    @property
    def modality(self) -> str:
        return "ir"

    def render(self, frame_bgr: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """(H, W, 3) BGR uint8 -> (H, W, 3) BGR uint8 whose three channels are equal (gray)."""
        f = frame_bgr.astype(np.float32)
        b, g, r = f[..., 0], f[..., 1], f[..., 2]
        gray = NIR_MIX_R * r + NIR_MIX_G * g + NIR_MIX_INV_B * (255.0 - b)
        gray = 255.0 * np.power(np.clip(gray / 255.0, 0.0, 1.0), self.gamma)
        if self.blur:
            gray = cv2.blur(gray, (3, 3))
        if self.noise_sigma > 0:
            rng = rng if rng is not None else np.random.default_rng(0)
            gray = gray + rng.normal(0.0, self.noise_sigma, gray.shape).astype(np.float32)
        out = np.clip(gray, 0, 255).astype(np.uint8)
        if self.mirror:
            out = out[:, ::-1]
        return np.ascontiguousarray(np.repeat(out[..., None], 3, axis=2))


Look = OtherRgbLook | NightNirLook


def render_camera(src: Path, dst: Path, look: Look, max_frames: int | None = None, lead_frames: int = 0,
                  lead_background: np.ndarray | None = None, seed: int = 0) -> Path:
    """Write ``src`` re-rendered in ``look`` to ``dst`` (MJPEG AVI, written atomically).

    ``lead_frames`` frames of ``lead_background`` (an empty scene, BGR uint8) come first, in the same look,
    so the second camera sees the same people later in time: two cameras that see one person at the same
    instant would otherwise be ruled apart by the matcher's co-occurrence constraint, which is not what a
    site with distant cameras looks like.
    """
    if lead_frames and lead_background is None:
        raise ValueError("lead_frames needs lead_background")
    rng = np.random.default_rng(seed)
    lead = [lead_background] * lead_frames if lead_background is not None else []
    return rerender_video(src, dst, lambda frame: look.render(frame, rng), is_color=True, max_frames=max_frames,
                          lead=lead)


def rerender_video(src: Path, dst: Path, render: Callable[[np.ndarray], np.ndarray], is_color: bool,
                   max_frames: int | None = None, lead: Sequence[np.ndarray] = ()) -> Path:
    """Write ``render(frame)`` of every frame of ``src`` (after ``render`` of each ``lead`` frame) to ``dst``.

    MJPEG AVI at the source's frame rate, written under a partial name and renamed, so an interrupted
    rendering never leaves a file that a cache would take for finished. Returns ``dst``.
    """
    cap = cv2.VideoCapture(str(src), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise SourceError(f"cannot decode {src}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    dst.parent.mkdir(parents=True, exist_ok=True)
    partial = dst.with_name(dst.stem + ".partial.avi")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h), isColor=is_color)
    if not writer.isOpened():
        cap.release()
        raise SourceError(f"cannot write {partial}")
    n = 0
    try:
        for frame in lead:
            writer.write(render(frame))
        while max_frames is None or n < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            writer.write(render(frame))
            n += 1
    finally:
        writer.release()
        cap.release()
    if n == 0:
        partial.unlink(missing_ok=True)
        raise SourceError(f"{src} has no readable frames")
    partial.replace(dst)
    return dst
