"""Frame sources: the ``FrameSource`` protocol and the video-file source.

A source hands out decoded frames stamped with UTC epoch seconds and reports its state
(``connected | reconnecting | ended | failed`` with a reason). Files are decoded by OpenCV's
FFmpeg backend, so any container and codec FFmpeg reads works; their clock is a start time (given,
else the file's mtime) plus each frame's presentation time. Network sources (``pipeline.ingest.rtsp``)
implement the same protocol.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np

from models.errors import SourceError

log = logging.getLogger(__name__)

SourceState = Literal["connected", "reconnecting", "ended", "failed"]


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame.

    Attributes:
        image: (H, W, 3) BGR or (H, W) single-channel (thermal) uint8.
        ts: UTC epoch seconds of the frame (source clock).
        index: 0-based frame number in the source, counting frames skipped by the stride.
    """

    image: np.ndarray
    ts: float
    index: int


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """Where a source stands; ``reason`` says why when it is not simply connected."""

    state: SourceState
    reason: str = ""


class FrameSource(Protocol):
    """Anything that yields frames: files, RTSP streams, local devices.

    ``read`` returns the next frame, or ``None`` when no frame will come now: check ``status``
    (``ended`` and ``failed`` are final; a network source may return ``None`` while
    ``reconnecting``). Sources are context managers; ``close`` is idempotent.
    """

    name: str  # for logs and progress bars; credentials already redacted

    def read(self) -> Frame | None: ...

    @property
    def status(self) -> SourceStatus: ...

    def close(self) -> None: ...

    def __enter__(self) -> FrameSource: ...

    def __exit__(self, *exc: object) -> None: ...


def _is_gray16(cap: cv2.VideoCapture) -> bool:
    """The stream's pixels are 16-bit gray (FFmpeg gray16le/Y16): thermal raw counts."""
    tag = int(cap.get(cv2.CAP_PROP_CODEC_PIXEL_FORMAT) or 0).to_bytes(4, "little")
    return tag in (b"Y1\x00\x10", b"Y16 ")


