"""``xreid synth``: render a synthetic RGB + thermal re-ID dataset (HITSZ-VCM layout) or scene videos."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="render a synthetic visible+thermal dataset or multi-person scene videos",
                       description="Writes N synthetic identities walking past visible and thermal cameras as "
                                   "tracklets in the HITSZ-VCM layout (readable by `xreid train --data`), or with "
                                   "--scenes, multi-person videos per camera with MOT ground truth whose ids are "
                                   "global identities. Deterministic by --seed. See docs/training.md.")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scenes", action="store_true", help="render scene videos instead of a tracklet dataset")
    p.add_argument("--identities", type=int, default=None, help="identities (dataset, default 60) / people (scenes, default 4)")
    p.add_argument("--test-identities", type=int, default=20, help="held-out identities for the test split")
    p.add_argument("--rgb-cameras", type=int, default=None, help="visible cameras (dataset 3, scenes 1)")
    p.add_argument("--ir-cameras", type=int, default=None, help="thermal cameras (dataset 3, scenes 1)")
    p.add_argument("--tracklets-per-camera", type=int, default=1)
    p.add_argument("--frames", type=int, default=None, help="frames per tracklet (12) / per scene video (160)")
    p.add_argument("--size", default=None, metavar="HxW",
                   help="height x width: crops (dataset, default 128x64) / frames (scenes, default 360x480)")
    p.add_argument("--presence", type=float, default=0.85, help="probability an identity passes a given camera")
    p.set_defaults(func=run)


def _height_width(text: str) -> tuple[int, int]:
    """``--size`` is height x width in both modes, the order of array shapes (``(H, W, 3)``)."""
    from models.errors import ConfigError

    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size must look like HxW, e.g. 128x64, got {text!r}") from None
    return h, w


def run(args: argparse.Namespace) -> int:
    from models.data.scenes import SceneCfg, write_scenes
    from models.data.synth import SynthCfg, write_synth_vcm
    from pipeline.runtime.out_dir import prepare_out_dir

    prepare_out_dir(args.out)
    if args.scenes:
        kw = {"seed": args.seed}
        if args.identities is not None:
            kw["num_people"] = args.identities
        if args.rgb_cameras is not None:
            kw["rgb_cameras"] = args.rgb_cameras
        if args.ir_cameras is not None:
            kw["ir_cameras"] = args.ir_cameras
        if args.frames is not None:
            kw["num_frames"] = args.frames
        if args.size:
            kw["height"], kw["width"] = _height_width(args.size)
            lo = max(32, int(kw["height"] * 0.45))
            kw["person_height"] = (lo, max(lo, int(kw["height"] * 0.64)))
        root = write_scenes(args.out, SceneCfg(**kw))
        print(f"scene videos written to {root} (see {root / 'scenes.json'})")
        return 0
    kw = {"seed": args.seed, "num_test_identities": args.test_identities, "presence": args.presence,
          "tracklets_per_camera": args.tracklets_per_camera}
    if args.identities is not None:
        kw["num_identities"] = args.identities
    if args.rgb_cameras is not None:
        kw["rgb_cameras"] = args.rgb_cameras
    if args.ir_cameras is not None:
        kw["ir_cameras"] = args.ir_cameras
    if args.frames is not None:
        kw["frames_per_tracklet"] = args.frames
    if args.size:
        kw["height"], kw["width"] = _height_width(args.size)
    cfg = SynthCfg(**kw)
    root = write_synth_vcm(args.out, cfg)
    print(f"synthetic HITSZ-VCM tree written to {root}: {cfg.num_identities} identities "
          f"({cfg.num_identities - cfg.num_test_identities} train / {cfg.num_test_identities} held out), "
          f"{cfg.rgb_cameras} visible + {cfg.ir_cameras} thermal cameras")
    return 0
