"""How the API learns of events: it tails the store's event log into its SSE broadcaster.

The API is its own process, beside an embedded replay or the distributed matcher, and it already
reads their store. The matcher writes each event's row in the transaction of the fact it announces
(``pipeline/store/event_log.py``), so tailing that table gives the API every event, in order, only
for committed facts, in both modes and without a broker or Redis of its own; the cost is up to one
poll interval (``events.api_poll_s``, 0.25 s) of latency. On start the newest ``sse_replay`` events
prime the broadcaster's replay ring, so a dashboard reconnecting with ``Last-Event-ID`` after an API
restart misses nothing the log still holds. After an erasure (``xreid forget``, which deletes the
events naming the erased tracks and identities from the log) the ring loses those events too.
"""

from __future__ import annotations

import logging
import threading

from models.errors import ContractError
from pipeline.api.queries import StoreReader, StoreUnavailable
from pipeline.events.event import Event
from pipeline.events.sse import SseBroadcaster
from pipeline.store import erasure, event_log

log = logging.getLogger(__name__)

BATCH = 500   # rows read per poll at most (a burst is drained over consecutive polls without waiting)


class EventTail:
    """A daemon thread that moves new event-log rows of the store into ``sse``.

    Args:
        reader: the API's store reader (read-only snapshots).
        sse: the broadcaster behind ``GET /events/stream``.
        poll_s: how often the log is read.
        prime: events of the log's tail replayed into the ring at start (``sse_replay``).

    Attributes:
        forwarded: events handed to ``sse``; ``skipped``: rows that were not valid events (counted, logged).
    """

    def __init__(self, reader: StoreReader, sse: SseBroadcaster, poll_s: float = 0.25, prime: int = 256) -> None:
        self.reader, self.sse, self.poll_s, self.prime = reader, sse, poll_s, prime
        self.last_seq: int | None = None   # None: not positioned yet (the store may not exist yet)
        self.forwarded = 0
        self.skipped = 0
        self.erased = 0                    # events dropped from the ring after an erasure
        self._erasure: int | None = None   # the newest executed erasure seen (its events were deleted)
        self._top = 0                      # the log's newest number at the last poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-tail", daemon=True)

    def start(self) -> EventTail:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                more = self.poll()
            except StoreUnavailable as e:   # not created yet, being migrated, locked: try again next time
                log.debug("event log not readable now: %s", e)
                more = False
            if not more:
                self._stop.wait(self.poll_s)

    def poll(self) -> bool:
        """Forward what was logged since the last poll; True when a full batch came (read again now)."""
        with self.reader.snapshot() as snap:
            store = snap.store
            if not event_log.has_log(store):
                return False
            top, done = event_log.last_seq(store), erasure.last_done_id(store)
            erased = self._erasure is not None and done > self._erasure
            # first read, or a new store file in its place (the newest number fell, and no erasure explains it)
            if self.last_seq is None or (top < self._top and not erased):
                rows = event_log.newest(store, self.prime) if self.prime else []
                self.last_seq, self._erasure, self._top = (rows[-1].seq if rows else top), done, top
                self.sse.prime(self._decode(rows))   # for Last-Event-ID only: they are not new
                return False
            if erased:   # an erasure deleted the events naming what it erased: the ring forgets them too
                self.erased += self.sse.retain(lambda ids: event_log.present(store, ids))
                self._erasure = done
            self._top = top
            rows = event_log.after(store, self.last_seq, BATCH)
            if rows:
                self.last_seq = rows[-1].seq
        for event in self._decode(rows):
            self.sse.submit(event)
            self.forwarded += 1
        return len(rows) >= BATCH

    def _decode(self, rows: list[event_log.LogRow]) -> list[Event]:
        out = []
        for row in rows:
            try:
                out.append(Event.from_json(row.body))
            except ContractError as e:
                self.skipped += 1
                log.warning("event log row %d is not a valid event, skipped: %s", row.seq, e)
        return out
