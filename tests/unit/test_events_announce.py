"""The matcher announces its durable decisions: event log rows in the commit, watchlist hits, track ends."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.errors import StoreError
from pipeline.bus import STREAM_EMBEDDINGS, MemoryBus
from pipeline.camera.status import STREAM_CAMERA_STATUS, CameraStatusEvent, TrackEnded, decode_report
from pipeline.config.settings import MatcherCfg, PairThresholds
from pipeline.events import EventHub, SseBroadcaster
from pipeline.matcher.announce import Announcer
from pipeline.matcher.matcher import Matcher
from pipeline.matcher.stage import MatcherStage
from pipeline.matcher.status_sink import CameraStatusSink
from pipeline.matcher.watchlist import Watchlist
from pipeline.store import erasure, event_log, watchlists
from pipeline.store.base import Store
from pipeline.store.identities import MergeRow, add_identity, add_merge
from pipeline.store.schema import MIGRATIONS, V_EVENTS
from tests.support.matcher_helpers import emb, person, view

CFG = MatcherCfg(thresholds=PairThresholds(rgb_rgb=0.7, ir_ir=0.7, rgb_ir=0.5), merge_margin=0.1, min_clips=1,
                 min_gap=0.0)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _logged(store: Store) -> list[dict]:
    return [json.loads(r.body) for r in event_log.after(store, 0, 10_000)]


def _kinds(store: Store) -> list[str]:
    return [e["kind"] for e in _logged(store)]


def _feed(stage: MatcherStage, bus: MemoryBus, *embs) -> None:
    for e in embs:
        bus.publish(STREAM_EMBEDDINGS, e.to_bytes())
    while stage.step(block_ms=0).consumed:
        pass


def _world(location):  # noqa: ANN001
    store = Store(location)
    bus = MemoryBus()
    sse = SseBroadcaster()
    announcer = Announcer(EventHub([sse], site="lobby"), site="lobby", watchlist=Watchlist(store, refresh_s=0.0))
    stage = MatcherStage(bus, store, Matcher(CFG), announcer=announcer)
    yield store, bus, stage, sse
    store.close()


@pytest.fixture
def world(store_url):
    """A matcher stage with an announcer, once on a SQLite file and once on a PostgreSQL database."""
    yield from _world(store_url)


@pytest.fixture
def sqlite_world(tmp_path):
    yield from _world(tmp_path / "x.sqlite")


def test_store_v7_holds_the_event_log_and_watchlists(tmp_path):
    with Store(tmp_path / "x.sqlite") as store:
        assert store.schema_version == len(MIGRATIONS) == V_EVENTS == 7
        tables = {r[0] for r in store.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"event_log", "event_log_refs", "watchlists", "watchlist_refs", "watchlist_hits"} <= tables
        assert {"erasures", "forgotten_tracks", "writer_lease"} <= tables, "v6 is the privacy change's"


def test_decisions_are_logged_with_their_facts_and_announced_once(world):
    store, bus, stage, sse = world
    _feed(stage, bus, emb("c1", "a", person(0), 0, 10), emb("c2", "b", view(0, 0.9, 1), 20, 30))
    kinds = _kinds(store)
    assert kinds == ["track.started", "identity.created", "track.started", "identity.linked"]
    linked = _logged(store)[3]
    assert linked["site"] == "lobby"
    assert linked["payload"]["identity"] == 1 and linked["payload"]["matched_track_uid"] == "a"
    assert linked["payload"]["score"] >= linked["payload"]["threshold"] == 0.7
    assert sse.counters.submitted == 4 and stage.announcer.announced["identity.linked"] == 1
    # a redelivered clip is a duplicate: no new fact, no new event
    _feed(stage, bus, emb("c2", "b", view(0, 0.9, 1), 20, 30))
    assert len(_kinds(store)) == 4 and sse.counters.submitted == 4


def test_logged_events_name_their_tracks_and_identities_so_forget_finds_them(world):
    store, bus, stage, _ = world
    _feed(stage, bus, emb("c1", "a", person(0), 0, 10), emb("c2", "b", view(0, 0.9, 1), 20, 30),
          emb("c1", "c", person(1), 40, 50))
    refs = {(k, t, i) for k, t, i in store.execute(
        "SELECT l.kind, r.track_uid, r.identity_id FROM event_log_refs r JOIN event_log l ON l.seq = r.seq")}
    assert ("identity.linked", "a", None) in refs and ("identity.linked", "b", None) in refs   # matched and joining
    assert ("identity.linked", None, 1) in refs and ("identity.created", None, 2) in refs
    with store.transaction():
        assert event_log.delete_mentioning(store, ["a"], []) == 3   # a's start, identity 1's founding, b joining a
    assert _kinds(store) == ["track.started", "track.started", "identity.created"]
    with store.transaction():
        assert event_log.delete_mentioning(store, [], [2]) == 1
    assert {r[0] for r in store.execute("SELECT DISTINCT seq FROM event_log_refs")} == \
        {r.seq for r in event_log.after(store, 0)}, "references go with their events"


def test_the_end_of_a_track_erased_while_it_waited_is_not_announced(world):
    store, bus, stage, _ = world
    clock = Clock()
    sink = CameraStatusSink(bus, store, "m", announcer=stage.announcer, matcher=lambda: stage.matcher,
                            end_wait_s=30.0, clock=clock)
    bus.publish(STREAM_CAMERA_STATUS, TrackEnded("c1", "gone", "rgb", 0.0, 3.0, 40, 1).to_bytes())
    bus.publish(STREAM_CAMERA_STATUS, TrackEnded("c1", "kept", "rgb", 0.0, 3.0, 40, 1).to_bytes())
    assert sink.step() == 2 and sink.pending_ends == 2
    with store.transaction():
        erasure.remember_forgotten(store, [erasure.uid_hash("gone")], 1, 0.0)
    clock.t = 31.0
    sink.step()
    ended = [e["payload"]["track_uid"] for e in _logged(store) if e["kind"] == "track.ended"]
    assert ended == ["kept"] and sink.pending_ends == 0


def test_a_merge_is_announced_with_its_evidence_track(world):
    store, bus, stage, _ = world
    # two identities that a bridging track matches well enough to merge
    _feed(stage, bus, emb("c1", "a", view(0, 0.85, 1), 0, 10),
          emb("c2", "b", 0.85 * person(0) - 0.527 * person(1), 0, 10, modality="ir"),
          emb("c3", "bridge", person(0), 40, 50))
    merged = [e for e in _logged(store) if e["kind"] == "identity.merged"]
    assert len(merged) == 1 and merged[0]["payload"]["evidence_track_uid"] == "bridge"
    assert {merged[0]["payload"]["winner"], merged[0]["payload"]["loser"]} == {1, 2}


def test_a_failed_commit_announces_nothing(sqlite_world):
    store, bus, stage, sse = sqlite_world   # a SQLite trigger fails the batch's commit
    store.execute("CREATE TRIGGER no_links BEFORE INSERT ON links BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    bus.publish(STREAM_EMBEDDINGS, emb("c1", "a", person(0), 0, 10).to_bytes())
    with pytest.raises(StoreError):
        stage.step(block_ms=0)
    assert _kinds(store) == [] and sse.counters.submitted == 0


def test_watchlist_hit_once_per_track_with_a_score_per_reference(world):
    store, bus, stage, _ = world
    refs = np.stack([view(2, 0.95, 5), view(2, 0.8, 6)])
    wid = watchlists.add_entry(store, "visitor A", "test@0", 0.75, refs)
    watchlists.add_entry(store, "other model", "other@1", 0.1, refs)
    _feed(stage, bus, emb("c1", "p", person(2), 0, 10), emb("c1", "p", person(2), 10, 20, segment=1),
          emb("c1", "q", person(3), 0, 10))
    hits = [e for e in _logged(store) if e["kind"] == "watchlist.hit"]
    assert len(hits) == 1, "a second clip of the same track must not hit again; other people never"
    p = hits[0]["payload"]
    assert (p["watchlist_id"], p["name"], p["track_uid"], p["model_id"]) == (wid, "visitor A", "p", "test@0")
    assert p["scores"] == pytest.approx([0.95, 0.8], abs=1e-4) and p["score"] == pytest.approx(0.95, abs=1e-4)
    assert p["crops_path"] == "/tracks/p/thumbnail.jpg" and p["identity"] is not None
    assert watchlists.get_entry(store, wid).n_hits == 1
    # a restarted matcher knows the recorded hit: a later clip of the track announces nothing
    again = Announcer(None, watchlist=Watchlist(store))
    stage2 = MatcherStage(bus, store, Matcher(CFG), announcer=again)
    _feed(stage2, bus, emb("c1", "p", person(2), 20, 30, segment=2))
    assert again.announced["watchlist.hit"] == 0


def test_watchlist_entries_added_while_running_are_picked_up(world):
    store, bus, stage, _ = world
    _feed(stage, bus, emb("c1", "p", person(2), 0, 10))
    watchlists.add_entry(store, "late", "test@0", 0.9, person(2)[None, :])
    _feed(stage, bus, emb("c1", "p", person(2), 10, 20, segment=1))
    assert _kinds(store).count("watchlist.hit") == 1


def test_track_end_waits_for_the_tracks_last_clip(world):
    store, bus, stage, _ = world
    clock = Clock()
    sink = CameraStatusSink(bus, store, "m", announcer=stage.announcer, matcher=lambda: stage.matcher,
                            end_wait_s=30.0, clock=clock)
    _feed(stage, bus, emb("c1", "a", person(0), 0, 10))
    bus.publish(STREAM_CAMERA_STATUS, TrackEnded("c1", "a", "rgb", 0.0, 20.0, 150, 2).to_bytes())
    bus.publish(STREAM_CAMERA_STATUS, TrackEnded("c1", "z", "rgb", 0.0, 3.0, 40, 1).to_bytes())
    bus.publish(STREAM_CAMERA_STATUS, CameraStatusEvent.make("c1", "reconnecting", "read timeout",
                                                             "rtsp://u:pw@10.0.0.7/s", "rgb", 5.0).to_bytes())
    assert sink.step() == 3
    assert "track.ended" not in _kinds(store) and sink.pending_ends == 2   # clip 2 of 'a' is still on its way
    status = [e for e in _logged(store) if e["kind"] == "camera.status"][0]["payload"]
    assert status["state"] == "reconnecting" and "pw" not in status["source"]
    _feed(stage, bus, emb("c1", "a", person(0), 10, 20, segment=1))
    sink.step()
    [ended] = [e["payload"] for e in _logged(store) if e["kind"] == "track.ended"]
    assert (ended["track_uid"], ended["t_end"], ended["identity"]) == ("a", 20.0, 1)
    clock.t = 31.0   # 'z' never reached the matcher (its clip dead-lettered): announced without an identity
    sink.step()
    ends = {e["payload"]["track_uid"]: e["payload"] for e in _logged(store) if e["kind"] == "track.ended"}
    assert ends["z"]["identity"] is None and sink.pending_ends == 0


def test_track_ended_report_round_trips_and_bad_ones_are_contract_errors():
    report = TrackEnded("c1", "a", "ir", 1.0, 2.0, 30, 1)
    assert decode_report(report.to_bytes()) == report
    from models.errors import ContractError
    bad = json.loads(report.to_bytes())
    bad["t_end"] = 0.5
    with pytest.raises(ContractError, match="t_end"):
        decode_report(json.dumps(bad).encode())


def test_event_log_trims_to_the_newest_and_positions_stay_valid(store_url):
    with Store(store_url) as store:
        rows = [event_log.LogRow(f"e{i}", "track.started", float(i), "{}") for i in range(10)]
        event_log.append(store, rows)
        event_log.append(store, rows[:3])   # the same facts again: kept once
        assert event_log.last_seq(store) == 10
        assert event_log.trim(store, keep=4) == 6
        assert [r.event_id for r in event_log.newest(store, 10)] == ["e6", "e7", "e8", "e9"]
        assert [r.event_id for r in event_log.after(store, 8)] == ["e8", "e9"]
        event_log.append(store, [event_log.LogRow("new", "track.started", 11.0, "{}")])
        assert event_log.after(store, 10)[0].seq > 10   # numbers only grow: a reader's position stays valid


def test_retention_and_forget_delete_watchlist_entries(store_url):
    with Store(store_url) as store:
        for i in (1, 2, 3):
            add_identity(store, i, "test@0", 0.0)
        add_merge(store, MergeRow(1, 2, 1, 0.9, 5.0))   # 2 lives on as 1
        v = person(0)[None, :]
        old = watchlists.add_entry(store, "old", "test@0", 0.5, v, created_at=100.0)
        from_two = watchlists.add_entry(store, "from 2", "test@0", 0.5, v, identity_id=2, created_at=500.0)
        from_three = watchlists.add_entry(store, "from 3", "test@0", 0.5, v, identity_id=3, created_at=500.0)
        watchlists.add_hits(store, [watchlists.HitRow(old, "t1", 0.9, 1.0), watchlists.HitRow(from_three, "t1",
                                                                                                0.9, 1.0)])
        assert watchlists.delete_older_than(store, 200.0) == 1
        assert watchlists.delete_for_identities(store, [1]) == 1   # made from 2, merged into the forgotten 1
        assert [e.id for e in watchlists.list_entries(store)] == [from_three]
        assert watchlists.delete_hits_for_tracks(store, ["t1"]) == 1
        assert watchlists.get_entry(store, from_three).n_hits == 0
        assert not watchlists.remove_entry(store, from_two) and watchlists.remove_entry(store, from_three)
        assert store.execute("SELECT count(*) FROM watchlist_refs")[0][0] == 0
        # references taken from tracks: an erased track takes its reference; the last one takes the entry
        two_tracks = watchlists.add_entry(store, "two", "test@0", 0.5, np.stack([person(0), person(1)]),
                                          identity_id=3, track_nos=[7, 8])
        watchlists.add_hits(store, [watchlists.HitRow(two_tracks, "t2", 0.9, 1.0)], stored_at=1000.0)
        assert watchlists.delete_refs_for_tracks(store, [7]) == 0
        assert watchlists.get_entry(store, two_tracks).n_refs == 1
        assert watchlists.delete_hits_older_than(store, 999.0) == 0
        assert watchlists.delete_hits_older_than(store, 1001.0) == 1
        assert watchlists.delete_refs_for_tracks(store, [8, 9]) == 1 and watchlists.list_entries(store) == []


@pytest.mark.parametrize("name, threshold, refs, why", [
    ("", 0.5, np.ones((1, 4)), "name"),
    ("x", 1.5, np.ones((1, 4)), "threshold"),
    ("x", 0.5, np.ones((65, 4)), "reference"),
    ("x", 0.5, np.zeros((1, 4)), "non-zero"),
])
def test_bad_watchlist_entries_are_refused(tmp_path, name, threshold, refs, why):
    with Store(tmp_path / "x.sqlite") as store, pytest.raises(StoreError, match=why):
        watchlists.add_entry(store, name, "m@1", threshold, refs)
