"""The store's contract: one ``Store`` over SQLite (embedded) or PostgreSQL (multi-node), chosen by location.

``Store(location)`` opens the backend its location names, the way ``pathlib.Path`` picks its flavour:
a file path is a SQLite store (``sqlite.SqliteStore``, the embedded default); a ``postgresql://``
URL is a PostgreSQL database (``postgres.PostgresStore``). Both run the same table modules, the same
migrations and the same tests, so callers never ask which one they hold.

This class holds what the backends share: the migration loop, the schema version (pinned per thread
inside a snapshot), nesting of transactions, the row shapes of ``execute`` and ``query``. A backend
supplies its connection: how a statement runs, how a write transaction and a read snapshot begin and
end, and how it lists its tables for ``store copy``. Every statement of the store package runs through
``execute`` / ``execute_many`` / ``query``, written in SQLite's SQL with ``?`` placeholders; PostgreSQL
translates the few words that differ (``dialect.py``).
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from models.errors import StoreError
from pipeline.config.redact import redact_url
from pipeline.store.schema import MIGRATIONS, Migration, check_migrations, check_schema_version

log = logging.getLogger(__name__)

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_META_DDL = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
_SET_VERSION = ("INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value")


class StoreUnreachable(StoreError):
    """The database cannot be reached now (a network store restarting, a host down): retry later."""


class StoreRefused(StoreError):
    """The database answered but refused us (wrong credentials, no such database): retrying cannot help."""


class WriterLockHeld(StoreError):
    """Another process holds the store's single-writer lock (a second matcher on the same store)."""


def is_postgres(location: str | Path) -> bool:
    """Whether ``location`` names a PostgreSQL store (else it is a SQLite file path)."""
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


def describe(location: str | Path) -> str:
    """``location`` fit to print: a URL with its credentials masked, a path as it is."""
    return redact_url(location) if is_postgres(location) else str(location)


@dataclass(frozen=True)
class NetworkOptions:
    """How a network store connects and rides out an unreachable database (a file store ignores them).

    Args:
        pool_size: connections a process keeps at most (API threads read in parallel).
        backoff_initial_s, backoff_max_s: delays between connection attempts (doubling, +-50% jitter).
        give_up_s: fail an operation after this long unreachable (``StoreUnreachable``); ``None``: never
            (a worker waits the outage out), ``0``: at the first failure (an API request answers 503).
        stop: set at shutdown; a waiting operation gives up at once.
    """

    pool_size: int = 4
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 5.0
    give_up_s: float | None = None
    stop: threading.Event | None = None


