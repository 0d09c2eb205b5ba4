"""The SQLite track store: one file, WAL mode, a versioned schema migrated forward on open.

One writer (the replay loop or the matcher) and many readers (API, CLI) share the file; WAL lets
readers run while the writer commits. The schema is the ordered ``MIGRATIONS`` list: each entry
moves the schema from ``version - 1`` to ``version`` inside one transaction, and the ``meta``
table remembers the version reached. To change the schema, append a ``Migration`` (never edit
a released one)::

    MIGRATIONS.append(Migration(2, "identities", "CREATE TABLE identities (...); ALTER TABLE tracks ..."))

A migration is either SQL (one or more statements) or a callable taking the open connection, for
changes SQL alone cannot express (backfills computed in Python).
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from models.errors import StoreError
from pipeline.bus.messages import MODALITIES

log = logging.getLogger(__name__)

_JPEG_SOI = b"\xff\xd8"


@dataclass(frozen=True)
class Migration:
    """One schema step: ``apply`` takes the schema from ``version - 1`` to ``version``."""

    version: int
    name: str
    apply: str | Callable[[sqlite3.Connection], None]


_V1_TRACKS = """
CREATE TABLE tracks (
    track_uid  TEXT PRIMARY KEY,
    camera_id  TEXT NOT NULL,
    modality   TEXT NOT NULL CHECK (modality IN ('rgb', 'ir')),
    t_start    REAL NOT NULL,
    t_end      REAL NOT NULL,
    n_frames   INTEGER NOT NULL DEFAULT 0,
    n_clips    INTEGER NOT NULL DEFAULT 0,
    thumbnail  BLOB
);
CREATE INDEX tracks_camera_time ON tracks (camera_id, t_start);
CREATE INDEX tracks_time ON tracks (t_start);
"""

# v2 (matcher): identities, link decisions and merges; tracks gain the matcher's columns. A track's
# ``embedding`` is the running mean (float32, not normalised) of its ``n_embedded`` clip vectors
# under ``model_id``; ``segments`` (JSON list) are the clips folded in, so redelivery is a no-op.
_V2_IDENTITIES = """
CREATE TABLE identities (
    id          INTEGER PRIMARY KEY,
    model_id    TEXT NOT NULL,
    created_at  REAL NOT NULL,
    merged_into INTEGER REFERENCES identities (id)
);
ALTER TABLE tracks ADD COLUMN track_no INTEGER;
ALTER TABLE tracks ADD COLUMN model_id TEXT;
ALTER TABLE tracks ADD COLUMN embedding BLOB;
ALTER TABLE tracks ADD COLUMN n_embedded INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tracks ADD COLUMN segments TEXT;
ALTER TABLE tracks ADD COLUMN identity_id INTEGER REFERENCES identities (id);
CREATE UNIQUE INDEX tracks_track_no ON tracks (track_no);
CREATE INDEX tracks_identity ON tracks (identity_id);
CREATE TABLE links (
    id               INTEGER PRIMARY KEY,
    clip_id          TEXT NOT NULL,
    track_no         INTEGER NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('join', 'new', 'blocked', 'update')),
    identity_id      INTEGER NOT NULL REFERENCES identities (id),
    matched_track_no INTEGER,
    score            REAL,
    threshold        REAL,
    pair             TEXT,
    reason           TEXT NOT NULL,
    ts               REAL NOT NULL
);
CREATE INDEX links_track ON links (track_no);
CREATE INDEX links_identity ON links (identity_id);
CREATE TABLE merges (
    id                INTEGER PRIMARY KEY,
    winner            INTEGER NOT NULL REFERENCES identities (id),
    loser             INTEGER NOT NULL UNIQUE REFERENCES identities (id),
    evidence_track_no INTEGER NOT NULL,
    score             REAL NOT NULL,
    ts                REAL NOT NULL
);
"""

# v3: day/night cameras (pipeline/store/modality_events.py). One row per modality decision of a camera:
# the first one (from_modality NULL) and every switch, dated to the first frame in the new modality.
_V3_MODALITY_EVENTS = """
CREATE TABLE modality_events (
    camera_id     TEXT NOT NULL,
    ts            REAL NOT NULL,
    from_modality TEXT CHECK (from_modality IS NULL OR from_modality IN ('rgb', 'ir')),
    to_modality   TEXT NOT NULL CHECK (to_modality IN ('rgb', 'ir')),
    saturation    REAL,
    correlation   REAL,
    PRIMARY KEY (camera_id, ts)
);
"""

# v4: camera source status (pipeline/camera/status.py), one row per camera, latest report wins.
# ``reason`` and ``source`` are stored with credentials already redacted.
_V4_CAMERAS = """
CREATE TABLE cameras (
    camera_id  TEXT PRIMARY KEY,
    status     TEXT NOT NULL CHECK (status IN ('connected', 'reconnecting', 'ended', 'failed')),
    reason     TEXT NOT NULL DEFAULT '',
    source     TEXT,
    modality   TEXT,
    updated_at REAL NOT NULL
);
"""

# v5: site calibration (pipeline/matcher/calibration.py). ``calibration_scores`` keeps the free evidence:
# impostor pairs (two tracks of one camera at once; track_b set) and genuine pairs (a later clip against
# its own track; track_b NULL), per model and modality pair. ``calibration`` holds each pair's threshold as
# the matcher last computed it, for the CLI, the API and the metrics.
_V5_CALIBRATION = """
CREATE TABLE calibration_scores (
    id       INTEGER PRIMARY KEY,
    model_id TEXT NOT NULL,
    pair     TEXT NOT NULL CHECK (pair IN ('rgb_rgb', 'ir_ir', 'rgb_ir')),
    kind     TEXT NOT NULL CHECK (kind IN ('genuine', 'impostor')),
    score    REAL NOT NULL,
    track_a  INTEGER NOT NULL,
    track_b  INTEGER,
    ts       REAL NOT NULL
);
CREATE INDEX calibration_scores_key ON calibration_scores (model_id, pair, kind, id);
CREATE TABLE calibration (
    model_id      TEXT NOT NULL,
    pair          TEXT NOT NULL CHECK (pair IN ('rgb_rgb', 'ir_ir', 'rgb_ir')),
    threshold     REAL NOT NULL,
    source        TEXT NOT NULL CHECK (source IN ('manual', 'auto', 'default')),
    n_genuine     INTEGER NOT NULL,
    n_impostor    INTEGER NOT NULL,
    impostor_rate REAL,
    genuine_rate  REAL,
    target_fmr    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    PRIMARY KEY (model_id, pair)
);
"""

# Ordered, append-only. Versions must be 1, 2, 3, ... without gaps.
MIGRATIONS: list[Migration] = [
    Migration(1, "tracks", _V1_TRACKS),
    Migration(2, "identities", _V2_IDENTITIES),
    Migration(3, "modality_events", _V3_MODALITY_EVENTS),
    Migration(4, "cameras", _V4_CAMERAS),
    Migration(5, "calibration", _V5_CALIBRATION),
]


@dataclass(frozen=True)
class TrackRow:
    """One track as the store keeps it (columns of schema v1).

    Attributes:
        t_start, t_end: UTC epoch seconds of the first and last observed frame.
        n_frames: frames the track was observed in.
        n_clips: clips emitted for it so far.
        thumbnail: one JPEG crop, or ``None``.
    """

    track_uid: str
    camera_id: str
    modality: str
    t_start: float
    t_end: float
    n_frames: int = 0
    n_clips: int = 0
    thumbnail: bytes | None = None

    def __post_init__(self) -> None:
        if not self.track_uid or not self.camera_id:
            raise StoreError(f"track row needs a track_uid and camera_id, got {self.track_uid!r}/{self.camera_id!r}")
        if self.modality not in MODALITIES:
            raise StoreError(f"track {self.track_uid}: modality must be one of {MODALITIES}, got {self.modality!r}")
        if not (math.isfinite(self.t_start) and math.isfinite(self.t_end)) or self.t_end < self.t_start:
            raise StoreError(f"track {self.track_uid}: bad time span {self.t_start}..{self.t_end}")
        if self.n_frames < 0 or self.n_clips < 0:
            raise StoreError(f"track {self.track_uid}: counts must be >= 0")
        if self.thumbnail is not None and not bytes(self.thumbnail).startswith(_JPEG_SOI):
            raise StoreError(f"track {self.track_uid}: thumbnail is not JPEG data")


_TRACK_COLUMNS = ("track_uid", "camera_id", "modality", "t_start", "t_end", "n_frames", "n_clips", "thumbnail")


def check_schema_version(path: str | Path, current: int, latest: int | None = None) -> None:
    """Refuse a store written by a newer build: its tables may mean what this build cannot know.

    Every reader (the CLI's ``Store``, the API's snapshots, ``xreid serve`` at start) refuses with
    this one message, so a future store is never half-read by one and refused by another.

    Raises:
        StoreError: when ``current`` is past ``latest`` (default: this build's last migration).
    """
    latest = len(MIGRATIONS) if latest is None else latest
    if current > latest:
        raise StoreError(f"store {path} has schema v{current}, newer than this build (v{latest}); upgrade xreid")


def _check_migrations(migrations: Sequence[Migration]) -> None:
    for i, m in enumerate(migrations, start=1):
        if m.version != i:
            raise StoreError(f"migration list is out of order: position {i} holds version {m.version} ({m.name})")


class Store:
    """The track store at ``path`` (created and migrated to the latest schema on open).

    A ``Store`` owns one connection and may be shared by threads (calls are serialised by a lock).
    Separate processes open their own ``Store`` on the same file.

    Args:
        path: SQLite file; its parent directory is created. ``":memory:"`` works for tests.
        migrations: the schema steps (tests pass a longer list to exercise upgrades).
        readonly: open without migrating or writing (readers such as the API).

    Raises:
        StoreError: when the file cannot be opened, is not a database, is newer than this build,
            or a migration fails (the failing step is rolled back).
    """

    def __init__(self, path: str | Path, migrations: Sequence[Migration] = MIGRATIONS, readonly: bool = False) -> None:
        self.path = str(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        _check_migrations(migrations)
        self._migrations = tuple(migrations)
        try:
            if readonly:
                uri = f"file:{Path(self.path).resolve()}?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
            else:
                if self.path != ":memory:":
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
            self._conn.execute("PRAGMA busy_timeout = 10000")
            if not readonly:
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"cannot open store {self.path}: {e}") from None
        if readonly:
            self._check_version()
        else:
            self._migrate()

    # -- schema ---------------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        """The schema version this file is at (0 for an empty file)."""
        with self._lock:
            try:
                row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            except sqlite3.OperationalError:
                return 0  # no meta table: a fresh file
            except sqlite3.DatabaseError as e:
                raise StoreError(f"{self.path} is not an xreid store: {e}") from None
            return int(row[0]) if row else 0

    @property
    def latest_version(self) -> int:
        return len(self._migrations)

    def _check_version(self) -> int:
        current = self.schema_version
        check_schema_version(self.path, current, self.latest_version)
        return current

    def _migrate(self) -> None:
        with self._lock:
            current = self._check_version()
            for m in self._migrations[current:]:
                try:
                    self._conn.execute("BEGIN IMMEDIATE")
                    self._conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                    if isinstance(m.apply, str):
                        for stmt in _split_sql(m.apply):
                            self._conn.execute(stmt)
                    else:
                        m.apply(self._conn)
                    self._conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                                       "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(m.version),))
                    self._conn.execute("COMMIT")
                except sqlite3.Error as e:
                    self._conn.execute("ROLLBACK")
                    raise StoreError(f"store {self.path}: migration v{m.version} ({m.name}) failed: {e}") from None
                log.info("store %s migrated to schema v%d (%s)", self.path, m.version, m.name)

    # -- access ---------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run several writes atomically: ``with store.transaction() as conn: conn.execute(...)``."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        """Run one statement and return its rows (for stages that own later schema versions)."""
        with self._lock:
            try:
                cur = self._conn.execute(sql, tuple(params))
                return cur.fetchall()
            except sqlite3.Error as e:
                raise StoreError(f"store {self.path}: {e}") from None

    def upsert_track(self, row: TrackRow) -> None:
        """Insert a track, or widen an existing one: its span grows, counts take the larger value.

        Idempotent: writing the same row twice leaves the store as after one write. Columns that
        later schema versions add (identity, embedding) are left untouched.
        """
        sql = (
            f"INSERT INTO tracks ({', '.join(_TRACK_COLUMNS)}) VALUES ({', '.join('?' * len(_TRACK_COLUMNS))}) "
            "ON CONFLICT(track_uid) DO UPDATE SET "
            "t_start = min(t_start, excluded.t_start), t_end = max(t_end, excluded.t_end), "
            "n_frames = max(n_frames, excluded.n_frames), n_clips = max(n_clips, excluded.n_clips), "
            "thumbnail = coalesce(excluded.thumbnail, thumbnail)"
        )
        values = (row.track_uid, row.camera_id, row.modality, float(row.t_start), float(row.t_end),
                  int(row.n_frames), int(row.n_clips), row.thumbnail)
        with self._lock:
            try:
                self._conn.execute(sql, values)
            except sqlite3.Error as e:
                raise StoreError(f"store {self.path}: cannot write track {row.track_uid}: {e}") from None

    def get_track(self, track_uid: str) -> TrackRow | None:
        rows = self.execute(f"SELECT {', '.join(_TRACK_COLUMNS)} FROM tracks WHERE track_uid = ?", (track_uid,))
        return _track(rows[0]) if rows else None

    def list_tracks(self, camera_id: str | None = None, modality: str | None = None, t_from: float | None = None,
                    t_to: float | None = None, limit: int = 1000, offset: int = 0) -> list[TrackRow]:
        """Tracks overlapping ``[t_from, t_to]``, filtered, oldest first."""
        where, params = _filters(camera_id, modality, t_from, t_to)
        sql = f"SELECT {', '.join(_TRACK_COLUMNS)} FROM tracks{where} ORDER BY t_start, track_uid LIMIT ? OFFSET ?"
        return [_track(r) for r in self.execute(sql, [*params, int(limit), int(offset)])]

    def count_tracks(self, camera_id: str | None = None, modality: str | None = None) -> int:
        where, params = _filters(camera_id, modality, None, None)
        return int(self.execute(f"SELECT count(*) FROM tracks{where}", params)[0][0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def where_clause(conditions: Sequence[tuple[str, object | None]]) -> tuple[str, list[object]]:
    """`` WHERE a AND b`` (or ``""``) and its parameters, from ``(sql, value)`` pairs; ``None`` values are left out.

    Each ``sql`` holds one ``?`` for its value, so filters stay parameterised.
    """
    kept = [(sql, value) for sql, value in conditions if value is not None]
    if not kept:
        return "", []
    return " WHERE " + " AND ".join(sql for sql, _ in kept), [value for _, value in kept]


def _filters(camera_id: str | None, modality: str | None, t_from: float | None,
             t_to: float | None) -> tuple[str, list[object]]:
    return where_clause([("camera_id = ?", camera_id), ("modality = ?", modality),
                         ("t_end >= ?", None if t_from is None else float(t_from)),
                         ("t_start <= ?", None if t_to is None else float(t_to))])


def _track(r: Sequence[object]) -> TrackRow:
    thumb = r[7]
    return TrackRow(str(r[0]), str(r[1]), str(r[2]), float(r[3]), float(r[4]),  # type: ignore[arg-type]
                    int(r[5]), int(r[6]), bytes(thumb) if thumb is not None else None)  # type: ignore[arg-type,call-overload]


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (``executescript`` would commit our transaction)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
