"""Whole-chain identity quality on a two-camera scene made from real footage (issue 16, part 2b).

The scene: camera A is vtest.avi (PETS09-S2L1) frames 1-400 as recorded; camera B shows the same
stretch 60 s later (600 frames of the empty scene first, at 10 fps), rendered in another camera's
look (``pipeline/ingest/looks.py``): ``rgb`` another RGB camera (mirrored, white balance, exposure), ``nir``
a near-infrared night camera (modality ``ir``). Camera B is SYNTHETIC: a re-rendering of camera A's
pixels, not a second viewpoint. Both cameras share one start time.

Each look runs once through the real ``Replay`` with the re-ID and matcher stages (the code path of
``xreid replay``) under the shipped config (``configs/default.yaml``, or ``--config``) and the model
given by ``--checkpoint`` (default: the committed default model). Its MOT output is matched to the
ground truth (camera B's boxes mirrored and moved 600 frames on) and the identities are scored with
pairwise identity precision, recall and F1 over all labelled track pairs and over cross-camera pairs.

The ``static`` rows re-link the same clip embeddings, in the order the matcher consumed them, with
the fixed thresholds the matcher had before site calibration (rgb_rgb 0.6, ir_ir 0.6, rgb_ir 0.45, no
calibration); the ``calibrated`` rows are the replay's own store. Re-linking the tapped embeddings
under the shipped config must reproduce the store; the script checks that it does.

Then, rules aside, whether the embedding can tell the scene's people apart at all
(``identity_eval.separability``): camera-B→A Rank-1 of track means, cross-camera AUC, the AUC of the
matcher's free evidence (a later clip against its own track, against simultaneous same-camera tracks)
and the share of true cross-camera pairs above a 1 % bar; for the model, and for a colour histogram and
raw ImageNet MobileNetV2 features on the same clips' crops, which the store keeps beside it.

    .venv/bin/python benchmarks/identity_chain.py                           # both looks, default model
    .venv/bin/python benchmarks/identity_chain.py --checkpoint PATH.pt --looks rgb

Writes ``bench-out/identity_chain.json``. Takes about 3-5 min per look on 2 shared cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.bus import STREAM_EMBEDDINGS, create_bus  # noqa: E402
from pipeline.bus.messages import Embedding  # noqa: E402
from pipeline.config.loader import load_config  # noqa: E402
from pipeline.config.settings import MatcherCfg, PairThresholds, XreidCfg  # noqa: E402
from pipeline.ingest.footage import default_cache_dir, ensure_vtest  # noqa: E402
from pipeline.ingest.looks import NightNirLook, OtherRgbLook, render_camera  # noqa: E402
from pipeline.ingest.pseudo_thermal import estimate_background  # noqa: E402
from pipeline.matcher.identity_eval import ClipVector, run_labels, score_partition, score_run, separability  # noqa: E402
from pipeline.matcher.matcher import Matcher  # noqa: E402
from pipeline.replay.embedded import STORE_NAME, Replay, ReplayOptions, parse_camera_spec  # noqa: E402
from pipeline.store.base import Store  # noqa: E402
from pipeline.store.calibration import list_thresholds  # noqa: E402
from pipeline.store.crops import CropKeeper, crops_dir  # noqa: E402
from pipeline.store.tracks import list_tracks  # noqa: E402
from pipeline.tracking.mot import read_mot  # noqa: E402
from workers.identity_chain import align_clip_length, identity_stages, load_encoder  # noqa: E402

GT_PATH = ROOT / "tests" / "data" / "pets09-s2l1" / "gt-0001-0400.txt"
FRAMES, LEAD_FRAMES, START = 400, 600, 1_700_000_000.0
LOOKS = {"rgb": OtherRgbLook(), "nir": NightNirLook()}
TAP_GROUP = "bench-tap"
STATIC = PairThresholds(rgb_rgb=0.6, ir_ir=0.6, rgb_ir=0.45)   # the thresholds before site calibration


class AsRecorded:
    """Camera A: the recording's own pixels (re-encoded to cut it at frame 400)."""

    modality = "rgb"

    def render(self, frame_bgr: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        return frame_bgr


def build_scene(vtest: Path, out: Path, look_name: str) -> tuple[Path, Path, Path]:
    """(camera A video, camera B video, camera B ground truth), rendered once and cached."""
    out.mkdir(parents=True, exist_ok=True)
    look = LOOKS[look_name]
    cam_a, cam_b = out / "camA.avi", out / f"camB-{look_name}.avi"
    gt_b = out / f"camB-gt{'-mirrored' if look.mirror else ''}.txt"
    if not cam_a.is_file():
        render_camera(vtest, cam_a, AsRecorded(), max_frames=FRAMES)  # type: ignore[arg-type]
    if not cam_b.is_file():
        background = (estimate_background(vtest) * 255.0).round().astype(np.uint8)
        render_camera(vtest, cam_b, look, max_frames=FRAMES, lead_frames=LEAD_FRAMES, lead_background=background)
    if not gt_b.is_file():
        cap = cv2.VideoCapture(str(vtest))
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        cap.release()
        gt = read_mot(GT_PATH)
        gt[:, 0] += LEAD_FRAMES                       # camera B sees frame f at f + 600
        if look.mirror:
            gt[:, 2] = width - gt[:, 2] - gt[:, 4]    # left edge of the mirrored box
        np.savetxt(gt_b, gt, fmt="%g", delimiter=",")
    return cam_a, cam_b, gt_b


def run_look(cfg: XreidCfg, encoder: Any, look: str, cam_a: Path, cam_b: Path, gt_b: Path, out: Path) -> dict[str, Any]:
    """One replay of the scene in ``look``; returns its rows and calibration."""
    run_dir = out / look
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / STORE_NAME).unlink(missing_ok=True)
    modality_b = LOOKS[look].modality
    cameras = [parse_camera_spec(f"camA:rgb:{cam_a}"), parse_camera_spec(f"camB:{modality_b}:{cam_b}")]
    bus = create_bus(None, cfg.bus)
    bus.ensure_group(STREAM_EMBEDDINGS, TAP_GROUP)   # every embedding, in stream order, for the static rows
    t0 = time.perf_counter()
    with Store(run_dir / STORE_NAME) as store:
        stages = identity_stages(cfg, encoder, bus, store)
        replay = Replay(cfg, cameras, ReplayOptions(out_dir=run_dir, start_time=START, mot_out=True, progress=False),
                        bus=bus, store=store, downstream=stages)
        summary = replay.run()
        wall = time.perf_counter() - t0
        tapped = []
        while msgs := bus.read(STREAM_EMBEDDINGS, TAP_GROUP, "bench", 1000, 0):
            tapped += [Embedding.from_bytes(m.data) for m in msgs]
        labels = run_labels(replay.run_id, {c: run_dir / f"{c}.mot.txt" for c in ("camA", "camB")},
                            {"camA": GT_PATH, "camB": gt_b})
        live = score_run(store, replay.run_id, labels)
        calibration = list_thresholds(store)
    save_tapped(run_dir / "embeddings.bin", tapped)
    (run_dir / "labels.json").write_text(json.dumps(labels, indent=1) + "\n", encoding="utf-8")
    static_cfg = dataclasses.replace(cfg.matcher, thresholds=STATIC, calibration=dataclasses.replace(
        cfg.matcher.calibration, enabled=False))
    static, _ = relink(tapped, static_cfg, labels)
    again, same = relink(tapped, cfg.matcher, labels, store_path=run_dir / STORE_NAME)
    apart = {name: separability(vectors, labels, "camB", "camA", cfg.matcher.overlap_slack_s).to_dict()
             for name, vectors in embeddings_by(tapped, run_dir / STORE_NAME, modality_b).items()}
    return {"look": look, "modality_b": modality_b, "run_id": replay.run_id, "wall_s": round(wall, 1),
            "tracks": summary["tracks"], "clips": len(tapped), "static": static.to_dict(),
            "calibrated": live.to_dict(), "relink_reproduces_store": same, "calibration": calibration,
            "separability": apart}


