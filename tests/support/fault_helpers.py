"""Real worker processes for the fault tests: start, wait healthy, SIGTERM, SIGKILL, count results.

Workers are the ``xreid`` CLI in subprocesses (the code path a deployment runs); configuration
goes through ``XREID_*`` environment overrides, the Redis URL through ``XREID_REDIS_URL``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.paths import REPO_ROOT as REPO
from tests.support.services import free_port, wait_until


def tiny_checkpoint(path: Path) -> Path:
    """A seeded tiny X-ReID checkpoint (T=4, CPU-fast): a real model file for ``reid-worker``."""
    import torch

    from models.xreid import create_model
    from models.xreid.checkpoint import save_checkpoint

    if not path.exists():
        torch.manual_seed(0)
        save_checkpoint(create_model("xreid_tiny"), path)
    return path


@dataclass
class WorkerProc:
    """One ``xreid <command>`` process with its own metrics port and log file."""

    argv: list[str]
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> WorkerProc:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "XREID_LOG_LEVEL": "INFO", **self.env}
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "workers.cli", *self.argv, "--metrics-port", str(self.port)],
                                     cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def health(self) -> dict | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            return json.loads(e.read())
        except OSError:
            return None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
            return r.read().decode()

    def wait_healthy(self, timeout: float = 60.0) -> dict:
        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            return self.health()

        return wait_until(up, timeout=timeout, interval=0.1, what=f"{self.argv[0]} health endpoint")

    def sigterm(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Teardown: make sure nothing outlives the test."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if hasattr(self, "_log"):
            self._log.close()


def store_clip_counts(store: Path | str) -> dict[str, int]:
    """clip id -> how many times the store recorded it (links of kind new/join/update: one per clip).

    ``store`` is a SQLite file or a PostgreSQL URL; it is only read.
    """
    from pipeline.store.base import Store

    with Store(str(store), readonly=True) as s, s.snapshot():   # one view: the matcher commits meanwhile
        rows = s.execute("SELECT clip_id, count(*) FROM links WHERE kind IN ('new', 'join', 'update') "
                         "GROUP BY clip_id")
        n_embedded = s.execute("SELECT coalesce(sum(n_embedded), 0) FROM tracks")[0][0]
    counts = {str(c): int(n) for c, n in rows}
    assert n_embedded == sum(counts.values()), "tracks' clip counts and link rows disagree"
    return counts
