"""A replay-like output folder for the privacy tests, and the checks that nothing of an erased track is left.

``make_site`` writes what a replay leaves behind: the store (``api_helpers.populate``: real matcher
decisions, a merge, the events they announced and the watchlist hits they made), kept crops per track
(each track has one crop no other track shares), the report (``identities.json``,
``identities/<id>.png``) and ``tracks.jsonl``, and three watchlist entries: one from reference images of
person 3 (made before the replay, so it has hits) and one from each of persons 0 and 3's identities.
The store is a SQLite file in the folder, or a PostgreSQL database with the crops and reports in the
folder (a replay's ``--out``). ``references`` introspects the store's schema (``sqlite_master`` /
``information_schema``) and returns every cell that still names an erased track or identity (in a JSON
text too: an event's payload); ``cells_holding`` every cell holding a given crop; ``files_holding``
every file under a folder whose bytes contain one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import psycopg

from pipeline.replay.report import write_report
from pipeline.store import watchlists
from pipeline.store.base import Store, is_postgres
from pipeline.store.crops import CropKeeper, crops_root
from tests.support.api_helpers import TEST_MODEL, TRACKS, Populated, populate

# columns holding a matcher track number, or an identity id, whatever table they are in
TRACK_NO_COLUMNS = {"track_no", "matched_track_no", "evidence_track_no", "track_a", "track_b"}
IDENTITY_COLUMNS = {"identity_id", "merged_into", "winner", "loser"}
IDENTITY_KEYS = {"identity", "winner", "loser"}   # keys of a JSON text (an event's payload) naming an identity


def unique_crop(seed: int) -> bytes:
    """A JPEG no other track has (noise drawn from ``seed``)."""
    img = np.random.default_rng(seed).integers(0, 255, (96, 48, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


@dataclass
class Site:
    folder: Path
    world: Populated
    crop_of: dict[str, bytes] = field(default_factory=dict)   # uid -> its unique kept crop
    watch: dict[str, int] = field(default_factory=dict)       # "images 3", "identity 0", "identity 3" -> entry id

    @property
    def store(self) -> str:
        """The store's location: the SQLite file in the folder, or the PostgreSQL URL."""
        return str(self.world.path)

    @property
    def postgres(self) -> bool:
        return is_postgres(self.store)

    @property
    def crops(self) -> Path:
        """The kept crops: ``<stem>.crops`` beside a SQLite store, ``<folder>/<database>.crops`` for PostgreSQL."""
        return crops_root(self.store, None, self.folder)

    def out_args(self) -> list[str]:
        """``--out`` for commands: a PostgreSQL store has no folder of its own (SQLite: the default is tested)."""
        return ["--out", str(self.folder)] if self.postgres else []

    def uids_of(self, identity: int) -> list[str]:
        return [u for u in self.world.track_uids if self.world.identity_of[u] == identity]

    def track_nos(self, uids: list[str]) -> dict[str, int]:
        with Store(self.store, readonly=True) as store:
            return {str(u): int(n) for u, n in store.execute(
                f"SELECT track_uid, track_no FROM tracks WHERE track_uid IN ({','.join('?' * len(uids))})", uids)}


def make_site(folder: Path, location: str | None = None) -> Site:
    """The folder of a replay whose store is ``location`` (None: ``<folder>/xreid.sqlite``)."""
    folder.mkdir(parents=True, exist_ok=True)
    location = location or str(folder / "xreid.sqlite")
    with Store(location) as store:   # "tell me when person 3 shows up", before the replay
        refs = np.stack([t[5] for t in TRACKS if t[0] == 3])
        images_entry = watchlists.add_entry(store, "visitor", TEST_MODEL, 0.5, refs)
    site = Site(folder, populate(location, announce=True))
    site.watch["images 3"] = images_entry
    with Store(site.store) as store:
        for person in (0, 3):
            ident = site.world.identity_of[next(u for u, t in zip(site.world.track_uids, TRACKS, strict=True)
                                                if t[0] == person)]
            model_id, nos, vectors = watchlists.identity_references(store, ident)
            site.watch[f"identity {person}"] = watchlists.add_entry(store, f"person {person}", model_id, 0.5, vectors,
                                                                    identity_id=ident, track_nos=nos)
    keeper = CropKeeper(site.crops)
    lines = []
    for i, uid in enumerate(site.world.track_uids):
        _, cam, modality, t0, t1, _ = TRACKS[i]
        site.crop_of[uid] = unique_crop(i)
        assert keeper.keep(uid, 0, 0, t0, t1, site.crop_of[uid])
        lines.append(json.dumps({"track_uid": uid, "camera_id": cam, "modality": modality}) + "\n")
    (folder / "tracks.jsonl").write_text("".join(lines), encoding="utf-8")
    with Store(site.store) as store:
        write_report(store, folder)
    return site


