"""Detector windows -> person boxes, and SVM margins -> tracker scores (box_calibration.py)."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import ConfigError
from pipeline.detection.box_calibration import BoxCalibration, box_iou, fit_box_calibration, margin_to_score


def test_calibration_scales_about_the_centre_then_shifts():
    cal = BoxCalibration(width=0.5, height=0.75, dx=0.1, dy=-0.05)
    out = cal.apply(np.array([[100, 200, 164, 328]], np.float32))  # a 64x128 window centred at (132, 264)
    # centre moves by 0.1*64 = 6.4 and -0.05*128 = -6.4; size becomes 32 x 96
    np.testing.assert_allclose(out, [[122.4, 209.6, 154.4, 305.6]], atol=1e-4)
    assert out.dtype == np.float32 and BoxCalibration().apply(np.zeros((0, 4))).shape == (0, 4)


def test_fit_recovers_a_known_calibration_from_matched_boxes():
    truth = BoxCalibration(width=0.52, height=0.73, dx=0.02, dy=-0.01)
    rng = np.random.default_rng(1)
    pairs = []
    for _ in range(30):
        x, y = rng.uniform(0, 600, 3), rng.uniform(0, 400, 3)
        s = rng.uniform(0.8, 1.6, 3)
        windows = np.stack([x, y, x + 64 * s, y + 128 * s], axis=1).astype(np.float32)
        pairs.append((windows, truth.apply(windows)))
    pairs.append((np.zeros((0, 4)), np.zeros((0, 4))))
    fitted, n = fit_box_calibration(pairs, start=BoxCalibration(width=0.5, height=0.75))
    assert n >= 60
    for got, want in ((fitted.width, 0.52), (fitted.height, 0.73), (fitted.dx, 0.02), (fitted.dy, -0.01)):
        assert got == pytest.approx(want, abs=1e-3)


def test_fit_without_any_match_is_a_clear_error():
    far = (np.array([[0, 0, 64, 128]], np.float32), np.array([[500, 400, 530, 480]], np.float32))
    with pytest.raises(ConfigError, match="no detector box matched"):
        fit_box_calibration([far], start=BoxCalibration())


def test_box_iou_of_identical_and_disjoint_boxes():
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [20, 20, 30, 30], [5, 0, 15, 10]]))
    np.testing.assert_allclose(iou, [[1.0, 0.0, 1 / 3]], atol=1e-9)


def test_margins_map_monotonically_onto_unit_scores():
    m = np.array([-1.0, 0.0, 0.5, 0.92, 2.0, 10.0])
    s = margin_to_score(m, margin_scale=1.33)
    assert s.dtype == np.float32 and s[0] == 0.0 and s[1] == 0.0
    assert np.all(np.diff(s[1:]) > 0) and np.all(s < 1.0)
    assert s[3] == pytest.approx(0.5, abs=0.01)  # the tracker's default high threshold sits at margin ~0.92
    with pytest.raises(ConfigError, match="margin_scale"):
        margin_to_score(m, 0.0)


@pytest.mark.parametrize("kwargs", [{"width": 0.0}, {"height": 2.5}, {"dx": 1.5}, {"dy": -2.0}])
def test_calibration_rejects_impossible_values(kwargs):
    with pytest.raises(ConfigError, match="box calibration"):
        BoxCalibration(**kwargs)
