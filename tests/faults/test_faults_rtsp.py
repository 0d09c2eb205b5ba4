"""The RTSP camera dies and comes back mid-stream: the camera worker reconnects by itself.

A real GStreamer RTSP server on loopback streams the real vtest.avi; ``xreid camera`` ingests it
and publishes clips to a real Redis; ``xreid reid-worker`` (tiny X-ReID) and ``xreid matcher``
write the store. The server is SIGKILLed and restarted on the same port; tracks from both sides
of the outage reach the store, and no track uid repeats.
"""

from __future__ import annotations

import re
import sqlite3

import pytest

from tests.support.fault_helpers import WorkerProc, tiny_checkpoint
from tests.support.rtsp_helpers import RtspServer, make_mjpeg_footage
from tests.support.services import wait_until

PASSWORD = "cam-Secret-9"


@pytest.fixture(scope="module")
def footage(vtest_path, tmp_path_factory):
    return make_mjpeg_footage(vtest_path, tmp_path_factory.mktemp("rtsp-fault") / "vtest-mjpeg.avi", max_frames=300)


def _tracks(store) -> list[tuple[str, float, float, int]]:
    if not store.exists():
        return []
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT track_uid, t_start, t_end, n_embedded FROM tracks").fetchall()
    except sqlite3.OperationalError:  # the matcher has not migrated the file yet
        return []
    finally:
        conn.close()


def _camera_row(store) -> tuple | None:
    """The store's status of cam1 (written by the matcher from the camera worker's reports)."""
    if not store.exists():
        return None
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT status, reason, source FROM cameras WHERE camera_id = 'cam1'").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()


def _metric(worker: WorkerProc, name: str) -> float:
    total = 0.0
    for line in worker.metrics().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.split()[-1])
    return total


def _generation(uid: str) -> int:
    """Track uids are ``camera-<run id>[g<generation>]-<tracker id>``; the generation counts outages."""
    m = re.fullmatch(r"cam1-[0-9T]+[0-9a-f]{4}(?:g(\d+))?-\d+", uid)
    assert m, f"unexpected track uid {uid!r}"
    return int(m.group(1) or 0)


def test_camera_worker_reconnects_after_rtsp_server_restart_and_both_sides_reach_the_store(
        footage, redis_server, tmp_path):
    server = RtspServer(footage, user="viewer", password=PASSWORD)
    server.start()
    cams = tmp_path / "cams.yaml"
    cams.write_text(f"""
cameras:
  - id: cam1
    source: {server.url}
    frame_stride: 2
clips: {{seq_len: 4, segment_seconds: 4.0, min_track_frames: 3}}
rtsp: {{open_timeout_s: 5.0, read_timeout_s: 2.0, backoff_initial_s: 0.2, backoff_max_s: 1.0}}
""")
    store = tmp_path / "xreid.sqlite"
    env = {"XREID_REDIS_URL": redis_server.url, "XREID_REID__DEVICE": "cpu", "XREID_BUS__CLAIM_IDLE_MS": "3000"}
    ckpt = tiny_checkpoint(tmp_path / "tiny.pt")
    camera = WorkerProc(["camera", "--config", str(cams)], env, tmp_path / "camera.log")
    reid = WorkerProc(["reid-worker", "--checkpoint", str(ckpt)], env, tmp_path / "reid.log")
    matcher = WorkerProc(["matcher", "--store", str(store)], env, tmp_path / "matcher.log")
    workers = [camera, reid, matcher]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.wait_healthy(timeout=90)
        wait_until(lambda: _metric(camera, "xreid_clips_produced_total") >= 2, timeout=60, interval=0.2,
                   what="clips before the outage")
        server.kill()
        wait_until(lambda: (camera.health() or {}).get("cameras", {}).get("cam1", {}).get("state") == "reconnecting",
                   timeout=30, interval=0.1, what="camera noticing the outage")
        health = camera.health()
        assert health["status"] == "degraded" and PASSWORD not in str(health)
        row = wait_until(lambda: (r := _camera_row(store)) and r[0] == "reconnecting" and r, timeout=20,
                         interval=0.2, what="the outage recorded in the store")
        assert PASSWORD not in str(row) and row[2] == f"rtsp://***@127.0.0.1:{server.port}/cam"
        server.start()
        wait_until(lambda: any(_generation(uid) >= 1 and n > 0 for uid, _, _, n in _tracks(store)), timeout=90,
                   interval=0.3, what="a track from after the reconnect in the store")
        assert camera.proc.poll() is None, "the worker never exited: it reconnected by itself"
        assert camera.health()["cameras"]["cam1"]["state"] == "connected"
        assert _metric(camera, "xreid_source_reconnects_total") == 1

        tracks = _tracks(store)
        uids = [t[0] for t in tracks]
        generations = {_generation(u) for u in uids}
        assert {0, 1} <= generations, f"tracks from both sides of the outage, got generations {generations}"
        assert len(uids) == len(set(uids))

        camera.sigterm()
        assert camera.wait(timeout=10) == 0
        wait_until(lambda: (_camera_row(store) or ("",))[0] == "ended", timeout=20, interval=0.2,
                   what="the camera's end recorded in the store")
        log = camera.output() + reid.output() + matcher.output()
        assert PASSWORD not in log, "the camera password never reaches a log"
        assert "reconnecting" in camera.output() and "rtsp://***@127.0.0.1" in camera.output()
        for w in (reid, matcher):
            w.sigterm()
        for w in (reid, matcher):
            assert w.wait(timeout=10) == 0
    finally:
        for w in workers:
            w.stop()
        server.stop()
