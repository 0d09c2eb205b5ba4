"""Soak run: vtest.avi looped through the distributed mode on loopback; memory must stay flat, no clip lost.

Starts its own redis-server on a free loopback port and the three workers as real processes
(``xreid camera`` with a looping file camera, ``xreid reid-worker``, ``xreid matcher``), samples
the resident memory of every worker every ``--sample-s`` seconds, then stops the camera (which
flushes its open tracks), waits until every clip is embedded and matched, and stops the rest.

Clips are counted independently of the workers: an ``audit`` consumer group on the clips stream
reads every published clip id (and acks it, so the stream's trimming still works); at the end
the set of clip ids folded into the store's tracks must equal it. Memory growth is the median
RSS of the last 20% of samples against the median of the first samples after warm-up.

    .venv/bin/python benchmarks/soak.py --minutes 20          # the issue's soak
    .venv/bin/python benchmarks/soak.py --minutes 3           # what `make bench` runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.bus import GROUP_MATCHER, GROUP_REID, STREAM_CLIPS, STREAM_EMBEDDINGS  # noqa: E402
from pipeline.bus.messages import Clip  # noqa: E402
from pipeline.bus.redis import FIELD_DATA  # noqa: E402
from pipeline.ingest.footage import default_cache_dir, ensure_vtest  # noqa: E402
from pipeline.store.base import Store  # noqa: E402
from pipeline.store.tracks import load_matched_tracks  # noqa: E402

AUDIT_GROUP = "soak-audit"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise SystemExit(f"soak: timed out after {timeout:.0f}s waiting for {what}")


def rss_mb(pid: int) -> float | None:
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return None


class Audit:
    """Counts every clip id published on the clips stream, through a consumer group of its own."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.clip_ids: set[str] = set()
        self.entries = 0
        client.xgroup_create(STREAM_CLIPS, AUDIT_GROUP, id="0", mkstream=True)

    def drain(self) -> None:
        while True:
            got = self.client.xreadgroup(AUDIT_GROUP, "audit", {STREAM_CLIPS: ">"}, count=200)
            if not got:
                return
            ids = []
            for entry_id, fields in got[0][1]:
                ids.append(entry_id)
                self.entries += 1
                try:
                    self.clip_ids.add(Clip.from_bytes(fields[FIELD_DATA]).clip_id)
                except Exception as e:  # noqa: BLE001 - a malformed entry is itself a finding
                    print(f"soak: unreadable clip entry {entry_id!r}: {e}", file=sys.stderr)
            self.client.xack(STREAM_CLIPS, AUDIT_GROUP, *ids)


def stored_clip_ids(store: Path) -> set[str]:
    with Store(store, readonly=True) as s:
        return {f"{t.camera_id}:{t.track_uid}:{seg}" for t in load_matched_tracks(s) for seg in t.segments}


def backlog(client: redis.Redis) -> int:
    total = 0
    for stream, group in ((STREAM_CLIPS, GROUP_REID), (STREAM_EMBEDDINGS, GROUP_MATCHER)):
        try:
            for g in client.xinfo_groups(stream):
                if g["name"].decode() == group:
                    total += int(g["pending"]) + int(g.get("lag") or 0)
        except redis.ResponseError:
            total += 1  # stream or group not created yet: not drained
    return total


