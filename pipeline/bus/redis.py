"""``Bus`` on Redis Streams: the distributed mode's transport between processes and machines.

Mapping onto Redis (see ``pipeline.bus.base`` for the contract both buses honour):

* ``publish`` = ``XADD`` with no ``MAXLEN``: Redis never trims an unread entry behind our back.
  ``trim_acked`` removes only entries every group has acknowledged (``XTRIM MINID``).
* ``read`` = ``XREADGROUP … >`` in batches; ``ack`` = ``XACK`` (callers ack after the durable write).
* Retention and erasure: ``trim_before`` = ``XTRIM MINID`` (entry ids are millisecond times),
  ``delete_dead_letters`` = ``XDEL`` on the dead-letter stream.
* ``claim_stale`` = ``XAUTOCLAIM`` of entries idle past a timeout; delivery counts come from
  ``XPENDING``; an entry handed out more than ``max_deliveries`` times goes to ``{stream}:dead``.
* Entries that are not ours at all (no payload field, payload over the size limit) are
  dead-lettered as soon as they are read, with the reason.

Every command goes through ``_call``: a lost connection is retried with exponential backoff and
jitter (never a busy loop, never a crash), and a server restart is noticed by its ``run_id``; a
consumer group that vanished with a non-persistent server is recreated and the loss logged and
counted. The URL's credentials never reach a log line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, AuthorizationError, OutOfMemoryError
from redis.retry import Retry

from models.errors import BusError, ContractError
from pipeline.bus.base import DeadLetter, Message, dead_stream
from pipeline.config.redact import redact_text, redact_url
from pipeline.runtime.backoff import Backoff

log = logging.getLogger(__name__)

T = TypeVar("T")
FIELD_DATA = b"d"
_FATAL_CONNECTION_ERRORS = (AuthenticationError, AuthorizationError)
# worth waiting for: the server is away (or still loading its AOF), or full until consumers trim
_TRANSIENT_ERRORS = (redis.ConnectionError, redis.TimeoutError, OutOfMemoryError)


class RedisBus:
    """A ``Bus`` on a Redis server (``redis://``, ``rediss://`` or ``unix://`` URL).

    Args:
        url: server URL; ``redis://user:password@host:port/db`` for ACL users, ``rediss://`` for TLS.
        max_deliveries: hand-outs after which ``claim_stale`` dead-letters an entry instead.
        max_payload_bytes: larger payloads are refused by ``publish`` and dead-lettered by ``read``.
        dead_payload_max_bytes: a dead letter keeps at most this prefix of the payload.
        socket_timeout_s: per-command network timeout; blocking reads wait less than this.
        backoff_initial_s, backoff_max_s: reconnect delays (doubling, with +-50% jitter).
        retry_timeout_s: an operation unreachable for this long raises ``BusError``; 0 = retry forever.
        stop_event: when set, pending retries give up at once (so SIGTERM is honoured during an outage).
    """

    def __init__(self, url: str, *, max_deliveries: int = 5, max_payload_bytes: int = 32 * 1024 * 1024,
                 dead_payload_max_bytes: int = 1024 * 1024, socket_timeout_s: float = 5.0,
                 connect_timeout_s: float = 3.0, backoff_initial_s: float = 0.1, backoff_max_s: float = 5.0,
                 retry_timeout_s: float = 0.0, stop_event: threading.Event | None = None,
                 client_name: str | None = None) -> None:
        self.safe_url = redact_url(url)
        self.max_deliveries = max_deliveries
        self.max_payload_bytes = max_payload_bytes
        self.dead_payload_max_bytes = dead_payload_max_bytes
        self._max_block_ms = max(1, int(socket_timeout_s * 1000) - 1000)
        self._backoff = Backoff(backoff_initial_s, backoff_max_s)
        self._retry_timeout_s = retry_timeout_s
        self._stop = stop_event if stop_event is not None else threading.Event()
        self._lock = threading.Lock()
        self._groups: set[tuple[str, str]] = set()
        self._claim_cursor: dict[tuple[str, str], str] = {}
        self._counters: Counter[str] = Counter()
        self._run_id: str | None = None
        self._closed = False
        self._down_since: float | None = None  # monotonic time of the first failure of the current outage
        try:
            # our own retry loop replaces redis-py's, so it can back off, log and honour stop_event
            self._client = redis.Redis.from_url(
                url, socket_timeout=socket_timeout_s, socket_connect_timeout=connect_timeout_s,
                retry=Retry(NoBackoff(), 0), retry_on_error=[], client_name=client_name,
                health_check_interval=0)
        except ValueError as e:
            raise BusError(f"invalid redis URL {self.safe_url}: {redact_text(str(e))}") from None
        try:
            self._run_id = self._server_run_id()
        except redis.RedisError:
            pass  # not up yet: the first command will wait for it with backoff

    # ------------------------------------------------------------------------------------------
    # resilience

    def _server_run_id(self) -> str:
        info = self._client.info("server")
        return str(info.get("run_id", ""))

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counters[key] += n

    def stats(self) -> dict[str, int]:
        """Counters since start: reconnects, server_restarts, groups_recreated, dead_lettered, …"""
        with self._lock:
            return dict(self._counters)

    def _call(self, what: str, fn: Callable[[redis.Redis], T]) -> T:
        """Run one command, riding out connection loss with capped exponential backoff and jitter."""
        if self._closed:
            raise BusError(f"bus {self.safe_url} is closed")
        started, failures = time.monotonic(), 0
        while True:
            try:
                result = fn(self._client)
            except _FATAL_CONNECTION_ERRORS as e:
                raise BusError(f"redis at {self.safe_url} refused our credentials: {redact_text(str(e))}") from None
            except _TRANSIENT_ERRORS as e:
                failures += 1
                self._count("out_of_memory" if isinstance(e, OutOfMemoryError) else "connection_failures")
                if self._down_since is None:
                    self._down_since = time.monotonic()
                waited = time.monotonic() - started
                if failures == 1 or failures % 10 == 0:
                    log.warning("redis %s unavailable during %s (attempt %d, %.1fs): %s; retrying",
                                self.safe_url, what, failures, waited, redact_text(str(e)))
                if self._retry_timeout_s and waited >= self._retry_timeout_s:
                    raise BusError(f"redis at {self.safe_url} unreachable for {waited:.0f}s during {what}") from None
                if self._stop.is_set() or self._closed:
                    raise BusError(f"gave up {what}: shutting down while redis at {self.safe_url} is unreachable") \
                        from None
                self._backoff.wait(failures, self._stop)
                continue
            except redis.ResponseError as e:
                if "NOGROUP" in str(e) and self._recreate_groups(what):
                    continue
                raise BusError(f"redis {what} failed: {redact_text(str(e))}") from None
            if failures:
                self._down_since = None
                self._on_reconnect(what, failures, time.monotonic() - started)
            return result

    def unreachable_for_s(self) -> float:
        """Seconds the server has been unreachable (0 when the last command got through), for health."""
        since = self._down_since
        return 0.0 if since is None else time.monotonic() - since

    def _on_reconnect(self, what: str, failures: int, outage_s: float) -> None:
        self._count("reconnects")
        log.warning("redis %s reachable again after %.1fs (%d failed attempts during %s)",
                    self.safe_url, outage_s, failures, what)
        try:
            run_id = self._server_run_id()
        except redis.RedisError:
            return
        if self._run_id is not None and run_id != self._run_id:
            self._count("server_restarts")
            log.warning("redis %s restarted (new run_id); entries not persisted by the server are lost",
                        self.safe_url)
        self._run_id = run_id

    def _recreate_groups(self, what: str) -> bool:
        """A group we created is gone (server restarted without persistence): recreate, report."""
        with self._lock:
            groups = sorted(self._groups)
        if not groups:
            return False
        recreated = 0
        for stream, group in groups:
            try:
                self._client.xgroup_create(stream, group, id="0", mkstream=True)
                recreated += 1
            except _TRANSIENT_ERRORS:
                return True  # gone again: retrying the command takes the backoff path
            except redis.ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise BusError(f"cannot recreate group {group} on {stream}: {e}") from None
        if not recreated:
            return False
        self._count("groups_recreated", recreated)
        log.error("redis %s lost %d consumer group(s) during %s (restart without persistence?): recreated; "
                  "entries published before the loss are gone", self.safe_url, recreated, what)
        return True

    # ------------------------------------------------------------------------------------------
    # Bus protocol

    def ensure_group(self, stream: str, group: str) -> None:
        with self._lock:
            self._groups.add((stream, group))

        def create(r: redis.Redis) -> None:
            try:
                r.xgroup_create(stream, group, id="0", mkstream=True)
            except redis.ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise

        self._call("XGROUP CREATE", create)

    def publish(self, stream: str, data: bytes) -> str:
        if len(data) > self.max_payload_bytes:
            raise ContractError(f"payload of {len(data)} bytes exceeds the bus limit of {self.max_payload_bytes}")
        entry_id = self._call("XADD", lambda r: r.xadd(stream, {FIELD_DATA: data}))
        return _s(entry_id)

    def read(self, stream: str, group: str, consumer: str, count: int, block_ms: int = 0) -> list[Message]:
        # redis-py treats block=0 as "forever"; the contract's 0 means "do not wait"
        block = min(block_ms, self._max_block_ms) or None
        with self._lock:
            self._groups.add((stream, group))
        resp = self._call("XREADGROUP", lambda r: r.xreadgroup(group, consumer, {stream: ">"}, count=count,
                                                               block=block))
        entries = resp[0][1] if resp else []
        return self._admit(stream, group, [(eid, fields, 1) for eid, fields in entries])

    def _admit(self, stream: str, group: str, entries: list[tuple[Any, Any, int]]) -> list[Message]:
        """Turn raw entries into messages; dead-letter the ones that are not bus payloads at all."""
        out: list[Message] = []
        for eid, fields, deliveries in entries:
            entry_id = _s(eid)
            fields = fields or {}
            data = fields.get(FIELD_DATA)
            if data is None:
                names = sorted(_s(k) for k in fields)[:8]
                msg = Message(entry_id, b"", deliveries)
                self.dead_letter(stream, group, msg, f"entry has no payload field 'd' (fields: {names})")
            elif len(data) > self.max_payload_bytes:
                self.dead_letter(stream, group, Message(entry_id, data, deliveries),
                                 f"payload of {len(data)} bytes exceeds the bus limit of {self.max_payload_bytes}")
            else:
                out.append(Message(entry_id, data, deliveries))
        return out

    def ack(self, stream: str, group: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        return int(self._call("XACK", lambda r: r.xack(stream, group, *ids)))

    def claim_stale(self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int) -> list[Message]:
        key = (stream, group)
        with self._lock:
            self._groups.add(key)
        start = self._claim_cursor.get(key, "0-0")
        claimed: list[tuple[Any, Any]] = []
        while True:  # one XAUTOCLAIM scans a window of the PEL; continue until something or a full pass
            cursor, entries, deleted = self._call(
                "XAUTOCLAIM", lambda r, s=start: _autoclaim(r, stream, group, consumer, min_idle_ms, s, count))
            if deleted:
                self._count("deleted_while_pending", len(deleted))
                log.error("stream %s: %d pending entries were deleted before %s processed them", stream,
                          len(deleted), group)
            claimed.extend(e for e in entries if e[0] is not None)
            wrapped = cursor in ("0-0", "0")
            self._claim_cursor[key] = "0-0" if wrapped else cursor
            if claimed or wrapped or start == cursor:
                break
            start = cursor
        if not claimed:
            return []
        deliveries = self._deliveries(stream, group, [_s(eid) for eid, _ in claimed])
        live: list[tuple[Any, Any, int]] = []
        for eid, fields in claimed:
            n = deliveries.get(_s(eid), 1)
            if n > self.max_deliveries:
                data = (fields or {}).get(FIELD_DATA, b"")
                self.dead_letter(stream, group, Message(_s(eid), data, n),
                                 f"delivered {n} times without being acked (max_deliveries={self.max_deliveries})")
            else:
                live.append((eid, fields, n))
        self._count("reclaimed", len(live))
        return self._admit(stream, group, live)

    def _deliveries(self, stream: str, group: str, ids: list[str]) -> dict[str, int]:
        def query(r: redis.Redis) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for i in ids:
                pipe.xpending_range(stream, group, min=i, max=i, count=1)
            return pipe.execute()

        out: dict[str, int] = {}
        for rows in self._call("XPENDING", query):
            for row in rows:
                out[_s(row["message_id"])] = int(row["times_delivered"])
        return out

    def dead_letter(self, stream: str, group: str, msg: Message, reason: str) -> None:
        fields = {
            FIELD_DATA: msg.data[:self.dead_payload_max_bytes],
            b"reason": reason.encode("utf-8", "replace"),
            b"source_id": msg.id.encode(),
            b"group": group.encode(),
            b"deliveries": str(msg.deliveries).encode(),
            b"size": str(len(msg.data)).encode(),
            b"ts": repr(time.time()).encode(),
        }

        def move(r: redis.Redis) -> None:
            pipe = r.pipeline(transaction=True)  # the dead copy and the ack land together or not at all
            pipe.xadd(dead_stream(stream), fields)
            pipe.xack(stream, group, msg.id)
            pipe.execute()

        self._call("dead-letter", move)
        self._count("dead_lettered")
        log.warning("dead-lettered stream=%s group=%s entry=%s: %s", stream, group, msg.id, reason)

    def dead_letters(self, stream: str, count: int = 100) -> list[DeadLetter]:
        rows = self._call("XRANGE", lambda r: r.xrange(dead_stream(stream), "-", "+", count=count))
        out = []
        for eid, f in rows:
            out.append(DeadLetter(id=_s(eid), source_id=_s(f.get(b"source_id", b"")), data=f.get(FIELD_DATA, b""),
                                  reason=_s(f.get(b"reason", b"")), size=int(f.get(b"size", b"0") or 0)))
        return out

    def pending(self, stream: str, group: str) -> int:
        def query(r: redis.Redis) -> int:
            try:
                return int(r.xpending(stream, group)["pending"])
            except redis.ResponseError as e:
                if "NOGROUP" in str(e) or "no such key" in str(e):
                    return 0
                raise

        return self._call("XPENDING", query)

    def lag(self, stream: str, group: str) -> int:
        def query(r: redis.Redis) -> int:
            for g in _groups(r, stream):
                if _s(g["name"]) != group:
                    continue
                if g.get("lag") is not None:
                    return int(g["lag"])
                # lag is unknown after deletions: count what follows the last delivered id
                return len(r.xrange(stream, "(" + _s(g["last-delivered-id"]), "+"))
            return int(r.xlen(stream))

        return self._call("XINFO GROUPS", query)

    def length(self, stream: str) -> int:
        return int(self._call("XLEN", lambda r: r.xlen(stream)))

    def trim_acked(self, stream: str) -> int:
        """Delete entries every group of ``stream`` has acknowledged; returns how many went.

        Entries not yet delivered to, or still pending in, any group are never touched. A stream
        without groups is left alone (nobody has consumed anything).
        """
        def query(r: redis.Redis) -> int:
            groups = _groups(r, stream)
            if not groups:
                return 0
            bounds = []
            for g in groups:
                summary = r.xpending(stream, g["name"])
                if summary["pending"]:
                    bounds.append(_parse_id(_s(summary["min"])))
                else:
                    ms, seq = _parse_id(_s(g["last-delivered-id"]))
                    bounds.append((ms, seq + 1))
            ms, seq = min(bounds)
            if (ms, seq) <= (0, 1):
                return 0
            return int(r.xtrim(stream, minid=f"{ms}-{seq}", approximate=False))

        return self._call("XTRIM", query)

    def trim_before(self, stream: str, before_ms: int) -> int:
        """``XTRIM stream MINID before_ms-0``: exact, so nothing at or after the horizon goes."""
        if before_ms <= 0:
            return 0
        return int(self._call("XTRIM", lambda r: r.xtrim(stream, minid=f"{int(before_ms)}-0", approximate=False)))

    def delete_dead_letters(self, stream: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        return int(self._call("XDEL", lambda r: r.xdel(dead_stream(stream), *ids)))

    def close(self) -> None:
        self._closed = True
        self._stop.set()
        self._client.close()


def _autoclaim(r: redis.Redis, stream: str, group: str, consumer: str, min_idle_ms: int, start: str,
               count: int) -> tuple[str, list[Any], list[Any]]:
    resp = r.xautoclaim(stream, group, consumer, min_idle_ms, start_id=start, count=count)
    cursor = _s(resp[0])
    entries = resp[1] or []
    deleted = resp[2] if len(resp) > 2 else []
    return cursor, entries, deleted


def _parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _groups(r: redis.Redis, stream: str) -> list[dict]:
    """``XINFO GROUPS`` of ``stream``; a stream that does not exist has none."""
    try:
        return r.xinfo_groups(stream)
    except redis.ResponseError as e:
        if "no such key" in str(e):
            return []
        raise
