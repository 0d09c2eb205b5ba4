from __future__ import annotations

import numpy as np
import pytest

from models.errors import StoreError
from pipeline.bus import GROUP_MATCHER, STREAM_EMBEDDINGS, MemoryBus
from pipeline.config.settings import MatcherCfg, PairThresholds
from pipeline.matcher.matcher import Matcher
from pipeline.matcher.stage import MatcherStage
from pipeline.store.base import Store, is_postgres
from pipeline.store.identities import resolve
from pipeline.store.schema import MIGRATIONS
from pipeline.store.summaries import identity_detail
from pipeline.store.tracks import TrackFilter, TrackRow, get_track, list_tracks, upsert_track
from tests.support.matcher_helpers import emb, person, view

# one clip per track is enough here: these tests are about the store and its queries, not the precision rules
CFG = MatcherCfg(thresholds=PairThresholds(rgb_rgb=0.7, ir_ir=0.7, rgb_ir=0.5), merge_margin=0.1, min_clips=1, min_gap=0.0)


def _history():
    """Embeddings of 4 people over 3 cameras, with a bridge merge and a co-occurrence block."""
    return [
        emb("c1", "a", view(0, 0.85, 1), 0, 10),
        emb("c2", "b", 0.85 * person(0) - 0.527 * person(1), 0, 10, modality="ir"),
        emb("c1", "p4", person(4), 0, 10),
        emb("c1", "p4twin", view(4, 0.9, 8), 2, 8),
        emb("c1", "p2", person(2), 0, 10),
        emb("c2", "p2ir", view(2, 0.6, 7), 20, 30, modality="ir"),
        emb("c3", "bridge", person(0), 40, 50),
        emb("c1", "a", view(0, 0.9, 1), 10, 20, segment=1),
        emb("c3", "p3", person(3), 0, 5, model="other@1"),
    ]


def _run(bus, store, embs) -> MatcherStage:
    stage = MatcherStage(bus, store, Matcher(CFG))
    for e in embs:
        bus.publish(STREAM_EMBEDDINGS, e.to_bytes())
    while stage.step(block_ms=0).consumed:
        pass
    return stage


def test_v1_store_migrates_to_v2_keeping_tracks(store_url):
    path = store_url
    with Store(path, migrations=MIGRATIONS[:1]) as v1:
        upsert_track(v1, TrackRow("cam1-1", "cam1", "rgb", 1.0, 2.0, 10, 1))
        assert v1.schema_version == 1
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS) >= 2
        assert get_track(store, "cam1-1").n_frames == 10
        assert {"tracks", "identities", "links", "merges"} <= set(store.table_names())
        [info] = list_tracks(store)
        assert (info.track_uid, info.identity, info.track_no) == ("cam1-1", None, None)


def test_stage_stores_every_decision_and_restart_rebuilds_the_same_answers(store_url):
    path = store_url
    embs = _history()
    with Store(path) as store:
        stage = _run(MemoryBus(), store, embs)
        m1 = stage.matcher
        kinds = [r[0] for r in store.execute("SELECT kind FROM links ORDER BY id")]
        assert kinds.count("blocked") == 1 and kinds.count("update") == 1
        assert store.execute("SELECT count(*) FROM merges")[0][0] == 1
        answers = {uid: m1.identity_of(m1._spaces[e.model_id].by_uid[(e.camera_id, uid)])  # noqa: SLF001
                   for e in embs for uid in [e.track_uid]}
        queries = [person(i) for i in range(4)]
        before = [m1.search("test@0", q, k=3) for q in queries]
    with Store(path) as store:  # restart
        m2 = MatcherStage(MemoryBus(), store, Matcher(CFG)).matcher
        for e in embs:
            key = m2._spaces[e.model_id].by_uid[(e.camera_id, e.track_uid)]  # noqa: SLF001
            assert m2.identity_of(key) == answers[e.track_uid]
        after = [m2.search("test@0", q, k=3) for q in queries]
        for b, a in zip(before, after, strict=True):
            assert [i for i, _, _ in b] == [i for i, _, _ in a]
            np.testing.assert_allclose([s for _, s, _ in b], [s for _, s, _ in a], atol=1e-6)
        # and it continues exactly like an uninterrupted matcher would
        more = [emb("c2", "late", view(2, 0.8, 9), 60, 70), emb("c1", "p2", person(2), 10, 20, segment=1)]
        outs_restarted = [m2.observe(e) for e in more]
    ref = Matcher(CFG)
    for e in embs:
        ref.observe(e)
    outs_ref = [ref.observe(e) for e in more]
    assert [(o.new_identity, [(ln.kind, ln.identity, ln.matched_track) for ln in o.links]) for o in outs_restarted] == \
           [(o.new_identity, [(ln.kind, ln.identity, ln.matched_track) for ln in o.links]) for o in outs_ref]


