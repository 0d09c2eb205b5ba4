"""A re-ID worker SIGKILLed mid-batch loses nothing: another worker of the group reclaims its entries.

Real processes (``xreid reid-worker`` x2, ``xreid matcher``), a real redis-server, a real tiny
X-ReID checkpoint. Afterwards every published clip is in the store exactly once, by counting.
"""

from __future__ import annotations

import redis

from pipeline.bus import GROUP_REID, STREAM_CLIPS, create_bus
from tests.support.fault_helpers import WorkerProc, store_clip_counts, tiny_checkpoint
from tests.support.reid_helpers import make_clip
from tests.support.services import wait_until


def _pending_of(r: redis.Redis, consumer: str) -> int:
    info = r.xpending(STREAM_CLIPS, GROUP_REID)
    return sum(int(c["pending"]) for c in info.get("consumers", []) if c["name"].decode() == consumer)


def test_killed_reid_worker_entries_are_reclaimed_and_stored_exactly_once(redis_server, tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "tiny.pt")
    store = tmp_path / "xreid.sqlite"
    env = {"XREID_REDIS_URL": redis_server.url, "XREID_BUS__CLAIM_IDLE_MS": "1500", "XREID_REID__DEVICE": "cpu",
           "XREID_REID__MAX_BATCH": "64", "XREID_REID__MAX_WAIT_MS": "3000", "XREID_BUS__TRIM_EVERY_S": "1"}
    # the victim waits up to 3 s to fill a batch, holding what it read: it is killed in that window
    victim = WorkerProc(["reid-worker", "--checkpoint", str(ckpt), "--consumer", "reid-a"], env, tmp_path / "a.log")
    rescuer = WorkerProc(["reid-worker", "--checkpoint", str(ckpt), "--consumer", "reid-b"],
                         {**env, "XREID_REID__MAX_WAIT_MS": "50"}, tmp_path / "b.log")
    matcher = WorkerProc(["matcher", "--store", str(store), "--consumer", "matcher-1"], env, tmp_path / "m.log")
    workers = [victim, rescuer, matcher]
    bus = create_bus(redis_server.url)
    raw = redis.Redis.from_url(redis_server.url)
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.wait_healthy()
        produced: list[str] = []

        def publish(n: int) -> None:
            for _ in range(n):
                i = len(produced)
                clip = make_clip(f"cam{i % 2}", f"run1-{i}", identity=i % 12, modality="ir" if i % 3 == 0 else "rgb")
                bus.publish(STREAM_CLIPS, clip.to_bytes())
                produced.append(clip.clip_id)

        # feed clips until the victim holds some in its (unfinished) batch, then kill it
        wait_until(lambda: publish(1) or _pending_of(raw, "reid-a") > 0, timeout=20, interval=0.05,
                   what="the victim holding a batch")
        held = _pending_of(raw, "reid-a")
        victim.kill()
        assert held > 0
        publish(20)  # the stream keeps flowing while the dead worker's entries wait to be reclaimed

        wait_until(lambda: len(store_clip_counts(store)) == len(produced), timeout=60, interval=0.2,
                   what=f"all {len(produced)} clips in the store")
        counts = store_clip_counts(store)
        assert sorted(counts) == sorted(produced), "0 lost"
        assert set(counts.values()) == {1}, "0 duplicated"
        assert bus.pending(STREAM_CLIPS, GROUP_REID) == 0 and bus.lag(STREAM_CLIPS, GROUP_REID) == 0
        assert _pending_of(raw, "reid-a") == 0, "the dead worker's entries were taken over"
        metrics = rescuer.metrics()
        reclaimed = [ln for ln in metrics.splitlines() if ln.startswith("xreid_bus_events_total")
                     and 'event="reclaimed"' in ln]
        assert reclaimed and float(reclaimed[0].split()[-1]) >= held
        assert "xreid_clips_dead_lettered_total" not in metrics, "nothing was dead-lettered"
        # fully acked entries are trimmed by the workers (bus.trim_every_s), and only those
        wait_until(lambda: bus.length(STREAM_CLIPS) == 0, timeout=10, what="acked clips trimmed")

        # SIGTERM (docs/design.md §7): finish the batch, ack, exit 0 within 10 s
        for w in (rescuer, matcher):
            w.sigterm()
        for w in (rescuer, matcher):
            assert w.wait(timeout=10) == 0, w.output()[-2000:]
        assert "SIGTERM received" in rescuer.output()
    finally:
        for w in workers:
            w.stop()
        bus.close()
        raw.close()
