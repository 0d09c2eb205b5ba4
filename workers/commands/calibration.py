"""``xreid calibration``: the thresholds the matcher uses per model and modality pair, and the evidence behind them."""

from __future__ import annotations

import argparse
import json
import sys

from .tracks import add_store_arg, fmt_time, open_store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibration", help="show the matcher's thresholds per model and pair: manual, auto or default",
                       description="Per model and modality pair: the threshold in force, where it came from (manual: "
                                   "matcher.thresholds; auto: placed at matcher.calibration.target_fmr of the site's "
                                   "own impostor pairs; default: the fallback, until there is enough evidence), the "
                                   "genuine and impostor samples behind it, and the share of each at or above it.")
    add_store_arg(p)
    p.set_defaults(func=run)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def run(args: argparse.Namespace) -> int:
    from models.errors import StoreError
    from pipeline.store.calibration import list_thresholds

    with open_store(args) as store:
        if store.schema_version < 5:
            raise StoreError(f"store {store.path} has no calibration yet (schema v{store.schema_version}; the matcher "
                             "writes it when it runs)")
        rows = list_thresholds(store)
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    if not rows:
        print("no calibration yet: the matcher has not linked any track in this store")
        return 0
    print(f"{'model':<34}{'pair':<9}{'threshold':>9}  {'source':<8}{'genuine':>8}{'impostor':>9}"
          f"{'imp>=thr':>9}{'gen>=thr':>9}  updated (UTC)")
    for r in rows:
        print(f"{str(r['model_id'])[:33]:<34}{r['pair']:<9}{r['threshold']:>9.3f}  {r['source']:<8}{r['n_genuine']:>8}"
              f"{r['n_impostor']:>9}{_pct(r['impostor_rate']):>9}{_pct(r['genuine_rate']):>9}  "
              f"{fmt_time(r['updated_at']) if r['updated_at'] else '-'}")
    return 0
