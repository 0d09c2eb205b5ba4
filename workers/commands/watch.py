"""``xreid watch add/list/rm``: watchlists, "tell me when this person shows up" (``watchlist.hit`` events).

``add --image`` embeds crops of one person with the same encoder and image policy as ``xreid search
--image`` (one reference vector per image); ``add --identity`` takes the stored embeddings of an identity's tracks. The running matcher
(embedded replay or distributed) re-reads the watchlists every ``events.watchlist_refresh_s``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .search import image_limits, read_images
from .tracks import add_store_arg, fmt_time, int_flag, open_store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("watch", help="watchlists: announce a watchlist.hit when this person shows up",
                       description="Add, list and remove watchlist entries in the store. The matcher compares every "
                                   "new or updated track of the entry's model with it and announces a hit once per "
                                   "track (MQTT, webhooks, GET /events/stream).")
    cmds = p.add_subparsers(dest="watch_command", metavar="ACTION", required=True)
    add = cmds.add_parser("add", help="add an entry from images of one person or from an identity")
    src = add.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", action="extend", nargs="+", metavar="PATH",
                     help="a crop of the person (repeat for several: one reference each, encoded like "
                          "`xreid search --image`)")
    src.add_argument("--identity", type=int_flag(lo=1), metavar="ID", help="a stored identity: its tracks' embeddings")
    add.add_argument("--name", required=True, help="what its hits are called")
    add.add_argument("--threshold", type=float, help="cosine a track needs (default events.watchlist_threshold)")
    add.add_argument("--modality", choices=("rgb", "ir"), default="rgb", help="modality of --image (default rgb)")
    add.add_argument("--checkpoint", help="X-ReID checkpoint for --image: the model the pipeline runs (default: the "
                                          "committed tiny model)")
    add.add_argument("--device", default="cpu", help="encoder device for --image (default cpu)")
    add_store_arg(add)
    add.set_defaults(func=run_add)
    ls = cmds.add_parser("list", help="list the entries")
    add_store_arg(ls)
    ls.set_defaults(func=run_list)
    rm = cmds.add_parser("rm", help="remove an entry (its references and recorded hits go with it)")
    rm.add_argument("id", type=int_flag(lo=1), help="entry id (see `xreid watch list`)")
    add_store_arg(rm)
    rm.set_defaults(func=run_rm)


def _default_threshold(args: argparse.Namespace) -> float:
    from pipeline.config.loader import load_config
    from pipeline.config.settings import XreidCfg

    config = args.config or ("configs/default.yaml" if Path("configs/default.yaml").is_file() else None)
    return load_config(XreidCfg, config, env=os.environ).events.watchlist_threshold


def run_add(args: argparse.Namespace) -> int:
    from models.errors import ConfigError
    from pipeline.store import watchlists

    threshold = args.threshold if args.threshold is not None else _default_threshold(args)
    if not -1.0 <= threshold <= 1.0:
        raise ConfigError(f"--threshold must be a cosine in [-1, 1], got {threshold}")
    if args.image:
        from workers.identity_chain import load_encoder

        crops = read_images(args.image, *image_limits(args))   # refused before the model loads
        encoder = load_encoder(args.checkpoint, args.device, amp=False)
        # one reference per image (a hit reports a score for each), encoded as `xreid search --image` does
        model_id, refs = encoder.model_id, encoder.encode([[c] for c in crops], [args.modality] * len(crops))
        track_nos, identity = None, None
    with open_store(args, writable=True) as store:
        watchlists.check_store(store)
        if not args.image:
            identity = args.identity
            model_id, track_nos, refs = watchlists.identity_references(store, identity)
        entry_id = watchlists.add_entry(store, args.name, model_id, threshold, refs, identity_id=identity,
                                        track_nos=track_nos)
        entry = watchlists.get_entry(store, entry_id)
    assert entry is not None
    if args.json:
        json.dump(entry.listing(), sys.stdout)
        print()
        return 0
    source = f"identity {identity}" if identity is not None else f"{len(args.image)} image(s)"
    print(f"watchlist entry {entry.id} {entry.name!r}: {entry.n_refs} reference(s) from {source}, model "
          f"{entry.model_id}, threshold {entry.threshold:.2f}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from pipeline.store import watchlists

    with open_store(args) as store:
        entries = watchlists.list_entries(store)
    if args.json:
        json.dump([e.listing() for e in entries], sys.stdout, indent=1)
        print()
        return 0
    if not entries:
        print("no watchlist entries (add one with `xreid watch add`)")
        return 0
    print(f"{'id':>4} {'name':<24}{'threshold':>9} {'refs':>4} {'hits':>5} {'identity':>8}  {'created (UTC)':<20} model")
    for e in entries:
        ident = "-" if e.identity_id is None else str(e.identity_id)
        print(f"{e.id:>4} {e.name[:23]:<24}{e.threshold:>9.2f} {e.n_refs:>4} {e.n_hits:>5} {ident:>8}  "
              f"{fmt_time(e.created_at):<20} {e.model_id}")
    return 0


def run_rm(args: argparse.Namespace) -> int:
    from models.errors import StoreError
    from pipeline.store import watchlists

    with open_store(args, writable=True) as store:
        watchlists.check_store(store)
        if not watchlists.remove_entry(store, args.id):
            raise StoreError(f"no watchlist entry {args.id} in {store.path}")
    if not args.json:
        print(f"watchlist entry {args.id} removed")
    return 0
