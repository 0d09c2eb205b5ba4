"""The SQLite connection behind the store: one file, WAL mode, the schema migrated forward on open.

One writer (the replay loop or the matcher) and many readers (API, CLI) share the file; WAL lets
readers run while the writer commits. Every statement of the store package runs through
``Store.execute`` / ``execute_many`` / ``query``, so this class is the one place a PostgreSQL backend
plugs in: the table modules (``tracks``, ``identities``, ``cameras``, ``calibration``,
``modality_events``) write ``?`` placeholders and portable SQL, and only the connection, the
pragmas, the placeholder style and the error mapping are SQLite's.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from models.errors import StoreError
from pipeline.store.schema import MIGRATIONS, Migration, check_migrations, check_schema_version, split_sql

log = logging.getLogger(__name__)


class Store:
    """The store at ``path`` (created and migrated to the latest schema on open).

    A ``Store`` owns one connection and may be shared by threads (calls are serialised by a lock).
    Separate processes open their own ``Store`` on the same file.

    Args:
        path: SQLite file; its parent directory is created. ``":memory:"`` works for tests.
        migrations: the schema steps (tests pass a longer list to exercise upgrades).
        readonly: open without migrating or writing (readers such as the API and the CLI).
        timeout_s: how long a statement waits on another connection's lock.

    Raises:
        StoreError: when the file cannot be opened, is not a database, is newer than this build
            (``SchemaTooNew``), or a migration fails (the failing step is rolled back).
    """

    def __init__(self, path: str | Path, migrations: Sequence[Migration] = MIGRATIONS, readonly: bool = False,
                 timeout_s: float = 10.0) -> None:
        self.path = str(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        self._pinned_version: int | None = None
        check_migrations(migrations)
        self._migrations = tuple(migrations)
        try:
            if readonly:
                uri = f"file:{quote(str(Path(self.path).resolve()))}?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None,
                                             timeout=timeout_s)
            else:
                if self.path != ":memory:":
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                             timeout=timeout_s)
            self._conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            if readonly:
                self._conn.execute("PRAGMA query_only = 1")
            else:
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = NORMAL")
                # deleted rows are overwritten, not left in free pages: erasure must not leave crops in the file
                self._conn.execute("PRAGMA secure_delete = ON")
            self._conn.execute("PRAGMA foreign_keys = ON")
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"cannot open store {self.path}: {e}") from None
        try:
            if readonly:
                self._check_version()
            else:
                self._migrate()
        except StoreError:
            self._conn.close()
            raise

    # -- schema ---------------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        """The schema version this file is at (0 for an empty file)."""
        if self._pinned_version is not None:
            return self._pinned_version
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
                        for stmt in split_sql(m.apply):
                            self._conn.execute(stmt)
                    else:
                        m.apply(self)
                    self._conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                                       "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(m.version),))
                    self._conn.execute("COMMIT")
                except (sqlite3.Error, StoreError) as e:
                    self._conn.execute("ROLLBACK")
                    raise StoreError(f"store {self.path}: migration v{m.version} ({m.name}) failed: {e}") from None
                log.info("store %s migrated to schema v%d (%s)", self.path, m.version, m.name)

    # -- access ---------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """Run several writes atomically: ``with store.transaction(): tracks.upsert_track(store, row); ...``.

        Yields the store itself; the other threads wait until the transaction ends.
        """
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[Store]:
        """Run several reads on one consistent view (a page and its total agree while the writer commits).

        Yields the store itself; the schema version is read once and held for the snapshot.
        """
        with self._lock:
            try:
                self._conn.execute("BEGIN")
            except sqlite3.Error as e:
                raise StoreError(f"store {self.path}: {e}") from None
            try:
                self._pinned_version = self.schema_version
                yield self
            finally:
                self._pinned_version = None
                self._conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        """Run one statement and return its rows.

        Raises:
            StoreError: the database refused the statement (the message names the store).
        """
        with self._lock:
            try:
                return self._conn.execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as e:
                raise StoreError(f"store {self.path}: {e}") from None

    def execute_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        """Run one statement once per row of parameters."""
        if not rows:
            return
        with self._lock:
            try:
                self._conn.executemany(sql, [tuple(r) for r in rows])
            except sqlite3.Error as e:
                raise StoreError(f"store {self.path}: {e}") from None

    def query(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        """Run one statement and return its rows as dicts keyed by column name."""
        with self._lock:
            try:
                cur = self._conn.execute(sql, tuple(params))
                names = [d[0] for d in cur.description or ()]
                return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
            except sqlite3.Error as e:
                raise StoreError(f"store {self.path}: {e}") from None

    def flush_deleted(self) -> bool:
        """Move committed changes from the WAL into the file and empty the WAL, so deleted rows (already
        overwritten in the file by ``secure_delete``) leave no copy in the WAL either; returns False when a
        reader's snapshot kept part of the WAL (a later call finishes the job)."""
        if self.readonly or self.path == ":memory:":
            return True
        with self._lock:
            try:
                busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as e:
                raise StoreError(f"store {self.path}: {e}") from None
            return not busy

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def marks(n: int) -> str:
    """``?, ?, ?`` for an ``IN (...)`` list of ``n`` values (``NULL`` when empty, which matches nothing)."""
    return ", ".join("?" * n) if n else "NULL"


def where_clause(conditions: Sequence[tuple[str, object | None]]) -> tuple[str, list[object]]:
    """`` WHERE a AND b`` (or ``""``) and its parameters, from ``(sql, value)`` pairs; ``None`` values are left out.

    Each ``sql`` holds one ``?`` for its value, so filters stay parameterised.
    """
    kept = [(sql, value) for sql, value in conditions if value is not None]
    if not kept:
        return "", []
    return " WHERE " + " AND ".join(sql for sql, _ in kept), [value for _, value in kept]
