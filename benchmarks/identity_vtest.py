"""Identity embeddings on real people: retrieval across two looks of vtest.avi (PETS09-S2L1), frames 1-400.

The probe: every ground-truth trajectory (PETS ids are per trajectory) with at least 16 frames that
are fully inside the image and not flagged ignore (10 in frames 1-400). Camera A is the recording as
it is; camera B is the same frames re-rendered in another camera's look (``pipeline/ingest/looks.py``):

* ``rgb_rgb``: another RGB camera (mirrored, warmer white balance, exposure, contrast);
* ``nir_rgb``: a near-infrared night camera (gray from a channel mix unlike luminance, gamma, blur,
  sensor noise), tagged modality ``ir``.

Two splits of each trajectory into one 8-crop clip per camera:

* ``same`` (the headline, and the demo's setting: camera B is the same stretch seen later): both
  clips from the same 8 frames spread over the trajectory, so only the look differs;
* ``halves``: camera A from the first half of the trajectory, camera B from the second (other
  poses and places as well): harder.

Camera-B clips query the camera-A gallery (one clip per trajectory on each side): Rank-1 and mAP.
With 10 queries one query is 10 points of Rank-1: read differences under ~20 points as noise.
Rows: a colour histogram, the previous committed model, the raw ImageNet MobileNetV2 trunk (no re-ID
training; crops turned gray first in ``nir_rgb``, the best it can do without knowing modality), and
the committed default. The looks are synthetic renderings of one recording: a second real camera
would be harder (other viewpoints, other light). Frames 401+ are never read.

    .venv/bin/python benchmarks/identity_vtest.py                     # ~2 min on 1 CPU thread
    .venv/bin/python benchmarks/identity_vtest.py --checkpoint new=path/to/model.pt
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.eval.metrics import evaluate_direction  # noqa: E402
from models.weights import DEFAULT_CHECKPOINT, TINY_CHECKPOINT  # noqa: E402
from models.xreid.preprocess import crops_to_tensor  # noqa: E402
from pipeline.ingest.footage import default_cache_dir, ensure_vtest  # noqa: E402
from pipeline.ingest.looks import Look, NightNirLook, OtherRgbLook  # noqa: E402
from pipeline.tracking.mot import read_mot  # noqa: E402

GT_PATH = ROOT / "tests" / "data" / "pets09-s2l1" / "gt-0001-0400.txt"
LAST_FRAME = 400            # frames 401+ are held out
CROPS_PER_CLIP = 8
SPLITS = ("same", "halves")
LOOKS: dict[str, tuple[Look, str]] = {"rgb_rgb": (OtherRgbLook(), "rgb"), "nir_rgb": (NightNirLook(), "ir")}

Embedder = Callable[[Sequence[Sequence[np.ndarray]], Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Probe:
    """Per trajectory: camera-A crops and, per look, camera-B crops (RGB uint8)."""

    pids: np.ndarray                          # (P,) PETS trajectory ids
    camera_a: list[list[np.ndarray]]
    camera_b: dict[str, list[list[np.ndarray]]]


def usable_frames(gt: np.ndarray, frame_hw: tuple[int, int]) -> dict[int, np.ndarray]:
    """Trajectory id -> its rows (frame, id, left, top, w, h, flag, ...) fully inside and not ignored."""
    h, w = frame_hw
    rows = gt[(gt[:, 0] <= LAST_FRAME) & (gt[:, 6] != 0)]
    inside = (rows[:, 2] >= 0) & (rows[:, 3] >= 0) & (rows[:, 2] + rows[:, 4] <= w) & (rows[:, 3] + rows[:, 5] <= h)
    rows = rows[inside]
    out = {}
    for pid in np.unique(rows[:, 1]).astype(int):
        r = rows[rows[:, 1] == pid]
        if len(r) >= 2 * CROPS_PER_CLIP:
            out[pid] = r[np.argsort(r[:, 0])]
    return out


def pick(rows: np.ndarray, n: int) -> np.ndarray:
    return rows[np.linspace(0, len(rows) - 1, n).round().astype(int)]


def crop(frame_rgb: np.ndarray, box: np.ndarray, mirror: bool) -> np.ndarray:
    w_img = frame_rgb.shape[1]
    x1, y1, bw, bh = (int(round(v)) for v in box)
    if mirror:  # the look flipped the frame left-right: so does the box
        x1 = w_img - (x1 + bw)
    return np.ascontiguousarray(frame_rgb[y1:y1 + bh, x1:x1 + bw])


def build_probe(video: Path, gt_path: Path = GT_PATH, split: str = "same", seed: int = 0) -> Probe:
    """Decode frames 1-400 once and cut every trajectory's camera-A and camera-B clips.

    ``split="same"``: both clips come from the same 8 frames spread over the whole trajectory (camera B
    is the same stretch seen later, as in the demo); ``"halves"``: camera A from the first half of the
    trajectory, camera B from the second (other poses, other places in the scene: harder).
    """
    cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise SystemExit(f"cannot decode {video}")
    frames: list[np.ndarray] = []
    while len(frames) < LAST_FRAME:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    tracks = usable_frames(read_mot(gt_path), frames[0].shape[:2])
    if split == "same":
        plan_a = {pid: pick(r, CROPS_PER_CLIP) for pid, r in tracks.items()}
        plan_b = plan_a
    else:
        plan_a = {pid: pick(r[: len(r) // 2], CROPS_PER_CLIP) for pid, r in tracks.items()}
        plan_b = {pid: pick(r[len(r) // 2:], CROPS_PER_CLIP) for pid, r in tracks.items()}
    needed_b = sorted({int(f) for r in plan_b.values() for f in r[:, 0]})
    pids = np.asarray(sorted(tracks))
    rgb = {i: cv2.cvtColor(frames[i - 1], cv2.COLOR_BGR2RGB) for i in range(1, len(frames) + 1)}
    camera_a = [[crop(rgb[int(r[0])], r[2:6], False) for r in plan_a[p]] for p in pids]
    camera_b: dict[str, list[list[np.ndarray]]] = {}
    for name, (look, _) in LOOKS.items():
        rendered = {}
        for i in needed_b:  # noise seeded per frame: the same probe every run
            bgr = look.render(frames[i - 1], np.random.default_rng(seed * 100_000 + i))
            rendered[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        mirror = bool(getattr(look, "mirror", False))
        camera_b[name] = [[crop(rendered[int(r[0])], r[2:6], mirror) for r in plan_b[p]] for p in pids]
    return Probe(pids=pids, camera_a=camera_a, camera_b=camera_b)


# ----------------------------------------------------------------- embedders
def histogram_embedder(bins: int = 16) -> Embedder:
    """Per-channel RGB histograms (Hellinger: sqrt of frequencies), averaged over a clip's crops."""
    def embed(clips, modalities):
        out = []
        for clip in clips:
            hists = [np.concatenate([np.bincount((c[..., k] // (256 // bins)).ravel(), minlength=bins) / c[..., k].size
                                     for k in range(3)]) for c in clip]
            out.append(np.sqrt(np.mean(hists, axis=0)))
        return np.asarray(out, np.float32)
    return embed


def imagenet_embedder(gray: bool) -> Embedder:
    """The ImageNet MobileNetV2 trunk alone (no re-ID training): mean of its pooled 1280-d features."""
    from models.xreid.imagenet_weights import read_imagenet_weights
    from models.xreid.mobilenet import MobileNetV2Trunk
    from models.xreid.registry import model_cfg

    cfg = model_cfg("xreid_mnv2")
    trunk = MobileNetV2Trunk()
    from models.xreid.mobilenet import map_torchvision_state

    trunk.load_state_dict(map_torchvision_state(read_imagenet_weights("imagenet")))
    trunk.eval()

    def embed(clips, modalities):
        out = []
        with torch.inference_mode():
            for clip in clips:
                crops = [np.repeat(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY)[..., None], 3, 2) for c in clip] if gray else clip
                x = crops_to_tensor(crops, cfg.input_hw, cfg.pixel_mean, cfg.pixel_std)
                out.append(trunk(x).mean((2, 3)).mean(0).numpy())
        return np.asarray(out, np.float32)
    return embed


def checkpoint_embedder(path: Path) -> tuple[Embedder, str]:
    """A committed X-ReID checkpoint through the re-ID worker's own ``ReidEncoder`` (unseen cameras)."""
    from models.xreid.encoder import ReidEncoder

    encoder = ReidEncoder.from_checkpoint(path, device="cpu", preprocess_workers=1)
    return (lambda clips, modalities: encoder.encode(clips, modalities)), encoder.model_id


def score(embed: Embedder, probe: Probe, look: str) -> dict[str, float]:
    """Camera-B clips (queries) against camera-A clips (gallery): Rank-1 and mAP in percent."""
    modality = LOOKS[look][1]
    gallery = embed(probe.camera_a, ["rgb"] * len(probe.pids))
    queries = embed(probe.camera_b[look], [modality] * len(probe.pids))
    n = len(probe.pids)
    res = evaluate_direction(look, queries, probe.pids, np.ones(n, int), gallery, probe.pids, np.zeros(n, int))
    return {"rank1": 100 * res.rank(1), "mAP": 100 * res.mAP, "queries": res.num_valid_queries}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                    help="extra checkpoint row(s) to score (repeatable)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="bench-out/identity_vtest.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    video = ensure_vtest(default_cache_dir(dict(os.environ)))
    t0 = time.perf_counter()
    probes = {split: build_probe(video, split=split) for split in SPLITS}
    pids = probes["same"].pids
    print(f"probe: {len(pids)} trajectories x {CROPS_PER_CLIP} crops per camera, splits {', '.join(SPLITS)} "
          f"({time.perf_counter() - t0:.1f}s)", flush=True)
    rows: list[dict] = []

    def add(name: str, what: str, embedders: dict[str, Embedder]) -> None:
        row: dict = {"row": name, "what": what}
        for split, probe in probes.items():
            for look in LOOKS:
                row[f"{split}/{look}"] = score(embedders[look], probe, look)
        rows.append(row)
        print(f"{name:<22} " + "  ".join(f"{key} R-1 {v['rank1']:5.1f} mAP {v['mAP']:5.1f}"
                                         for key, v in row.items() if "/" in key), flush=True)

    hist = histogram_embedder()
    add("colour histogram", "RGB histograms, 16 bins per channel", {k: hist for k in LOOKS})
    embed, mid = checkpoint_embedder(TINY_CHECKPOINT)
    add("previous default", mid, {k: embed for k in LOOKS})
    add("ImageNet MobileNetV2", "no re-ID training; gray crops for nir_rgb",
        {"rgb_rgb": imagenet_embedder(gray=False), "nir_rgb": imagenet_embedder(gray=True)})
    embed, mid = checkpoint_embedder(DEFAULT_CHECKPOINT)
    add("default", mid, {k: embed for k in LOOKS})
    for spec in args.checkpoint:
        name, _, path = spec.partition("=")
        embed, mid = checkpoint_embedder(Path(path))
        add(name, mid, {k: embed for k in LOOKS})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"trajectories": [int(p) for p in pids], "crops_per_clip": CROPS_PER_CLIP,
                               "frames": [1, LAST_FRAME], "splits": list(SPLITS), "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
