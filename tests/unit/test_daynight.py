"""Day/night classification and the modality gate, on real footage (vtest.avi) turned near-infrared."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.errors import ConfigError, ContractError
from pipeline.config.loader import from_dict
from pipeline.config.settings import DayNightCfg
from pipeline.ingest.daynight import (
    ColourStats,
    ModalityGate,
    ModalitySwitch,
    Released,
    classify,
    colour_stats,
    simulate_near_infrared,
)

FPS = 10.0
T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def day_frames(vtest_path) -> list[np.ndarray]:
    """60 real colour frames of vtest.avi, downscaled to 384x288."""
    cap = cv2.VideoCapture(str(vtest_path))
    frames = []
    while len(frames) < 60:
        ok, f = cap.read()
        assert ok
        frames.append(cv2.resize(f, (384, 288), interpolation=cv2.INTER_AREA))
    cap.release()
    return frames


@pytest.fixture(scope="module")
def night_frames(day_frames) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [simulate_near_infrared(f, rng) for f in day_frames]


def run_gate(gate: ModalityGate, frames: list[np.ndarray]) -> tuple[list[ModalitySwitch], list[Released]]:
    switches, released = [], []
    items = []
    for i, f in enumerate(frames):
        items += gate.push(i, T0 + i / FPS, f)
    items += gate.flush()
    for it in items:
        (switches if isinstance(it, ModalitySwitch) else released).append(it)
    return switches, released


def modality_runs(released: list[Released]) -> list[tuple[str, int]]:
    runs: list[tuple[str, int]] = []
    for r in released:
        if runs and runs[-1][0] == r.modality:
            runs[-1] = (r.modality, runs[-1][1] + 1)
        else:
            runs.append((r.modality, 1))
    return runs


def test_colour_frames_are_rgb_and_near_infrared_frames_are_ir(day_frames, night_frames):
    cfg = DayNightCfg()
    for day, night in zip(day_frames[::10], night_frames[::10], strict=True):
        assert classify(colour_stats(day), cfg) == "rgb"
        assert classify(colour_stats(night), cfg) == "ir"
    gray = cv2.cvtColor(day_frames[0], cv2.COLOR_BGR2GRAY)
    assert colour_stats(gray) == ColourStats(0.0, 1.0)
    assert classify(colour_stats(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)), cfg) == "ir"


def test_in_between_evidence_is_undecided():
    cfg = DayNightCfg()
    assert classify(ColourStats(0.11, 0.96), cfg) is None          # inside both hysteresis bands
    assert classify(ColourStats(0.05, 0.90), cfg) == "rgb"         # channels disagree: colour
    assert classify(ColourStats(0.05, 0.99), cfg) == "ir"


def test_colour_stats_rejects_non_images():
    with pytest.raises(ContractError):
        colour_stats(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ContractError):
        colour_stats(np.zeros((10, 10, 4), np.uint8))


def test_dusk_switch_is_found_once_dated_to_its_frame_and_never_mixes(day_frames, night_frames):
    gate = ModalityGate("cam1", DayNightCfg())
    switches, released = run_gate(gate, day_frames + night_frames)
    assert [(s.from_modality, s.to_modality) for s in switches] == [(None, "rgb"), ("rgb", "ir")]
    made_at = T0 + 60 / FPS
    assert abs(switches[1].ts - made_at) <= 1.0
    assert [r.payload for r in released] == list(range(120))               # every frame, in order
    assert modality_runs(released) == [("rgb", 60), ("ir", 60)]            # one run each, no mixing
    assert all(r.modality == "ir" for r in released if r.ts >= switches[1].ts)


def test_dawn_switch_ir_to_rgb(day_frames, night_frames):
    gate = ModalityGate("cam1", DayNightCfg())
    switches, released = run_gate(gate, night_frames + day_frames)
    assert [(s.from_modality, s.to_modality) for s in switches] == [(None, "ir"), ("ir", "rgb")]
    assert abs(switches[1].ts - (T0 + 6.0)) <= 1.0
    assert modality_runs(released) == [("ir", 60), ("rgb", 60)]


def test_dusk_flicker_does_not_flap(day_frames, night_frames):
    # at dusk the camera toggles: single night frames in the day part, single day frames after the switch
    frames = list(day_frames) + list(night_frames)
    for i in (30, 41, 47, 52, 55, 57):
        frames[i] = night_frames[i]
    for i in (63, 66, 90, 100):
        frames[i] = day_frames[i - 60]
    gate = ModalityGate("cam1", DayNightCfg())
    switches, released = run_gate(gate, frames)
    assert len([s for s in switches if s.from_modality is not None]) == 1
    assert switches[1].ts == pytest.approx(T0 + 6.0)   # the colour frames at 63 and 66 do not cancel it
    assert len(released) == 120 and len(modality_runs(released)) == 2


def test_a_pending_change_is_abandoned_when_the_old_look_wins_the_vote(day_frames, night_frames):
    frames = day_frames[:30] + [night_frames[30], day_frames[31], night_frames[32]] + day_frames[33:]
    gate = ModalityGate("cam1", DayNightCfg())
    held_max = 0
    released = []
    for i, f in enumerate(frames):
        released += [r for r in gate.push(i, T0 + i / FPS, f) if isinstance(r, Released)]
        held_max = max(held_max, i + 1 - len(released))
    assert {r.modality for r in released} == {"rgb"} and len(released) == len(frames)
    assert held_max <= 4                                 # held only until the old look outvoted the change


def test_change_shorter_than_the_dwell_is_not_a_switch(day_frames, night_frames):
    frames = day_frames[:40] + night_frames[:15] + day_frames[40:]    # 1.5 s of IR look < 2 s dwell
    switches, released = run_gate(ModalityGate("cam1", DayNightCfg()), frames)
    assert [s.from_modality for s in switches] == [None]
    assert {r.modality for r in released} == {"rgb"} and len(released) == len(frames)


def test_hold_time_blocks_a_quick_switch_back(day_frames, night_frames):
    frames = day_frames[:30] + night_frames[:40] + day_frames[:50]
    held = run_gate(ModalityGate("cam1", DayNightCfg(min_dwell_s=1.0, min_hold_s=10.0)), frames)[0]
    free = run_gate(ModalityGate("cam1", DayNightCfg(min_dwell_s=1.0, min_hold_s=1.0)), frames)[0]
    assert [s.to_modality for s in held] == ["rgb", "ir"]
    assert [s.to_modality for s in free] == ["rgb", "ir", "rgb"]


def test_full_lookahead_releases_early_without_losing_or_reordering_frames(day_frames, night_frames):
    cfg = DayNightCfg(min_dwell_s=2.0, max_lookahead_frames=8)
    gate = ModalityGate("cam1", cfg)
    switches, released = run_gate(gate, day_frames + night_frames)
    assert [r.payload for r in released] == list(range(120))
    assert len(modality_runs(released)) == 2
    assert gate.early_releases > 0
    assert switches[-1].to_modality == "ir" and switches[-1].ts > T0 + 6.0   # dated later: memory was capped


def test_daynight_config_is_validated():
    assert from_dict(DayNightCfg, {"min_dwell_s": 1}).min_dwell_s == 1.0
    with pytest.raises(ConfigError, match="hysteresis"):
        DayNightCfg(ir_max_saturation=0.2, rgb_min_saturation=0.1)
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(DayNightCfg, {"dwell": 1})


def test_switch_event_contract():
    with pytest.raises(ContractError):
        ModalitySwitch("cam", T0, "ir", "ir", 0.0, 1.0)
    with pytest.raises(ContractError):
        ModalitySwitch("cam", T0, None, "thermal", 0.0, 1.0)