def test_merge_history_is_stored_and_both_old_ids_resolve(store_url):
    with Store(store_url) as store:
        _run(MemoryBus(), store, _history())
        [(winner, loser)] = store.execute("SELECT winner, loser FROM merges")
        assert resolve(store, winner) == resolve(store, loser) == winner
        detail = identity_detail(store, loser)
        assert detail["identity"] == winner and detail["merged_ids"] == [loser]
        assert set(detail["cameras"]) == {"c1", "c2", "c3"}
        assert detail["merges"][0]["evidence_track"] is not None
        via_old = {t.track_uid for t in list_tracks(store, TrackFilter(identity_id=loser))}
        via_new = {t.track_uid for t in list_tracks(store, TrackFilter(identity_id=winner))}
        assert via_old == via_new == {"a", "b", "bridge"}


def test_redelivered_embeddings_are_acked_without_double_counting(store_url):
    with Store(store_url) as store:
        bus = MemoryBus()
        embs = _history()
        stage = _run(bus, store, embs)
        n_links = store.execute("SELECT count(*) FROM links")[0][0]
        for e in embs:  # the re-ID worker crashed after publishing, before acking: everything again
            bus.publish(STREAM_EMBEDDINGS, e.to_bytes())
        while stage.step(block_ms=0).consumed:
            pass
        assert store.execute("SELECT count(*) FROM links")[0][0] == n_links
        assert store.execute("SELECT n_embedded FROM tracks WHERE track_uid = 'a'")[0][0] == 2
        assert stage.counters.duplicates == len(embs)
        assert bus.pending(STREAM_EMBEDDINGS, GROUP_MATCHER) == 0


def _refuse_links(store: Store) -> None:
    """Every insert into links fails, as a full disk would make it."""
    if store.dialect == "sqlite":
        store.execute("CREATE TRIGGER no_links BEFORE INSERT ON links BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
        return
    store.execute("CREATE FUNCTION no_links() RETURNS trigger LANGUAGE plpgsql AS "
                  "$$ BEGIN RAISE EXCEPTION 'disk says no'; END $$")
    store.execute("CREATE TRIGGER no_links BEFORE INSERT ON links FOR EACH ROW EXECUTE FUNCTION no_links()")


def test_failed_store_write_leaves_the_batch_pending(store_url):
    path = store_url
    with Store(path) as store:
        bus = MemoryBus()
        stage = MatcherStage(bus, store, Matcher(CFG))
        bus.publish(STREAM_EMBEDDINGS, emb("c1", "a", person(0), 0, 10).to_bytes())
        _refuse_links(store)
        with pytest.raises(StoreError, match="disk says no"):
            stage.step(block_ms=0)
        assert bus.pending(STREAM_EMBEDDINGS, GROUP_MATCHER) == 1
        assert stage.matcher.track(1) is None, "memory never runs ahead of the store"
        store.execute("DROP TRIGGER no_links" + (" ON links" if is_postgres(path) else ""))
        stage.claim_idle_ms = 0
        assert stage.step(block_ms=0).stored == 1
        assert bus.pending(STREAM_EMBEDDINGS, GROUP_MATCHER) == 0
        assert [t.track_uid for t in list_tracks(store)] == ["a"]


def test_malformed_embeddings_are_dead_lettered(store_url):
    with Store(store_url) as store:
        bus = MemoryBus()
        stage = MatcherStage(bus, store, Matcher(CFG))
        bus.publish(STREAM_EMBEDDINGS, b"junk")
        bus.publish(STREAM_EMBEDDINGS, emb("c1", "a", person(0), 0, 10, model="A@1").to_bytes())
        bus.publish(STREAM_EMBEDDINGS, emb("c1", "a", person(0), 10, 20, segment=1, model="B@1").to_bytes())
        r = stage.step(block_ms=0)
        assert (r.consumed, r.stored, r.dead_lettered) == (3, 1, 2)
        reasons = [d.reason for d in bus.dead_letters(STREAM_EMBEDDINGS)]
        assert reasons[0].startswith("contract:") and "embedded by model A@1" in reasons[1]


def test_matcher_stage_over_redis_streams(tmp_path, redis_server):
    from pipeline.bus import create_bus

    bus = create_bus(redis_server.url)
    try:
        with Store(tmp_path / "x.sqlite") as store:
            stage = _run(bus, store, _history())
            assert bus.pending(STREAM_EMBEDDINGS, GROUP_MATCHER) == 0
            assert store.execute("SELECT count(*) FROM merges")[0][0] == 1
            assert stage.counters.snapshot()["acked"] == len(_history())
    finally:
        bus.close()