class Store(ABC):
    """The store at ``location`` (created and migrated to the latest schema on open).

    A ``Store`` may be shared by threads. Separate processes open their own ``Store`` on the same location.

    Args:
        location: a SQLite file path (its parent directory is created; ``":memory:"`` works for tests)
            or a ``postgresql://user@host:port/db`` URL (the password from ``PGPASSWORD`` or the URL).
        migrations: the schema steps (tests pass a longer list to exercise upgrades).
        readonly: open without migrating or writing (readers such as the API and the CLI).
        timeout_s: how long a statement waits on another connection's lock (SQLite) or for a
            connection of the pool (PostgreSQL).
        network: pool size and outage policy of a network store (default: wait until the database returns).

    Raises:
        StoreError: when the store cannot be opened, is not a store, is newer than this build
            (``SchemaTooNew``), or a migration fails (the failing step is rolled back). PostgreSQL adds
            ``StoreRefused`` (credentials, missing database) and ``StoreUnreachable`` (gave up waiting).
    """

    dialect: ClassVar[str]
    path: str          # what messages name: the file, or the URL with its credentials masked
    location: str      # what was opened; a URL may hold a password: print ``path`` instead

    def __new__(cls, location: str | Path, *args: Any, **kwargs: Any) -> Store:
        if cls is Store:
            if is_postgres(location):
                from pipeline.store.postgres import PostgresStore
                cls = PostgresStore
            else:
                from pipeline.store.sqlite import SqliteStore
                cls = SqliteStore
        return super().__new__(cls)

    def __init__(self, location: str | Path, migrations: Sequence[Migration] = MIGRATIONS, readonly: bool = False,
                 timeout_s: float = 10.0, network: NetworkOptions | None = None) -> None:
        check_migrations(migrations)
        self.location = str(location)
        self.readonly = readonly
        self._migrations = tuple(migrations)
        self._local = threading.local()   # per thread: transaction depth, the version pinned by a snapshot
        self._migrated: int | None = None
        self._connect(location, timeout_s, network or NetworkOptions())
        try:
            if readonly:
                self._check_version()
            else:
                self._migrate()
                # a writer knows its version from here on: only a newer build could move it, and this
                # build reads none of a newer version's tables (saves a round trip per table-module call)
                self._migrated = self._read_version()
        except StoreError:
            self.close()
            raise

    # -- what a backend supplies ----------------------------------------------------------------

    @abstractmethod
    def _connect(self, location: str | Path, timeout_s: float, network: NetworkOptions) -> None:
        """Open the connection(s); sets ``self.path``."""

    @abstractmethod
    def _read_version(self) -> int:
        """The version in ``meta`` (0 when the store has no ``meta`` table yet)."""

    @abstractmethod
    def _run(self, sql: str, params: Sequence[object]) -> tuple[list[tuple], list[str]]:
        """Run one statement; its rows and column names."""

    @abstractmethod
    def stream(self, sql: str, batch: int = 1000) -> Iterator[list[tuple]]:
        """Rows of one query, ``batch`` at a time, without holding them all (call inside ``snapshot``)."""

    @abstractmethod
    def _run_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        """Run one statement once per row of parameters."""

    @abstractmethod
    def _run_script(self, script: str) -> None:
        """Run a migration script (several statements) inside the current transaction."""

    @abstractmethod
    def _write_tx(self, schema: bool = False) -> AbstractContextManager[None]:
        """Begin a write transaction, commit it on exit (roll back on error); ``schema``: a migration step,
        serialised against other processes migrating the same store."""

    @abstractmethod
    def _read_tx(self) -> AbstractContextManager[None]:
        """Begin a read-only transaction on one consistent view, end it on exit."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection(s) (and the writer lock)."""

    @abstractmethod
    def table_names(self) -> list[str]:
        """The store's tables (``meta`` included), oldest first, for ``store copy``."""

    @abstractmethod
    def defer_constraints(self) -> None:
        """Inside a transaction: check foreign keys at its commit (a bulk copy inserts in any order)."""

    @abstractmethod
    def after_bulk_insert(self, table: str) -> None:
        """After rows with explicit ids were copied into ``table``: the next generated id follows them."""

    @abstractmethod
    def refresh_statistics(self) -> None:
        """After a bulk load, outside a transaction: the planner's statistics (PostgreSQL: and the
        visibility map that lets ``count(*)`` read an index alone; autovacuum would get there later)."""

    @abstractmethod
    def hold_writer_lock(self) -> bool:
        """Claim the store for this process's writer (the matcher) until ``close``.

        Returns:
            Whether the backend enforces a single writer (PostgreSQL: an advisory lock). SQLite answers
            False: it serialises writers by its file lock, and one matcher per file stays the operator's rule.

        Raises:
            WriterLockHeld: another process holds it (the line says which).
        """

    @abstractmethod
    def flush_deleted(self) -> bool:
        """After an erasure or a retention sweep (outside a transaction): leave no readable copy of the
        deleted rows in the store's files that the backend can remove now.

        Returns:
            False when part of the work had to be left for later (SQLite: a reader's snapshot kept the WAL).
        """

    @abstractmethod
    def unreachable_for_s(self) -> float:
        """Seconds the database has been unreachable (0 when the last attempt got through), for health."""

    # -- schema ---------------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        """The schema version this store is at (0 for an empty one)."""
        pinned = getattr(self._local, "version", None)
        if pinned is not None:
            return pinned
        return self._migrated if self._migrated is not None else self._read_version()

    @property
    def latest_version(self) -> int:
        return len(self._migrations)

    def _check_version(self) -> int:
        current = self.schema_version
        check_schema_version(self.path, current, self.latest_version)
        return current

    def _migrate(self) -> None:
        self._check_version()
        for m in self._migrations:
            if m.version <= self.schema_version:
                continue
            try:
                with self._write_tx(schema=True):
                    self._local.depth = 1
                    try:
                        if self._read_version() >= m.version:
                            continue   # another process migrated while we waited for the lock
                        self._run(_META_DDL, ())
                        apply = m.for_dialect(self.dialect)
                        if isinstance(apply, str):
                            self._run_script(apply)
                        else:
                            apply(self)
                        self._run(_SET_VERSION, (str(m.version),))
                    finally:
                        self._local.depth = 0
            except StoreError as e:
                raise type(e)(f"store {self.path}: migration v{m.version} ({m.name}) failed: {e}") from None
            log.info("store %s migrated to schema v%d (%s)", self.path, m.version, m.name)

    # -- access ---------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """Run several writes atomically: ``with store.transaction(): tracks.upsert_track(store, row); ...``.

        Yields the store itself. Nested transactions join the outer one (it commits or rolls back the lot).
        """
        if getattr(self._local, "depth", 0):
            yield self
            return
        with self._write_tx():
            self._local.depth = 1
            try:
                yield self
            finally:
                self._local.depth = 0

    @contextmanager
    def snapshot(self) -> Iterator[Store]:
        """Run several reads on one consistent view (a page and its total agree while the writer commits).

        Yields the store itself; the schema version is read once and held for the snapshot.
        """
        if getattr(self._local, "depth", 0):
            yield self
            return
        with self._read_tx():
            self._local.depth = 1
            try:
                self._local.version = self._read_version()
                yield self
            finally:
                self._local.version = None
                self._local.depth = 0

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        """Run one statement (SQLite's SQL, ``?`` placeholders) and return its rows.

        Raises:
            StoreError: the database refused the statement (the message names the store).
        """
        return self._run(sql, tuple(params))[0]

    def execute_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        """Run one statement once per row of parameters."""
        if rows:
            self._run_many(sql, [tuple(r) for r in rows])

    def query(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        """Run one statement and return its rows as dicts keyed by column name."""
        rows, names = self._run(sql, tuple(params))
        return [dict(zip(names, r, strict=True)) for r in rows]

    def columns(self, table: str) -> list[str]:
        """The column names of ``table``, in their order (the copy and the schema tests compare them)."""
        return self._run(f'SELECT * FROM "{table}" LIMIT 0', ())[1]

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
