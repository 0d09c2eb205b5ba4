from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from models.errors import StoreError
from pipeline.store.schema import MIGRATIONS, Migration
from pipeline.store.sqlite import Store
from pipeline.store.tracks import TrackFilter, TrackRow, count_tracks, get_track, list_tracks, thumbnail, upsert_track


def _jpeg() -> bytes:
    ok, buf = cv2.imencode(".jpg", np.zeros((8, 4, 3), np.uint8))
    assert ok
    return buf.tobytes()


def _row(uid: str = "cam1-r1-1", **kw) -> TrackRow:
    base = dict(track_uid=uid, camera_id="cam1", modality="rgb", t_start=100.0, t_end=101.0, n_frames=10, n_clips=1)
    base.update(kw)
    return TrackRow(**base)


def test_fresh_store_is_wal_and_at_latest_schema(tmp_path):
    path = tmp_path / "sub" / "x.sqlite"
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS) == store.latest_version
        assert store.execute("PRAGMA journal_mode")[0][0] == "wal"


def test_upsert_widens_span_and_keeps_thumbnail(tmp_path):
    with Store(tmp_path / "x.sqlite") as store:
        thumb = _jpeg()
        upsert_track(store, _row(thumbnail=thumb))
        upsert_track(store, _row(t_start=100.5, t_end=105.0, n_frames=40, n_clips=2))
        upsert_track(store, _row(t_start=100.5, t_end=103.0, n_frames=20, n_clips=1))  # stale redelivery
        got = get_track(store, "cam1-r1-1")
        assert (got.t_start, got.t_end, got.n_frames, got.n_clips, got.has_thumbnail) == (100.0, 105.0, 40, 2, True)
        assert thumbnail(store, "cam1-r1-1") == thumb
        assert count_tracks(store) == 1
        assert get_track(store, "absent") is None


def test_list_tracks_filters_by_camera_modality_and_time(tmp_path):
    with Store(tmp_path / "x.sqlite") as store:
        upsert_track(store, _row("a", t_start=0.0, t_end=10.0))
        upsert_track(store, _row("b", camera_id="cam2", modality="ir", t_start=5.0, t_end=6.0))
        upsert_track(store, _row("c", t_start=20.0, t_end=30.0))
        assert [t.track_uid for t in list_tracks(store)] == ["a", "b", "c"]
        assert [t.track_uid for t in list_tracks(store, TrackFilter(camera_id="cam1"))] == ["a", "c"]
        assert [t.track_uid for t in list_tracks(store, TrackFilter(modality="ir"))] == ["b"]
        assert [t.track_uid for t in list_tracks(store, TrackFilter(t_from=8.0, t_to=25.0))] == ["a", "c"]
        assert [t.track_uid for t in list_tracks(store, limit=1, offset=1)] == ["b"]
        assert [t.track_uid for t in list_tracks(store, newest_first=True)] == ["c", "b", "a"]
        assert count_tracks(store, TrackFilter(camera_id="cam2")) == 1


def test_reopen_keeps_data_and_a_later_migration_applies_once(tmp_path):
    path = tmp_path / "x.sqlite"
    with Store(path) as store:
        upsert_track(store, _row())
    extended = [*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "notes", "ALTER TABLE tracks ADD COLUMN note TEXT;")]
    with Store(path, migrations=extended) as store:
        assert store.schema_version == len(extended)
        upsert_track(store, _row(t_end=200.0))  # upsert leaves columns of later versions alone
        store.execute("UPDATE tracks SET note = 'x'")
        assert get_track(store, "cam1-r1-1").t_end == 200.0
    with Store(path, migrations=extended) as store:  # no second application (would fail: duplicate column)
        assert store.execute("SELECT note FROM tracks")[0][0] == "x"


def test_callable_migration_and_failed_migration_rolls_back(tmp_path):
    path = tmp_path / "x.sqlite"

    def add_table(store: Store) -> None:
        store.execute("CREATE TABLE extra (k TEXT)")

    n = len(MIGRATIONS)
    with Store(path, migrations=[*MIGRATIONS, Migration(n + 1, "extra", add_table)]) as store:
        assert store.schema_version == n + 1
    broken = [*MIGRATIONS, Migration(n + 1, "extra", add_table),
              Migration(n + 2, "bad", "CREATE TABLE t (a); SELEC nonsense;")]
    with pytest.raises(StoreError, match=f"migration v{n + 2} \\(bad\\) failed"):
        Store(path, migrations=broken)
    with Store(path, migrations=broken[:n + 1]) as store:
        assert store.schema_version == n + 1
        assert store.execute("SELECT name FROM sqlite_master WHERE name = 't'") == []


def test_newer_schema_and_bad_files_are_clear_errors(tmp_path):
    path = tmp_path / "x.sqlite"
    Store(path, migrations=[*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "future", "CREATE TABLE f (a);")]).close()
    with pytest.raises(StoreError, match="newer than this build"):
        Store(path)
    junk = tmp_path / "junk.sqlite"
    junk.write_text("this is not a database " * 100)
    with pytest.raises(StoreError, match="junk.sqlite"):
        Store(junk)
    with pytest.raises(StoreError, match="out of order"):
        Store(tmp_path / "y.sqlite", migrations=[Migration(2, "skip", "SELECT 1;")])


def test_rows_are_validated():
    with pytest.raises(StoreError, match="modality"):
        _row(modality="uv")
    with pytest.raises(StoreError, match="time span"):
        _row(t_start=5.0, t_end=1.0)
    with pytest.raises(StoreError, match="JPEG"):
        _row(thumbnail=b"png?")


def test_readonly_reader_sees_writer_commits(tmp_path):
    path = tmp_path / "x.sqlite"
    writer = Store(path)
    reader = Store(path, readonly=True)
    upsert_track(writer, _row())
    assert count_tracks(reader) == 1
    with pytest.raises(StoreError):
        upsert_track(reader, _row("b"))
    reader.close()
    writer.close()


def test_transaction_is_atomic_and_threads_can_share_a_store(tmp_path):
    with Store(tmp_path / "x.sqlite") as store:
        with pytest.raises(RuntimeError), store.transaction() as conn:
            conn.execute("INSERT INTO tracks (track_uid, camera_id, modality, t_start, t_end) "
                         "VALUES ('t', 'c', 'rgb', 0, 1)")
            raise RuntimeError("abort")
        assert count_tracks(store) == 0

        def write(k: int) -> None:
            for i in range(50):
                upsert_track(store, _row(f"u{k}-{i}"))

        threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert count_tracks(store) == 200
