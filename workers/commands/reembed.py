"""``xreid reembed``: move a store to another re-ID model (e.g. one `xreid adapt` wrote); docs/adapt.md."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reembed", help="re-embed a store's tracks under another model and relink its identities",
                       description="Re-embeds every track from the crops kept beside the store, then recomputes "
                                   "identities with the matcher: the whole store moves to the new model_id, never a "
                                   "mixed gallery. Stop the matcher first (distributed mode: docs/adapt.md).")
    p.add_argument("--store", required=True, help="SQLite store to move")
    p.add_argument("--checkpoint", required=True, help="the X-ReID checkpoint to move to")
    p.add_argument("--config", default=None, help="pipeline YAML for the matcher settings (default: "
                                                  "configs/default.yaml when present)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default 2)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    import torch
    from tqdm import tqdm

    from models.errors import ConfigError
    from models.xreid.encoder import ReidEncoder
    from pipeline.adapt.reembed import reembed
    from pipeline.config.loader import load_config
    from pipeline.config.settings import XreidCfg

    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    config = args.config or ("configs/default.yaml" if Path("configs/default.yaml").is_file() else None)
    cfg = load_config(XreidCfg, config, env=os.environ)
    from pipeline.store.base import is_postgres

    if is_postgres(args.store):   # crops are files beside a SQLite store; a database has no "beside"
        raise ConfigError("xreid reembed works on a SQLite store with its crops beside it: copy the PostgreSQL store "
                          "into a file (xreid store copy URL site.sqlite) and move its crops (store.crops_dir) to "
                          "site.crops/ (docs/store.md)")
    if not Path(args.store).is_file():
        raise ConfigError(f"no store at {args.store}")
    encoder = ReidEncoder.from_checkpoint(args.checkpoint, device="cpu", preprocess_workers=1)
    bar = None if args.no_progress else tqdm(unit="track", desc="reembed", dynamic_ncols=True)

    def progress(n: int) -> None:
        if bar is not None:
            bar.n = n
            bar.refresh()

    try:
        result = reembed(args.store, encoder, cfg.matcher, progress)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
        return 0
    was = ", ".join(result.previous_model_ids) or "none"
    print(f"store {args.store}: {result.tracks_moved} of {result.tracks} tracks re-embedded ({result.clips} clips) "
          f"under {result.model_id} (was {was}); identities {result.identities_before} -> {result.identities_after}")
    if result.tracks_without_crops:
        print(f"{result.tracks_without_crops} track(s) had no kept crops: left without vector or identity")
    return 0
