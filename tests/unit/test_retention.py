"""Retention with an injected clock: crops, then vectors, then tracks expire, per camera, on the bus too.

The sweeps run on both backends (a SQLite file; a PostgreSQL database with the crops and reports in the
replay's folder and the audit log in the database's ``xreid_audit`` schema).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from models.errors import ConfigError
from pipeline.bus import STREAM_CLIPS, STREAM_EMBEDDINGS, MemoryBus, dead_stream
from pipeline.bus.base import Message
from pipeline.config.loader import load_config
from pipeline.config.settings import MatcherCfg, RetentionCfg, XreidCfg
from pipeline.ingest.daynight import ModalitySwitch
from pipeline.matcher import records
from pipeline.matcher.forget import Eraser
from pipeline.matcher.matcher import Matcher
from pipeline.matcher.retention import RetentionSweep
from pipeline.store import event_log, watchlists
from pipeline.store.audit import AuditEntry, list_entries, open_audit, record
from pipeline.store.base import Store, is_postgres
from pipeline.store.crops import CropKeeper
from pipeline.store.modality_events import list_switches, record_switch
from pipeline.store.summaries import identity_detail
from tests.support.api_helpers import TEST_MODEL
from tests.support.privacy_helpers import files_holding, make_site, references

DAY = 86400.0


@pytest.fixture
def site(tmp_path, store_url):
    return make_site(tmp_path / "out", store_url if is_postgres(store_url) else None)


def sweep_for(site, store: Store, cfg: RetentionCfg, bus=None, now=None) -> RetentionSweep:
    eraser = Eraser(store, CropKeeper(site.crops), bus, "test", reports_dir=site.folder)
    return RetentionSweep(eraser, cfg, clock=lambda: now)


def thumbnails(store: Store) -> dict[str, bool]:
    return {u: t for u, t in store.execute("SELECT track_uid, thumbnail IS NOT NULL FROM tracks")}


def test_crops_then_vectors_then_tracks_expire_as_the_clock_moves(site):
    cfg = RetentionCfg(crops="30d", embeddings="60d", tracks="90d", events="90d", audit="365d")
    now = time.time()
    uids = site.world.track_uids
    with Store(site.store) as store:
        assert not any(sweep_for(site, store, cfg).run(now).as_dict().values()), "nothing is old yet"
        assert all(thumbnails(store)[u] for u in uids)

        result = sweep_for(site, store, cfg).run(now + 31 * DAY)
        assert result.crops == len(uids) and result.tracks == 0 and result.embeddings == 0
        assert not any(thumbnails(store)[u] for u in uids), "thumbnails went with the crops"
        assert files_holding(site.folder, list(site.crop_of.values())) == []
        assert not list((site.folder / "identities").glob("*.png")), "contact sheets show crops"
        assert identity_detail(store, site.world.identity_of[uids[0]])["n_tracks"] == 3, "the timeline stays"

        result = sweep_for(site, store, cfg).run(now + 61 * DAY)
        assert result.embeddings == len(uids) + len(site.world.search_uids) and result.tracks == 0
        matcher = records.load_into(store, Matcher(MatcherCfg()))
        assert matcher.model_ids == [] and matcher.search(TEST_MODEL, [1.0] + [0.0] * 15) == []
        assert identity_detail(store, site.world.identity_of[uids[0]])["n_tracks"] == 3

        result = sweep_for(site, store, cfg).run(now + 91 * DAY)
        assert result.tracks == len(uids) + 1 and result.identities == 5   # the orphan camera-side track too
        assert store.execute("SELECT count(*) FROM tracks")[0][0] == 0
        assert store.execute("SELECT count(*) FROM identities")[0][0] == 0
        assert store.execute("SELECT count(*) FROM links")[0][0] == 0
        assert store.execute("SELECT count(*) FROM merges")[0][0] == 0
    assert references(site.store, uids, list(range(1, 20)), list(range(1, 20))) == []
    doc = json.loads((site.folder / "identities.json").read_text())
    assert doc["identities"] == [] and (site.folder / "tracks.jsonl").read_text() == ""


def test_a_camera_keeps_its_own_horizon(site):
    cfg = RetentionCfg(crops="30d", cameras={"cam-a": {"crops": "1h"}, "cam-ir": {"tracks": "2h"}})
    now = time.time()
    with Store(site.store) as store:
        result = sweep_for(site, store, cfg).run(now + 3 * 3600)
        kept = thumbnails(store)
        cams = dict(store.execute("SELECT track_uid, camera_id FROM tracks"))
    assert result.tracks == 3, "cam-ir's tracks expire after 2 hours"
    assert {cams[u] for u, has in kept.items() if not has} == {"cam-a"}
    assert all(has for u, has in kept.items() if cams[u] != "cam-a" and not u.endswith("orphan"))
    assert "cam-ir" not in cams.values()


def test_events_audit_log_and_bus_entries_expire(site):
    cfg = RetentionCfg(events="90d", audit="365d", dead_letters="7d", crops="30d", embeddings="forever",
                       tracks="forever", watchlists="forever")
    now = time.time()
    bus = MemoryBus()
    bus.ensure_group(STREAM_CLIPS, "reid")
    for i in range(3):
        bus.publish(STREAM_CLIPS, b"clip%d" % i)
        bus.publish(STREAM_EMBEDDINGS, b"emb%d" % i)
    msg = bus.read(STREAM_CLIPS, "reid", "c1", 1)[0]   # one pending: past the horizon it goes all the same
    bus.dead_letter(STREAM_CLIPS, "reid", Message(msg.id, msg.data), "test")
    with Store(site.store) as store:
        record_switch(store, ModalitySwitch("cam-a", now - 10, None, "rgb", 0.3, 0.5))
        with open_audit(site.store) as log:
            record(log, AuditEntry(now - 5, "abc123", "GET", "/tracks", {"camera": "cam-a"}, 200, 3, "127.0.0.1"))

        early = sweep_for(site, store, cfg, bus).run(now + 8 * DAY)
        assert early.dead_letters == 1 and bus.dead_letters(STREAM_CLIPS) == []
        assert early.stream_entries == 0 and bus.length(STREAM_CLIPS) == 3, "clips keep 30 days"
        mid = sweep_for(site, store, cfg, bus).run(now + 31 * DAY)
        assert mid.stream_entries == 3 and bus.length(STREAM_CLIPS) == 0 and bus.pending(STREAM_CLIPS, "reid") == 0
        assert bus.length(STREAM_EMBEDDINGS) == 3, "embeddings are kept forever here"
        assert list_switches(store) and mid.events == 0
        n_logged = event_log.last_seq(store)
        assert n_logged > 10 and mid.events == 0
        late = sweep_for(site, store, cfg, bus).run(now + 91 * DAY)
        assert late.events == 1 + n_logged and list_switches(store) == [] and event_log.newest(store, 100) == []
        assert store.execute("SELECT count(*) FROM event_log_refs")[0][0] == 0
        assert late.watchlists == 0 and len(watchlists.list_entries(store)) == 3, "watchlists are kept forever here"
        with open_audit(site.store) as log:
            assert list_entries(log)[1] == 1
        assert sweep_for(site, store, cfg, bus).run(now + 366 * DAY).audit == 1
        with open_audit(site.store) as log:
            assert list_entries(log) == ([], 0)
    assert bus.length(dead_stream(STREAM_CLIPS)) == 0


def test_the_event_log_and_watchlists_expire_with_their_own_horizons(site):
    # the log has no camera column: the shortest events horizon (cam-a's day) applies to it
    cfg = RetentionCfg(events="90d", watchlists="30d", tracks="forever", embeddings="forever", crops="forever",
                       cameras={"cam-a": {"events": "1d"}})
    now = time.time()
    with Store(site.store) as store:
        record_switch(store, ModalitySwitch("cam-b", now - 10, None, "rgb", 0.3, 0.5))
        hits, n_logged = store.execute("SELECT count(*) FROM watchlist_hits")[0][0], event_log.last_seq(store)
        assert hits >= 3 and n_logged > 10
        # an entry made later, holding one hit recorded long before: each expires by its own age
        late_entry = watchlists.add_entry(store, "late", TEST_MODEL, 0.5, np.ones((1, 16)), created_at=now + 25 * DAY)
        watchlists.add_hits(store, [watchlists.HitRow(late_entry, site.world.track_uids[0], 0.9, now)], stored_at=now)

        first = sweep_for(site, store, cfg).run(now + 2 * DAY)
        assert first.events == n_logged and event_log.newest(store, 100) == []
        assert list_switches(store), "cam-b's switch keeps 90 days"
        assert first.watchlists == 0 and len(watchlists.list_entries(store)) == 4

        second = sweep_for(site, store, cfg).run(now + 31 * DAY)
        assert second.watchlists == 3 + 1, "three entries (their hits with them), and the late entry's old hit"
        (entry,) = watchlists.list_entries(store)
        assert entry.id == late_entry and entry.n_hits == 0 and entry.n_refs == 1
        assert store.execute("SELECT count(*) FROM watchlist_refs")[0][0] == 1
        assert store.execute("SELECT count(*) FROM tracks")[0][0] == len(site.world.track_uids) + 1, "tracks stay"


def test_a_retention_value_that_is_not_a_duration_is_one_config_error_naming_the_key(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("retention:\n  cameras:\n    cam1: {crops: soon}\n")
    with pytest.raises(ConfigError) as e:
        load_config(XreidCfg, path, env={})
    assert str(e.value).splitlines() == [
        f"{path}: retention.cameras.cam1.crops must be a duration such as 30d, 12h, 15m or 90s (or forever), "
        "got 'soon'"]
    with pytest.raises(ConfigError, match=r"XREID_RETENTION__TRACKS|retention\.tracks must be a duration"):
        load_config(XreidCfg, None, env={"XREID_RETENTION__TRACKS": "12 parsecs"})
    with pytest.raises(ConfigError, match="RetentionCfg: cameras keys must be camera ids"):
        RetentionCfg(cameras={"bad id!": {}})
    cfg = load_config(XreidCfg, None, env={"XREID_RETENTION__CROPS": "12h", "XREID_RETENTION__AUDIT": "forever"})
    assert cfg.retention.crops == 12 * 3600 and cfg.retention.audit is None and cfg.retention.tracks == 90 * DAY


def test_the_store_records_when_it_wrote_a_track(site):
    with Store(site.store, readonly=True) as store:
        stamps = [s for (s,) in store.execute("SELECT stored_at FROM tracks")]
    assert stamps and all(abs(s - time.time()) < 120 for s in stamps)
