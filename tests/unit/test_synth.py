"""Synthetic VVI data: determinism, the HITSZ-VCM layout, a real modality gap, scene videos."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.data.camera import render, sample_camera
from models.data.person import BG, draw_person, sample_person
from models.data.scenes import SceneCfg, write_scenes
from models.data.synth import SynthCfg, write_synth_vcm
from models.data.tracklet import IR, RGB
from models.data.vcm import load_vcm
from models.errors import ConfigError

SMALL = SynthCfg(num_identities=6, num_test_identities=2, rgb_cameras=2, ir_cameras=2, frames_per_tracklet=4,
                 height=48, width=24, presence=1.0, seed=5)


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a = write_synth_vcm(tmp_path / "a", SMALL)
    b = write_synth_vcm(tmp_path / "b", SMALL)
    c = write_synth_vcm(tmp_path / "c", dataclasses.replace(SMALL, seed=6))
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_synthetic_tree_loads_with_the_hitsz_vcm_reader(tmp_path):
    root = write_synth_vcm(tmp_path / "s", SMALL)
    ds = load_vcm(root, min_seq_len=1, num_cameras=SMALL.num_cameras)
    assert ds.num_train_pids == 4
    assert {t.camid for t in ds.train if t.modality == RGB} == {0, 1}
    assert {t.camid for t in ds.train if t.modality == IR} == {2, 3}
    assert {t.pid for t in ds.ir_query} == {5, 6} and all(t.modality == IR for t in ds.ir_query)
    assert all(t.modality == RGB for t in ds.rgb_gallery)         # held-out identities, never trained on
    assert all(len(t.frames) == 4 for t in ds.train)
    img = cv2.imread(ds.ir_query[0].frames[0])
    assert img.shape == (48, 24, 3)
    meta = json.loads((root / "synth.json").read_text())
    assert meta["config"]["seed"] == 5 and len(meta["identities"]) == 6


def test_thermal_frames_are_grey_and_carry_no_colour():
    person = sample_person(np.random.default_rng(0))
    recoloured = dataclasses.replace(person, top_rgb=(255, 0, 0), top_rgb2=(0, 255, 0), bottom_rgb=(0, 0, 255),
                                     bottom_rgb2=(255, 255, 0), skin_rgb=(10, 10, 10), hair_rgb=(200, 0, 200),
                                     shoes_rgb=(0, 200, 200), bag_rgb=(90, 30, 0), hat_rgb=(0, 90, 30))
    ir_cam = sample_camera(np.random.default_rng(1), IR)
    rgb_cam = sample_camera(np.random.default_rng(2), RGB)
    ir_a = render(person, ir_cam, 0.7, "front", 64, 32, np.random.default_rng(9))
    ir_b = render(recoloured, ir_cam, 0.7, "front", 64, 32, np.random.default_rng(9))
    assert np.array_equal(ir_a[..., 0], ir_a[..., 1]) and np.array_equal(ir_a[..., 1], ir_a[..., 2])
    assert np.array_equal(ir_a, ir_b)                  # changing every colour changes no thermal pixel
    rgb_a = render(person, rgb_cam, 0.7, "front", 64, 32, np.random.default_rng(9))
    rgb_b = render(recoloured, rgb_cam, 0.7, "front", 64, 32, np.random.default_rng(9))
    assert np.abs(rgb_a.astype(int) - rgb_b.astype(int)).mean() > 5


def test_shape_and_clothing_thickness_survive_in_thermal():
    person = sample_person(np.random.default_rng(3))
    thin = dataclasses.replace(person, top_thickness=0.0, long_sleeves=True, top_pattern="solid")
    thick = dataclasses.replace(thin, top_thickness=1.0)
    cam = dataclasses.replace(sample_camera(np.random.default_rng(1), IR), noise=0.0)
    label, _ = draw_person(thin, 0.0, "front", 128, 64)
    torso = label == 3
    hot = render(thin, cam, 0.0, "front", 128, 64, np.random.default_rng(0))[..., 0]
    cold = render(thick, cam, 0.0, "front", 128, 64, np.random.default_rng(0))[..., 0]
    assert hot[torso].mean() > cold[torso].mean() + 20
    assert hot[torso].mean() > hot[label == BG].mean() + 60      # people are warmer than the background
    taller = dataclasses.replace(thin, height=0.93)
    shorter = dataclasses.replace(thin, height=0.76)
    rows = [np.flatnonzero((draw_person(p, 0.0, "front", 128, 64)[0] != BG).any(1)) for p in (taller, shorter)]
    assert rows[0][0] < rows[1][0] - 10                           # body height is visible in every modality


def test_bad_synth_config_is_rejected():
    with pytest.raises(ConfigError, match="test identities"):
        SynthCfg(num_identities=4, num_test_identities=4)


def test_scene_videos_have_mot_ground_truth_with_global_ids(tmp_path):
    cfg = SceneCfg(num_people=2, width=160, height=120, person_height=(60, 90), num_frames=40, fps=5, seed=1)
    root = write_scenes(tmp_path / "scenes", cfg)
    meta = json.loads((root / "scenes.json").read_text())
    assert [c["modality"] for c in meta["cameras"]] == ["rgb", "ir"] and meta["identities"] == [1, 2]
    ids_per_cam = []
    for cam in meta["cameras"]:
        cap = cv2.VideoCapture(str(root / cam["video"]))
        n, first = 0, None
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            first = frame if first is None else first
            n += 1
        cap.release()
        assert n == 40 and first.shape == (120, 160, 3)
        rows = np.loadtxt(root / cam["gt"], delimiter=",", ndmin=2)
        assert rows.shape[1] == 9 and len(rows) == cam["gt_boxes"] > 0
        assert rows[:, 0].min() >= 1 and rows[:, 0].max() <= 40
        assert (rows[:, 4] > 0).all() and (rows[:, 5] > 0).all() and ((rows[:, 8] > 0) & (rows[:, 8] <= 1)).all()
        ids_per_cam.append(set(rows[:, 1].astype(int)))
    assert ids_per_cam[0] == ids_per_cam[1] == {1, 2}            # the same people cross both cameras


def test_cli_size_is_height_by_width_for_scenes_and_crops(tmp_path, capsys):
    from workers.cli import main

    assert main(["synth", "--scenes", "--out", str(tmp_path / "s"), "--identities", "1", "--frames", "10",
                 "--size", "120x160"]) == 0
    meta = json.loads(next((tmp_path / "s").rglob("scenes.json")).read_text())
    assert (meta["height"], meta["width"]) == (120, 160)
    assert main(["synth", "--out", str(tmp_path / "d"), "--identities", "3", "--test-identities", "1",
                 "--rgb-cameras", "1", "--ir-cameras", "1", "--frames", "2", "--presence", "1", "--size", "48x24"]) == 0
    crop = next(p for p in sorted((tmp_path / "d").rglob("*")) if p.suffix in (".jpg", ".png"))
    assert cv2.imread(str(crop)).shape[:2] == (48, 24)
    assert main(["synth", "--out", str(tmp_path / "bad"), "--size", "48-24"]) == 2
    assert "--size must look like HxW" in capsys.readouterr().err