@contextmanager
def _cells(location: str | Path) -> Iterator[Iterator[tuple[str, str, object]]]:
    """Every (table, column, value) of the store, its tables found by schema introspection, the driver's own."""
    if is_postgres(str(location)):
        with psycopg.connect(str(location)) as db:
            tables = [t for (t,) in db.execute("SELECT table_name FROM information_schema.tables WHERE "
                                                "table_schema = current_schema() AND table_type = 'BASE TABLE'")]
            yield _rows(tables, lambda t: db.execute(f'SELECT * FROM "{t}"'))
    else:
        with sqlite3.connect(location) as db:
            tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            yield _rows(tables, lambda t: db.execute(f'SELECT * FROM "{t}"'))


def _rows(tables: list[str], select) -> Iterator[tuple[str, str, object]]:
    assert {"tracks", "links", "merges", "identities", "erasures"} <= set(tables), tables
    for table in tables:
        cur = select(table)
        names = [d[0] for d in cur.description]
        for row in cur.fetchall():
            for col, value in zip(names, row, strict=True):
                yield table, col, value


def references(location: str | Path, uids: list[str], track_nos: list[int], identities: list[int],
               skip_tables: tuple[str, ...] = ()) -> list[str]:
    """Every cell of every table that names one of ``uids`` (anywhere in a text), one of ``track_nos``
    (in a track-number column) or one of ``identities`` (in an identity column, or the id of ``identities``)."""
    found = []
    with _cells(location) as cells:
        for table, col, value in cells:
            if table in skip_tables:
                continue
            where = f"{table}.{col}={value!r}"
            if isinstance(value, (str, bytes)):
                text = value if isinstance(value, str) else value.decode("latin-1")
                found += [where for u in uids if u in text]
                found += [where for i in _json_identities(text) if i in identities]
            elif isinstance(value, int):
                if col in TRACK_NO_COLUMNS and value in track_nos:
                    found.append(where)
                if (col in IDENTITY_COLUMNS or (table == "identities" and col == "id")) and value in identities:
                    found.append(where)
    return found


def _json_identities(text: str) -> list[int]:
    """Identity ids a JSON text names under ``IDENTITY_KEYS``, at any depth (none when it is not JSON)."""
    if not text.startswith(("{", "[")):
        return []
    try:
        doc = json.loads(text)
    except ValueError:
        return []
    out: list[int] = []
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            out += [v for k, v in node.items() if k in IDENTITY_KEYS and isinstance(v, int)]
            stack += list(node.values())
        elif isinstance(node, list):
            stack += node
    return out


def cells_holding(location: str | Path, blobs: list[bytes]) -> list[str]:
    """Cells of the store (any table) whose bytes contain any of ``blobs`` (thumbnails, mostly)."""
    with _cells(location) as cells:
        return [f"{t}.{c}" for t, c, v in cells if isinstance(v, bytes) for b in blobs if b in v]


def files_holding(folder: Path, blobs: list[bytes]) -> list[str]:
    """Files under ``folder`` whose bytes contain any of ``blobs`` (the store, its WAL and sidecars included)."""
    out = []
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            out += [str(p.relative_to(folder)) for b in blobs if b in data]
    return out
