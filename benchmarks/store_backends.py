"""The store on SQLite and on PostgreSQL: matcher throughput and API latency at 10^5 tracks (issue 21).

For each backend, on one store of ``--tracks`` tracks (``--per-identity`` tracks per identity, over
8 cameras, ``--dim``-d float32 vectors, no thumbnails):

1. prefill: the tracks and identities written through the store's own functions into SQLite, in
   transactions of 1000; the PostgreSQL store is that file copied with ``xreid store copy``'s
   ``copy_store`` (both times are reported);
2. matcher restart: a fresh ``MatcherStage`` rebuilt from the store (``records.load_into``: every
   track, its vector, the faiss gallery), holding the writer lock as ``xreid matcher`` does;
3. matcher throughput: ``--embeddings`` new clips (2 per new track) on the in-process bus, drained in
   batches of ``matcher.max_batch``; embeddings/s end to end, and the share spent writing the store;
4. API: ``create_app`` over the store through FastAPI's test client (in process: the store and the
   app, not the network), ``--requests`` each of ``GET /tracks`` (a newest-first page of 50 at a
   random offset below 1000) and ``GET /identities/{id}`` (a random identity) after 20 warm-up
   requests; p50/p99 in ms.

PostgreSQL runs in a throwaway database on ``--pg`` (the server's URL; created and dropped here).
Prints a table and writes ``bench-out/store_backends.json``.

    .venv/bin/python benchmarks/store_backends.py                      # 10^5 tracks
    .venv/bin/python benchmarks/store_backends.py --tracks 10000 --embeddings 1000
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient  # noqa: E402

from pipeline.api import create_app  # noqa: E402
from pipeline.bus import STREAM_EMBEDDINGS, MemoryBus  # noqa: E402
from pipeline.bus.messages import Embedding, make_clip_id  # noqa: E402
from pipeline.config.settings import ApiCfg, MatcherCfg  # noqa: E402
from pipeline.matcher import records  # noqa: E402
from pipeline.matcher.matcher import Matcher  # noqa: E402
from pipeline.matcher.stage import MatcherStage  # noqa: E402
from pipeline.store.base import Store  # noqa: E402
from pipeline.store.copy import copy_store  # noqa: E402
from pipeline.store.identities import add_identity  # noqa: E402
from pipeline.store.postgres import create_database, drop_database  # noqa: E402
from pipeline.store.tracks import MatchedTrack, save_matched_track  # noqa: E402

MODEL = "bench@0"
T0 = 1_790_000_000.0
CAMERAS = 8


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def prefill(path: str, n_tracks: int, per_identity: int, dim: int, seed: int) -> np.ndarray:
    """Write ``n_tracks`` matched tracks into a new SQLite store; returns the identity centres."""
    rng = np.random.default_rng(seed)
    n_ids = (n_tracks + per_identity - 1) // per_identity
    centres = _unit(rng.standard_normal((n_ids, dim), dtype=np.float32))
    with Store(path) as store:
        for start in range(0, n_tracks, 1000):
            with store.transaction():
                for no in range(start, min(n_tracks, start + 1000)):
                    ident, cam = no // per_identity, no % CAMERAS
                    if no % per_identity == 0:
                        add_identity(store, ident + 1, MODEL, T0 + no)
                    vec = _unit(centres[ident] + 0.5 * _unit(rng.standard_normal(dim, dtype=np.float32)))
                    save_matched_track(store, MatchedTrack(
                        f"cam{cam}-r1-{no}", f"cam{cam}", "ir" if cam % 4 == 3 else "rgb", T0 + no, T0 + no + 8.0,
                        2, None, no + 1, MODEL, vec, 2, (0, 1), ident + 1))
    return centres


def matcher_run(location: str, centres: np.ndarray, n_embeddings: int, dim: int, seed: int) -> dict[str, float]:
    """Restart a matcher on the store, then link ``n_embeddings`` new clips; times in seconds."""
    rng = np.random.default_rng(seed + 1)
    cfg = MatcherCfg(min_clips=1)
    spent = {"save_s": 0.0}
    save = records.save

    def timed_save(*args: object, **kwargs: object) -> None:
        t = time.perf_counter()
        save(*args, **kwargs)  # type: ignore[arg-type]
        spent["save_s"] += time.perf_counter() - t

    with Store(location) as store:
        store.hold_writer_lock()   # as `xreid matcher` does (PostgreSQL: every statement on the lock's connection)
        t = time.perf_counter()
        bus = MemoryBus()
        stage = MatcherStage(bus, store, Matcher(cfg), cfg)
        restart_s = time.perf_counter() - t
        for i in range(n_embeddings):
            k, seg = i // 2, i % 2
            ident = int(rng.integers(len(centres)))
            vec = _unit(centres[ident] + 0.5 * _unit(rng.standard_normal(dim, dtype=np.float32)))
            uid = f"cam9-r2-{k}"
            bus.publish(STREAM_EMBEDDINGS, Embedding(make_clip_id("cam9", uid, seg), "cam9", "rgb", uid, seg,
                                                     T0 + 10**6 + 20 * k + 8 * seg, T0 + 10**6 + 20 * k + 8 * seg + 5,
                                                     vec, MODEL).to_bytes())
        records.save = timed_save   # type: ignore[assignment]
        try:
            t = time.perf_counter()
            consumed = stage.drain()
            wall = time.perf_counter() - t
        finally:
            records.save = save   # type: ignore[assignment]
    assert consumed == n_embeddings, (consumed, n_embeddings)
    return {"restart_s": restart_s, "embeddings_per_s": n_embeddings / wall, "drain_s": wall,
            "store_share": spent["save_s"] / wall, "store_ms_per_embedding": 1000 * spent["save_s"] / n_embeddings}


def api_run(location: str, n_ids: int, n_requests: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed + 2)
    out: dict[str, float] = {}
    with TestClient(create_app(ApiCfg(), location)) as client:
        for name, make in (("tracks", lambda: f"/tracks?limit=50&offset={int(rng.integers(1000))}"),
                           ("identity", lambda: f"/identities/{int(rng.integers(1, n_ids + 1))}")):
            times = []
            for i in range(20 + n_requests):
                url = make()
                t = time.perf_counter()
                resp = client.get(url)
                elapsed = time.perf_counter() - t
                assert resp.status_code == 200, (url, resp.status_code, resp.text[:200])
                if i >= 20:
                    times.append(elapsed * 1000)
            out[f"{name}_p50_ms"] = float(np.percentile(times, 50))
            out[f"{name}_p99_ms"] = float(np.percentile(times, 99))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=100_000)
    ap.add_argument("--per-identity", type=int, default=5)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--embeddings", type=int, default=2000, help="new clips through the matcher")
    ap.add_argument("--requests", type=int, default=300, help="timed requests per route")
    ap.add_argument("--pg", default=os.environ.get("XREID_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"),
                    help="PostgreSQL server URL (a throwaway database is created and dropped on it)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--label", default="")
    ap.add_argument("--out", default="bench-out/store_backends.json")
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="xreid-bench-store-") as tmp:
        lite = str(Path(tmp) / "bench.sqlite")
        t = time.perf_counter()
        centres = prefill(lite, args.tracks, args.per_identity, args.dim, args.seed)
        fill_s = time.perf_counter() - t
        pg = create_database(args.pg, f"xreid_bench_{uuid.uuid4().hex[:10]}")
        try:
            t = time.perf_counter()
            copy_store(lite, pg)
            copy_s = time.perf_counter() - t
            for backend, location, made_s in (("sqlite", lite, fill_s), ("postgresql", pg, copy_s)):
                row: dict[str, object] = {"backend": backend, "tracks": args.tracks, "prefill_s": made_s}
                row.update(api_run(location, len(centres), args.requests, args.seed))
                row.update(matcher_run(location, centres, args.embeddings, args.dim, args.seed))
                rows.append(row)
                print(f"{backend}: done", file=sys.stderr, flush=True)
        finally:
            drop_database(pg)

    print(f"\nstore backends at {args.tracks} tracks ({args.dim}-d), {args.embeddings} new embeddings, "
          f"{args.requests} requests per route")
    print(f"{'backend':<11}{'prefill s':>10}{'restart s':>10}{'emb/s':>8}{'store ms/emb':>13}{'store %':>8}"
          f"{'/tracks p50':>12}{'p99':>7}{'/identities/{id} p50':>21}{'p99':>7}")
    for r in rows:
        print(f"{r['backend']:<11}{r['prefill_s']:>10.1f}{r['restart_s']:>10.2f}{r['embeddings_per_s']:>8.0f}"
              f"{r['store_ms_per_embedding']:>13.2f}{100 * r['store_share']:>8.0f}{r['tracks_p50_ms']:>12.1f}"
              f"{r['tracks_p99_ms']:>7.1f}{r['identity_p50_ms']:>21.1f}{r['identity_p99_ms']:>7.1f}")
    print("(prefill: SQLite written through the store functions; PostgreSQL: that file copied by copy_store)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"label": args.label, "machine": platform.node(), "cpus": os.cpu_count(),
                               "args": vars(args) | {"pg": "***"}, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
