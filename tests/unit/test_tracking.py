from __future__ import annotations

import numpy as np
import pytest

from models.errors import ConfigError
from pipeline.bus import STREAM_CLIPS, MemoryBus
from pipeline.bus.messages import Clip
from pipeline.camera.processor import CameraProcessor
from pipeline.config.loader import from_dict
from pipeline.config.settings import ClipCfg, DetectorCfg, TrackerCfg, XreidCfg
from pipeline.detection import create_detector
from pipeline.detection.base import Detections
from pipeline.ingest.sources import FileSource
from pipeline.tracking.mot import evaluate, read_mot
from pipeline.tracking.tracker import Tracker

N_FRAMES = 50


@pytest.fixture(scope="module")
def pets_run(vtest_path):
    """HOG + ByteTrack over the first frames of PETS09-S2L1, as the camera worker runs them."""
    bus = MemoryBus()
    proc = CameraProcessor("cam1", "rgb", create_detector(DetectorCfg()), TrackerCfg(),
                           ClipCfg(segment_seconds=3.0), bus, run_id="test")
    rows = []
    with FileSource(vtest_path, start_time=0.0, max_frames=N_FRAMES) as src:
        while (frame := src.read()) is not None:
            r = proc.process(frame)
            for tid, (x1, y1, x2, y2) in zip(r.tracked.track_ids.tolist(), r.tracked.xyxy.tolist(), strict=True):
                rows.append([frame.index + 1, tid, x1, y1, x2 - x1, y2 - y1, 1, -1, -1, -1])
    proc.flush()
    return proc, bus, np.asarray(rows, np.float64)


def test_tracks_on_real_footage_match_ground_truth(pets_run, pets_gt_path):
    proc, _, pred = pets_run
    assert proc.stats.frames == N_FRAMES and len(pred) > 3 * N_FRAMES
    m = evaluate(read_mot(pets_gt_path), pred, frames=(1, N_FRAMES))
    # HOG is weak, but the people it finds must keep their ids
    assert m["idf1"] >= 0.5 and m["mota"] >= 0.3, m
    assert m["num_switches"] <= 4, m


def test_walking_person_keeps_one_id_across_consecutive_frames(pets_run):
    _, _, pred = pets_run
    ids, counts = np.unique(pred[:, 1], return_counts=True)
    long_id = ids[np.argmax(counts)]
    frames = pred[pred[:, 1] == long_id, 0]
    assert len(frames) >= 0.8 * N_FRAMES  # someone was followed through nearly the whole segment
    boxes = pred[pred[:, 1] == long_id, 2:4]
    steps = np.linalg.norm(np.diff(boxes, axis=0), axis=1)
    assert steps.max() < 25  # one person, not an id hopping between people


def test_tracks_become_clips_on_the_bus(pets_run):
    proc, bus, _ = pets_run
    clips = [Clip.from_bytes(m.data) for m in bus.read(STREAM_CLIPS, "t", "c", count=1000)]
    assert clips and len(clips) == proc.stats.clips
    assert {c.track_uid.split("-")[0] for c in clips} == {"cam1"}
    assert len({c.clip_id for c in clips}) == len(clips)
    assert all(c.seq_len == ClipCfg().seq_len for c in clips)
    assert any(c.segment >= 1 for c in clips)  # 5 s of footage, 3 s segments


def _moving(n: int, kind: str = "bytetrack", gap: tuple[int, int] | None = None):
    tracker = Tracker(TrackerCfg(kind=kind, track_buffer=5))
    outs = []
    for i in range(n):
        if gap and gap[0] <= i < gap[1]:
            dets = Detections.empty()
        else:
            dets = Detections(np.asarray([[10 + 3 * i, 50, 40 + 3 * i, 130], [300, 40, 330, 120]], np.float32),
                              np.asarray([0.9, 0.8], np.float32))
        outs.append(tracker.update(dets, np.zeros((240, 480, 3), np.uint8)))
    return tracker, outs


@pytest.mark.parametrize("kind", ["bytetrack", "botsort"])
def test_tracker_keeps_ids_of_moving_boxes(kind):
    _, outs = _moving(15, kind)
    assert all(len(o) == 2 for o in outs[1:])
    assert {tuple(sorted(o.track_ids.tolist())) for o in outs[1:]} == {(1, 2)}
    last = outs[-1]
    assert last.det_index.tolist() == sorted(last.det_index.tolist()) or set(last.det_index.tolist()) == {0, 1}


def test_tracker_reports_tracks_it_drops():
    tracker, outs = _moving(20, gap=(5, 20))
    ended = [tid for o in outs for tid in o.ended]
    assert sorted(ended) == [1, 2]
    assert tracker.active_ids() == set()


def test_tracker_config_errors():
    with pytest.raises(ConfigError, match="tracker.track_low_thresh"):
        from_dict(XreidCfg, {"tracker": {"track_low_thresh": 0.7, "track_high_thresh": 0.5}})
    with pytest.raises(ConfigError, match="tracker.kind"):
        from_dict(XreidCfg, {"tracker": {"kind": "deepsort"}})
    with pytest.raises(ConfigError, match="tracker.track_buffer"):
        from_dict(XreidCfg, {"tracker": {"track_buffer": 0}})
