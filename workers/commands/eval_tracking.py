"""``xreid eval-tracking``: MOT metrics of a track file against ground truth (by motmetrics)."""

from __future__ import annotations

import argparse
import json
import sys

_PERCENT = ("idf1", "mota", "recall", "precision", "idp", "idr", "hota")
_ORDER = ("idf1", "mota", "motp", "hota", "num_switches", "recall", "precision", "idp", "idr", "mostly_tracked",
          "mostly_lost", "num_false_positives", "num_misses", "num_objects", "num_predictions", "num_frames")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval-tracking", help="score a MOTChallenge track file against ground truth",
                       description="IDF1, MOTA, MOTP (1 - IoU of matches), ID switches, recall and precision by "
                                   "py-motmetrics; boxes match at IoU >= 0.5. HOTA is added when TrackEval is "
                                   "installed.")
    p.add_argument("--gt", required=True, help="ground-truth file (MOTChallenge format)")
    p.add_argument("--pred", required=True, help="tracker output (MOTChallenge format, e.g. from replay --mot-out)")
    p.add_argument("--frames", help="inclusive 1-based frame range to score, e.g. 1-400 (default: the ground truth's)")
    p.add_argument("--iou", type=float, default=0.5, help="minimum IoU of a match (default 0.5)")
    p.add_argument("--keep-zero-marked", action="store_true",
                   help="score ground-truth rows flagged 0 (7th column) too; by default they are ignore regions")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from models.errors import ConfigError
    from pipeline.tracking.mot import evaluate, parse_frame_range, read_mot

    if not 0.0 < args.iou <= 1.0:
        raise ConfigError(f"--iou must be in (0, 1], got {args.iou}")
    frames = parse_frame_range(args.frames) if args.frames else None
    metrics = evaluate(read_mot(args.gt), read_mot(args.pred), frames=frames, iou=args.iou,
                       keep_zero_marked=args.keep_zero_marked)
    if args.json:
        json.dump(metrics, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"{'metric':<22}{'value':>10}")
    for name in _ORDER:
        if name in metrics:
            v = metrics[name]
            shown = f"{v:.3f}" if name in _PERCENT or name == "motp" else f"{int(v)}"
            print(f"{name:<22}{shown:>10}")
    return 0
