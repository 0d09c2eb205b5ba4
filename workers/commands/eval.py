"""``xreid eval``: CMC / mAP / mINP of a checkpoint in both VVI directions (table, JSON, CMC PNG)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint on HITSZ-VCM, BUPTCampus or a synthetic set",
                       description="Both protocols (infrared→visible, visible→infrared) under the benchmark's "
                                   "rules: squared Euclidean on L2-normalised features, gallery entries with the "
                                   "query's identity and camera dropped, queries without a match skipped.")
    p.add_argument("--checkpoint", required=True, help="model.pt written by `xreid train`")
    p.add_argument("--data", required=True, help="dataset root")
    p.add_argument("--kind", choices=("vcm", "bupt"), default="vcm", help="dataset layout (synthetic sets: vcm)")
    p.add_argument("--min-seq-len", type=int, default=None, help="VCM: drop shorter tracklets (default 12)")
    p.add_argument("--out", default="xreid-out/eval", help="directory for eval.json and cmc.png")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from models.eval.plot import save_cmc_png
    from models.eval.runner import evaluate_model
    from models.train.trainer import resolve_device
    from models.xreid import load_checkpoint
    from models.xreid.checkpoint import read_checkpoint
    from pipeline.runtime.out_dir import prepare_out_dir
    from workers.commands.train import load_dataset

    out = prepare_out_dir(args.out)  # before the checkpoint and the dataset load
    device = resolve_device(args.device)
    payload = read_checkpoint(args.checkpoint)
    model = load_checkpoint(args.checkpoint, map_location=device).to(device)
    extra = payload.get("extra", {})
    min_seq_len = args.min_seq_len if args.min_seq_len is not None else 12
    dataset = load_dataset(args.kind, args.data, min_seq_len, model.cfg.camera_num)
    result = evaluate_model(model, dataset, batch_size=args.batch_size, device=device,
                            embed_dims=extra.get("embed_dims") or None, amp=device.type == "cuda", rerank=args.rerank)
    report = {"checkpoint": str(args.checkpoint), "model_id": model.model_id, "dataset": dataset.name,
              "data": str(args.data), "rerank": args.rerank, **result.to_dict()}
    (out / "eval.json").write_text(json.dumps(report, indent=1))
    png = save_cmc_png(result, out / "cmc.png", title=f"{dataset.name} — {model.model_id}")
    print(f"{dataset.name}  model {model.model_id}{'  (re-ranked)' if args.rerank else ''}")
    print(result.table())
    print(f"wrote {out / 'eval.json'} and {png}")
    return 0
