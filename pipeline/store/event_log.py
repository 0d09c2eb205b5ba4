"""The ``event_log`` table: every announced event, written with the facts it announces, tailed by the API.

The matcher writes an event's row in the same transaction as the rows of the fact it announces
(``append``), so the log never holds an event whose fact was rolled back, and it publishes to MQTT
and webhooks only after that commit. The API, a separate process, reads the rows after the last
sequence number it saw (``after``) and serves them as Server-Sent Events: this works the same over
an embedded replay's store file and a distributed matcher's, with no broker between them.

Rows keep the event's JSON text as published (``body``); the store does not parse it (it knows no
event types: ``pipeline.events`` sits above it). ``seq`` only grows, so a reader's position stays
valid while the writer trims the oldest rows (``trim``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.store.schema import V_EVENTS
from pipeline.store.sqlite import Store


@dataclass(frozen=True)
class LogRow:
    """One logged event: its id, kind, time (UTC epoch seconds) and JSON text; ``seq`` once stored."""

    event_id: str
    kind: str
    ts: float
    body: str
    seq: int = 0


def has_log(store: Store) -> bool:
    return store.schema_version >= V_EVENTS


def append(store: Store, rows: Sequence[LogRow], logged_at: float | None = None) -> None:
    """Add events; one already logged (same ``event_id``: the same fact announced again) is left as it was.

    Raises:
        StoreError: the store refused the write.
    """
    now = time.time() if logged_at is None else logged_at
    store.execute_many("INSERT INTO event_log (event_id, kind, ts, body, logged_at) VALUES (?, ?, ?, ?, ?) "
                       "ON CONFLICT (event_id) DO NOTHING",
                       [(r.event_id, r.kind, float(r.ts), r.body, now) for r in rows])


def after(store: Store, seq: int, limit: int = 500) -> list[LogRow]:
    """Events logged after ``seq``, oldest first, at most ``limit``."""
    rows = store.execute("SELECT event_id, kind, ts, body, seq FROM event_log WHERE seq > ? ORDER BY seq LIMIT ?",
                         (int(seq), int(limit)))
    return [LogRow(*r) for r in rows]


def newest(store: Store, n: int) -> list[LogRow]:
    """The newest ``n`` events, oldest first (a reader starting up primes its replay buffer with them)."""
    rows = store.execute("SELECT event_id, kind, ts, body, seq FROM event_log ORDER BY seq DESC LIMIT ?", (int(n),))
    return [LogRow(*r) for r in reversed(rows)]


def last_seq(store: Store) -> int:
    """The newest sequence number (0 for an empty log)."""
    return int(store.execute("SELECT coalesce(max(seq), 0) FROM event_log")[0][0])


def trim(store: Store, keep: int) -> int:
    """Delete all but the newest ``keep`` events; returns how many went."""
    top = last_seq(store)
    if top <= keep:
        return 0
    n = store.execute("SELECT count(*) FROM event_log WHERE seq <= ?", (top - keep,))[0][0]
    if n:
        store.execute("DELETE FROM event_log WHERE seq <= ?", (top - keep,))
    return int(n)


def delete_older_than(store: Store, ts: float) -> int:
    """Delete events logged before ``ts`` (UTC epoch seconds), for retention; returns how many went."""
    n = store.execute("SELECT count(*) FROM event_log WHERE logged_at < ?", (float(ts),))[0][0]
    if n:
        store.execute("DELETE FROM event_log WHERE logged_at < ?", (float(ts),))
    return int(n)
