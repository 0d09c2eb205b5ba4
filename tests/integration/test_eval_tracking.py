from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.errors import ContractError
from pipeline.tracking.mot import MotBox, evaluate, format_rows, parse_frame_range, read_mot

ROOT = Path(__file__).resolve().parents[2]


def _write(path: Path, rows: np.ndarray) -> Path:
    path.write_text("".join(",".join(f"{v:g}" for v in r) + "\n" for r in rows))
    return path


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "workers.cli", "eval-tracking", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_perfect_and_degraded_predictions(pets_gt_path):
    gt = read_mot(pets_gt_path)
    assert evaluate(gt, gt)["idf1"] == pytest.approx(1.0)
    swapped = gt.copy()
    first_id = int(gt[0, 1])
    swapped[(swapped[:, 1] == first_id) & (swapped[:, 0] > 200), 1] = 999  # one identity switch
    m = evaluate(gt, swapped)
    assert m["num_switches"] == 1 and m["idf1"] < 1.0 and m["mota"] < 1.0 and m["recall"] == pytest.approx(1.0)
    half = gt[gt[:, 0] <= 200]
    scored = gt[:, 6] != 0
    m = evaluate(gt, half, frames=(1, 400))
    assert m["recall"] == pytest.approx((scored & (gt[:, 0] <= 200)).sum() / scored.sum())
    assert m["precision"] == pytest.approx(1.0)
    assert evaluate(gt, half, frames=(1, 200))["recall"] == pytest.approx(1.0)


def test_zero_marked_ground_truth_is_an_ignore_region(pets_gt_path):
    gt = read_mot(pets_gt_path)
    zero = gt[:, 6] == 0
    assert zero.any()
    only_scored = gt[~zero]
    m = evaluate(gt, only_scored)
    assert m["recall"] == pytest.approx(1.0) and m["num_objects"] == len(only_scored)
    kept = evaluate(gt, only_scored, keep_zero_marked=True)
    assert kept["num_objects"] == len(gt) and kept["recall"] < 1.0


def test_mot_rows_round_trip(tmp_path):
    text = format_rows([MotBox(3, 7, (10.0, 20.0, 40.0, 100.0), 0.5)])
    p = tmp_path / "p.txt"
    p.write_text(text)
    assert read_mot(p)[0, :7].tolist() == [3, 7, 10, 20, 30, 80, 0.5]


def test_bad_files_and_ranges(tmp_path):
    with pytest.raises(ContractError, match="not found"):
        read_mot(tmp_path / "nope.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("1,2,3,4,5,6\nframe,id,x\n")
    with pytest.raises(ContractError, match="bad.txt:2"):
        read_mot(bad)
    with pytest.raises(ContractError, match="FIRST-LAST"):
        parse_frame_range("1:400")
    assert parse_frame_range("1-400") == (1, 400)


def test_cli_table_and_json(pets_gt_path, tmp_path):
    gt = read_mot(pets_gt_path)
    pred = gt.copy()
    pred[:, 2] += 4.0  # a few pixels off: still matched
    pred_path = _write(tmp_path / "pred.txt", pred)
    table = _cli("--gt", str(pets_gt_path), "--pred", str(pred_path), "--frames", "1-100")
    assert table.returncode == 0, table.stderr
    assert "idf1" in table.stdout and "num_switches" in table.stdout and "mota" in table.stdout
    as_json = _cli("--gt", str(pets_gt_path), "--pred", str(pred_path), "--json")
    metrics = json.loads(as_json.stdout)
    assert metrics["idf1"] > 0.9 and metrics["num_frames"] == 400 and 0 < metrics["motp"] < 0.5


def test_cli_bad_input_is_one_line(tmp_path, pets_gt_path):
    proc = _cli("--gt", str(pets_gt_path), "--pred", str(tmp_path / "missing.txt"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("xreid eval-tracking: error: MOT file not found")
    proc = _cli("--gt", str(pets_gt_path), "--pred", str(pets_gt_path), "--frames", "400-1")
    assert proc.returncode == 2 and "FIRST <= LAST" in proc.stderr and "Traceback" not in proc.stderr