def embeddings_by(tapped: list[Embedding], store_path: Path, modality_b: str) -> dict[str, list[ClipVector]]:
    """The run's clips as the model embedded them, and as the off-the-shelf baselines embed the same
    clips' kept crops (the store keeps up to 4 per clip): a colour histogram and raw ImageNet features."""
    from benchmarks.identity_vtest import histogram_embedder, imagenet_embedder

    out = {"model": [ClipVector(e.track_uid, e.camera_id, e.t_start, e.t_end, e.vector) for e in tapped]}
    keeper = CropKeeper(crops_dir(store_path))
    kept: dict[tuple[str, int], list[np.ndarray]] = {}
    for uid in dict.fromkeys(e.track_uid for e in tapped):
        for c in keeper.crops(uid):
            kept.setdefault((uid, c.segment), []).append(cv2.cvtColor(cv2.imread(str(c.path)), cv2.COLOR_BGR2RGB))
    order = [e for e in tapped if (e.track_uid, e.segment) in kept]
    clips = [kept[(e.track_uid, e.segment)] for e in order]
    modalities = ["rgb" if e.camera_id == "camA" else modality_b for e in order]
    for name, embed in (("colour histogram", histogram_embedder()), ("ImageNet MobileNetV2", imagenet_embedder(False))):
        vectors = embed(clips, modalities)
        out[name] = [ClipVector(e.track_uid, e.camera_id, e.t_start, e.t_end, v) for e, v in zip(order, vectors, strict=True)]
    return out


