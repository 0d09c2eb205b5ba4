"""``xreid up``: run a whole site (camera, re-ID, matcher, API workers) as supervised processes."""

from __future__ import annotations

import argparse
import os
import sys
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="run a site's workers as supervised child processes (no Docker)",
                       description="Start the camera, re-ID, matcher and API workers of a site against a Redis URL, "
                                   "restart the ones that die, and show their status. Ctrl-C or SIGTERM stops all.")
    p.add_argument("--config", default="configs/site.yaml", help="site YAML (default: %(default)s)")
    p.add_argument("--status-every", type=float, default=10.0, metavar="S",
                   help="print the status table every S seconds; 0 disables (default: %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="print the commands that would run, then exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.config import load_config
    from workers.site import SiteCfg, site_processes
    from workers.supervisor import Supervisor, format_status

    # XREID_REDIS_URL, which the workers read, also wins over the site file's redis_url.
    url = os.environ.get("XREID_REDIS_URL")
    site = load_config(SiteCfg, args.config, overrides={"redis_url": url} if url else None)
    specs = site_processes(site)
    if args.dry_run:
        for spec in specs:
            print(f"{spec.name:<10} {' '.join(spec.argv)}")
        return 0
    sup = Supervisor(specs, max_restarts=site.restart.max_restarts, backoff_s=site.restart.backoff_s,
                     backoff_max_s=site.restart.backoff_max_s, log_dir=site.log_dir)
    sup.install_signal_handlers()
    last = [0.0]

    def show(s: Supervisor) -> None:
        if args.status_every > 0 and time.monotonic() - last[0] >= args.status_every:
            last[0] = time.monotonic()
            print(format_status(s.status_rows()), flush=True)

    print(f"xreid up: {len(specs)} processes, logs in {site.log_dir}; Ctrl-C stops them", file=sys.stderr)
    code = sup.run(on_tick=show)
    print(format_status(sup.status_rows()))
    return code
