"""``xreid retention``: run one retention sweep now (a stopped site, or from cron; the matcher sweeps by itself)."""

from __future__ import annotations

import argparse
import json
import sys

from .forget import add_writable_store_args, load_cfg, open_writable, optional_bus, whoami


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retention", help="delete what is past its retention horizon now (store, files, Redis)",
                       description="One sweep of the retention section of the config (docs/privacy.md): tracks, "
                                   "crops, embeddings, events (the live-event log too), watchlists, audit log; "
                                   "with --redis also streams and dead letters. The matcher sweeps by itself every "
                                   "retention.sweep_every.")
    add_writable_store_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from workers.identity_chain import privacy_duty

    cfg = load_cfg(args)
    bus = optional_bus(args, cfg)
    try:
        with open_writable(args, cfg) as store:
            result = privacy_duty(cfg, store, bus, whoami(), args.out).sweep.run()
    finally:
        if bus is not None:
            bus.close()
    if args.json:
        json.dump(result.as_dict(), sys.stdout, indent=1)
        print()
    else:
        print("retention sweep: " + ", ".join(f"{k} {v}" for k, v in result.as_dict().items()))
    return 0
