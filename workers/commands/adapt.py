"""``xreid adapt``: fine-tune the re-ID model on a store's own unlabelled tracks (docs/adapt.md)."""

from __future__ import annotations

import argparse
import sys
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("adapt", help="fine-tune the re-ID model on a store's own footage (no labels)",
                       description="Self-supervised adaptation on the tracks a deployment already stored: crops of "
                                   "one track are one person, tracks one camera saw at once are two, RGB crops "
                                   "rendered near-infrared / thermal are the same person. Writes a new checkpoint "
                                   "(new model_id) with a model card and a loss-curve PNG beside it. The store is "
                                   "not changed: move it to the new model with `xreid reembed`.")
    p.add_argument("--store", required=True, help="the store to learn from (its crops folder must be beside it)")
    p.add_argument("--out", required=True, help="checkpoint to write (atomically), e.g. site-model.pt")
    p.add_argument("--from", dest="from_checkpoint", default=None,
                   help="checkpoint to start from (default: the shipped default model)")
    p.add_argument("--minutes", type=float, default=20.0, help="training time budget in minutes (default 20)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--centre", action="store_true",
                   help="also store the site's mean embedding per modality in the checkpoint, for the adapted model "
                        "to subtract (docs/adapt.md \"Site centre\": better probe mAP, no better whole-chain links)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from models.errors import ConfigError
    from pipeline.store.base import is_postgres

    if is_postgres(args.store):   # crops are files beside a SQLite store; a database has no "beside"
        raise ConfigError("xreid adapt works on a SQLite store with its crops beside it: copy the PostgreSQL store "
                          "into a file (xreid store copy URL site.sqlite) and move its crops (store.crops_dir) to "
                          "site.crops/ (docs/store.md)")
    if not args.minutes > 0:
        raise ConfigError(f"--minutes must be > 0, got {args.minutes}")
    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    import torch
    from tqdm import tqdm

    from models.weights import DEFAULT_CHECKPOINT
    from models.xreid.checkpoint import load_checkpoint, save_checkpoint
    from pipeline.adapt.card import card_paths, write_card, write_loss_png
    from pipeline.adapt.site import load_site
    from pipeline.adapt.trainer import AdaptOptions, SiteAdapter, site_centre

    torch.set_num_threads(args.threads)
    source = Path(args.from_checkpoint) if args.from_checkpoint else DEFAULT_CHECKPOINT
    t_load = time.monotonic()
    model = load_checkpoint(source)
    from_id = model.model_id
    site = load_site(args.store, tuple(model.cfg.input_hw))
    counts = site.counts()
    mismatch = bool(site.store_model_ids) and site.store_model_ids != [from_id]
    if mismatch:
        # reported, never mixed: adapt only reads crops; the store keeps its vectors until `xreid reembed`
        print(f"xreid adapt: note: store {args.store} was embedded by {', '.join(site.store_model_ids)}, adapting "
              f"{from_id}; its galleries stay as they are until `xreid reembed --store {args.store} --checkpoint "
              f"{args.out}`", file=sys.stderr)
    print(f"adapt: {counts['tracks']} tracks, {counts['crops']} crops, cameras {counts['cameras']}, "
          f"{counts['hard_negative_pairs']} same-camera simultaneous pairs; from {from_id}; "
          f"budget {args.minutes:g} min on {args.threads} thread(s)", flush=True)
    options = AdaptOptions(minutes=args.minutes, seed=args.seed)
    adapter = SiteAdapter(model, site, options)
    budget_s = options.minutes * 60.0
    bar = None if args.no_progress else tqdm(total=round(budget_s), unit="s", desc="adapt", dynamic_ncols=True)

    def progress(elapsed: float, loss: float) -> None:
        if bar is not None:
            bar.n = min(round(elapsed), bar.total)
            bar.set_postfix(loss=f"{loss:.3f}", refresh=True)

    try:
        result = adapter.run(progress)
    finally:
        if bar is not None:
            bar.close()
    centre_clips = None
    if args.centre:
        centre, centre_clips = site_centre(model, site.tracks, int(model.cfg.seq_len))
        model.set_site_centre(centre)
    card = {
        "kind": "xreid-site-adaptation",
        "from_model_id": from_id,
        "from_checkpoint": str(source),
        "source_store": str(Path(args.store).resolve()),
        "store_model_ids": site.store_model_ids,
        "store_model_mismatch": mismatch,
        "counts": counts,
        "options": {k: v for k, v in options.__dict__.items()},
        "steps": result.steps,
        "train_seconds": round(result.seconds, 1),
        "total_seconds": None,
        "threads": args.threads,
        "trainable_params": result.trainable_params,
        "site_centre_clips": centre_clips,
        "pseudo_labels": result.relabels,
        "loss_first": result.losses[0] if result.losses else None,
        "loss_last_mean": float(sum(result.losses[-20:]) / max(len(result.losses[-20:]), 1)),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    card_path, png_path = card_paths(args.out)
    card["loss_png"] = png_path.name
    card["total_seconds"] = round(time.monotonic() - t_load, 1)
    model_id = save_checkpoint(model, args.out, extra={"adapt": card})   # atomic: never half a file
    card["model_id"] = model_id
    write_loss_png(result.losses, png_path, f"{model_id} on {Path(args.store).name}")
    card["losses"] = [round(v, 5) for v in result.losses]
    write_card(card, card_path)
    print(f"adapted {from_id} -> {model_id} in {result.steps} steps ({result.seconds:.0f} s of training); "
          f"{'' if centre_clips is None else f'site centre from {centre_clips} clips; '}"
          f"checkpoint {args.out}, card {card_path}, loss curve {png_path}")
    return 0
