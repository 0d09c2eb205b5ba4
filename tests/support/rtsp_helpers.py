"""Test plumbing for a real RTSP server: footage preparation and a restartable server process.

The server (``tests/support/rtsp_server.py``) runs under Debian's ``/usr/bin/python3`` because the
GStreamer RTSP bindings are system packages (see ``scripts/system-deps.sh``). It streams an MJPEG
AVI made here from the real vtest.avi with the venv's OpenCV.
"""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from tests.support.services import free_port, wait_until

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")


def make_mjpeg_footage(src: Path, dst: Path, max_frames: int) -> Path:
    """The first ``max_frames`` frames of ``src`` as an MJPEG AVI at the source's frame rate."""
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    writer = None
    n = 0
    try:
        while n < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
            writer.write(frame)
            n += 1
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if n == 0:
        raise RuntimeError(f"no frame could be read from {src}")
    return dst


@dataclass
class RtspServer:
    """One RTSP server process on a fixed loopback port; ``start`` again after ``kill`` reuses it."""

    footage: Path
    port: int = field(default_factory=free_port)
    user: str | None = None
    password: str | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        cred = f"{self.user}:{self.password}@" if self.user else ""
        return f"rtsp://{cred}127.0.0.1:{self.port}/cam"

    def start(self) -> None:
        args = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port), "--file", str(self.footage)]
        if self.user:
            args += ["--user", self.user, "--password", self.password or ""]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()  # the server prints READY once it listens (or dies)
        if not line.startswith("READY"):
            self.proc.wait(timeout=5)
            raise RuntimeError(f"RTSP server did not start (exit {self.proc.returncode}); "
                               "run `bash scripts/system-deps.sh`")

    def kill(self) -> None:
        """SIGKILL: the camera vanishes without a goodbye."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.proc.stdout.close()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
            self.proc.stdout.close()
            self.proc = None


def read_until(source, predicate, timeout: float, what: str) -> list:
    """Call ``source.read()`` until ``predicate(frames)`` holds; returns the frames read."""
    frames: list = []

    def step() -> bool:
        f = source.read()
        if f is not None:
            frames.append(f)
        return predicate(frames)

    wait_until(step, timeout=timeout, interval=0.0, what=what)
    return frames