def save_tapped(path: Path, tapped: list[Embedding]) -> None:
    """The clip embeddings in the order the matcher consumed them (length-prefixed wire messages), for re-linking."""
    with path.open("wb") as f:
        for e in tapped:
            data = e.to_bytes()
            f.write(len(data).to_bytes(4, "little") + data)


def relink(tapped: list[Embedding], cfg: MatcherCfg, labels: dict[str, str],
           store_path: Path | None = None) -> tuple[Any, bool]:
    """Link the tapped embeddings again under ``cfg``; with ``store_path``, whether the store agrees."""
    m = Matcher(cfg)
    keys: dict[str, int] = {}
    cams: dict[str, str] = {}
    for emb in tapped:
        out = m.observe(emb)
        keys[emb.track_uid] = out.track.key  # type: ignore[union-attr]
        cams[emb.track_uid] = emb.camera_id
    uids = sorted(keys)
    pred = {u: m.identity_of(keys[u]) for u in uids}
    score = score_partition([pred[u] for u in uids], [labels.get(u) for u in uids], [cams[u] for u in uids])
    same = True
    if store_path is not None:
        with Store(store_path, readonly=True) as store:
            stored = {t.track_uid: t.identity for t in list_tracks(store) if t.identity is not None}
        same = _same_partition([pred[u] for u in uids], [stored.get(u) for u in uids])
    return score, same


def _same_partition(a: list[Any], b: list[Any]) -> bool:
    fwd: dict[Any, Any] = {}
    back: dict[Any, Any] = {}
    for x, y in zip(a, b, strict=True):
        if fwd.setdefault(x, y) != y or back.setdefault(y, x) != x:
            return False
    return True


def fmt_row(look: str, kind: str, s: dict[str, Any]) -> str:
    a, c = s["all_pairs"], s["cross_camera"]
    return (f"| {look} | {kind} | {a['f1']:.3f} | {a['precision']:.3f} | {a['recall']:.3f} | {c['f1']:.3f} | "
            f"{c['precision']:.3f} | {c['recall']:.3f} | {c['tp']}/{c['fp']}/{c['fn']} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="X-ReID checkpoint (default: the committed default model)")
    ap.add_argument("--config", help="pipeline YAML (default: configs/default.yaml)")
    ap.add_argument("--looks", nargs="+", choices=sorted(LOOKS), default=["rgb", "nir"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(ROOT / "bench-out"))
    args = ap.parse_args()
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    work = out / "identity_chain"
    cfg = load_config(XreidCfg, args.config or ROOT / "configs" / "default.yaml")
    encoder = load_encoder(args.checkpoint or cfg.reid.checkpoint, args.device, cfg.reid.amp, cfg.reid.camera_index)
    cfg = align_clip_length(cfg, encoder.seq_len)
    vtest = ensure_vtest(default_cache_dir(dict(os.environ)))
    rows = []
    for look in args.looks:
        cam_a, cam_b, gt_b = build_scene(vtest, work / "scene", look)
        print(f"=== look {look}: replaying {cam_a.name} + {cam_b.name}", flush=True)
        rows.append(run_look(cfg, encoder, look, cam_a, cam_b, gt_b, work))
    print(f"\nmodel {encoder.model_id}; camera B = SYNTHETIC re-rendering of camera A, 60 s later\n")
    print("| look | matcher | F1 | precision | recall | cross F1 | cross precision | cross recall | cross tp/fp/fn |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(fmt_row(r["look"], "static 0.6", r["static"]))
        print(fmt_row(r["look"], "calibrated", r["calibrated"]))
    print("\nCan the embedding tell these people apart? (camera-B track means against camera-A's; "
          "evidence = the matcher's free pairs: a later clip vs its track, against simultaneous same-camera tracks)\n")
    print("| look | embedding | B→A Rank-1 | cross AUC | evidence AUC | 1 % bar | cross pairs ≥ bar |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        for name, s in r["separability"].items():
            bar = "–" if s["bar"] is None else f"{s['bar']:.3f}"
            print(f"| {r['look']} | {name} | {100 * s['rank1']:.0f} % of {s['queries']} | {s['cross_auc']:.3f} | "
                  f"{s['evidence_auc']:.3f} | {bar} | {100 * s['cross_pass']:.0f} % |")
    for r in rows:
        print(f"\n{r['look']}: {r['tracks']} tracks, {r['clips']} clips, {r['wall_s']} s; relinking reproduces the "
              f"store: {r['relink_reproduces_store']}")
        for c in r["calibration"]:
            print(f"  {c['pair']:<8} threshold {c['threshold']:.3f} ({c['source']}), genuine {c['n_genuine']}, "
                  f"impostor {c['n_impostor']}")
    doc = {"model_id": encoder.model_id, "checkpoint": args.checkpoint, "frames": FRAMES, "lead_frames": LEAD_FRAMES,
           "rows": rows, "load_avg": os.getloadavg()}
    (out / "identity_chain.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out / 'identity_chain.json'}")
    return 0 if all(r["relink_reproduces_store"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
