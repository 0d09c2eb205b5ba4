"""Per-track crop buffering: turn tracks into ``Clip``s of T good, evenly spaced person crops.

Each open track keeps at most ``max_candidates`` crops. A crop's quality is the detector score
times penalties for being small, cut by the frame border, or covered by another person's box.
When the buffer is full, the interior candidate whose loss opens the smallest time gap (weighted by
its quality) goes, so the candidates stay spread over the segment while bad crops go first. A clip takes the best crop of each of T equal
time bins. Clips are emitted when a track ends and every ``segment_seconds`` while it lasts.

Memory is bounded per camera: ``max_open_tracks`` x ``max_candidates`` crops, each at most
``crop_height`` pixels on its longer side. New tracks past the limit are dropped and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np

from models.errors import ContractError
from pipeline.bus.messages import Clip, make_clip_id
from pipeline.config.settings import ClipCfg
from pipeline.detection.base import Detections
from pipeline.ingest.sources import Frame
from pipeline.tracking.tracker import TrackedBoxes

log = logging.getLogger(__name__)

BORDER_PX = 2.0          # a box this close to the frame edge is probably cut off
BORDER_PENALTY = 0.25
FULL_SIZE_PX = 128.0     # boxes this tall or taller carry no size penalty


@dataclass(slots=True)
class _Candidate:
    quality: float
    ts: float
    crop: np.ndarray     # (h, w, C) uint8, longer side <= crop_height
    box: np.ndarray      # (4,) float32 xyxy in source pixels
    score: float


@dataclass(slots=True)
class _OpenTrack:
    track_id: int
    uid: str
    first_ts: float
    last_ts: float
    n_frames: int = 0
    n_clips: int = 0
    segment: int = 0
    seg_start: float = 0.0
    seg_seen: int = 0
    candidates: list[_Candidate] = field(default_factory=list)
    thumbnail: bytes | None = None


@dataclass(frozen=True, slots=True)
class TrackSpan:
    """Who a track is and when it was seen: the fields every view of a track shares (camera, store, API)."""

    track_uid: str
    camera_id: str
    modality: str
    t_start: float
    t_end: float
    n_frames: int
    n_clips: int


@dataclass(frozen=True, slots=True)
class TrackSummary(TrackSpan):
    """A track's state when it emitted a clip or ended (what the store records)."""

    thumbnail: bytes | None
    ended: bool


@dataclass
class ClipBufferStats:
    tracks_opened: int = 0
    tracks_short: int = 0       # ended before min_track_frames: never became a clip
    tracks_dropped: int = 0     # refused because max_open_tracks were open
    clips: int = 0


