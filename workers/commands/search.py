"""``xreid search``: nearest identities to person image(s) or to a stored track."""

from __future__ import annotations

import argparse
import json
import sys

from .tracks import add_store_arg, open_store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="nearest identities to person images or to a track",
                       description="--image crops of ONE person (1..T images, one clip) are embedded with "
                                   "--checkpoint (default: the committed synthetic-trained tiny model); --track uses a stored track's embedding (uid or number).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", nargs="+", metavar="PATH", help="person crop image(s) of one person")
    src.add_argument("--track", metavar="ID", help="a stored track: its track_uid or number")
    p.add_argument("--modality", choices=("rgb", "ir"), default="rgb", help="modality of --image (default rgb)")
    p.add_argument("--checkpoint", help="X-ReID checkpoint for --image (the model the store was built with; default: the committed tiny model)")
    p.add_argument("--device", default="cpu", help="encoder device for --image (default cpu)")
    p.add_argument("-k", type=int, default=5, help="identities to return (default 5)")
    add_store_arg(p)
    p.set_defaults(func=run)


def _read_images(paths: list[str]) -> list:
    from pathlib import Path

    import cv2
    import numpy as np

    from models.errors import ContractError

    crops = []
    for path in paths:
        if not Path(path).is_file():
            raise ContractError(f"--image {path}: file not found")
        img = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ContractError(f"--image {path}: not a readable image (JPEG, PNG, ...)")
        crops.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    return crops


def run(args: argparse.Namespace) -> int:
    from models.errors import ConfigError, StoreError
    from pipeline.matcher import records
    from pipeline.matcher.matcher import Matcher

    if args.k < 1:
        raise ConfigError(f"-k must be >= 1, got {args.k}")
    with open_store(args) as store:
        if store.schema_version < 2:
            raise StoreError(f"store {store.path} has no identities yet (schema v{store.schema_version})")
        if args.track is not None:
            found = records.track_vector(store, args.track)
            if found is None:
                raise StoreError(f"no embedded track {args.track!r} in {store.path}")
            model_id, vector = found
        else:
            from workers.identity_chain import load_encoder

            crops = _read_images(args.image)
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
