"""Thermal detection + tracking quality on synthetic thermal scenes with ground truth.

Two scene sources:
* ``synth``: ``xreid synth --scenes`` (models/data/scenes.py), its thermal camera of several seeds;
* ``warm``: scenes the thermal tests render (tests/support/thermal_scenes.py): a warm static radiator
  and a warm person-shaped post, fleeting glints, sensor noise; sent as white-hot video, as
  ironbow video, and as 16-bit raw PNG sequences.

Each is replayed with the offline heat detector (``detector.kind: heat``), with the behaviour
filter (``persistence.apply_to: ir``, the default) and without it (``none``), and scored by
``xreid eval-tracking --json`` (py-motmetrics, IoU 0.5). Prints a table; writes
``bench-out/thermal_tracking.json``.

    .venv/bin/python benchmarks/thermal_tracking.py [--frames 160] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.data.scenes import SceneCfg, write_scenes  # noqa: E402
from pipeline.config.loader import from_dict  # noqa: E402
from pipeline.config.settings import XreidCfg  # noqa: E402
from pipeline.replay.embedded import Replay, ReplayOptions  # noqa: E402
from tests.support.thermal_scenes import render_scene, write_scene  # noqa: E402


def replay(source: Path, out: Path, persistence: str, palette: str = "white_hot") -> tuple[Path, float]:
    cfg = from_dict(XreidCfg, {"detector": {"kind": "heat"}, "cameras": [
        {"id": "therm", "source": str(source), "modality": "ir", "thermal": {"palette": palette},
         "persistence": {"apply_to": persistence}}]})
    summary = Replay(cfg, cfg.cameras, ReplayOptions(out_dir=out, start_time=0.0, mot_out=True, progress=False)).run()
    return out / "therm.mot.txt", float(summary["cameras"]["therm"]["fps"]["pipeline"] or 0.0)


def eval_tracking(gt: Path, pred: Path) -> dict:
    """``xreid eval-tracking --json`` as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "workers.cli", "eval-tracking", "--gt", str(gt), "--pred", str(pred),
                           "--json"], capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=160)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "thermal_tracking.json"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        jobs: list[tuple[str, str, Path, Path, str]] = []   # (scene, input, source, gt, palette)
        for seed in args.seeds:
            sdir = write_scenes(root / f"synth{seed}", SceneCfg(num_people=4, num_frames=args.frames, seed=seed))
            cam = sdir / "cam1-ir"
            jobs.append((f"synth seed {seed}", "8-bit white-hot video", cam / "video.avi", cam / "gt" / "gt.txt",
                         "white_hot"))
            scene = render_scene(args.frames, seed=seed, n_people=4)
            wdir = root / f"warm{seed}"
            wdir.mkdir()
            for palette in ("white_hot", "ironbow"):
                video = wdir / f"{palette}.avi"
                write_scene(scene, video, wdir / "gt.txt", palette=palette)
                jobs.append((f"warm seed {seed}", f"8-bit {palette} video", video, wdir / "gt.txt", palette))
            seq = wdir / "raw16"
            seq.mkdir()
            for t, frame in enumerate(scene.frames):   # radiometric counts: gray 0..255 = 10..40 C in centi-kelvin
                raw = np.round(((10.0 + frame * (30.0 / 255.0)) + 273.15) * 100).astype(np.uint16)
                cv2.imwrite(str(seq / f"{t:05d}.png"), raw)
            jobs.append((f"warm seed {seed}", "16-bit PNG, AGC", seq, wdir / "gt.txt", "white_hot"))
        for i, (scene, source_kind, source, gt, palette) in enumerate(jobs):
            for persistence in ("ir", "none"):
                t0 = time.perf_counter()
                pred, fps = replay(source, root / f"out{i}-{persistence}", persistence, palette)
                m = eval_tracking(gt, pred)
                rows.append({"scene": scene, "input": source_kind, "behaviour_filter": persistence == "ir",
                             "idf1": m["idf1"], "mota": m["mota"], "id_switches": int(m["num_switches"]),
                             "recall": m["recall"], "precision": m["precision"],
                             "false_positives": int(m["num_false_positives"]), "gt_boxes": int(m["num_objects"]),
                             "pipeline_fps": fps, "wall_s": time.perf_counter() - t0})
    print(f"{'scene':<14}{'input':<24}{'filter':<7}{'IDF1':>6}{'MOTA':>7}{'IDsw':>5}{'recall':>7}{'prec':>6}"
          f"{'FP':>5}{'fps':>7}")
    for r in rows:
        print(f"{r['scene']:<14}{r['input']:<24}{'on' if r['behaviour_filter'] else 'off':<7}{r['idf1']:>6.3f}"
              f"{r['mota']:>7.3f}{r['id_switches']:>5}{r['recall']:>7.3f}{r['precision']:>6.3f}"
              f"{r['false_positives']:>5}{r['pipeline_fps']:>7.0f}")
    for flt in (True, False):
        sel = [r for r in rows if r["behaviour_filter"] == flt]
        print(f"mean ({'filter on' if flt else 'filter off'}): IDF1 {np.mean([r['idf1'] for r in sel]):.3f}  "
              f"MOTA {np.mean([r['mota'] for r in sel]):.3f}  ID switches {sum(r['id_switches'] for r in sel)}  "
              f"FP {sum(r['false_positives'] for r in sel)}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "thermal_tracking", "frames": args.frames, "seeds": args.seeds,
                               "rows": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
