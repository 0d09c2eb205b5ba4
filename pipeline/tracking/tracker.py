"""Multi-object tracking with ultralytics' ByteTrack / BoT-SORT, driven by any detector's boxes.

We do not write a tracker: ``BYTETracker``/``BOTSORT`` do association and Kalman filtering. This
module only adapts our ``Detections`` to the results-like object they read (``conf``, ``xywh``,
``xyxy``, ``cls``, boolean indexing) and turns their output back into our types, including which
tracks the tracker dropped for good this frame (the clip buffer closes those).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from models.errors import ContractError
from pipeline.config.settings import TrackerCfg
from pipeline.detection.base import Detections


class _UltralyticsDetections:
    """The minimal results-like view ultralytics trackers consume (person class only)."""

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray) -> None:
        self.xyxy = xyxy
        self.conf = conf
        self.cls = np.zeros(len(conf), np.float32)

    @property
    def xywh(self) -> np.ndarray:
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        return np.concatenate([self.xyxy[:, :2] + wh / 2, wh], axis=1)

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, index: np.ndarray) -> _UltralyticsDetections:
        return _UltralyticsDetections(self.xyxy[index], self.conf[index])


@dataclass(frozen=True, slots=True)
class TrackedBoxes:
    """Tracks confirmed in one frame, each tied to the detection that updated it.

    Attributes:
        track_ids: (N,) int64 tracker ids (unique within one ``Tracker``).
        xyxy: (N, 4) float32 the tracker's (Kalman-smoothed) boxes.
        det_index: (N,) int64 row of the matched detection in this frame's ``Detections``.
        ended: ids of tracks the tracker dropped for good in this frame.
    """

    track_ids: np.ndarray
    xyxy: np.ndarray
    det_index: np.ndarray
    ended: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.track_ids)
        if self.xyxy.shape != (n, 4) or self.det_index.shape != (n,):
            raise ContractError(f"TrackedBoxes arrays disagree: ids {n}, xyxy {self.xyxy.shape}, "
                                f"det_index {self.det_index.shape}")

    def __len__(self) -> int:
        return len(self.track_ids)


class Tracker:
    """One camera's tracker; ``update`` once per processed frame, in time order."""

    def __init__(self, cfg: TrackerCfg) -> None:
        self.cfg = cfg
        args = SimpleNamespace(
            tracker_type=cfg.kind, track_high_thresh=cfg.track_high_thresh, track_low_thresh=cfg.track_low_thresh,
            new_track_thresh=cfg.new_track_thresh, track_buffer=cfg.track_buffer, match_thresh=cfg.match_thresh,
            fuse_score=cfg.fuse_score, gmc_method=None if cfg.gmc_method == "none" else cfg.gmc_method,
            proximity_thresh=cfg.proximity_thresh, appearance_thresh=cfg.appearance_thresh, with_reid=False,
            model="auto",
        )
        self._active: set[int] = set()
        if cfg.kind == "botsort":
            from ultralytics.trackers.bot_sort import BOTSORT

            self._impl = BOTSORT(args)
        else:
            from ultralytics.trackers.byte_tracker import BYTETracker

            self._impl = BYTETracker(args)

    def update(self, detections: Detections, image: np.ndarray | None = None) -> TrackedBoxes:
        """Associate this frame's detections with the tracks; returns the confirmed tracks."""
        out = self._impl.update(_UltralyticsDetections(detections.xyxy, detections.scores), image)
        # ended = held before, held no more. (Its own removed list can repeat a track on the next
        # frame, and duplicate pruning drops tracks without listing them.)
        active = self.active_ids()
        ended = tuple(sorted(self._active - active))
        self._active = active
        if len(out) == 0:
            return TrackedBoxes(np.zeros((0,), np.int64), np.zeros((0, 4), np.float32), np.zeros((0,), np.int64), ended)
        out = np.asarray(out, np.float32).reshape(len(out), -1)  # [x1, y1, x2, y2, id, score, cls, idx]
        return TrackedBoxes(out[:, 4].astype(np.int64), np.ascontiguousarray(out[:, :4]),
                            out[:, 7].astype(np.int64), ended)

    def active_ids(self) -> set[int]:
        """Ids the tracker still holds (tracked or temporarily lost)."""
        return {int(t.track_id) for t in (*self._impl.tracked_stracks, *self._impl.lost_stracks) if t.is_activated}

    def reset(self) -> None:
        self._impl.reset()
        self._active = set()
