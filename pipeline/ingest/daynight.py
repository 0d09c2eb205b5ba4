"""Day/night cameras: decide per frame whether it is colour (``rgb``) or near-infrared (``ir``).

A day/night camera drops its IR-cut filter at dusk and sends grayscale, IR-illuminated frames
until dawn. Nothing in the stream says so; the frames themselves do: a colour frame has
saturated pixels and colour channels that disagree, an infrared frame has (almost) no saturation
and three channels that move together. ``colour_stats`` measures both on a small copy of the
frame, ``classify`` turns them into ``rgb``, ``ir`` or undecided with a hysteresis band, and
``ModalityGate`` makes the per-camera decision stable:

* a change must be seen for ``min_dwell_s`` (and ``min_dwell_frames``) before it counts, so
  headlights, flicker and a passing shadow at dusk do not flap the camera; while it is pending,
  frames vote: an isolated frame of the old look does not cancel it (the camera hunts at dusk),
  it is abandoned when frames of the old modality outnumber those of the new one, and confirmed
  once the dwell has passed with at least twice as many votes for the new modality;
* after a switch the camera holds its modality at least ``min_hold_s``;
* while a change is pending the frames are held back (at most ``max_lookahead_frames``), then
  released all with the new modality (confirmed) or all with the old one (rejected). So every
  frame gets the modality it really has, the switch is dated to the first frame of the new
  modality, and a clip, which is cut from consecutive frames, never mixes modalities.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

import cv2
import numpy as np

from models.errors import ContractError
from pipeline.bus.messages import MODALITIES
from pipeline.config.settings import DayNightCfg

log = logging.getLogger(__name__)

P = TypeVar("P")

_MIN_LIT_VALUE = 40      # HSV value below which a pixel's hue/saturation is noise
_MIN_CHANNEL_STD = 1e-3  # a flat channel has no correlation to measure


@dataclass(frozen=True, slots=True)
class ColourStats:
    """Colour evidence of one frame.

    Attributes:
        saturation: mean HSV saturation (0..1) over pixels bright enough to carry colour.
        correlation: the smallest Pearson correlation between two of the three colour channels
            (1.0 for a gray frame, lower the more the channels disagree).
    """

    saturation: float
    correlation: float


def colour_stats(frame: np.ndarray, width: int = 96) -> ColourStats:
    """Measure saturation and inter-channel correlation on a ``width``-pixel-wide copy of ``frame``.

    Args:
        frame: (H, W, 3) BGR uint8, or (H, W) / (H, W, 1) uint8 (reported as gray: 0.0, 1.0).

    Raises:
        ContractError: for anything that is not a uint8 image.
    """
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim not in (2, 3):
        raise ContractError(f"colour_stats needs a uint8 image, got {getattr(frame, 'dtype', type(frame).__name__)} "
                            f"{getattr(frame, 'shape', '')}")
    if frame.ndim == 2 or frame.shape[2] == 1:
        return ColourStats(0.0, 1.0)
    if frame.shape[2] != 3:
        raise ContractError(f"colour_stats needs 1 or 3 channels, got {frame.shape}")
    h, w = frame.shape[:2]
    if w > width:
        frame = cv2.resize(frame, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(frame, cv2.COLOR_BGR2HSV)
    lit = hsv[..., 2] >= _MIN_LIT_VALUE
    saturation = float(hsv[..., 1][lit].mean()) / 255.0 if lit.any() else 0.0
    chans = frame.reshape(-1, 3).astype(np.float64).T          # (3, N)
    std = chans.std(axis=1)
    if np.all(std < _MIN_CHANNEL_STD):
        correlation = 1.0                                        # flat frame: no colour evidence
    elif np.any(std < _MIN_CHANNEL_STD):
        correlation = 0.0                                        # one flat channel beside a varying one
    else:
        correlation = float(np.corrcoef(chans)[np.triu_indices(3, k=1)].min())
    return ColourStats(saturation, correlation)


def classify(stats: ColourStats, cfg: DayNightCfg) -> str | None:
    """``"ir"`` or ``"rgb"`` when the evidence is clear, ``None`` inside the hysteresis band."""
    if stats.saturation <= cfg.ir_max_saturation and stats.correlation >= cfg.ir_min_correlation:
        return "ir"
    if stats.saturation >= cfg.rgb_min_saturation or stats.correlation <= cfg.rgb_max_correlation:
        return "rgb"
    return None


def _nearest(stats: ColourStats, cfg: DayNightCfg) -> str:
    """Forced choice for a camera's very first frame (no current modality to keep)."""
    verdict = classify(stats, cfg)
    if verdict is not None:
        return verdict
    return "ir" if stats.saturation < (cfg.ir_max_saturation + cfg.rgb_min_saturation) / 2 else "rgb"


