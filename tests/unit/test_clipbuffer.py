from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.errors import ConfigError
from pipeline.bus.messages import Clip
from pipeline.camera.clipbuffer import ClipBuffer, crop_quality, select_evenly
from pipeline.config.loader import from_dict
from pipeline.config.settings import ClipCfg, XreidCfg
from pipeline.detection.base import Detections
from pipeline.ingest.sources import Frame
from pipeline.tracking.tracker import TrackedBoxes

W, H = 320, 240


def _frame(i: int, fps: float = 10.0, gray: bool = False) -> Frame:
    rng = np.random.default_rng(i)
    shape = (H, W) if gray else (H, W, 3)
    return Frame(rng.integers(0, 255, shape, dtype=np.uint8), 1000.0 + i / fps, i)


def _step(buf: ClipBuffer, i: int, boxes: dict[int, tuple[float, float, float, float]], fps: float = 10.0,
          gray: bool = False) -> list[Clip]:
    ids = list(boxes)
    xyxy = np.asarray([boxes[k] for k in ids], np.float32).reshape(-1, 4)
    dets = Detections(xyxy, np.full(len(ids), 0.9, np.float32))
    tracked = TrackedBoxes(np.asarray(ids, np.int64), xyxy.copy(), np.arange(len(ids), dtype=np.int64))
    return buf.add(_frame(i, fps, gray), dets, tracked)


def _buffer(**kw) -> ClipBuffer:
    return ClipBuffer(ClipCfg(**kw), "cam1", "rgb", lambda tid: f"cam1-run-{tid}")


def test_clip_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="clips.max_candidates .* must be >= clips.seq_len"):
        from_dict(XreidCfg, {"clips": {"seq_len": 16, "max_candidates": 8}})
    with pytest.raises(ConfigError, match="clips.max_open_tracks must be > 0"):
        from_dict(XreidCfg, {"clips": {"max_open_tracks": 0}})
    with pytest.raises(ConfigError, match="clips.jpeg_quality"):
        from_dict(XreidCfg, {"clips": {"jpeg_quality": 0}})


def test_track_end_emits_one_valid_clip_of_seq_len_crops():
    buf = _buffer(seq_len=4, max_candidates=8, min_track_frames=3)
    for i in range(12):
        assert _step(buf, i, {7: (10 + i, 20, 50 + i, 120)}) == []
    clips = buf.end([7])
    assert len(clips) == 1
    clip = Clip.from_bytes(clips[0].to_bytes())
    assert clip.clip_id == "cam1:cam1-run-7:0" and clip.seq_len == 4 and clip.n_seen == 12
    assert clip.t_start == pytest.approx(1000.0) and clip.t_end == pytest.approx(1001.1)
    assert np.all(np.diff(clip.frame_ts) > 0)  # distinct crops, in time order
    crop = cv2.imdecode(np.frombuffer(clip.frames[0], np.uint8), cv2.IMREAD_UNCHANGED)
    assert crop.shape[0] == ClipCfg().crop_height
    (summary,) = buf.pop_summaries()
    assert summary.ended and summary.n_frames == 12 and summary.n_clips == 1 and summary.thumbnail
    assert buf.open_track_ids == set() and buf.bytes_held == 0


def test_short_tracks_never_become_clips():
    buf = _buffer(min_track_frames=5)
    for i in range(4):
        _step(buf, i, {1: (10, 20, 50, 120)})
    assert buf.end([1]) == [] and buf.pop_summaries() == []
    assert buf.stats.tracks_short == 1


def test_long_tracks_emit_a_clip_every_segment_seconds():
    buf = _buffer(seq_len=4, segment_seconds=2.0, min_track_frames=3)
    clips = []
    for i in range(55):  # 5.5 s at 10 fps
        clips += _step(buf, i, {3: (100, 50, 140, 150)})
    assert [c.segment for c in clips] == [0, 1]
    assert clips[0].t_end < clips[1].t_start  # segments do not overlap
    clips += buf.flush()
    assert [c.segment for c in clips] == [0, 1, 2]
    summaries = buf.pop_summaries()
    assert [s.ended for s in summaries] == [False, False, True] and summaries[-1].n_clips == 3


def test_memory_is_bounded_whatever_the_scene():
    buf = _buffer(seq_len=4, max_candidates=6, max_open_tracks=3, crop_height=64, segment_seconds=1e6)
    for i in range(200):
        # five people, each a huge box: crops are capped at crop_height on the longer side
        _step(buf, i, {k: (k * 60, 0, k * 60 + 59, H) for k in range(5)})
        assert len(buf.open_track_ids) <= 3
        assert buf.bytes_held <= 3 * 6 * 64 * 64 * 3
    assert buf.stats.tracks_dropped == 2
    assert all(len(tr.candidates) == 6 for tr in buf._open.values())


def test_thinning_keeps_time_coverage():
    buf = _buffer(seq_len=4, max_candidates=8, segment_seconds=1e6)
    for i in range(100):
        _step(buf, i, {1: (10, 20, 50, 120)})
    ts = np.asarray([c.ts for c in buf._open[1].candidates])
    assert ts[0] < 1001.5 and ts[-1] == pytest.approx(1009.9)  # the whole span is still covered
    assert np.diff(ts).max() < 3.0


def test_quality_penalises_border_cut_occluded_and_small_boxes():
    dets = Detections(np.asarray([[100, 50, 140, 178],    # clear, 128 px tall
                                  [0, 50, 40, 178],       # cut by the left border
                                  [200, 50, 240, 178],    # half covered by the next box
                                  [220, 50, 260, 178],
                                  [100, 190, 110, 222]],  # small
                                 np.float32), np.full(5, 0.9, np.float32))
    q = crop_quality(dets, W, H)
    assert q[0] == pytest.approx(0.9)
    assert q[1] < q[0] / 2 and q[2] < q[0] and q[4] < q[0] / 2


def test_selection_takes_the_best_crop_of_each_time_bin():
    ts = np.arange(8, dtype=np.float64)
    quality = np.asarray([0.1, 0.9, 0.2, 0.8, 0.9, 0.1, 0.3, 0.7], np.float32)
    assert select_evenly(ts, quality, 4).tolist() == [1, 3, 4, 7]
    assert select_evenly(ts[:2], quality[:2], 4).tolist() == [0, 0, 1, 1]  # too few: repeat, in order


def test_thermal_single_channel_crops():
    buf = ClipBuffer(ClipCfg(seq_len=2, max_candidates=4, min_track_frames=2), "cam2", "ir", lambda t: f"u{t}")
    for i in range(3):
        _step(buf, i, {1: (10, 20, 50, 120)}, gray=True)
    (clip,) = buf.flush()
    assert clip.modality == "ir"
    assert cv2.imdecode(np.frombuffer(clip.frames[0], np.uint8), cv2.IMREAD_UNCHANGED).ndim == 2
