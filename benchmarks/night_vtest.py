"""Detection and tracking at night: vtest.avi rendered as a near-infrared night camera, and thermal scenes.

Frames 1-400 of vtest.avi (PETS09-S2L1, the frames with shipped ground truth) are rendered with
``pipeline.ingest.looks.NightNirLook`` (channel-mix gray, gamma 0.8) at sensor-noise sigma 0, 4, 8 and
12 gray levels, with and without the 3x3 soft-focus blur, into MJPEG files (cached under
``bench-out/night_vtest/``; deterministic, seed 0). Each is replayed through the real ``Replay``
as a camera, once per detector option, and scored by ``xreid eval-tracking`` (py-motmetrics,
IoU 0.5) with the functions of ``benchmarks/mot_vtest.py``. Rows:

* ``default``: an ``ir`` camera with nothing configured but the camera (``configs/default.yaml``);
* ``auto``: the same file as a ``modality: auto`` camera (a day/night camera after dusk);
* ``no-denoise`` / ``gaussian5`` / ``nlmeans``: the default detector with another ``detector.denoise``;
* ``heat``: the thermal warm-blob detector (``detector.kind: heat``) on the same frames;
* ``hog-full``: HOG on whole frames (no motion regions), sigma 8 only (slow);
* ``yolo``: with ``--weights PATH`` (and ``--person-classes``), any ultralytics model;
* ``daylight``: the original colour footage as an ``rgb`` camera, for the no-regression check;
* thermal: the synthetic thermal scenes of ``benchmarks/thermal_tracking.py`` (``xreid synth``
  scene seed 0, and the warm-clutter scene, white-hot) with the ``ir`` camera default and ``heat``.

``e2e fps`` is frames / wall time of the replay (the machine may be shared: load average printed);
``cpu fps`` is frames / process CPU seconds, the figure to compare with a 2-core budget.

    .venv/bin/python benchmarks/night_vtest.py                 # every option x every rendering
    .venv/bin/python benchmarks/night_vtest.py --quick         # default and no-denoise everywhere, the rest at 8
    .venv/bin/python benchmarks/night_vtest.py --weights best.pt --person-classes Normal Fall
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402

from benchmarks.mot_vtest import GT_PATH, eval_tracking  # noqa: E402
from models.data.scenes import SceneCfg, write_scenes  # noqa: E402
from pipeline.config.loader import from_dict, load_config, to_dict  # noqa: E402
from pipeline.config.settings import CameraCfg, DetectorCfg, XreidCfg  # noqa: E402
from pipeline.ingest.footage import default_cache_dir, ensure_vtest  # noqa: E402
from pipeline.ingest.looks import NightNirLook, render_camera  # noqa: E402
from pipeline.replay.embedded import Replay, ReplayOptions  # noqa: E402
from tests.support.thermal_scenes import render_scene, write_scene  # noqa: E402

SIGMAS = (0, 4, 8, 12)
TARGET_SIGMA = 8
FRAMES = 400
OPTIONS: dict[str, dict[str, Any] | None] = {   # detector_ir overrides over the default detector section
    "default": None,
    "no-denoise": {"denoise": {"method": "none"}},
    "gaussian5": {"denoise": {"method": "gaussian", "kernel_px": 5}},
    "nlmeans": {"denoise": {"method": "nlmeans"}},
    "heat": {"kind": "heat"},
    "hog-full": {"motion": {"enabled": False}},
}
SLOW = {"hog-full"}   # run at the target sigma (blurred) only
QUICK_EVERYWHERE = {"default", "no-denoise"}   # --quick: the rest at the target sigma only


def night_video(out_dir: Path, vtest: Path, sigma: int, blur: bool) -> Path:
    """The rendering of frames 1-400 at ``sigma`` (cached: rendering is deterministic)."""
    path = out_dir / f"night_nir_s{sigma}_{'blur' if blur else 'sharp'}.avi"
    if not path.is_file():
        render_camera(vtest, path, NightNirLook(noise_sigma=float(sigma), blur=blur, gamma=0.8), max_frames=FRAMES,
                      seed=0)
    return path


def camera(source: Path, modality: str, base: XreidCfg, override: dict[str, Any] | None) -> CameraCfg:
    cam = CameraCfg(id="cam1", source=str(source), modality=modality)  # type: ignore[arg-type]
    if override is None:
        return cam
    det = from_dict(DetectorCfg, _merge(to_dict(base.detector), override))
    return replace(cam, detector_ir=det) if modality != "rgb" else replace(cam, detector=det)


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return out


def run_row(cfg: XreidCfg, cam: CameraCfg, gt: Path, frames: int | None, out_dir: Path) -> dict[str, Any]:
    """Replay one camera, score its tracks; the table row's figures."""
    cpu0 = time.process_time()
    summary = Replay(cfg, [cam], ReplayOptions(out_dir=out_dir, start_time=0.0, max_frames=frames, mot_out=True,
                                               progress=False)).run()
    cpu_s = time.process_time() - cpu0
    st = summary["cameras"][cam.id]
    m = eval_tracking(gt, Path(st["outputs"]["mot"]), frames) if frames else _eval_all(gt, Path(st["outputs"]["mot"]))
    return {**{k: m[k] for k in ("idf1", "mota", "recall", "precision", "num_switches")},
            "frames": st["frames"], "e2e_fps": summary["fps"], "cpu_fps": st["frames"] / cpu_s if cpu_s > 0 else None}


