"""The one retry policy: capped exponential backoff with jitter, and a wait that a stop event cuts short.

The Redis bus (a blocking retry loop around each command), the RTSP source (a reconnect scheduled
for a later ``read``), the process supervisor (a restart scheduled for a later ``poll``) and the
event publishers (MQTT reconnects, webhook retries) all ask the same two questions, "how long
before attempt *n*?" and "wait that long unless we are shutting down", so they share this policy
instead of each writing the formula again. Each keeps its own attempt count, since what resets it
differs (a command that got through, a connection, a child that stayed up, a delivery).

Why not tenacity (installed): it drives a *call* (decorate it, it retries it). Most of our users
never block on a retry; they only need the delay, to schedule the next attempt while their loop
keeps control. The bus loop itself classifies errors (fatal, transient, a vanished group that is
recreated and retried at once), counts and rate-limits its log lines, and must stop on the
worker's own event; expressed in tenacity that is more code than the formula it replaces.

Jitter multiplies the capped delay by a uniform factor drawn from ``spread``. The default, +-50%
(``(0.5, 1.5)``), is applied *after* the cap on purpose: a fleet of cameras (or workers) that lost
the same server keeps spreading out even once every member has reached the cap, instead of
retrying in lockstep, so one delay is at most ``1.5 * max_s``. A caller whose cap must be a hard
bound draws below it instead (the event publishers use ``(0.5, 1.0)``).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry ``attempt`` (1-based): ``initial_s * factor**(attempt-1)``, capped, jittered.

    Args:
        initial_s: delay before the first retry, seconds (> 0).
        max_s: largest delay before jitter, seconds (> 0); it caps every delay, the first included.
        factor: growth per attempt (>= 1; 2 doubles).
        spread: (low, high) bounds of the uniform jitter factor, 0 <= low <= high; ``(1, 1)`` = no jitter.

    Raises:
        ValueError: a parameter out of its range (names it).
    """

    initial_s: float
    max_s: float
    factor: float = 2.0
    spread: tuple[float, float] = (0.5, 1.5)

    def __post_init__(self) -> None:
        if not self.initial_s > 0:
            raise ValueError(f"backoff initial_s must be > 0, got {self.initial_s}")
        if not self.max_s > 0:
            raise ValueError(f"backoff max_s must be > 0, got {self.max_s}")
        if not self.factor >= 1:
            raise ValueError(f"backoff factor must be >= 1, got {self.factor}")
        low, high = self.spread
        if not 0 <= low <= high:
            raise ValueError(f"backoff spread must be (low, high) with 0 <= low <= high, got {self.spread}")

    def capped_s(self, attempt: int) -> float:
        """The delay before jitter: grows from ``initial_s`` by ``factor`` per attempt up to ``max_s``."""
        try:
            grown = self.initial_s * self.factor ** max(0, attempt - 1)
        except OverflowError:  # an outage long enough to retry ~1000 times: long since at the cap
            return self.max_s
        return min(self.max_s, grown)

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry ``attempt``; pass a seeded ``rng`` for a reproducible schedule."""
        low, high = self.spread
        factor = low if low == high else (rng or random).uniform(low, high)
        return self.capped_s(attempt) * factor

    def wait(self, attempt: int, stop: threading.Event, rng: random.Random | None = None) -> bool:
        """Sleep before retry ``attempt`` unless ``stop`` is set; True when ``stop`` cut the wait short."""
        return stop.wait(self.delay_s(attempt, rng))
