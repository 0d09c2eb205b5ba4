"""Backpressure: cameras shed frames (live) or slow down (files) when re-ID lags; clips are never dropped."""

from __future__ import annotations

import threading

import pytest

from pipeline.bus import GROUP_REID, STREAM_CLIPS, create_bus
from pipeline.camera.backpressure import Backpressure
from pipeline.config.loader import from_dict
from pipeline.config.settings import XreidCfg
from tests.support.services import wait_until


@pytest.fixture(params=["memory", "redis"])
def bus(request):
    url = "memory" if request.param == "memory" else request.getfixturevalue("redis_server").url
    b = create_bus(url)
    b.ensure_group(STREAM_CLIPS, GROUP_REID)
    yield b
    b.close()


def _consume(bus, n: int) -> None:
    msgs = bus.read(STREAM_CLIPS, GROUP_REID, "c", count=n)
    bus.ack(STREAM_CLIPS, GROUP_REID, [m.id for m in msgs])


def test_live_sources_skip_frames_above_high_and_resume_below_low(bus):
    bp = Backpressure(bus, STREAM_CLIPS, GROUP_REID, high=10, low=4, check_every_s=0.0)
    assert all(bp.admit(i, live=True) for i in range(20)) and bp.skipped == 0
    for _ in range(12):
        bus.publish(STREAM_CLIPS, b"clip")
    admitted = [bp.admit(i, live=True) for i in range(100, 140)]
    assert bp.shedding and bp.episodes == 1
    assert 0 < sum(admitted) < len(admitted), "some frames kept, the rest shed"
    assert bp.skipped == admitted.count(False)
    assert bp.stride > 2, "a backlog that does not drain makes it shed harder"
    _consume(bus, 9)  # backlog 3 < low
    assert bp.admit(141, live=True) and not bp.shedding and bp.stride == 1
    assert bus.length(STREAM_CLIPS) == 12, "backpressure never touches queued clips"


def test_recorded_files_wait_for_the_backlog_instead_of_skipping(bus):
    bp = Backpressure(bus, STREAM_CLIPS, GROUP_REID, high=5, low=2, check_every_s=0.01)
    for _ in range(8):
        bus.publish(STREAM_CLIPS, b"clip")
    done = threading.Event()
    result: list[bool] = []

    def camera() -> None:
        result.append(bp.admit(0, live=False))
        done.set()

    t = threading.Thread(target=camera)
    t.start()
    wait_until(lambda: bp.shedding, what="backpressure on")
    assert not done.is_set(), "the file camera waits while re-ID is behind"
    _consume(bus, 7)
    t.join(timeout=10)
    assert result == [True] and bp.skipped == 0 and bp.waited_s > 0


def test_backpressure_stop_event_releases_a_waiting_file_camera(bus):
    stop = threading.Event()
    bp = Backpressure(bus, STREAM_CLIPS, GROUP_REID, high=1, low=0, check_every_s=0.01, stop_event=stop)
    for _ in range(3):
        bus.publish(STREAM_CLIPS, b"clip")
    t = threading.Thread(target=bp.admit, args=(0, False))
    t.start()
    wait_until(lambda: bp.shedding, what="backpressure on")
    stop.set()
    t.join(timeout=5)
    assert not t.is_alive()


def test_camera_worker_sheds_frames_under_backpressure_and_publishes_every_clip(redis_server, vtest_path):
    """A live camera (realtime file) with no re-ID worker: frames are shed and counted, clips all kept."""
    from workers.camera import CameraWorker
    from workers.lifecycle import Shutdown

    cfg = from_dict(XreidCfg, {
        "cameras": [{"id": "cam1", "source": str(vtest_path), "realtime": True}],
        "clips": {"seq_len": 4, "segment_seconds": 1.0, "min_track_frames": 3},
        "bus": {"backlog_high": 2, "backlog_low": 1},
    })
    bus = create_bus(redis_server.url, cfg.bus)
    shutdown = Shutdown()
    worker = CameraWorker(cfg, bus, shutdown)
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        wait_until(lambda: worker.cameras[0].state.drops["backpressure"] >= 5, timeout=60, interval=0.1,
                   what="frames shed under backpressure")
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in worker.samples()}
        assert samples[("xreid_frames_dropped_total", (("camera", "cam1"), ("reason", "backpressure")))] >= 5
        assert samples[("xreid_backpressure_shedding", ())] == 1.0
    finally:
        shutdown.request()
        runner.join(timeout=15)
    assert not runner.is_alive()
    produced = worker.cameras[0].proc.stats.clips
    check = create_bus(redis_server.url)
    assert produced > 2 and check.length(STREAM_CLIPS) == produced, "every clip the camera made is queued"
    check.close()
