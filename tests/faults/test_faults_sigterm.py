"""Shutdown (docs/design.md §7): a camera worker told to stop publishes every open track as clips first."""

from __future__ import annotations

import threading

from pipeline.bus import STREAM_CLIPS, create_bus
from pipeline.bus.messages import Clip
from pipeline.config.loader import from_dict
from pipeline.config.settings import XreidCfg
from tests.support.services import wait_until


def test_stopping_camera_worker_flushes_open_tracks_as_clips(redis_server, vtest_path):
    from workers.camera import CameraWorker
    from workers.lifecycle import Shutdown

    cfg = from_dict(XreidCfg, {
        "cameras": [{"id": "cam1", "source": str(vtest_path)}],
        "clips": {"seq_len": 4, "segment_seconds": 600.0, "min_track_frames": 3},  # no clip before the end
    })
    bus = create_bus(redis_server.url, cfg.bus)
    shutdown = Shutdown()
    worker = CameraWorker(cfg, bus, shutdown)
    runner = threading.Thread(target=worker.run)
    runner.start()
    cam = worker.cameras[0]
    try:
        wait_until(lambda: len(cam.proc.clips.open_track_ids) >= 2 and cam.proc.stats.frames >= 10, timeout=60,
                   interval=0.05, what="tracks open mid-stream")
    finally:
        shutdown.request()  # what SIGTERM does (workers.lifecycle.Shutdown._on_signal)
        runner.join(timeout=10)
    assert not runner.is_alive(), "stopped within the 10 s budget"
    check = create_bus(redis_server.url)
    check.ensure_group(STREAM_CLIPS, "check")
    clips = [Clip.from_bytes(m.data) for m in check.read(STREAM_CLIPS, "check", "t", count=1000)]
    check.close()
    assert not cam.proc.clips.open_track_ids, "no track left open: the flush closed them all"
    assert clips and len(clips) == cam.proc.stats.clips, "every clip made, the flushed ones included, is in Redis"
    assert {c.track_uid for c in clips} and all(c.camera_id == "cam1" for c in clips)
    state = worker.states[0]
    assert state.status.state == "ended" and state.status.reason == "stopped by shutdown"
    assert not state.lost_clips, "nothing lost: Redis was up"
