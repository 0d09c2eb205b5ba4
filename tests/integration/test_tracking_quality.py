"""Tracking quality of the default camera side on real footage (PETS09-S2L1, frames 1-100).

The replay below is the ``xreid replay`` code path with built-in defaults (HOG on motion regions,
ByteTrack, fragment relinking); its MOT output is scored by motmetrics against the shared ground
truth. Floors are about quality, not time: speed lives in benchmarks/mot_vtest.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.config.settings import XreidCfg
from pipeline.detection.box_calibration import box_iou
from pipeline.replay.embedded import Replay, ReplayOptions, parse_camera_spec
from pipeline.tracking.mot import evaluate, read_mot

N_FRAMES = 100


@pytest.fixture(scope="module")
def default_run(vtest_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("tracking_quality")
    replay = Replay(XreidCfg(), [parse_camera_spec(f"cam1:rgb:{vtest_path}")],
                    ReplayOptions(out_dir=out, start_time=0.0, max_frames=N_FRAMES, mot_out=True, progress=False))
    summary = replay.run()
    return summary, read_mot(out / "cam1.mot.txt"), out


def test_default_camera_side_tracks_real_people_well(default_run, pets_gt_path):
    _, pred, _ = default_run
    m = evaluate(read_mot(pets_gt_path), pred, frames=(1, N_FRAMES))
    assert m["idf1"] >= 0.6, m
    assert m["mota"] >= 0.6, m
    assert m["num_switches"] <= 6, m
    assert m["precision"] >= 0.85, m


def test_boxes_are_tight_to_the_person(default_run, pets_gt_path):
    _, pred, _ = default_run
    gt = read_mot(pets_gt_path)
    ratios = []
    for f in range(1, N_FRAMES + 1):
        g, p = gt[gt[:, 0] == f, 2:6], pred[pred[:, 0] == f, 2:6]
        if len(g) and len(p):
            iou = box_iou(np.c_[g[:, :2], g[:, :2] + g[:, 2:]], np.c_[p[:, :2], p[:, :2] + p[:, 2:]])
            ratios += [(p[j, 2] / g[i, 2], p[j, 3] / g[i, 3]) for i, j in enumerate(iou.argmax(1)) if iou[i, j] >= 0.5]
    w, h = np.median(np.asarray(ratios), axis=0)
    # a raw HOG window would be ~2x wider and ~1.35x taller than the person
    assert 0.85 <= w <= 1.2 and 0.85 <= h <= 1.15, (w, h)


def test_relinks_are_counted_in_the_summary(default_run):
    summary, pred, out = default_run
    on_disk = json.loads((out / "summary.json").read_text())
    relinks = on_disk["cameras"]["cam1"]["relinks"]
    assert relinks == summary["cameras"]["cam1"]["relinks"] and relinks >= 0
    assert on_disk["config"]["tracker"]["relink"]["enabled"] is True
    # relinked ids are output ids: one id is never on two boxes of one frame
    for f in np.unique(pred[:, 0]):
        ids = pred[pred[:, 0] == f, 1]
        assert len(ids) == len(set(ids.tolist()))


def test_benchmark_runs_the_yolo_path_with_a_random_model(vtest_path, pets_gt_path, tmp_path):
    """``--detector yolo --weights`` rows go through the same replay and scoring (figures meaningless here)."""
    import importlib.util
    from dataclasses import replace
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "mot_vtest.py"
    spec = importlib.util.spec_from_file_location("mot_vtest", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    base = XreidCfg()
    base = replace(base, detector=replace(base.detector, kind="yolo", weights="yolo11n.yaml", imgsz=160, conf=0.0))
    rows = dict(bench.configurations(base, "yolo"))
    assert set(rows) == {"bytetrack", "botsort", "default"}  # the hog-only naive row is not run for yolo
    row = bench.run_config("default", rows["default"], vtest_path, 3, pets_gt_path, tmp_path)
    assert row["detector"] == "yolo yolo11n.yaml" and row["tracker"] == "bytetrack + relink" and row["frames"] == 3
    assert 0.0 <= row["recall"] <= 1.0 and row["e2e_fps"] > 0  # a random model may find nobody
    sheet = bench.contact_sheet(vtest_path, read_mot(row["mot_file"]), read_mot(pets_gt_path), tmp_path / "s.png", 3)
    assert sheet.is_file()


def test_a_camera_can_have_its_own_tracker_settings(vtest_path, tmp_path):
    from pipeline.config.loader import from_dict

    cfg = from_dict(XreidCfg, {"cameras": [
        {"id": "plain", "source": str(vtest_path)},
        {"id": "norelink", "source": str(vtest_path), "tracker": {"kind": "botsort", "relink": {"enabled": False}}},
    ]})
    replay = Replay(cfg, cfg.cameras, ReplayOptions(out_dir=tmp_path, max_frames=1, progress=False))
    procs = {c.cfg.id: c.proc for c in replay._cams}
    assert procs["plain"].relinker is not None and procs["plain"].tracker.cfg.kind == "bytetrack"
    assert procs["norelink"].relinker is None and procs["norelink"].tracker.cfg.kind == "botsort"
    assert procs["plain"].detector is not procs["norelink"].detector  # background models are per camera
    replay.run()
