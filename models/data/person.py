"""Synthetic people: who they are (body, clothing, gait) and their silhouette at a walking phase.

A person is drawn as a label map (skin, hair, top, bottom, shoes, backpack, hat) plus a pattern
map (the structure of prints and stripes, 0/1). Visible and thermal cameras shade the *same* maps
differently (``models.data.camera``): visible pixels take the clothing's colours, thermal pixels
take temperatures that depend on skin exposure and clothing thickness only. So shape,
proportions, pattern structure and gait are shared by both modalities, colour is not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# label values of the part map
BG, SKIN, HAIR, TOP, BOTTOM, SHOES, BACKPACK, HAT = range(8)
VIEWS = ("front", "back", "left", "right")
TOP_PATTERNS = ("solid", "hstripes", "vstripes", "checker", "chest_block")
BOTTOM_PATTERNS = ("solid", "side_stripe", "bands")


@dataclass(frozen=True)
class PersonSpec:
    """Everything that identifies a synthetic person; sampled once per identity."""

    height: float            # fraction of the crop height the standing person fills
    build: float             # width multiplier (slim 0.75 .. broad 1.4)
    torso: float             # shoulder-to-hip length / height
    head: float              # head radius / height
    hip: float               # hip width relative to shoulders
    skin_rgb: tuple[int, int, int]
    hair_rgb: tuple[int, int, int]
    top_rgb: tuple[int, int, int]
    top_rgb2: tuple[int, int, int]
    bottom_rgb: tuple[int, int, int]
    bottom_rgb2: tuple[int, int, int]
    shoes_rgb: tuple[int, int, int]
    bag_rgb: tuple[int, int, int]
    hat_rgb: tuple[int, int, int]
    top_pattern: str
    top_period: float        # stripe/checker period, fraction of height
    bottom_pattern: str
    long_sleeves: bool
    long_trousers: bool
    top_thickness: float     # 0 thin shirt .. 1 thick coat (thermal only)
    bottom_thickness: float
    backpack: bool
    hat: bool
    stride: float            # leg swing amplitude, radians
    arm_swing: float         # arm swing amplitude, radians
    cadence: float           # phase advance per frame, radians
    bob: float               # vertical bounce, fraction of height


def _colour(rng: np.random.Generator, sat: tuple[float, float] = (0.35, 1.0),
            val: tuple[float, float] = (0.25, 1.0)) -> tuple[int, int, int]:
    hsv = np.uint8([[[rng.integers(0, 180), int(255 * rng.uniform(*sat)), int(255 * rng.uniform(*val))]]])
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


def sample_person(rng: np.random.Generator) -> PersonSpec:
    """Draw one identity; colours and thermal properties are drawn independently of each other."""
    skin = [(241, 194, 167), (224, 172, 105), (198, 134, 66), (141, 85, 36), (90, 56, 37)][int(rng.integers(5))]
    return PersonSpec(
        height=float(rng.uniform(0.72, 0.95)), build=float(rng.uniform(0.75, 1.4)),
        torso=float(rng.uniform(0.27, 0.35)), head=float(rng.uniform(0.058, 0.078)),
        hip=float(rng.uniform(0.7, 1.05)),
        skin_rgb=skin, hair_rgb=_colour(rng, (0.2, 0.8), (0.05, 0.5)),
        top_rgb=_colour(rng), top_rgb2=_colour(rng), bottom_rgb=_colour(rng, val=(0.15, 0.9)),
        bottom_rgb2=_colour(rng), shoes_rgb=_colour(rng, (0.0, 0.5), (0.05, 0.9)),
        bag_rgb=_colour(rng), hat_rgb=_colour(rng),
        top_pattern=TOP_PATTERNS[int(rng.integers(len(TOP_PATTERNS)))],
        top_period=float(rng.uniform(0.07, 0.14)),
        bottom_pattern=BOTTOM_PATTERNS[int(rng.integers(len(BOTTOM_PATTERNS)))],
        long_sleeves=bool(rng.random() < 0.55), long_trousers=bool(rng.random() < 0.7),
        top_thickness=float(rng.uniform(0.0, 1.0)), bottom_thickness=float(rng.uniform(0.0, 1.0)),
        backpack=bool(rng.random() < 0.4), hat=bool(rng.random() < 0.3),
        stride=float(rng.uniform(0.25, 0.5)), arm_swing=float(rng.uniform(0.15, 0.5)),
        cadence=float(rng.uniform(0.45, 0.8)), bob=float(rng.uniform(0.005, 0.02)),
    )


def _limb(label: np.ndarray, p0: tuple[float, float], p1: tuple[float, float], width: float, value: int) -> None:
    cv2.line(label, (int(round(p0[0])), int(round(p0[1]))), (int(round(p1[0])), int(round(p1[1]))), value,
             max(1, int(round(width))), lineType=cv2.LINE_8)


def _lerp(a: tuple[float, float], b: tuple[float, float], t: float) -> tuple[float, float]:
    return a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t


def draw_person(spec: PersonSpec, phase: float, view: str, height: int, width: int,
                scale: float = 1.0, dx: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Label map and pattern map (both (height, width) uint8) of one walking pose.

    Args:
        spec: the identity.
        phase: gait phase in radians.
        view: one of ``VIEWS`` (side views show leg and arm swing; front/back show foot lift).
        height, width: canvas size; the person stands on the bottom edge region, centred.
        scale: extra size factor (distance to the camera).
        dx: horizontal offset in pixels (detector box jitter).
    """
    label = np.zeros((height, width), np.uint8)
    pattern = np.zeros((height, width), np.uint8)
    body_h = spec.height * height * scale
    side = view in ("left", "right")
    facing = -1.0 if view == "left" else 1.0
    s = math.sin(phase)
    feet_y = height * 0.97 - spec.bob * body_h * abs(s)
    top_y = feet_y - body_h
    cx = width / 2 + dx
    r = spec.head * body_h
    head_c = (cx + (0.15 * r * facing if side else 0.0), top_y + r)
    sh_y = top_y + 2.4 * r
    hip_y = sh_y + spec.torso * body_h
    sh_half = spec.build * body_h * (0.065 if side else 0.13)
    hip_half = sh_half * spec.hip if not side else sh_half * 0.9
    limb_w = max(2.0, spec.build * body_h * 0.055)
    leg_w = limb_w * 1.25

    def draw_backpack() -> None:
        bw = sh_half * 1.6
        bx = cx - facing * sh_half * 1.4 if side else cx
        x0, x1 = (bx - bw / 2, bx + bw / 2) if side else (cx - sh_half * 0.8, cx + sh_half * 0.8)
        cv2.rectangle(label, (int(x0), int(sh_y + 0.05 * body_h)), (int(x1), int(sh_y + 0.22 * body_h)), BACKPACK, -1)

    # a backpack sticks out behind the body in side views (drawn first), covers the back in back view
    if spec.backpack and side:
        draw_backpack()

    # legs: hip -> knee -> foot; side views swing, frontal views lift alternately
    leg_len = feet_y - hip_y
    for k, sign in enumerate((1.0, -1.0)):
        hip_pt = (cx + (sign * hip_half * 0.5 if not side else 0.0), hip_y)
        if side:
            ang = sign * spec.stride * s
            knee = (hip_pt[0] + facing * math.sin(ang) * leg_len * 0.5, hip_pt[1] + math.cos(ang) * leg_len * 0.5)
            bend = max(0.0, -sign * s) * 0.5
            foot = (knee[0] + facing * math.sin(ang - bend) * leg_len * 0.5,
                    knee[1] + math.cos(ang - bend) * leg_len * 0.5)
        else:
            lift = max(0.0, sign * s) * spec.stride * 0.12 * leg_len
            knee = (hip_pt[0] + sign * 0.05 * leg_len, hip_y + leg_len * 0.5 - lift * 0.5)
            foot = (hip_pt[0] + sign * 0.06 * leg_len, feet_y - lift)
        trouser_end = 1.0 if spec.long_trousers else 0.45
        end = _lerp(hip_pt, knee, min(1.0, trouser_end * 2)) if trouser_end < 0.5 else _lerp(knee, foot, 0.9)
        _limb(label, knee, foot, leg_w * 0.85, SKIN)
        _limb(label, hip_pt, knee, leg_w, SKIN)
        if spec.long_trousers:
            _limb(label, hip_pt, knee, leg_w, BOTTOM)
            _limb(label, knee, end, leg_w * 0.9, BOTTOM)
        else:
            _limb(label, hip_pt, end, leg_w, BOTTOM)
        _limb(label, (foot[0], foot[1] - limb_w * 0.4), (foot[0] + (facing * limb_w * 1.2 if side else 0), foot[1]),
              limb_w * 0.9, SHOES)
        if spec.bottom_pattern == "side_stripe" and k == 0:
            _limb(pattern, hip_pt, end if spec.long_trousers else end, max(1.0, leg_w * 0.25), 1)

    # torso
    torso = np.array([[cx - sh_half, sh_y], [cx + sh_half, sh_y], [cx + hip_half, hip_y + 0.02 * body_h],
                      [cx - hip_half, hip_y + 0.02 * body_h]], np.int32)
    cv2.fillPoly(label, [torso], TOP)

    # arms: shoulder -> elbow -> hand, swinging against the legs
    arm_len = spec.torso * body_h * 1.15
    for sign in (1.0, -1.0):
        sh = (cx + (sign * sh_half * 0.95 if not side else 0.0), sh_y + limb_w * 0.5)
        ang = -sign * spec.arm_swing * s
        if side:
            elbow = (sh[0] + facing * math.sin(ang) * arm_len * 0.5, sh[1] + math.cos(ang) * arm_len * 0.5)
            hand = (elbow[0] + facing * math.sin(ang * 1.3) * arm_len * 0.5, elbow[1] + math.cos(ang * 1.3) * arm_len * 0.5)
        else:
            elbow = (sh[0] + sign * limb_w * 0.4, sh[1] + arm_len * 0.5 * (1 - 0.1 * abs(ang)))
            hand = (elbow[0] + sign * limb_w * 0.2, elbow[1] + arm_len * 0.5 * (1 - 0.15 * abs(ang)))
        _limb(label, sh, elbow, limb_w, TOP)
        _limb(label, elbow, hand, limb_w * 0.9, TOP if spec.long_sleeves else SKIN)
        if not spec.long_sleeves:
            _limb(label, _lerp(sh, elbow, 0.55), elbow, limb_w * 0.9, SKIN)
        cv2.circle(label, (int(hand[0]), int(hand[1])), max(1, int(limb_w * 0.55)), SKIN, -1)

    if spec.backpack and view == "back":
        draw_backpack()
    if spec.backpack and view == "front":
        for sign in (1.0, -1.0):
            _limb(label, (cx + sign * sh_half * 0.55, sh_y), (cx + sign * sh_half * 0.45, sh_y + 0.2 * body_h),
                  max(1.0, limb_w * 0.35), BACKPACK)

    # neck and head, hair (cap of the head, all of it from behind), hat
    _limb(label, (cx, sh_y), (head_c[0], head_c[1] + r * 0.8), limb_w * 0.8, SKIN)
    cv2.ellipse(label, (int(head_c[0]), int(head_c[1])), (max(1, int(r * 0.85)), max(1, int(r))), 0, 0, 360, SKIN, -1)
    hair_span = (0, 360) if view == "back" else (180, 360)
    cv2.ellipse(label, (int(head_c[0]), int(head_c[1] - r * 0.1)), (max(1, int(r * 0.9)), max(1, int(r))), 0,
                hair_span[0], hair_span[1], HAIR, -1)
    if spec.hat:
        cv2.rectangle(label, (int(head_c[0] - r), int(head_c[1] - r * 1.25)), (int(head_c[0] + r), int(head_c[1] - r * 0.35)),
                      HAT, -1)

    _fill_patterns(spec, label, pattern, view, cx, sh_y, hip_y, body_h)
    return label, pattern


