"""ReidEncoder throughput: sequences/s at batch sizes 1, 8, 32 against a plain per-clip fp32 loop.

Both sides run the same model (a registry config with random init, or a committed checkpoint: by
default the previous default ``xreid-tiny-synth``, the current default ``xreid-mnv2-synth`` and a
random ViT-B-16) on the same synthetic clips (random uint8 crops
of 256x128, T_i between T and 2T frames) and the same preprocessing (``clip_to_tensor``). The
baseline is what a first attempt looks like: for each clip, preprocess, ``model(x[None])`` under
``torch.no_grad`` in fp32. The encoder stacks ``max_batch`` clips per forward under
``torch.inference_mode`` (plus bf16/fp16 autocast on CUDA), resizes crops on a thread pool one
batch ahead, and normalises uint8 frames once per batch. A last row per config shows the encoder's
optional CPU bfloat16 copy (``cpu_bf16=True``). DESIGN §6 target: >= 3x on CPU.

ViT-B-16 is slow on CPU (about a second per frame on two cores), so it runs fewer clips, and its
batch-32 row only with ``--full`` on CPU (the per-sequence cost is compute-bound and barely moves
past batch 8). Prints a table, writes ``bench-out/reid_encoder.json``.

    .venv/bin/python benchmarks/reid_encoder.py                 # both committed models + ViT-B-16, CPU, ~3-4 min
    .venv/bin/python benchmarks/reid_encoder.py --configs xreid_tiny models/weights/xreid-mnv2-synth.pt
    .venv/bin/python benchmarks/reid_encoder.py --device cuda --full
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from models.weights import DEFAULT_CHECKPOINT, TINY_CHECKPOINT
from models.xreid import ReidEncoder, create_model, load_checkpoint
from models.xreid.encoder import resolve_device
from models.xreid.preprocess import clip_to_tensor


def make_clips(n: int, seq_len: int, seed: int = 0) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[rng.integers(0, 256, size=(256, 128, 3), dtype=np.uint8) for _ in range(int(rng.integers(seq_len, 2 * seq_len + 1)))]
            for _ in range(n)]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def per_clip_loop(model, clips, device: torch.device) -> float:
    """The baseline: one clip at a time, fp32, ``torch.no_grad``; returns seconds."""
    cfg = model.cfg
    sync(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        for clip in clips:
            x, _ = clip_to_tensor(clip, cfg.seq_len, cfg.input_hw, cfg.pixel_mean, cfg.pixel_std)
            emb = model(x[None].to(device), torch.zeros(1, dtype=torch.long, device=device))
            emb.cpu()
    sync(device)
    return time.perf_counter() - t0


def encoder_run(encoder: ReidEncoder, clips) -> float:
    mods = ["rgb" if i % 2 else "ir" for i in range(len(clips))]
    sync(encoder.device)
    t0 = time.perf_counter()
    encoder.encode(clips, mods)
    sync(encoder.device)
    return time.perf_counter() - t0


def build(name: str):
    """A registry name (random init) or the path of a checkpoint (e.g. the committed default)."""
    if name.endswith(".pt"):
        return Path(name).stem, load_checkpoint(name)
    torch.manual_seed(0)
    return name, create_model(name)


def bench_config(name: str, device: torch.device, full: bool, amp: bool) -> list[dict]:
    name, model = build(name)
    model = model.eval().to(device)
    slow = name == "xreid_vitb16" and device.type == "cpu"
    n_base = 2 if slow else 128
    batches = [1, 8, 32] if (full or not slow) else [1, 8]
    clips = make_clips(max([n_base, *batches]) if slow else 128, model.cfg.seq_len)
    per_clip_loop(model, clips[:1], device)  # warm-up
    base_s = per_clip_loop(model, clips[:n_base], device)
    base_rate = n_base / base_s
    rows = [{"config": name, "mode": "per-clip fp32 loop", "batch": 1, "clips": n_base,
             "seq_per_s": base_rate, "speedup": 1.0}]
    runs = [(bs, False) for bs in batches]
    if device.type == "cpu":
        runs.append((batches[-1], True))  # the bf16 copy, for CPUs with AMX / AVX512-BF16
    for bs, bf16 in runs:
        enc = ReidEncoder.from_model(model, f"{name}.bench", device=str(device), amp=amp, max_batch=bs,
                                     cpu_bf16=bf16)
        n = max(bs, 2) if slow else 128
        if device.type == "cuda":
            encoder_run(enc, clips[:bs])  # warm-up: cuDNN/cuBLAS kernel selection per shape
        secs = encoder_run(enc, clips[:n])
        mode = "ReidEncoder" + (" +amp" if enc.amp_dtype is not None else "") + (" cpu-bf16" if bf16 else "")
        rows.append({"config": name, "mode": mode,
                     "batch": bs, "clips": n, "seq_per_s": n / secs, "speedup": (n / secs) / base_rate})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=[str(TINY_CHECKPOINT), str(DEFAULT_CHECKPOINT), "xreid_vitb16"],
                    help="registry names (random init) or checkpoint paths; default: the previous and the current "
                         "committed default model, and ViT-B-16")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op CPU threads (keep low on a shared machine)")
    ap.add_argument("--full", action="store_true", help="also batch 32 for ViT-B-16 on CPU (slow)")
    ap.add_argument("--no-amp", action="store_true", help="no autocast on CUDA")
    ap.add_argument("--out", default="bench-out/reid_encoder.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rows: list[dict] = []
    for name in args.configs:
        rows += bench_config(name, device, args.full, amp=not args.no_amp)
    header = f"{'config':<18}{'mode':<24}{'batch':>6}{'clips':>7}{'seq/s':>10}{'speedup':>9}"
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['config']:<18}{r['mode']:<24}{r['batch']:>6}{r['clips']:>7}{r['seq_per_s']:>10.2f}{r['speedup']:>8.2f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
            "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None, "target_speedup_cpu": 3.0}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
