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

With ``--seeds`` every variant is trained once per seed and the table shows mean ± std over
seeds: at this budget single runs differ by a few queries, so one seed cannot rank the rows.
Prints a table and writes ``bench-out/vvi_synth.json`` (per-run results included). The tiny model
is randomly initialised (no CLIP weights can be downloaded here), so absolute numbers say little
about the real benchmarks; the comparison between rows is the point.

    .venv/bin/python benchmarks/vvi_synth.py                          # one seed, 4 models, ~10-20 min on 2 shared cores
    .venv/bin/python benchmarks/vvi_synth.py --seeds 7 8 9 10 11      # five seeds
    .venv/bin/python benchmarks/vvi_synth.py --seeds 7 8 --only xreid baseline   # split runs across processes,
    .venv/bin/python benchmarks/vvi_synth.py --seeds 7 8 --collect-only         # then tabulate them
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.data.synth import SynthCfg, write_synth_vcm  # noqa: E402
from models.data.vcm import load_vcm  # noqa: E402
from models.train import TrainCfg, Trainer  # noqa: E402
from pipeline.config import from_dict, load_config  # noqa: E402

BASELINE_MODEL = {"sie_coe": 0.0, "mii_long_term": "off", "mii_cross_modality": False}


def variants(cfg: TrainCfg) -> dict[str, TrainCfg]:
    """The four configs: everything equal except the components under test."""
    def with_(model: dict | None = None, **loss) -> TrainCfg:
        m = dataclasses.replace(cfg.model, overrides={**cfg.model.overrides, **(model or {})})
        return dataclasses.replace(cfg, model=m, loss=dataclasses.replace(cfg.loss, **loss))

    return {
        "baseline": with_(BASELINE_MODEL, branches="clip", cpc_weight=0.0, cpc_start_epoch=0, cross_modal_weight=0.0),
        "xreid": cfg,
        "xreid-no-cpc": with_(cpc_weight=0.0, cpc_start_epoch=0),
        "xreid-no-mii": with_({"mii_long_term": "off", "mii_cross_modality": False}, branches="clip",
                              cross_modal_weight=0.0),
    }


def run_stamp(vcfg: TrainCfg, synth: SynthCfg) -> dict:
    """What a saved run must match to be tabulated: its variant's effective config and the data."""
    return json.loads(json.dumps({"variant_config": dataclasses.asdict(vcfg), "synth": dataclasses.asdict(synth)},
                                 default=list))


def saved_run_stamp(saved: dict, name: str) -> dict:
    """The ``run_stamp`` of a saved run. Older runs were stamped with the seed's base config; their
    variant's config is rebuilt from it, so a base-config change that a variant overrides anyway
    (``loss.cpc_weight`` for baseline and xreid-no-cpc) does not discard them. A saved variant config is
    re-read with today's defaults, so a key added since (``loss.cpc_start_epoch``) compares at its default."""
    if "variant_config" in saved:
        return run_stamp(from_dict(TrainCfg, saved["variant_config"], source="result.json"), SynthCfg(**saved["synth"]))
    base = from_dict(TrainCfg, saved["config"], source="result.json")
    return run_stamp(variants(base)[name], SynthCfg(**saved["synth"]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "train-tiny-synth.yaml"))
    ap.add_argument("--data", default=str(ROOT / "bench-out" / "vvi_synth" / "data"), help="synthetic set (made if absent)")
    ap.add_argument("--identities", type=int, default=160)
    ap.add_argument("--test-identities", type=int, default=40)
    ap.add_argument("--data-seed", type=int, default=7)
    ap.add_argument("--epochs", type=int, help="override the config's epochs (same for every variant)")
    ap.add_argument("--seeds", type=int, nargs="+", help="training seeds (default: the config's); each seed trains "
                    "every variant, the table reports the mean and spread over seeds")
    ap.add_argument("--only", nargs="*", help="run only these variants")
    ap.add_argument("--collect-only", action="store_true", help="train nothing; tabulate finished runs")
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "vvi_synth.json"))
    args = ap.parse_args()

    cfg = load_config(TrainCfg, args.config)
    if args.epochs:
        cfg = dataclasses.replace(cfg, epochs=args.epochs)
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
    seeds = args.seeds or [cfg.seed]
    results: dict[str, dict[str, dict]] = {}
    for seed in seeds:
        scfg = dataclasses.replace(cfg, seed=seed)
        for name, vcfg in variants(scfg).items():
            stamp = run_stamp(vcfg, synth)
            run_dir = runs / f"seed{seed}" / name
            if not args.collect_only and not (args.only and name not in args.only):
                t0 = time.monotonic()
                trainer = Trainer(vcfg, ds, run_dir)
                trainer.fit(evaluate=False)                   # same budget for all; evaluate once at the end
                train_s = time.monotonic() - t0
                res = trainer.evaluate()
                row = {"train_seconds": round(train_s, 1), **res.to_dict()}
                for d in res.directions():
                    row[d.name].pop("cmc")
                (run_dir / "result.json").write_text(json.dumps({"stamp": stamp, "result": row}))
                print(f"seed {seed} {name:<14} trained in {train_s / 60:.1f} min  "
                      + "  ".join(f"{d.name} R1 {100 * d.rank(1):.1f} mAP {100 * d.mAP:.1f}" for d in res.directions()),
                      flush=True)
            # the table holds every run made with this exact config, seed and data (runs may be split with --only)
            f = run_dir / "result.json"
            if f.is_file():
                saved = json.loads(f.read_text())
                if saved_run_stamp(saved["stamp"], name) == stamp:
                    results.setdefault(name, {})[str(seed)] = saved["result"]

    def stat(name: str, direction: str, metric: str) -> tuple[float, float]:
        vals = np.array([100 * r[direction][metric] for r in results[name].values()])
        return float(vals.mean()), float(vals.std())

    head = (f"{'model':<14}{'seeds':>6}{'IR→RGB R1':>14}{'mAP':>13}{'RGB→IR R1':>14}{'mAP':>13}{'train min':>11}")
    print("\n" + head + "\n" + "-" * len(head))
    summary = {}
    for name in variants(cfg):
        if name not in results:
            continue
        cells = {}
        line = f"{name:<14}{len(results[name]):>6}"
        for direction in ("ir_to_rgb", "rgb_to_ir"):
            for metric in ("rank1", "mAP"):
                m, sd = stat(name, direction, metric)
                cells[f"{direction}_{metric}"] = {"mean": m, "std": sd}
                line += f"{m:>8.2f} ±{sd:>4.1f}" if metric == "rank1" else f"{m:>7.2f} ±{sd:>4.1f}"
        minutes = np.mean([r["train_seconds"] for r in results[name].values()]) / 60
        line += f"{minutes:>11.1f}"
        summary[name] = cells
        print(line)
    report = {
        "benchmark": "vvi_synth",
        "protocol": "HITSZ-VCM rules on held-out synthetic identities; both directions",
        "data": {"synth": dataclasses.asdict(synth), "train_pids": meta["train_pids"], "test_pids": meta["test_pids"]},
        "config": args.config, "epochs": cfg.epochs, "iters_per_epoch": cfg.iters_per_epoch, "seeds": seeds,
        "threads": cfg.threads, "machine": platform.platform(), "summary_percent": summary, "runs": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
