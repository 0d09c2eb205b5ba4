"""``xreid up`` with a file camera: the camera worker finishes once, is not restarted, and the site
exits by itself after the clips on the bus are stored (issue 24: a restarted worker replayed the
file and stored every track twice).

Real processes (``xreid up`` -> camera, re-ID, matcher), a real redis-server, 70 real frames of
vtest.avi, the committed tiny model; the store is compared with an embedded ``xreid replay`` of
the same camera list.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline.ingest.looks import rerender_video
from tests.support.services import wait_until

REPO = Path(__file__).resolve().parents[2]
FRAMES = 70


def _free_base_port() -> int:
    """A base whose camera (+1), matcher (+2) and first re-ID (+10) metrics ports are all free now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + 10 > 65535:
            continue
        try:
            for off in (1, 2, 10):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + off))
        except OSError:
            continue
        return base
    raise AssertionError("no free metrics port range")


def _tracks(store: Path, where: str = "") -> list[tuple[str, str, float, float]]:
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return conn.execute(f"SELECT track_uid, camera_id, t_start, t_end FROM tracks {where}").fetchall()
    finally:
        conn.close()


def test_up_finishes_a_file_camera_once_and_exits_after_draining(redis_server, vtest_path, tmp_path):
    clip = rerender_video(vtest_path, tmp_path / "door.avi", lambda f: f, is_color=True, max_frames=FRAMES)
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(yaml.safe_dump({"cameras": [{"id": "door", "source": str(clip), "modality": "rgb"}]}))
    store = tmp_path / "site" / "xreid.sqlite"
    logs = tmp_path / "site" / "logs"
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump({
        "redis_url": redis_server.url, "cameras": str(cameras), "store": str(store), "reid_workers": 1,
        "reid_device": "cpu", "metrics_base_port": _free_base_port(), "log_dir": str(logs),
        "api": {"enabled": False}, "restart": {"max_restarts": 3, "backoff_s": 0.2, "backoff_max_s": 0.5},
        "exit_when_cameras_finish": True, "drain_timeout_s": 120}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("XREID_REDIS_URL", None)  # the site file's Redis, the test's own server

    camera_log_path = logs / "camera.log"

    def camera_runs() -> int:
        return camera_log_path.read_text(errors="replace").count("camera worker run ") if camera_log_path.exists() else 0

    proc = subprocess.Popen([sys.executable, "-m", "workers.cli", "up", "--config", str(site), "--status-every", "0"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # ends by itself; a second camera run (the replay this issue is about) fails fast instead of hanging
        wait_until(lambda: proc.poll() is not None or camera_runs() > 1, timeout=240, interval=0.2,
                   what="xreid up to exit after its camera finished")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    up = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    camera_log = camera_log_path.read_text(errors="replace")
    assert camera_runs() == 1, "the camera worker ran once: the finished file was not replayed"
    assert up.returncode == 0, f"{up.stdout}\n{up.stderr[-3000:]}\n{camera_log[-2000:]}"
    rows = {line.split()[0]: line.split() for line in up.stdout.splitlines()[1:] if line.strip()}
    assert rows["camera"][1] == "finished" and rows["camera"][3] == "0", up.stdout   # status, restarts
    assert rows["camera"][-1] == "0", "exit 0 = finished for good"
    assert rows["matcher"][1] == "stopped" and rows["reid-0"][1] == "stopped", up.stdout
    assert "camera finished (exit 0" in up.stderr and "every clip embedded and stored" in up.stderr
    assert "end of file" in camera_log and "every camera finished for good" in camera_log

    site_tracks = _tracks(store)
    assert site_tracks, "the camera's tracks reached the store"
    spans = [(cam, t0, t1) for _, cam, t0, t1 in site_tracks]
    assert len(set(spans)) == len(spans), "no camera/time span stored twice"
    runs = {re.sub(r"g\d+$", "", uid.rsplit("-", 1)[0]) for uid, *_ in site_tracks}  # door-<run id>[g<n>]-<id>
    assert len(runs) == 1, f"one run id, the file was replayed once: {runs}"

    # the same camera list replayed embedded (one process, in-memory bus) stores as many tracks
    replay_out = tmp_path / "replay"
    rep = subprocess.run([sys.executable, "-m", "workers.cli", "replay", "--config", str(cameras), "--out",
                          str(replay_out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert rep.returncode == 0, rep.stderr[-3000:]
    embedded = _tracks(replay_out / "xreid.sqlite")
    assert len(site_tracks) == len(embedded), (len(site_tracks), len(embedded))
