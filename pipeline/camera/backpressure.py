"""Explicit backpressure for camera workers: shed *frames* when consumers fall behind, never clips.

The signal is the clips stream's backlog for the re-ID group: entries not yet delivered (lag)
plus entries delivered and not acked (pending). Above ``high`` the camera side starts shedding;
it stops below ``low`` (hysteresis, so it does not flap). How it sheds depends on the source:

* live sources (RTSP, devices, realtime files) keep reading (the stream does not wait) and
  process only every ``stride``-th frame, the stride doubling while the backlog stays high;
* recorded files (not realtime) lose nothing by waiting: ``admit`` blocks until the backlog
  falls, which lowers the frame rate instead of skipping.

Every skipped frame is counted (``skipped``) and every wait is timed (``waited_s``) for metrics.
The backlog is queried at most every ``check_every_s`` (one Redis round trip per interval, not per
frame); one instance is shared by all cameras of a worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pipeline.bus import Bus

log = logging.getLogger(__name__)


class Backpressure:
    """Decides, frame by frame, whether a camera may process its next frame.

    Args:
        bus, stream, group: whose backlog to watch (clips stream, re-ID group).
        high, low: start shedding above ``high``, stop below ``low`` entries.
        max_stride: live sources keep at least one frame in ``max_stride``.
        check_every_s: how stale the backlog reading may be.
        stop_event: set it to release waiting file cameras at shutdown.
    """

    def __init__(self, bus: Bus, stream: str, group: str, high: int, low: int, max_stride: int = 16,
                 check_every_s: float = 0.5, stop_event: threading.Event | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 <= low <= high:
            raise ValueError(f"backpressure needs 0 <= low <= high, got low={low} high={high}")
        self.bus, self.stream, self.group = bus, stream, group
        self.high, self.low, self.max_stride = high, low, max_stride
        self.check_every_s = check_every_s
        self._stop = stop_event or threading.Event()
        self._clock = clock
        self._lock = threading.Lock()
        self._checked_at = -1e18
        self.backlog = 0
        self.shedding = False
        self.stride = 1
        self.skipped = 0         # frames live sources did not process
        self.waited_s = 0.0      # time file sources spent waiting
        self.episodes = 0        # times shedding started

    def _refresh(self) -> None:
        with self._lock:
            now = self._clock()
            if now - self._checked_at < self.check_every_s:
                return
            self._checked_at = now
            backlog = self.bus.lag(self.stream, self.group) + self.bus.pending(self.stream, self.group)
            previous, self.backlog = self.backlog, backlog
            if not self.shedding and backlog > self.high:
                self.shedding, self.stride = True, 2
                self.episodes += 1
                log.warning("backpressure on: %d clips waiting for %s (high=%d); shedding frames", backlog,
                            self.group, self.high)
            elif self.shedding and backlog < self.low:
                self.shedding, self.stride = False, 1
                log.warning("backpressure off: %d clips waiting (low=%d)", backlog, self.low)
            elif self.shedding and backlog >= previous:
                self.stride = min(self.max_stride, self.stride * 2)  # still not draining: shed harder

    def admit(self, frame_index: int, live: bool) -> bool:
        """True when the camera should process frame ``frame_index``; False: skip it (counted).

        For non-live sources this waits while the backlog is high instead of returning False.
        """
        self._refresh()
        if not self.shedding:
            return True
        if live:
            if frame_index % self.stride == 0:
                return True
            with self._lock:
                self.skipped += 1
            return False
        t0 = self._clock()
        while self.shedding and not self._stop.is_set():
            self._stop.wait(self.check_every_s)
            self._refresh()
        with self._lock:
            self.waited_s += self._clock() - t0
        return True


class ThrottledBus:
    """A ``Bus`` whose ``publish`` to the watched stream waits while the backlog is high.

    For producers of recorded footage (``xreid replay --redis``): they lose nothing by waiting,
    so instead of shedding frames they are slowed to the pace the deployment's re-ID workers
    absorb. Every other call goes straight to the wrapped bus.
    """

    def __init__(self, bus: Bus, backpressure: Backpressure) -> None:
        self._bus = bus
        self.backpressure = backpressure

    def publish(self, stream: str, data: bytes) -> str:
        if stream == self.backpressure.stream:
            self.backpressure.admit(0, live=False)
        return self._bus.publish(stream, data)

    def __getattr__(self, name: str):  # the rest of the Bus protocol, unchanged
        return getattr(self._bus, name)
