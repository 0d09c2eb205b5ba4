"""Distributed mode: the matcher worker over Redis announces; the API process streams what it committed;
an unreachable broker makes the worker degraded while matching goes on."""

from __future__ import annotations

import threading

from pipeline.api import create_app
from pipeline.bus import STREAM_EMBEDDINGS, create_bus
from pipeline.camera.status import STREAM_CAMERA_STATUS, CameraStatusEvent, TrackEnded
from pipeline.config.events import EventsCfg
from pipeline.config.settings import ApiCfg, BusCfg, MatcherCfg, PairThresholds
from pipeline.events import EventHub, MqttSink
from pipeline.events.sink import Backoff
from pipeline.matcher.announce import Announcer
from pipeline.matcher.matcher import Matcher
from pipeline.matcher.stage import MatcherStage
from pipeline.store.base import Store
from tests.support.events import SseReader, ThreadedServer
from tests.support.matcher_helpers import emb, person, view
from tests.support.services import free_port, wait_until
from workers.lifecycle import Shutdown
from workers.matcher import MatcherWorker

TOKEN = "dist-token-77"
CFG = MatcherCfg(thresholds=PairThresholds(0.7, 0.7, 0.5), min_clips=1, min_gap=0.0, idle_block_ms=50)


def test_matcher_worker_announces_to_the_api_stream_and_is_degraded_without_its_broker(redis_server, tmp_path):
    path = tmp_path / "site.sqlite"
    bus = create_bus(redis_server.url, BusCfg(), client_name="matcher")
    store = Store(path)
    dead_broker = MqttSink(f"mqtt://127.0.0.1:{free_port()}", backoff=Backoff(0.05, 0.2))   # nobody listens
    hub = EventHub([dead_broker], site="site1")
    stage = MatcherStage(bus, store, Matcher(CFG), CFG, consumer="matcher-1",
                         announcer=Announcer(hub, site="site1"))
    shutdown = Shutdown()
    worker = MatcherWorker(bus, stage, store, shutdown, "matcher-1", hub=hub, end_wait_s=5.0)
    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    api = ThreadedServer(create_app(ApiCfg(token=TOKEN), path, events_cfg=EventsCfg(api_poll_s=0.05)))
    reader = SseReader(f"{api.url}/events/stream", {"Authorization": f"Bearer {TOKEN}"})
    producer = create_bus(redis_server.url, BusCfg(), client_name="workers")   # what camera and re-ID workers send
    try:
        producer.publish(STREAM_CAMERA_STATUS, CameraStatusEvent.make("cam1", "connected", "", "rtsp://u:pw@cam1/s",
                                                                      "rgb", 100.0).to_bytes())
        producer.publish(STREAM_EMBEDDINGS, emb("cam1", "t1", person(0), 100, 105).to_bytes())
        producer.publish(STREAM_CAMERA_STATUS, TrackEnded("cam1", "t1", "rgb", 100.0, 110.0, 60, 2).to_bytes())
        producer.publish(STREAM_EMBEDDINGS, emb("cam2", "t2", view(0, 0.9, 3), 130, 140).to_bytes())
        producer.publish(STREAM_EMBEDDINGS, emb("cam1", "t1", person(0), 105, 110, segment=1).to_bytes())
        want = {"camera.status", "track.started", "identity.created", "identity.linked", "track.ended"}
        wait_until(lambda: want <= set(reader.kinds()), timeout=20, what="the worker's events on the API stream")
        frames = {f.event: f.json["payload"] for f in reader.snapshot()}
        assert frames["track.ended"]["identity"] == 1 and frames["track.ended"]["t_end"] == 110.0
        assert frames["identity.linked"]["matched_track_uid"] == "t1"
        assert "pw" not in frames["camera.status"]["source"]
        # the broker is down: matching and the API stream go on, health says degraded, the outbox holds the events
        health = worker.health()
        assert health.status == "degraded" and health.detail["events_unreachable"] == ["mqtt"]
        assert stage.counters.published == 3 and len(dead_broker.outbox) == len(reader.snapshot())
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in worker.samples()}
        assert samples[("xreid_events_announced_total", (("kind", "track.ended"),))] == 1
        assert samples[("xreid_events_sink_connected", (("sink", "mqtt"),))] == 0.0
        assert samples[("xreid_events_sink_queued", (("sink", "mqtt"),))] == len(dead_broker.outbox)
    finally:
        shutdown.request()
        runner.join(15)
        reader.close()
        api.stop()
        producer.close()
    assert not runner.is_alive()