def summarise(samples: list[dict], warmup_s: float) -> dict[str, dict[str, float]]:
    out = {}
    names = sorted({k for s in samples for k in s["rss_mb"]})
    for name in names:
        series = [(s["t"], s["rss_mb"][name]) for s in samples if s["rss_mb"].get(name) is not None]
        after = [v for t, v in series if t >= warmup_s]
        if len(after) < 4:
            continue
        head = sorted(after[: max(2, len(after) // 10)])
        tail = sorted(after[-max(2, len(after) // 5):])
        base, end = head[len(head) // 2], tail[len(tail) // 2]
        out[name] = {"rss_warm_mb": round(base, 1), "rss_end_mb": round(end, 1), "rss_max_mb": round(max(after), 1),
                     "growth_pct": round(100.0 * (end - base) / base, 2)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0, help="how long the camera runs (default 20)")
    ap.add_argument("--warmup-frac", type=float, default=0.25, help="share of the run treated as warm-up")
    ap.add_argument("--sample-s", type=float, default=5.0, help="RSS sampling period")
    ap.add_argument("--checkpoint", default=None, help="re-ID checkpoint (default: the config's reid.checkpoint)")
    ap.add_argument("--out", default="bench-out/soak.json")
    args = ap.parse_args()

    vtest = ensure_vtest(default_cache_dir(dict(os.environ)))
    tmp = Path(tempfile.mkdtemp(prefix="xreid-soak-"))
    port = free_port()
    redis_proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    wait_for(lambda: _ping(client), 10, "redis")
    audit = Audit(client)

    cams = tmp / "cameras.yaml"
    cams.write_text(f"cameras:\n  - id: soak\n    source: {vtest}\n    modality: rgb\n    loop: true\n")
    store = tmp / "soak.sqlite"
    env = {**os.environ, "XREID_REDIS_URL": url, "XREID_LOG_LEVEL": "WARNING"}
    if args.checkpoint:
        # cameras cut clips of the model's T, so no crop is encoded for nothing
        from models.xreid import load_checkpoint

        env["XREID_CLIPS__SEQ_LEN"] = str(load_checkpoint(args.checkpoint).cfg.seq_len)
    xreid = [sys.executable, "-m", "workers.cli"]
    reid_cmd = [*xreid, "reid-worker", "--device", "cpu", "--metrics-port", str(free_port())]
    if args.checkpoint:
        reid_cmd += ["--checkpoint", args.checkpoint]
    commands = {
        "camera": [*xreid, "camera", "--config", str(cams), "--metrics-port", str(free_port())],
        "reid-worker": reid_cmd,
        "matcher": [*xreid, "matcher", "--store", str(store), "--metrics-port", str(free_port())],
    }
    logs = {name: open(tmp / f"{name}.log", "wb") for name in commands}  # noqa: SIM115
    procs = {name: subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=logs[name], stderr=subprocess.STDOUT)
             for name, cmd in commands.items()}
    samples: list[dict] = []
    duration = args.minutes * 60.0
    t0 = time.monotonic()
    print(f"soak: {args.minutes:g} min, workers {', '.join(f'{n}={p.pid}' for n, p in procs.items())}, logs in {tmp}")
    try:
        while (elapsed := time.monotonic() - t0) < duration:
            dead = [n for n, p in procs.items() if p.poll() is not None]
            if dead:
                raise SystemExit(f"soak: worker(s) {dead} exited early; see {tmp}")
            samples.append({"t": round(elapsed, 1), "rss_mb": {n: rss_mb(p.pid) for n, p in procs.items()}})
            audit.drain()
            time.sleep(args.sample_s)
        procs["camera"].send_signal(signal.SIGTERM)   # flushes open tracks as clips, then exits
        procs["camera"].wait(timeout=30)
        wait_for(lambda: backlog(client) == 0, 600, "the re-ID workers and matcher to drain")
        audit.drain()
        for name in ("reid-worker", "matcher"):
            procs[name].send_signal(signal.SIGTERM)
        exits = {n: p.wait(timeout=30) for n, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
        redis_proc.terminate()
        redis_proc.wait(timeout=10)
        for f in logs.values():
            f.close()

    stored = stored_clip_ids(store)
    memory = summarise(samples, duration * args.warmup_frac)
    result = {
        "benchmark": "soak",
        "minutes": args.minutes,
        "warmup_s": duration * args.warmup_frac,
        "clips_published": len(audit.clip_ids),
        "clip_entries": audit.entries,
        "clips_stored": len(stored),
        "clips_lost": len(audit.clip_ids - stored),
        "clips_unexpected": len(stored - audit.clip_ids),
        "exit_codes": exits,
        "memory": memory,
        "max_growth_pct": max((m["growth_pct"] for m in memory.values()), default=None),
        "samples": samples,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nsoak of {args.minutes:g} min (warm-up {result['warmup_s']:.0f}s), RSS per worker:")
    print(f"{'worker':<12} {'warm MB':>9} {'end MB':>9} {'max MB':>9} {'growth %':>9}")
    for name, m in memory.items():
        print(f"{name:<12} {m['rss_warm_mb']:>9} {m['rss_end_mb']:>9} {m['rss_max_mb']:>9} {m['growth_pct']:>9}")
    print(f"clips published {result['clips_published']}, stored {result['clips_stored']}, "
          f"lost {result['clips_lost']}, unexpected {result['clips_unexpected']}; exit codes {exits}")
    print(f"wrote {args.out}")
    return 0 if result["clips_lost"] == 0 else 1


def _ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


if __name__ == "__main__":
    sys.exit(main())
