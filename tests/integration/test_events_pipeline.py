"""Matcher-made events end to end: a replay of real footage announcing to a real broker and a signed webhook,
a watchlist hit from a replayed identity, and a broker restart in the middle of a matcher run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline.api import create_app
from pipeline.bus import STREAM_EMBEDDINGS, MemoryBus
from pipeline.camera.status import STREAM_CAMERA_STATUS, TrackEnded
from pipeline.config.settings import ApiCfg, MatcherCfg, PairThresholds
from pipeline.events import EventHub, MqttSink
from pipeline.events.sink import Backoff
from pipeline.matcher.announce import Announcer
from pipeline.matcher.matcher import Matcher
from pipeline.matcher.stage import MatcherStage
from pipeline.matcher.status_sink import CameraStatusSink
from pipeline.store import event_log
from pipeline.store.base import Store
from pipeline.store.tracks import list_tracks
from tests.support.events import MosquittoBroker, MqttCollector, WebhookReceiver
from tests.support.matcher_helpers import emb, person
from tests.support.services import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
XREID = [sys.executable, "-m", "workers.cli"]
SECRET = "webhook-secret-0123456789"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = MosquittoBroker(port=free_port(), workdir=tmp_path_factory.mktemp("mosquitto"))
    b.start()
    yield b
    b.stop()


def _replay(out: Path, vtest: Path, broker: MosquittoBroker, hook: WebhookReceiver, start: str) -> dict:
    env = {**os.environ, "XREID_EVENTS__MQTT_URL": broker.url, "XREID_EVENTS__SITE": "pets",
           "XREID_EVENTS__WEBHOOK_URLS": hook.url(), "XREID_EVENTS__WEBHOOK_SECRET": SECRET}
    proc = subprocess.run([*XREID, "replay", "--camera", f"cam1:rgb:{vtest}", "--max-frames", "60", "--start-time",
                           start, "--no-progress", "--out", str(out)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, vtest_path, broker):
    out = tmp_path_factory.mktemp("replay")
    collector = MqttCollector(broker.port, "xreid/#", client_id="first-run")
    hook = WebhookReceiver(SECRET)
    summary = _replay(out, vtest_path, broker, hook, "2026-11-24T08:00:00Z")
    with Store(out / "xreid.sqlite", readonly=True) as store:
        logged = {r.event_id for r in event_log.after(store, 0, 100_000)}
    wait_until(lambda: logged <= set(collector.event_ids()), timeout=15, what="every logged event on MQTT")
    wait_until(lambda: len(hook.snapshot()) >= len(logged), timeout=15, what="every logged event POSTed")
    yield out, summary, collector, hook, logged
    collector.close()
    hook.close()


def test_replay_announces_the_matchers_decisions_to_mqtt_and_signed_webhooks(first_run, broker):
    out, summary, collector, hook, logged = first_run
    msgs = collector.snapshot()
    events = [m.json for m in msgs]
    kinds = {e["kind"] for e in events}
    assert {"track.started", "identity.created", "track.ended", "camera.status"} <= kinds
    assert all(e["site"] == "pets" for e in events)
    assert all(m.topic.startswith("xreid/pets/") for m in msgs)
    with Store(out / "xreid.sqlite", readonly=True) as store:
        tracks = {t.track_uid: t for t in list_tracks(store) if t.track_no is not None}
    started = {e["payload"]["track_uid"] for e in events if e["kind"] == "track.started"}
    assert started == set(tracks), "one track.started per track the matcher stored"
    for e in (e for e in events if e["kind"] == "track.ended"):
        assert e["payload"]["identity"] == tracks[e["payload"]["track_uid"]].identity
    states = [e["payload"]["state"] for e in events if e["kind"] == "camera.status"]
    assert states == ["connected", "ended"]
    assert summary["events"]["announced"]["track.started"] == len(tracks)
    assert summary["events"]["sinks"]["mqtt"]["dropped"] == 0
    # webhooks: the same events, every body signed with the shared secret
    hits = hook.snapshot()
    assert all(h.signature_ok for h in hits)
    assert {json.loads(h.body)["event_id"] for h in hits} == logged == set(collector.event_ids())
    # camera status is retained: a dashboard subscribing later gets the camera's last state at once
    late = MqttCollector(broker.port, "xreid/pets/camera/status/#", client_id="late", clean=True)
    wait_until(lambda: late.snapshot(), what="retained camera status")
    assert late.snapshot()[0].retain and late.snapshot()[0].json["payload"]["state"] == "ended"
    late.close()


def test_watchlist_made_from_a_replayed_identity_hits_when_the_person_shows_up_again(first_run, broker,
                                                                                     vtest_path):
    out, _, _, _, _ = first_run
    with Store(out / "xreid.sqlite", readonly=True) as store:
        best = max((t for t in list_tracks(store) if t.identity is not None), key=lambda t: t.n_clips)
    add = subprocess.run([*XREID, "watch", "add", "--identity", str(best.identity), "--name", "person of interest",
                          "--store", str(out / "xreid.sqlite"), "--json"], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert add.returncode == 0, add.stderr
    entry = json.loads(add.stdout)
    collector = MqttCollector(broker.port, "xreid/pets/watchlist/hit", client_id="watch", clean=True)
    hook = WebhookReceiver(SECRET)
    try:
        _replay(out, vtest_path, broker, hook, "2026-11-24T09:00:00Z")   # the same people, an hour later
        wait_until(lambda: collector.snapshot(), timeout=15, what="a watchlist hit on MQTT")
        hits = [m.json["payload"] for m in collector.snapshot()]
        assert {h["watchlist_id"] for h in hits} == {entry["id"]}
        hit = max(hits, key=lambda h: h["score"])
        assert hit["score"] >= hit["threshold"] == entry["threshold"] and hit["model_id"] == entry["model_id"]
        assert hit["track_uid"] != best.track_uid, "the hit is a track of the second run"
        assert len(hit["scores"]) == entry["n_refs"]
        listed = subprocess.run([*XREID, "watch", "list", "--store", str(out / "xreid.sqlite"), "--json"],
                                cwd=REPO, capture_output=True, text=True, timeout=60)
        assert json.loads(listed.stdout)[0]["n_hits"] == len(hits)
        # the evidence the event points at is served by the API
        with TestClient(create_app(ApiCfg(), out / "xreid.sqlite")) as client:
            crop = client.get(hit["crops_path"])
        assert crop.status_code == 200 and crop.content[:2] == b"\xff\xd8"
    finally:
        collector.close()
        hook.close()


def test_broker_restart_during_a_matcher_run_loses_no_event(tmp_path):
    broker = MosquittoBroker(port=free_port(), workdir=tmp_path)
    broker.start()
    collector = MqttCollector(broker.port, "xreid/#", client_id="alerts")   # persistent session, QoS 1
    sink = MqttSink(broker.url, backoff=Backoff(0.05, 0.3))
    bus = MemoryBus()
    cfg = MatcherCfg(thresholds=PairThresholds(0.7, 0.7, 0.5), min_clips=1, min_gap=0.0)
    with Store(tmp_path / "x.sqlite") as store:
        announcer = Announcer(EventHub([sink], site="lobby"), site="lobby")
        stage = MatcherStage(bus, store, Matcher(cfg), announcer=announcer)
        reports = CameraStatusSink(bus, store, "m", announcer=announcer, matcher=lambda: stage.matcher)

        def people(lo: int, hi: int) -> None:
            for i in range(lo, hi):   # each a new person on its own track, which then ends
                bus.publish(STREAM_EMBEDDINGS, emb("c1", f"t{i}", person(i % 16), i, i + 1).to_bytes())
                bus.publish(STREAM_CAMERA_STATUS, TrackEnded("c1", f"t{i}", "rgb", i, i + 1.0, 20, 1).to_bytes())
            stage.drain()
            reports.drain()

        try:
            people(0, 10)
            wait_until(lambda: sink.counters.published >= 30, timeout=15, what="first events delivered")
            broker.kill()   # SIGKILL mid-run: the matcher keeps matching, the events wait in the outbox
            people(10, 20)
            wait_until(lambda: not sink.counters.connected, what="the sink to notice")
            assert len(sink.outbox) > 0 and stage.counters.published == 20
            broker.start()
            people(20, 30)
            with Store(tmp_path / "x.sqlite", readonly=True) as ro:
                logged = {r.event_id for r in event_log.after(ro, 0, 10_000)}
            assert len(logged) == 90   # 30 x (track.started, identity.created, track.ended)
            wait_until(lambda: logged <= set(collector.event_ids()), timeout=20, what="every event after the restart")
            assert sink.counters.dropped == 0
        finally:
            collector.close()
            sink.close(timeout_s=0.5)
            broker.stop()


@pytest.mark.parametrize("env, key", [
    ({"XREID_EVENTS__MQTT_URL": "http://bob:hunter2-secret@broker:1883"}, "events.mqtt_url"),
    ({"XREID_EVENTS__TOPIC_PREFIX": "xreid/+/x"}, "events.topic_prefix"),
])
def test_a_bad_events_setting_stops_a_command_with_one_line(tmp_path, vtest_path, env, key):
    proc = subprocess.run([*XREID, "replay", "--camera", f"cam1:rgb:{vtest_path}", "--max-frames", "1", "--out",
                           str(tmp_path)], cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert key in lines[0] and "hunter2" not in lines[0]


def test_watch_commands_refuse_bad_input_with_one_line(first_run, tmp_path):
    out = first_run[0]
    store = str(out / "xreid.sqlite")
    cases = [
        (["watch", "rm", "999", "--store", store], "no watchlist entry 999"),
        (["watch", "add", "--identity", "999999", "--name", "x", "--store", store], "no identity 999999"),
        (["watch", "add", "--image", str(tmp_path / "missing.jpg"), "--name", "x", "--store", store],
         "file not found"),
        (["watch", "add", "--identity", "1", "--name", "x", "--threshold", "1.5", "--store", store],
         "--threshold must be a cosine"),
        (["watch", "list", "--store", str(tmp_path / "none.sqlite")], "no store at"),
    ]
    for argv, reason in cases:
        proc = subprocess.run([*XREID, *argv], cwd=REPO, capture_output=True, text=True, timeout=120)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and reason in lines[0], (argv, proc.stderr)
