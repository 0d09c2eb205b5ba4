"""What every long-running worker shares: signals, the bus URL, metrics plumbing, the run loop.

Shutdown follows docs/design.md §7: the first SIGTERM/SIGINT sets ``stop`` (the loop finishes the
batch in hand, flushes, acks, returns 0); ``abort`` is set ``grace_s`` later, or at a second
signal, and makes bus retries give up so an unreachable Redis cannot hold the process past its
10 s budget.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from pydantic import SecretStr

from models.errors import BusError, ConfigError
from pipeline.bus import Bus
from pipeline.runtime.metrics import Sample

log = logging.getLogger(__name__)

REDIS_URL_ENV = "XREID_REDIS_URL"
METRICS_HOST_ENV = "XREID_METRICS_HOST"


class Shutdown:
    """SIGTERM/SIGINT → ``stop``; ``grace_s`` later (or a second signal) → ``abort``."""

    def __init__(self, grace_s: float = 7.0) -> None:
        self.grace_s = grace_s
        self.stop = threading.Event()
        self.abort = threading.Event()
        self.signal_name: str | None = None

    def install(self) -> Shutdown:
        """Route SIGTERM and SIGINT here (call from the main thread)."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        return self

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.stop.is_set():
            log.warning("second %s: aborting now", name)
            self.abort.set()
            return
        self.signal_name = name
        log.warning("%s received: finishing the current batch, then exiting", name)
        self.request()

    def request(self) -> None:
        """Ask for a graceful stop (what a signal does), e.g. from tests or an end of input."""
        if not self.stop.is_set():
            self.stop.set()
            timer = threading.Timer(self.grace_s, self.abort.set)
            timer.daemon = True
            timer.start()


def resolve_redis_url(flag: str | None, env: dict[str, str] | os._Environ, cfg_url: str | SecretStr | None) -> str:
    """``--redis`` wins, then ``$XREID_REDIS_URL`` (keeps passwords out of ``ps``), then ``bus.url``.

    Raises:
        ConfigError: none of them names a Redis server.
    """
    url = flag or env.get(REDIS_URL_ENV) or (cfg_url.get_secret_value() if isinstance(cfg_url, SecretStr) else cfg_url)
    if not url or url == "memory":
        raise ConfigError(f"no Redis URL: pass --redis URL or set {REDIS_URL_ENV} (distributed workers need Redis)")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("the Redis URL must start with redis://, rediss:// or unix://")
    return url


def default_consumer(role: str) -> str:
    """A consumer name unique per process: a restarted worker never inherits a dead one's name."""
    return f"{role}-{socket.gethostname()}-{os.getpid()}"


def bus_health(bus: Bus) -> dict[str, object]:
    """Whether the bus reaches its server now (a worker waiting out a Redis outage is degraded, not dead)."""
    down = getattr(bus, "unreachable_for_s", lambda: 0.0)()
    return {"bus_reachable": down == 0.0, "bus_unreachable_s": round(down, 1)}


def bus_samples(bus: Bus, role: str) -> Iterable[Sample]:
    """The bus client's own counters (reconnects, dead letters, reclaims, …) as metric samples."""
    for key, value in sorted(bus.stats().items()):
        yield Sample("xreid_bus_events_total", value, "counter", {"worker": role, "event": key},
                     "bus client events since start (reconnects, server_restarts, dead_lettered, reclaimed, ...)")
    yield Sample("xreid_bus_unreachable_seconds", bus_health(bus)["bus_unreachable_s"], "gauge", {"worker": role},
                 "how long the bus server has been unreachable (0 when reachable)")


def event_samples(hub: Any, announcer: Any) -> Iterable[Sample]:
    """The matcher's live events as metric samples: what was announced, and each sink's delivery counters.

    Args:
        hub: the ``EventHub`` (its ``snapshot()``), or None.
        announcer: the matcher's ``Announcer`` (its ``snapshot()`` and ``latencies_s``).
    """
    snap = announcer.snapshot()
    for kind, n in sorted(snap["announced"].items()):
        yield Sample("xreid_events_announced_total", n, "counter", {"kind": kind},
                     "events published after their facts committed, by kind")
    yield Sample("xreid_events_invalid_total", snap["invalid"], "counter", {}, "events that could not be built (bugs)")
    yield Sample("xreid_watchlist_entries", snap["watchlist_entries"], "gauge", {}, "watchlist entries compared")
    yield Sample("xreid_watchlist_hits_total", snap["watchlist_hits"], "counter", {}, "watchlist hits announced")
    lat = sorted(announcer.latencies_s)
    for q in (0.5, 0.99):
        if lat:
            yield Sample("xreid_events_decision_to_publish_seconds", lat[min(len(lat) - 1, int(q * len(lat)))],
                         "gauge", {"quantile": str(q)}, "matcher decision -> events handed to the sinks, "
                         "store commit included (recent batches)")
    if hub is None:
        return
    for name, c in sorted(hub.snapshot()["sinks"].items()):
        for key in ("submitted", "published", "dropped", "retries", "failed", "reconnects"):
            yield Sample("xreid_events_sink_total", c[key], "counter", {"sink": name, "what": key},
                         "events per sink: submitted, published (acknowledged), dropped (outbox full), retries, "
                         "failed (given up), reconnects")
        yield Sample("xreid_events_sink_connected", float(bool(c["connected"])), "gauge", {"sink": name},
                     "1 while the sink's broker or endpoint is reachable")
        yield Sample("xreid_events_sink_queued", c["queued"], "gauge", {"sink": name}, "events in the sink's outbox")


