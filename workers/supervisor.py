"""Run a site's workers as child processes, restart the ones that die, stop them all cleanly.

This is the Docker-free deployment behind ``xreid up``: each worker is an ordinary ``xreid``
subprocess, so what runs here is exactly what the compose file and the README run. A child that
exits is restarted after an exponential backoff with jitter (reset once it has stayed up for a while); a
child that keeps dying past ``max_restarts`` is marked failed and left down, so a broken config
does not spin the CPU. A child whose spec says it ``may_finish`` (a camera worker replaying
files) and that exits 0 on its own has finished its work for good: it is marked ``finished`` and
not restarted, since a restart would replay its input and store every track twice. Exit 0 means
"finished", anything else (non-zero, a signal) a crash, the same rule docker-compose's and
Kubernetes' ``on-failure`` restart policies apply (docs/distributed.md). SIGTERM/SIGINT are forwarded to every child, which gets ``stop_timeout_s``
to flush and exit before it is killed.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pipeline.runtime.backoff import Backoff

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessSpec:
    """One supervised command; ``may_finish``: its exit 0 means its work is done for good (not restarted)."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    may_finish: bool = False


@dataclass
class ChildState:
    """What the supervisor knows about one child; ``status`` is running | backoff | finished | failed | stopped."""

    spec: ProcessSpec
    proc: subprocess.Popen | None = None
    status: str = "stopped"
    restarts: int = 0
    started_at: float = 0.0
    next_start_at: float = 0.0
    last_exit: int | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


class Supervisor:
    """Keeps a fixed set of child processes alive.

    Args:
        specs: the commands to run, one child each.
        max_restarts: restarts per child before it is marked failed.
        backoff_s / backoff_max_s: first and largest delay before a restart (before +-50% jitter).
        healthy_after_s: a child that ran this long has its backoff reset.
        stop_timeout_s: grace period between SIGTERM and SIGKILL on shutdown.
        log_dir: when set, each child's stdout/stderr goes to ``{log_dir}/{name}.log``.
    """

    def __init__(self, specs: Sequence[ProcessSpec], max_restarts: int = 10, backoff_s: float = 1.0,
                 backoff_max_s: float = 30.0, healthy_after_s: float = 60.0, stop_timeout_s: float = 10.0,
                 log_dir: str | None = None) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate process names in {names}")
        self.children = [ChildState(s) for s in specs]
        self.max_restarts = max_restarts
        # jittered: children that died together (their Redis went away) do not all restart in lockstep
        self.backoff = Backoff(backoff_s, backoff_max_s)
        self._rng = random.Random()
        self.healthy_after_s = healthy_after_s
        self.stop_timeout_s = stop_timeout_s
        self.log_dir = log_dir
        self._stop = threading.Event()

    def _spawn(self, child: ChildState) -> None:
        env = {**os.environ, **child.spec.env}
        out = subprocess.DEVNULL
        if self.log_dir:
            os.makedirs(self.log_dir, exist_ok=True)
            out = open(os.path.join(self.log_dir, f"{child.spec.name}.log"), "ab")  # noqa: SIM115 - owned by the child
        try:
            child.proc = subprocess.Popen(list(child.spec.argv), env=env, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        except OSError as e:
            child.proc, child.status, child.last_exit = None, "failed", None
            log.error("cannot start %s: %s", child.spec.name, e)
            return
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        child.status, child.started_at = "running", time.monotonic()
        log.info("started %s pid=%s", child.spec.name, child.proc.pid)

    def _check(self, child: ChildState, now: float) -> None:
        if child.status == "running" and child.proc is not None:
            code = child.proc.poll()
            if code is None:
                return
            child.last_exit, child.proc = code, None
            uptime = now - child.started_at
            if code == 0 and child.spec.may_finish:
                child.status = "finished"
                log.warning("%s finished (exit 0 after %.1fs): not restarted", child.spec.name, uptime)
                return
            if uptime >= self.healthy_after_s:
                child.restarts = 0
            if child.restarts >= self.max_restarts:
                child.status = "failed"
                log.error("%s exited with %s and reached %d restarts: giving up", child.spec.name, code,
                          self.max_restarts)
                return
            child.restarts += 1
            delay = self.backoff.delay_s(child.restarts, self._rng)
            child.status, child.next_start_at = "backoff", now + delay
            log.warning("%s exited with %s after %.1fs; restart %d in %.1fs", child.spec.name, code, uptime,
                        child.restarts, delay)
        elif child.status == "backoff" and now >= child.next_start_at:
            self._spawn(child)

    def start(self) -> None:
        for child in self.children:
            self._spawn(child)

    def poll(self) -> None:
        """One supervision step: restart what died and is due."""
        now = time.monotonic()
        for child in self.children:
            self._check(child, now)

    def run(self, interval_s: float = 0.5, on_tick: Callable[[Supervisor], None] | None = None) -> int:
        """Supervise until ``stop()`` or a signal; returns 0, or 1 if any child ended failed."""
        self.start()
        while not self._stop.wait(interval_s):
            self.poll()
            if on_tick is not None:
                on_tick(self)
        self.shutdown()
        return 1 if any(c.status == "failed" for c in self.children) else 0

    def stop(self) -> None:
        self._stop.set()

    def finishers_done(self) -> bool:
        """True when every child that may finish has ended for good (finished, or failed past its restarts);
        False when there are none, since then nothing can ever finish."""
        finishers = [c for c in self.children if c.spec.may_finish]
        return bool(finishers) and all(c.status in ("finished", "failed") for c in finishers)

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    def shutdown(self) -> None:
        """SIGTERM every child, wait up to ``stop_timeout_s``, then SIGKILL the rest."""
        live = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        for child in live:
            child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for child in live:
            try:
                child.last_exit = child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s ignored SIGTERM for %.0fs: killing", child.spec.name, self.stop_timeout_s)
                child.proc.kill()
                child.last_exit = child.proc.wait()
        for child in self.children:
            child.proc = None
            if child.status not in ("failed", "finished"):
                child.status = "stopped"

    def status_rows(self) -> list[dict[str, object]]:
        now = time.monotonic()
        return [{"name": c.spec.name, "status": c.status, "pid": c.pid, "restarts": c.restarts,
                 "uptime_s": round(now - c.started_at, 1) if c.status == "running" else 0.0,
                 "last_exit": c.last_exit} for c in self.children]


def format_status(rows: Sequence[dict[str, object]]) -> str:
    """A fixed-width status table for the terminal."""
    header = f"{'process':<16} {'status':<8} {'pid':>7} {'restarts':>8} {'uptime_s':>9} {'last_exit':>9}"
    lines = [header]
    for r in rows:
        pid = "-" if r["pid"] is None else r["pid"]
        last = "-" if r["last_exit"] is None else r["last_exit"]
        lines.append(f"{r['name']:<16} {r['status']:<8} {pid:>7} {r['restarts']:>8} {r['uptime_s']:>9} {last:>9}")
    return "\n".join(lines)
