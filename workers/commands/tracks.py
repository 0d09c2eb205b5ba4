"""``xreid tracks``: list stored tracks with their identities (filters: camera, modality, time, identity)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SQLITE_INT_MAX = 2**63 - 1


def int_flag(lo: int = -SQLITE_INT_MAX - 1, hi: int = SQLITE_INT_MAX) -> Callable[[str], int]:
    """An argparse ``type`` for integers in ``lo..hi`` (default: what SQLite can bind), so a huge value
    is a usage error (exit 2, one line) rather than an ``OverflowError`` deep in a query."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text[:40]!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value if abs(value) < 10**12 else text[:20] + '...'} is out of "
                                             f"range {lo}..{hi}")
        return value
    return parse


def add_store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", help="the store: a SQLite file or postgresql://user@host:port/db, password from "
                                   "PGPASSWORD (default: store.url, else store.path of the config, "
                                   "xreid-out/xreid.sqlite)")
    p.add_argument("--config", help="pipeline YAML (default: configs/default.yaml when present)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def open_store(args: argparse.Namespace, writable: bool = False) -> Any:
    """The store named by --store or the config, read-only unless ``writable`` (then migrated to this
    build's schema); a missing file is a one-line error.

    An unreachable PostgreSQL store is retried with backoff for ``store.retry_timeout_s`` (10 s when
    that is 0, "never": a query should answer), then is a one-line error too.
    """
    from models.errors import StoreError
    from pipeline.config.loader import load_config
    from pipeline.config.settings import XreidCfg
    from pipeline.store.base import is_postgres
    from pipeline.store.configured import CLI_GIVE_UP_S, open_store, store_location

    config = args.config or ("configs/default.yaml" if Path("configs/default.yaml").is_file() else None)
    cfg = load_config(XreidCfg, config, env=os.environ).store
    location = store_location(cfg, args.store)
    if not is_postgres(location) and not Path(location).is_file():
        raise StoreError(f"no store at {location} (run `xreid replay` or `xreid demo` first, or pass --store)")
    return open_store(location, cfg, readonly=not writable, give_up_s=cfg.retry_timeout_s or CLI_GIVE_UP_S)


def parse_time(text: str | None, flag: str) -> float | None:
    """ISO 8601 (UTC when no zone) or epoch seconds."""
    from datetime import UTC, datetime

    from models.errors import ConfigError

    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{flag} must be ISO 8601 or epoch seconds, got {text!r}") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def fmt_time(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tracks", help="list stored tracks and their identities",
                       description="Tracks overlapping the time range, oldest first. --identity also finds tracks "
                                   "of identities merged into it.")
    p.add_argument("--camera", help="only this camera id")
    p.add_argument("--modality", choices=("rgb", "ir"))
    p.add_argument("--from", dest="t_from", metavar="TIME", help="ISO 8601 or epoch seconds")
    p.add_argument("--to", dest="t_to", metavar="TIME", help="ISO 8601 or epoch seconds")
    p.add_argument("--identity", type=int_flag(), help="only tracks of this identity (old merged ids work too)")
    p.add_argument("--limit", type=int_flag(), default=200, help="at most this many rows (default 200)")
    add_store_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from models.errors import ConfigError
    from pipeline.store.tracks import TrackFilter, list_tracks

    if args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    with open_store(args) as store:
        f = TrackFilter(args.camera, args.modality, parse_time(args.t_from, "--from"), parse_time(args.t_to, "--to"),
                        args.identity)
        rows = list_tracks(store, f, limit=args.limit)
    if args.json:
        json.dump([r.listing() for r in rows], sys.stdout, indent=1)
        print()
        return 0
    print(f"{'track':>6} {'identity':>8}  {'camera':<10}{'mod':<4} {'start (UTC)':<20}{'dur s':>7}{'clips':>6}  track_uid")
    for r in rows:
        ident = "-" if r.identity is None else str(r.identity)
        no = "-" if r.track_no is None else str(r.track_no)
        print(f"{no:>6} {ident:>8}  {r.camera_id:<10}{r.modality:<4} {fmt_time(r.t_start):<20}"
              f"{r.t_end - r.t_start:>7.1f}{r.n_clips:>6}  {r.track_uid}")
    print(f"{len(rows)} track(s)")
    return 0
