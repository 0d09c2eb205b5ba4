"""What only a network store has: one writer enforced by a lock, replicas reading while it writes,
a session lost under the writer."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from models.errors import StoreError
from pipeline.api import create_app
from pipeline.config.settings import ApiCfg
from pipeline.store.base import Store, StoreUnreachable, WriterLockHeld
from pipeline.store.tracks import TrackRow, count_tracks, upsert_track
from tests.support.fault_helpers import WorkerProc
from tests.support.postgres import run_sql

BATCH = 10


def test_a_second_matcher_on_the_same_store_refuses_to_start_naming_the_holder(pg_url, redis_server, tmp_path):
    env = {"XREID_REDIS_URL": redis_server.url}
    first = WorkerProc(["matcher", "--store", pg_url, "--consumer", "m-1"], env, tmp_path / "m1.log").start()
    second = None
    try:
        first.wait_healthy()
        second = WorkerProc(["matcher", "--store", pg_url, "--consumer", "m-2"], env, tmp_path / "m2.log").start()
        assert second.wait(timeout=60) == 2
        lines = [ln for ln in second.output().splitlines() if "error" in ln]
        assert len(lines) == 1 and "already has a writer" in lines[0] and "run one matcher per store" in lines[0], \
            second.output()[-2000:]
        assert "Traceback" not in second.output()
        assert first.proc.poll() is None and first.health()["status"] == "ok"
        first.sigterm()
        assert first.wait(timeout=20) == 0
        # the lock went with the first matcher: a new one starts
        third = WorkerProc(["matcher", "--store", pg_url, "--consumer", "m-3"], env, tmp_path / "m3.log").start()
        try:
            third.wait_healthy()
        finally:
            third.stop()
    finally:
        first.stop()
        if second is not None:
            second.stop()


def _terminate_writer_sessions(url: str) -> int:
    """What a database restart does to the writer: its session, and the advisory lock with it, are gone."""
    db = url.rsplit("/", 1)[1]
    rows = run_sql(url.rsplit("/", 1)[0] + "/postgres",
                   "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                   "WHERE l.locktype = 'advisory' AND d.datname = %s", (db,))
    return len(rows)


def test_the_writer_takes_its_lock_again_after_losing_its_session_unless_another_took_it(pg_url):
    with Store(pg_url) as writer:
        assert writer.hold_writer_lock() is True
        upsert_track(writer, TrackRow("a", "cam1", "rgb", 1.0, 2.0))
        assert _terminate_writer_sessions(pg_url) == 1
        with pytest.raises(StoreUnreachable, match="lost the connection"):
            upsert_track(writer, TrackRow("b", "cam1", "rgb", 1.0, 2.0))
        assert writer.unreachable_for_s() > 0
        upsert_track(writer, TrackRow("b", "cam1", "rgb", 1.0, 2.0))   # reconnects and takes the lock again
        assert count_tracks(writer) == 2
        with Store(pg_url) as other, pytest.raises(WriterLockHeld, match="already has a writer"):
            other.hold_writer_lock()

        _terminate_writer_sessions(pg_url)
        with Store(pg_url) as usurper:   # a second matcher started while the first was cut off
            usurper.hold_writer_lock()
            with pytest.raises(StoreUnreachable):
                upsert_track(writer, TrackRow("c", "cam1", "rgb", 1.0, 2.0))
            with pytest.raises(WriterLockHeld, match="took the writer lock while the database was unreachable"):
                upsert_track(writer, TrackRow("c", "cam1", "rgb", 1.0, 2.0))


def test_api_replicas_read_consistent_pages_while_the_writer_commits(pg_url):
    Store(pg_url).close()
    replicas = [TestClient(create_app(ApiCfg(), pg_url)) for _ in range(2)]
    done = threading.Event()
    seen: list[list[int]] = [[] for _ in replicas]
    problems: list[str] = []

    def write() -> None:
        with Store(pg_url) as writer:
            writer.hold_writer_lock()
            for b in range(12):
                with writer.transaction():
                    for i in range(BATCH):
                        upsert_track(writer, TrackRow(f"cam1-r1-{b}-{i}", "cam1", "rgb", float(b), b + 0.5))
        done.set()

    def read(k: int) -> None:
        client = replicas[k]
        while True:
            finished = done.is_set()   # read before the request: its page then holds every commit
            page = client.get("/tracks", params={"limit": 500}).json()
            if len(page["items"]) != page["total"] or page["total"] % BATCH:
                problems.append(f"replica {k}: {len(page['items'])} items, total {page['total']}")
            seen[k].append(page["total"])
            if finished and len(seen[k]) >= 3:
                break

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read, args=(k,)) for k in range(2)]
    for c in replicas:
        c.__enter__()
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        for c in replicas:
            c.__exit__(None, None, None)
    assert not problems, problems[:5]
    for totals in seen:
        assert totals == sorted(totals) and totals[-1] == 12 * BATCH, totals   # never backwards, all there
    assert any(0 < t < 12 * BATCH for totals in seen for t in totals), "the readers ran while the writer wrote"


def test_a_store_refuses_writes_through_a_read_only_open(pg_url):
    Store(pg_url).close()
    with Store(pg_url, readonly=True) as reader, pytest.raises(StoreError, match="read-only"):
        upsert_track(reader, TrackRow("x", "cam1", "rgb", 1.0, 2.0))
