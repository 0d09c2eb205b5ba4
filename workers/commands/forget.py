"""``xreid forget``: erase a person (an identity), one track, or what a camera saw before a time.

The request is queued in the store; a running matcher executes it between two batches, otherwise this
command executes it itself (``pipeline/matcher/forget.py``). Exit 0: erased, or already erased (nothing
left); 2: bad input or an unknown id; 3: queued, but the running matcher did not finish within ``--wait``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from .tracks import fmt_time, int_flag, parse_time

EXIT_PENDING = 3


def add_writable_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", help="the store: a SQLite file or postgresql://user@host:port/db, password from "
                                   "PGPASSWORD (default: store.url, else store.path of the config, "
                                   "xreid-out/xreid.sqlite)")
    p.add_argument("--out", metavar="DIR", help="a replay's output folder whose report files (tracks.jsonl, "
                                                "identities.json, contact sheets) to clean too, and where a "
                                                "PostgreSQL store's crops are when store.crops_dir is unset "
                                                "(default: the SQLite store's folder; none for PostgreSQL)")
    p.add_argument("--config", help="pipeline YAML (default: configs/default.yaml when present)")
    p.add_argument("--redis", nargs="?", const="", default=None, metavar="URL",
                   help="also clean this Redis (dead letters, streams); without URL: $XREID_REDIS_URL")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def load_cfg(args: argparse.Namespace) -> Any:
    from pipeline.config.loader import load_config
    from pipeline.config.settings import XreidCfg

    config = args.config or ("configs/default.yaml" if Path("configs/default.yaml").is_file() else None)
    return load_config(XreidCfg, config, env=os.environ)


def open_writable(args: argparse.Namespace, cfg: Any) -> Any:
    """The store named by --store or the config, for writing (a SQLite file must exist: nothing to erase otherwise).

    An unreachable PostgreSQL store is retried for ``store.retry_timeout_s`` (10 s when 0), then is one line.
    """
    from models.errors import StoreError
    from pipeline.store.base import is_postgres
    from pipeline.store.configured import CLI_GIVE_UP_S, open_store, store_location

    location = store_location(cfg.store, args.store)
    if not is_postgres(location) and not Path(location).is_file():
        raise StoreError(f"no store at {location} (pass --store)")
    return open_store(location, cfg.store, give_up_s=cfg.store.retry_timeout_s or CLI_GIVE_UP_S)


def optional_bus(args: argparse.Namespace, cfg: Any) -> Any:
    if args.redis is None:
        return None
    from pipeline.bus import create_bus
    from workers.lifecycle import resolve_redis_url

    return create_bus(resolve_redis_url(args.redis or None, os.environ, cfg.bus.url), cfg.bus, client_name="forget")


def whoami() -> str:
    """The requester recorded in the tombstone: the OS user and host of this command."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    return f"cli:{user}@{socket.gethostname()}"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("forget", help="erase a person, a track, or a camera's past everywhere xreid keeps them",
                       description="Erase rows, crops, embeddings, links, merges, gallery vectors, contact sheets and "
                                   "dead letters of the tracks named, leaving a tombstone (what, when, who) in the "
                                   "store. A running matcher executes the request; otherwise this command does. "
                                   "Idempotent. Exit 3: queued, not finished within --wait.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--identity", type=int_flag(0), metavar="N", help="an identity (an id merged into another "
                                                                        "erases the person it lives on as)")
    what.add_argument("--track", metavar="UID", help="one track, by uid")
    what.add_argument("--camera", metavar="C", help="a camera's tracks that began before --before")
    p.add_argument("--before", metavar="TIME", help="with --camera: ISO 8601 or epoch seconds")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for a running matcher (default 30)")
    add_writable_store_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from models.errors import ConfigError
    from pipeline.matcher.forget import Eraser, request_forget
    from pipeline.store.erasure import Selector
    from workers.identity_chain import crop_keeper

    if (args.camera is None) != (args.before is None):
        raise ConfigError("--camera and --before go together (erase what the camera saw before TIME)")
    if args.wait < 0:
        raise ConfigError(f"--wait must be >= 0, got {args.wait}")
    if args.identity is not None:
        sel = Selector("identity", str(args.identity))
    elif args.track is not None:
        sel = Selector("track", args.track)
    else:
        sel = Selector("camera", args.camera, parse_time(args.before, "--before"))
    cfg = load_cfg(args)
    who = whoami()
    bus = optional_bus(args, cfg)
    try:
        with open_writable(args, cfg) as store:
            def make_eraser() -> Eraser:
                from pipeline.store.crops import CropKeeper, crops_root

                crops = crop_keeper(cfg, store.location, args.out) or \
                    CropKeeper(crops_root(store.location, cfg.store.crops_dir, args.out))
                return Eraser(store, crops, bus, who, reports_dir=args.out)

            outcome = request_forget(store, sel, who, make_eraser, wait_s=args.wait)
    finally:
        if bus is not None:
            bus.close()
    e = outcome.erasure
    if args.json:
        json.dump(outcome.as_dict(), sys.stdout, indent=1)
        print()
    elif outcome.state == "already":
        print(f"{sel.describe()} was already erased (erasure #{e.id}, {fmt_time(e.done_at)} UTC by {e.executed_by}); "
              "nothing of it is left")
    elif outcome.state == "done":
        print(f"erased {sel.describe()}: {e.n_tracks} track(s), {e.n_identities} identity(ies), {e.n_crops} crop "
              f"folder(s), {e.n_files} report file(s), {e.n_dead} dead letter(s) (erasure #{e.id}, executed by "
              f"{e.executed_by})")
    elif outcome.state == "pending":
        print(f"erasure #{e.id} of {sel.describe()} is queued; the running matcher has not finished it within "
              f"{args.wait:g}s (check with `xreid audit --erasures`)", file=sys.stderr)
        return EXIT_PENDING
    else:
        from models.errors import StoreError

        raise StoreError(f"erasure #{e.id} of {sel.describe()} failed: {e.reason}")
    return 0
