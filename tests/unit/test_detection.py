from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.errors import ConfigError, ContractError, WeightsNotFound
from pipeline.config.loader import from_dict
from pipeline.config.settings import DetectorCfg, XreidCfg
from pipeline.detection import create_detector
from pipeline.detection.base import Detections, as_bgr
from pipeline.detection.yolo import YoloDetector
from pipeline.tracking.mot import read_mot


@pytest.fixture(scope="module")
def first_frame(vtest_path):
    cap = cv2.VideoCapture(str(vtest_path))
    ok, frame = cap.read()
    cap.release()
    assert ok
    return frame


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def test_detections_validate_their_arrays():
    with pytest.raises(ContractError, match=r"\(N, 4\) float32"):
        Detections(np.zeros((2, 3), np.float32), np.zeros(2, np.float32))
    with pytest.raises(ContractError, match=r"scores must be \(2,\)"):
        Detections(np.asarray([[0, 0, 1, 1], [0, 0, 2, 2]], np.float32), np.zeros(3, np.float32))
    with pytest.raises(ContractError, match="x2 > x1"):
        Detections(np.asarray([[5, 0, 1, 1]], np.float32), np.ones(1, np.float32))
    with pytest.raises(ContractError, match=r"\[0, 1\]"):
        Detections(np.asarray([[0, 0, 1, 1]], np.float32), np.full(1, 1.5, np.float32))
    d = Detections(np.asarray([[0, 0, 10, 20], [5, 5, 50, 60]], np.float32), np.asarray([0.2, 0.9], np.float32))
    assert len(d[d.scores > 0.5]) == 1 and d[d.scores > 0.5].scores[0] == pytest.approx(0.9)
    assert d.xywh[0].tolist() == [5, 10, 10, 20]
    assert len(d.clipped(30, 30)) == 2 and d.clipped(30, 30).xyxy[1].tolist() == [5, 5, 30, 30]
    assert len(Detections.empty()) == 0


def test_single_channel_frames_become_three_channels():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    bgr = as_bgr(gray)
    assert bgr.shape == (3, 4, 3) and np.all(bgr[..., 0] == gray) and np.all(bgr[..., 2] == gray)
    assert as_bgr(gray[..., None]).shape == (3, 4, 3)
    with pytest.raises(ContractError):
        as_bgr(np.zeros((3, 4), np.float32))


def test_detector_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="detector.hog_scale must be > 1"):
        from_dict(XreidCfg, {"detector": {"hog_scale": 1.0}})
    with pytest.raises(ConfigError, match="detector.kind"):
        from_dict(XreidCfg, {"detector": {"kind": "ssd"}})
    with pytest.raises(ConfigError, match="detector.hog_box_shrink"):
        from_dict(XreidCfg, {"detector": {"hog_box_shrink": [0.5, 1.5]}})
    with pytest.raises(ConfigError, match="detector.nms_iou"):
        from_dict(XreidCfg, {"detector": {"nms_iou": -0.1}})


def test_hog_finds_the_people_of_a_real_frame(first_frame, pets_gt_path):
    det = create_detector(DetectorCfg(kind="hog"))
    dets = det.detect(first_frame)
    gt = read_mot(pets_gt_path)
    gt = gt[gt[:, 0] == 1][:, 2:6]
    gt_xyxy = np.concatenate([gt[:, :2], gt[:, :2] + gt[:, 2:]], axis=1)
    assert len(dets) >= 3 and np.all((dets.scores >= DetectorCfg().conf) & (dets.scores <= 1.0))
    matched = (_iou(gt_xyxy, dets.xyxy.astype(np.float64)).max(axis=1) >= 0.4).sum()
    assert matched >= len(gt_xyxy) // 2, (matched, len(gt_xyxy))
    # a thermal-style single-channel frame goes through the same detector
    gray = det.detect(cv2.cvtColor(first_frame, cv2.COLOR_BGR2GRAY))
    assert len(gray) >= 2


def test_yolo_runs_a_randomly_initialised_model(first_frame):
    det = create_detector(DetectorCfg(kind="yolo", weights="yolo11n.yaml", conf=0.0, imgsz=320))
    assert isinstance(det, YoloDetector)
    dets = det.detect(cv2.cvtColor(first_frame, cv2.COLOR_BGR2GRAY))  # thermal input too
    assert isinstance(dets, Detections)  # validated boxes inside the frame, whatever random weights say
    if len(dets):
        assert dets.xyxy[:, 2].max() <= 768 and dets.xyxy[:, 3].max() <= 576


def test_yolo_offline_missing_weights_names_the_hog_fallback(monkeypatch, tmp_path):
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WeightsNotFound, match="--detector hog"):
        create_detector(DetectorCfg(kind="yolo", weights="yolo11n.pt"))
    with pytest.raises(WeightsNotFound, match="--detector hog"):
        create_detector(DetectorCfg(kind="yolo", weights=str(tmp_path / "models" / "mine.pt")))


def test_yolo_weights_file_that_is_not_a_model_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises((ConfigError, WeightsNotFound), match="bad.pt"):
        create_detector(DetectorCfg(kind="yolo", weights=str(bad)))
