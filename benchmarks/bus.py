"""Redis bus benchmark: clips/s through ``RedisBus`` against a raw redis-py Streams loop (the limit).

Both sides move the same encoded ``Clip`` payload (~64 KB: 8 JPEG-sized crops) through the same
redis-server the same way: publish a batch (one ``XADD`` per clip), read it back with one
``XREADGROUP COUNT batch``, acknowledge it with one ``XACK``. The raw loop is plain redis-py
calls with no checks; ``RedisBus`` adds its retry wrapper, payload checks and message objects.
Runs alternate (raw, bus, raw, bus, …) so drift on a shared machine hits both; the median run
of each is reported. A third row shows the raw loop with RedisBus's socket timeout, the one
connection setting that differs: a timeout puts Python sockets in poll-before-send mode, a real
cost that RedisBus pays on purpose (a dead network must not hang a worker forever).

Prints a table, writes ``bench-out/bus.json``. Starts its own redis-server on a free loopback
port unless ``--redis URL`` names one (its streams ``bench:*`` are deleted first).

    .venv/bin/python benchmarks/bus.py
    .venv/bin/python benchmarks/bus.py --clips 5000 --batch 32 --runs 5
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

from pipeline.bus.messages import Clip, make_clip_id
from pipeline.bus.redis import RedisBus

CLIP_BYTES = 64 * 1024
SEQ_LEN = 8
BUS_SOCKET_TIMEOUT_S = 5.0  # BusCfg.socket_timeout_s default


def make_payload(size: int = CLIP_BYTES, seq_len: int = SEQ_LEN) -> bytes:
    """One real encoded ``Clip`` of about ``size`` bytes (crop bytes are JPEG-framed noise)."""
    rng = np.random.default_rng(0)
    crop = (size - 600) // seq_len
    frames = tuple(b"\xff\xd8" + rng.bytes(crop - 4) + b"\xff\xd9" for _ in range(seq_len))
    ts = 1_700_000_000.0 + np.arange(seq_len, dtype=np.float64) * 0.1
    clip = Clip(clip_id=make_clip_id("cam0", "bench-1", 0), camera_id="cam0", modality="rgb", track_uid="bench-1",
                segment=0, t_start=float(ts[0]), t_end=float(ts[-1]), frames=frames,
                boxes_xyxy=np.tile(np.array([10, 20, 110, 320], np.float32), (seq_len, 1)), frame_ts=ts,
                det_scores=np.full(seq_len, 0.9, np.float32), n_seen=seq_len)
    return clip.to_bytes()


def run_raw(r: redis.Redis, stream: str, payload: bytes, n: int, batch: int) -> float:
    r.delete(stream)
    r.xgroup_create(stream, "g", id="0", mkstream=True)
    done = 0
    t0 = time.perf_counter()
    while done < n:
        k = min(batch, n - done)
        for _ in range(k):
            r.xadd(stream, {b"d": payload})
        resp = r.xreadgroup("g", "c", {stream: ">"}, count=k)
        ids = [eid for eid, _ in resp[0][1]]
        r.xack(stream, "g", *ids)
        done += len(ids)
    return time.perf_counter() - t0


def run_bus(bus: RedisBus, r: redis.Redis, stream: str, payload: bytes, n: int, batch: int) -> float:
    r.delete(stream)
    bus.ensure_group(stream, "g")
    done = 0
    t0 = time.perf_counter()
    while done < n:
        k = min(batch, n - done)
        for _ in range(k):
            bus.publish(stream, payload)
        msgs = bus.read(stream, "g", "c", count=k)
        bus.ack(stream, "g", [m.id for m in msgs])
        done += len(msgs)
    return time.perf_counter() - t0


def start_server(workdir: Path) -> tuple[subprocess.Popen, str]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not installed; run `bash scripts/system-deps.sh` or pass --redis URL")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            if redis.Redis.from_url(url).ping():
                return proc, url
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("redis-server did not start") from None
            time.sleep(0.05)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--redis", default=None, help="existing server URL (default: start one)")
    p.add_argument("--clips", type=int, default=1000, help="clips per run")
    p.add_argument("--batch", type=int, default=16, help="clips per XREADGROUP/XACK (RedisBus read_count)")
    p.add_argument("--runs", type=int, default=9, help="runs of each loop (median reported)")
    p.add_argument("--out", default="bench-out/bus.json")
    args = p.parse_args()

    tmp = tempfile.TemporaryDirectory()
    proc = None
    url = args.redis
    if url is None:
        proc, url = start_server(Path(tmp.name))
    try:
        payload = make_payload()
        r = redis.Redis.from_url(url)
        r_timeout = redis.Redis.from_url(url, socket_timeout=BUS_SOCKET_TIMEOUT_S)
        bus = RedisBus(url, socket_timeout_s=BUS_SOCKET_TIMEOUT_S)
        run_raw(r, "bench:warm", payload, 200, args.batch)  # warm-up: connections, allocator
        run_bus(bus, r, "bench:warm", payload, 200, args.batch)
        raw_s, bus_s, raw_timeout_s = [], [], []
        for _ in range(args.runs):
            raw_s.append(run_raw(r, "bench:raw", payload, args.clips, args.batch))
            bus_s.append(run_bus(bus, r, "bench:bus", payload, args.clips, args.batch))
            raw_timeout_s.append(run_raw(r_timeout, "bench:raw", payload, args.clips, args.batch))
        r.delete("bench:raw", "bench:bus", "bench:warm")
        bus.close()
        r.close()
        r_timeout.close()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        tmp.cleanup()

    raw_rate = args.clips / statistics.median(raw_s)
    bus_rate = args.clips / statistics.median(bus_s)
    raw_timeout_rate = args.clips / statistics.median(raw_timeout_s)
    mb = len(payload) / 1e6
    rows = [
        {"loop": "raw redis-py XADD/XREADGROUP/XACK", "clips_per_s": raw_rate, "mb_per_s": raw_rate * mb,
         "runs_s": raw_s},
        {"loop": "RedisBus publish/read/ack", "clips_per_s": bus_rate, "mb_per_s": bus_rate * mb, "runs_s": bus_s},
        {"loop": f"raw loop, socket_timeout={BUS_SOCKET_TIMEOUT_S:g}s", "clips_per_s": raw_timeout_rate,
         "mb_per_s": raw_timeout_rate * mb, "runs_s": raw_timeout_s},
    ]
    ratio = bus_rate / raw_rate
    meta = {"clip_bytes": len(payload), "clips_per_run": args.clips, "batch": args.batch, "runs": args.runs,
            "redis": "own redis-server on loopback" if args.redis is None else "given server",
            "python": platform.python_version(), "machine": platform.machine(), "cpu": platform.processor(),
            "redis_py": redis.__version__}
    print(f"payload {len(payload)} B, {args.clips} clips/run, batch {args.batch}, median of {args.runs} runs")
    print(f"{'loop':<38} {'clips/s':>10} {'MB/s':>8}")
    for row in rows:
        print(f"{row['loop']:<38} {row['clips_per_s']:>10.0f} {row['mb_per_s']:>8.1f}")
    verdict = "meets" if ratio >= 0.8 else "MISSES"
    print(f"ratio RedisBus / raw = {ratio:.3f} ({verdict} the >= 0.8 target)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows, "ratio": ratio, "target": 0.8}, indent=2))


if __name__ == "__main__":
    main()
