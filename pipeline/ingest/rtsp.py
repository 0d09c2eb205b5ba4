"""Network camera source (``rtsp://``, ``rtsps://``) that survives a camera or network going away.

``RtspSource`` implements the ``FrameSource`` protocol of ``pipeline.ingest.sources`` with OpenCV's
FFmpeg backend. Opening and reading have timeouts (so a dead server cannot hang the worker); a
lost stream is reopened with exponential backoff and jitter, and the source reports where it
stands: ``connected``, ``reconnecting`` (with the reason and the next attempt), ``ended``
(closed by us) or ``failed`` (gave up after ``max_reconnects`` consecutive failures, or a URL
that can never work). ``read`` never blocks longer than one open or read timeout, so the
caller's loop keeps control (shutdown, other cameras, metrics).

The URL's credentials appear nowhere: ``name`` and every log line use ``redact_url``, and FFmpeg
messages are passed through ``redact_text``.

Frames are stamped on the stream's own clock (presentation time), anchored to this machine's UTC
clock at the first frame of a connection and never later than the moment of receipt, so stamps
stay true when processing falls behind. A live stream does not wait: when the frame just read is
more than ``max_lag_s`` old, buffered frames are skipped (grabbed, not decoded) until the source
is back within half of that; skipped frames are counted (``skipped_behind``). ``Frame.index``
counts every source frame, across reconnects.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import cv2

from models.errors import SourceError
from pipeline.config.redact import redact_text, redact_url
from pipeline.config.settings import RtspCfg
from pipeline.ingest.sources import Frame, SourceState, SourceStatus
from pipeline.runtime.backoff import Backoff

log = logging.getLogger(__name__)

RTSP_SCHEMES = ("rtsp", "rtsps")
_FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_open_lock = threading.Lock()


def is_rtsp_url(source: str) -> bool:
    """True for ``rtsp://`` and ``rtsps://`` URLs (any case)."""
    return urlsplit(source).scheme.lower() in RTSP_SCHEMES


def ffmpeg_capture_options(cfg: RtspCfg) -> str:
    """Value for ``OPENCV_FFMPEG_CAPTURE_OPTIONS``; workers set it once per process at start."""
    return f"rtsp_transport;{cfg.transport}"


