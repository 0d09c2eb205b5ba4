"""A track counts only once it behaves like a person: seen in most frames, and moving.

A thermal detector finds everything warm and person-shaped: a radiator, a running engine, a
lamp, a warm patch of wall, the reflection of a person in glass or on a wet floor. The tracker
happily follows them. What tells them apart from people is behaviour over time, not one frame:

* warm static objects never move: a track must travel ``min_travel`` box heights from where it
  first appeared;
* reflections and glints come and go: a track must be seen in ``min_hits`` frames and in at
  least ``min_hit_ratio`` of the frames since it appeared (a track re-found after a gap of more
  than ``2 * min_hits`` frames is judged afresh: the tracker may have handed a lost id to someone else).

``BehaviourGate`` sits between the tracker and the clip buffer and passes only confirmed tracks;
a confirmed track stays confirmed (a person who stops walking is still a person). It works on the
tracker's ids (the tracker does the association; nothing here re-tracks). A person who stands
still from the moment they appear is not confirmed until they move: the price of ignoring warm
furniture, stated in docs/daynight.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from pipeline.config.settings import PersistenceCfg
from pipeline.tracking.tracker import TrackedBoxes

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Pending:
    first_frame: int
    first_ts: float
    origin: np.ndarray       # (2,) box centre when first seen
    last_frame: int = -1
    hits: int = 0
    travel: float = 0.0      # largest centre displacement from the origin, in box heights


class BehaviourGate:
    """Filters tracker output down to tracks that moved and persisted like people.

    Args:
        cfg: thresholds (``min_hits``, ``min_hit_ratio``, ``min_travel``, ``max_pending_s``).
    """

    def __init__(self, cfg: PersistenceCfg) -> None:
        self.cfg = cfg
        self._frame = -1
        self._pending: dict[int, _Pending] = {}
        self._confirmed: dict[int, float] = {}   # id -> last seen ts
        self.suppressed_boxes = 0     # boxes withheld because their track was not (yet) confirmed
        self.expired = 0              # pending tracks forgotten after max_pending_s

    @property
    def confirmed_ids(self) -> set[int]:
        return set(self._confirmed)

    def update(self, ts: float, tracked: TrackedBoxes) -> TrackedBoxes:
        """Record one frame's tracks and return only the confirmed ones (``ended`` passes through)."""
        self._frame += 1
        cfg = self.cfg
        keep = np.zeros(len(tracked), bool)
        for row, (tid, box) in enumerate(zip(tracked.track_ids.tolist(), tracked.xyxy, strict=True)):
            if tid in self._confirmed:
                self._confirmed[tid] = ts
                keep[row] = True
                continue
            centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], np.float64)
            height = max(float(box[3] - box[1]), 1.0)
            p = self._pending.get(tid)
            if p is None or self._frame - p.last_frame > 2 * cfg.min_hits:
                # new, or re-found after a long gap (the tracker may hand a lost id to someone else): judge afresh
                p = self._pending[tid] = _Pending(self._frame, ts, centre)
            p.last_frame = self._frame
            p.hits += 1
            p.travel = max(p.travel, float(np.linalg.norm(centre - p.origin)) / height)
            ratio = p.hits / (self._frame - p.first_frame + 1)
            if p.hits >= cfg.min_hits and ratio >= cfg.min_hit_ratio and p.travel >= cfg.min_travel:
                self._confirmed[tid] = ts
                del self._pending[tid]
                keep[row] = True
                log.debug("track %d confirmed after %d hits, travel %.2f box heights", tid, p.hits, p.travel)
        self.suppressed_boxes += int((~keep).sum())
        self._expire(ts)
        for tid in tracked.ended:
            self.forget(tid)
        return TrackedBoxes(tracked.track_ids[keep], tracked.xyxy[keep], tracked.det_index[keep], tracked.ended)

    def forget(self, track_id: int) -> None:
        """The tracker dropped ``track_id`` for good."""
        self._pending.pop(track_id, None)
        self._confirmed.pop(track_id, None)

    def reset(self) -> None:
        """Forget every track (the tracker was reset)."""
        self._pending.clear()
        self._confirmed.clear()

    def _expire(self, ts: float) -> None:
        stale = [tid for tid, p in self._pending.items() if ts - p.first_ts > self.cfg.max_pending_s]
        for tid in stale:
            del self._pending[tid]
        self.expired += len(stale)
        # ids the tracker let go without reporting them ended: bounded memory all the same
        for tid in [tid for tid, last in self._confirmed.items() if ts - last > self.cfg.max_pending_s]:
            del self._confirmed[tid]
