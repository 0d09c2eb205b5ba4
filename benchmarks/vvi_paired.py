"""Is one checkpoint better than another on a VVI test split, or is the gap noise? Paired per-query mAP.

Both checkpoints embed the same test split (``xreid eval``'s protocol: the dataset's infrared queries
against its visible gallery and the reverse, ``--min-seq-len`` frames at least). Each query's average
precision is computed under both models, and the mean of the per-query differences gets a 95 %
bootstrap interval (5000 resamples of the queries, seeded). A difference whose interval spans 0 is one
the split cannot tell from chance: the issue-16 comparison of the default model with the previous one
is this, on the synthetic world of ``models/weights/README.md``.

    xreid synth --out xreid-out/synth --identities 500 --test-identities 100 --tracklets-per-camera 2 --seed 7
    .venv/bin/python benchmarks/vvi_paired.py --data xreid-out/synth \\
        models/weights/xreid-tiny-synth.pt models/weights/xreid-mnv2-synth.pt

Prints one line per direction, writes ``bench-out/vvi_paired.json``. About 5 min on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.data.video import FrameReader  # noqa: E402
from models.eval.metrics import eval_func, squared_euclidean  # noqa: E402
from models.eval.runner import encode_tracklets  # noqa: E402
from models.xreid import load_checkpoint  # noqa: E402
from workers.commands.train import load_dataset  # noqa: E402

DIRECTIONS = ("ir_to_rgb", "rgb_to_ir")


def per_query_ap(checkpoint: str, data: str, kind: str, min_seq_len: int) -> tuple[str, dict[str, np.ndarray]]:
    """The model id and, per direction, each query's AP (NaN where the gallery holds no match for it)."""
    model = load_checkpoint(checkpoint)
    dataset = load_dataset(kind, data, min_seq_len, model.cfg.camera_num)
    reader = FrameReader(size_hw=model.cfg.input_hw)
    out = {}
    for name, queries, gallery in (("ir_to_rgb", dataset.ir_query, dataset.rgb_gallery),
                                   ("rgb_to_ir", dataset.rgb_query, dataset.ir_gallery)):
        dist = squared_euclidean(encode_tracklets(model, queries, reader), encode_tracklets(model, gallery, reader))
        q_pids, q_cams = np.array([t.pid for t in queries]), np.array([t.camid for t in queries])
        g_pids, g_cams = np.array([t.pid for t in gallery]), np.array([t.camid for t in gallery])
        aps = np.full(len(queries), np.nan)
        for i in range(len(queries)):
            if ((g_pids == q_pids[i]) & (g_cams != q_cams[i])).any():   # eval_func refuses a query without a match
                aps[i] = eval_func(dist[i:i + 1], q_pids[i:i + 1], g_pids, q_cams[i:i + 1], g_cams)[1]
        out[name] = aps
    return model.model_id, out


def compare(a: np.ndarray, b: np.ndarray, resamples: int = 5000, seed: int = 0) -> dict[str, float]:
    """Mean per-query AP difference ``b - a`` in points, its 95 % bootstrap interval, and who leads how often."""
    ok = ~(np.isnan(a) | np.isnan(b))
    diff = (b[ok] - a[ok]) * 100.0
    rng = np.random.default_rng(seed)
    boots = diff[rng.integers(0, diff.size, size=(resamples, diff.size))].mean(1)
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return {"queries": int(ok.sum()), "map_a": float(a[ok].mean() * 100), "map_b": float(b[ok].mean() * 100),
            "diff": float(diff.mean()), "ci95": [float(lo), float(hi)],
            "b_ahead": float(np.mean(diff > 0)), "b_behind": float(np.mean(diff < 0))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", help="checkpoint A (the reference)")
    ap.add_argument("b", help="checkpoint B (the candidate)")
    ap.add_argument("--data", required=True, help="dataset root (xreid synth output, HITSZ-VCM layout)")
    ap.add_argument("--kind", choices=("vcm", "bupt"), default="vcm")
    ap.add_argument("--min-seq-len", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "vvi_paired.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    id_a, aps_a = per_query_ap(args.a, args.data, args.kind, args.min_seq_len)
    id_b, aps_b = per_query_ap(args.b, args.data, args.kind, args.min_seq_len)
    rows = {d: compare(aps_a[d], aps_b[d]) for d in DIRECTIONS}
    print(f"A {id_a}   B {id_b}")
    for d, r in rows.items():
        print(f"{d}: {r['queries']} queries, mAP A {r['map_a']:.2f} B {r['map_b']:.2f}, B-A {r['diff']:+.2f} "
              f"(95 % CI {r['ci95'][0]:+.2f} .. {r['ci95'][1]:+.2f}); B ahead on {r['b_ahead']:.0%} of queries, "
              f"behind on {r['b_behind']:.0%}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"a": id_a, "b": id_b, "data": args.data, "rows": rows}, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
