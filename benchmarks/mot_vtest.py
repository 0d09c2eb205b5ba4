"""Tracking quality and speed on real footage: vtest.avi (PETS09-S2L1 view 1), frames 1-400.

Every configuration runs through the real ``Replay`` (the code path of ``xreid replay``: file
source, detector, tracker, relinker, clip buffer, bus, store) with ``mot_out``; its track file is
scored by ``xreid eval-tracking`` (py-motmetrics, IoU 0.5) against the shared ground truth. Rows:

* ``naive``: HOG on the whole frame upscaled 1.6x, ByteTrack, no relinking (the README's reference
  used a greedy IoU tracker, which the project does not ship; its published figures are printed
  under the table for comparison);
* ``bytetrack`` / ``botsort``: the default detector (HOG on motion regions) with each tracker, no
  relinking;
* ``default``: the shipped configuration (``configs/default.yaml`` over the built-in defaults, as
  ``xreid replay`` reads it; or ``--config``): the same detector, ByteTrack, fragment relinking.

Detector-only fps is decode + detect alone over the same frames (one pass per detector config);
end-to-end fps is frames / wall time of the whole replay. The machine is shared: both are printed
with the load average. Writes ``bench-out/mot_vtest.json`` and a contact sheet of the default
run (sampled frames, ground truth thin green, tracks coloured by id) to
``bench-out/mot_vtest_contact.png``.

    .venv/bin/python benchmarks/mot_vtest.py
    .venv/bin/python benchmarks/mot_vtest.py --detector yolo --weights PATH/yolo11n.pt
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.config.loader import from_dict, load_config, to_dict  # noqa: E402
from pipeline.config.settings import DetectorCfg, XreidCfg  # noqa: E402
from pipeline.detection import create_detector  # noqa: E402
from pipeline.detection.box_calibration import box_iou  # noqa: E402
from pipeline.ingest.footage import default_cache_dir, ensure_vtest  # noqa: E402
from pipeline.ingest.sources import FileSource  # noqa: E402
from pipeline.replay.embedded import Replay, ReplayOptions, parse_camera_spec  # noqa: E402
from pipeline.tracking.mot import read_mot  # noqa: E402

GT_PATH = ROOT / "tests" / "data" / "pets09-s2l1" / "gt-0001-0400.txt"
README_REFERENCE = {"detector": "hog full 1.6x", "tracker": "greedy IoU (README)", "idf1": 0.36, "mota": 0.58,
                    "num_switches": 51, "recall": 0.83, "precision": 0.79, "e2e_fps": 3.0}
COLUMNS = (("config", 10), ("detector", 16), ("tracker", 20), ("IDF1", 6), ("MOTA", 6), ("MOTP", 6), ("IDsw", 5),
           ("recall", 7), ("prec", 6), ("box w/h", 10), ("relinks", 8), ("det fps", 8), ("e2e fps", 8))


def configurations(base: XreidCfg, detector: str) -> list[tuple[str, XreidCfg]]:
    """(name, config) rows of the table, all derived from ``base`` (the shipped defaults)."""
    no_relink = replace(base.tracker, relink=replace(base.tracker.relink, enabled=False))
    rows = []
    if detector == "hog":
        naive_det = replace(base.detector, kind="hog", hog_upscale=1.6,
                            motion=replace(base.detector.motion, enabled=False))
        rows.append(("naive", replace(base, detector=naive_det, tracker=replace(no_relink, kind="bytetrack"))))
    rows.append(("bytetrack", replace(base, tracker=replace(no_relink, kind="bytetrack"))))
    rows.append(("botsort", replace(base, tracker=replace(no_relink, kind="botsort"))))
    rows.append(("default", base))
    return rows


def describe_detector(cfg: DetectorCfg) -> str:
    if cfg.kind == "hog":
        where = "motion" if cfg.motion.enabled else "full"
        return f"hog {where} {cfg.hog_upscale:g}x"
    return f"{cfg.kind} {Path(cfg.weights).name}"


def describe_tracker(cfg: XreidCfg) -> str:
    return cfg.tracker.kind + (" + relink" if cfg.tracker.relink.enabled else "")


def detector_only_fps(cfg: DetectorCfg, video: Path, frames: int) -> float:
    """Frames/s of decode + detect alone, with a fresh detector."""
    detector = create_detector(cfg)
    n = 0
    t0 = time.perf_counter()
    with FileSource(video, start_time=0.0, max_frames=frames) as src:
        while (frame := src.read()) is not None:
            detector.detect(frame.image)
            n += 1
    return n / (time.perf_counter() - t0)


def eval_tracking(gt: Path, pred: Path, frames: int) -> dict[str, float]:
    """Scores by the ``xreid eval-tracking`` command itself (one subprocess)."""
    cmd = [sys.executable, "-m", "workers.cli", "eval-tracking", "--gt", str(gt), "--pred", str(pred),
           "--frames", f"1-{frames}", "--json"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"eval-tracking failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout)


def box_extent_ratio(gt: np.ndarray, pred: np.ndarray, frames: int) -> tuple[float, float]:
    """Median width and height of predicted boxes over their ground-truth match (1.0 = tight)."""
    ratios = []
    for f in range(1, frames + 1):
        g, p = gt[gt[:, 0] == f, 2:6], pred[pred[:, 0] == f, 2:6]
        if len(g) == 0 or len(p) == 0:
            continue
        iou = box_iou(np.c_[g[:, :2], g[:, :2] + g[:, 2:]], np.c_[p[:, :2], p[:, :2] + p[:, 2:]])
        for i, j in enumerate(iou.argmax(axis=1)):
            if iou[i, j] >= 0.5:
                ratios.append((p[j, 2] / g[i, 2], p[j, 3] / g[i, 3]))
    if not ratios:
        return float("nan"), float("nan")
    w, h = np.median(np.asarray(ratios), axis=0)
    return float(w), float(h)


def run_config(name: str, cfg: XreidCfg, video: Path, frames: int, gt_path: Path, out_dir: Path) -> dict[str, Any]:
    """One replay of ``frames`` frames under ``cfg``, scored; returns the table row."""
    run_dir = out_dir / name
    cam = parse_camera_spec(f"cam1:rgb:{video}")
    replay = Replay(cfg, [cam], ReplayOptions(out_dir=run_dir, start_time=0.0, max_frames=frames, mot_out=True,
                                              progress=False))
    cpu0 = time.process_time()
    summary = replay.run()
    cpu_s = time.process_time() - cpu0
    mot_path = Path(summary["cameras"]["cam1"]["outputs"]["mot"])
    metrics = eval_tracking(gt_path, mot_path, frames)
    pred = read_mot(mot_path)
    w, h = box_extent_ratio(read_mot(gt_path), pred, frames)
    cam_stats = summary["cameras"]["cam1"]
    return {"config": name, "detector": describe_detector(cfg.detector), "tracker": describe_tracker(cfg),
            **{k: metrics[k] for k in ("idf1", "mota", "motp", "num_switches", "recall", "precision")},
            "box_w_over_gt": w, "box_h_over_gt": h, "relinks": cam_stats.get("relinks", 0),
            "tracks": len(np.unique(pred[:, 1])) if len(pred) else 0, "frames": cam_stats["frames"],
            "e2e_fps": summary["fps"], "e2e_fps_cpu_time": cam_stats["frames"] / cpu_s if cpu_s > 0 else None,
            "mot_file": str(mot_path), "summary": str(run_dir / "summary.json")}


def contact_sheet(video: Path, pred: np.ndarray, gt: np.ndarray, out: Path, frames: int, n: int = 9) -> Path:
    """Sampled frames with ground truth (thin green) and tracks (thick, colour and label by id)."""
    picks = set(np.linspace(10, frames, n).astype(int).tolist())
    tiles = []
    cap = cv2.VideoCapture(str(video))
    for f in range(1, frames + 1):
        ok, img = cap.read()
        if not ok:
            break
        if f not in picks:
            continue
        for x, y, w, h in gt[gt[:, 0] == f, 2:6].astype(int):
            cv2.rectangle(img, (x, y), (x + w, y + h), (0, 200, 0), 1)
        for tid, x, y, w, h in pred[pred[:, 0] == f][:, 1:6].astype(int):
            colour = tuple(int(c) for c in cv2.applyColorMap(np.uint8([[(tid * 47) % 255]]), cv2.COLORMAP_HSV)[0, 0])
            cv2.rectangle(img, (x, y), (x + w, y + h), colour, 2)
            (tw, th), _ = cv2.getTextSize(str(tid), cv2.FONT_HERSHEY_SIMPLEX, 0.7, 2)
            top = max(y - th - 6, 0)
            cv2.rectangle(img, (x, top), (x + tw + 4, top + th + 6), (0, 0, 0), -1)
            cv2.putText(img, str(tid), (x + 2, top + th + 3), cv2.FONT_HERSHEY_SIMPLEX, 0.7, colour, 2)
        cv2.putText(img, f"frame {f}", (10, 32), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        tiles.append(img)
    cap.release()
    # crop the empty foreground lawn: keep down to the lowest box of the sheet
    bottoms = [r[3] + r[5] for r in (*gt, *pred) if r[0] in picks]
    keep = min(tiles[0].shape[0], int(max(bottoms, default=tiles[0].shape[0])) + 24)
    tiles = [t[:keep] for t in tiles]
    cols = 3
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    sheet = np.vstack([np.hstack(tiles[i:i + cols]) for i in range(0, len(tiles), cols)])
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), sheet)
    return out


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = ["".join(f"{title:<{width}}" for title, width in COLUMNS)]
    for r in rows:
        box = f"{r['box_w_over_gt']:.2f}/{r['box_h_over_gt']:.2f}" if "box_w_over_gt" in r else "-"
        det_fps = f"{r['det_fps']:.1f}" if r.get("det_fps") else "-"
        cells = (r["config"], r["detector"], r["tracker"], f"{r['idf1']:.3f}", f"{r['mota']:.3f}",
                 f"{r['motp']:.3f}" if "motp" in r else "-", str(int(r["num_switches"])), f"{r['recall']:.3f}",
                 f"{r['precision']:.3f}", box, str(r.get("relinks", "-")), det_fps, f"{r['e2e_fps']:.1f}")
        lines.append("".join(f"{c:<{w}}" for c, (_, w) in zip(cells, COLUMNS, strict=True)))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=400, help="frames to replay and score (ground truth: 1-400)")
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"),
                    help="pipeline YAML of the default row, as `xreid replay` reads it (default: configs/default.yaml)")
    ap.add_argument("--detector", choices=("hog", "yolo"), default="hog")
    ap.add_argument("--weights", help="YOLO weights (.pt) or model YAML (random init: code path only)")
    ap.add_argument("--only", nargs="*", help="run only these rows (naive, bytetrack, botsort, default)")
    ap.add_argument("--threads", type=int, default=2, help="OpenCV/torch threads (default 2)")
    ap.add_argument("--out", default="bench-out/mot_vtest.json")
    args = ap.parse_args()
    if not 1 <= args.frames <= 400:
        print("error: --frames must be in 1..400 (the ground truth covers frames 1-400 only)", file=sys.stderr)
        return 2
    if args.detector == "yolo" and not args.weights:
        print("error: --detector yolo needs --weights PATH", file=sys.stderr)
        return 2
    cv2.setNumThreads(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    base = load_config(XreidCfg, args.config) if Path(args.config).is_file() else XreidCfg()
    if args.detector == "yolo":
        base = replace(base, detector=from_dict(DetectorCfg, {**to_dict(base.detector), "kind": "yolo",
                                                              "weights": args.weights}))
    video = ensure_vtest(default_cache_dir(dict(os.environ)))
    out_json = Path(args.out)
    rows: list[dict[str, Any]] = []
    det_fps: dict[DetectorCfg, float] = {}
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mot_vtest_") as tmp:
        for name, cfg in configurations(base, args.detector):
            if args.only and name not in args.only:
                continue
            if cfg.detector not in det_fps:
                det_fps[cfg.detector] = detector_only_fps(cfg.detector, video, args.frames)
            row = run_config(name, cfg, video, args.frames, GT_PATH, Path(tmp))
            row["det_fps"] = det_fps[cfg.detector]
            rows.append(row)
            print(f"{name}: IDF1 {row['idf1']:.3f} MOTA {row['mota']:.3f} IDsw {int(row['num_switches'])} "
                  f"e2e {row['e2e_fps']:.1f} fps", file=sys.stderr, flush=True)
            if name == "default":
                sheet = contact_sheet(video, read_mot(row["mot_file"]), read_mot(GT_PATH),
                                      out_json.with_name("mot_vtest_contact.png"), args.frames)
                row["contact_sheet"] = str(sheet)
                mot_copy = out_json.with_name("mot_vtest_default.mot.txt")
                mot_copy.write_text(Path(row["mot_file"]).read_text(encoding="utf-8"), encoding="utf-8")
                row["mot_file"] = str(mot_copy)
    load1 = os.getloadavg()
    print(f"vtest.avi frames 1-{args.frames}, scored by xreid eval-tracking (motmetrics, IoU 0.5); "
          f"{args.threads} threads, load average {load0[0]:.1f} -> {load1[0]:.1f} on {os.cpu_count()} cores")
    print(format_table(rows))
    if args.detector == "hog":
        ref = README_REFERENCE
        print(f"README reference (not re-run): {ref['detector']} + {ref['tracker']}: IDF1 {ref['idf1']:.2f} "
              f"MOTA {ref['mota']:.2f} IDsw {ref['num_switches']} recall {ref['recall']:.2f} "
              f"precision {ref['precision']:.2f} ~{ref['e2e_fps']:.0f} fps")
    if any("contact_sheet" in r for r in rows):
        print(f"contact sheet: {out_json.with_name('mot_vtest_contact.png')}")
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps({
        "footage": str(video), "frames": args.frames, "ground_truth": str(GT_PATH), "threads": args.threads,
        "load_average": [load0[0], load1[0]], "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "opencv": cv2.__version__, "rows": rows, "readme_reference": README_REFERENCE,
        "default_config": {"detector": to_dict(base.detector), "tracker": to_dict(base.tracker)},
    }, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out_json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
