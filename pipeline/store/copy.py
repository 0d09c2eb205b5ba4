"""``xreid store copy``: every table of one store into a new one, SQLite to PostgreSQL and back.

Moving an embedded deployment onto PostgreSQL (or taking a PostgreSQL store home as one file) is a
copy, not a migration: the destination is created at the source's schema version, every table is
copied inside one destination transaction from one consistent read of the source (a running matcher
may keep writing the source), the row counts of both are compared, and only then is the destination
migrated forward to this build's schema. Foreign keys are checked at the commit, since rows arrive
table by table (identities name each other through merges), and a PostgreSQL destination's id
sequences are moved past the copied ids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from models.errors import StoreError
from pipeline.store.base import NetworkOptions, Store
from pipeline.store.schema import MIGRATIONS

log = logging.getLogger(__name__)

BATCH = 1000   # rows per insert round (thumbnails make rows of a few kB)


@dataclass(frozen=True)
class CopyResult:
    """What was copied: rows per table (``meta`` left out), the schema version copied and the one reached."""

    source: str
    destination: str
    rows: dict[str, int]
    version: int
    migrated_to: int


def copy_store(src: str, dst: str, network: NetworkOptions | None = None, batch: int = BATCH) -> CopyResult:
    """Copy the store at ``src`` into ``dst`` (a new SQLite file or an empty PostgreSQL database).

    Raises:
        StoreError: the source is empty or newer than this build, the destination already holds
            rows, a table is unknown to this build, or the counts differ after the copy (then
            nothing of it was committed).
    """
    with Store(src, readonly=True, network=network) as source:
        version = source.schema_version
        if version == 0:
            raise StoreError(f"store {source.path} is empty (no schema yet): nothing to copy")
        with Store(dst, migrations=MIGRATIONS[:version], network=network) as target, source.snapshot():
            tables = _plan(source, target)
            rows: dict[str, int] = {}
            with target.transaction():
                target.defer_constraints()
                for table, columns in tables:
                    rows[table] = _copy_table(source, target, table, columns, batch)
                    target.after_bulk_insert(table)
                _copy_meta(source, target)
                _verify(source, target, rows)
        path = target.path
    with Store(dst, network=network) as migrated:   # forward to this build's schema, outside the copy
        reached = migrated.schema_version
        migrated.refresh_statistics()   # a fresh load has none: the first queries would scan
    log.info("copied store %s to %s: %d rows in %d tables (schema v%d, now v%d)", source.path, path,
             sum(rows.values()), len(rows), version, reached)
    return CopyResult(source.path, path, rows, version, reached)


def _plan(source: Store, target: Store) -> list[tuple[str, list[str]]]:
    """Each table to copy with its columns; refuses a destination holding rows or missing a table."""
    known = set(target.table_names())
    plan = []
    for table in source.table_names():
        if table == "meta":
            continue
        if table not in known:
            raise StoreError(f"store {source.path} has a table {table!r} that store {target.path} at schema "
                             f"v{target.schema_version} does not: was it added by hand?")
        have = int(target.execute(f'SELECT count(*) FROM "{table}"')[0][0])
        if have:
            raise StoreError(f"store {target.path} is not empty ({have} rows in {table}): copy into a new file "
                             "or an empty database")
        columns = source.columns(table)
        missing = sorted(set(columns) - set(target.columns(table)))
        if missing:
            raise StoreError(f"store {target.path}: table {table} lacks columns {missing} of the source")
        plan.append((table, columns))
    return plan


def _copy_table(source: Store, target: Store, table: str, columns: list[str], batch: int) -> int:
    names = ", ".join(f'"{c}"' for c in columns)
    insert = f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})'
    n = 0
    for rows in source.stream(f'SELECT {names} FROM "{table}"', batch):
        target.execute_many(insert, rows)
        n += len(rows)
    return n


def _copy_meta(source: Store, target: Store) -> None:
    """Keys other features keep in ``meta``; the schema version is the destination's own."""
    for key, value in source.execute("SELECT key, value FROM meta WHERE key <> 'schema_version'"):
        target.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                       "value = excluded.value", (key, value))


def _verify(source: Store, target: Store, copied: dict[str, int]) -> None:
    for table, n in copied.items():
        src_n = int(source.execute(f'SELECT count(*) FROM "{table}"')[0][0])
        dst_n = int(target.execute(f'SELECT count(*) FROM "{table}"')[0][0])
        if not src_n == dst_n == n:
            raise StoreError(f"copy of table {table} does not verify: source {src_n} rows, copied {n}, "
                             f"destination {dst_n}; nothing was committed")
