"""The query audit log: who looked at what, and how much they got back.

One row per API request that reads or erases personal data: the time, the token's id (a prefix of its
SHA-256, never the token), the method and route template, the parameters (what was asked for; never
an uploaded image), the status, the number of results and the client's address. The API writes it
(``pipeline/api/audit.py``); ``xreid audit`` and ``GET /audit`` read it; retention deletes old rows.

Where it lives (``audit_location``), with its own migrations (``schema.AUDIT_MIGRATIONS``):

* a SQLite store: its own SQLite file beside the store, ``<stem>.audit.sqlite`` (``audit_path``). Every
  query appends to it, and one SQLite file has one writer at a time, so in the store's file an audited
  read would wait for the matcher's transactions;
* a PostgreSQL store: the schema ``xreid_audit`` of the same database. PostgreSQL's writers do not
  exclude each other, so an audit insert never waits for the matcher; every API replica writes there,
  and no API needs a volume for it. Its own schema keeps it apart from the store's tables (its own
  ``meta`` and version; ``xreid store copy`` copies the store, not the log).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.errors import StoreError
from pipeline.store.base import NetworkOptions, Store, is_postgres, where_clause
from pipeline.store.schema import AUDIT_MIGRATIONS

MAX_PARAMS_CHARS = 2000   # a query string is short; anything longer is cut (and says so)
AUDIT_SCHEMA = "xreid_audit"   # a PostgreSQL store's audit log: this schema of the store's database


@dataclass(frozen=True)
class AuditEntry:
    """One audited request.

    Attributes:
        ts: UTC epoch seconds when the answer was ready.
        token_id: ``sha256(token)[:12]``, ``"none"`` when the API runs without auth.
        route: the route template (``/identities/{identity_id}``), so entries group by route.
        params: path and query parameters (and a search's form fields), as given.
        result_count: items answered (a page's length, 1 for one object, 0 for an error).
        client: the peer's address, as the server saw it.
    """

    ts: float
    token_id: str
    method: str
    route: str
    params: Mapping[str, Any]
    status: int
    result_count: int
    client: str | None
    id: int | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.ts) or not self.token_id or not self.route:
            raise StoreError("an audit entry needs a finite time, a token id and a route")

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "ts": self.ts, "token_id": self.token_id, "method": self.method, "route": self.route,
                "params": dict(self.params), "status": self.status, "result_count": self.result_count,
                "client": self.client}


def audit_path(store_path: str | Path) -> Path:
    """The audit log of the store at ``store_path`` (``xreid-out/xreid.sqlite`` -> ``xreid-out/xreid.audit.sqlite``)."""
    p = Path(store_path)
    return p.with_name(p.stem + ".audit.sqlite")


def audit_location(store_location: str | Path) -> str | Path:
    """Where the audit log of the store at ``store_location`` lives (see the module doc)."""
    if is_postgres(store_location):
        from pipeline.store.postgres import in_schema

        return in_schema(str(store_location), AUDIT_SCHEMA)
    return audit_path(store_location)


def audit_exists(store_location: str | Path) -> bool:
    """Whether there may be entries to read (a SQLite store's log file is made by the first query; a
    PostgreSQL store's schema is always looked at: an empty or absent one reads as no entries)."""
    return is_postgres(store_location) or audit_path(store_location).is_file()


def open_audit(store_location: str | Path, readonly: bool = False, network: NetworkOptions | None = None) -> Store:
    """The audit log of the store at ``store_location``, created (and migrated) on first write.

    Args:
        network: a PostgreSQL store's pool and outage policy (the API's: answer now, 503 when down).

    Raises:
        StoreError: it cannot be opened (for reading a SQLite store's: it does not exist yet).
    """
    if readonly and not audit_exists(store_location):
        raise StoreError(f"no audit log at {audit_path(store_location)}: nothing was queried yet")
    return Store(audit_location(store_location), migrations=AUDIT_MIGRATIONS, readonly=readonly,
                 network=network)


def _params_json(params: Mapping[str, Any]) -> str:
    text = json.dumps(dict(params), sort_keys=True, default=str, separators=(",", ":"))
    if len(text) > MAX_PARAMS_CHARS:
        text = json.dumps({"truncated": text[:MAX_PARAMS_CHARS]})
    return text


def record(store: Store, e: AuditEntry) -> None:
    """Append one entry to an audit log opened with ``open_audit``.

    Raises:
        StoreError: the store cannot take it (read-only, older schema, disk full): the caller must not
            answer as if the query had been recorded.
    """
    store.execute("INSERT INTO audit_log (ts, token_id, method, route, params, status, result_count, client) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                  (float(e.ts), e.token_id, e.method, e.route, _params_json(e.params), int(e.status),
                   int(e.result_count), e.client))


@dataclass(frozen=True)
class AuditFilter:
    """Which entries to list; times are UTC epoch seconds, inclusive."""

    t_from: float | None = None
    t_to: float | None = None
    token_id: str | None = None
    route: str | None = None


def list_entries(store: Store, f: AuditFilter = AuditFilter(), limit: int = 100,
                 offset: int = 0) -> tuple[list[AuditEntry], int]:
    """Entries passing ``f``, newest first, and how many pass in all."""
    if store.schema_version < 1:
        return [], 0
    where, params = where_clause([("ts >= ?", f.t_from), ("ts <= ?", f.t_to), ("token_id = ?", f.token_id),
                                  ("route = ?", f.route)])
    total = int(store.execute(f"SELECT count(*) FROM audit_log{where}", params)[0][0])
    rows = store.execute("SELECT id, ts, token_id, method, route, params, status, result_count, client "
                         f"FROM audit_log{where} ORDER BY ts DESC, id DESC LIMIT ? OFFSET ?",
                         [*params, int(limit), int(offset)])
    return [AuditEntry(float(ts), str(tok), str(m), str(r), json.loads(str(p)), int(s), int(n),
                       None if c is None else str(c), int(i))
            for i, ts, tok, m, r, p, s, n, c in rows], total


def delete_before(store: Store, before: float) -> int:
    """Delete entries older than ``before`` (retention); returns how many."""
    if store.schema_version < 1:
        return 0
    return len(store.execute("DELETE FROM audit_log WHERE ts < ? RETURNING id", (float(before),)))
