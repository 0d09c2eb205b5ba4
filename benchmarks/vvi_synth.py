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

Data: 500 synthetic identities, 100 of them held out, two tracklets per identity and camera
(``--identities``, ``--test-identities``, ``--tracklets-per-camera``, world ``--data-seed`` 7; the
config was tuned on a different world, data seed 8, so these identities were never looked at).
With ``--seeds`` every variant is trained once per seed; the first table shows mean ± std over
seeds, the second each variant's paired per-seed difference from the baseline and on how many
seeds it is ahead. Finished runs with the same config, seed and data are reused, so an interrupted
benchmark resumes (``--retrain`` to redo them). Prints both tables and writes
``bench-out/vvi_synth.json`` (per-run results included). The tiny model is randomly initialised
(no CLIP weights can be downloaded here), so absolute numbers say little about the real
benchmarks; the comparison between rows is the point.

    .venv/bin/python benchmarks/vvi_synth.py --jobs 2                          # one seed, 4 models, ~15 min on 2 cores
    .venv/bin/python benchmarks/vvi_synth.py --seeds 7 8 9 --jobs 2            # three seeds, ~45 min
    .venv/bin/python benchmarks/vvi_synth.py --seeds 7 8 9 --collect-only      # tabulate finished runs
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.data.synth import SynthCfg, write_synth_vcm  # noqa: E402
from models.data.vcm import load_vcm  # noqa: E402
from models.train import TrainCfg, Trainer  # noqa: E402
from pipeline.config.loader import from_dict, load_config  # noqa: E402

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


def train_one(vcfg: TrainCfg, data: str, run_dir: str, stamp: dict, label: str) -> dict:
    """Train and evaluate one variant; a top-level function so ``--jobs`` can run it in a spawned process.

    Each process loads its own copy of the dataset and uses ``vcfg.threads`` torch threads, so two jobs on
    two cores do not oversubscribe them."""
    torch.set_num_threads(max(1, vcfg.threads))
    ds = load_vcm(data, min_seq_len=vcfg.data.min_seq_len, num_cameras=vcfg.data.num_cameras, name="synth")
    t0 = time.monotonic()
    trainer = Trainer(vcfg, ds, run_dir)
    trainer.fit(evaluate=False)                       # same budget for all; evaluate once at the end
    train_s = time.monotonic() - t0
    res = trainer.evaluate()
    row = {"train_seconds": round(train_s, 1), **res.to_dict()}
    for d in res.directions():
        row[d.name].pop("cmc")
    (Path(run_dir) / "result.json").write_text(json.dumps({"stamp": stamp, "result": row}))
    print(f"{label:<22} trained in {train_s / 60:.1f} min  "
          + "  ".join(f"{d.name} R1 {100 * d.rank(1):.1f} mAP {100 * d.mAP:.1f}" for d in res.directions()),
          flush=True)
    return row


def load_result(run_dir: Path, name: str, stamp: dict) -> dict | None:
    """A finished run's result if it was made with exactly this variant config and data, else None."""
    f = run_dir / "result.json"
    if not f.is_file():
        return None
    saved = json.loads(f.read_text())
    return saved["result"] if saved_run_stamp(saved["stamp"], name) == stamp else None


METRICS = [(d, m) for d in ("ir_to_rgb", "rgb_to_ir") for m in ("rank1", "mAP")]


