"""The store's schema: DDL per version, the ordered migration list, and the version checks.

The schema is the ordered ``MIGRATIONS`` list: each entry moves the schema from ``version - 1`` to
``version`` inside one transaction, and the ``meta`` table remembers the version reached. To change
the schema, append a ``Migration`` (never edit a released one)::

    MIGRATIONS.append(Migration(6, "notes", "ALTER TABLE tracks ADD COLUMN note TEXT;"))

A migration is either SQL (one or more statements) or a callable taking the open ``Store``, for
changes SQL alone cannot express (backfills computed in Python). Both backends run the same list, so a
version means the same tables on SQLite and PostgreSQL. The DDL is written once, in SQLite's words;
PostgreSQL runs it with its own type words (``dialect.postgres_ddl``: ``REAL`` → ``DOUBLE PRECISION``,
``BLOB`` → ``BYTEA``, ...), and a callable's statements go through the store, which translates them.
Where the two truly differ (a trigger, say), the step carries its PostgreSQL text too::

    Migration(8, "audit_trigger", SQLITE_TRIGGER, postgres=PLPGSQL_FUNCTION_AND_TRIGGER)

``tests/unit/test_store_schema.py`` migrates both backends and compares their tables and columns,
version by version.

Readers ask ``store.schema_version >= V_IDENTITIES`` (and so on) rather than probing tables: a
migration commits whole, so a version names exactly the tables present.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.errors import StoreError
from pipeline.store.dialect import postgres_ddl

V_TRACKS = 1            # tracks
V_IDENTITIES = 2        # identities, links, merges; the matcher's columns on tracks
V_MODALITY_EVENTS = 3   # modality_events (day/night cameras)
V_CAMERAS = 4           # cameras (source status)
V_CALIBRATION = 5       # calibration_scores, calibration
V_PRIVACY = 6           # erasures, forgotten_tracks, writer_lease; tracks/modality_events.stored_at
V_EVENTS = 7            # event_log, event_log_refs, watchlists, watchlist_refs, watchlist_hits


class SchemaTooNew(StoreError):
    """The store was written by a newer build; its tables may mean what this build cannot know."""


@dataclass(frozen=True)
class Migration:
    """One schema step: ``apply`` takes the schema from ``version - 1`` to ``version``.

    A callable ``apply`` receives the open ``Store`` (its ``execute`` runs inside the step's transaction).
    ``postgres`` replaces ``apply`` on PostgreSQL where the type-word translation is not enough.
    """

    version: int
    name: str
    apply: str | Callable[[Any], None]
    postgres: str | Callable[[Any], None] | None = None

    def for_dialect(self, dialect: str) -> str | Callable[[Any], None]:
        """What this step runs on ``dialect`` (``"sqlite"`` or ``"postgresql"``)."""
        if dialect == "sqlite":
            return self.apply
        if self.postgres is not None:
            return self.postgres
        return postgres_ddl(self.apply) if isinstance(self.apply, str) else self.apply


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

# v3: day/night cameras (modality_events.py). One row per modality decision of a camera:
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

# v6: privacy (pipeline/store/erasure.py, retention.py, audit.py; docs/privacy.md). ``erasures`` is the
# queue of forget requests and, once executed, their tombstones (what, when, who, how much; never a vector,
# a crop or a raw track uid: a track's target is replaced by its hash). ``forgotten_tracks`` keeps those
# hashes so an erased track's clips still in flight are dropped instead of bringing it back.
# ``writer_lease`` tells a requester whether a live matcher will execute its request (on PostgreSQL the
# matcher's advisory lock also keeps a second matcher out; the lease is what a requester can read).
# ``stored_at`` (UTC epoch seconds of the last write; NULL on older rows: their footage time counts) is
# what retention ages are measured from. Both backends run this DDL (PostgreSQL with its type words:
# ``erasures.id`` becomes an identity column, so ``INSERT ... RETURNING id`` numbers requests on both).
_V6_PRIVACY = """
CREATE TABLE erasures (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('identity', 'track', 'camera')),
    target       TEXT NOT NULL,
    before_ts    REAL,
    requested_by TEXT NOT NULL,
    requested_at REAL NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    executed_by  TEXT,
    claimed_at   REAL,
    done_at      REAL,
    n_tracks     INTEGER NOT NULL DEFAULT 0,
    n_identities INTEGER NOT NULL DEFAULT 0,
    n_crops      INTEGER NOT NULL DEFAULT 0,
    n_files      INTEGER NOT NULL DEFAULT 0,
    n_dead       INTEGER NOT NULL DEFAULT 0,
    reason       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX erasures_status ON erasures (status, id);
CREATE TABLE forgotten_tracks (
    uid_hash   TEXT PRIMARY KEY,
    erasure_id INTEGER NOT NULL,
    ts         REAL NOT NULL
);
CREATE TABLE writer_lease (
    role         TEXT PRIMARY KEY,
    holder       TEXT NOT NULL,
    heartbeat_at REAL NOT NULL
);
ALTER TABLE tracks ADD COLUMN stored_at REAL;
ALTER TABLE modality_events ADD COLUMN stored_at REAL;
CREATE INDEX tracks_camera_end ON tracks (camera_id, t_end);
"""

# v7: live events (pipeline/events/, pipeline/store/event_log.py) and watchlists (pipeline/store/watchlists.py).
# ``event_log`` holds every event the matcher announced, written in the transaction of the facts it
# announces, newest ``events.log_keep`` kept; the API tails it for ``GET /events/stream`` (``seq`` only
# grows: AUTOINCREMENT never reuses a trimmed number). A watchlist entry is a name, a model, a threshold
# and reference vectors (unit float32, one per query image or per track of the identity it was made
# from); a hit is recorded once per entry and track. What forget and retention need (pipeline/store/erasure.py):
# ``event_log_refs`` names the tracks and identities each logged event mentions (the store never parses an
# event's JSON), ``watchlist_refs.track_no`` the track a reference vector came from, and ``stored_at`` when
# a hit was recorded (its ``ts`` is the footage's time).
_V7_EVENTS = """
CREATE TABLE event_log (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id  TEXT NOT NULL UNIQUE,
    kind      TEXT NOT NULL,
    ts        REAL NOT NULL,
    body      TEXT NOT NULL,
    logged_at REAL NOT NULL
);
CREATE INDEX event_log_logged ON event_log (logged_at);
CREATE TABLE event_log_refs (
    seq         INTEGER NOT NULL,
    track_uid   TEXT,
    identity_id INTEGER
);
CREATE INDEX event_log_refs_seq ON event_log_refs (seq);
CREATE INDEX event_log_refs_track ON event_log_refs (track_uid);
CREATE INDEX event_log_refs_identity ON event_log_refs (identity_id);
CREATE TABLE watchlists (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    model_id    TEXT NOT NULL,
    threshold   REAL NOT NULL,
    identity_id INTEGER,
    created_at  REAL NOT NULL
);
CREATE INDEX watchlists_identity ON watchlists (identity_id);
CREATE TABLE watchlist_refs (
    watchlist_id INTEGER NOT NULL REFERENCES watchlists (id) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,
    vector       BLOB NOT NULL,
    track_no     INTEGER,
    PRIMARY KEY (watchlist_id, idx)
);
CREATE INDEX watchlist_refs_track ON watchlist_refs (track_no);
CREATE TABLE watchlist_hits (
    watchlist_id INTEGER NOT NULL REFERENCES watchlists (id) ON DELETE CASCADE,
    track_uid    TEXT NOT NULL,
    score        REAL NOT NULL,
    ts           REAL NOT NULL,
    stored_at    REAL NOT NULL,
    PRIMARY KEY (watchlist_id, track_uid)
);
CREATE INDEX watchlist_hits_track ON watchlist_hits (track_uid);
CREATE INDEX watchlist_hits_stored ON watchlist_hits (stored_at);
"""

# The query audit log (pipeline/store/audit.py) has its own migrations. With SQLite it lives in a file
# beside the store (``<stem>.audit.sqlite``): the API appends to it on every query, and a write there must
# never wait for the matcher's transactions nor block them (one writer per SQLite file). With PostgreSQL,
# whose writers do not exclude each other, it is the ``xreid_audit`` schema of the store's own database
# (its own ``meta``, so the two version numbers never mix).
_AUDIT_LOG = """
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY,
    ts           REAL NOT NULL,
    token_id     TEXT NOT NULL,
    method       TEXT NOT NULL,
    route        TEXT NOT NULL,
    params       TEXT NOT NULL,
    status       INTEGER NOT NULL,
    result_count INTEGER NOT NULL,
    client       TEXT
);
CREATE INDEX audit_log_ts ON audit_log (ts);
"""

AUDIT_MIGRATIONS: list[Migration] = [Migration(1, "audit_log", _AUDIT_LOG)]

# Ordered, append-only. Versions must be 1, 2, 3, ... without gaps.
MIGRATIONS: list[Migration] = [
    Migration(1, "tracks", _V1_TRACKS),
    Migration(2, "identities", _V2_IDENTITIES),
    Migration(3, "modality_events", _V3_MODALITY_EVENTS),
    Migration(4, "cameras", _V4_CAMERAS),
    Migration(5, "calibration", _V5_CALIBRATION),
    Migration(6, "privacy", _V6_PRIVACY),
    Migration(7, "events", _V7_EVENTS),
]


def check_schema_version(path: str | Path, current: int, latest: int | None = None) -> None:
    """Refuse a store written by a newer build: its tables may mean what this build cannot know.

    Every reader (the CLI, the API's snapshots, ``xreid serve`` at start) opens through ``Store``,
    which refuses with this one message, so a future store is never half-read by one and refused by another.

    Raises:
        SchemaTooNew: when ``current`` is past ``latest`` (default: this build's last migration).
    """
    latest = len(MIGRATIONS) if latest is None else latest
    if current > latest:
        raise SchemaTooNew(f"store {path} has schema v{current}, newer than this build (v{latest}); upgrade xreid")


def check_migrations(migrations: Sequence[Migration]) -> None:
    """Versions must be 1, 2, 3, ... in order, without gaps."""
    for i, m in enumerate(migrations, start=1):
        if m.version != i:
            raise StoreError(f"migration list is out of order: position {i} holds version {m.version} ({m.name})")


def split_sql(script: str) -> list[str]:
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
