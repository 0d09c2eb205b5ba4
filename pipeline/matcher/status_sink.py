"""The matcher's side of camera reports: drain ``xreid:camera-status`` into the store, then ack.

The store has one writer, the matcher, so camera workers publish their status, modality switches
and ended tracks on the bus (``pipeline/camera/status.py``) and this sink, run by the matcher worker
(and by the embedded replay after its matcher stage), makes them durable and announces them
(``camera.status``, ``modality.switch``, ``track.ended``) once they are.

A track's end reaches the sink before its last clip has been embedded and matched (re-ID takes
time), so ``track.ended`` waits until the matcher holds as many clips of the track as the camera
published, carrying the identity the track ended with, or ``end_wait_s`` at most (a clip
dead-lettered on the way), then goes out with what the matcher knows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from models.errors import ContractError
from pipeline.bus import Bus
from pipeline.camera.status import (
    GROUP_STATUS_STORE,
    STREAM_CAMERA_STATUS,
    CameraStatusEvent,
    TrackEnded,
    decode_report,
)
from pipeline.ingest.daynight import ModalitySwitch
from pipeline.matcher.announce import Announcer
from pipeline.matcher.matcher import Matcher
from pipeline.store.base import Store
from pipeline.store.cameras import upsert_statuses
from pipeline.store.erasure import is_forgotten
from pipeline.store.modality_events import record_switch
from pipeline.store.tracks import TrackRow, upsert_track


@dataclass
class _PendingEnd:
    report: TrackEnded
    deadline: float


class CameraStatusSink:
    """Moves camera reports from the bus into the store and announces them (run by the store's single writer).

    Args:
        consumer: this worker's consumer name in the status group.
        announcer: announces what was stored (None: store only).
        matcher: the live matcher (called each time: a failed commit replaces it), for track ends.
        end_wait_s: how long a ``track.ended`` waits for the track's last clips to be matched.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, bus: Bus, store: Store, consumer: str, claim_idle_ms: int = 30_000,
                 announcer: Announcer | None = None, matcher: Callable[[], Matcher] | None = None,
                 end_wait_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.bus, self.store, self.consumer, self.claim_idle_ms = bus, store, consumer, claim_idle_ms
        self.announcer, self.matcher, self.end_wait_s, self.clock = announcer, matcher, end_wait_s, clock
        self.saved = 0
        self.dead_lettered = 0
        self._ends: dict[tuple[str, str], _PendingEnd] = {}
        bus.ensure_group(STREAM_CAMERA_STATUS, GROUP_STATUS_STORE)

    @property
    def pending_ends(self) -> int:
        return len(self._ends)

    def step(self, count: int = 100) -> int:
        """Store what is waiting (never blocks) and announce the track ends that are due; returns reports saved."""
        saved = self._drain_reports(count)
        self._announce_ends(force=False)
        return saved

    def _drain_reports(self, count: int) -> int:
        msgs = self.bus.claim_stale(STREAM_CAMERA_STATUS, GROUP_STATUS_STORE, self.consumer, self.claim_idle_ms, count)
        msgs += self.bus.read(STREAM_CAMERA_STATUS, GROUP_STATUS_STORE, self.consumer, count, 0)
        if not msgs:
            return 0
        statuses: list[CameraStatusEvent] = []
        switches: list[ModalitySwitch] = []
        ends: list[TrackEnded] = []
        ids: list[str] = []
        for m in msgs:
            try:
                report = decode_report(m.data)
            except ContractError as e:
                self.bus.dead_letter(STREAM_CAMERA_STATUS, GROUP_STATUS_STORE, m, f"contract: {e}")
                self.dead_lettered += 1
                continue
            if isinstance(report, CameraStatusEvent):
                statuses.append(report)
            elif isinstance(report, ModalitySwitch):
                switches.append(report)
            else:
                ends.append(report)
            ids.append(m.id)
        ann = self.announcer.begin() if self.announcer is not None else None
        with self.store.transaction():   # durable first, then announce, then ack
            upsert_statuses(self.store, statuses)
            for event in switches:
                record_switch(self.store, event)  # idempotent: a redelivered event rewrites the same row
            for end in ends:   # the camera's view of the track (frames seen, span): idempotent widening
                upsert_track(self.store, TrackRow(end.track_uid, end.camera_id, end.modality, end.t_start, end.t_end,
                                                  end.n_frames, end.n_clips))
            if self.announcer is not None and ann is not None:
                for status in statuses:
                    self.announcer.camera_status(ann, status)
                for event in switches:
                    self.announcer.modality_switch(ann, event)
                self.announcer.write(self.store, ann)
        if self.announcer is not None and ann is not None:
            self.announcer.publish(ann)
        deadline = self.clock() + self.end_wait_s
        for end in ends:
            self._ends.setdefault((end.camera_id, end.track_uid), _PendingEnd(end, deadline))
        self.bus.ack(STREAM_CAMERA_STATUS, GROUP_STATUS_STORE, ids)
        self.saved += len(ids)
        return len(ids)

    def _announce_ends(self, force: bool) -> int:
        """Announce the ended tracks whose clips are all matched (or whose wait ran out, or all when ``force``)."""
        if not self._ends:
            return 0
        if self.announcer is None or self.matcher is None:
            self._ends.clear()   # stored already; nobody to tell
            return 0
        matcher, now = self.matcher(), self.clock()
        ann = self.announcer.begin()
        due = []
        for key, p in self._ends.items():
            track = matcher.find_track(*key)
            if force or now >= p.deadline or (track is not None and len(track.segments) >= p.report.n_clips):
                due.append(key)
                if is_forgotten(self.store, key[1]):   # erased while it waited: its end must not name it again
                    continue
                identity = matcher.forest.find(track.identity) if track is not None else None
                self.announcer.track_ended(ann, p.report, track, identity)
        if not due:
            return 0
        with self.store.transaction():
            self.announcer.write(self.store, ann)
        for key in due:
            del self._ends[key]
        self.announcer.publish(ann)
        return len(due)

    # -- embedded replay: a downstream stage of the replay loop -------------------------------------

    def poll(self) -> int:
        return self.step()

    def drain(self) -> int:
        """Everything reported so far; every track end goes out (the matcher has drained before this)."""
        n = 0
        while (k := self._drain_reports(100)) > 0:
            n += k
        self._announce_ends(force=True)
        return n