def _fill_patterns(spec: PersonSpec, label: np.ndarray, pattern: np.ndarray, view: str, cx: float, sh_y: float,
                   hip_y: float, body_h: float) -> None:
    """Pattern structure in body coordinates, so it moves with the person."""
    h, w = label.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    period = max(2.0, spec.top_period * body_h)
    top = label == TOP
    if spec.top_pattern == "hstripes":
        pattern[top & (((ys - sh_y) // (period / 2)) % 2 == 1)] = 1
    elif spec.top_pattern == "vstripes":
        pattern[top & (((xs - cx) // (period / 2)) % 2 == 1)] = 1
    elif spec.top_pattern == "checker":
        pattern[top & ((((ys - sh_y) // period) + ((xs - cx) // period)) % 2 == 1)] = 1
    elif spec.top_pattern == "chest_block" and view == "front":
        block = (np.abs(xs - cx) < 0.06 * body_h) & (ys > sh_y + 0.05 * body_h) & (ys < sh_y + 0.15 * body_h)
        pattern[top & block] = 1
    bottom = label == BOTTOM
    if spec.bottom_pattern == "bands":
        pattern[bottom & (((ys - hip_y) // max(2.0, 0.05 * body_h)) % 3 == 2)] = 1
    pattern[(label != TOP) & (label != BOTTOM)] = 0