def _eval_all(gt: Path, pred: Path) -> dict[str, float]:
    """Scores over every ground-truth frame (the thermal scenes are short and fully labelled)."""
    import subprocess

    cmd = [sys.executable, "-m", "workers.cli", "eval-tracking", "--gt", str(gt), "--pred", str(pred), "--json"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def thermal_jobs(root: Path, frames: int) -> list[tuple[str, Path, Path]]:
    """(scene, white-hot video, ground truth) of the synthetic thermal scenes, seed 0."""
    sdir = write_scenes(root / "synth0", SceneCfg(num_people=4, num_frames=frames, seed=0)) / "cam1-ir"
    wdir = root / "warm0"
    wdir.mkdir(parents=True, exist_ok=True)
    write_scene(render_scene(frames, seed=0, n_people=4), wdir / "white_hot.avi", wdir / "gt.txt", palette="white_hot")
    return [("thermal synth seed 0", sdir / "video.avi", sdir / "gt" / "gt.txt"),
            ("thermal warm clutter seed 0", wdir / "white_hot.avi", wdir / "gt.txt")]


def plan(args: argparse.Namespace) -> list[tuple[str, int, bool, str, str]]:
    """(option, sigma, blur, modality, label) of every NIR row to run."""
    options = [o for o in OPTIONS if not args.only or o in args.only]
    if args.weights:
        options.append("yolo")
    rows = []
    for sigma in args.sigmas:
        for blur in (True, False):
            for option in options:
                target = sigma == TARGET_SIGMA and blur
                if (option in SLOW or args.quick and option not in QUICK_EVERYWHERE) and not target:
                    continue
                rows.append((option, sigma, blur, "ir", option))
            if sigma == TARGET_SIGMA and blur and (not args.only or "auto" in args.only):
                rows.append(("default", sigma, blur, "auto", "auto"))
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    head = f"{'footage':<30}{'row':<12}{'IDF1':>7}{'MOTA':>7}{'recall':>8}{'prec':>7}{'IDsw':>6}{'e2e fps':>9}{'cpu fps':>9}"
    lines = [head]
    for r in rows:
        lines.append(f"{r['footage']:<30}{r['row']:<12}{r['idf1']:>7.3f}{r['mota']:>7.3f}{r['recall']:>8.3f}"
                     f"{r['precision']:>7.3f}{int(r['num_switches']):>6}{r['e2e_fps']:>9.1f}"
                     f"{(r['cpu_fps'] or 0):>9.1f}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sigmas", type=int, nargs="+", default=list(SIGMAS), help="sensor noise sigmas (gray levels)")
    ap.add_argument("--only", nargs="*", help=f"rows to run: {', '.join(OPTIONS)}, auto")
    ap.add_argument("--quick", action="store_true", help="options other than default and no-denoise at sigma 8 (blurred) only")
    ap.add_argument("--no-thermal", action="store_true", help="skip the thermal scenes")
    ap.add_argument("--no-daylight", action="store_true", help="skip the daylight (rgb) row")
    ap.add_argument("--weights", help="also a yolo row with these ultralytics weights")
    ap.add_argument("--person-classes", nargs="+", default=["person"], help="yolo: class names that are people")
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"), help="pipeline YAML of every row")
    ap.add_argument("--threads", type=int, default=2, help="OpenCV/torch threads (default 2)")
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "night_vtest.json"))
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    if args.weights:
        OPTIONS["yolo"] = {"kind": "yolo", "weights": args.weights, "person_classes": list(args.person_classes)}
    base = load_config(XreidCfg, args.config) if Path(args.config).is_file() else XreidCfg()
    vtest = ensure_vtest(default_cache_dir(dict(os.environ)))
    out_json = Path(args.out)
    cache = out_json.parent / "night_vtest"
    cache.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    load0 = os.getloadavg()

    def record(footage: str, label: str, row: dict[str, Any]) -> None:
        rows.append({"footage": footage, "row": label, **row})
        print(f"{footage} {label}: IDF1 {row['idf1']:.3f} MOTA {row['mota']:.3f} recall {row['recall']:.3f} "
              f"cpu fps {row['cpu_fps'] or 0:.1f}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="night_vtest_") as tmp:
        n = 0
        if not args.no_daylight:
            record("daylight (original)", "default",
                   run_row(base, camera(vtest, "rgb", base, None), GT_PATH, FRAMES, Path(tmp) / "day"))
        for option, sigma, blur, modality, label in plan(args):
            video = night_video(cache, vtest, sigma, blur)
            footage = f"night NIR sigma {sigma} {'blur' if blur else 'sharp'}"
            n += 1
            record(footage, label, run_row(base, camera(video, modality, base, OPTIONS[option]), GT_PATH, FRAMES,
                                           Path(tmp) / f"r{n}"))
        if not args.no_thermal:
            for scene, video, gt in thermal_jobs(Path(tmp) / "thermal", 160):
                for option in ("default", "heat"):
                    n += 1
                    record(scene, option, run_row(base, camera(video, "ir", base, OPTIONS[option]), gt, None,
                                                  Path(tmp) / f"r{n}"))
    load1 = os.getloadavg()
    print(f"vtest.avi frames 1-{FRAMES} rendered as night NIR (pipeline.ingest.looks.NightNirLook, gamma 0.8, MJPEG), "
          f"scored by xreid eval-tracking (motmetrics, IoU 0.5); {args.threads} threads, load average "
          f"{load0[0]:.1f} -> {load1[0]:.1f} on {os.cpu_count()} cores")
    print(format_table(rows))
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps({
        "benchmark": "night_vtest", "frames": FRAMES, "target_sigma": TARGET_SIGMA, "threads": args.threads,
        "load_average": [load0[0], load1[0]], "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "opencv": cv2.__version__, "rows": rows, "default_detector": to_dict(base.detector),
    }, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out_json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
