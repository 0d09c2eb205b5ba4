"""``xreid store copy``: SQLite to PostgreSQL and back, every table, counts and contents verified."""

from __future__ import annotations

import json

import pytest

from pipeline.store.base import Store
from pipeline.store.copy import copy_store
from pipeline.store.erasure import Selector, add_request
from pipeline.store.identities import Link, add_identity, add_links
from pipeline.store.schema import MIGRATIONS, V_MODALITY_EVENTS
from pipeline.store.tracks import TrackRow, upsert_track
from tests.support.api_helpers import populate
from workers.cli import main


def _contents(location: str) -> dict[str, list[tuple]]:
    with Store(location, readonly=True) as store:
        return {t: sorted(map(tuple, store.execute(f'SELECT * FROM "{t}"')), key=repr)
                for t in store.table_names()}


def test_a_store_goes_to_postgresql_and_back_unchanged(tmp_path, pg_url):
    src = str(tmp_path / "src.sqlite")
    world = populate(src)
    with Store(src) as store:   # a merge whose loser was created before its winner: rows arrive out of order
        add_identity(store, 900, "test@0", 1.0)
        add_identity(store, 800, "test@0", 2.0)
        store.execute("UPDATE identities SET merged_into = 900 WHERE id = 800")
        add_request(store, Selector("track", world.track_uids[0]), "test", 3.0)   # v6: a queued erasure
    before = _contents(src)
    assert world.merged and len(before["links"]) >= len(world.track_uids)

    there = copy_store(src, pg_url)
    assert there.rows == {t: len(rows) for t, rows in before.items() if t != "meta"}
    assert there.version == there.migrated_to == len(MIGRATIONS)
    assert _contents(pg_url) == before

    with Store(pg_url) as store:   # the copied ids are behind the sequences: new rows get fresh ids
        n_links = len(before["links"])
        add_links(store, "c-new", [Link(1, "update", 800, None, None, None, None, "test", 5.0)])
        ids = [r[0] for r in store.execute("SELECT id FROM links ORDER BY id")]
        assert len(set(ids)) == n_links + 1 and ids[-1] > max(r[0] for r in before["links"])
        store.execute("DELETE FROM links WHERE clip_id = 'c-new'")
        assert add_request(store, Selector("identity", "1"), "test", 4.0) == 2   # past the copied request
        store.execute("DELETE FROM erasures WHERE id = 2")

    back = str(tmp_path / "back.sqlite")
    copy_store(pg_url, back)
    assert _contents(back) == before


def test_an_older_store_is_copied_at_its_version_then_migrated(tmp_path, pg_url):
    src = str(tmp_path / "old.sqlite")
    with Store(src, migrations=MIGRATIONS[:V_MODALITY_EVENTS]) as store:
        upsert_track(store, TrackRow("cam1-r1-1", "cam1", "rgb", 10.0, 11.0, 5, 1))
    result = copy_store(src, pg_url)
    assert (result.version, result.migrated_to) == (V_MODALITY_EVENTS, len(MIGRATIONS))
    assert result.rows["tracks"] == 1
    with Store(src, readonly=True) as store:
        assert store.schema_version == V_MODALITY_EVENTS, "the source is only read"


def _one_line(capsys, argv, needle: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err
    return err


def test_the_cli_copies_with_counts_and_refuses_a_destination_that_holds_a_store(tmp_path, pg_url, capsys):
    src = str(tmp_path / "src.sqlite")
    populate(src)
    assert main(["store", "copy", src, pg_url, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"]["tracks"] == len(_contents(src)["tracks"]) and out["migrated_to"] == len(MIGRATIONS)
    assert out["destination"].startswith("postgresql://***@")
    _one_line(capsys, ["store", "copy", src, pg_url], "is not empty")
    _one_line(capsys, ["store", "copy", src, src], "exists: copy into a new file")
    _one_line(capsys, ["store", "copy", str(tmp_path / "none.sqlite"), pg_url], "no store at")
    assert main(["store", "copy", pg_url, str(tmp_path / "back.sqlite")]) == 0
    table = capsys.readouterr().out
    assert "counts verified" in table and "tracks" in table
    # adapt and reembed need the crops beside a file: they point at the copy instead of guessing
    _one_line(capsys, ["reembed", "--store", pg_url, "--checkpoint", "x.pt"], "xreid store copy URL site.sqlite")


@pytest.mark.parametrize("direction", ["to_postgresql", "to_sqlite"])
def test_a_copy_that_does_not_verify_commits_nothing(tmp_path, pg_url, monkeypatch, direction):
    import pipeline.store.copy as copy_mod
    from models.errors import StoreError

    src = str(tmp_path / "src.sqlite")
    populate(src)
    if direction == "to_sqlite":
        copy_store(src, pg_url)
        src, dst = pg_url, str(tmp_path / "dst.sqlite")
    else:
        dst = pg_url
    real = copy_mod._copy_table

    def short(source, target, table, columns, batch):   # a row lost on the way
        n = real(source, target, table, columns, batch)
        if table == "links":
            target.execute("DELETE FROM links WHERE id = (SELECT min(id) FROM links)")
        return n

    monkeypatch.setattr(copy_mod, "_copy_table", short)
    with pytest.raises(StoreError, match="copy of table links does not verify"):
        copy_store(src, dst)
    with Store(dst, readonly=True) as store:
        assert int(store.execute("SELECT count(*) FROM tracks")[0][0]) == 0, "nothing committed"