class RtspSource:
    """Frames of a network camera, reconnecting by itself.

    Args:
        url: ``rtsp://[user:password@]host[:port]/path`` or ``rtsps://…``.
        cfg: timeouts and reconnect policy.
        stop_event: set it to make a pending backoff wait return at once (shutdown).
        on_status: called with every new ``SourceStatus`` (for the store/API and metrics).
        clock: UTC epoch seconds for frame stamps (injectable for replays of recorded streams).

    Raises:
        SourceError: the URL is not an RTSP URL or has no host.
    """

    def __init__(self, url: str, cfg: RtspCfg | None = None, *, stop_event: threading.Event | None = None,
                 on_status: Callable[[SourceStatus], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = redact_url(url)
        parts = urlsplit(url)
        if parts.scheme.lower() not in RTSP_SCHEMES:
            raise SourceError(f"not an RTSP URL: {self.name}")
        if not parts.hostname:
            raise SourceError(f"RTSP URL has no host: {self.name}")
        self._url = url
        self.cfg = cfg or RtspCfg()
        self._stop = stop_event or threading.Event()
        self._on_status = on_status
        self._clock = clock
        # jitter keeps a fleet of cameras that lost the same server from reconnecting in lockstep
        self._backoff = Backoff(self.cfg.backoff_initial_s, self.cfg.backoff_max_s)
        self._rng = random.Random()
        self._cap: cv2.VideoCapture | None = None
        self._status = SourceStatus("reconnecting", "not connected yet")
        self._failures = 0            # consecutive failed opens
        self._next_attempt = 0.0      # monotonic time of the next open attempt
        self._next_index = 0
        self.connections = 0          # successful opens so far
        self.reconnects = 0           # opens after a lost stream
        self.frames = 0
        self.skipped_behind = 0       # buffered frames skipped to catch up with the live stream
        self._pts0: float | None = None   # stream time and wall time of this connection's anchor
        self._wall0 = 0.0
        self._last_pts = -math.inf

    # ------------------------------------------------------------------------------------------

    @property
    def status(self) -> SourceStatus:
        return self._status

    @property
    def connection(self) -> int:
        """1 for the first connection, incremented by every successful reconnect."""
        return self.connections

    def _set_status(self, state: SourceState, reason: str = "") -> None:
        new = SourceStatus(state, reason)
        if new == self._status:
            return
        self._status = new
        level = logging.INFO if state == "connected" else logging.WARNING
        log.log(level, "source %s %s%s", self.name, state, f": {reason}" if reason else "")
        if self._on_status is not None:
            self._on_status(new)

    def _open(self) -> bool:
        cfg = self.cfg
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(cfg.open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(cfg.read_timeout_s * 1000)]
        try:
            if os.environ.get(_FFMPEG_OPTIONS_ENV) is not None:
                # set for the whole process (workers do, from cfg.transport; or the operator): no lock
                cap = cv2.VideoCapture(self._url, cv2.CAP_FFMPEG, params)
            else:
                with _open_lock:  # FFmpeg options only travel through the environment
                    os.environ[_FFMPEG_OPTIONS_ENV] = ffmpeg_capture_options(cfg)
                    try:
                        cap = cv2.VideoCapture(self._url, cv2.CAP_FFMPEG, params)
                    finally:
                        os.environ.pop(_FFMPEG_OPTIONS_ENV, None)
        except cv2.error as e:
            log.warning("source %s: OpenCV refused to open: %s", self.name, redact_text(str(e)))
            return False
        if not cap.isOpened():
            cap.release()
            return False
        self._cap = cap
        return True

    def _schedule_retry(self, reason: str) -> None:
        self._failures += 1
        limit = self.cfg.max_reconnects
        if limit and self._failures > limit:
            self._set_status("failed", f"{reason}; gave up after {limit} reconnect attempts")
            return
        delay = self._backoff.delay_s(self._failures, self._rng)
        self._next_attempt = time.monotonic() + delay
        self._set_status("reconnecting", f"{reason}; attempt {self._failures} in {delay:.1f}s")

    def _drop_connection(self, reason: str) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._schedule_retry(reason)

    def read(self) -> Frame | None:
        """The next frame, or ``None`` when none is available now (see ``status``).

        While reconnecting, waits at most ``max_wait_s`` (0.5 s) for the next attempt, so callers
        poll; an attempt itself may take up to ``open_timeout_s``.
        """
        state = self._status.state
        if state in ("ended", "failed"):
            return None
        if self._cap is None:
            wait = self._next_attempt - time.monotonic()
            if wait > 0:
                self._stop.wait(min(wait, 0.5))
                return None
            if self._stop.is_set():
                return None
            if not self._open():
                self._schedule_retry(f"cannot open stream (no answer within {self.cfg.open_timeout_s:g}s "
                                     "or refused)")
                return None
            self.connections += 1
            if self.connections > 1:
                self.reconnects += 1
            self._failures = 0
            self._pts0, self._last_pts = None, -math.inf
            self._set_status("connected")
        lost = f"stream lost (no frame within {self.cfg.read_timeout_s:g}s or server closed it)"
        if not self._cap.grab():
            self._drop_connection(lost)
            return None
        ts = self._stamp()
        if self.cfg.max_lag_s and self._clock() - ts > self.cfg.max_lag_s:
            ts = self._catch_up(ts)
            if ts is None:
                self._drop_connection(lost)
                return None
        ok, image = self._cap.retrieve()
        index = self._next_index
        self._next_index += 1
        if not ok or image is None:
            self._drop_connection(f"undecodable frame {index}")
            return None
        self.frames += 1
        return Frame(image, ts, index)

    def _stamp(self) -> float:
        """UTC capture time of the frame just grabbed, from the stream clock (see the module doc)."""
        now = self._clock()
        pts = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if not math.isfinite(pts) or pts < self._last_pts:
            self._pts0 = None  # no usable stream clock (or it jumped back): re-anchor on this frame
        self._last_pts = pts
        if self._pts0 is None:
            if not math.isfinite(pts):
                return now
            self._pts0, self._wall0 = pts, now
        ts = self._wall0 + (pts - self._pts0)
        if ts > now:  # a burst of buffered frames: a frame is never stamped after it arrived
            self._wall0 -= ts - now
            ts = now
        return ts

    def _catch_up(self, ts: float) -> float | None:
        """Skip buffered frames until within ``max_lag_s / 2`` of live; ``None`` if the stream died."""
        behind = self._clock() - ts
        skipped = 0
        while self._clock() - ts > self.cfg.max_lag_s / 2:
            if not self._cap.grab():
                return None
            self._next_index += 1
            skipped += 1
            ts = self._stamp()
        self.skipped_behind += skipped
        log.info("source %s was %.1fs behind live: skipped %d buffered frames", self.name, behind, skipped)
        return ts

    def close(self) -> None:
        """Release the stream; status becomes ``ended`` unless it already ``failed``."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        if self._status.state != "failed":
            self._set_status("ended", "closed")

    def __enter__(self) -> RtspSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
