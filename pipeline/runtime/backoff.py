"""The one retry policy: capped exponential backoff with jitter, and a wait that a stop event cuts short.

The Redis bus (a blocking retry loop around each command), the RTSP source (a reconnect scheduled
for a later ``read``) and the process supervisor (a restart scheduled for a later ``poll``) all
ask the same two questions, "how long before attempt *n*?" and "wait that long unless we are
shutting down", so they share this policy instead of three hand-written formulas.

Why not tenacity (installed): it drives a *call* (decorate it, it retries it). Two of our three
users never block on a retry; they only need the delay, to schedule the next attempt while their
loop keeps control. The bus loop itself classifies errors (fatal, transient, a vanished group that
is recreated and retried at once), counts and rate-limits its log lines, and must stop on the
worker's own event; expressed in tenacity that is more code than the formula it replaces.

Jitter multiplies the capped delay by a uniform factor in ``[1 - jitter, 1 + jitter]``. It is
applied *after* the cap on purpose: a fleet of cameras (or workers) that lost the same server keeps
spreading out even once every member has reached the cap, instead of retrying in lockstep. So
one delay is at most ``max_s * (1 + jitter)``.
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
        jitter: relative spread in [0, 1); 0.5 gives +-50%, 0 a fixed schedule.

    Raises:
        ValueError: a parameter out of its range (names it).
    """

    initial_s: float
    max_s: float
    factor: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not self.initial_s > 0:
            raise ValueError(f"backoff initial_s must be > 0, got {self.initial_s}")
        if not self.max_s > 0:
            raise ValueError(f"backoff max_s must be > 0, got {self.max_s}")
        if not self.factor >= 1:
            raise ValueError(f"backoff factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"backoff jitter must be in [0, 1), got {self.jitter}")

    def capped_s(self, attempt: int) -> float:
        """The delay before jitter: grows from ``initial_s`` by ``factor`` per attempt up to ``max_s``."""
        try:
            grown = self.initial_s * self.factor ** max(0, attempt - 1)
        except OverflowError:  # an outage long enough to retry ~1000 times: long since at the cap
            return self.max_s
        return min(self.max_s, grown)

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry ``attempt``; pass a seeded ``rng`` for a reproducible schedule."""
        spread = (rng or random).uniform(1.0 - self.jitter, 1.0 + self.jitter) if self.jitter else 1.0
        return self.capped_s(attempt) * spread

    def wait(self, attempt: int, stop: threading.Event, rng: random.Random | None = None) -> bool:
        """Sleep before retry ``attempt`` unless ``stop`` is set; True when ``stop`` cut the wait short."""
        return stop.wait(self.delay_s(attempt, rng))
