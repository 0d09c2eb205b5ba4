"""The store's contract, on both backends (``store_url``: a SQLite file, then a PostgreSQL database)."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from models.errors import StoreError
from pipeline.store.base import Store, StoreRefused, is_postgres
from pipeline.store.schema import MIGRATIONS, Migration
from pipeline.store.tracks import TrackFilter, TrackRow, count_tracks, get_track, list_tracks, thumbnail, upsert_track


def _jpeg() -> bytes:
    ok, buf = cv2.imencode(".jpg", np.zeros((8, 4, 3), np.uint8))
    assert ok
    return buf.tobytes()


def _row(uid: str = "cam1-r1-1", **kw) -> TrackRow:
    base = dict(track_uid=uid, camera_id="cam1", modality="rgb", t_start=100.0, t_end=101.0, n_frames=10, n_clips=1)
    base.update(kw)
    return TrackRow(**base)


def test_fresh_store_is_at_latest_schema(store_url):
    with Store(store_url) as store:
        assert store.schema_version == len(MIGRATIONS) == store.latest_version
        assert store.dialect == ("postgresql" if is_postgres(store_url) else "sqlite")
        assert {"tracks", "identities", "links", "merges", "meta"} <= set(store.table_names())


def test_a_sqlite_store_is_in_wal_mode_under_a_created_folder(tmp_path):
    with Store(tmp_path / "sub" / "x.sqlite") as store:
        assert store.execute("PRAGMA journal_mode")[0][0] == "wal"


def test_upsert_widens_span_and_keeps_thumbnail(store_url):
    with Store(store_url) as store:
        thumb = _jpeg()
        upsert_track(store, _row(thumbnail=thumb, t_start=1_790_000_000.125, t_end=1_790_000_001.0))
        upsert_track(store, _row(t_start=1_790_000_000.5, t_end=1_790_000_005.0, n_frames=40, n_clips=2))
        upsert_track(store, _row(t_start=1_790_000_000.5, t_end=1_790_000_003.0, n_frames=20, n_clips=1))  # stale
        got = get_track(store, "cam1-r1-1")
        # epoch seconds keep their milliseconds (PostgreSQL stores REAL as double precision)
        assert (got.t_start, got.t_end, got.n_frames, got.n_clips, got.has_thumbnail) == \
            (1_790_000_000.125, 1_790_000_005.0, 40, 2, True)
        assert thumbnail(store, "cam1-r1-1") == thumb
        assert count_tracks(store) == 1
        assert get_track(store, "absent") is None


def test_list_tracks_filters_by_camera_modality_and_time(store_url):
    with Store(store_url) as store:
        upsert_track(store, _row("a", t_start=0.0, t_end=10.0))
        upsert_track(store, _row("b", camera_id="cam2", modality="ir", t_start=5.0, t_end=6.0))
        upsert_track(store, _row("c", t_start=20.0, t_end=30.0))
        upsert_track(store, _row("B_", camera_id="cam_3", t_start=40.0, t_end=41.0))
        assert [t.track_uid for t in list_tracks(store)] == ["a", "b", "c", "B_"]
        assert [t.track_uid for t in list_tracks(store, TrackFilter(camera_id="cam1"))] == ["a", "c"]
        assert [t.track_uid for t in list_tracks(store, TrackFilter(modality="ir"))] == ["b"]
        assert [t.track_uid for t in list_tracks(store, TrackFilter(t_from=8.0, t_to=25.0))] == ["a", "c"]
        assert [t.track_uid for t in list_tracks(store, limit=1, offset=1)] == ["b"]
        assert [t.track_uid for t in list_tracks(store, newest_first=True)] == ["B_", "c", "b", "a"]
        assert count_tracks(store, TrackFilter(camera_id="cam2")) == 1
        # text compares byte-wise on both backends ("B_" < "a", "cam2" < "cam_3"), whatever the locale
        assert store.execute("SELECT track_uid FROM tracks ORDER BY track_uid")[0][0] == "B_"
        assert [r[0] for r in store.execute("SELECT DISTINCT camera_id FROM tracks ORDER BY camera_id")] == \
            ["cam1", "cam2", "cam_3"]


def test_reopen_keeps_data_and_a_later_migration_applies_once(store_url):
    with Store(store_url) as store:
        upsert_track(store, _row())
    extended = [*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "notes", "ALTER TABLE tracks ADD COLUMN note TEXT;")]
    with Store(store_url, migrations=extended) as store:
        assert store.schema_version == len(extended)
        upsert_track(store, _row(t_end=200.0))  # upsert leaves columns of later versions alone
        store.execute("UPDATE tracks SET note = 'x'")
        assert get_track(store, "cam1-r1-1").t_end == 200.0
    with Store(store_url, migrations=extended) as store:  # no second application (would fail: duplicate column)
        assert store.execute("SELECT note FROM tracks")[0][0] == "x"


def test_callable_migration_and_failed_migration_rolls_back(store_url):
    def add_table(store: Store) -> None:
        store.execute("CREATE TABLE extra (k TEXT)")
        store.execute("INSERT INTO extra (k) VALUES (?)", ("50% done",))

    n = len(MIGRATIONS)
    with Store(store_url, migrations=[*MIGRATIONS, Migration(n + 1, "extra", add_table)]) as store:
        assert store.schema_version == n + 1
        assert store.execute("SELECT k FROM extra") == [("50% done",)]
    broken = [*MIGRATIONS, Migration(n + 1, "extra", add_table),
              Migration(n + 2, "bad", "CREATE TABLE t (a TEXT); SELEC nonsense;")]
    with pytest.raises(StoreError, match=f"migration v{n + 2} \\(bad\\) failed"):
        Store(store_url, migrations=broken)
    with Store(store_url, migrations=broken[:n + 1]) as store:
        assert store.schema_version == n + 1
        assert "t" not in store.table_names()


def test_newer_schema_is_refused_and_a_migration_list_with_gaps_too(store_url, tmp_path):
    Store(store_url, migrations=[*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "future", "CREATE TABLE f (a TEXT);")]) \
        .close()
    with pytest.raises(StoreError, match="newer than this build"):
        Store(store_url)
    with pytest.raises(StoreError, match="newer than this build"):
        Store(store_url, readonly=True)
    with pytest.raises(StoreError, match="out of order"):
        Store(tmp_path / "y.sqlite", migrations=[Migration(2, "skip", "SELECT 1;")])


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_text("this is not a database " * 100)
    with pytest.raises(StoreError, match="junk.sqlite"):
        Store(junk)


def test_wrong_credentials_and_a_missing_database_are_refused_at_once_with_the_password_masked(pg_url):
    base = pg_url.rsplit("/", 1)[0]
    for url, needle in ((base + "/no_such_xreid_db", 'database "no_such_xreid_db" does not exist'),
                        (base.replace("postgres@", "nobody_here:hunter2@") + "/postgres", 'role "nobody_here"')):
        with pytest.raises(StoreRefused) as err:
            Store(url)
        line = str(err.value)
        assert needle in line and "hunter2" not in line and "\n" not in line, line


def test_rows_are_validated():
    with pytest.raises(StoreError, match="modality"):
        _row(modality="uv")
    with pytest.raises(StoreError, match="time span"):
        _row(t_start=5.0, t_end=1.0)
    with pytest.raises(StoreError, match="JPEG"):
        _row(thumbnail=b"png?")


def test_readonly_reader_sees_writer_commits(store_url):
    writer = Store(store_url)
    reader = Store(store_url, readonly=True)
    upsert_track(writer, _row())
    assert count_tracks(reader) == 1
    with pytest.raises(StoreError):
        upsert_track(reader, _row("b"))
    with reader.snapshot():
        before = count_tracks(reader)
        upsert_track(writer, _row("c"))
        assert count_tracks(reader) == before   # one view for the whole snapshot
    assert count_tracks(reader) == 2
    reader.close()
    writer.close()


def test_transaction_is_atomic_and_threads_can_share_a_store(store_url):
    with Store(store_url) as store:
        with pytest.raises(RuntimeError), store.transaction() as conn:
            conn.execute("INSERT INTO tracks (track_uid, camera_id, modality, t_start, t_end) "
                         "VALUES ('t', 'c', 'rgb', 0, 1)")
            raise RuntimeError("abort")
        assert count_tracks(store) == 0
        with store.transaction():
            upsert_track(store, _row("outer"))
            with store.transaction():   # joins the outer one
                upsert_track(store, _row("inner"))
        assert count_tracks(store) == 2

        def write(k: int) -> None:
            for i in range(50):
                upsert_track(store, _row(f"u{k}-{i}"))

        threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert count_tracks(store) == 202


def test_a_refused_write_fails_its_whole_transaction(store_url):
    """PostgreSQL sends a transaction's writes without waiting for each answer: a refusal still surfaces."""
    with Store(store_url) as store:
        with pytest.raises(StoreError, match="(?i)foreign key"), store.transaction():
            upsert_track(store, _row("not-kept"))
            store.execute("INSERT INTO links (clip_id, track_no, kind, identity_id, reason, ts) "
                          "VALUES ('c', 1, 'new', 999, 'no such identity', 0)")
            upsert_track(store, _row("not-kept-either"))
        assert count_tracks(store) == 0
        with store.transaction():   # the connection is usable again
            upsert_track(store, _row("kept"))
        assert [t.track_uid for t in list_tracks(store)] == ["kept"]
