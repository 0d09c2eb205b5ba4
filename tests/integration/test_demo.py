from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from pipeline.ingest.pseudo_thermal import PseudoThermal, estimate_background
from pipeline.tracking.mot import read_mot

ROOT = Path(__file__).resolve().parents[2]


def _frames(path: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = [cap.read()[1] for _ in range(n)]
    cap.release()
    return out


def test_pseudo_thermal_is_single_channel_people_warm_background_cold(vtest_path, pets_gt_path):
    renderer = PseudoThermal(estimate_background(vtest_path, samples=15), seed=3)
    frames = _frames(vtest_path, 30)
    heat = renderer.render(frames[29])
    assert heat.shape == (576, 768) and heat.dtype == np.uint8
    gt = read_mot(pets_gt_path)
    boxes = gt[(gt[:, 0] == 30) & (gt[:, 6] != 0)][:, 2:6].astype(int)
    person = np.zeros(heat.shape, bool)
    for x, y, w, h in boxes:
        person[max(y, 0):y + h, max(x, 0):x + w] = True
    # people (walking: all of them move in this scene) are far warmer than the scene around them
    assert heat[person].mean() > heat[~person].mean() + 40
    assert heat[~person].mean() < 110
    again = PseudoThermal(renderer.background, seed=3).render(frames[29])
    assert np.array_equal(heat, again)  # deterministic: the noise is seeded


def test_demo_replays_real_rgb_and_synthetic_ir(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XREID_DETECTOR__HOG_UPSCALE": "1.0"}
    proc = subprocess.run([sys.executable, "-m", "workers.cli", "demo", "--max-frames", "8", "--no-progress",
                           "--no-identities", "--out", str(out)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "SYNTHETIC" in proc.stdout and str(out.resolve()) in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    cams = summary["cameras"]
    assert cams["cam1"]["modality"] == "rgb" and cams["cam2"]["modality"] == "ir"
    assert cams["cam1"]["frames"] == cams["cam2"]["frames"] == 8
    assert cams["cam2"]["source"].endswith(".avi") and "pseudo-thermal" in cams["cam2"]["source"]
    assert cams["cam1"]["detections"] > 0 and cams["cam2"]["detections"] > 0


def test_demo_cameras_share_the_recording_start_and_the_summary_scores_identities(tmp_path, vtest_path):
    out = tmp_path / "out"
    # 1 s clip segments: tracks of a 4 s replay get several clips, so the matcher sees genuine pairs too
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XREID_DETECTOR__HOG_UPSCALE": "1.0",
           "XREID_CLIPS__SEGMENT_SECONDS": "1.0"}
    proc = subprocess.run([sys.executable, "-m", "workers.cli", "demo", "--max-frames", "40", "--no-progress",
                           "--out", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    tracks = [json.loads(line) for line in (out / "tracks.jsonl").read_text().splitlines()]
    start = vtest_path.stat().st_mtime
    for cam in ("cam1", "cam2"):   # the thermal copy is the same moment: both start at the recording's start
        spans = [(t["t_start"], t["t_end"]) for t in tracks if t["camera_id"] == cam]
        assert spans and all(start - 1e-3 <= t0 <= t1 <= start + 4.0 for t0, t1 in spans), (cam, start, spans)
    acc = json.loads((out / "summary.json").read_text())["identity_accuracy"]
    assert acc["scored"] and acc["ground_truth"].endswith("gt-0001-0400.txt")
    assert acc["labelled"] >= 4 and acc["people"] >= 2 and acc["tracks"] >= acc["labelled"]
    for scope in ("all_pairs", "cross_camera"):
        s = acc[scope]
        assert 0.0 <= s["precision"] <= 1.0 and 0.0 <= s["recall"] <= 1.0
        assert s["tp"] + s["fn"] > 0, f"{scope}: the same people on both cameras make true pairs"
    assert "identity accuracy vs PETS09 ground truth: pairwise F1" in proc.stdout
    # the embedded chain calibrates: people side by side are impostor pairs, later clips genuine ones
    cal = subprocess.run([sys.executable, "-m", "workers.cli", "calibration", "--store", str(out / "xreid.sqlite"),
                          "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert cal.returncode == 0, cal.stderr
    rows = {r["pair"]: r for r in json.loads(cal.stdout)}
    for pair in ("rgb_rgb", "ir_ir"):
        assert rows[pair]["n_impostor"] > 0 and rows[pair]["n_genuine"] > 0, rows[pair]
    # new tracks are scored against the other camera's tracks (the rgb_ir cohort); too few yet to place it
    assert rows["rgb_ir"]["n_impostor"] > 0 and rows["rgb_ir"]["n_genuine"] == 0
    assert (rows["rgb_ir"]["source"], rows["rgb_ir"]["threshold"]) == ("default", 1.0), rows["rgb_ir"]
