"""``GET /events/stream`` and the watchlist routes of a real uvicorn server over a store the matcher writes."""

from __future__ import annotations

import json

import httpx
import pytest

from pipeline.api import create_app
from pipeline.bus import STREAM_EMBEDDINGS, MemoryBus
from pipeline.config.events import EventsCfg
from pipeline.config.settings import ApiCfg, MatcherCfg, PairThresholds
from pipeline.matcher.announce import Announcer
from pipeline.matcher.matcher import Matcher
from pipeline.matcher.stage import MatcherStage
from pipeline.store import event_log
from pipeline.store.base import Store
from tests.support.events import SseReader, ThreadedServer
from tests.support.matcher_helpers import emb, person
from tests.support.services import wait_until

TOKEN = "events-api-token-5d1"
ADMIN = "events-admin-token-9c2"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN}"}
EVENTS = EventsCfg(api_poll_s=0.05, sse_heartbeat_s=0.3, sse_replay=64)
CFG = MatcherCfg(thresholds=PairThresholds(0.7, 0.7, 0.5), min_clips=1, min_gap=0.0)


class Writer:
    """The matcher side: a stage with an announcer on its own store connection (another 'process')."""

    def __init__(self, path) -> None:  # noqa: ANN001
        self.store = Store(path)
        self.bus = MemoryBus()
        self.stage = MatcherStage(self.bus, self.store, Matcher(CFG), announcer=Announcer(site="api"))

    def people(self, *uids: str, base: int = 0) -> None:
        for i, uid in enumerate(uids):
            self.bus.publish(STREAM_EMBEDDINGS, emb("c1", uid, person(base + i), i, i + 1.0).to_bytes())
        self.stage.drain()

    def logged_ids(self) -> list[str]:
        return [r.event_id for r in event_log.after(self.store, 0, 10_000)]


@pytest.fixture
def writer(store_url):
    """The matcher's side, once on a SQLite file and once on a PostgreSQL database."""
    w = Writer(store_url)
    yield w
    w.store.close()


@pytest.fixture
def sqlite_writer(tmp_path):
    """SQLite only: there the API executes an erasure itself (PostgreSQL queues it for the matcher, 202)."""
    w = Writer(tmp_path / "xreid.sqlite")
    yield w
    w.store.close()


def _serve(path, admin: str | None = ADMIN) -> ThreadedServer:  # noqa: ANN001
    return ThreadedServer(create_app(ApiCfg(token=TOKEN, admin_token=admin), path, events_cfg=EVENTS))


def test_event_stream_needs_the_token_and_checks_last_event_id(writer):
    server = _serve(writer.store.location)
    try:
        assert httpx.get(f"{server.url}/events/stream", timeout=5).status_code == 401
        bad = httpx.get(f"{server.url}/events/stream", headers={**AUTH, "Last-Event-ID": "no spaces allowed"},
                        timeout=5)
        assert bad.status_code == 422
    finally:
        server.stop()


def test_committed_decisions_stream_live_and_resume_after_an_api_restart(writer):
    writer.people("before")   # logged before the API starts: not streamed as new, but kept for replay
    server = _serve(writer.store.location)
    reader = SseReader(f"{server.url}/events/stream", AUTH)
    try:
        assert reader.status == 200
        writer.people("a", "b", base=1)
        wait_until(lambda: len(reader.snapshot()) >= 4, what="four live events")
        frames = reader.snapshot()
        assert [f.event for f in frames] == ["track.started", "identity.created"] * 2
        assert [f.id for f in frames] == writer.logged_ids()[2:] == [f.json["event_id"] for f in frames]
        assert frames[1].json["payload"]["track_uid"] == "a" and frames[0].json["site"] == "api"
        wait_until(lambda: reader.comments > 0, what="a keepalive comment while idle")
    finally:
        reader.close()
        server.stop()
    # the browser reconnects to a restarted API with the last id it saw: nothing is lost meanwhile
    writer.people("c", base=3)
    server = _serve(writer.store.location)
    resumed = SseReader(f"{server.url}/events/stream", {**AUTH, "Last-Event-ID": frames[-1].id})
    try:
        wait_until(lambda: len(resumed.snapshot()) >= 2, what="the events announced while the API was down")
        assert [f.id for f in resumed.snapshot()] == writer.logged_ids()[6:8]
    finally:
        resumed.close()
        server.stop()


