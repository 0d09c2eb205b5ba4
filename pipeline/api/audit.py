"""The audit trail of the API: every data request is recorded in the store before its answer leaves.

An ASGI middleware inside the read gate (only authenticated requests reach it), so it sees the route
template, the path and query parameters, the status and the client. The result count comes from the
route (``request.state.audit_count``; by default 1 for a success, 0 otherwise), and routes whose
parameters are not in the URL (``POST /search``'s form fields) add them as ``request.state.audit_params``;
uploaded images are never recorded.

Fail closed: a successful answer that cannot be recorded (a read-only store file, a full disk) is
replaced by 503 "audit log unavailable": nobody looks at people without leaving a trace. Error answers
pass whatever happens to their entry. The log is its own file beside a SQLite store
(``<stem>.audit.sqlite``), or the ``xreid_audit`` schema of a PostgreSQL store's database
(``pipeline/store/audit.py``), so an audited read never waits for the matcher's transactions: the API
still never writes the store itself, except to queue an erasure an admin asked for.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.errors import StoreError
from pipeline.api.auth import bearer, token_id
from pipeline.store.audit import AuditEntry, AuditFilter, audit_path, list_entries, open_audit, record
from pipeline.store.base import NetworkOptions, Store, is_postgres

log = logging.getLogger(__name__)

UNAUDITED = frozenset({"/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json"})
_UNAVAILABLE = json.dumps({"detail": "audit log unavailable: the query could not be recorded"}).encode()


class AuditLog:
    """The API's connection to the audit log of the store at ``store_location`` (shared by its requests).

    Args:
        store_location: the SQLite file or ``postgresql://`` URL the API reads.
        network: a PostgreSQL store's pool settings (``give_up_s`` 0: an unreachable database fails closed now).
    """

    def __init__(self, store_location: str | Path, network: NetworkOptions | None = None) -> None:
        self.store_location = str(store_location)
        self.shared = is_postgres(self.store_location)   # the database's audit schema, not a file
        self.network = network
        # one connection for the app's life: opening and closing one per request costs a WAL checkpoint each
        self._log: Store | None = None
        self._log_inode: int | None = None
        self._lock = threading.Lock()

    def record(self, entry: AuditEntry) -> bool:
        """Append ``entry``; False when it cannot be recorded (a missing store file has nothing to protect)."""
        if not self.shared and not Path(self.store_location).is_file():
            return True
        try:
            with self._lock:
                record(self._connection(), entry)
        except (StoreError, OSError) as e:
            log.error("audit entry for %s %s not recorded: %s", entry.method, entry.route, e)
            self.close()   # the next request opens it afresh
            return False
        return True

    def entries(self, f: AuditFilter, limit: int, offset: int) -> tuple[list[AuditEntry], int]:
        """A page of entries and the total (``GET /audit``), on the same connection.

        Raises:
            StoreError: the log cannot be read.
        """
        with self._lock:
            try:
                return list_entries(self._connection(), f, limit, offset)
            except (StoreError, OSError):
                self.close()
                raise

    def _connection(self) -> Store:
        """The open audit log, reopened when its file was replaced or removed (an operator rotating it);
        a PostgreSQL store's is opened once (its pool reconnects), and again after a failure."""
        if self.shared:
            if self._log is None:
                self._log = open_audit(self.store_location, network=self.network)
            return self._log
        path = audit_path(self.store_location)
        inode = path.stat().st_ino if path.is_file() else None
        if self._log is None or inode != self._log_inode:
            self.close()
            self._log = open_audit(self.store_location)
            self._log_inode = path.stat().st_ino
        return self._log

    def close(self) -> None:
        """Release the connection (and a PostgreSQL store's pool): after a failure, and at shutdown."""
        if self._log is not None:
            self._log.close()
            self._log, self._log_inode = None, None


class AuditTrail:
    """Record one ``audit_log`` row per request in ``audit_log`` (see the module doc).

    Args:
        audit_log: the app's connection to the log (``create_app`` closes it at shutdown).
        public_paths: served without a token and without personal data: not audited either.
        on_failure: called once per answer replaced for want of an audit entry (a metrics counter).
    """

    def __init__(self, app: ASGIApp, audit_log: AuditLog, public_paths: Iterable[str] = (),
                 on_failure: Callable[[], None] | None = None) -> None:
        self.app = app
        self.log = audit_log
        self.skip = UNAUDITED | frozenset(public_paths)
        self.on_failure = on_failure

    def audited(self, scope: Scope) -> bool:
        return scope["type"] == "http" and scope["path"] not in self.skip and not scope["path"].startswith("/static/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.audited(scope):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        held: Message | None = None
        replaced = False

        async def send_recorded(message: Message) -> None:
            nonlocal held, replaced
            if message["type"] == "http.response.start":
                held = message   # the status line waits for the entry
                return
            if held is not None:
                start, held = held, None
                status = int(start["status"])
                ok = await run_in_threadpool(self._write, scope, state, status)
                if not ok and status < 400:
                    replaced = True
                    if self.on_failure is not None:
                        self.on_failure()
                    await send({"type": "http.response.start", "status": 503, "headers": [
                        (b"content-type", b"application/json"), (b"content-length", str(len(_UNAVAILABLE)).encode())]})
                    await send({"type": "http.response.body", "body": _UNAVAILABLE})
                    return
                await send(start)
            if not replaced:
                await send(message)

        await self.app(scope, receive, send_recorded)

    def _write(self, scope: Scope, state: dict[str, Any], status: int) -> bool:
        """Append the entry; False when it cannot be recorded."""
        count = state.get("audit_count")
        route = getattr(scope.get("route"), "path", None) or scope["path"]
        params: dict[str, Any] = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                                                keep_blank_values=True))
        params.update(scope.get("path_params") or {})
        params.update(state.get("audit_params") or {})
        client = scope.get("client")
        entry = AuditEntry(time.time(), token_id(bearer(Headers(scope=scope))), scope.get("method", ""), route,
                           params, status, int(count) if count is not None else int(200 <= status < 300),
                           str(client[0]) if client else None)
        return self.log.record(entry)
