"""``xreid train``: train X-ReID on HITSZ-VCM, BUPTCampus or a synthetic set (configs/train-*.yaml)."""

from __future__ import annotations

import argparse
import json
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train an X-ReID model",
                       description="Trains with the reference recipe (P×K visible-infrared batches, ID + triplet + "
                                   "frame ID + CPC losses, Adam with warm-up). Writes last.pt (resumable), model.pt "
                                   "(checkpoint for `xreid eval` and the re-ID worker), metrics.csv/.jsonl.")
    p.add_argument("--config", required=True, help="training config YAML, e.g. configs/train-tiny-synth.yaml")
    p.add_argument("--data", help="dataset root (overrides data.root)")
    p.add_argument("--out", default="xreid-out/train", help="output directory (default xreid-out/train)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--epochs", type=int, help="override epochs")
    p.add_argument("--seed", type=int, help="override seed")
    p.add_argument("--device", help="override device (auto, cpu, cuda, cuda:1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def load_dataset(kind: str, root: str, min_seq_len: int, num_cameras: int):
    """The dataset named by a config's data section (used by train and eval)."""
    from models.data import load_bupt, load_vcm
    from models.errors import ConfigError

    if not root:
        raise ConfigError("no dataset: pass --data or set data.root in the config")
    if kind == "bupt":
        return load_bupt(root)
    return load_vcm(root, min_seq_len=min_seq_len, num_cameras=num_cameras)


def run(args: argparse.Namespace) -> int:
    import torch

    from models.train import TrainCfg, Trainer
    from models.xreid.registry import check_pretrained
    from pipeline.config.loader import load_config
    from pipeline.runtime.out_dir import prepare_out_dir

    overrides: dict = {}
    if args.data:
        overrides["data"] = {"root": args.data}
    for key in ("epochs", "seed", "device"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    cfg = load_config(TrainCfg, args.config, env=os.environ, overrides=overrides)
    prepare_out_dir(args.out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    overrides_model = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.model.overrides.items()}
    check_pretrained(cfg.model.name, cfg.model.pretrained, **overrides_model)  # before minutes of data loading
    dataset = load_dataset(cfg.data.kind, cfg.data.root, cfg.data.min_seq_len, cfg.data.num_cameras)
    print(dataset.summary())
    trainer = Trainer(cfg, dataset, args.out, progress=not args.no_progress)
    if args.resume and trainer.resume():
        print(f"resuming after epoch {trainer.start_epoch} of {cfg.epochs}")
    summary = trainer.fit()
    if trainer.last_eval is not None:
        print(trainer.last_eval.table())
    (trainer.out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"model {summary['model_id']} -> {summary['model']}  (metrics: {summary['metrics']})")
    return 0
