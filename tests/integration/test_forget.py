"""``xreid forget`` on a replay's output folder: nothing of the erased tracks is left, anywhere.

Real store (the matcher's own decisions, a merge), real crop files, real report files, the real CLI,
on both backends (a SQLite file in the folder; a PostgreSQL database with the crops and reports in the
folder, the replay's ``--out``). After each erasure the store's schema is introspected cell by cell,
every file in the folder is searched for the erased crops, and the matcher rebuilt from the store must
not find them again.
"""

from __future__ import annotations

import json

import pytest

from pipeline.config.settings import MatcherCfg
from pipeline.matcher import records
from pipeline.matcher.matcher import Matcher
from pipeline.store import event_log, watchlists
from pipeline.store.base import Store, describe, is_postgres
from pipeline.store.crops import CropKeeper
from pipeline.store.erasure import uid_hash
from pipeline.store.summaries import identity_detail
from pipeline.store.tracks import TrackRow, upsert_track
from tests.support.api_helpers import COLORS, TEST_MODEL, TRACKS, crop_jpeg
from tests.support.privacy_helpers import cells_holding, files_holding, make_site, references
from workers.cli import main


@pytest.fixture
def site(tmp_path, store_url):
    return make_site(tmp_path / "out", store_url if is_postgres(store_url) else None)


def forget(site, *args: str) -> int:
    return main(["forget", *args, "--store", site.store, *site.out_args(), "--wait", "0"])


def test_forgetting_a_person_leaves_no_row_file_crop_or_gallery_vector(site, capsys):
    winner, loser = site.world.merged            # person 3: two identities merged by a third track
    uids = site.uids_of(winner)
    assert len(uids) == 3
    nos = list(site.track_nos(uids).values())
    assert (site.folder / "identities" / f"{winner}.png").is_file()
    person_crops = [crop_jpeg(COLORS[3], "rgb"), crop_jpeg(COLORS[3], "ir")] + [site.crop_of[u] for u in uids]
    holding = files_holding(site.folder, person_crops)
    assert sum(site.crops.name in f for f in holding) == 3, holding
    if site.postgres:
        assert cells_holding(site.store, person_crops), "the thumbnails are in the database"
    else:
        assert "xreid.sqlite" in holding, holding
    found = references(site.store, uids, nos, [winner, loser])
    tables = {where.split(".")[0] for where in found}
    assert tables >= {"tracks", "links", "merges", "identities", "event_log", "event_log_refs", "watchlists",
                      "watchlist_refs", "watchlist_hits"}, "the check finds them before the erasure"
    with Store(site.store, readonly=True) as store:
        n_events = event_log.last_seq(store)

    assert forget(site, "--identity", str(loser)) == 0   # an id merged away erases the person it lives on as
    out = capsys.readouterr().out
    assert f"erased identity {loser}: 3 track(s), 2 identity(ies)" in out, out

    assert references(site.store, uids, nos, [winner, loser], skip_tables=("erasures",)) == []
    assert references(site.store, uids, [], []) == [], "not even the tombstone keeps a uid"
    with Store(site.store, readonly=True) as store:   # events and watchlist entries of the others stay
        entries = {e.id: e for e in watchlists.list_entries(store)}
        assert 0 < len(event_log.after(store, 0, 1000)) < n_events
    assert site.watch["identity 3"] not in entries, "the entry made from the person went with the person"
    assert entries[site.watch["images 3"]].n_refs == 3 and entries[site.watch["images 3"]].n_hits == 0, \
        "an entry made from images stays, without the erased tracks' hits"
    assert entries[site.watch["identity 0"]].n_refs == 3
    # the crops: kept files, thumbnails in the store (SQLite: secure_delete, WAL emptied), contact sheets
    assert files_holding(site.folder, person_crops) == []
    assert cells_holding(site.store, person_crops) == []
    assert not (site.folder / "identities" / f"{winner}.png").exists()
    assert all(not CropKeeper(site.crops).crops(u) for u in uids)
    doc = json.loads((site.folder / "identities.json").read_text())
    assert winner not in [d["identity"] for d in doc["identities"]] and doc["n_identities"] == 3
    tracks_jsonl = (site.folder / "tracks.jsonl").read_text()
    assert not any(u in tracks_jsonl for u in uids) and tracks_jsonl.count("\n") == len(TRACKS) - 3
    # the others are untouched
    other = site.world.track_uids[0]
    assert files_holding(site.folder, [site.crop_of[other]]) and (site.folder / "identities" / "1.png").is_file()
    # the gallery rebuilt from the store no longer returns them
    matcher = records.load_into(Store(site.store, readonly=True), Matcher(MatcherCfg()))
    for *_, vec in [t for t in TRACKS if t[0] == 3]:
        hits = matcher.search(TEST_MODEL, vec, k=10)
        assert hits and all(ident not in (winner, loser) for ident, _, _ in hits)
        assert all(matcher.track(key).track_uid not in uids for _, _, key in hits)
    assert not set(nos) & set(matcher._spaces[TEST_MODEL].gallery.keys().tolist())
    # numbers of erased tracks and identities are never handed out again
    assert matcher.next_track > max(nos) and matcher.next_identity > max(winner, loser)


