"""Site adaptation without labels on vtest.avi (PETS09-S2L1) frames 1-400: identity probe before and after.

1. Footage: camera ``a`` is frames 1-400 as recorded; camera ``b`` is a day/night (``auto``) camera
   showing the same frames, the first half in another colour camera's look and the second half in the
   night near-infrared look (``pipeline/ingest/looks.py``), so its day/night gate must switch it to ``ir``.
2. Store: the real ``xreid replay`` of both cameras with the starting checkpoint (crops kept beside
   the store, ``store.keep_crops``).
3. ``xreid adapt`` on that store, timed: no ground truth is read.
4. The identity probe of ``benchmarks/identity_vtest.py`` (ground-truth trajectories of frames 1-400,
   camera-B clips in the other-RGB and the night-NIR look against camera-A clips), scored with the
   starting and with the adapted checkpoint: Rank-1 / mAP and their deltas.
5. ``xreid reembed`` of a copy of the store onto the adapted model: every track under one model_id.
6. The whole chain (``benchmarks/identity_chain.py``, both looks) with the starting and with the adapted
   checkpoint: cross-camera pairwise F1 and precision of the site-calibrated matcher (``--no-chain``
   skips it, about 6 min on 2 cores).

Frames 401+ are never read. The ground truth is used for scoring only.

    nice -n 10 .venv/bin/python benchmarks/adapt_vtest.py --minutes 20
    nice -n 10 .venv/bin/python benchmarks/adapt_vtest.py --minutes 15 --threads 1 --centre   # + the site centre
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.identity_vtest import LAST_FRAME, LOOKS, SPLITS, build_probe, checkpoint_embedder, score  # noqa: E402
from models.weights import DEFAULT_CHECKPOINT  # noqa: E402
from pipeline.ingest.footage import default_cache_dir, ensure_vtest  # noqa: E402
from pipeline.ingest.looks import NightNirLook, OtherRgbLook  # noqa: E402
from pipeline.store.base import Store  # noqa: E402
from pipeline.store.modality_events import list_switches  # noqa: E402
from pipeline.store.tracks import list_tracks  # noqa: E402

NIGHT_FROM = 201     # camera b's first near-infrared frame


def write_cameras(video: Path, out: Path) -> tuple[Path, Path]:
    """Camera a (frames 1-400 as recorded) and day/night camera b (other RGB, then NIR from NIGHT_FROM)."""
    cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    out.mkdir(parents=True, exist_ok=True)
    paths = out / "cam_a.avi", out / "cam_b_daynight.avi"
    writers = [cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h)) for p in paths]
    day, night = OtherRgbLook(), NightNirLook()
    for i in range(1, LAST_FRAME + 1):   # frames 401+ are never decoded
        ok, frame = cap.read()
        if not ok:
            break
        writers[0].write(frame)
        look = day if i < NIGHT_FROM else night
        writers[1].write(look.render(frame, np.random.default_rng(i)))
    cap.release()
    for wr in writers:
        wr.release()
    return paths


def python(*args: str, quiet: bool = False) -> float:
    """Run this interpreter on ``args`` in the repository (``quiet``: no stdout); returns its wall time in seconds."""
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, *args], check=True, cwd=ROOT, env=env,
                   stdout=subprocess.DEVNULL if quiet else None)
    return time.perf_counter() - t0


def xreid(*args: str) -> float:
    """Run the real CLI; returns its wall time in seconds."""
    return python("-m", "workers.cli", *args)


def whole_chain(checkpoint: Path, out: Path) -> dict[str, dict]:
    """``identity_chain.py`` under ``checkpoint``: the site-calibrated cross-camera counts per look."""
    python(str(ROOT / "benchmarks" / "identity_chain.py"), "--checkpoint", str(checkpoint), "--out", str(out), quiet=True)
    rows = json.loads((out / "identity_chain.json").read_text())["rows"]
    return {r["look"]: r["calibrated"]["cross_camera"] for r in rows}


def store_facts(store: Path) -> dict:
    """Tracks per camera and modality, the day/night switches, and tracks and identities per model."""
    with Store(store, readonly=True) as s:
        tracks = list_tracks(s)
        switches = [[e.camera_id, e.ts, e.from_modality, e.to_modality] for e in list_switches(s)]
    per_camera = Counter((t.camera_id, t.modality) for t in tracks)
    by_model: dict[str | None, list[int | None]] = {}
    for t in tracks:
        by_model.setdefault(t.model_id, []).append(t.assigned_identity)
    models = [[m, len(ids), len({i for i in ids if i is not None})]
              for m, ids in sorted(by_model.items(), key=lambda kv: (kv[0] is not None, kv[0] or ""))]
    return {"tracks": [[cam, modality, n] for (cam, modality), n in sorted(per_camera.items())],
            "modality_events": switches, "models": models}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="start", default=str(DEFAULT_CHECKPOINT), help="checkpoint to adapt")
    ap.add_argument("--minutes", type=float, default=20.0, help="adapt budget (default 20)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default="bench-out/adapt_vtest", help="scratch folder (footage, store, model)")
    ap.add_argument("--out", default="bench-out/adapt_vtest.json")
    ap.add_argument("--centre", action="store_true", help="adapt with --centre (the site centre, docs/adapt.md)")
    ap.add_argument("--no-chain", action="store_true", help="skip the whole-chain rows (step 6)")
    ap.add_argument("--reuse-replay", action="store_true",
                    help="keep WORK/replay from an earlier run with the same --from (skips the replay)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    replay_dir = work / "replay"
    store = replay_dir / "xreid.sqlite"
    video = ensure_vtest(default_cache_dir(dict(os.environ)))
    replay_s = None
    if not (args.reuse_replay and store.is_file()):
        shutil.rmtree(work, ignore_errors=True)
        cam_a, cam_b = write_cameras(video, work / "footage")
        replay_s = xreid("replay", "--camera", f"a:rgb:{cam_a}", "--camera", f"b:auto:{cam_b}", "--out",
                         str(replay_dir), "--checkpoint", args.start, "--no-progress",
                         "--start-time", "2024-05-01T20:00:00Z")
    for stale in ("adapted.pt", "adapted.card.json", "adapted.loss.png", "moved.sqlite"):
        (work / stale).unlink(missing_ok=True)
    shutil.rmtree(work / "moved.crops", ignore_errors=True)
    before_facts = store_facts(store)
    print(f"replay: {'reused' if replay_s is None else f'{replay_s:.0f} s'}; tracks per camera/modality {before_facts['tracks']}; "
          f"day/night events {before_facts['modality_events']}", flush=True)
    adapted = work / "adapted.pt"
    adapt_s = xreid("adapt", "--store", str(store), "--out", str(adapted), "--from", args.start,
                    "--minutes", f"{args.minutes:g}", "--threads", str(args.threads), "--no-progress",
                    *(["--centre"] if args.centre else []))
    card = json.loads(adapted.with_name("adapted.card.json").read_text())
    moved = work / "moved.sqlite"
    shutil.copy(store, moved)
    shutil.copytree(replay_dir / "xreid.crops", work / "moved.crops")
    reembed_s = xreid("reembed", "--store", str(moved), "--checkpoint", str(adapted), "--threads", str(args.threads),
                      "--no-progress")
    moved_facts = store_facts(moved)

    probes = {split: build_probe(video, split=split) for split in SPLITS}
    rows = {}
    for name, ckpt in (("before", Path(args.start)), ("after", adapted)):
        embed, mid = checkpoint_embedder(ckpt)
        rows[name] = {"model_id": mid, **{f"{split}/{look}": score(embed, probe, look)
                                          for split, probe in probes.items() for look in LOOKS}}
    deltas = {k: {m: rows["after"][k][m] - rows["before"][k][m] for m in ("rank1", "mAP")}
              for k in rows["before"] if "/" in k}
    print(f"\nadapt: {card['counts']['tracks']} tracks, {card['counts']['crops']} crops, {card['steps']} steps, "
          f"{card['train_seconds']:.0f} s training, {adapt_s:.0f} s wall ({args.threads} threads)")
    print(f"{'probe':<18}{'R-1 before':>11}{'R-1 after':>10}{'delta':>7}{'mAP before':>11}{'mAP after':>10}{'delta':>7}")
    for k, d in deltas.items():
        b, a = rows["before"][k], rows["after"][k]
        print(f"{k:<18}{b['rank1']:>11.1f}{a['rank1']:>10.1f}{d['rank1']:>+7.1f}{b['mAP']:>11.1f}{a['mAP']:>10.1f}"
              f"{d['mAP']:>+7.1f}")
    print(f"reembed: {reembed_s:.0f} s; store models after: {moved_facts['models']}")
    chain = None if args.no_chain else {name: whole_chain(ckpt, work / f"chain-{name}")
                                        for name, ckpt in (("before", Path(args.start)), ("after", adapted))}
    if chain:
        print(f"\n{'whole chain (calibrated)':<26}{'cross F1 / P before':>22}{'after':>16}")
        for look in chain["before"]:
            b, a = chain["before"][look], chain["after"][look]
            print(f"{look:<26}{b['f1']:>15.3f} / {b['precision']:.3f}{a['f1']:>9.3f} / {a['precision']:.3f}"
                  f"   ({b['tp']}/{b['fp']}/{b['fn']} -> {a['tp']}/{a['fp']}/{a['fn']} tp/fp/fn)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"frames": [1, LAST_FRAME], "night_from_frame": NIGHT_FROM, "start": args.start,
                               "minutes": args.minutes, "threads": args.threads, "replay_seconds": replay_s,
                               "adapt_wall_seconds": adapt_s, "reembed_seconds": reembed_s, "card": card,
                               "store": before_facts, "moved_store": moved_facts, "probe": rows, "deltas": deltas,
                               "chain": chain},
                              indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
