"""Day/night cameras end to end: real footage (vtest.avi) that turns near-infrared at dusk (or colour at dawn),
replayed with ``--camera ID:auto:PATH``; thermal cameras whose frames are sometimes unreadable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.bus import STREAM_CLIPS, MemoryBus
from pipeline.bus.messages import Clip
from pipeline.config.loader import from_dict
from pipeline.config.settings import XreidCfg
from pipeline.ingest.daynight import simulate_near_infrared
from pipeline.replay.embedded import Replay, ReplayOptions, parse_camera_spec
from pipeline.store.base import Store
from pipeline.store.modality_events import list_switches
from pipeline.store.tracks import TrackFilter, list_tracks
from tests.support.thermal_scenes import render_scene

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000.0
FPS = 10.0
SWITCH_FRAME = 60            # the footage changes look here (6.0 s)
SIZE = (576, 432)            # vtest downscaled: HOG still sees its people, the test stays fast


class ClipRecorder:
    """Downstream stage that takes every clip off the bus (as the re-ID stage would)."""

    def __init__(self, bus: MemoryBus) -> None:
        self.bus, self.clips = bus, []

    def poll(self) -> int:
        msgs = self.bus.read(STREAM_CLIPS, "rec", "c1", count=200)
        self.clips += [Clip.from_bytes(m.data) for m in msgs]
        self.bus.ack(STREAM_CLIPS, "rec", [m.id for m in msgs])
        return len(msgs)

    def drain(self) -> int:
        return self.poll()


def write_video(path, frames) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    for f in frames:
        writer.write(f)
    writer.release()


@pytest.fixture(scope="module")
def footage(vtest_path, tmp_path_factory):
    """120 real frames; dusk.avi turns near-infrared at frame 60 (with flicker around it), dawn.avi turns colour there."""
    cap = cv2.VideoCapture(str(vtest_path))
    day = []
    while len(day) < 2 * SWITCH_FRAME:
        ok, f = cap.read()
        assert ok
        day.append(cv2.resize(f, SIZE, interpolation=cv2.INTER_AREA))
    cap.release()
    rng = np.random.default_rng(11)
    night = [simulate_near_infrared(f, rng) for f in day]
    d = tmp_path_factory.mktemp("daynight")
    dusk = day[:SWITCH_FRAME] + night[SWITCH_FRAME:]
    for i in (40, 46, 52):            # dusk flicker: the camera tries infrared for a frame, then goes back
        dusk[i] = night[i]
    for i in (70, 84):                # ... and briefly shows colour again after the switch
        dusk[i] = day[i]
    write_video(d / "dusk.avi", dusk)
    write_video(d / "dawn.avi", night[:SWITCH_FRAME] + day[SWITCH_FRAME:])
    return d


def replay(spec: str, out_dir, cfg: XreidCfg | None = None, stride: int = 2):
    bus = MemoryBus()
    rec = ClipRecorder(bus)
    options = ReplayOptions(out_dir=out_dir, start_time=T0, progress=False, mot_out=True)
    summary = Replay(cfg or XreidCfg(), [parse_camera_spec(spec, stride=stride)], options, bus=bus,
                     downstream=[rec]).run()
    return summary, rec.clips


def replay_cli(spec: str, out_dir, config_yaml: str) -> dict:
    """The same through ``xreid replay`` (a subprocess), with a camera section in a YAML config."""
    config = out_dir / "site.yaml"
    out_dir.mkdir(parents=True, exist_ok=True)
    config.write_text(config_yaml)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "workers.cli", "replay", "--config", str(config), "--camera", spec,
                           "--stride", "2", "--start-time", "2023-11-14T22:13:20Z", "--mot-out", "--no-identities",
                           "--no-progress", "--out", str(out_dir)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out_dir / "summary.json").read_text())


@pytest.mark.parametrize(("video", "before", "after"), [("dusk.avi", "rgb", "ir"), ("dawn.avi", "ir", "rgb")])
def test_auto_camera_switches_once_and_tracks_do_not_cross(footage, tmp_path, video, before, after):
    if video == "dusk.avi":   # in process, clips read off the bus
        summary, clips = replay(f"gate:auto:{footage / video}", tmp_path)
    else:                     # the CLI, with the camera's day/night settings from a YAML config
        summary = replay_cli(f"gate:auto:{footage / video}", tmp_path,
                             "cameras:\n  - id: gate\n    source: unused.mp4\n    modality: auto\n"
                             "    daynight: {min_dwell_s: 1.5, min_hold_s: 30}\n")
        assert summary["config"]["cameras"][0]["daynight"]["min_dwell_s"] == 1.5
        clips = None
    cam = summary["cameras"]["gate"]
    assert cam["modality"] == "auto" and cam["modality_switches"] == 1

    with Store(tmp_path / "xreid.sqlite") as store:
        events = list_switches(store, "gate")
        tracks = list_tracks(store, TrackFilter(camera_id="gate"))
    assert [(e.from_modality, e.to_modality) for e in events] == [(None, before), (before, after)]
    switch_ts = events[1].ts
    assert abs(switch_ts - (T0 + SWITCH_FRAME / FPS)) <= 1.0          # found within 1 s of where it was made

    # no track spans the switch; each side carries its own modality; uids never repeat
    assert {t.modality for t in tracks if t.t_start >= switch_ts} == {after}
    assert {t.modality for t in tracks if t.t_end < switch_ts} == {before}
    assert not [t.track_uid for t in tracks if t.t_start < switch_ts <= t.t_end]
    assert len({t.track_uid for t in tracks}) == len(tracks)

    # every clip after the switch has the new modality, and no clip mixes the two
    if clips is not None:
        assert clips and {c.modality for c in clips if c.t_start >= switch_ts} == {after}
        assert {c.modality for c in clips if c.t_end < switch_ts} == {before}
        assert all(c.t_end < switch_ts or c.t_start >= switch_ts for c in clips)
        assert {c.track_uid for c in clips if c.t_start >= switch_ts}.isdisjoint(
            {c.track_uid for c in clips if c.t_end < switch_ts})

    # the MOT output keeps ids apart across the switch too
    mot = np.loadtxt(tmp_path / "gate.mot.txt", delimiter=",", ndmin=2)
    split = mot[:, 0] > SWITCH_FRAME + 10
    assert set(mot[split, 1].astype(int)).isdisjoint(set(mot[mot[:, 0] < SWITCH_FRAME - 10, 1].astype(int)))


def test_fixed_cameras_record_their_modality_once(footage, tmp_path):
    summary, _ = replay(f"door:rgb:{footage / 'dusk.avi'}", tmp_path, stride=6)
    assert summary["cameras"]["door"]["modality_switches"] == 0
    with Store(tmp_path / "xreid.sqlite") as store:
        events = list_switches(store, "door")
    assert [(e.from_modality, e.to_modality, e.ts) for e in events] == [(None, "rgb", T0)]


def test_thermal_camera_skips_unreadable_frames_and_keeps_running(tmp_path):
    """A 16-bit PNG sequence with some frames in a format no thermal camera sends."""
    scene = render_scene(40, seed=0, n_people=2, static_objects=False)
    seq = tmp_path / "seq"
    seq.mkdir()
    bad = {7, 8, 21}
    for t, frame in enumerate(scene.frames):
        raw = (29000 + frame.astype(np.uint16) * 12)
        if t in bad:                                   # 16-bit colour: wrong format for a thermal camera
            raw = np.repeat(raw[..., None], 3, axis=2)
        assert cv2.imwrite(str(seq / f"{t:04d}.png"), raw)
    cfg = from_dict(XreidCfg, {"detector": {"kind": "heat"}})
    summary, clips = replay(f"yard:ir:{seq}", tmp_path / "out", cfg=cfg, stride=1)
    cam = summary["cameras"]["yard"]
    assert cam["status"] == "ended" and cam["bad_frames"] == {"bad_format": len(bad)}
    assert cam["frames"] == 40 - len(bad) and cam["detections"] > 30
    assert clips and {c.modality for c in clips} == {"ir"}


def test_camera_worker_runs_an_auto_camera_from_config(footage):
    """The distributed camera worker (``xreid camera``) takes ``modality: auto`` from its YAML config."""
    from workers.camera import CameraWorker
    from workers.lifecycle import Shutdown

    cfg = from_dict(XreidCfg, {"cameras": [{"id": "gate", "source": str(footage / "dusk.avi"), "modality": "auto",
                                            "frame_stride": 3, "daynight": {"min_dwell_s": 1.5}}]})
    bus = MemoryBus()
    worker = CameraWorker(cfg, bus, Shutdown())
    assert worker.run() == 0
    state = worker.states[0]
    assert state.status.state == "ended" and state.modality == "ir" and state.modality_switches == 1
    assert [(e.from_modality, e.to_modality) for e in state.modality_events] == [(None, "rgb"), ("rgb", "ir")]
    assert worker.health().detail["cameras"]["gate"]["modality"] == "ir"
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in worker.samples()}
    assert samples[("xreid_camera_modality", (("camera", "gate"), ("modality", "ir")))] == 1.0
    assert samples[("xreid_modality_switches_total", (("camera", "gate"),))] == 1


def test_cli_cameras_take_day_night_and_thermal_settings_from_the_config():
    from pipeline.replay.embedded import with_camera_settings

    configured = from_dict(XreidCfg, {"cameras": [
        {"id": "gate", "source": "rtsp://cam/gate", "modality": "auto", "daynight": {"min_dwell_s": 4},
         "detector_ir": {"kind": "heat"}, "thermal": {"palette": "ironbow"}, "persistence": {"min_hits": 8}}]}).cameras
    (cam,) = with_camera_settings([parse_camera_spec("gate:auto:/data/gate.mp4")], configured)
    assert (cam.source, cam.daynight.min_dwell_s, cam.detector_ir.kind, cam.thermal.palette,
            cam.persistence.min_hits) == ("/data/gate.mp4", 4.0, "heat", "ironbow", 8)
    with pytest.raises(Exception, match="unknown modality 'night'"):
        parse_camera_spec("gate:night:/data/gate.mp4")
