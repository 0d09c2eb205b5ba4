"""HITSZ-VCM and BUPTCampus readers on small fake trees in the published layouts."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.data.bupt import load_bupt
from models.data.tracklet import IR, RGB
from models.data.vcm import frame_relpath, load_vcm
from models.errors import ContractError

# (modality 1=IR/2=RGB, pid, camera 1-based, frames)
VCM_TRAIN = [(2, 3, 1, 12), (1, 3, 7, 12), (2, 3, 2, 12), (2, 8, 4, 12), (1, 8, 9, 13), (1, 8, 9, 5)]
VCM_TEST = [(1, 20, 7, 12), (2, 20, 1, 12), (2, 20, 2, 12), (1, 21, 8, 12), (2, 21, 3, 14)]
VCM_QUERY_ROWS = [1, 4]          # 1-based rows of the test track file: the infrared tracklets


def _jpg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((16, 8, 3), 128, np.uint8))


def make_vcm_tree(root: Path) -> Path:
    (root / "info").mkdir(parents=True)
    for split, rows in (("train", VCM_TRAIN), ("test", VCM_TEST)):
        names, tracks, counter = [], [], {}
        for k, (m, pid, cam, n) in enumerate(rows):
            start = len(names) + 1
            for _ in range(n):
                key = (pid, m, cam)
                counter[key] = counter.get(key, 0) + 1
                name = f"{pid:04d}M{m}D{cam}T{k + 1}F{counter[key]}.jpg"
                names.append(name)
                _jpg(root / split.capitalize() / frame_relpath(name))
            tracks.append(f"{m} {start} {len(names)} {pid} {cam}")
        (root / "info" / f"{split}_name.txt").write_text("\n".join(names) + "\n")
        (root / "info" / f"track_{split}_info.txt").write_text("\n".join(tracks) + "\n")
    (root / "info" / "query_IDX.txt").write_text(" ".join(map(str, VCM_QUERY_ROWS)) + "\n")
    return root


def test_vcm_frame_names_decode_to_the_published_paths():
    assert frame_relpath("0001M2D3T1F1.jpg") == "0001/rgb/D3/1.jpg"
    assert frame_relpath("0123M1D12T4F250.jpg") == "0123/ir/D12/250.jpg"


def test_vcm_reader_counts_modalities_cameras_and_protocol(tmp_path):
    ds = load_vcm(make_vcm_tree(tmp_path / "VCM"))
    # the 5-frame training tracklet is below the reference's min_seq_len=12
    assert len(ds.train) == 5
    assert ds.num_train_pids == 2 and {t.pid for t in ds.train} == {0, 1}
    assert sum(t.modality == RGB for t in ds.train) == 3 and sum(t.modality == IR for t in ds.train) == 2
    assert sorted(t.camid for t in ds.train) == [0, 1, 3, 6, 8]              # 0-based cameras
    assert [(t.pid, t.modality, t.camid) for t in ds.ir_query] == [(20, IR, 6), (21, IR, 7)]
    assert [(t.pid, t.modality) for t in ds.rgb_gallery] == [(20, RGB), (20, RGB), (21, RGB)]
    assert ds.rgb_query == ds.rgb_gallery and ds.ir_gallery == ds.ir_query   # visible→infrared swaps roles
    t = ds.rgb_gallery[2]
    assert len(t.frames) == 14 and t.frames[0].endswith("Test/0021/rgb/D3/1.jpg") and Path(t.frames[-1]).is_file()


def test_vcm_min_seq_len_is_configurable(tmp_path):
    ds = load_vcm(make_vcm_tree(tmp_path / "VCM"), min_seq_len=1)
    assert len(ds.train) == 6


def test_vcm_wrong_root_names_the_expected_layout(tmp_path):
    (tmp_path / "info").mkdir()
    with pytest.raises(ContractError, match=r"not a HITSZ-VCM tree: missing info/train_name.txt.*expected layout"):
        load_vcm(tmp_path)


def test_vcm_missing_frames_are_reported(tmp_path):
    root = make_vcm_tree(tmp_path / "VCM")
    (root / "Train" / "0003" / "rgb" / "D1" / "1.jpg").unlink()
    with pytest.raises(ContractError, match="frame missing"):
        load_vcm(root)


def test_vcm_malformed_track_line_is_reported(tmp_path):
    root = make_vcm_tree(tmp_path / "VCM")
    (root / "info" / "track_train_info.txt").write_text("2 1 twelve 3 1\n")
    with pytest.raises(ContractError, match="track_train_info.txt:1"):
        load_vcm(root)


# (pid, camera, tracklet, ir frames, rgb frames)
BUPT_TRAIN = [("11", "LS3", "1", 5, 5), ("11", "G25", "2", 4, 4), ("12", "CQ1", "1", 3, 3), ("13", "W4", "1", 1, 3)]
BUPT_TEST = [("40", "TSG1", "1", 4, 4), ("40", "TSG2", "1", 3, 3), ("41", "LS3", "1", 5, 5)]


def make_bupt_tree(root: Path) -> Path:
    paths: dict = {}
    for pid, cam, tr, n_ir, n_rgb in BUPT_TRAIN + BUPT_TEST:
        for mod, n in (("IR", n_ir), ("RGB", n_rgb)):
            rel = [f"{pid}/{mod}/{cam}/{tr}/{i}.jpg" for i in range(n)]
            for r in rel:
                _jpg(root / "DATA" / r)
            paths.setdefault(pid, {}).setdefault(mod, {}).setdefault(cam, {})[tr] = rel
    (root / "data_paths.json").write_text(json.dumps(paths))
    (root / "train.txt").write_text("".join(f"{p} RGB/IR {c} {t}\n" for p, c, t, _, _ in BUPT_TRAIN))
    (root / "train_auxiliary.txt").write_text("11 RGB/IR LS3 1\n")
    (root / "query.txt").write_text("40 IR TSG1 1\n40 RGB TSG1 1\n41 IR LS3 1\n")
    (root / "gallery.txt").write_text("40 RGB TSG2 1\n40 IR TSG2 1\n41 RGB LS3 1\n41 IR LS3 1\n")
    return root


def test_bupt_reader_pairs_training_tracklets_and_splits_queries(tmp_path):
    ds = load_bupt(make_bupt_tree(tmp_path / "BUPT"))
    # pid 13's infrared tracklet has a single frame: the reference drops the pair
    assert len(ds.train) == 6 and ds.num_train_pids == 2 and ds.num_cameras == 6
    assert sum(t.modality == IR for t in ds.train) == 3
    assert sorted({t.camid for t in ds.train}) == [0, 1, 2]                   # LS3, G25, CQ1
    assert [(t.pid, t.camid) for t in ds.ir_query] == [(40, 4), (41, 0)]
    assert [(t.pid, t.camid) for t in ds.rgb_query] == [(40, 4)]
    assert [(t.pid, t.camid) for t in ds.rgb_gallery] == [(40, 5), (41, 0)]
    assert [(t.pid, t.camid) for t in ds.ir_gallery] == [(40, 5), (41, 0)]
    assert all(Path(f).is_file() for t in ds.train for f in t.frames)


def test_bupt_wrong_root_names_the_expected_layout(tmp_path):
    with pytest.raises(ContractError, match=r"not a BUPTCampus tree: missing DATA/.*expected layout"):
        load_bupt(tmp_path)


def test_bupt_unknown_camera_is_reported(tmp_path):
    root = make_bupt_tree(tmp_path / "BUPT")
    (root / "query.txt").write_text("40 IR XYZ 1\n")
    with pytest.raises(ContractError, match="unknown camera 'XYZ'"):
        load_bupt(root)
