"""The ``event_log`` table: every announced event, written with the facts it announces, tailed by the API.

The matcher writes an event's row in the same transaction as the rows of the fact it announces
(``append``), so the log never holds an event whose fact was rolled back, and it publishes to MQTT
and webhooks only after that commit. The API, a separate process, reads the rows after the last
sequence number it saw (``after``) and serves them as Server-Sent Events: this works the same over
an embedded replay's store file and a distributed matcher's, with no broker between them.

Rows keep the event's JSON text as published (``body``); the store does not parse it (it knows no
event types: ``pipeline.events`` sits above it). The writer names the tracks and identities an event
mentions (``LogRow.tracks``, ``identities``, kept in ``event_log_refs``) so that forgetting a person or a
track, and the retention cascade of tracks, can delete every event that mentions them
(``delete_mentioning``) without reading the JSON. ``seq`` only grows, so a reader's position stays
valid while the writer trims the oldest rows (``trim``) or deletes some (retention, forget).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pipeline.store.base import Store, marks
from pipeline.store.schema import V_EVENTS

_CHUNK = 500   # values per IN (...) list


@dataclass(frozen=True)
class LogRow:
    """One logged event: its id, kind, time (UTC epoch seconds) and JSON text; ``seq`` once stored.

    ``tracks`` (uids) and ``identities`` are what the event mentions, given by the writer (not read back).
    """

    event_id: str
    kind: str
    ts: float
    body: str
    seq: int = 0
    tracks: tuple[str, ...] = ()
    identities: tuple[int, ...] = ()


def has_log(store: Store) -> bool:
    return store.schema_version >= V_EVENTS


def append(store: Store, rows: Sequence[LogRow], logged_at: float | None = None) -> None:
    """Add events; one already logged (same ``event_id``: the same fact announced again) is left as it was.

    Raises:
        StoreError: the store refused the write.
    """
    now = time.time() if logged_at is None else logged_at
    refs: list[tuple[int, str | None, int | None]] = []
    for r in rows:
        added = store.execute("INSERT INTO event_log (event_id, kind, ts, body, logged_at) VALUES (?, ?, ?, ?, ?) "
                              "ON CONFLICT (event_id) DO NOTHING RETURNING seq",
                              (r.event_id, r.kind, float(r.ts), r.body, now))
        if added:   # a fact logged before keeps the references it was logged with
            seq = int(added[0][0])
            refs += [(seq, uid, None) for uid in dict.fromkeys(r.tracks)]
            refs += [(seq, None, int(i)) for i in dict.fromkeys(r.identities)]
    if refs:
        store.execute_many("INSERT INTO event_log_refs (seq, track_uid, identity_id) VALUES (?, ?, ?)", refs)


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
        store.execute("DELETE FROM event_log_refs WHERE seq <= ?", (top - keep,))
        store.execute("DELETE FROM event_log WHERE seq <= ?", (top - keep,))
    return int(n)


def delete_older_than(store: Store, ts: float) -> int:
    """Delete events logged before ``ts`` (UTC epoch seconds), for retention; returns how many went.

    Opens no transaction (the retention sweep holds one).
    """
    if not has_log(store):
        return 0
    return _delete(store, [int(s) for (s,) in store.execute("SELECT seq FROM event_log WHERE logged_at < ?",
                                                              (float(ts),))])


def delete_mentioning(store: Store, track_uids: Iterable[str], identities: Iterable[int]) -> int:
    """Delete every event that mentions one of ``track_uids`` or ``identities`` (forget, and the retention
    cascade of tracks); returns how many went. Opens no transaction (the erasure holds one)."""
    if not has_log(store):
        return 0
    seqs: set[int] = set()
    for column, values in (("track_uid", list(dict.fromkeys(track_uids))),
                           ("identity_id", [int(i) for i in dict.fromkeys(identities)])):
        for i in range(0, len(values), _CHUNK):
            chunk = values[i:i + _CHUNK]
            seqs.update(int(s) for (s,) in store.execute(
                f"SELECT DISTINCT seq FROM event_log_refs WHERE {column} IN ({marks(len(chunk))})", chunk))
    return _delete(store, sorted(seqs))


def present(store: Store, event_ids: Sequence[str]) -> set[str]:
    """Which of ``event_ids`` the log still holds (a reader's copies of the others must go too)."""
    out: set[str] = set()
    for i in range(0, len(event_ids), _CHUNK):
        chunk = list(event_ids[i:i + _CHUNK])
        out.update(str(e) for (e,) in store.execute(
            f"SELECT event_id FROM event_log WHERE event_id IN ({marks(len(chunk))})", chunk))
    return out


def _delete(store: Store, seqs: Sequence[int]) -> int:
    for i in range(0, len(seqs), _CHUNK):
        chunk = list(seqs[i:i + _CHUNK])
        store.execute(f"DELETE FROM event_log_refs WHERE seq IN ({marks(len(chunk))})", chunk)
        store.execute(f"DELETE FROM event_log WHERE seq IN ({marks(len(chunk))})", chunk)
    return len(seqs)