def tables(results: dict[str, dict[str, dict]], names: list[str]) -> tuple[str, dict, dict]:
    """Mean ± std per variant, and each variant's paired difference from the baseline (same seed)."""
    def pct(name: str, seed: str, d: str, m: str) -> float:
        return 100 * results[name][seed][d][m]

    head = f"{'model':<14}{'seeds':>6}{'IR→RGB R1':>14}{'mAP':>13}{'RGB→IR R1':>14}{'mAP':>13}{'train min':>11}"
    lines = [head, "-" * len(head)]
    summary: dict[str, dict] = {}
    for name in names:
        if name not in results:
            continue
        line, cells = f"{name:<14}{len(results[name]):>6}", {}
        for d, m in METRICS:
            vals = np.array([pct(name, s, d, m) for s in results[name]])
            cells[f"{d}_{m}"] = {"mean": float(vals.mean()), "std": float(vals.std())}
            line += f"{vals.mean():>{8 if m == 'rank1' else 7}.2f} ±{vals.std():>4.1f}"
        line += f"{np.mean([r['train_seconds'] for r in results[name].values()]) / 60:>11.1f}"
        summary[name] = cells
        lines.append(line)

    paired: dict[str, dict] = {}
    if "baseline" in results:
        head = f"{'vs baseline':<14}{'seeds':>6}{'IR→RGB R1':>20}{'mAP':>20}{'RGB→IR R1':>20}{'mAP':>20}"
        lines += ["", "paired with the baseline: mean ± std of per-seed differences in points, [seeds ahead/seeds]",
                  head, "-" * len(head)]
        for name in names:
            if name == "baseline" or name not in results:
                continue
            seeds = [s for s in results[name] if s in results["baseline"]]
            if not seeds:
                continue
            line, cells = f"{name:<14}{len(seeds):>6}", {}
            for d, m in METRICS:
                diff = np.array([pct(name, s, d, m) - pct("baseline", s, d, m) for s in seeds])
                ahead = int((diff > 0).sum())
                cells[f"{d}_{m}"] = {"mean": float(diff.mean()), "std": float(diff.std()), "seeds_ahead": ahead}
                line += f"{diff.mean():>+8.2f} ±{diff.std():>4.1f} [{ahead}/{len(seeds)}]"
            paired[name] = cells
            lines.append(line)
    return "\n".join(lines), summary, paired


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "train-tiny-synth.yaml"))
    ap.add_argument("--data", default=str(ROOT / "bench-out" / "vvi_synth" / "data"), help="synthetic set (made if absent)")
    ap.add_argument("--identities", type=int, default=500)
    ap.add_argument("--test-identities", type=int, default=100)
    ap.add_argument("--tracklets-per-camera", type=int, default=2)
    ap.add_argument("--data-seed", type=int, default=7)
    ap.add_argument("--epochs", type=int, help="override the config's epochs (same for every variant)")
    ap.add_argument("--seeds", type=int, nargs="+", help="training seeds (default: the config's); each seed trains "
                    "every variant, the table reports the mean and spread over seeds")
    ap.add_argument("--only", nargs="*", help="run only these variants")
    ap.add_argument("--jobs", type=int, default=1, help="runs trained in parallel (one process each, "
                    "config `threads` torch threads per process)")
    ap.add_argument("--retrain", action="store_true", help="train again even where a finished run with the same "
                    "config, seed and data exists (by default such runs are reused, so an interrupted benchmark resumes)")
    ap.add_argument("--collect-only", action="store_true", help="train nothing; tabulate finished runs")
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "vvi_synth.json"))
    args = ap.parse_args()
    if args.jobs < 1:
        print("--jobs must be >= 1", file=sys.stderr)
        return 2

    cfg = load_config(TrainCfg, args.config)
    if args.epochs:
        cfg = dataclasses.replace(cfg, epochs=args.epochs)
    torch.set_num_threads(max(1, cfg.threads))
    data = Path(args.data)
    synth = SynthCfg(num_identities=args.identities, num_test_identities=args.test_identities,
                     tracklets_per_camera=args.tracklets_per_camera, seed=args.data_seed)
    if not (data / "synth.json").is_file() or json.loads((data / "synth.json").read_text())["config"] != dataclasses.asdict(synth):
        t0 = time.monotonic()
        write_synth_vcm(data, synth)
        print(f"rendered synthetic set in {time.monotonic() - t0:.0f} s -> {data}")
    ds = load_vcm(data, min_seq_len=cfg.data.min_seq_len, num_cameras=cfg.data.num_cameras, name="synth")
    meta = json.loads((data / "synth.json").read_text())
    print(ds.summary())

    runs = Path(args.out).parent / Path(args.out).stem / "runs"      # bench-out/vvi_synth/runs by default
    seeds = args.seeds or [cfg.seed]
    names = list(variants(cfg))
    results: dict[str, dict[str, dict]] = {}
    todo = []
    for seed in seeds:
        for name, vcfg in variants(dataclasses.replace(cfg, seed=seed)).items():
            stamp, run_dir = run_stamp(vcfg, synth), runs / f"seed{seed}" / name
            done = None if args.retrain else load_result(run_dir, name, stamp)
            if done is not None:
                results.setdefault(name, {})[str(seed)] = done
            elif not args.collect_only and not (args.only and name not in args.only):
                todo.append((seed, name, (vcfg, str(data), str(run_dir), stamp, f"seed {seed} {name}")))
    reused = sum(len(v) for v in results.values())
    print(f"{len(todo)} runs to train, {reused} finished runs reused, {args.jobs} at a time", flush=True)
    if args.jobs == 1:
        for seed, name, job in todo:
            results.setdefault(name, {})[str(seed)] = train_one(*job)
    else:
        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(train_one, *job): (seed, name) for seed, name, job in todo}
            for fut in as_completed(futures):
                seed, name = futures[fut]
                results.setdefault(name, {})[str(seed)] = fut.result()

    text, summary, paired = tables(results, names)
    print("\n" + text)
    report = {
        "benchmark": "vvi_synth",
        "protocol": "HITSZ-VCM rules on held-out synthetic identities; both directions",
        "data": {"synth": dataclasses.asdict(synth), "train_pids": meta["train_pids"], "test_pids": meta["test_pids"]},
        "config": args.config, "epochs": cfg.epochs, "iters_per_epoch": cfg.iters_per_epoch, "seeds": seeds,
        "threads": cfg.threads, "jobs": args.jobs, "machine": platform.platform(), "summary_percent": summary,
        "minus_baseline_points": paired, "runs": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
