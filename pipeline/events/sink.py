"""What every event publisher shares: the ``EventSink`` seam, its counters, the outbox and the retry policy.

The matcher must never wait on a network: a sink's ``submit`` only puts the event in memory and
returns; a background thread of the sink delivers it. What a sink cannot deliver yet waits in a
bounded ``Outbox``; when that is full the oldest event is dropped and counted, so a dead broker or
endpoint costs memory up to a fixed bound and never time on the caller's thread.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

from pipeline.events.event import Event
from pipeline.runtime.backoff import Backoff


@dataclass
class SinkCounters:
    """Since-start counts of one sink, read by workers to export as metrics.

    Attributes:
        submitted: events handed to the sink.
        published: events the far side acknowledged (MQTT PUBACK, HTTP 2xx, SSE: queued to a subscriber).
        dropped: events discarded unsent (outbox or subscriber queue full).
        retries: delivery attempts after the first (republish after reconnect, webhook retry).
        failed: events given up on after their last attempt (webhook: attempts exhausted or a 4xx).
        connected: the far side is reachable now (MQTT: session up; webhook: the last attempt got an
            answer, True before the first).
        reconnects: connections (re)established after the first.
    """

    submitted: int = 0
    published: int = 0
    dropped: int = 0
    retries: int = 0
    failed: int = 0
    connected: bool = False
    reconnects: int = 0

    def snapshot(self) -> dict[str, int | bool]:
        return asdict(self)


@runtime_checkable
class EventSink(Protocol):
    """Where events go. ``submit`` returns at once whatever the far side does."""

    name: str
    counters: SinkCounters

    def submit(self, event: Event) -> None:
        """Queue ``event`` for delivery; never blocks, never raises for a delivery problem."""
        ...

    def flush(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` until nothing is queued; True when the outbox emptied."""
        ...

    def close(self, timeout_s: float = 5.0) -> None:
        """Try to deliver what is queued for up to ``timeout_s``, then stop the sink's thread."""
        ...


class Outbox:
    """A bounded, ordered, thread-safe set of events awaiting delivery, keyed by ``event_id``.

    ``put`` never blocks: a full outbox drops its oldest event (counted in ``dropped``). An event
    leaves only through ``remove`` (delivered or given up on), so an event handed to a broker that
    then died stays here and is sent again. The same ``event_id`` put twice is kept once.
    """

    def __init__(self, maxlen: int, on_put: Callable[[], None] | None = None) -> None:
        if maxlen <= 0:
            raise ValueError(f"outbox maxlen must be > 0, got {maxlen}")
        self.maxlen = maxlen
        self.dropped = 0
        self._items: OrderedDict[str, Event] = OrderedDict()
        self._cond = threading.Condition()
        self._on_put = on_put

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, event: Event) -> Event | None:
        """Add ``event``; returns the event dropped to make room (None when nothing was)."""
        dropped = None
        with self._cond:
            if event.event_id in self._items:
                return None
            if len(self._items) >= self.maxlen:
                _, dropped = self._items.popitem(last=False)
                self.dropped += 1
            self._items[event.event_id] = event
            self._cond.notify_all()
        if self._on_put is not None:
            self._on_put()
        return dropped

    def first(self, n: int, skip: set[str] | frozenset[str] = frozenset()) -> list[Event]:
        """Up to ``n`` oldest events whose ids are not in ``skip`` (e.g. already in flight)."""
        out: list[Event] = []
        with self._cond:
            for eid, ev in self._items.items():
                if len(out) >= n:
                    break
                if eid not in skip:
                    out.append(ev)
        return out

    def remove(self, event_id: str) -> bool:
        """Forget ``event_id``; False when it was not here (dropped meanwhile, or removed twice)."""
        with self._cond:
            found = self._items.pop(event_id, None) is not None
            self._cond.notify_all()
            return found

    def contains(self, event_id: str) -> bool:
        with self._cond:
            return event_id in self._items

    def wait_nonempty(self, timeout_s: float) -> bool:
        """Block the sink's own thread until something is queued or ``timeout_s`` passes."""
        with self._cond:
            return self._cond.wait_for(lambda: bool(self._items), timeout=timeout_s)

    def wait_empty(self, timeout_s: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._items, timeout=timeout_s)

    def wake(self) -> None:
        """Wake a thread in ``wait_nonempty`` (used to stop it)."""
        with self._cond:
            self._cond.notify_all()


def publisher_backoff(initial_s: float, max_s: float) -> Backoff:
    """The publishers' retry policy: each wait drawn in [d/2, d], so ``backoff_max_s`` is a hard bound.

    The jitter spreads the retries of many publishers that lost the same broker at the same moment.
    """
    return Backoff(initial_s, max_s, spread=(0.5, 1.0))


def log_drop(logger: logging.Logger, sink: str, event: Event, reason: str, count: int) -> None:
    """Log one drop: at WARNING for the 1st, 10th and every 100th, so a dead far side cannot flood the log."""
    level = logging.WARNING if count in (1, 10) or count % 100 == 0 else logging.DEBUG
    logger.log(level, "events %s dropped event=%s kind=%s reason=%s (dropped so far: %d)", sink, event.event_id,
               event.kind, reason, count)


def enqueue(outbox: Outbox, counters: SinkCounters, event: Event, sink: str, logger: logging.Logger) -> None:
    """``submit`` of a sink with an outbox: queue ``event``; a full outbox drops its oldest, counted and logged."""
    counters.submitted += 1
    dropped = outbox.put(event)
    if dropped is not None:
        counters.dropped += 1
        log_drop(logger, sink, dropped, "outbox full", counters.dropped)