def crop_quality(dets: Detections, width: int, height: int) -> np.ndarray:
    """(N,) quality in [0, 1] of each detection's crop: score x size x border x (1 - overlap)."""
    xyxy = dets.xyxy
    n = len(dets)
    if n == 0:
        return np.zeros((0,), np.float32)
    h = xyxy[:, 3] - xyxy[:, 1]
    size = np.minimum(1.0, h / FULL_SIZE_PX)
    cut = ((xyxy[:, 0] <= BORDER_PX) | (xyxy[:, 1] <= BORDER_PX) | (xyxy[:, 2] >= width - BORDER_PX)
           | (xyxy[:, 3] >= height - BORDER_PX))
    border = np.where(cut, BORDER_PENALTY, 1.0)
    # fraction of each box covered by its most-overlapping neighbour
    lt = np.maximum(xyxy[:, None, :2], xyxy[None, :, :2])
    rb = np.minimum(xyxy[:, None, 2:], xyxy[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    np.fill_diagonal(inter, 0.0)
    area = np.prod(xyxy[:, 2:] - xyxy[:, :2], axis=1)
    covered = np.minimum(1.0, inter.max(axis=1) / np.maximum(area, 1e-6))
    return (dets.scores * size * border * (1.0 - covered)).astype(np.float32)


def _crop(image: np.ndarray, box: np.ndarray, max_side: int) -> np.ndarray:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1 = max(x1, 0), max(y1, 0)
    x2, y2 = min(max(x2, x1 + 1), image.shape[1]), min(max(y2, y1 + 1), image.shape[0])
    crop = image[y1:y2, x1:x2]
    h, w = crop.shape[:2]
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        crop = cv2.resize(crop, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(crop)  # a copy: the frame must not stay alive through the crop


def select_evenly(ts: np.ndarray, quality: np.ndarray, t: int) -> np.ndarray:
    """Indices of ``t`` candidates: the best of each of ``t`` equal time bins (repeats if too few).

    Args:
        ts: (K,) sorted timestamps; quality: (K,) crop qualities; t: crops wanted.
    """
    k = len(ts)
    if k <= t:
        return np.round(np.linspace(0, k - 1, t)).astype(np.int64)
    edges = np.linspace(ts[0], ts[-1], t + 1)
    bins = np.clip(np.searchsorted(edges, ts, side="right") - 1, 0, t - 1)
    out, used = [], set()
    for b in range(t):
        members = [i for i in np.flatnonzero(bins == b) if i not in used]
        if not members:  # empty bin: the unused candidate nearest its centre
            centre = (edges[b] + edges[b + 1]) / 2
            members = [min((i for i in range(k) if i not in used), key=lambda i: abs(ts[i] - centre))]
        best = max(members, key=lambda i: quality[i])
        used.add(best)
        out.append(best)
    return np.sort(np.asarray(out, np.int64))


class ClipBuffer:
    """Crop candidates of every open track of one camera.

    Args:
        cfg: clip settings (sequence length, segment length, memory bounds, JPEG quality).
        camera_id, modality: copied into every clip.
        uid_for: tracker id -> track uid unique across restarts.
    """

    def __init__(self, cfg: ClipCfg, camera_id: str, modality: str, uid_for: Callable[[int], str]) -> None:
        self.cfg = cfg
        self.camera_id = camera_id
        self.modality = modality
        self._uid_for = uid_for
        self._open: dict[int, _OpenTrack] = {}
        self._refused: set[int] = set()
        self._summaries: list[TrackSummary] = []
        self.stats = ClipBufferStats()

    @property
    def open_track_ids(self) -> set[int]:
        return set(self._open)

    @property
    def bytes_held(self) -> int:
        """Bytes of crops held now (bounded by the config, whatever the scene)."""
        return sum(c.crop.nbytes for tr in self._open.values() for c in tr.candidates)

    def add(self, frame: Frame, dets: Detections, tracked: TrackedBoxes) -> list[Clip]:
        """Record this frame's crops of every tracked person; returns clips of segments that filled up."""
        if len(tracked) == 0:
            return []
        if len(tracked.det_index) and (tracked.det_index.max() >= len(dets) or tracked.det_index.min() < 0):
            raise ContractError("tracked boxes refer to detections this frame does not have")
        height, width = frame.image.shape[:2]
        quality = crop_quality(dets, width, height)
        clips: list[Clip] = []
        for track_id, det_i in zip(tracked.track_ids.tolist(), tracked.det_index.tolist(), strict=True):
            tr = self._open.get(track_id) or self._open_track(track_id, frame.ts)
            if tr is None:
                continue
            if tr.seg_seen == 0:
                tr.seg_start = frame.ts
            tr.n_frames += 1
            tr.seg_seen += 1
            tr.last_ts = frame.ts
            box = dets.xyxy[det_i]
            self._insert(tr, _Candidate(float(quality[det_i]), frame.ts, _crop(frame.image, box, self.cfg.crop_height),
                                        box.copy(), float(dets.scores[det_i])))
            # a segment rolls over on time, once the track is long enough to count at all
            if frame.ts - tr.seg_start >= self.cfg.segment_seconds and tr.n_frames >= self.cfg.min_track_frames:
                clip = self._emit(tr)
                if clip is not None:
                    clips.append(clip)
                    self._summaries.append(self._summary(tr, ended=False))
        return clips

    def end(self, track_ids: Iterable[int]) -> list[Clip]:
        """Close tracks the tracker dropped; returns their last clips."""
        clips = []
        for track_id in track_ids:
            self._refused.discard(track_id)
            tr = self._open.pop(track_id, None)
            if tr is None:
                continue
            if tr.n_frames < self.cfg.min_track_frames:
                self.stats.tracks_short += 1
                continue
            clip = self._emit(tr) if tr.seg_seen >= self.cfg.min_track_frames or tr.n_clips == 0 else None
            if clip is not None:
                clips.append(clip)
            self._summaries.append(self._summary(tr, ended=True))
        return clips

    def flush(self) -> list[Clip]:
        """End every open track (end of input or shutdown)."""
        return self.end(list(self._open))

    def pop_summaries(self) -> list[TrackSummary]:
        """Track summaries produced since the last call (clip emitted or track ended)."""
        out, self._summaries = self._summaries, []
        return out

    # -- internals -------------------------------------------------------------------------------

    def _open_track(self, track_id: int, ts: float) -> _OpenTrack | None:
        if track_id in self._refused:
            return None
        if len(self._open) >= self.cfg.max_open_tracks:
            self._refused.add(track_id)
            self.stats.tracks_dropped += 1
            if self.stats.tracks_dropped == 1 or self.stats.tracks_dropped % 100 == 0:
                log.warning("camera=%s dropped track %d: %d tracks already open (clips.max_open_tracks); "
                            "%d dropped so far", self.camera_id, track_id, len(self._open), self.stats.tracks_dropped)
            return None
        tr = _OpenTrack(track_id, self._uid_for(track_id), first_ts=ts, last_ts=ts)
        self._open[track_id] = tr
        self.stats.tracks_opened += 1
        return tr

    def _insert(self, tr: _OpenTrack, cand: _Candidate) -> None:
        cands = tr.candidates
        cands.append(cand)  # frames arrive in time order: the list stays sorted by ts
        if len(cands) <= self.cfg.max_candidates:
            return
        # drop the interior candidate whose loss opens the smallest time gap, weighted by its quality:
        # coverage of the segment is kept while bad crops go first; the first and newest stay
        ts = np.fromiter((c.ts for c in cands), np.float64, len(cands))
        quality = np.fromiter((c.quality for c in cands), np.float64, len(cands))
        cost = (ts[2:] - ts[:-2]) * (0.5 + quality[1:-1])
        drop = 1 + int(np.argmin(cost))
        del cands[drop]

    def _emit(self, tr: _OpenTrack) -> Clip | None:
        cands = tr.candidates
        if not cands:
            return None
        ts = np.fromiter((c.ts for c in cands), np.float64, len(cands))
        quality = np.fromiter((c.quality for c in cands), np.float32, len(cands))
        chosen = [cands[i] for i in select_evenly(ts, quality, self.cfg.seq_len)]
        jpegs = tuple(self._jpeg(c.crop) for c in chosen)
        clip = Clip(
            clip_id=make_clip_id(self.camera_id, tr.uid, tr.segment), camera_id=self.camera_id,
            modality=self.modality, track_uid=tr.uid, segment=tr.segment,
            t_start=float(tr.seg_start), t_end=float(tr.last_ts), frames=jpegs,
            boxes_xyxy=np.stack([c.box for c in chosen]).astype(np.float32),
            frame_ts=np.asarray([c.ts for c in chosen], np.float64),
            det_scores=np.asarray([c.score for c in chosen], np.float32), n_seen=tr.seg_seen,
        )
        if tr.thumbnail is None:
            tr.thumbnail = jpegs[int(np.argmax([c.quality for c in chosen]))]
        tr.n_clips += 1
        tr.segment += 1
        tr.seg_seen = 0
        tr.candidates = []
        self.stats.clips += 1
        return clip

    def _jpeg(self, crop: np.ndarray) -> bytes:
        h, w = crop.shape[:2]
        target_h = self.cfg.crop_height
        if h != target_h:
            target_w = max(1, round(w * target_h / h))
            crop = cv2.resize(crop, (target_w, target_h), interpolation=cv2.INTER_LINEAR if h < target_h else cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, self.cfg.jpeg_quality])
        if not ok:
            raise ContractError(f"JPEG encoding failed for a {crop.shape} crop")
        return buf.tobytes()

    def _summary(self, tr: _OpenTrack, ended: bool) -> TrackSummary:
        return TrackSummary(tr.uid, self.camera_id, self.modality, tr.first_ts, tr.last_ts, tr.n_frames,
                            tr.n_clips, tr.thumbnail, ended)
