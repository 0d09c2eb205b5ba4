"""The SQLite backend of the store (the embedded default): one file, WAL mode, one connection per ``Store``.

One writer (the replay loop or the matcher) and many readers (API, CLI) share the file; WAL lets
readers run while the writer commits. A ``SqliteStore`` owns one connection and serialises its
threads with a lock. ``Store(path)`` opens one (``base.py``); ``Store``, ``marks`` and ``where_clause``
are importable from here too, as before the PostgreSQL backend existed.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from models.errors import StoreError
from pipeline.store.base import NetworkOptions, Store, marks, where_clause
from pipeline.store.schema import split_sql

__all__ = ["SqliteStore", "Store", "marks", "where_clause"]


class SqliteStore(Store):
    """The store in one SQLite file (see ``Store`` for the arguments)."""

    dialect = "sqlite"

    def _connect(self, location: str | Path, timeout_s: float, network: NetworkOptions) -> None:
        self.path = str(location)
        self._lock = threading.RLock()
        try:
            if self.readonly:
                uri = f"file:{quote(str(Path(self.path).resolve()))}?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None,
                                             timeout=timeout_s)
            else:
                if self.path != ":memory:":
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                             timeout=timeout_s)
            self._conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            if self.readonly:
                self._conn.execute("PRAGMA query_only = 1")
            else:
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = NORMAL")
                # deleted rows are overwritten, not left in free pages: erasure must not leave crops in the file
                self._conn.execute("PRAGMA secure_delete = ON")
            self._conn.execute("PRAGMA foreign_keys = ON")
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"cannot open store {self.path}: {e}") from None

    def _read_version(self) -> int:
        with self._lock:
            try:
                row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            except sqlite3.OperationalError:
                return 0  # no meta table: a fresh file
            except sqlite3.DatabaseError as e:
                raise StoreError(f"{self.path} is not an xreid store: {e}") from None
            return int(row[0]) if row else 0

    def _run(self, sql: str, params: Sequence[object]) -> tuple[list[tuple], list[str]]:
        with self._lock:
            try:
                cur = self._conn.execute(sql, params)
                return cur.fetchall(), [d[0] for d in cur.description or ()]
            except sqlite3.Error as e:
                raise StoreError(f"store {self.path}: {e}") from None

    def stream(self, sql: str, batch: int = 1000) -> Iterator[list[tuple]]:
        with self._lock:
            try:
                cur = self._conn.execute(sql)
                while rows := cur.fetchmany(batch):
                    yield rows
            except sqlite3.Error as e:
                raise StoreError(f"store {self.path}: {e}") from None

    def _run_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        with self._lock:
            try:
                self._conn.executemany(sql, rows)
            except sqlite3.Error as e:
                raise StoreError(f"store {self.path}: {e}") from None

    def _run_script(self, script: str) -> None:
        for stmt in split_sql(script):   # not executescript: it would commit our transaction
            self._run(stmt, ())

    @contextmanager
    def _write_tx(self, schema: bool = False) -> Iterator[None]:
        # BEGIN IMMEDIATE takes the file's write lock at once: a second migrating process waits here
        with self._lock:
            self._run("BEGIN IMMEDIATE", ())
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._run("COMMIT", ())

    @contextmanager
    def _read_tx(self) -> Iterator[None]:
        with self._lock:
            self._run("BEGIN", ())
            try:
                yield
            finally:
                self._conn.execute("COMMIT")

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

    def table_names(self) -> list[str]:
        return [str(r[0]) for r in self.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                                "AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]

    def defer_constraints(self) -> None:
        self.execute("PRAGMA defer_foreign_keys = ON")

    def after_bulk_insert(self, table: str) -> None:
        """Nothing to do: SQLite numbers a new row past the largest id present."""

    def refresh_statistics(self) -> None:
        self.execute("ANALYZE")

    def hold_writer_lock(self) -> bool:
        return False

    def unreachable_for_s(self) -> float:
        return 0.0   # a local file is there or not at all; a missing one fails to open

