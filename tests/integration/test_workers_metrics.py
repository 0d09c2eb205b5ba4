"""Worker health and Prometheus endpoints, and what the re-ID and matcher workers export."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from models.errors import ConfigError
from pipeline.bus import STREAM_CLIPS, MemoryBus
from pipeline.config.loader import from_dict
from pipeline.config.settings import XreidCfg
from pipeline.runtime.metrics import Health, MetricsServer, Sample, SnapshotCollector, histogram_from_counts
from tests.support.reid_helpers import CodeEncoder, make_clip
from tests.support.services import wait_until
from workers.lifecycle import Shutdown, resolve_redis_url


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_server_serves_snapshots_and_health_codes():
    state = {"health": Health("ok", {"worker": "t"}), "n": 3}
    registry = CollectorRegistry()
    buckets, total = histogram_from_counts({1: 2, 4: 1}, (1, 2, 4, 8))
    registry.register(SnapshotCollector(lambda: [
        Sample("xreid_things_total", state["n"], "counter", {"reason": "a"}, "things"),
        Sample("xreid_level", 0.5, "gauge"),
        Sample("xreid_batch", total, "histogram", {}, "batch sizes", buckets),
    ]))
    server = MetricsServer(registry, lambda: state["health"], port=0).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        code, body = _get(base + "/metrics")
        fams = _families(body.decode())
        assert code == 200
        assert fams["xreid_things"].samples[0].value == 3 and fams["xreid_things"].samples[0].labels == {"reason": "a"}
        assert fams["xreid_level"].samples[0].value == 0.5
        hist = {s.labels.get("le"): s.value for s in fams["xreid_batch"].samples if s.name.endswith("_bucket")}
        assert hist == {"1": 2, "2": 2, "4": 3, "8": 3, "+Inf": 3}
        state["n"] = 7
        assert _families(_get(base + "/metrics")[1].decode())["xreid_things"].samples[0].value == 7, "read at scrape"
        code, body = _get(base + "/health")
        assert code == 200 and json.loads(body) == {"status": "ok", "worker": "t"}
        state["health"] = Health("failed", {"why": "all cameras failed"})
        code, body = _get(base + "/health")
        assert code == 503 and json.loads(body)["status"] == "failed"
        assert _get(base + "/nope")[0] == 404
        with pytest.raises(ConfigError, match="cannot serve metrics"):
            MetricsServer(registry, lambda: state["health"], port=server.port)
    finally:
        server.stop()


def test_reid_worker_exports_counts_batches_dead_letters_and_latency():
    from workers.reid import ReidWorker

    bus = MemoryBus()
    cfg = from_dict(XreidCfg, {"reid": {"max_batch": 4, "max_wait_ms": 0, "idle_block_ms": 20}})
    shutdown = Shutdown()
    worker = ReidWorker(bus, CodeEncoder(), cfg, "reid-t", shutdown)
    for i in range(6):
        bus.publish(STREAM_CLIPS, make_clip("cam1", f"u{i}", identity=i).to_bytes())
    bus.publish(STREAM_CLIPS, b"garbage")
    t = threading.Thread(target=worker.run)
    t.start()
    try:
        wait_until(lambda: worker.stage.counters.acked == 6, what="six clips embedded")
    finally:
        shutdown.request()
        t.join(timeout=10)
    assert not t.is_alive()
    fams = _families(_metrics_text(worker.registry))
    value = {f: {tuple(sorted(s.labels.items())): s.value for s in fams[f].samples} for f in fams}
    assert value["xreid_clips_consumed"][()] == 7
    assert value["xreid_embeddings_produced"][()] == 6
    assert value["xreid_clips_dead_lettered"][(("reason", "contract"),)] == 1
    batches = {s.labels["le"]: s.value for s in fams["xreid_reid_batch_size"].samples if s.name.endswith("_bucket")}
    assert batches["+Inf"] >= 2 and batches["4"] == batches["+Inf"], "batches of at most max_batch=4"
    lat = [s for s in fams["xreid_reid_batch_latency_seconds"].samples if s.name.endswith("_count")]
    assert lat[0].value == batches["+Inf"], "one latency observation per batch"
    assert value["xreid_bus_events"][(("event", "dead_lettered"), ("worker", "reid"))] == 1
    assert worker.health().status == "ok"


def _metrics_text(registry: CollectorRegistry) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry).decode()


def test_redis_url_comes_from_flag_then_environment_then_config():
    env = {"XREID_REDIS_URL": "redis://env:6379/0"}
    assert resolve_redis_url("redis://flag/0", env, "redis://cfg/0") == "redis://flag/0"
    assert resolve_redis_url(None, env, "redis://cfg/0") == "redis://env:6379/0"
    assert resolve_redis_url(None, {}, "rediss://cfg/0") == "rediss://cfg/0"
    with pytest.raises(ConfigError, match="no Redis URL"):
        resolve_redis_url(None, {}, None)
    with pytest.raises(ConfigError, match="must start with"):
        resolve_redis_url("http://x", {}, None)
