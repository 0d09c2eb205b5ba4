"""benchmarks/vvi_synth.py: parallel runs, reuse of finished runs, and the paired table against the baseline."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "vvi_synth.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("vvi_synth", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(r1_ir: float, map_ir: float, r1_rgb: float, map_rgb: float) -> dict:
    return {"train_seconds": 60.0, "ir_to_rgb": {"rank1": r1_ir, "mAP": map_ir},
            "rgb_to_ir": {"rank1": r1_rgb, "mAP": map_rgb}}


def test_paired_table_differences_and_seeds_ahead():
    bench = _bench_module()
    results = {
        "baseline": {"1": _row(0.10, 0.20, 0.10, 0.20), "2": _row(0.20, 0.20, 0.10, 0.30)},
        "xreid": {"1": _row(0.12, 0.19, 0.10, 0.25), "2": _row(0.26, 0.25, 0.12, 0.30), "3": _row(0.9, 0.9, 0.9, 0.9)},
    }
    text, summary, paired = bench.tables(results, ["baseline", "xreid"])
    cell = paired["xreid"]["ir_to_rgb_rank1"]              # +2 and +6 points; seed 3 has no baseline
    assert abs(cell["mean"] - 4.0) < 1e-9 and abs(cell["std"] - 2.0) < 1e-9 and cell["seeds_ahead"] == 2
    assert paired["xreid"]["ir_to_rgb_mAP"]["seeds_ahead"] == 1       # -1 and +5
    assert paired["xreid"]["rgb_to_ir_rank1"]["seeds_ahead"] == 1     # a tie (0) is not ahead
    assert abs(summary["xreid"]["rgb_to_ir_mAP"]["mean"] - 100 * (0.25 + 0.30 + 0.9) / 3) < 1e-9
    assert "vs baseline" in text and "[2/2]" in text


def test_benchmark_trains_in_parallel_then_reuses_finished_runs(tmp_path):
    cfg = yaml.safe_load((ROOT / "configs" / "train-tiny-ci.yaml").read_text())
    cfg["model"]["overrides"]["camera_num"] = 6          # the benchmark's world has 3 + 3 cameras
    cfg["data"]["num_cameras"] = 6
    cfg["threads"] = 1
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "bench" / "vvi.json"
    cmd = [sys.executable, str(BENCH), "--config", str(tmp_path / "cfg.yaml"), "--data", str(tmp_path / "data"),
           "--identities", "8", "--test-identities", "3", "--tracklets-per-camera", "1", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    first = subprocess.run(cmd + ["--seeds", "1", "--jobs", "2"], capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "4 runs to train, 0 finished runs reused" in first.stdout
    report = json.loads(out.read_text())
    assert set(report["runs"]) == {"baseline", "xreid", "xreid-no-cpc", "xreid-no-mii"}
    assert set(report["minus_baseline_points"]) == {"xreid", "xreid-no-cpc", "xreid-no-mii"}
    assert (tmp_path / "bench" / "vvi" / "runs" / "seed1" / "xreid" / "model.pt").is_file()

    second = subprocess.run(cmd + ["--seeds", "1", "2", "--only", "baseline"], capture_output=True, text=True,
                            env=env, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "1 runs to train, 4 finished runs reused" in second.stdout
    report = json.loads(out.read_text())
    assert set(report["runs"]["baseline"]) == {"1", "2"} and set(report["runs"]["xreid"]) == {"1"}
    assert report["minus_baseline_points"]["xreid"]["ir_to_rgb_rank1"]["seeds_ahead"] in (0, 1)