def test_watchlist_routes_need_the_admin_token(writer):
    writer.people("a", "b")
    server = _serve(writer.store.location)
    try:
        url = f"{server.url}/watchlists"
        assert httpx.get(url, timeout=5).status_code == 401
        assert httpx.get(url, headers=AUTH, timeout=5).status_code == 403, "the read token is not the admin token"
        assert httpx.get(url, headers=ADMIN_AUTH, timeout=5).json() == []
        made = httpx.post(url, headers=ADMIN_AUTH, data={"name": "visitor", "identity": "2", "threshold": "0.8"},
                          timeout=10)
        assert made.status_code == 201, made.text
        entry = made.json()
        assert (entry["identity"], entry["n_refs"], entry["threshold"], entry["model_id"]) == (2, 1, 0.8, "test@0")
        assert httpx.post(url, headers=ADMIN_AUTH, data={"name": "x", "identity": "99"}, timeout=10).status_code == 404
        assert httpx.post(url, headers=ADMIN_AUTH, data={"name": "x"}, timeout=10).status_code == 422
        no_encoder = httpx.post(url, headers=ADMIN_AUTH, data={"name": "x"}, files={"images": ("a.jpg", b"\xff\xd8")},
                                timeout=10)
        assert no_encoder.status_code == 409 and "encoder" in no_encoder.json()["detail"]
        assert [e["id"] for e in httpx.get(url, headers=ADMIN_AUTH, timeout=5).json()] == [entry["id"]]
        assert httpx.delete(f"{url}/{entry['id']}", headers=ADMIN_AUTH, timeout=5).status_code == 204
        assert httpx.delete(f"{url}/{entry['id']}", headers=ADMIN_AUTH, timeout=5).status_code == 404
    finally:
        server.stop()
    closed = _serve(writer.store.location, admin=None)
    try:
        refused = httpx.get(f"{closed.url}/watchlists", headers=AUTH, timeout=5)
        assert refused.status_code == 403 and "XREID_API__ADMIN_TOKEN" in refused.json()["detail"]
    finally:
        closed.stop()


def test_forgetting_a_track_takes_its_events_out_of_the_log_and_the_stream_replay(sqlite_writer):
    writer = sqlite_writer
    server = _serve(writer.store.location)
    reader = SseReader(f"{server.url}/events/stream", AUTH)
    try:
        writer.people("a", "b")
        wait_until(lambda: len(reader.snapshot()) >= 4, what="four live events")
        assert [f.json["payload"]["track_uid"] for f in reader.snapshot()] == ["a", "a", "b", "b"]
        erased = httpx.delete(f"{server.url}/tracks/b", headers=ADMIN_AUTH, timeout=30)   # the newest events
        assert erased.status_code == 200 and erased.json()["n_tracks"] == 1, erased.text
        assert [json.loads(r.body)["payload"]["track_uid"] for r in event_log.after(writer.store, 0)] == ["a", "a"]
        tail = server.app.state.event_tail
        wait_until(lambda: tail.erased == 2, what="the API's replay ring to drop the erased track's events")
        # a client resuming from an id the ring no longer holds gets the whole ring: a's events only
        resumed = SseReader(f"{server.url}/events/stream", {**AUTH, "Last-Event-ID": reader.snapshot()[2].id})
        try:
            wait_until(lambda: len(resumed.snapshot()) >= 2, what="the replay")
            assert [f.json["payload"]["track_uid"] for f in resumed.snapshot()] == ["a", "a"]
        finally:
            resumed.close()
        writer.people("c", base=5)   # the log's newest number fell with the erasure: new events still stream, once
        wait_until(lambda: len(reader.snapshot()) >= 6, what="events after the erasure")
        assert [f.json["payload"]["track_uid"] for f in reader.snapshot()[4:]] == ["c", "c"]
    finally:
        reader.close()
        server.stop()
