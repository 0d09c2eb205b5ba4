"""``xreid store copy SRC DST``: move a store between SQLite and PostgreSQL (every table, counts verified)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("store", help="store maintenance: copy a store between SQLite and PostgreSQL",
                       description="Operations on a whole store. A store is a SQLite file or a "
                                   "postgresql://user@host:port/db URL (password from PGPASSWORD).")
    ops = p.add_subparsers(dest="op", metavar="OP", required=True)
    cp = ops.add_parser("copy", help="copy every table of SRC into the new or empty store DST, verified by counts",
                        description="Copy every table of SRC into DST (a new SQLite file or an empty PostgreSQL "
                                    "database), from one consistent read of SRC, in one DST transaction; the row "
                                    "counts of both are compared before it commits. DST is then migrated to this "
                                    "build's schema. Stop the matcher first if SRC must not change after the copy.")
    cp.add_argument("src", metavar="SRC", help="the store to copy (it is only read)")
    cp.add_argument("dst", metavar="DST", help="a SQLite file that does not exist yet, or an empty database")
    cp.add_argument("--config", help="pipeline YAML for the store section's connection settings (default: "
                                     "configs/default.yaml when present)")
    cp.add_argument("--json", action="store_true", help="machine-readable output")
    cp.set_defaults(func=run_copy)


def run_copy(args: argparse.Namespace) -> int:
    from models.errors import StoreError
    from pipeline.config.loader import load_config
    from pipeline.config.settings import XreidCfg
    from pipeline.store.base import is_postgres
    from pipeline.store.configured import CLI_GIVE_UP_S, network_options
    from pipeline.store.copy import copy_store

    config = args.config or ("configs/default.yaml" if Path("configs/default.yaml").is_file() else None)
    cfg = load_config(XreidCfg, config, env=os.environ).store
    if not is_postgres(args.src) and not Path(args.src).is_file():
        raise StoreError(f"no store at {args.src}")
    if not is_postgres(args.dst) and Path(args.dst).exists():
        raise StoreError(f"{args.dst} exists: copy into a new file (or an empty PostgreSQL database)")
    if args.src == args.dst:
        raise StoreError("SRC and DST are the same store")
    result = copy_store(args.src, args.dst, network_options(cfg, give_up_s=cfg.retry_timeout_s or CLI_GIVE_UP_S))
    if args.json:
        json.dump({"source": result.source, "destination": result.destination, "rows": result.rows,
                   "schema_version": result.version, "migrated_to": result.migrated_to}, sys.stdout, indent=1)
        print()
        return 0
    print(f"{'table':<20}{'rows':>10}")
    for table, n in result.rows.items():
        print(f"{table:<20}{n:>10}")
    print(f"copied {sum(result.rows.values())} rows in {len(result.rows)} tables from {result.source} to "
          f"{result.destination} (schema v{result.version}, counts verified)"
          + (f"; destination migrated to v{result.migrated_to}" if result.migrated_to != result.version else ""))
    return 0
