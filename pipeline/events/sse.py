"""Server-Sent Events fan-out: the in-process broadcaster behind ``GET /events/stream``.

``submit`` (any thread, typically the matcher's) appends the event to a small replay ring and to
every subscriber's bounded queue; each subscriber is an async generator (``SseBroadcaster.stream``)
running in the API's event loop that yields ready-to-send SSE frames::

    id: 3f9c…
    event: track.started
    data: {"v":1,"kind":"track.started",…}

A subscriber that reads too slowly loses the oldest events of its queue, not the others' (counted;
the stream then carries a ``stream.dropped`` frame saying how many, so a dashboard can reload).
A client that reconnects with ``Last-Event-ID`` first gets the ring's events after that id; an id
the ring no longer holds replays the whole ring (receivers deduplicate on ``event_id``). Idle
streams get a comment line every ``heartbeat_s`` so proxies keep them open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable

from pipeline.events.event import Event
from pipeline.events.sink import SinkCounters, log_drop

log = logging.getLogger(__name__)

DROPPED_EVENT = "stream.dropped"
HEARTBEAT_FRAME = ": keepalive\n\n"


def sse_frame(event: Event) -> str:
    """One SSE frame; the JSON is a single line, so one ``data:`` field carries it."""
    return f"id: {event.event_id}\nevent: {event.kind}\ndata: {event.to_json()}\n\n"


def dropped_frame(count: int) -> str:
    return f"event: {DROPPED_EVENT}\ndata: {json.dumps({'dropped': count})}\n\n"


class Subscription:
    """One client's bounded queue, filled from any thread, drained in its event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, maxlen: int, backlog: list[Event]) -> None:
        self._loop = loop
        self._queue: deque[Event] = deque(backlog)   # the replay may exceed maxlen once
        self.maxlen = maxlen
        self._lock = threading.Lock()
        self._ready = asyncio.Event()
        self._wake_pending = False
        self._missed = 0
        self.dropped = 0
        self.closed = False
        if backlog:
            self._ready.set()

    def offer(self, event: Event) -> Event | None:
        """Queue ``event``; returns the event dropped to make room, if any."""
        lost = None
        with self._lock:
            if self.closed:
                return None
            if len(self._queue) >= self.maxlen:
                lost = self._queue.popleft()
                self._missed += 1
                self.dropped += 1
            self._queue.append(event)
            wake, self._wake_pending = not self._wake_pending, True
        if wake:
            self._call(self._ready.set)
        return lost

    def close(self) -> None:
        with self._lock:
            self.closed = True
        self._call(self._ready.set)

    def _call(self, fn) -> None:  # noqa: ANN001 - a bound method
        with contextlib.suppress(RuntimeError):  # the loop has closed: the stream is gone already
            self._loop.call_soon_threadsafe(fn)

    async def next_frames(self, timeout_s: float) -> list[str] | None:
        """Frames queued so far, waiting up to ``timeout_s`` for the first; [] on timeout; None once closed."""
        deadline = self._loop.time() + timeout_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), max(0.0, deadline - self._loop.time()))
            with self._lock:
                self._ready.clear()
                self._wake_pending = False
                events = list(self._queue)
                self._queue.clear()
                missed, self._missed = self._missed, 0
                closed = self.closed
            frames = ([dropped_frame(missed)] if missed else []) + [sse_frame(e) for e in events]
            if frames:
                return frames
            if closed:
                return None
            if self._loop.time() >= deadline:
                return []
            # woken by a wake-up whose events an earlier call already took: wait on


class SseBroadcaster:
    """Fans events out to SSE subscribers (see the module doc). Implements ``EventSink``.

    Args:
        replay: events kept for ``Last-Event-ID`` replay.
        queue_size: events a subscriber may lag behind before its oldest are dropped.
        heartbeat_s: idle time before a keep-alive comment.
        retry_ms: the reconnect delay the stream asks browsers to use.
    """

    def __init__(self, replay: int = 256, queue_size: int = 256, heartbeat_s: float = 15.0,
                 retry_ms: int = 3000, name: str = "sse") -> None:
        if queue_size <= 0 or replay < 0 or heartbeat_s <= 0:
            raise ValueError("SseBroadcaster needs queue_size > 0, replay >= 0, heartbeat_s > 0")
        self.name = name
        self.queue_size = queue_size
        self.heartbeat_s = heartbeat_s
        self.retry_ms = retry_ms
        self.counters = SinkCounters(connected=True)
        self._lock = threading.Lock()
        self._ring: deque[Event] = deque(maxlen=replay)
        self._subs: list[Subscription] = []

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)

    def submit(self, event: Event) -> None:
        # under the lock: every subscriber sees events in one order, and subscribe() cannot slip
        # between the ring append and the fan-out (no event is missed or replayed twice)
        with self._lock:
            self.counters.submitted += 1
            self._ring.append(event)
            for sub in self._subs:
                lost = sub.offer(event)
                self.counters.published += 1
                if lost is not None:
                    self.counters.dropped += 1
                    log_drop(log, self.name, lost, "slow subscriber", self.counters.dropped)

    def prime(self, events: list[Event]) -> None:
        """Put earlier events in the replay ring only (a restarted server's memory of what it streamed):
        a client resuming with ``Last-Event-ID`` gets what followed; nobody gets them as new."""
        with self._lock:
            self._ring.extend(events)

    def retain(self, keep: Callable[[list[str]], set[str]]) -> int:
        """Drop from the replay ring every event whose id ``keep`` (given the ring's ids) leaves out: the
        API's memory of events an erasure deleted from the store. Returns how many went."""
        with self._lock:
            asked = [e.event_id for e in self._ring]
        kept = keep(asked)   # outside the lock: a store query
        gone = set(asked) - kept
        with self._lock:
            before = len(self._ring)
            self._ring = deque((e for e in self._ring if e.event_id not in gone), maxlen=self._ring.maxlen)
            return before - len(self._ring)

    def subscribe(self, last_event_id: str | None = None) -> Subscription:
        """Register a subscriber of the running event loop, primed with the replay after ``last_event_id``."""
        loop = asyncio.get_running_loop()
        with self._lock:
            sub = Subscription(loop, self.queue_size, self._replay_after(last_event_id))
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def _replay_after(self, last_event_id: str | None) -> list[Event]:
        if last_event_id is None:
            return []
        ring = list(self._ring)
        for i in range(len(ring) - 1, -1, -1):
            if ring[i].event_id == last_event_id:
                return ring[i + 1:]
        return ring   # unknown or evicted id: all we have (duplicates are deduplicated by event_id)

    async def stream(self, last_event_id: str | None = None) -> AsyncIterator[str]:
        """SSE text for one client, until it disconnects (the generator is closed) or ``close``.

        The subscription starts at the first iteration (the ``retry:`` frame): events submitted
        before that reach this client only through ``last_event_id`` replay.
        """
        sub = self.subscribe(last_event_id)
        try:
            yield f"retry: {self.retry_ms}\n\n"
            while True:
                frames = await sub.next_frames(self.heartbeat_s)
                if frames is None:
                    return
                if not frames:
                    yield HEARTBEAT_FRAME
                for frame in frames:
                    yield frame
        finally:
            self.unsubscribe(sub)

    def flush(self, timeout_s: float) -> bool:
        """Nothing waits on a network here: queued frames belong to their subscribers."""
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """End every stream (their generators return after the frames already queued)."""
        with self._lock:
            subs, self._subs = self._subs, []
        for sub in subs:
            sub.close()
