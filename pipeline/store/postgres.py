"""The PostgreSQL backend of the store (multi-node deployments): psycopg 3 over a connection pool.

Why a network database: a SQLite file cannot be shared between machines (WAL needs one host's shared
memory), so a deployment that runs the API on several nodes, or the matcher elsewhere, keeps its store
here. The table modules run unchanged: their SQLite SQL is translated by ``dialect.postgres_sql`` and
the migrations by ``dialect.postgres_ddl`` (vectors and thumbnails are ``bytea``).

* Connections: a ``psycopg_pool.ConnectionPool`` (autocommit; checked on checkout, so a connection
  that died with a server restart is replaced, not handed out). A statement outside a transaction
  borrows one for itself; a transaction or a snapshot pins one to its thread until it ends.
* Transactions: ``BEGIN`` … ``COMMIT`` (read committed; there is one writer). Snapshots are
  ``REPEATABLE READ READ ONLY``: a page and its total come from one view while the matcher commits.
* Outages: a connection refused or lost raises ``StoreUnreachable`` and is retried with capped
  exponential backoff and jitter (``runtime.backoff.Backoff``, as the Redis bus), for ``NetworkOptions.give_up_s``;
  ``unreachable_for_s`` tells health checks (degraded, not failed). Refused credentials or a missing
  database raise ``StoreRefused`` at once: retrying cannot fix them. Messages mask the password.
* Schemas: a store lives in its database's current schema (``public``); ``in_schema`` names another one
  of the same database (the query audit log keeps its own, ``pipeline/store/audit.py``), which a writer
  creates on first connect.
* Erased rows: PostgreSQL has no ``secure_delete``; ``flush_deleted`` vacuums the store's tables so
  the dead row versions are pruned from their pages and indexes now rather than at autovacuum's leisure
  (docs/privacy.md says what that does and does not guarantee).
* One writer: ``hold_writer_lock`` takes a session advisory lock on a connection kept out of the pool
  for the process's lifetime, and every statement of that store then runs on it, so nothing is written
  without the lock. A second matcher fails to take it and refuses to start. If the database restarts,
  the lock dies with the session and is taken again on the next statement; if another matcher took it
  meanwhile, ``WriterLockHeld`` stops this one.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from models.errors import StoreError
from pipeline.config.redact import redact_text
from pipeline.runtime.backoff import Backoff
from pipeline.store.base import (
    NetworkOptions,
    Store,
    StoreRefused,
    StoreUnreachable,
    WriterLockHeld,
    describe,
)
from pipeline.store.dialect import postgres_sql

log = logging.getLogger(__name__)

T = TypeVar("T")

# advisory lock keys (bigint, fixed): one writer per database, one migrating process at a time
WRITER_LOCK_KEY = 0x2F1C_8E4B_61A3_7D05
SCHEMA_LOCK_KEY = 0x2F1C_8E4B_61A3_7D06
_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)
_SEARCH_PATH = re.compile(r"-c\s*search_path=(\w+)")
# the server answered, and the answer will not change by retrying (libpq gives these as text, no SQLSTATE)
_REFUSED = ("password authentication failed", "authentication failed", "does not exist", "no pg_hba.conf entry",
            "permission denied", "password is required", "no password supplied", "invalid port number")


def _refused(e: Exception) -> bool:
    text = str(e)
    return any(marker in text for marker in _REFUSED)


def _one_line(e: Exception) -> str:
    return redact_text(" ".join(str(e).split()))


class PostgresStore(Store):
    """The store in a PostgreSQL database (see ``Store`` for the arguments)."""

    dialect = "postgresql"

    def _connect(self, location: str | Path, timeout_s: float, network: NetworkOptions) -> None:
        self.url = str(location)
        self.path = describe(self.url)
        self._timeout_s = timeout_s
        self._net = network
        self._backoff = Backoff(network.backoff_initial_s, network.backoff_max_s)   # the runtime's one retry policy
        self._down_since: float | None = None
        self._tx = threading.local()          # the connection a transaction or snapshot pinned
        self._writer: psycopg.Connection | None = None
        self._writer_held = False
        self._writer_mutex = threading.RLock()
        self._pool: ConnectionPool | None = None
        kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": max(2, round(timeout_s)),
                                  "application_name": "xreid"}
        # one direct connection first: refused credentials or a missing database are one clear line
        # now, not a pool that keeps retrying in the background
        self._retrying("connect", lambda: self._first_connection(kwargs))
        self._pool = ConnectionPool(self.url, kwargs=kwargs, min_size=1, max_size=max(2, network.pool_size),
                                    open=False, check=ConnectionPool.check_connection, timeout=timeout_s,
                                    configure=self._read_only if self.readonly else None,
                                    reconnect_timeout=max(2.0, network.backoff_max_s), name=f"xreid {self.path}")
        self._pool.open(wait=False)

    def _first_connection(self, kwargs: dict[str, Any]) -> None:
        """Connect once; a writer on a schema of its own (``in_schema``) creates it, so it can migrate."""
        with psycopg.connect(self.url, **kwargs) as conn:
            named = _SEARCH_PATH.findall(" ".join(v for k, v in parse_qsl(urlsplit(self.url).query) if k == "options"))
            if not named or self.readonly:
                return   # a reader of a schema not created yet sees version 0: an empty store
            try:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{named[-1]}"')   # the last -c wins, as in libpq
            except psycopg.errors.UniqueViolation:
                pass   # another process created it at the same moment
            except psycopg.OperationalError:
                raise   # the connection was lost: retried
            except psycopg.Error as e:
                raise StoreError(f"store {self.path}: cannot create schema {named[-1]}: {_one_line(e)}") from None

    @staticmethod
    def _read_only(conn: psycopg.Connection) -> None:
        conn.execute("SET default_transaction_read_only = on")

    # -- outages --------------------------------------------------------------------------------

    def _retrying(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()``, retried with capped exponential backoff while the database is unreachable."""
        started, attempt = time.monotonic(), 0
        while True:
            try:
                result = fn()
            except (psycopg.OperationalError, PoolTimeout) as e:
                if _refused(e):
                    raise StoreRefused(f"store {self.path} refused the connection: {_one_line(e)}") from None
                attempt += 1
                if self._down_since is None:
                    self._down_since = time.monotonic()
                waited = time.monotonic() - started
                if attempt == 1 or attempt % 10 == 0:
                    log.warning("store %s unreachable during %s (attempt %d, %.1fs): %s", self.path, what, attempt,
                                waited, _one_line(e))
                give_up, stop = self._net.give_up_s, self._net.stop
                if give_up is not None and waited >= give_up:
                    raise StoreUnreachable(f"store {self.path} unreachable for {waited:.0f}s: {_one_line(e)}") \
                        from None
                # capped doubling, +-50 % jitter: a fleet that lost the server does not retry in lockstep
                if stop is None:
                    time.sleep(self._backoff.delay_s(attempt))
                elif self._backoff.wait(attempt, stop):
                    raise StoreUnreachable(f"gave up {what}: shutting down while store {self.path} is unreachable") \
                        from None
                continue
            if self._down_since is not None:
                log.warning("store %s reachable again after %.1fs", self.path, time.monotonic() - self._down_since)
                self._down_since = None
            return result

    def unreachable_for_s(self) -> float:
        since = self._down_since
        return 0.0 if since is None else time.monotonic() - since

    def _checkout(self) -> psycopg.Connection:
        assert self._pool is not None
        pool = self._pool
        return self._retrying("checkout", lambda: pool.getconn())

    def _release(self, conn: psycopg.Connection) -> None:
        if self._pool is not None:
            self._pool.putconn(conn)   # a broken connection is discarded and replaced by the pool

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        """The connection for the next statement: the thread's transaction's, the writer's, or a borrowed one."""
        pinned = getattr(self._tx, "conn", None)
        if pinned is not None:
            yield pinned
            return
        if self._writer_held:
            with self._writer_mutex:
                yield self._writer_connection()
            return
        conn = self._checkout()
        try:
            yield conn
        finally:
            self._release(conn)

    def _exec(self, conn: psycopg.Connection, sql: str, params: Sequence[object] | None = ()) \
            -> tuple[list[tuple], list[str]]:
        """Run ``sql`` (already PostgreSQL's) on ``conn``; errors become ``StoreError``s naming the store.

        Inside a write transaction (pipeline mode) a write without ``RETURNING`` is only queued: its
        outcome, an error included, arrives with the next statement that reads, or at ``COMMIT``.
        """
        try:
            pipe = getattr(self._tx, "pipe", None)
            if pipe is not None and _WRITE.match(sql) and "RETURNING" not in sql.upper():
                conn.execute(sql, params)  # type: ignore[arg-type]
                return [], []
            cur = conn.execute(sql, params)  # type: ignore[arg-type]
            if pipe is not None:
                pipe.sync()   # this statement's answer (and the queued writes' before it) is needed now
            names = [d.name for d in cur.description or ()]
            return (cur.fetchall() if cur.description else []), names
        except psycopg.Error as e:
            raise self._error(conn, e) from None

    def _error(self, conn: psycopg.Connection, e: psycopg.Error) -> StoreError:
        if conn.broken:
            if self._down_since is None:
                self._down_since = time.monotonic()
            return StoreUnreachable(f"store {self.path}: lost the connection: {_one_line(e)}")
        return StoreError(f"store {self.path}: {_one_line(e)}")

    # -- statements -----------------------------------------------------------------------------

    def _read_version(self) -> int:
        # pg_class read under the statement's snapshot: to_regclass would consult this session's catalog
        # cache, which may still say "no meta" after another process's migration committed
        if not self._run("SELECT count(*) FROM pg_class WHERE relname = 'meta' AND relkind = 'r' "
                         "AND relnamespace = current_schema()::regnamespace", ())[0][0][0]:
            return 0   # no meta table: a fresh database
        rows = self._run("SELECT value FROM meta WHERE key = 'schema_version'", ())[0]
        return int(rows[0][0]) if rows else 0

    def _run(self, sql: str, params: Sequence[object]) -> tuple[list[tuple], list[str]]:
        with self._connection() as conn:
            return self._exec(conn, postgres_sql(sql), params)

    def stream(self, sql: str, batch: int = 1000) -> Iterator[list[tuple]]:
        conn = getattr(self._tx, "conn", None)
        if conn is None:
            raise StoreError(f"store {self.path}: stream() reads inside a snapshot (a server-side cursor)")
        try:
            with conn.cursor(name="xreid_stream") as cur:   # rows stay on the server until fetched
                cur.execute(postgres_sql(sql))
                while rows := cur.fetchmany(batch):
                    yield rows
        except psycopg.Error as e:
            raise StoreError(f"store {self.path}: {_one_line(e)}") from None

    def _run_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        with self._connection() as conn:
            try:
                with conn.cursor() as cur:
                    cur.executemany(postgres_sql(sql), rows)
            except psycopg.Error as e:
                raise self._error(conn, e) from None

    def _run_script(self, script: str) -> None:
        with self._connection() as conn:
            self._exec(conn, script, None)   # no parameters: psycopg sends the statements as they are

    @contextmanager
    def _begin(self, begin: str, lock_key: int | None = None, pipelined: bool = False) -> Iterator[None]:
        """One transaction on one connection; ``pipelined``: writes are sent without waiting for each
        answer (psycopg pipeline mode), so a batch of the matcher costs a few round trips, not one per row."""
        with self._connection() as conn:
            self._exec(conn, begin, None)
            self._tx.conn = conn
            try:
                if lock_key is not None:
                    self._exec(conn, "SELECT pg_advisory_xact_lock(%s)", (lock_key,))
                if pipelined:
                    try:
                        with conn.pipeline() as pipe:
                            self._tx.pipe = pipe
                            yield
                    except psycopg.Error as e:   # a queued write failed: raised at the pipeline's sync
                        raise self._error(conn, e) from None
                    finally:
                        self._tx.pipe = None
                else:
                    yield
            except BaseException:
                self._tx.conn = None
                if not conn.broken:
                    try:
                        conn.execute("ROLLBACK")
                    except psycopg.Error as e:
                        log.debug("rollback failed on store %s: %s", self.path, _one_line(e))
                raise
            self._tx.conn = None
            self._exec(conn, "COMMIT", None)   # lost here: the outcome is unknown; the caller must not ack

    def _write_tx(self, schema: bool = False) -> Any:
        # a migration step waits for any other process migrating the same database, then re-reads the version
        return self._begin("BEGIN", SCHEMA_LOCK_KEY if schema else None, pipelined=not schema)

    def _read_tx(self) -> Any:
        return self._begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    # -- the single writer ----------------------------------------------------------------------

    def hold_writer_lock(self) -> bool:
        with self._writer_mutex:
            self._writer_connection()
            self._writer_held = True
        return True

    def _writer_connection(self) -> psycopg.Connection:
        """The writer's own connection, holding the advisory lock (taken again after a reconnect)."""
        conn = self._writer
        if conn is not None and not conn.broken and not conn.closed:
            return conn
        again = conn is not None
        if conn is not None:
            self._writer = None
            self._release(conn)
        conn = self._checkout()
        try:
            self._take_writer_lock(conn, again)
        except BaseException:
            self._release(conn)
            raise
        self._writer = conn
        if again:
            log.warning("store %s: writer lock taken again after the connection was lost", self.path)
        return conn

    def _take_writer_lock(self, conn: psycopg.Connection, again: bool) -> None:
        if self._exec(conn, "SELECT pg_try_advisory_lock(%s)", (WRITER_LOCK_KEY,))[0][0][0]:
            return
        hi, lo = (WRITER_LOCK_KEY >> 32) & 0xFFFFFFFF, WRITER_LOCK_KEY & 0xFFFFFFFF
        rows = self._exec(conn, "SELECT a.pid, coalesce(host(a.client_addr), 'local socket'), a.application_name, "
                                "a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s",
                          (hi, lo))[0]
        holder = (f"backend pid {rows[0][0]} from {rows[0][1]} ({rows[0][2] or 'no name'}), since "
                  f"{rows[0][3]:%Y-%m-%d %H:%M:%S %Z}") if rows else "another session"
        if again:
            raise WriterLockHeld(f"store {self.path}: another writer took the writer lock while the database was "
                                 f"unreachable ({holder}); stopping this matcher")
        raise WriterLockHeld(f"store {self.path} already has a writer: its writer lock is held by {holder}; "
                             "run one matcher per store")

    # -- bulk copy ------------------------------------------------------------------------------

    def table_names(self) -> list[str]:
        return [str(r[0]) for r in self.execute("SELECT c.relname FROM pg_class c WHERE c.relkind = 'r' "
                                                "AND c.relnamespace = current_schema()::regnamespace ORDER BY c.oid")]

    def defer_constraints(self) -> None:
        self.execute("SET CONSTRAINTS ALL DEFERRED")   # the foreign keys are DEFERRABLE (dialect.postgres_ddl)

    def after_bulk_insert(self, table: str) -> None:
        for (col,) in self.execute("SELECT attname FROM pg_attribute WHERE attrelid = ?::regclass "
                                   "AND attidentity <> '' AND NOT attisdropped", (table,)):
            self.execute(f'SELECT setval(pg_get_serial_sequence(?, ?), coalesce(max("{col}"), 0) + 1, false) '
                         f'FROM "{table}"', (table, col))

    def refresh_statistics(self) -> None:
        for table in self.table_names():
            self.execute(f'VACUUM (ANALYZE) "{table}"')   # autocommit: VACUUM cannot run inside a transaction

    def flush_deleted(self) -> bool:
        """No ``secure_delete`` here: vacuum the tables so erased rows leave their pages and indexes now.

        Plain ``VACUUM`` (not ``FULL``, whose exclusive lock would stall every API reader): it prunes the
        dead row versions and their index entries now, not at autovacuum's leisure, and their space is
        reused; it does not overwrite the freed bytes in the table files, nor the WAL segments, archives
        and base backups that still hold them (docs/privacy.md). Runs outside a transaction (autocommit), on the writer's
        connection when it holds the lock; a table owned by another role is skipped with a warning.
        """
        if self.readonly:
            return True
        tables = [t for t in self.table_names() if t != "meta"]
        if tables:
            self.execute("VACUUM " + ", ".join(f'"{t}"' for t in tables))
        return True

    def close(self) -> None:
        with self._writer_mutex:
            conn, self._writer, self._writer_held = self._writer, None, False
            if conn is not None:
                if not conn.broken:
                    try:
                        conn.execute("SELECT pg_advisory_unlock(%s)", (WRITER_LOCK_KEY,))
                    except psycopg.Error as e:
                        log.debug("unlock failed on store %s: %s", self.path, _one_line(e))
                self._release(conn)
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def in_schema(url: str, schema: str) -> str:
    """``url`` with its sessions in ``schema`` of the same database (``search_path``, libpq ``options``).

    A ``Store`` on that URL keeps its own tables and ``meta`` there, apart from the store in ``public``;
    a writer creates the schema on first connect.
    """
    if not schema.replace("_", "").isalnum():
        raise StoreError(f"schema name must be letters, digits and _, got {schema!r}")
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "options"]
    options = " ".join(v for k, v in parse_qsl(parts.query) if k == "options")
    query.append(("options", f"{options} -csearch_path={schema}".strip()))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, quote_via=quote), parts.fragment))


def create_database(server_url: str, name: str) -> str:
    """Create the empty database ``name`` on the server of ``server_url`` (a role allowed to); its URL.

    For tests, benchmarks and first installs: a store needs a database of its own to migrate.

    Raises:
        StoreError: the server refused (the name taken, no CREATEDB right, unreachable).
    """
    if not name.replace("_", "").isalnum():
        raise StoreError(f"database name must be letters, digits and _, got {name!r}")
    try:
        with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as e:
        raise StoreError(f"cannot create database {name} on {describe(server_url)}: {_one_line(e)}") from None
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def drop_database(url: str) -> None:
    """Drop the database ``url`` names (its sessions are closed first), from the server's ``postgres`` database."""
    parts = urlsplit(url)
    name = parts.path.strip("/")
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, parts.fragment))
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.Error as e:
        raise StoreError(f"cannot drop database {name} on {describe(url)}: {_one_line(e)}") from None

