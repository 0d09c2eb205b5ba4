"""``xreid demo``: the real PETS09 footage as an RGB camera plus a SYNTHETIC thermal rendering of it."""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .replay import add_pipeline_args, print_summary, quiet_ffmpeg, run_pipeline

DEFAULT_MAX_FRAMES = 400


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="replay vtest.avi as cam1:rgb plus a SYNTHETIC thermal cam2:ir",
                       description="Fetches vtest.avi (PETS09-S2L1, via Debian's opencv-doc package) into the cache, "
                                   "renders a SYNTHETIC pseudo-thermal copy of it once (not real infrared), and "
                                   "replays both as two cameras with the HOG detector. Within the annotated frames "
                                   "(1-400) the summary scores the identities against the PETS09 ground truth.")
    p.add_argument("--max-frames", type=int, default=DEFAULT_MAX_FRAMES,
                   help=f"frames per camera (default {DEFAULT_MAX_FRAMES}, about 40 s of footage, a few minutes "
                        "on 2 cores; 0 = all 795, not scored past frame 400)")
    add_pipeline_args(p)
    p.set_defaults(func=run, detector="hog")


def run(args: argparse.Namespace) -> int:
    quiet_ffmpeg(args.verbose)
    from pipeline.ingest.footage import VTEST_GT, VTEST_GT_LAST_FRAME, default_cache_dir, ensure_vtest
    from pipeline.ingest.pseudo_thermal import ensure_pseudo_thermal
    from pipeline.replay.embedded import parse_camera_spec
    from pipeline.runtime.out_dir import prepare_out_dir

    prepare_out_dir(args.out)  # before the footage is fetched and rendered
    cache = default_cache_dir(dict(os.environ))
    vtest = ensure_vtest(cache)
    print(f"footage: {vtest} (PETS09-S2L1, real)")
    print("rendering the SYNTHETIC pseudo-thermal camera (first run only) ...", flush=True)
    thermal = ensure_pseudo_thermal(vtest, cache)
    print(f"cam2:ir: {thermal} (SYNTHETIC pseudo-thermal rendering of the same footage, not real infrared)")
    if args.start_time is None:   # one moment seen twice: one start, not each file's own mtime
        args.start_time = datetime.fromtimestamp(vtest.stat().st_mtime, UTC).isoformat()
    cameras = [parse_camera_spec(f"cam1:rgb:{vtest}", stride=args.stride, realtime=args.realtime),
               parse_camera_spec(f"cam2:ir:{thermal}", stride=args.stride, realtime=args.realtime)]
    max_frames = args.max_frames if args.max_frames and args.max_frames > 0 else None
    scored = not args.no_identities and max_frames is not None and max_frames <= VTEST_GT_LAST_FRAME
    if scored:
        args.mot_out = True   # the tracks are labelled through their boxes
    summary = run_pipeline(args, cameras, max_frames)
    if scored:
        summary["identity_accuracy"] = _accuracy(summary, Path(args.out), VTEST_GT)
        (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print_summary(summary)
    if not args.no_identities:
        print(_accuracy_line(summary.get("identity_accuracy")))
    print(f"\nresults are in {Path(args.out).resolve()}/ (cam2 is SYNTHETIC thermal)")
    return 0


def _accuracy(summary: dict[str, Any], out: Path, gt: Path) -> dict[str, Any]:
    """Pairwise identity scores of this run against the PETS09 ground truth (both cameras show its frames)."""
    from pipeline.matcher.identity_eval import run_labels, score_run
    from pipeline.store.base import Store

    if not gt.is_file():
        return {"scored": False, "reason": f"ground truth not found at {gt}"}
    cams = summary["cameras"]
    labels = run_labels(summary["run_id"], {c: Path(cams[c]["outputs"]["mot"]) for c in cams}, dict.fromkeys(cams, gt))
    with Store(out / "xreid.sqlite", readonly=True) as store:
        score = score_run(store, summary["run_id"], labels)
    return {"scored": True, "ground_truth": str(gt), **score.to_dict()}


def _accuracy_line(acc: dict[str, Any] | None) -> str:
    if not acc or not acc.get("scored"):
        why = acc["reason"] if acc else "only frames 1-400 are annotated (use --max-frames 400 or fewer)"
        return f"identity accuracy: not scored ({why})"
    a, c = acc["all_pairs"], acc["cross_camera"]
    return (f"identity accuracy vs PETS09 ground truth: pairwise F1 {a['f1']:.2f} ({_pr(a)}); across cameras "
            f"F1 {c['f1']:.2f} ({_pr(c)}); {acc['labelled']} of {acc['tracks']} tracks labelled, {acc['people']} people")


def _pr(s: dict[str, Any]) -> str:
    """Precision and recall; with no pair linked, precision is vacuous and says so."""
    precision = f"{s['precision']:.2f}" if s["tp"] + s["fp"] else "- (nothing linked)"
    return f"precision {precision}, recall {s['recall']:.2f}"