def test_forget_is_idempotent_and_an_unknown_id_exits_2(site, capsys):
    ident = site.world.identity_of[site.world.track_uids[5]]   # person 2, one track
    assert forget(site, "--identity", str(ident)) == 0
    capsys.readouterr()
    assert forget(site, "--identity", str(ident), "--json") == 0
    again = json.loads(capsys.readouterr().out)
    assert again["state"] == "already" and again["n_tracks"] == 1 and again["kind"] == "identity"
    assert forget(site, "--identity", "9999") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"xreid forget: error: no identity 9999 in store {describe(site.store)}"]
    assert forget(site, "--track", "no-such-track") == 2
    assert "no track no-such-track" in capsys.readouterr().err
    assert forget(site, "--camera", "cam-a") == 2   # --before is required with --camera
    assert "--camera and --before go together" in capsys.readouterr().err
    with Store(site.store, readonly=True) as store:
        rows = store.execute("SELECT kind, target, status, requested_by, n_tracks FROM erasures")
    assert rows == [("identity", str(ident), "done", rows[0][3], 1)] and rows[0][3].startswith("cli:")


def test_forgetting_one_track_keeps_its_identity_and_the_decisions_that_named_it_lose_the_name(site, capsys):
    uid = site.world.track_uids[2]                       # person 0's infrared track
    ident = site.world.identity_of[uid]
    (no,) = site.track_nos([uid]).values()
    assert forget(site, "--track", uid) == 0
    assert "1 track(s), 0 identity(ies)" in capsys.readouterr().out
    assert references(site.store, [uid], [no], []) == []   # its events and watchlist reference too
    assert files_holding(site.folder, [site.crop_of[uid], crop_jpeg(COLORS[0], "ir")]) == []
    with Store(site.store, readonly=True) as store:
        entry = watchlists.get_entry(store, site.watch["identity 0"])
        kinds = [r.kind for r in event_log.after(store, 0, 1000) if f'"identity":{ident},' in r.body]
    assert entry is not None and entry.n_refs == 2, "the entry keeps the references of the identity's other tracks"
    assert "identity.created" in kinds, "events of the identity that do not name the track stay"
    with Store(site.store, readonly=True) as store:
        detail = identity_detail(store, ident)
        assert detail is not None and detail["n_tracks"] == 2 and "cam-ir" not in detail["cameras"]
        (tomb,) = store.execute("SELECT target FROM erasures")[0]
    assert tomb == f"hash:{uid_hash(uid)}"
    assert not (site.folder / "identities" / f"{ident}.png").exists(), "its sheet showed the erased crop"
    entry = next(d for d in json.loads((site.folder / "identities.json").read_text())["identities"]
                 if d["identity"] == ident)
    assert entry["n_tracks"] == 2 and entry["contact_sheet"] is None and uid not in json.dumps(entry)
    assert forget(site, "--track", uid) == 0 and "already erased" in capsys.readouterr().out
    with Store(site.store) as store:   # a camera still following the person writes the track again: refused
        upsert_track(store, TrackRow(uid, "cam-ir", "ir", 1.0, 2.0, 3, 1, crop_jpeg(COLORS[0], "ir")))
        assert store.execute("SELECT count(*) FROM tracks WHERE track_uid = ?", (uid,))[0][0] == 0


def test_forgetting_a_camera_before_a_time_erases_only_the_tracks_it_saw_before(site, capsys):
    # cam-b saw person 0 at T0+1100, person 2 at T0+1200, person 3 at T0+1310; cut at T0+1200 (14:33:20Z)
    before = [u for u, t in zip(site.world.track_uids, TRACKS, strict=True) if t[1] == "cam-b" and t[3] < 1200]
    after = [u for u, t in zip(site.world.track_uids, TRACKS, strict=True) if t[1] == "cam-b" and t[3] >= 1200]
    assert forget(site, "--camera", "cam-b", "--before", "2026-09-21T14:33:20Z") == 0
    assert f"{len(before)} track(s)" in capsys.readouterr().out
    with Store(site.store, readonly=True) as store:
        left = {u for (u,) in store.execute("SELECT track_uid FROM tracks WHERE camera_id = 'cam-b'")}
    assert left == set(after) and len(before) == 1 and len(after) == 2
    assert references(site.store, before, [], []) == []


def test_xreid_retention_sweeps_once_with_the_configured_horizons(site, capsys, monkeypatch):
    monkeypatch.setenv("XREID_RETENTION__CROPS", "0s")     # every crop is past its horizon at once
    assert main(["retention", "--store", site.store, *site.out_args(), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["crops"] == len(TRACKS) and result["tracks"] == 0 and result["files"] >= 1
    assert files_holding(site.folder, list(site.crop_of.values())) == []
    with Store(site.store, readonly=True) as store:
        assert store.execute("SELECT count(*) FROM tracks WHERE thumbnail IS NOT NULL")[0][0] == 0
        assert store.execute("SELECT count(*) FROM tracks")[0][0] == len(TRACKS) + 1
