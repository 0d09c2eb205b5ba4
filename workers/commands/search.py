"""``xreid search``: nearest identities to person image(s) or to a stored track."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from .tracks import add_store_arg, int_flag, open_store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="nearest identities to person images or to a track",
                       description="--image crops of ONE person (1..T JPEG/PNG/WebP/BMP images, one clip; the "
                                   "API's size and pixel limits apply) are embedded with "
                                   "--checkpoint (default: the committed synthetic-trained tiny model); --track uses a stored track's embedding (uid or number).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", nargs="+", metavar="PATH", help="person crop image(s) of one person")
    src.add_argument("--track", metavar="ID", help="a stored track: its track_uid or number")
    p.add_argument("--modality", choices=("rgb", "ir"), default="rgb", help="modality of --image (default rgb)")
    p.add_argument("--checkpoint", help="X-ReID checkpoint for --image (the model the store was built with; default: the committed tiny model)")
    p.add_argument("--device", default="cpu", help="encoder device for --image (default cpu)")
    p.add_argument("-k", type=int_flag(hi=1000), default=5, help="identities to return (1..1000, default 5)")
    add_store_arg(p)
    p.set_defaults(func=run)


def image_limits(args: argparse.Namespace) -> tuple[Any, int]:
    """The API's image limits (``api.max_upload_bytes``, ``max_image_pixels``, ``max_request_pixels``)."""
    from pipeline.config.loader import load_config
    from pipeline.config.settings import XreidCfg
    from pipeline.ingest.image_input import ImageLimits

    config = args.config or ("configs/default.yaml" if Path("configs/default.yaml").is_file() else None)
    api = load_config(XreidCfg, config, env=os.environ).api
    return ImageLimits(max_bytes=api.max_upload_bytes, max_pixels=api.max_image_pixels), api.max_request_pixels


def read_images(paths: list[str], limits: Any, max_total_pixels: int) -> list:
    """Person crops under the API's image policy: headers (size, type, pixels) of all, then decode."""
    from models.errors import ContractError
    from pipeline.ingest.image_input import check_total_pixels, decode_image, read_header

    blobs = []
    for path in paths:
        p = Path(path)
        try:
            if not p.is_file():
                raise ContractError(f"--image {path}: file not found")
            if p.stat().st_size > limits.max_bytes:  # refused before it is read into memory
                raise ContractError(f"--image {path}: {p.stat().st_size} bytes exceeds the {limits.max_bytes}-byte "
                                    "limit per image (api.max_upload_bytes)")
            blobs.append((f"--image {path}", p.read_bytes()))
        except OSError as e:
            raise ContractError(f"--image {path}: cannot read it ({e.strerror or e})") from None
    check_total_pixels([read_header(data, name, limits) for name, data in blobs], max_total_pixels)
    return [decode_image(data, name, limits) for name, data in blobs]


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from models.errors import ConfigError, StoreError
    from pipeline.matcher import records
    from pipeline.matcher.matcher import Matcher
    from pipeline.store.tracks import track_embedding

    if args.k < 1:
        raise ConfigError(f"-k must be >= 1, got {args.k}")
    with open_store(args) as store:
        if store.schema_version < 2:
            raise StoreError(f"store {store.path} has no identities yet (schema v{store.schema_version})")
        if args.track is not None:
            found = track_embedding(store, args.track)
            if found is None and args.track.isdecimal() and args.track == str(int(args.track)):
                found = track_embedding(store, track_no=int(args.track))   # a track number works too
            if found is None:
                raise StoreError(f"no embedded track {args.track!r} in {store.path}")
            model_id, vector = found.model_id, found.mean / max(float(np.linalg.norm(found.mean)), 1e-12)
        else:
            from workers.identity_chain import load_encoder

            crops = read_images(args.image, *image_limits(args))
            encoder = load_encoder(args.checkpoint, args.device, amp=False)
            model_id, vector = encoder.model_id, encoder.encode([crops], [args.modality])[0]
        matcher = records.load_into(store, Matcher())
        if model_id not in matcher.model_ids:
            raise StoreError(f"the store has no gallery for model {model_id} (it has: "
                             f"{', '.join(matcher.model_ids) or 'none'})")
        hits = matcher.search(model_id, vector, k=args.k)
        rows = []
        for ident, score, key in hits:
            t = matcher.track(key)
            rows.append({"identity": ident, "score": score, "best_track": key, "track_uid": t.track_uid,
                         "camera_id": t.camera_id, "modality": t.modality,
                         "n_tracks": len(matcher.identity_tracks(ident))})
    if args.json:
        json.dump({"model_id": model_id, "results": rows}, sys.stdout, indent=1)
        print()
        return 0
    print(f"{'rank':>4} {'identity':>8} {'score':>7} {'tracks':>6}  best match")
    for i, r in enumerate(rows, start=1):
        print(f"{i:>4} {r['identity']:>8} {r['score']:>7.3f} {r['n_tracks']:>6}  track {r['best_track']} "
              f"({r['camera_id']} {r['modality']}, {r['track_uid']})")
    if not rows:
        print("no identities")
    return 0
