"""Redis restarted mid-run: producers and consumers recover by themselves and the run completes.

With AOF persistence nothing is lost (every clip lands in the store exactly once). Without
persistence the server comes back empty: what was in flight is lost, and that loss is reported
(log line + ``groups_recreated`` / ``server_restarts`` metrics), never hidden; everything
published after the restart still flows.
"""

from __future__ import annotations

import threading

from pipeline.bus import GROUP_REID, STREAM_CLIPS, create_bus
from pipeline.config.settings import BusCfg
from tests.support.fault_helpers import WorkerProc, store_clip_counts, tiny_checkpoint
from tests.support.reid_helpers import make_clip
from tests.support.services import RedisServer, free_port, wait_until

FAST_BUS = dict(backoff_initial_s=0.05, backoff_max_s=0.5, socket_timeout_s=2.0, connect_timeout_s=0.5, block_ms=200)


class Producer:
    """Publishes clips through ``RedisBus`` (the camera worker's client) from a thread."""

    def __init__(self, url: str, total: int, park_at: int = 15) -> None:
        self.bus = create_bus(url, BusCfg(**FAST_BUS))
        self.total, self.park_at = total, park_at
        self.published: list[str] = []
        self.go = threading.Event()  # cleared: the producer parks before its next clip
        self.go.set()
        self.parked = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for i in range(self.total):
            if i == self.park_at:
                self.go.clear()   # parks itself: a fast producer cannot finish before the test holds it
            if not self.go.is_set():
                self.parked.set()
                self.go.wait()
                self.parked.clear()
            clip = make_clip(f"cam{i % 2}", f"r-{i}", identity=i % 12, modality="ir" if i % 4 == 0 else "rgb")
            self.bus.publish(STREAM_CLIPS, clip.to_bytes())  # rides out the outage with backoff
            self.published.append(clip.clip_id)


def _start_pipeline(url: str, tmp_path, extra_env: dict[str, str] | None = None) -> list[WorkerProc]:
    ckpt = tiny_checkpoint(tmp_path / "tiny.pt")
    env = {"XREID_REDIS_URL": url, "XREID_BUS__CLAIM_IDLE_MS": "1500", "XREID_REID__DEVICE": "cpu",
           "XREID_REID__MAX_WAIT_MS": "20", "XREID_BUS__BACKOFF_MAX_S": "0.5", "XREID_BUS__SOCKET_TIMEOUT_S": "2",
           "XREID_BUS__CONNECT_TIMEOUT_S": "0.5", **(extra_env or {})}
    workers = [WorkerProc(["reid-worker", "--checkpoint", str(ckpt), "--consumer", "reid-1"], env, tmp_path / "r.log"),
               WorkerProc(["matcher", "--store", str(tmp_path / "xreid.sqlite"), "--consumer", "m-1"], env,
                          tmp_path / "m.log")]
    for w in workers:
        w.start()
    for w in workers:
        w.wait_healthy()
    return workers


def _bus_event(worker: WorkerProc, event: str) -> float:
    for line in worker.metrics().splitlines():
        if line.startswith("xreid_bus_events_total") and f'event="{event}"' in line:
            return float(line.split()[-1])
    return 0.0


def _restart_mid_run(server: RedisServer, producer: Producer, workers: list[WorkerProc]) -> int:
    """Stop Redis after some clips, let the producer run into the outage, restart Redis.

    Returns how many clips were published before the server went down.
    """
    producer.thread.start()   # it parks after park_at clips, so "before the outage" is well defined
    wait_until(producer.parked.is_set, timeout=30, what="producer parked after its first clips")
    server.stop()
    before = len(producer.published)
    producer.go.set()
    # while Redis is down every process keeps retrying with backoff; none of them exits
    wait_until(lambda: producer.bus.stats().get("connection_failures", 0) >= 2, timeout=10,
               what="producer noticing the outage")
    assert all(w.proc.poll() is None for w in workers)
    # ... and say so: degraded (waiting out the outage), not failed
    wait_until(lambda: all((w.health() or {}).get("status") == "degraded" for w in workers), timeout=15,
               interval=0.1, what="workers reporting the outage")
    assert all(w.health()["bus_reachable"] is False for w in workers)
    server.start()
    wait_until(lambda: all((w.health() or {}).get("status") == "ok" for w in workers), timeout=15, interval=0.1,
               what="workers healthy again")
    producer.thread.join(timeout=60)
    assert len(producer.published) == producer.total and before < producer.total
    return before



def _sigterm_and_wait(workers) -> None:
    """Every worker gets SIGTERM and must drain and exit 0 (a clean stop after the fault)."""
    for w in workers:
        w.sigterm()
    for w in workers:
        assert w.wait(timeout=10) == 0


def test_redis_restart_with_aof_loses_nothing(tmp_path):
    server = RedisServer(port=free_port(), workdir=tmp_path, appendonly=True)
    server.start()
    producer = Producer(server.url, total=40)
    workers = _start_pipeline(server.url, tmp_path)
    try:
        _restart_mid_run(server, producer, workers)
        store = tmp_path / "xreid.sqlite"
        wait_until(lambda: len(store_clip_counts(store)) == len(set(producer.published)), timeout=60, interval=0.2,
                   what="every clip in the store")
        counts = store_clip_counts(store)
        assert sorted(counts) == sorted(producer.published), "AOF: 0 lost"
        assert set(counts.values()) == {1}, "0 duplicated"
        reid, matcher = workers
        assert _bus_event(reid, "reconnects") >= 1 and _bus_event(matcher, "reconnects") >= 1
        assert _bus_event(reid, "groups_recreated") == 0, "with AOF no consumer group was lost"
        check = create_bus(server.url)
        assert check.pending(STREAM_CLIPS, GROUP_REID) == 0
        check.close()
        _sigterm_and_wait(workers)
    finally:
        for w in workers:
            w.stop()
        producer.bus.close()
        server.stop()


def test_redis_restart_without_persistence_reports_the_loss_and_keeps_flowing(redis_server, tmp_path):
    producer = Producer(redis_server.url, total=40)
    workers = _start_pipeline(redis_server.url, tmp_path)
    try:
        before = _restart_mid_run(redis_server, producer, workers)
        after_restart = producer.published[before:]  # accepted by the restarted server: none may be lost
        store = tmp_path / "xreid.sqlite"
        wait_until(lambda: set(after_restart) <= set(store_clip_counts(store)), timeout=60, interval=0.2,
                   what="clips published after the restart in the store")
        counts = store_clip_counts(store)
        assert set(counts.values()) == {1}, "nothing duplicated"
        lost = sorted(set(producer.published) - set(counts))
        reid, matcher = workers
        # the loss is reported: both consumers saw the restart and recreated their groups, and say so
        assert _bus_event(reid, "server_restarts") >= 1 and _bus_event(reid, "groups_recreated") >= 1
        assert _bus_event(matcher, "groups_recreated") >= 1
        assert "lost" in reid.output() and "restart without persistence" in reid.output()
        print(f"no-persistence restart: {len(lost)} of {len(producer.published)} clips lost (reported)")
        _sigterm_and_wait(workers)
    finally:
        for w in workers:
            w.stop()
        producer.bus.close()
