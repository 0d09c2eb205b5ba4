"""Shared fixtures: a real redis-server per test that needs one, and the real vtest.avi footage."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipeline.ingest.footage import default_cache_dir, ensure_vtest

# PETS09-S2L1 ground truth for frames 1-400, shipped with the tests (source and licence in its README).
PETS_GT = Path(__file__).resolve().parent / "data" / "pets09-s2l1" / "gt-0001-0400.txt"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """Poll ``predicate`` until truthy or raise: the suite never sleeps to synchronise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class RedisServer:
    """A redis-server this test owns: it can be stopped and restarted on the same port."""

    port: int
    workdir: Path
    appendonly: bool = False
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed; run `bash scripts/system-deps.sh`")
        args = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes" if self.appendonly else "no", "--dir", str(self.workdir)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._ping, what=f"redis on port {self.port}")

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def redis_server(tmp_path):
    """A fresh, empty redis-server on a free loopback port, stopped after the test."""
    server = RedisServer(port=free_port(), workdir=tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def vtest_path() -> Path:
    """The real PETS09-S2L1 footage (fetched once per machine into the xreid cache)."""
    return ensure_vtest(default_cache_dir(dict(os.environ)))


@pytest.fixture(scope="session")
def pets_gt_path() -> Path:
    if not PETS_GT.is_file():
        raise RuntimeError(f"ground truth missing at {PETS_GT}")
    return PETS_GT


@pytest.fixture
def mosquitto(tmp_path):
    """A fresh mosquitto on a free loopback port (anonymous, persistent), stopped after the test."""
    from tests.events_helpers import MosquittoBroker  # here: that module imports this one

    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    broker = MosquittoBroker(port=free_port(), workdir=workdir)
    broker.start()
    yield broker
    broker.stop()
