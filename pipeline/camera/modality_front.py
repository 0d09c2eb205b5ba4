"""What stands between a camera's source and its ``CameraProcessor``: per-clip modality.

A camera's modality is a property of each clip, not of the camera:

* ``modality: ir`` (thermal camera): every frame is decoded to 8-bit white-hot first
  (``pipeline.ingest.thermal``: palettes, 16-bit AGC or temperature window);
* ``modality: auto`` (day/night camera): every frame goes through the ``ModalityGate``; on a
  switch the processor closes its open tracks as clips of the old modality, restarts its
  tracker, and continues with the detector and filters configured for the new modality;
* ``modality: rgb``: frames pass unchanged.

Each camera's first modality and every switch become ``ModalitySwitch`` events, handed to the
owner by ``pop_switches`` (replay writes them to the store). A frame that cannot be interpreted
(wrong bit depth, a palette that does not fit) is counted under ``bad_frames``, logged with the
camera and the format, and skipped: the camera keeps running. So is a frame with no picture in
it (``blank_kind``: all black, a dead illuminator or a capped lens; all saturated, a blinded
sensor): it would only teach the background model a scene that is not there and feed the tracker
empty frames. The detector's background model restarts when pictures come back.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping

import cv2
import numpy as np

from models.errors import ContractError
from pipeline.bus.messages import Clip
from pipeline.camera.processor import CameraProcessor, FrameResult
from pipeline.config.settings import CameraCfg, DetectorCfg
from pipeline.detection.base import Detector
from pipeline.ingest.daynight import ModalityGate, ModalitySwitch, Released
from pipeline.ingest.sources import FileSource, Frame, FrameSource, LoopingSource
from pipeline.ingest.thermal import GRAY_PALETTES, ImageSequenceSource, ThermalDecoder, is_image_sequence
from pipeline.tracking.persistence import BehaviourGate

log = logging.getLogger(__name__)

_LOG_EVERY_BAD = 1000   # after the first, one warning per this many bad frames
_BLANK_CELL_PX = 8      # blank test: mean gray of 8x8 cells (averages sensor noise down 8x) ...
_BLACK_MAX = 24         # ... black when no cell is brighter than this
_SATURATED_MIN = 232    # ... saturated when no cell is darker than this


def blank_kind(image: np.ndarray) -> str | None:
    """``"black"`` or ``"saturated"`` for a frame without a picture, else ``None``.

    Judged on 8x8-pixel cell means, so a noisy black frame (high gain) is still black while any
    lit object of a few cells (a person) makes the frame a picture.
    """
    h, w = image.shape[:2]
    img = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
    cells = cv2.resize(np.ascontiguousarray(img), (max(1, w // _BLANK_CELL_PX), max(1, h // _BLANK_CELL_PX)),
                       interpolation=cv2.INTER_AREA)
    if int(cells.max()) <= _BLACK_MAX:
        return "black"
    if int(cells.min()) >= _SATURATED_MIN:
        return "saturated"
    return None


def detector_cfgs(cam: CameraCfg, default: DetectorCfg) -> dict[str, DetectorCfg]:
    """The detector settings a camera uses for each modality of its frames.

    ``detector_ir`` (else ``detector``, else the top-level section) for infrared frames,
    ``detector`` (else the top-level section) for colour frames.
    """
    rgb = cam.detector or default
    return {"rgb": rgb, "ir": cam.detector_ir or rgb}


def initial_modality(cam: CameraCfg) -> str:
    """The modality a processor is built with (an auto camera's first frame decides later)."""
    return "rgb" if cam.modality == "auto" else cam.modality


def wants_gray_source(cam: CameraCfg) -> bool:
    """Decode the source to one channel: thermal cameras with a gray palette (colour palettes need colour)."""
    return cam.modality == "ir" and cam.thermal.palette in GRAY_PALETTES


def open_file_source(cam: CameraCfg, start_time: float | None = None, max_frames: int | None = None,
                     sequence_fps: float = 10.0) -> FrameSource:
    """A recorded camera's source: an image sequence (directory or glob of PNG/TIFF, 16-bit kept) or a video file,
    replayed forever when the camera has ``loop: true``.

    Raises:
        SourceError: the file or sequence is missing or unreadable.
    """
    def open_pass(pass_start: float | None) -> FileSource | ImageSequenceSource:
        if is_image_sequence(cam.source):
            return ImageSequenceSource(cam.source, fps=sequence_fps, start_time=pass_start, stride=cam.frame_stride,
                                       max_frames=max_frames)
        return FileSource(cam.source, start_time=pass_start, stride=cam.frame_stride, realtime=cam.realtime,
                          max_frames=max_frames, grayscale=wants_gray_source(cam))

    return LoopingSource(open_pass, start_time) if cam.loop else open_pass(start_time)


class ModalityFront:
    """Thermal decoding and day/night switching in front of one camera's processor.

    Args:
        cam: the camera's config (``modality``, ``daynight``, ``thermal``, ``persistence``).
        proc: its processor, built with ``initial_modality(cam)``.
        detectors: the detector for ``rgb`` and for ``ir`` frames (see ``detector_cfgs``).
    """

    def __init__(self, cam: CameraCfg, proc: CameraProcessor, detectors: Mapping[str, Detector]) -> None:
        self.cam = cam
        self.proc = proc
        self.detectors = dict(detectors)
        self.gate: ModalityGate[Frame] | None = ModalityGate(cam.id, cam.daynight) if cam.modality == "auto" else None
        self.decoder = ThermalDecoder(cam.id, cam.thermal) if cam.modality == "ir" else None
        self.behaviour = BehaviourGate(cam.persistence) if cam.persistence.apply_to != "none" else None
        self.bad_frames: Counter[str] = Counter()
        self._events: list[ModalitySwitch] = []
        self._started = False
        self._blank_run = 0   # consecutive frames without a picture
        if self.gate is None:
            self._use(cam.modality)

    @property
    def modality(self) -> str | None:
        """The modality frames are processed in now (``None``: an auto camera before its first frame)."""
        return self.proc.modality if self._started else (None if self.gate is not None else self.cam.modality)

    @property
    def switches(self) -> int:
        return self.proc.modality_switches if self.gate is not None else 0

    def feed(self, frame: Frame) -> list[FrameResult]:
        """Process one source frame; returns the frames processed now (an auto camera may hold some back)."""
        try:
            if self.decoder is not None:
                frame = Frame(self.decoder.decode(frame.image), frame.ts, frame.index)
            if self._skip_blank(frame):
                return []
            items = self.gate.push(frame, frame.ts, frame.image) if self.gate is not None else None
        except ContractError as e:
            self._bad_frame(e)
            return []
        if items is None:
            if not self._started:
                self._started = True
                self._events.append(ModalitySwitch(self.cam.id, frame.ts, None, self.cam.modality,
                                                   math.nan, math.nan))
            return [self.proc.process(frame)]
        return self._handle(items)

    def drain(self) -> list[FrameResult]:
        """Process the frames the gate still holds (end of input); returns their results."""
        return self._handle(self.gate.flush()) if self.gate is not None else []

    def flush(self) -> list[Clip]:
        """End of input or shutdown: process held frames, then close every open track as clips."""
        self.drain()
        return self.proc.flush()

    def pop_switches(self) -> list[ModalitySwitch]:
        """Modality events since the last call (the first decision, then every switch)."""
        out, self._events = self._events, []
        return out

    def _handle(self, items: list[ModalitySwitch | Released[Frame]]) -> list[FrameResult]:
        results = []
        for item in items:
            if isinstance(item, ModalitySwitch):
                self._events.append(item)
                if self._started:
                    self.proc.switch_modality(item.to_modality)
                    reset = getattr(self.detectors[item.to_modality], "reset", None)
                    if callable(reset):   # a background model (motion detector) saw the whole picture change
                        reset()
                else:                      # the first decision: nothing is open yet
                    self._started = True
                    self.proc.modality = item.to_modality
                    self.proc.clips.modality = item.to_modality
                self._use(item.to_modality)
            else:
                results.append(self.proc.process(item.payload))
        return results

    def _use(self, modality: str) -> None:
        """Detector and behaviour filter for frames of ``modality``."""
        self.proc.detector = self.detectors[modality]
        apply_to = self.cam.persistence.apply_to
        use = apply_to == "all" or (apply_to == "ir" and modality == "ir")
        self.proc.behaviour = self.behaviour if use else None

    def _bad_frame(self, e: ContractError) -> None:
        self._count_bad("bad_format", str(e))

    def _skip_blank(self, frame: Frame) -> bool:
        """Count and skip a frame without a picture; restart background models when pictures return."""
        kind = blank_kind(frame.image) if isinstance(frame.image, np.ndarray) and frame.image.dtype == np.uint8 \
            and frame.image.ndim in (2, 3) and frame.image.size else None
        if kind is not None:
            self._blank_run += 1
            self._count_bad(kind, f"the frame is all {kind}")
            return True
        if self._blank_run:
            log.info("camera=%s pictures back after %d blank frames", self.cam.id, self._blank_run)
            self._blank_run = 0
            for det in {id(d): d for d in self.detectors.values()}.values():
                reset = getattr(det, "reset", None)
                if callable(reset):
                    reset()
        return False

    def _count_bad(self, reason: str, what: str) -> None:
        self.bad_frames[reason] += 1
        n = self.bad_frames[reason]
        if n == 1 or n % _LOG_EVERY_BAD == 0:
            log.warning("camera=%s frame skipped (%d %s so far): %s", self.cam.id, n, reason, what)
