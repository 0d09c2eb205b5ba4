"""Issue 19 item 5: one hostile bus entry is dead-lettered with its reason; its batch-mates flow on.

Each repro used to escape the decoder as OverflowError, ValueError or RecursionError, kill the
worker (exit 1) with the whole batch pending, and after restarts the delivery limit dead-lettered
the valid clips delivered with it. Real Redis (``redis_server``) throughout.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import cv2
import numpy as np
import pytest

from pipeline.bus import GROUP_MATCHER, STREAM_CLIPS, STREAM_EMBEDDINGS, create_bus
from pipeline.bus.messages import Embedding
from pipeline.camera.status import STREAM_CAMERA_STATUS, CameraStatusEvent
from pipeline.config.settings import BusCfg, ReidCfg, XreidCfg
from pipeline.ingest.image_input import ImageRejected, peek_header
from pipeline.matcher.matcher import Matcher
from pipeline.matcher.stage import MatcherStage
from pipeline.matcher.status_sink import CameraStatusSink
from pipeline.reid.stage import ReidStage
from pipeline.store.base import Store
from pipeline.store.tracks import get_track
from tests.support.hostile_payloads import REPROS
from tests.support.matcher_helpers import emb, person
from tests.support.reid_helpers import CodeEncoder, make_clip
from tests.support.services import wait_until
from workers.lifecycle import Shutdown
from workers.reid import ReidWorker

EXPECTED_REASON = {"t_start=10^400": "out of the float range", "5000-digit int": "4300 digits",
                   "nested 100000 deep": "nested too deeply"}


def _embedded_uids(bus) -> list[str]:
    bus.ensure_group(STREAM_EMBEDDINGS, "probe")
    msgs = bus.read(STREAM_EMBEDDINGS, "probe", "probe-0", 100, 0)
    return sorted(Embedding.from_bytes(m.data).track_uid for m in msgs)


@pytest.mark.parametrize("defect", sorted(REPROS))
def test_hostile_clip_is_dead_lettered_and_its_batch_mates_are_embedded(redis_server, defect):
    bus = create_bus(redis_server.url, BusCfg())
    stage = ReidStage(bus, CodeEncoder(), ReidCfg(max_batch=8, max_wait_ms=0), consumer="w1")
    bus.publish(STREAM_CLIPS, make_clip("cam1", "before", 1).to_bytes())
    bad_id = bus.publish(STREAM_CLIPS, REPROS[defect](make_clip("cam1", "bad", 2).to_bytes()))
    bus.publish(STREAM_CLIPS, make_clip("cam1", "after", 3).to_bytes())

    result = stage.step(block_ms=1000, wait_ms=0)  # used to raise and leave all three pending

    assert (result.consumed, result.published, result.dead_lettered) == (3, 2, 1)
    assert _embedded_uids(bus) == ["after", "before"]
    [dead] = bus.dead_letters(STREAM_CLIPS)
    assert dead.source_id == bad_id
    assert dead.reason.startswith("contract: ") and EXPECTED_REASON[defect] in dead.reason
    assert bus.pending(STREAM_CLIPS, "reid") == 0
    bus.close()


def test_reid_worker_keeps_running_past_a_hostile_clip(redis_server):
    bus = create_bus(redis_server.url, BusCfg())
    shutdown = Shutdown(grace_s=5.0)
    worker = ReidWorker(bus, CodeEncoder(), XreidCfg(), "reid-1", shutdown)
    exit_code: list[int] = []
    thread = threading.Thread(target=lambda: exit_code.append(worker.run()))
    thread.start()
    try:
        feeder = create_bus(redis_server.url, BusCfg())
        for i, defect in enumerate(sorted(REPROS)):
            feeder.publish(STREAM_CLIPS, REPROS[defect](make_clip("cam1", f"bad{i}", 1).to_bytes()))
            feeder.publish(STREAM_CLIPS, make_clip("cam1", f"good{i}", 2).to_bytes())
        wait_until(lambda: worker.stage.counters.published == 3 and sum(worker.stage.counters.dead_lettered.values()) == 3,
                   timeout=20, what="three clips embedded and three dead-lettered")
        assert thread.is_alive(), "the worker died on a hostile clip"
        assert _embedded_uids(feeder) == ["good0", "good1", "good2"]
        assert dict(worker.stage.counters.dead_lettered) == {"contract": 3}
        assert feeder.pending(STREAM_CLIPS, "reid") == 0
    finally:
        shutdown.request()
        thread.join(timeout=20)
    assert exit_code == [0]
    feeder.close()


@pytest.mark.parametrize("defect", sorted(REPROS))
def test_hostile_embedding_is_dead_lettered_and_its_batch_mates_are_stored(redis_server, tmp_path, defect):
    bus = create_bus(redis_server.url, BusCfg())
    with Store(tmp_path / "x.sqlite") as store:
        stage = MatcherStage(bus, store, Matcher(), consumer="m1")
        bus.publish(STREAM_EMBEDDINGS, emb("cam1", "before", person(0), 100, 110).to_bytes())
        bad_id = bus.publish(STREAM_EMBEDDINGS, REPROS[defect](emb("cam1", "bad", person(1), 100, 110).to_bytes()))
        bus.publish(STREAM_EMBEDDINGS, emb("cam2", "after", person(2), 120, 130).to_bytes())

        result = stage.step(block_ms=1000)

        assert (result.consumed, result.stored, result.dead_lettered) == (3, 2, 1)
        assert get_track(store, "before") is not None and get_track(store, "after") is not None
        assert get_track(store, "bad") is None
    [dead] = bus.dead_letters(STREAM_EMBEDDINGS)
    assert dead.source_id == bad_id and dead.reason.startswith("contract: ")
    assert bus.pending(STREAM_EMBEDDINGS, GROUP_MATCHER) == 0
    bus.close()


def test_hostile_camera_status_reports_are_dead_lettered_and_neighbours_saved(redis_server, tmp_path):
    bus = create_bus(redis_server.url, BusCfg())
    good = json.loads(CameraStatusEvent.make("cam1", "connected", "", "rtsp://cam1/s", "rgb", 100.0).to_bytes())
    hostile = [
        json.dumps({**good, "ts": 0}).replace('"ts": 0', '"ts": 1' + "0" * 400),
        json.dumps({**good, "ts": 0}).replace('"ts": 0', '"ts": ' + "7" * 5000),
        json.dumps({**good, "reason": 0}).replace('"reason": 0', '"reason": ' + "[" * 100_000 + "]" * 100_000),
    ]
    with Store(tmp_path / "x.sqlite") as store:
        sink = CameraStatusSink(bus, store, "matcher-1")
        for i, text in enumerate(hostile):
            bus.publish(STREAM_CAMERA_STATUS, text.encode())
            bus.publish(STREAM_CAMERA_STATUS, json.dumps({**good, "camera_id": f"ok{i}"}).encode())
        assert sink.step() == 3
        assert sorted(r[0] for r in store.execute("SELECT camera_id FROM cameras")) == ["ok0", "ok1", "ok2"]
    assert len(bus.dead_letters(STREAM_CAMERA_STATUS)) == 3 == sink.dead_lettered
    bus.close()



def _declaring(jpeg: bytes, height: int, width: int) -> bytes:
    """``jpeg`` with its frame header rewritten to declare ``height`` x ``width`` (the data stays small)."""
    b = bytearray(jpeg)
    i = 2
    while b[i + 1] not in (0xC0, 0xC2):
        i += 2 + ((b[i + 2] << 8) | b[i + 3])
    b[i + 5:i + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(b)


def test_a_jpeg_declaring_a_huge_image_is_refused_before_decoding(redis_server):
    # 600 bytes declaring 30000x30000: OpenCV used to spend ~30 s and ~5 GB on it (one frame)
    bus = create_bus(redis_server.url, BusCfg())
    stage = ReidStage(bus, CodeEncoder(), ReidCfg(max_batch=8, max_wait_ms=0), consumer="w1")
    good = make_clip("cam1", "bomb", 2)
    bomb = replace(good, frames=(good.frames[0], _declaring(good.frames[1], 30000, 30000), *good.frames[2:]))
    assert len(bomb.frames[1]) < 5000
    bus.publish(STREAM_CLIPS, make_clip("cam1", "before", 1).to_bytes())
    bus.publish(STREAM_CLIPS, bomb.to_bytes())
    bus.publish(STREAM_CLIPS, make_clip("cam1", "after", 3).to_bytes())
    assert stage.step(block_ms=1000, wait_ms=0).dead_lettered == 1
    assert _embedded_uids(bus) == ["after", "before"]
    [dead] = bus.dead_letters(STREAM_CLIPS)
    assert dead.reason.startswith("bad_shape") and "declares 30000x30000" in dead.reason
    assert dict(stage.counters.dead_lettered) == {"bad_shape": 1}
    bus.close()


@pytest.mark.parametrize(("h", "w", "progressive"), [(1, 1, False), (96, 48, False), (300, 2000, True), (50, 60, True)])
def test_jpeg_header_size_is_what_opencv_decodes(h, w, progressive):
    flags = [cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)]
    ok, buf = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8), flags)
    data = buf.tobytes()
    header = peek_header(data, "crop")
    assert header.format == "JPEG" and (header.height, header.width) == (h, w) == cv2.imdecode(buf, cv2.IMREAD_COLOR).shape[:2]
    declared = peek_header(_declaring(data, 30000, 123), "bomb")
    assert (declared.height, declared.width) == (30000, 123)
    for broken in (b"", b"\xff\xd8", data[:20], b"\x00" + data[1:], b"\xff\xd8\xff\xd9"):
        with pytest.raises(ImageRejected):
            peek_header(broken, "broken")
