"""The schema is one list of migrations for both backends: every version means the same tables on each.

Other features add migrations in SQLite's words; these tests fail when one of them does not run on
PostgreSQL as translated (``pipeline/store/dialect.py``) and needs its own ``postgres`` text.
"""

from __future__ import annotations

import pytest

from pipeline.store.audit import AUDIT_SCHEMA, AuditEntry, list_entries, open_audit, record
from pipeline.store.base import Store
from pipeline.store.copy import copy_store
from pipeline.store.dialect import postgres_ddl, postgres_sql
from pipeline.store.schema import AUDIT_MIGRATIONS, MIGRATIONS

# what SQLite's type words become on PostgreSQL; anything else is a 32-bit or otherwise narrower column
PG_TYPES = {"bigint", "double precision", "text", "bytea"}


def _schema(store: Store) -> dict[str, list[str]]:
    return {t: store.columns(t) for t in store.table_names()}


def test_every_sqlite_migration_has_a_postgresql_counterpart_with_the_same_tables(tmp_path, pg_url):
    """Version by version, both backends reach the same tables with the same columns in the same order."""
    for m in MIGRATIONS:
        assert m.for_dialect("postgresql"), f"migration v{m.version} ({m.name}) has no PostgreSQL form"
        steps = MIGRATIONS[:m.version]
        with Store(tmp_path / f"v{m.version}.sqlite", migrations=steps) as lite, \
                Store(pg_url, migrations=steps) as pg:
            assert lite.schema_version == pg.schema_version == m.version
            assert _schema(pg) == _schema(lite), f"schemas differ at v{m.version} ({m.name})"
    with Store(pg_url, readonly=True) as reader:
        rows = reader.query("SELECT table_name, column_name, data_type FROM information_schema.columns "
                            "WHERE table_schema = current_schema()")
    narrow = [f"{r['table_name']}.{r['column_name']}: {r['data_type']}" for r in rows if r["data_type"] not in PG_TYPES]
    assert not narrow, f"columns PostgreSQL keeps in other types than SQLite's: {narrow}"


def test_the_audit_log_has_the_same_table_on_both_backends_in_its_own_schema_of_the_database(tmp_path, pg_url):
    """SQLite: ``<stem>.audit.sqlite`` beside the store; PostgreSQL: the ``xreid_audit`` schema, with its own
    ``meta``, so the store's tables, version and ``store copy`` never see it."""
    lite_store = tmp_path / "xreid.sqlite"
    with Store(lite_store), Store(pg_url) as pg_store:
        with open_audit(lite_store) as lite, open_audit(pg_url) as pg:
            assert lite.schema_version == pg.schema_version == len(AUDIT_MIGRATIONS)
            assert _schema(pg) == _schema(lite) == {"meta": ["key", "value"], "audit_log": [
                "id", "ts", "token_id", "method", "route", "params", "status", "result_count", "client"]}
            for log in (lite, pg):   # ids numbered by each backend
                record(log, AuditEntry(1.0, "abc", "GET", "/tracks", {"camera": "c1"}, 200, 3, "10.0.0.1"))
                record(log, AuditEntry(2.0, "abc", "GET", "/tracks", {}, 200, 0, None))
            assert [e.as_dict() for e in list_entries(lite)[0]] == [e.as_dict() for e in list_entries(pg)[0]]
            assert [e.id for e in list_entries(pg)[0]] == [2, 1]
        assert "audit_log" not in pg_store.table_names() and pg_store.schema_version == len(MIGRATIONS)
        with Store(pg_url, readonly=True) as reader:
            where = reader.query("SELECT table_schema FROM information_schema.tables WHERE table_name = 'audit_log'")
        assert where == [{"table_schema": AUDIT_SCHEMA}]
    copied = copy_store(pg_url, str(tmp_path / "copy.sqlite"))
    assert "erasures" in copied.rows and "audit_log" not in copied.rows


def test_two_processes_migrating_one_database_at_once_both_succeed(pg_url):
    import threading

    errors: list[Exception] = []

    def open_store() -> None:
        try:
            Store(pg_url).close()
        except Exception as e:  # noqa: BLE001 - the assertion below shows it
            errors.append(e)

    threads = [threading.Thread(target=open_store) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with Store(pg_url, readonly=True) as store:
        assert store.schema_version == len(MIGRATIONS)


@pytest.mark.parametrize("sqlite, postgres", [
    ("SELECT a FROM t WHERE b = ? AND c IN (?, ?)", "SELECT a FROM t WHERE b = %s AND c IN (%s, %s)"),
    ("SELECT 'a?b', \"odd?name\" FROM t WHERE x LIKE ?", "SELECT 'a?b', \"odd?name\" FROM t WHERE x LIKE %s"),
    ("SELECT '50%' || ? , 7 % 2", "SELECT '50%' || %s , 7 %% 2"),
    ("SET t_start = min(tracks.t_start, excluded.t_start), n = max(n, coalesce(?, 0))",
     "SET t_start = LEAST(tracks.t_start, excluded.t_start), n = GREATEST(n, coalesce(%s, 0))"),
    ("SELECT min(t_start), max(t_end), count(*) FROM tracks", "SELECT min(t_start), max(t_end), count(*) FROM tracks"),
    ("SELECT max(min(a, b)) FROM t", "SELECT max(LEAST(a, b)) FROM t"),
    ("SELECT 'it''s ?' , ?", "SELECT 'it''s ?' , %s"),
])
def test_statements_translate_placeholders_and_scalar_min_max_only_outside_quotes(sqlite, postgres):
    assert postgres_sql(sqlite) == postgres


def test_ddl_takes_postgresqls_type_words_and_leaves_quoted_text_alone():
    ddl = ("CREATE TABLE x (id INTEGER PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0, t REAL, b BLOB, "
           "s TEXT CHECK (s IN ('TEXT', 'REAL')), p INTEGER REFERENCES y (id));")
    assert postgres_ddl(ddl) == (
        "CREATE TABLE x (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0, "
        "t DOUBLE PRECISION, b BYTEA, s TEXT COLLATE \"C\" CHECK (s IN ('TEXT', 'REAL')), "
        "p BIGINT REFERENCES y (id) DEFERRABLE INITIALLY IMMEDIATE);")
    assert postgres_ddl("CREATE TABLE q (k INTEGER PRIMARY KEY AUTOINCREMENT)") == \
        "CREATE TABLE q (k BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY)"
    # the deferral goes after the referential actions, where PostgreSQL's grammar wants it
    assert postgres_ddl("w INTEGER NOT NULL REFERENCES w (id) ON DELETE CASCADE,") == \
        "w BIGINT NOT NULL REFERENCES w (id) ON DELETE CASCADE DEFERRABLE INITIALLY IMMEDIATE,"
