"""``xreid demo``: the real PETS09 footage as an RGB camera plus a SYNTHETIC thermal rendering of it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .replay import add_pipeline_args, print_summary, quiet_ffmpeg, run_pipeline

DEFAULT_MAX_FRAMES = 400


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="replay vtest.avi as cam1:rgb plus a SYNTHETIC thermal cam2:ir",
                       description="Fetches vtest.avi (PETS09-S2L1, via Debian's opencv-doc package) into the cache, "
                                   "renders a SYNTHETIC pseudo-thermal copy of it once (not real infrared), and "
                                   "replays both as two cameras with the HOG detector.")
    p.add_argument("--max-frames", type=int, default=DEFAULT_MAX_FRAMES,
                   help=f"frames per camera (default {DEFAULT_MAX_FRAMES}, about 40 s of footage, a few minutes "
                        "on 2 cores; 0 = all 795)")
    add_pipeline_args(p)
    p.set_defaults(func=run, detector="hog")


def run(args: argparse.Namespace) -> int:
    quiet_ffmpeg(args.verbose)
    from pipeline.footage import default_cache_dir, ensure_vtest
    from pipeline.out_dir import prepare_out_dir
    from pipeline.pseudo_thermal import ensure_pseudo_thermal
    from pipeline.replay import parse_camera_spec

    prepare_out_dir(args.out)  # before the footage is fetched and rendered
    cache = default_cache_dir(dict(os.environ))
    vtest = ensure_vtest(cache)
    print(f"footage: {vtest} (PETS09-S2L1, real)")
    print("rendering the SYNTHETIC pseudo-thermal camera (first run only) ...", flush=True)
    thermal = ensure_pseudo_thermal(vtest, cache)
    print(f"cam2:ir: {thermal} (SYNTHETIC pseudo-thermal rendering of the same footage, not real infrared)")
    cameras = [parse_camera_spec(f"cam1:rgb:{vtest}", stride=args.stride, realtime=args.realtime),
               parse_camera_spec(f"cam2:ir:{thermal}", stride=args.stride, realtime=args.realtime)]
    max_frames = args.max_frames if args.max_frames and args.max_frames > 0 else None
    summary = run_pipeline(args, cameras, max_frames)
    print_summary(summary)
    print(f"\nresults are in {Path(args.out).resolve()}/ (cam2 is SYNTHETIC thermal)")
    return 0
