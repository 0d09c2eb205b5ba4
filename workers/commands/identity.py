"""``xreid identity ID``: one person across cameras and modalities, with link scores and merges."""

from __future__ import annotations

import argparse
import json
import sys

from .tracks import add_store_arg, fmt_time, int_flag, open_store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("identity", help="show one identity: its tracks per camera and modality, links, merges",
                       description="An old id that was merged into another shows the surviving identity.")
    p.add_argument("id", type=int_flag(), help="identity id")
    add_store_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from models.errors import StoreError
    from pipeline.store.summaries import identity_detail

    with open_store(args) as store:
        if store.schema_version < 2:
            raise StoreError(f"store {store.path} has no identities yet (schema v{store.schema_version})")
        detail = identity_detail(store, args.id)
    if detail is None:
        raise StoreError(f"no identity {args.id} in {store.path}")
    if args.json:
        json.dump(detail, sys.stdout, indent=1)
        print()
        return 0
    ident = detail["identity"]
    note = f" (id {args.id} was merged into it)" if ident != args.id else ""
    print(f"identity {ident}{note}: {detail['n_tracks']} tracks, {fmt_time(detail['t_start'])} .. "
          f"{fmt_time(detail['t_end'])} UTC, model {detail['model_id']}")
    if detail["merged_ids"]:
        print(f"merged ids: {', '.join(map(str, detail['merged_ids']))}")
    print(f"{'camera':<10}{'mod':<4} {'track':>6} {'start (UTC)':<20}{'dur s':>7}  {'decision':<8}{'score':>7}"
          f"{'thresh':>7} {'pair':<8} evidence")
    for cam, per_mod in sorted(detail["cameras"].items()):
        for mod, tracks in sorted(per_mod.items()):
            for t in tracks:
                decision = next((ln for ln in t["links"] if ln["kind"] in ("join", "new")), None)
                kind = decision["kind"] if decision else "-"
                score = f"{decision['score']:.3f}" if decision and decision["score"] is not None else "-"
                thr = f"{decision['threshold']:.2f}" if decision and decision["threshold"] is not None else "-"
                pair = decision["pair"] or "-" if decision else "-"
                evidence = f"track {decision['matched_track']}" if decision and decision["matched_track"] else ""
                if decision and kind == "new":
                    evidence = decision["reason"]
                blocked = sum(1 for ln in t["links"] if ln["kind"] == "blocked")
                if blocked:
                    evidence += f" ({blocked} blocked)"
                no = "-" if t["track_no"] is None else str(t["track_no"])
                print(f"{cam:<10}{mod:<4} {no:>6} {fmt_time(t['t_start']):<20}{t['t_end'] - t['t_start']:>7.1f}  "
                      f"{kind:<8}{score:>7}{thr:>7} {pair:<8} {evidence}")
    for m in detail["merges"]:
        print(f"merge: {m['loser']} -> {m['winner']} on track {m['evidence_track']} (score {m['score']:.3f}, "
              f"{fmt_time(m['ts'])})")
    return 0
