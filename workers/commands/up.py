"""``xreid up``: run a whole site (camera, re-ID, matcher, API workers) as supervised processes."""

from __future__ import annotations

import argparse
import os
import sys
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="run a site's workers as supervised child processes (no Docker)",
                       description="Start the camera, re-ID, matcher and API workers of a site against a Redis URL, "
                                   "restart the ones that crash, and show their status. A camera worker whose "
                                   "sources have all ended exits 0 and is shown 'finished', not restarted; with "
                                   "exit_when_cameras_finish in the site file, xreid up then waits for the bus to "
                                   "drain into the store and stops everything. Ctrl-C or SIGTERM stops all.")
    p.add_argument("--config", default="configs/site.yaml", help="site YAML (default: %(default)s)")
    p.add_argument("--status-every", type=float, default=10.0, metavar="S",
                   help="print the status table every S seconds; 0 disables (default: %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="print the commands that would run, then exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.bus import create_bus
    from pipeline.config.loader import load_config
    from pipeline.config.settings import BusCfg
    from workers.drain import DrainWatch
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
    drain: list[DrainWatch] = []
    drain_failed = [False]

    def show(s: Supervisor) -> None:
        if args.status_every > 0 and time.monotonic() - last[0] >= args.status_every:
            last[0] = time.monotonic()
            print(format_status(s.status_rows()), flush=True)

    def tick(s: Supervisor) -> None:
        show(s)
        if not site.exit_when_cameras_finish or not s.finishers_done():
            return
        if not drain:
            print(f"xreid up: cameras finished; waiting up to {site.drain_timeout_s:.0f}s for the bus to drain "
                  "into the store", file=sys.stderr, flush=True)
            # short retries: a poll must not hold the supervisor (and its restarts) while Redis is down
            bus = create_bus(site.redis_url.get_secret_value(), BusCfg(retry_timeout_s=2.0), client_name="xreid-up-drain")
            drain.append(DrainWatch(bus, site.drain_timeout_s))
        watch = drain[0]
        if watch.drained():
            print("xreid up: every clip embedded and stored; stopping the services", file=sys.stderr, flush=True)
            s.stop()
        elif watch.timed_out():
            drain_failed[0] = True
            print(f"xreid up: the bus did not drain in {site.drain_timeout_s:.0f}s (left: {watch.last}); "
                  "stopping the services anyway", file=sys.stderr, flush=True)
            s.stop()

    print(f"xreid up: {len(specs)} processes, logs in {site.log_dir}; Ctrl-C stops them", file=sys.stderr)
    try:
        code = sup.run(on_tick=tick)
    finally:
        for watch in drain:
            watch.close()
    print(format_status(sup.status_rows()))
    return 1 if drain_failed[0] else code
