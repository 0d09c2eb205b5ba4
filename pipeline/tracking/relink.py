"""Fragment relinking inside one camera: a person lost and found again keeps one track id.

ByteTrack keeps a lost track for ``track_buffer`` frames but re-finds it only where its Kalman
prediction still overlaps the new box; after an occlusion or a crossing the person comes back
under a new id, and one identity becomes two clips, two tracks, two re-ID queries. ``Relinker``
sits between the tracker and the clip buffer and renames: when the tracker starts a new id, the
tracks lost within ``max_gap_frames`` are candidates if the new box lies near where the lost one
was heading (constant velocity, a gate that widens with the gap), has a similar height, and its
colours (HSV histograms of the upper and lower body) are similar; candidates and new ids are
paired by the Hungarian method (scipy) on appearance and distance. Nothing here associates boxes
frame to frame: that stays the tracker's job.

Output ids are the relinker's own (1, 2, ...); an output id ends when none of the tracker ids
carrying it is alive and it has been unseen for ``max_gap_frames`` (it can no longer be relinked).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from pipeline.config.settings import RelinkCfg
from pipeline.tracking.tracker import TrackedBoxes

log = logging.getLogger(__name__)

_HIST_BINS = (8, 4, 4)  # H, S, V
_NO_MATCH = 1e6


def appearance_features(image: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """(N, D) unit-norm colour descriptors of the people in (N, 4) boxes of a BGR frame.

    Upper and lower body are described apart (shirt and trousers differ more between people
    than a whole-body histogram does), on the box's inner 70% width (less background); square
    roots of the normalised histograms make the dot product the Bhattacharyya coefficient.
    """
    dim = 2 * int(np.prod(_HIST_BINS))
    out = np.zeros((len(xyxy), dim), np.float32)
    if len(xyxy) == 0:
        return out
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV) if image.ndim == 3 else cv2.cvtColor(
        cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), cv2.COLOR_BGR2HSV)
    height, width = hsv.shape[:2]
    for i, (x1, y1, x2, y2) in enumerate(np.rint(xyxy).astype(np.int64)):
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        w, h = x2 - x1, y2 - y1
        if w < 3 or h < 6:
            continue
        xa, xb = x1 + int(0.15 * w), x2 - int(0.15 * w)
        top, mid = y1 + int(0.1 * h), y1 + h // 2   # skip the head: hair and faces look alike at this size
        parts = []
        for a, b in ((top, mid), (mid, y2)):
            hist = cv2.calcHist([hsv[a:b, xa:xb]], [0, 1, 2], None, list(_HIST_BINS), [0, 180, 0, 256, 0, 256])
            parts.append(np.sqrt(hist.ravel() / max(float(hist.sum()), 1.0)))
        v = np.concatenate(parts)
        out[i] = v / max(float(np.linalg.norm(v)), 1e-6)
    return out


@dataclass
class _Identity:
    """What is remembered of one output id."""

    last_frame: int
    centre: np.ndarray           # (2,) px
    height: float
    feature: np.ndarray          # (D,) unit norm
    history: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (frame, centre), last few
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))    # px per frame


class Relinker:
    """Maps one camera's tracker ids onto stable output ids, joining fragments of one person."""

    def __init__(self, cfg: RelinkCfg) -> None:
        self.cfg = cfg
        self.relinks = 0
        self.reset()

    def reset(self) -> None:
        self._frame = 0
        self._carrier: dict[int, int] = {}      # tracker id -> output id
        self._retired: set[int] = set()         # tracker ids whose output id moved to a newer tracker id
        self._ids: dict[int, _Identity] = {}
        self._next = 1

    def update(self, tracked: TrackedBoxes, image: np.ndarray, tracker_alive: set[int]) -> TrackedBoxes:
        """Rename this frame's tracks; ``tracker_alive`` are the ids the tracker still holds.

        Returns:
            the same boxes under output ids, with ``ended`` holding the output ids that closed.
        """
        self._frame += 1
        frame = self._frame
        n = len(tracked)
        out = np.zeros(n, np.int64)
        present: set[int] = set()
        new_rows = []
        for i, tid in enumerate(tracked.track_ids.tolist()):
            oid = self._carrier.get(tid)
            if oid is not None and tid not in self._retired and oid not in present:
                out[i] = oid
                present.add(oid)
            else:
                new_rows.append(i)
        feats = appearance_features(image, tracked.xyxy) if n else np.zeros((0, 1), np.float32)
        matched = self._match(new_rows, tracked.xyxy, feats, present) if new_rows else {}
        for i in new_rows:
            tid = int(tracked.track_ids[i])
            oid = matched.get(i)
            if oid is None:
                oid = self._next
                self._next += 1
            else:
                self.relinks += 1
                self._retired.update(t for t, o in self._carrier.items() if o == oid and t != tid)
                log.debug("relinked tracker id %d onto output id %d at frame %d", tid, oid, frame)
            self._carrier[tid] = oid
            self._retired.discard(tid)
            out[i] = oid
            present.add(oid)
        for i, oid in enumerate(out.tolist()):
            self._observe(oid, tracked.xyxy[i], feats[i], frame)
        ended = self._expire(tracker_alive, present)
        return TrackedBoxes(out, tracked.xyxy, tracked.det_index, tuple(ended))

    def active_ids(self) -> set[int]:
        """Output ids that are open: seen recently enough to be continued."""
        return set(self._ids)

    def _match(self, rows: list[int], xyxy: np.ndarray, feats: np.ndarray, present: set[int]) -> dict[int, int]:
        cfg, frame = self.cfg, self._frame
        lost = [oid for oid, ident in self._ids.items()
                if oid not in present and 1 <= frame - ident.last_frame <= cfg.max_gap_frames]
        if not lost:
            return {}
        cost = np.full((len(rows), len(lost)), _NO_MATCH)
        for a, i in enumerate(rows):
            box = xyxy[i]
            centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
            height = float(box[3] - box[1])
            for b, oid in enumerate(lost):
                ident = self._ids[oid]
                gap = frame - ident.last_frame
                gate = cfg.gate + cfg.gate_per_frame * gap
                dist = float(np.linalg.norm(centre - (ident.centre + ident.velocity * gap))) / ident.height
                if dist > gate or abs(height / ident.height - 1.0) > cfg.size_tolerance:
                    continue
                sim = float(feats[i] @ ident.feature)
                if sim < cfg.min_similarity:
                    continue
                cost[a, b] = (1.0 - sim) + 0.2 * dist / gate
        r, c = linear_sum_assignment(cost)
        return {rows[a]: lost[b] for a, b in zip(r, c, strict=True) if cost[a, b] < _NO_MATCH}

    def _observe(self, oid: int, box: np.ndarray, feat: np.ndarray, frame: int) -> None:
        centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], np.float64)
        height = max(float(box[3] - box[1]), 1.0)
        ident = self._ids.get(oid)
        if ident is None:
            self._ids[oid] = _Identity(frame, centre, height, feat.copy(), [(frame, centre)])
            return
        ident.history.append((frame, centre))
        del ident.history[:-self.cfg.velocity_frames]
        (f0, c0), (f1, c1) = ident.history[0], ident.history[-1]
        ident.velocity = (c1 - c0) / max(f1 - f0, 1)
        ident.last_frame, ident.centre, ident.height = frame, centre, height
        m = self.cfg.appearance_momentum
        if np.any(feat):
            blended = m * ident.feature + (1.0 - m) * feat
            ident.feature = blended / max(float(np.linalg.norm(blended)), 1e-6)

    def _expire(self, tracker_alive: set[int], present: set[int]) -> list[int]:
        """Output ids that can neither be updated by the tracker nor relinked any more."""
        alive_out = {o for t, o in self._carrier.items() if t in tracker_alive and t not in self._retired}
        ended = [oid for oid, ident in self._ids.items()
                 if oid not in present and oid not in alive_out
                 and self._frame - ident.last_frame > self.cfg.max_gap_frames]
        for oid in ended:
            del self._ids[oid]
        gone = [t for t, o in self._carrier.items() if o in ended or (t not in tracker_alive and o not in self._ids)]
        for t in gone:
            del self._carrier[t]
            self._retired.discard(t)
        return sorted(ended)
