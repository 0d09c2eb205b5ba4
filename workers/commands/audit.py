"""``xreid audit``: who queried the API for what (the audit log), and the erasure tombstones."""

from __future__ import annotations

import argparse
import json
import sys

from .tracks import add_store_arg, fmt_time, int_flag, open_store, parse_time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="the query audit log (who looked at what) and erasure tombstones",
                       description="API queries newest first: time, token id (hash prefix), route, parameters, "
                                   "result count, client address. --erasures lists forget requests and tombstones.")
    p.add_argument("--since", metavar="TIME", help="ISO 8601 or epoch seconds")
    p.add_argument("--until", metavar="TIME", help="ISO 8601 or epoch seconds")
    p.add_argument("--token-id", help="only this token id")
    p.add_argument("--route", help="only this route template, e.g. /identities/{identity_id}")
    p.add_argument("--limit", type=int_flag(1, 100_000), default=100, help="at most this many rows (default 100)")
    p.add_argument("--erasures", action="store_true", help="list erasure requests and tombstones instead")
    add_store_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.store.audit import AuditFilter, audit_exists, list_entries, open_audit
    from pipeline.store.base import NetworkOptions
    from pipeline.store.configured import CLI_GIVE_UP_S
    from pipeline.store.erasure import list_erasures

    with open_store(args) as store:
        if args.erasures:
            rows = [e.as_dict() for e in list_erasures(store, args.limit)]
            total = len(rows)
        else:
            f = AuditFilter(parse_time(args.since, "--since"), parse_time(args.until, "--until"), args.token_id,
                            args.route)
            rows, total = [], 0
            if audit_exists(store.location):   # no SQLite log yet: nobody has queried the API
                with open_audit(store.location, readonly=True,
                                network=NetworkOptions(give_up_s=CLI_GIVE_UP_S)) as log_store:
                    entries, total = list_entries(log_store, f, args.limit)
                rows = [e.as_dict() for e in entries]
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    if args.erasures:
        print(f"{'#':>5} {'kind':<9}{'target':<24}{'status':<9}{'requested (UTC)':<20}{'by':<40}{'tracks':>7}"
              f"{'ids':>5}{'crops':>6}{'dead':>5}")
        for e in rows:
            print(f"{e['id']:>5} {e['kind']:<9}{str(e['target'])[:23]:<24}{e['status']:<9}"
                  f"{fmt_time(e['requested_at']):<20}{str(e['requested_by'])[:39]:<40}{e['n_tracks']:>7}"
                  f"{e['n_identities']:>5}{e['n_crops']:>6}{e['n_dead']:>5}")
        print(f"{len(rows)} erasure(s)")
        return 0
    print(f"{'time (UTC)':<20}{'token':<14}{'client':<16}{'status':>6}{'count':>6}  route  params")
    for e in rows:
        params = json.dumps(e["params"], separators=(",", ":"))
        print(f"{fmt_time(e['ts']):<20}{e['token_id']:<14}{str(e['client'] or '-'):<16}{e['status']:>6}"
              f"{e['result_count']:>6}  {e['method']} {e['route']}  {params}")
    print(f"{len(rows)} of {total} entr{'y' if total == 1 else 'ies'}")
    return 0
