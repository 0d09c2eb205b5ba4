"""X-ReID vs a mean-pooled CLIP-backbone baseline, and ablations, on held-out synthetic identities.

One synthetic visible+thermal dataset (``xreid synth``; the test identities never appear in
training), four models trained on CPU with the same data, seed, config and budget
(``configs/train-tiny-synth.yaml``: epochs × iterations, P×K batches), evaluated under the
HITSZ-VCM protocol in both directions:

  baseline      CLIP image tower, frame features mean-pooled over T, BN-neck; ID + triplet + frame ID
                losses; no camera embedding, no MII, no CPC (the CLIP-ReID-style video baseline)
  xreid         full X-ReID: camera embedding + MII (short-/long-term, cross-modality) + CPC
  xreid-no-cpc  X-ReID without the prototype loss
  xreid-no-mii  X-ReID without MII (only the CLIP branch is trained and embedded; CPC kept)

Prints a table and writes ``bench-out/vvi_synth.json``. The tiny model is randomly initialised
(no CLIP weights can be downloaded here), so absolute numbers say little about the real
benchmarks; the comparison between rows is the point.

    .venv/bin/python benchmarks/vvi_synth.py                 # ~25 min on 2 shared cores
    .venv/bin/python benchmarks/vvi_synth.py --epochs 4      # quick look
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.data.synth import SynthCfg, write_synth_vcm  # noqa: E402
from models.data.vcm import load_vcm  # noqa: E402
from models.train import TrainCfg, Trainer  # noqa: E402
from pipeline.config import load_config  # noqa: E402

BASELINE_MODEL = {"sie_coe": 0.0, "mii_long_term": "off", "mii_cross_modality": False}


def variants(cfg: TrainCfg) -> dict[str, TrainCfg]:
    """The four configs: everything equal except the components under test."""
    def with_(model: dict | None = None, **loss) -> TrainCfg:
        m = dataclasses.replace(cfg.model, overrides={**cfg.model.overrides, **(model or {})})
        return dataclasses.replace(cfg, model=m, loss=dataclasses.replace(cfg.loss, **loss))

    return {
        "baseline": with_(BASELINE_MODEL, branches="clip", cpc_weight=0.0, cross_modal_weight=0.0),
        "xreid": cfg,
        "xreid-no-cpc": with_(cpc_weight=0.0),
        "xreid-no-mii": with_({"mii_long_term": "off", "mii_cross_modality": False}, branches="clip",
                              cross_modal_weight=0.0),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "train-tiny-synth.yaml"))
    ap.add_argument("--data", default=str(ROOT / "bench-out" / "vvi_synth" / "data"), help="synthetic set (made if absent)")
    ap.add_argument("--identities", type=int, default=160)
    ap.add_argument("--test-identities", type=int, default=40)
    ap.add_argument("--data-seed", type=int, default=7)
    ap.add_argument("--epochs", type=int, help="override the config's epochs (same for every variant)")
    ap.add_argument("--seed", type=int, help="override the config's training seed (same for every variant)")
    ap.add_argument("--only", nargs="*", help="run only these variants")
    ap.add_argument("--collect-only", action="store_true", help="train nothing; tabulate finished runs")
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "vvi_synth.json"))
    args = ap.parse_args()

    cfg = load_config(TrainCfg, args.config)
    if args.epochs:
        cfg = dataclasses.replace(cfg, epochs=args.epochs)
    if args.seed is not None:
        cfg = dataclasses.replace(cfg, seed=args.seed)
    torch.set_num_threads(max(1, cfg.threads))
    data = Path(args.data)
    synth = SynthCfg(num_identities=args.identities, num_test_identities=args.test_identities, seed=args.data_seed)
    if not (data / "synth.json").is_file() or json.loads((data / "synth.json").read_text())["config"] != dataclasses.asdict(synth):
        t0 = time.monotonic()
        write_synth_vcm(data, synth)
        print(f"rendered synthetic set in {time.monotonic() - t0:.0f} s -> {data}")
    ds = load_vcm(data, min_seq_len=cfg.data.min_seq_len, num_cameras=cfg.data.num_cameras, name="synth")
    meta = json.loads((data / "synth.json").read_text())
    print(ds.summary())

    runs = Path(args.out).parent / Path(args.out).stem / "runs"      # bench-out/vvi_synth/runs by default
    stamp = {"config": dataclasses.asdict(cfg), "synth": dataclasses.asdict(synth)}
    for name, vcfg in variants(cfg).items():
        if args.collect_only or (args.only and name not in args.only):
            continue
        t0 = time.monotonic()
        trainer = Trainer(vcfg, ds, runs / name)
        trainer.fit(evaluate=False)                       # same budget for all; evaluate once at the end
        train_s = time.monotonic() - t0
        res = trainer.evaluate()
        row = {"train_seconds": round(train_s, 1), **res.to_dict()}
        for d in res.directions():
            row[d.name].pop("cmc")
        (runs / name / "result.json").write_text(json.dumps({"stamp": stamp, "result": row}, default=list))
        print(f"{name:<14} trained in {train_s / 60:.1f} min  "
              + "  ".join(f"{d.name} R1 {100 * d.rank(1):.1f} mAP {100 * d.mAP:.1f}" for d in res.directions()),
              flush=True)

    # the table holds every variant trained with this exact config and data (runs may be split with --only)
    results = {}
    for name in variants(cfg):
        f = runs / name / "result.json"
        if f.is_file():
            saved = json.loads(f.read_text())
            if saved["stamp"] == json.loads(json.dumps(stamp, default=list)):
                results[name] = saved["result"]
    head = f"{'model':<14}{'IR→RGB R1':>11}{'mAP':>7}{'RGB→IR R1':>11}{'mAP':>7}{'train min':>11}"
    print("\n" + head + "\n" + "-" * len(head))
    for name, r in results.items():
        a, b = r["ir_to_rgb"], r["rgb_to_ir"]
        print(f"{name:<14}{100 * a['rank1']:>11.2f}{100 * a['mAP']:>7.2f}{100 * b['rank1']:>11.2f}{100 * b['mAP']:>7.2f}"
              f"{r['train_seconds'] / 60:>11.1f}")
    report = {
        "benchmark": "vvi_synth",
        "protocol": "HITSZ-VCM rules on held-out synthetic identities; both directions",
        "data": {"synth": dataclasses.asdict(synth), "train_pids": meta["train_pids"], "test_pids": meta["test_pids"]},
        "config": args.config, "epochs": cfg.epochs, "iters_per_epoch": cfg.iters_per_epoch, "seed": cfg.seed,
        "threads": cfg.threads, "machine": platform.platform(), "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
