"""``xreid calibrate``: fit the matcher's per-modality-pair thresholds on replays with ground truth."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="fit matcher thresholds (rgb-rgb, ir-ir, rgb-ir) on replays with ground truth",
                       description="Reads replay output folders (xreid.sqlite, summary.json and, for --gt, the "
                                   "<camera>.mot.txt written by `xreid replay --mot-out`), labels every track with "
                                   "its ground-truth person, and writes the thresholds that maximise pairwise "
                                   "identity F1 into a config file.")
    p.add_argument("--run", action="append", required=True, metavar="DIR", help="a replay output folder (repeatable)")
    p.add_argument("--gt", action="append", default=[], metavar="CAMERA=PATH",
                   help="MOT-format ground truth of a camera, ids global across cameras (repeatable)")
    p.add_argument("--labels", metavar="CSV", help="track_uid,person lines (instead of or besides --gt)")
    p.add_argument("--config", help="config to start from and copy into --out (default: configs/default.yaml)")
    p.add_argument("--out", required=True, help="YAML file to write (the input config with calibrated thresholds)")
    p.add_argument("--min-iou", type=float, default=0.4, help="IoU for a tracked box to count as a gt person")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def _gt_specs(specs: list[str]) -> dict[str, Path]:
    from models.errors import ConfigError

    out = {}
    for spec in specs:
        cam, sep, path = spec.partition("=")
        if not sep or not cam or not path:
            raise ConfigError(f"--gt must be CAMERA=PATH, got {spec!r}")
        if not Path(path).is_file():
            raise ConfigError(f"--gt {cam}: file not found: {path}")
        out[cam] = Path(path)
    return out


def _csv_labels(path: str) -> dict[str, str]:
    from models.errors import ConfigError

    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ConfigError(f"--labels: cannot read {path}: {e}") from None
    out = {}
    for n, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#") or line.startswith("track_uid"):
            continue
        uid, sep, person = line.partition(",")
        if not sep:
            raise ConfigError(f"{path}:{n}: expected track_uid,person")
        out[uid.strip()] = person.strip()
    return out


def run(args: argparse.Namespace) -> int:
    import yaml

    from models.errors import ConfigError
    from pipeline.config.loader import load_config, load_yaml, merge
    from pipeline.config.settings import XreidCfg
    from pipeline.matcher.calibrate import fit_thresholds, label_tracks, load_labelled, static_thresholds
    from pipeline.store.base import Store

    gt = _gt_specs(args.gt)
    extra = _csv_labels(args.labels) if args.labels else {}
    if not gt and not extra:
        raise ConfigError("give ground truth: --gt CAMERA=PATH (with replays run with --mot-out) or --labels CSV")
    config_path = args.config or ("configs/default.yaml" if Path("configs/default.yaml").is_file() else None)
    cfg = load_config(XreidCfg, config_path, env=os.environ)
    runs = []
    for run_dir in map(Path, args.run):
        summary_path, store_path = run_dir / "summary.json", run_dir / "xreid.sqlite"
        if not summary_path.is_file() or not store_path.is_file():
            raise ConfigError(f"--run {run_dir}: not a replay output folder (needs summary.json and xreid.sqlite)")
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        labels = dict(extra)
        for cam in summary["cameras"]:
            if cam not in gt:
                continue
            mot = run_dir / f"{cam}.mot.txt"
            if not mot.is_file():
                raise ConfigError(f"--run {run_dir}: {mot.name} missing; replay with --mot-out to calibrate with --gt")
            for tid, person in label_tracks(mot, gt[cam], min_iou=args.min_iou).items():
                labels[f"{cam}-{summary['run_id']}-{tid}"] = str(person)
        with Store(store_path, readonly=True) as store:
            tracks = load_labelled(store, labels)
        tracks = [t for t in tracks if t.obs.track_uid.split("-")[-2] == summary["run_id"] or t.obs.track_uid in extra]
        runs.append(tracks)
    fit = fit_thresholds(runs, cfg.matcher)
    th = fit.thresholds
    base = load_yaml(config_path) if config_path else {}
    doc = merge(base, {"matcher": {"thresholds": {"rgb_rgb": th.rgb_rgb, "ir_ir": th.ir_ir, "rgb_ir": th.rgb_ir}}})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# written by `xreid calibrate` from {len(runs)} run(s): {fit.n_labelled} labelled of {fit.n_tracks} "
              f"tracks, {fit.n_people} people; pairwise identity F1 {fit.f1:.3f} (was {fit.baseline_f1:.3f})\n")
    out.write_text(header + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    load_config(XreidCfg, out)  # what we wrote must load
    result = {"thresholds": {"rgb_rgb": th.rgb_rgb, "ir_ir": th.ir_ir, "rgb_ir": th.rgb_ir},
              "before": {p: static_thresholds(cfg.matcher).get(p) for p in ("rgb_rgb", "ir_ir", "rgb_ir")},
              "precision": fit.precision, "recall": fit.recall, "f1": fit.f1, "f1_before": fit.baseline_f1,
              "tracks": fit.n_tracks, "labelled": fit.n_labelled, "people": fit.n_people, "config": str(out)}
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        print()
        return 0
    print(f"{'pair':<8}{'before':>8}{'after':>8}")
    for pair in ("rgb_rgb", "ir_ir", "rgb_ir"):
        print(f"{pair:<8}{result['before'][pair]:>8.3f}{result['thresholds'][pair]:>8.3f}")
    print(f"pairwise identity F1 {fit.f1:.3f} (precision {fit.precision:.3f}, recall {fit.recall:.3f}); "
          f"before {fit.baseline_f1:.3f}")
    print(f"{fit.n_labelled} labelled tracks of {fit.n_tracks}, {fit.n_people} people; wrote {out}")
    return 0