@dataclass(frozen=True, slots=True)
class ModalitySwitch:
    """The camera's modality changed (or was first decided: ``from_modality`` is ``None``).

    Attributes:
        ts: UTC epoch seconds of the first frame in the new modality.
        saturation, correlation: median evidence over the frames that confirmed the change.
    """

    camera_id: str
    ts: float
    from_modality: str | None
    to_modality: str
    saturation: float
    correlation: float

    def __post_init__(self) -> None:
        if self.to_modality not in MODALITIES or self.from_modality not in (None, *MODALITIES):
            raise ContractError(f"ModalitySwitch modalities must be in {MODALITIES}, "
                                f"got {self.from_modality!r} -> {self.to_modality!r}")
        if self.from_modality == self.to_modality:
            raise ContractError(f"ModalitySwitch of camera {self.camera_id} does not change modality")


@dataclass(frozen=True, slots=True)
class Released(Generic[P]):
    """A frame's payload leaving the gate with the modality it was decided to have."""

    payload: P
    ts: float
    modality: str


@dataclass(slots=True)
class _Held(Generic[P]):
    payload: P
    ts: float
    stats: ColourStats
    verdict: str | None


class ModalityGate(Generic[P]):
    """Stable per-camera modality for a camera configured ``modality: auto``.

    Feed frames in time order with ``push``; it returns, in order, ``ModalitySwitch`` events and
    ``Released`` frames. A switch always comes before the first frame of its new modality, so a
    consumer that closes its clips and resets its tracker on each switch never mixes
    modalities. Call ``flush`` at the end of the stream to get the frames still held.

    Args:
        camera_id: named in events and logs.
        cfg: thresholds and timing.
    """

    def __init__(self, camera_id: str, cfg: DayNightCfg) -> None:
        self.camera_id = camera_id
        self.cfg = cfg
        self.modality: str | None = None
        self.n_switches = 0                  # real switches (the first decision is not one)
        self.early_releases = 0              # pending frames released early because the lookahead was full
        self._held: deque[_Held[P]] = deque()
        self._pending_since: float | None = None   # ts of the first frame of the pending change
        self._last_switch_ts = -np.inf

    def push(self, payload: P, ts: float, frame: np.ndarray) -> list[ModalitySwitch | Released[P]]:
        """Classify ``frame`` (taken at ``ts``) and return what the gate lets out now."""
        stats = colour_stats(frame, self.cfg.analysis_width)
        verdict = classify(stats, self.cfg)
        out: list[ModalitySwitch | Released[P]] = []
        if self.modality is None:
            out.append(self._switch(ts, _nearest(stats, self.cfg), [stats], initial=True))
            out.append(Released(payload, ts, self.modality))   # type: ignore[arg-type]
            return out
        candidate = "ir" if self.modality == "rgb" else "rgb"
        if not self._held and (verdict != candidate or ts - self._last_switch_ts < self.cfg.min_hold_s):
            out.append(Released(payload, ts, self.modality))
            return out
        # a change is pending (or starts with this frame): hold the frame and count the votes
        self._held.append(_Held(payload, ts, stats, verdict))
        if self._pending_since is None:
            self._pending_since = ts
        votes_for = sum(h.verdict == candidate for h in self._held)
        votes_against = sum(h.verdict == self.modality for h in self._held)
        if votes_against > votes_for:
            out.extend(self._release_held(self.modality))       # the old modality is back: it was flicker
        elif (verdict == candidate and ts - self._pending_since >= self.cfg.min_dwell_s
              and votes_for >= self.cfg.min_dwell_frames and votes_for >= 2 * votes_against):
            evidence = [h.stats for h in self._held if h.verdict == candidate]
            out.append(self._switch(self._held[0].ts, candidate, evidence))
            out.extend(self._release_held(candidate))
        elif len(self._held) > self.cfg.max_lookahead_frames:
            out.extend(self._release_early(candidate))
        return out

    def flush(self) -> list[ModalitySwitch | Released[P]]:
        """End of stream: release held frames with the current modality (the change was never confirmed)."""
        return list(self._release_held(self.modality)) if self.modality is not None else []

    def reset(self) -> list[ModalitySwitch | Released[P]]:
        """Forget the pending change and the modality (after a reconnect); returns the held frames."""
        out = self.flush()
        self.modality = None
        self._last_switch_ts = -np.inf
        return out

    def _switch(self, ts: float, to: str, evidence: list[ColourStats], initial: bool = False) -> ModalitySwitch:
        event = ModalitySwitch(self.camera_id, float(ts), self.modality, to,
                               float(np.median([s.saturation for s in evidence])),
                               float(np.median([s.correlation for s in evidence])))
        if self.modality is None:
            log.info("camera=%s starts in modality %s (saturation %.3f, correlation %.3f)",
                     self.camera_id, to, event.saturation, event.correlation)
        else:
            log.info("camera=%s switched %s -> %s at ts=%.3f (saturation %.3f, correlation %.3f)",
                     self.camera_id, self.modality, to, ts, event.saturation, event.correlation)
        self.modality = to
        if not initial:     # the first decision is not a switch: it does not start a hold
            self._last_switch_ts = float(ts)
            self.n_switches += 1
        return event

    def _release_held(self, modality: str | None) -> list[Released[P]]:
        out = [Released(h.payload, h.ts, modality) for h in self._held]   # type: ignore[arg-type]
        self._held.clear()
        self._pending_since = None
        return out

    def _release_early(self, candidate: str) -> list[Released[P]]:
        """Lookahead full: the oldest held frames leave with the current modality.

        The pending change keeps counting from its first frame, so it is still confirmed after
        the dwell; its date moves to the oldest candidate frame still held (frames released
        early were processed as the old modality, counted in ``early_releases``).
        """
        out: list[Released[P]] = []
        while self._held and (not out or self._held[0].verdict != candidate):
            h = self._held.popleft()
            out.append(Released(h.payload, h.ts, self.modality))   # type: ignore[arg-type]
        self.early_releases += len(out)
        if not self._held:
            self._pending_since = None
        log.debug("camera=%s lookahead full: %d frames released before the change was decided",
                  self.camera_id, len(out))
        return out


