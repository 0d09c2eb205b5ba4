"""The behaviour gate: warm static objects and glints never become tracks; walkers do, and stay."""

from __future__ import annotations

import numpy as np

from pipeline.config.settings import PersistenceCfg
from pipeline.tracking.persistence import BehaviourGate
from pipeline.tracking.tracker import TrackedBoxes


def frame(*tracks: tuple[int, float, float]) -> TrackedBoxes:
    """Tracks as (id, centre x, centre y), boxes 20 x 60."""
    ids = np.array([t[0] for t in tracks], np.int64)
    xyxy = np.array([[x - 10, y - 30, x + 10, y + 30] for _, x, y in tracks], np.float32).reshape(-1, 4)
    return TrackedBoxes(ids, xyxy, np.arange(len(tracks), dtype=np.int64))


def test_walker_is_confirmed_static_warm_object_never_is():
    gate = BehaviourGate(PersistenceCfg())
    passed = {1: 0, 2: 0}
    for t in range(40):
        out = gate.update(t / 10, frame((1, 50 + 3 * t, 100), (2, 200 + (t % 2) * 0.5, 100)))  # walker, radiator
        for tid in out.track_ids.tolist():
            passed[tid] += 1
    assert passed[2] == 0 and passed[1] >= 30
    assert gate.confirmed_ids == {1} and gate.suppressed_boxes >= 40


def test_a_confirmed_person_who_stops_stays_a_person():
    gate = BehaviourGate(PersistenceCfg())
    for t in range(10):
        gate.update(t / 10, frame((1, 50 + 4 * t, 100)))
    out = [len(gate.update(1 + t / 10, frame((1, 90, 100)))) for t in range(30)]
    assert out == [1] * 30


def test_a_flickering_reflection_is_not_confirmed():
    gate = BehaviourGate(PersistenceCfg())
    seen = 0
    for t in range(60):
        if t % 3 == 0:   # seen every third frame, drifting
            seen += len(gate.update(t / 10, frame((5, 50 + t, 100))))
        else:
            gate.update(t / 10, frame())
    assert seen == 0


def test_an_id_refound_after_a_long_gap_is_judged_afresh():
    gate = BehaviourGate(PersistenceCfg())
    gate.update(0.0, frame((1, 10, 100)))        # a glimpse, then the id is lost for a long time
    for t in range(1, 30):
        gate.update(t / 10, frame())
    passed = sum(len(gate.update(3 + t / 10, frame((1, 200 + 4 * t, 100)))) for t in range(20))
    assert passed >= 14                           # the person the id now follows is confirmed


def test_ended_tracks_are_forgotten_and_memory_is_bounded():
    gate = BehaviourGate(PersistenceCfg(max_pending_s=1.0))
    for t in range(100):
        gate.update(t / 10, frame((t, 100.0, 100.0)))      # a new static id every frame
    assert len(gate._pending) <= 12 and gate.expired > 0
    gate.update(11.0, TrackedBoxes(np.zeros(0, np.int64), np.zeros((0, 4), np.float32), np.zeros(0, np.int64),
                                   ended=(99,)))
    assert 99 not in gate._pending
