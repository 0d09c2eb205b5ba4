"""Background-model search regions and static-box rejection (pipeline/detection/motion.py)."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import ConfigError, ContractError
from pipeline.config.loader import from_dict
from pipeline.config.settings import DetectorCfg, MotionCfg, XreidCfg
from pipeline.detection import create_detector
from pipeline.detection.hog_motion import MotionHogDetector
from pipeline.detection.motion import ForegroundModel, merge_overlapping

H, W = 240, 320


def _scene(t: int) -> np.ndarray:
    """A textured static background with a 20x50 'person' walking right 4 px per frame."""
    rng = np.random.default_rng(0)
    frame = (rng.integers(60, 90, (H, W, 3))).astype(np.uint8)
    x = 40 + 4 * t
    frame[100:150, x:x + 20] = (30, 30, 200)
    return frame


def test_search_regions_follow_what_moves_after_warm_up():
    model = ForegroundModel(MotionCfg(warmup_frames=3, min_blob_area_px=50))
    for t in range(3):
        model.update(_scene(t))
        assert model.regions().tolist() == [[0, 0, W, H]]  # not warm yet: search everything
    for t in range(3, 25):
        model.update(_scene(t))
    regions = model.regions()
    assert len(regions) == 1
    x = 40 + 4 * 24
    x1, y1, x2, y2 = regions[0]
    assert x1 <= x and x2 >= x + 20 and y1 <= 100 and y2 >= 150  # holds the person, with margin
    assert (x2 - x1) * (y2 - y1) < 0.5 * W * H                   # and is far from the whole frame


def test_fraction_separates_moving_boxes_from_static_ones():
    model = ForegroundModel(MotionCfg(warmup_frames=3))
    for t in range(20):
        model.update(_scene(t))
    x = 40 + 4 * 19
    moving, static = model.fraction(np.array([[x, 100, x + 20, 150], [250, 10, 270, 60]], np.float32))
    assert moving > 0.5 and static < 0.05
    assert model.fraction(np.zeros((0, 4), np.float32)).shape == (0,)


def test_full_frame_every_searches_the_whole_frame_periodically():
    model = ForegroundModel(MotionCfg(warmup_frames=1, full_frame_every=5))
    whole = []
    for t in range(12):
        model.update(_scene(t))
        whole.append(model.regions().tolist() == [[0, 0, W, H]])
    assert whole[5 - 1] and whole[10 - 1] and not whole[7 - 1]


def test_overlapping_regions_merge_and_separate_ones_stay():
    boxes = np.array([[0, 0, 10, 10], [5, 5, 20, 20], [50, 50, 60, 60]], np.float32)
    assert merge_overlapping(boxes).tolist() == [[0, 0, 20, 20], [50, 50, 60, 60]]
    assert merge_overlapping(np.zeros((0, 4), np.float32)).shape == (0, 4)


def test_foreground_model_rejects_non_images():
    with pytest.raises(ContractError):
        ForegroundModel(MotionCfg()).update(np.zeros((4, 4), np.float32))


def test_hog_default_is_the_motion_detector_and_full_frame_stays_available():
    assert isinstance(create_detector(DetectorCfg()), MotionHogDetector)
    full = create_detector(DetectorCfg(motion=MotionCfg(enabled=False)))
    assert not isinstance(full, MotionHogDetector)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("scale", 0.0, "detector.motion.scale"),
    ("scale", 1.5, "detector.motion.scale"),
    ("history", 0, "detector.motion.history"),
    ("var_threshold", -1, "detector.motion.var_threshold"),
    ("dilate_px", 0, "detector.motion.dilate_px"),
    ("min_region_px", 0, "detector.motion.min_region_px"),
    ("min_blob_area_px", -1, "detector.motion.min_blob_area_px"),
    ("warmup_frames", -1, "detector.motion.warmup_frames"),
    ("full_frame_every", -2, "detector.motion.full_frame_every"),
    ("roi_margin", -0.1, "detector.motion.roi_margin"),
    ("min_foreground", 1.5, "detector.motion.min_foreground"),
])
def test_motion_config_errors_name_the_key(key, value, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(XreidCfg, {"detector": {"motion": {key: value}}})


def test_motion_config_rejects_unknown_keys_and_bad_margin_scale():
    with pytest.raises(ConfigError, match="roi_margins"):
        from_dict(XreidCfg, {"detector": {"motion": {"roi_margins": 0.3}}})
    with pytest.raises(ConfigError, match="detector.hog_margin_scale"):
        from_dict(XreidCfg, {"detector": {"hog_margin_scale": 0}})


@pytest.mark.parametrize("search_tracks", [True, False])
def test_tracks_are_searched_even_when_nothing_moves(search_tracks):
    """A person who stops walking fades into the background; the tracker's boxes keep them searched."""
    det = MotionHogDetector(DetectorCfg(motion=MotionCfg(warmup_frames=2, search_tracks=search_tracks)))
    still = _scene(0)
    for _ in range(4):
        det.detect(still)
    assert det.searched_fraction == 0.0  # warm, and nothing moves: nothing to search
    det.attend(np.array([[100, 80, 130, 170]], np.float32))
    det.detect(still)
    assert bool(det.searched_fraction > 0.0) is search_tracks
    det.reset()
    det.detect(still)
    assert det.searched_fraction == 1.0  # a reset model is cold again: whole frame
