"""One camera's processing: frame → detect → track → clip buffer → publish clips to a bus.

The same ``CameraProcessor`` runs inside ``xreid replay`` (embedded, ``MemoryBus``) and inside the
distributed camera worker (``RedisBus``): it only needs the ``Bus`` protocol's ``publish``. It keeps
per-stage counters and timings for summaries, benchmarks and metrics.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from models.errors import ConfigError
from pipeline.bus import STREAM_CLIPS, Bus
from pipeline.bus.messages import MODALITIES, Clip
from pipeline.camera.clipbuffer import ClipBuffer, TrackSummary
from pipeline.config.settings import ClipCfg, TrackerCfg
from pipeline.detection.base import Detections, Detector, as_bgr
from pipeline.ingest.sources import Frame
from pipeline.tracking.persistence import BehaviourGate
from pipeline.tracking.relink import Relinker
from pipeline.tracking.tracker import TrackedBoxes, Tracker

log = logging.getLogger(__name__)


def make_run_id() -> str:
    """A run id unique across restarts: UTC time to the second plus 16 random bits."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + secrets.token_hex(2)


@dataclass
class CameraStats:
    """Counters and cumulative seconds per stage of one camera."""

    frames: int = 0
    detections: int = 0
    tracked_boxes: int = 0
    tracks: int = 0             # tracks that became at least one clip
    clips: int = 0
    clip_bytes: int = 0
    tracks_short: int = 0
    tracks_dropped: int = 0
    relinks: int = 0            # tracker ids continued under an earlier track's id (pipeline/tracking/relink.py)
    seconds: dict[str, float] = field(default_factory=lambda: {"detect": 0.0, "track": 0.0, "clips": 0.0,
                                                               "publish": 0.0})

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["fps"] = {stage: (self.frames / s if s > 0 else None) for stage, s in self.seconds.items()
                      if stage != "publish"}
        total = sum(self.seconds.values())
        out["fps"]["pipeline"] = self.frames / total if total > 0 else None
        return out


@dataclass(frozen=True, slots=True)
class FrameResult:
    """What one frame produced (for annotation and MOT output)."""

    frame: Frame
    detections: Detections
    tracked: TrackedBoxes
    clips: tuple[Clip, ...]


class CameraProcessor:
    """Runs one camera's frames through detection, tracking and clip buffering.

    Args:
        camera_id: unique camera name (no ``:``); part of every clip id.
        modality: ``rgb`` or ``ir``; ``ir`` frames may be single-channel.
        detector: any ``Detector``; tracker_cfg/clip_cfg: settings of the other stages.
        bus: where clips go (``publish`` only); ``None`` keeps them local (benchmarks, tests).
        stream: bus stream name for clips.
        run_id: part of every track uid; a fresh one per process start keeps uids unique.
    """

    def __init__(self, camera_id: str, modality: str, detector: Detector, tracker_cfg: TrackerCfg,
                 clip_cfg: ClipCfg, bus: Bus | None, stream: str = STREAM_CLIPS, run_id: str | None = None) -> None:
        if modality not in MODALITIES:
            raise ConfigError(f"camera {camera_id}: modality must be one of {MODALITIES}, got {modality!r}")
        self.camera_id = camera_id
        self.modality = modality
        self.detector = detector
        self.tracker = Tracker(tracker_cfg)
        self.relinker = Relinker(tracker_cfg.relink) if tracker_cfg.relink.enabled else None
        self.run_id = run_id or make_run_id()
        self.bus = bus
        self.stream = stream
        self.clips = ClipBuffer(clip_cfg, camera_id, modality, self.track_uid)
        self.stats = CameraStats()
        self._summaries: list[TrackSummary] = []
        # set per modality by pipeline/camera/modality_front.py: thermal tracks must move and persist like people
        self.behaviour: BehaviourGate | None = None
        self.modality_switches = 0
        self._run_base = self.run_id

    def track_uid(self, track_id: int) -> str:
        """The store/bus identity of tracker id ``track_id`` in this run."""
        return f"{self.camera_id}-{self.run_id}-{track_id}"

    def process(self, frame: Frame) -> FrameResult:
        """Detect, track and buffer one frame; publishes any clip it completes."""
        st = self.stats
        t0 = time.perf_counter()
        image = as_bgr(frame.image)  # thermal: 1 -> 3 channels for the detector; the modality tag stays
        dets = self.detector.detect(image)
        t1 = time.perf_counter()
        tracked = self.tracker.update(dets, image)
        attend = getattr(self.detector, "attend", None)  # motion-region detectors also search where tracks are
        if attend is not None:
            attend(tracked.xyxy)
        if self.relinker is not None:  # fragments of one person continue one id; ended ids are the relinker's
            tracked = self.relinker.update(tracked, image, self.tracker.active_ids())
            st.relinks = self.relinker.relinks
            gone = set(tracked.ended) | (self.clips.open_track_ids - self.relinker.active_ids())
        else:  # the tracker's own removals, plus any id it let go without reporting (duplicate pruning)
            gone = set(tracked.ended) | (self.clips.open_track_ids - self.tracker.active_ids())
        t2 = time.perf_counter()
        if self.behaviour is not None:  # warm static objects and glints never reach the clips
            tracked = self.behaviour.update(frame.ts, tracked)
        clips = self.clips.add(frame, dets, tracked)
        clips += self.clips.end(sorted(gone))
        t3 = time.perf_counter()
        self._publish(clips)
        t4 = time.perf_counter()
        st.frames += 1
        st.detections += len(dets)
        st.tracked_boxes += len(tracked)
        for stage, dt in zip(("detect", "track", "clips", "publish"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            st.seconds[stage] += dt
        return FrameResult(frame, dets, tracked, tuple(clips))

    def flush(self) -> list[Clip]:
        """End every open track and publish its last clip (end of input, shutdown)."""
        t0 = time.perf_counter()
        clips = self.clips.flush()
        self._publish(clips)
        self.stats.seconds["clips"] += time.perf_counter() - t0
        self.tracker.reset()
        if self.behaviour is not None:
            self.behaviour.reset()
        if self.relinker is not None:
            self.relinker.reset()
        return clips

    def switch_modality(self, modality: str) -> list[Clip]:
        """The camera changed modality (day/night): close every open track, restart tracking.

        Tracks never carry across a switch and a clip never mixes modalities: open tracks end as
        clips of the old modality, the tracker starts afresh, and its restarted ids get a new
        uid generation so they cannot collide with the tracks just closed.

        Raises:
            ConfigError: ``modality`` is not ``rgb`` or ``ir``.
        """
        if modality not in MODALITIES:
            raise ConfigError(f"camera {self.camera_id}: modality must be one of {MODALITIES}, got {modality!r}")
        clips = self.flush()
        self.modality_switches += 1
        self.run_id = f"{self._run_base}~{self.modality_switches}"
        self.modality = modality
        self.clips.modality = modality
        return clips

    def pop_summaries(self) -> list[TrackSummary]:
        """Tracks that emitted a clip or ended since the last call."""
        out = self.clips.pop_summaries()
        self.stats.tracks += sum(1 for s in out if s.ended)
        self.stats.tracks_short = self.clips.stats.tracks_short
        self.stats.tracks_dropped = self.clips.stats.tracks_dropped
        return out

    def _publish(self, clips: list[Clip]) -> None:
        for clip in clips:
            self.stats.clips += 1
            data = clip.to_bytes()
            self.stats.clip_bytes += len(data)
            if self.bus is not None:
                self.bus.publish(self.stream, data)
            log.debug("camera=%s clip=%s frames=%d", self.camera_id, clip.clip_id, clip.seq_len)