def simulate_near_infrared(frame: np.ndarray, rng: np.random.Generator, noise_sigma: float = 5.0,
                           chroma_sigma: float = 1.0) -> np.ndarray:
    """Make a colour frame look like a day/night camera's IR-illuminated night frame.

    For tests and demos. What changes at night: the IR-cut filter drops, so the sensor sees
    near-infrared, where foliage and skin are bright and most dyes lose their colour difference
    (here: a red-weighted gray with a foliage boost); the camera's IR illuminator lights the
    centre more than the edges (radial falloff); the sensor runs at high gain (gamma, contrast,
    luma noise), and the encoder adds a little chroma noise to an otherwise gray picture.

    Args:
        frame: (H, W, 3) BGR uint8 daytime frame.
        rng: random generator (the noise is reproducible from its seed).
        noise_sigma: luma noise in gray levels; chroma_sigma: per-channel noise.

    Returns:
        (H, W, 3) BGR uint8 frame with (nearly) equal channels.
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ContractError(f"simulate_near_infrared needs an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
    b, g, r = (c.astype(np.float32) for c in cv2.split(frame))
    nir = 0.55 * r + 0.35 * g + 0.10 * b
    foliage = np.clip((g - np.maximum(r, b)) / 25.0, 0.0, 1.0)          # green-dominant pixels reflect NIR
    nir = nir + 90.0 * foliage
    h, w = nir.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rr = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    nir = nir * (1.15 - 0.45 * np.clip(rr, 0.0, 1.5))                    # illuminator hot spot, dark corners
    nir = 255.0 * np.clip(nir / 255.0, 0.0, 1.0) ** 1.3                  # high-gain tone curve
    nir = cv2.GaussianBlur(nir, (3, 3), 0.8)
    nir = nir + rng.normal(0.0, noise_sigma, nir.shape).astype(np.float32)
    out = np.repeat(nir[..., None], 3, axis=2)
    if chroma_sigma > 0:
        out = out + rng.normal(0.0, chroma_sigma, out.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)