def run_loop(step: Callable[[], object], shutdown: Shutdown, heartbeat: Callable[[], None],
             what: str, retry_s: float = 1.0, transient: tuple[type[Exception], ...] = (BusError,),
             fatal: tuple[type[Exception], ...] = ()) -> None:
    """Call ``step`` until ``shutdown.stop``; a ``transient`` error (Redis gone past the retry
    budget, a locked store) is logged and retried after ``retry_s`` instead of killing the worker.
    The step that failed acked nothing, so its entries are redelivered. A ``fatal`` error (a subclass
    of a transient one that retrying cannot fix: refused credentials, a lost writer lock) propagates."""
    while not shutdown.stop.is_set():
        try:
            step()
        except fatal:
            raise
        except transient as e:
            if shutdown.abort.is_set() or shutdown.stop.is_set():
                log.warning("%s: stopping with the bus unavailable: %s", what, e)
                return
            log.error("%s: %s; retrying in %.0fs", what, e, retry_s)
            shutdown.stop.wait(retry_s)
        heartbeat()


class Periodic:
    """Runs ``fn`` at most every ``every_s`` seconds when ``tick`` is called (0 disables)."""

    def __init__(self, every_s: float, fn: Callable[[], object]) -> None:
        self.every_s, self.fn = every_s, fn
        self._last = time.monotonic()

    def tick(self) -> None:
        if self.every_s <= 0:
            return
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self.fn()


class StageMonitor:
    """Between-step bookkeeping of a worker that consumes one stream for one group.

    The re-ID and matcher workers share it: the loop calls ``beat`` after every step, which
    records liveness, feeds new batch latencies into ``latency``, trims acked entries and probes
    the group's backlog now and then; ``backlog`` and ``liveness`` are read by the metrics and
    health threads.

    Args:
        counters: the stage's counters (``batches`` and ``latencies_s`` are read).
        latency: the Prometheus histogram of batch latencies.
        trim_every_s: how often acked entries are trimmed (0: never).
    """

    def __init__(self, bus: Bus, stream: str, group: str, counters: Any, latency: Any, trim_every_s: float) -> None:
        self.bus, self.stream, self.group, self.counters, self.latency = bus, stream, group, counters, latency
        self.last_beat = time.monotonic()
        self._backlog = {"lag": 0, "pending": 0}
        self._seen_batches = 0
        self._lock = threading.Lock()
        self._trim = Periodic(trim_every_s, lambda: bus.trim_acked(stream))
        self._probe = Periodic(2.0, self._measure_backlog)

    def _measure_backlog(self) -> None:
        lag, pending = self.bus.lag(self.stream, self.group), self.bus.pending(self.stream, self.group)
        with self._lock:
            self._backlog = {"lag": lag, "pending": pending}

    def beat(self) -> None:
        self.last_beat = time.monotonic()
        new = self.counters.batches - self._seen_batches
        if new > 0:
            for seconds in list(self.counters.latencies_s)[-new:]:
                self.latency.observe(seconds)
            self._seen_batches = self.counters.batches
        self._trim.tick()
        self._probe.tick()

    def backlog(self) -> dict[str, int]:
        with self._lock:
            return dict(self._backlog)

    def liveness(self) -> tuple[str, float, dict[str, object]]:
        """(status, seconds since the last step, bus health). A minute without a step is a hang,
        unless the step is waiting out a Redis outage (degraded: restarting would not help)."""
        stale = time.monotonic() - self.last_beat
        bus = bus_health(self.bus)
        status = "degraded" if not bus["bus_reachable"] else "ok" if stale < 60 else "failed"
        return status, stale, bus
