"""Synthetic cameras: visible (colour, lighting, background) and thermal (heat, blur, noise).

Both shade the label/pattern maps of ``models.data.person``. The thermal shading never reads a
colour: a pixel's temperature depends on what covers the body there (skin, hair, a thin shirt
or a thick coat, a backpack that insulates), prints change emissivity slightly so their
structure survives, and the background is cold. Grey levels are replicated to three channels,
as thermal crops reach the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.data.person import BACKPACK, BG, BOTTOM, HAIR, HAT, SHOES, SKIN, TOP, VIEWS, PersonSpec, draw_person
from models.data.tracklet import IR, RGB


@dataclass(frozen=True)
class CameraSpec:
    """One synthetic camera; drawn once per camera from the dataset seed."""

    modality: int                       # RGB or IR
    gain: float                         # brightness (visible) / contrast (thermal)
    offset: float                       # black level
    tint: tuple[float, float, float]    # per-channel white balance (visible only)
    view_probs: tuple[float, ...]       # probability of each of VIEWS
    bg_seed: int
    blur_sigma: float                   # fraction of crop height
    noise: float                        # sensor noise std on [0, 1]


def sample_camera(rng: np.random.Generator, modality: int) -> CameraSpec:
    views = rng.dirichlet(np.ones(len(VIEWS)) * 1.5)
    if modality == RGB:
        return CameraSpec(RGB, float(rng.uniform(0.65, 1.2)), float(rng.uniform(-0.05, 0.08)),
                          tuple(float(v) for v in rng.uniform(0.8, 1.2, 3)), tuple(float(v) for v in views),
                          int(rng.integers(2**31)), float(rng.uniform(0.0, 0.004)), float(rng.uniform(0.01, 0.03)))
    return CameraSpec(IR, float(rng.uniform(0.8, 1.15)), float(rng.uniform(-0.06, 0.06)), (1.0, 1.0, 1.0),
                      tuple(float(v) for v in views), int(rng.integers(2**31)), float(rng.uniform(0.005, 0.009)),
                      float(rng.uniform(0.02, 0.04)))


def background(cam: CameraSpec, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A camera's scene behind the person: (H, W, 3) float in [0, 1] (grey temperatures for thermal)."""
    base_rng = np.random.default_rng(cam.bg_seed)
    ys = np.linspace(0, 1, height)[:, None]
    if cam.modality == RGB:
        c0, c1 = base_rng.uniform(0.15, 0.85, 3), base_rng.uniform(0.15, 0.85, 3)
        img = (1 - ys)[..., None] * c0 + ys[..., None] * c1 + np.zeros((height, width, 3))
        for _ in range(3):                                          # fixed scene furniture of this camera
            x0, y0 = base_rng.uniform(0, 1, 2)
            colour = base_rng.uniform(0.1, 0.9, 3)
            img[int(y0 * height):int(min(1, y0 + 0.3) * height), int(x0 * width):int(min(1, x0 + 0.4) * width)] = colour
        img += rng.normal(0, 0.03, (height, width, 1))              # texture that varies per tracklet
        return np.clip(img, 0, 1)
    t0 = base_rng.uniform(0.12, 0.3)
    img = t0 + 0.08 * ys * base_rng.uniform(-1, 1) + np.zeros((height, width))
    lowfreq = cv2.resize(rng.normal(0, 0.04, (4, 2)), (width, height), interpolation=cv2.INTER_CUBIC)
    return np.repeat(np.clip(img + lowfreq, 0, 1)[..., None], 3, axis=2)


def person_colours(spec: PersonSpec, label: np.ndarray, pattern: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Reflectance (H, W, 3) float in [0, 1] of the person pixels (zero elsewhere)."""
    table = np.zeros((8, 3), np.float32)
    table[SKIN], table[HAIR], table[TOP] = spec.skin_rgb, spec.hair_rgb, spec.top_rgb
    table[BOTTOM], table[SHOES], table[BACKPACK], table[HAT] = spec.bottom_rgb, spec.shoes_rgb, spec.bag_rgb, spec.hat_rgb
    img = table[label] / 255.0
    p = pattern.astype(bool)
    img[p & (label == TOP)] = np.float32(spec.top_rgb2) / 255.0
    img[p & (label == BOTTOM)] = np.float32(spec.bottom_rgb2) / 255.0
    xs = np.linspace(-1, 1, label.shape[1])[None, :, None]
    return img * (1.0 - 0.18 * xs * rng.uniform(-1, 1))                # light from one side


def finish_visible(img: np.ndarray, cam: CameraSpec, rng: np.random.Generator) -> np.ndarray:
    """Camera response on a composed scene: white balance, exposure, optics blur, noise → uint8 RGB."""
    out = img * np.float32(cam.tint) * cam.gain + cam.offset
    if cam.blur_sigma > 0:
        out = cv2.GaussianBlur(out.astype(np.float32), (0, 0), max(0.3, cam.blur_sigma * min(128, out.shape[0])))
    out = out + rng.normal(0, cam.noise, out.shape)
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


def finish_thermal(t: np.ndarray, cam: CameraSpec, rng: np.random.Generator, blur_ref: int | None = None) -> np.ndarray:
    """Sensor response on a temperature map: optics blur (heat halo), gain, noise → grey replicated to RGB.

    ``blur_ref`` is the person height in pixels the blur is relative to (the crop height by default).
    """
    ref = blur_ref if blur_ref is not None else t.shape[0]
    t = cv2.GaussianBlur(t.astype(np.float32), (0, 0), max(0.3, cam.blur_sigma * ref))
    t = t * cam.gain + cam.offset
    t = t + rng.normal(0, cam.noise, t.shape) + rng.normal(0, cam.noise / 2, (1, t.shape[1]))  # + column noise
    grey = (np.clip(t, 0, 1) * 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def temperatures(spec: PersonSpec, label: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """Apparent temperature (0 cold .. 1 hot) of each person pixel; colour plays no part."""
    table = np.zeros(8, np.float32)
    table[SKIN] = 0.95
    table[HAIR] = 0.62
    table[HAT] = 0.5
    table[TOP] = 0.9 - 0.32 * spec.top_thickness
    table[BOTTOM] = 0.86 - 0.3 * spec.bottom_thickness
    table[SHOES] = 0.42
    table[BACKPACK] = 0.33
    t = table[label]
    # prints and stripes: a different fabric/ink emissivity keeps their structure, not their colour
    return t - 0.16 * pattern.astype(np.float32) * np.isin(label, (TOP, BOTTOM))


def render(spec: PersonSpec, cam: CameraSpec, phase: float, view: str, height: int, width: int,
           rng: np.random.Generator, scale: float = 1.0, dx: float = 0.0) -> np.ndarray:
    """One person crop as the camera sees it: (height, width, 3) uint8 RGB."""
    label, pattern = draw_person(spec, phase, view, height, width, scale, dx)
    bg = background(cam, height, width, rng)
    person = (label != BG)
    if cam.modality == RGB:
        return finish_visible(np.where(person[..., None], person_colours(spec, label, pattern, rng), bg), cam, rng)
    return finish_thermal(np.where(person, temperatures(spec, label, pattern), bg[..., 0]), cam, rng)
