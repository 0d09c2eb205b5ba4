"""Gray renderings of visible training frames: what a visible sequence looks like to another sensor.

``luminance`` is plain RGB->gray. ``random_mix`` draws, per sequence, a sensor that sees the scene in
one channel but weighs colours its own way: random weights over R, G and B, each channel possibly
inverted (dyes that look dark can be bright in near-infrared), a gamma, sometimes soft focus and
sensor noise. Trained on, it teaches that a person's identity survives any such mapping, rather
than the one mapping a test camera happens to use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np

GrayMode = Literal["luminance", "random_mix"]


def luminance(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """(H, W, 3) uint8 RGB frames -> the same frames in gray, three equal channels."""
    return [np.repeat(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2) for f in frames]


def random_mix(frames: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """One random single-channel sensor (see module doc) applied to every frame of a sequence."""
    weights = rng.dirichlet(np.ones(3)).astype(np.float32)
    inverted = rng.random(3) < 0.3
    gamma = float(rng.uniform(0.7, 1.4))
    blur = rng.random() < 0.5
    sigma = float(rng.uniform(0.0, 8.0))
    out = []
    for f in frames:
        x = f.astype(np.float32)
        x = np.where(inverted, 255.0 - x, x) @ weights
        x = 255.0 * np.power(np.clip(x / 255.0, 0.0, 1.0), gamma)
        if blur:
            x = cv2.blur(x, (3, 3))
        if sigma > 0:
            x = x + rng.normal(0.0, sigma, x.shape).astype(np.float32)
        out.append(np.repeat(np.clip(x, 0, 255).astype(np.uint8)[..., None], 3, axis=2))
    return out


def to_gray(frames: Sequence[np.ndarray], mode: GrayMode, rng: np.random.Generator) -> list[np.ndarray]:
    """Gray a sequence the way ``mode`` says."""
    return random_mix(frames, rng) if mode == "random_mix" else luminance(frames)
