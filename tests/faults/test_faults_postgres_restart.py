"""PostgreSQL restarted under a running matcher: nothing lost, nothing twice, degraded while it is down.

The matcher (a real ``xreid matcher`` process) writes a PostgreSQL cluster this test owns
(``PgCluster``: its own ``initdb``, password auth, the password only in ``PGPASSWORD``). The cluster is
down when the matcher starts (it waits with backoff), comes up, is stopped mid-run while embeddings
keep arriving, and comes back: every embedding published is in the store exactly once.
"""

from __future__ import annotations

import threading

import pytest

from pipeline.bus import STREAM_EMBEDDINGS, create_bus
from pipeline.config.settings import BusCfg
from tests.support.fault_helpers import WorkerProc, store_clip_counts
from tests.support.matcher_helpers import emb, view
from tests.support.postgres import PgCluster
from tests.support.services import wait_until

N_TRACKS, CLIPS_PER_TRACK = 12, 5


@pytest.fixture
def cluster():
    c = PgCluster().init()
    yield c
    c.destroy()


class Producer:
    """Publishes embeddings (clips of ``N_TRACKS`` tracks, interleaved) to Redis from a thread."""

    def __init__(self, url: str) -> None:
        self.bus = create_bus(url, BusCfg())
        self.published: list[str] = []
        self.go = threading.Event()
        self.go.set()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for seg in range(CLIPS_PER_TRACK):
            for k in range(N_TRACKS):
                self.go.wait()
                e = emb(f"cam{k % 3}", f"cam{k % 3}-r1-{k}", view(k, 0.95, (k + seg) % 16), 100 * k + 10 * seg,
                        100 * k + 10 * seg + 5, segment=seg)
                self.bus.publish(STREAM_EMBEDDINGS, e.to_bytes())
                self.published.append(e.clip_id)
                threading.Event().wait(0.05)   # a steady trickle, so some arrive during the outage


def test_postgres_restart_mid_run_loses_nothing_duplicates_nothing_and_degrades_health(cluster, redis_server,
                                                                                      tmp_path):
    cluster.stop()   # down before the matcher starts: it waits with backoff instead of failing
    env = {"XREID_REDIS_URL": redis_server.url, "PGPASSWORD": cluster.password, "XREID_BUS__CLAIM_IDLE_MS": "1500",
           "XREID_STORE__BACKOFF_MAX_S": "0.5", "XREID_STORE__CONNECT_TIMEOUT_S": "2", "XREID_MATCHER__MIN_CLIPS": "1"}
    url = cluster.url()   # no password in argv: libpq reads PGPASSWORD
    matcher = WorkerProc(["matcher", "--store", url, "--consumer", "m-1"], env, tmp_path / "m.log").start()
    producer = Producer(redis_server.url)
    try:
        wait_until(lambda: "unreachable during connect" in matcher.output(), timeout=20, what="matcher waiting")
        assert matcher.proc.poll() is None
        cluster.start()
        matcher.wait_healthy()

        producer.thread.start()
        wait_until(lambda: len(store_clip_counts(url_pw(cluster))) >= 15, timeout=60, interval=0.2,
                   what="first embeddings stored")
        cluster.stop()
        stopped_at = len(producer.published)
        # the matcher keeps running, rides the outage out and says so
        wait_until(lambda: (matcher.health() or {}).get("store_reachable") is False, timeout=30, interval=0.1,
                   what="matcher noticing the outage")
        health = matcher.health()
        assert health["status"] == "degraded" and matcher.proc.poll() is None, health
        wait_until(lambda: len(producer.published) > stopped_at + 5, timeout=30, what="embeddings during the outage")
        wait_until(lambda: (matcher.health() or {}).get("store_unreachable_s", 0) >= 2, timeout=30, interval=0.1,
                   what="an outage of a few backoff rounds")
        assert matcher.health()["status"] == "degraded", "degraded, not failed, however long it lasts"
        cluster.start()
        wait_until(lambda: (matcher.health() or {}).get("status") == "ok", timeout=60, interval=0.2,
                   what="matcher healthy again")
        producer.thread.join(timeout=60)
        assert len(producer.published) == N_TRACKS * CLIPS_PER_TRACK
        wait_until(lambda: len(store_clip_counts(url_pw(cluster))) == len(producer.published), timeout=90,
                   interval=0.3, what="every embedding in the store")
        counts = store_clip_counts(url_pw(cluster))
        assert sorted(counts) == sorted(producer.published), "0 lost"
        assert set(counts.values()) == {1}, "0 duplicated"
        log = matcher.output()
        assert "reachable again" in log and cluster.password not in log
        matcher.sigterm()
        assert matcher.wait(timeout=20) == 0
    finally:
        matcher.stop()
        producer.bus.close()


def url_pw(cluster: PgCluster) -> str:
    return cluster.url(password=True)
