"""Synthetic thermal scenes with ground truth, rendered by the tests, and the thermal detector they exercise.

Until a shared scene generator exists, the thermal tests draw their own footage: a background
with a vertical temperature gradient and smooth texture, a warm static radiator and a warm
static post (person-like in shape, not in behaviour), fleeting glints, sensor noise, and people
walking across (warm head, cooler clothes, swinging legs). ``render_scene`` returns white-hot
8-bit frames and MOT-style ground-truth boxes; other tests turn them into palettes or 16-bit raw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.config.settings import DetectorCfg
from pipeline.detection.heat import HeatDetector

WIDTH, HEIGHT = 320, 240


@dataclass(frozen=True)
class Walker:
    track_id: int
    x0: float           # feet position at frame t0 (pixels)
    y0: float
    vx: float           # pixels per frame
    vy: float
    height: float       # pixels
    warmth: float       # gray levels above the background
    t0: int = 0


@dataclass(frozen=True)
class Scene:
    frames: list[np.ndarray]                   # (H, W) uint8 white-hot
    gt: list[tuple[int, int, float, float, float, float]]  # (frame, id, x1, y1, x2, y2)
    static_boxes: list[tuple[int, int, int, int]]           # warm static objects (x1, y1, x2, y2)


def _draw_person(canvas: np.ndarray, w: Walker, t: int) -> tuple[float, float, float, float]:
    """Draw one walker at frame t (additive warmth); returns its tight box."""
    fx, fy = w.x0 + w.vx * (t - w.t0), w.y0 + w.vy * (t - w.t0)
    h = w.height
    bob = 0.02 * h * np.sin(0.9 * t + w.track_id)
    top = fy - h + bob
    layer = np.zeros_like(canvas)
    s = 4  # sub-pixel drawing: cv2 shift bits
    def p(x: float, y: float) -> tuple[int, int]:
        return int(round(x * (1 << s))), int(round(y * (1 << s)))
    # torso (clothes: cooler), head (warmest), legs swinging, arms
    cv2.ellipse(layer, p(fx, top + 0.40 * h), p(0.15 * h, 0.23 * h), 0, 0, 360, 0.75 * w.warmth, -1, cv2.LINE_AA, s)
    cv2.circle(layer, p(fx, top + 0.09 * h), int(0.085 * h * (1 << s)), w.warmth, -1, cv2.LINE_AA, s)
    swing = 0.12 * h * np.sin(0.6 * t + w.track_id)
    for side in (-1, 1):
        cv2.line(layer, p(fx + side * 0.05 * h, top + 0.6 * h), p(fx + side * swing, fy), 0.65 * w.warmth,
                 max(2, int(0.07 * h)), cv2.LINE_AA, s)
    cv2.line(layer, p(fx - 0.15 * h, top + 0.25 * h), p(fx - 0.18 * h - 0.3 * swing, top + 0.55 * h),
             0.8 * w.warmth, max(2, int(0.05 * h)), cv2.LINE_AA, s)
    mask = layer > 0.3 * w.warmth
    canvas += layer
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return (0.0, 0.0, 0.0, 0.0)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def render_scene(n_frames: int = 120, seed: int = 0, n_people: int = 3, static_objects: bool = True,
                 glints: bool = True, noise: float = 2.5) -> Scene:
    """A thermal scene, white-hot 8-bit, with ground truth for every visible person."""
    rng = np.random.default_rng(seed)
    yy = np.linspace(0.0, 1.0, HEIGHT, dtype=np.float32)[:, None]
    texture = cv2.resize(rng.normal(0, 6, (6, 8)).astype(np.float32), (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    background = 70.0 + 30.0 * yy + texture + np.zeros((HEIGHT, WIDTH), np.float32)
    static_boxes: list[tuple[int, int, int, int]] = []
    if static_objects:
        radiator = (20, 40, 75, 58)        # wide: not person-shaped
        post = (270, 120, 280, 160)        # person-shaped, never moves
        for (x1, y1, x2, y2), warmth in ((radiator, 70.0), (post, 65.0)):
            background[y1:y2, x1:x2] += warmth
            static_boxes.append((x1, y1, x2, y2))
        background = cv2.GaussianBlur(background, (3, 3), 0.8)
    walkers = []
    for i in range(n_people):
        height = float(rng.uniform(45, 70))
        going_right = bool(i % 2 == 0)
        speed = float(rng.uniform(1.5, 3.5))
        y_feet = float(rng.uniform(110, HEIGHT - 15))
        x0 = -10.0 if going_right else WIDTH + 10.0
        walkers.append(Walker(i + 1, x0, y_feet, speed if going_right else -speed, float(rng.uniform(-0.3, 0.3)),
                              height, float(rng.uniform(85, 120)), t0=int(rng.integers(0, max(1, n_frames // 3)))))
    frames, gt = [], []
    for t in range(n_frames):
        canvas = background.copy()
        for w in walkers:
            if t < w.t0:
                continue
            x1, y1, x2, y2 = _draw_person(canvas, w, t)
            x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, WIDTH), min(y2, HEIGHT)
            full_w = 0.36 * w.height
            if x2 - x1 >= 0.4 * full_w and y2 - y1 >= 0.5 * w.height:   # mostly inside the frame
                gt.append((t, w.track_id, x1, y1, x2, y2))
        if glints and rng.random() < 0.15:                                # fleeting reflection
            gx, gy = int(rng.integers(10, WIDTH - 20)), int(rng.integers(10, HEIGHT - 40))
            canvas[gy:gy + 22, gx:gx + 8] += 70.0
        canvas += rng.normal(0, noise, canvas.shape).astype(np.float32)
        frames.append(np.clip(canvas, 0, 255).astype(np.uint8))
    return Scene(frames, gt, static_boxes)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) xyxy → (N, M) IoU."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def gt_boxes(scene: Scene, t: int) -> np.ndarray:
    return np.array([g[2:] for g in scene.gt if g[0] == t], np.float32).reshape(-1, 4)


def heat_detector(**heat: object) -> HeatDetector:
    from pipeline.config.loader import from_dict

    return HeatDetector(from_dict(DetectorCfg, {"kind": "heat", "heat": dict(heat)}))


def write_scene(scene: Scene, video: Path, gt_path: Path, palette: str = "white_hot") -> None:
    """The scene as a camera would record it (MJPG video, palette) and its MOTChallenge ground truth."""
    from pipeline.ingest.thermal import render_palette

    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (WIDTH, HEIGHT))
    for frame in scene.frames:
        writer.write(render_palette(frame, palette))
    writer.release()
    gt_path.write_text("".join(f"{t + 1},{tid},{x1:.1f},{y1:.1f},{x2 - x1:.1f},{y2 - y1:.1f},1,1,1\n"
                               for t, tid, x1, y1, x2, y2 in scene.gt))
