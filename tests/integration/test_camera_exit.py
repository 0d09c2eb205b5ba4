"""The camera worker's exit status tells a supervisor whether to restart it (docs/distributed.md):
0 = every source ended for good (finished: a restart would replay files), 1 = a camera stopped on
an error. Real files cut from vtest.avi, a real refused RTSP connection, the in-memory bus."""

from __future__ import annotations

from pipeline.bus import MemoryBus
from pipeline.config.loader import from_dict
from pipeline.config.settings import XreidCfg
from pipeline.ingest.looks import rerender_video
from tests.support.services import free_port
from workers.camera import CameraWorker
from workers.lifecycle import Shutdown


def _worker(cameras: list[dict], **sections) -> CameraWorker:
    return CameraWorker(from_dict(XreidCfg, {"cameras": cameras, **sections}), MemoryBus(), Shutdown())


def test_file_end_and_spent_reconnects_are_finished_exit_0(vtest_path, tmp_path):
    clip = str(rerender_video(vtest_path, tmp_path / "door.avi", lambda f: f, is_color=True, max_frames=12))
    worker = _worker([{"id": "door", "source": clip}, {"id": "gate", "source": f"rtsp://127.0.0.1:{free_port()}/x"}],
                     rtsp={"max_reconnects": 1, "open_timeout_s": 1.0, "read_timeout_s": 1.0,
                           "backoff_initial_s": 0.05, "backoff_max_s": 0.1})
    assert worker.run() == 0
    states = {s.cfg.id: s for s in worker.states}
    assert states["door"].status.state == "ended" and states["door"].frames_read == 12
    assert states["gate"].status.state == "failed" and "gave up" in states["gate"].status.reason
    assert not any(s.error for s in states.values())


def test_camera_that_could_not_start_makes_exit_1(vtest_path, tmp_path):
    clip = str(rerender_video(vtest_path, tmp_path / "door.avi", lambda f: f, is_color=True, max_frames=5))
    worker = _worker([{"id": "door", "source": clip}, {"id": "gone", "source": str(tmp_path / "missing.avi")}])
    assert worker.run() == 1
    states = {s.cfg.id: s for s in worker.states}
    assert states["door"].status.state == "ended" and states["gone"].error