class FileSource:
    """Frames of a video file, as fast as asked or at the file's own pace.

    Args:
        path: any file FFmpeg can decode.
        start_time: UTC epoch seconds of the first frame; ``None`` takes the file's mtime.
        stride: hand out every ``stride``-th frame (the others are grabbed, not decoded).
        realtime: pace ``read`` so frames come out at the file's frame rate.
        max_frames: stop after this many source frames (``None``: the whole file).
        grayscale: hand out single-channel frames, as thermal cameras send them (16-bit gray video, Y16,
            is handed out as uint16 raw counts).

    Raises:
        SourceError: the file is missing, unreadable, or not a video FFmpeg can decode.
    """

    def __init__(self, path: str | Path, start_time: float | None = None, stride: int = 1, realtime: bool = False,
                 max_frames: int | None = None, grayscale: bool = False) -> None:
        if stride < 1:
            raise SourceError(f"frame stride must be >= 1, got {stride}")
        self.path = Path(path)
        self.name = self.path.name
        if not self.path.exists():
            raise SourceError(f"video file not found: {self.path}")
        if not self.path.is_file():
            raise SourceError(f"not a file: {self.path}")
        if not os.access(self.path, os.R_OK):
            raise SourceError(f"video file is not readable: {self.path}")
        self._cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(f"cannot decode {self.path}: not a video file FFmpeg can read")
        if grayscale and _is_gray16(self._cap):
            # Y16 / gray16le thermal video (radiometric counts): reopen without conversion to keep 16 bits
            self._cap.release()
            self._cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_CONVERT_RGB, 0])
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not math.isfinite(self.fps) or self.fps <= 0 or self.fps > 1000:
            self.fps = 0.0
        declared = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.declared_frames = declared if declared > 0 else None
        self.start_time = float(self.path.stat().st_mtime if start_time is None else start_time)
        self.stride = stride
        self.realtime = realtime
        self.max_frames = max_frames
        self.grayscale = grayscale
        self._next_index = 0
        self._last_pts = -1.0
        self._wall0: float | None = None
        self._status = SourceStatus("connected")
        self._closed = False
        # A file that opens but yields no frame is as broken as one that does not open.
        first = self._decode()
        if first is None:
            self.close()
            raise SourceError(f"cannot decode {self.path}: no frame could be read")
        self._pending: Frame | None = first

    @property
    def status(self) -> SourceStatus:
        return self._status

    @property
    def expected_frames(self) -> int | None:
        """Frames ``read`` will hand out if the file is intact (for progress bars)."""
        total = self.declared_frames
        if self.max_frames is not None:
            total = min(total, self.max_frames) if total else self.max_frames
        return None if total is None else math.ceil(total / self.stride)

    def _decode(self) -> Frame | None:
        ok, image = self._cap.read()
        if not ok or image is None:
            return None
        if self.grayscale and image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        index = self._next_index
        self._next_index += 1
        pts = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if not math.isfinite(pts) or pts <= self._last_pts:
            # containers without usable timestamps: fall back to the nominal frame rate
            pts = index / self.fps if self.fps else max(self._last_pts, 0.0) + 0.04
        self._last_pts = pts
        return Frame(image, self.start_time + pts, index)

    def _skip(self, n: int) -> bool:
        for _ in range(n):
            if not self._cap.grab():
                return False
            self._next_index += 1
        return True

    def read(self) -> Frame | None:
        if self._status.state != "connected":
            return None
        if self.max_frames is not None and self._next_index >= self.max_frames and self._pending is None:
            return self._end("ended", f"reached max_frames={self.max_frames}")
        frame = self._pending
        self._pending = None
        if frame is None:
            if not self._skip(self.stride - 1) or (self.max_frames is not None and self._next_index >= self.max_frames):
                return self._finish()
            frame = self._decode()
            if frame is None:
                return self._finish()
        if self.realtime:
            self._pace(frame)
        return frame

    def _pace(self, frame: Frame) -> None:
        offset = frame.ts - self.start_time
        now = time.monotonic()
        if self._wall0 is None:
            self._wall0 = now - offset
        delay = self._wall0 + offset - now
        if delay > 0:
            time.sleep(delay)

    def _finish(self) -> None:
        if self.max_frames is not None and self._next_index >= self.max_frames:
            return self._end("ended", f"reached max_frames={self.max_frames}")
        declared = self.declared_frames
        # containers estimate their frame count (duration x rate): a frame or two short is not damage
        if declared is not None and self._next_index < declared - max(2, declared // 100):
            return self._end("failed", f"{self.path}: video is truncated or corrupt: decoded {self._next_index} "
                                       f"of {declared} frames")
        return self._end("ended", "end of file")

    def _end(self, state: SourceState, reason: str) -> None:
        self._status = SourceStatus(state, reason)
        if state == "failed":
            log.info("source %s failed: %s", self.name, reason)  # the owner reports it (once)
        self.close()
        return None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._cap.release()

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LoopingSource:
    """A recorded source replayed end to end, forever, as if it were a live camera.

    Used for soak runs and always-on demo cameras: each pass reopens the recording with its clock
    continuing where the last pass stopped, so timestamps and frame indices keep increasing and
    the tracker sees one long stream (people jump at the seam, and their tracks end there). A pass
    that fails, or yields no frame, ends the loop with that status.

    Args:
        open_pass: opens one pass given its start time (``None``: the source's own default).
        start_time: UTC epoch seconds of the first pass.
    """

    def __init__(self, open_pass: Callable[[float | None], FrameSource], start_time: float | None = None) -> None:
        self._open_pass = open_pass
        self._src = open_pass(start_time)
        self.name = self._src.name
        self.passes = 1
        self._offset = 0          # frame indices of earlier passes
        self._last: Frame | None = None
        self._pass_frames = 0
        self._status = SourceStatus("connected")

    @property
    def status(self) -> SourceStatus:
        return self._status

    @property
    def fps(self) -> float:
        return float(getattr(self._src, "fps", 0.0) or 0.0)

    @property
    def expected_frames(self) -> None:
        """A loop never ends: progress bars count without a total."""
        return None

    def read(self) -> Frame | None:
        if self._status.state != "connected":
            return None
        frame = self._src.read()
        if frame is None:
            state = self._src.status
            if state.state != "ended" or self._pass_frames == 0 or self._last is None:
                self._status = state if state.state != "connected" else SourceStatus("ended", "pass yielded nothing")
                self.close()
                return None
            self._src.close()
            self._offset = self._last.index + 1
            self._src = self._open_pass(self._last.ts + 0.1)
            self.passes += 1
            self._pass_frames = 0
            log.info("source %s: starting pass %d", self.name, self.passes)
            frame = self._src.read()
            if frame is None:
                self._status = SourceStatus("failed", f"pass {self.passes} yielded no frame")
                self.close()
                return None
        self._pass_frames += 1
        self._last = Frame(frame.image, frame.ts, frame.index + self._offset)
        return self._last

    def close(self) -> None:
        self._src.close()

    def __enter__(self) -> LoopingSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
