"""The retention sweep: delete what is older than its horizon, in the store, beside it and on the bus.

Run by the store's single writer: the matcher worker every ``retention.sweep_every``
(``pipeline/matcher/privacy.py``), an embedded replay at its start and its end, ``xreid retention`` on
demand. One sweep, in this order (``retention`` section, per camera where the data has one):

* ``tracks``: tracks with their links, merges and calibration scores, identities left empty; their
  crops and report entries (the same cascade as forget, ``Eraser.remove``);
* ``crops``: crop files and thumbnails (the rows stay), the contact sheets of their identities, and
  crop folders whose newest file is older than the longest crop horizon (orphans included);
* ``embeddings``: track vectors and the calibration scores measured on them (the rows stay; the matcher
  rebuilds its gallery without them);
* ``events``: day/night modality events and camera status rows, and the live-event log (by when each
  event was logged; the log has no camera column, so the shortest ``events`` horizon applies);
* ``watchlists``: watchlist entries created, and watchlist hits recorded, before their horizon (the
  hits of expired tracks already went with them);
* ``audit``: the query log (``<stem>.audit.sqlite``, or a PostgreSQL store's ``xreid_audit`` schema),
  erasure tombstones, forgotten-track hashes;
* the bus: ``xreid:clips`` past the crop horizon, ``xreid:embeddings`` past the embedding horizon,
  ``xreid:camera-status`` past the event horizon, every dead-letter stream past ``dead_letters``
  (``XTRIM MINID``). A stream has no camera, so the shortest horizon of the kind applies.

The clock is injected, so tests age data by moving time rather than waiting.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

from pipeline.bus import STREAM_CLIPS, STREAM_EMBEDDINGS, Bus, dead_stream
from pipeline.camera.status import STREAM_CAMERA_STATUS
from pipeline.config.settings import RetentionCfg
from pipeline.matcher.forget import Eraser
from pipeline.store import event_log, retention, watchlists
from pipeline.store.audit import audit_exists, delete_before, open_audit
from pipeline.store.erasure import TrackRef
from pipeline.store.identities import find_root, merged_parents
from pipeline.store.outputs import scrub_outputs
from pipeline.store.retention import Cutoff
from pipeline.store.schema import V_PRIVACY

log = logging.getLogger(__name__)

STREAM_KINDS = ((STREAM_CLIPS, "crops"), (STREAM_EMBEDDINGS, "embeddings"), (STREAM_CAMERA_STATUS, "events"))


@dataclass
class SweepResult:
    """What one sweep deleted (tracks, thumbnails and vectors dropped, rows and files and bus entries)."""

    tracks: int = 0
    identities: int = 0
    crops: int = 0
    embeddings: int = 0
    events: int = 0
    watchlists: int = 0
    audit: int = 0
    files: int = 0
    stream_entries: int = 0
    dead_letters: int = 0

    @property
    def matcher_stale(self) -> bool:
        """Whether the matcher's memory (tracks, gallery) holds something the store no longer has."""
        return bool(self.tracks or self.embeddings)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class RetentionSweep:
    """Enforces ``cfg`` on the store behind ``eraser`` (its crops, its report files, its bus)."""

    def __init__(self, eraser: Eraser, cfg: RetentionCfg, clock: Callable[[], float] = time.time) -> None:
        self.eraser, self.cfg, self.clock = eraser, cfg, clock
        self.store = eraser.store
        self.last_run: float | None = None
        self.totals = SweepResult()

    def due(self, now: float | None = None) -> bool:
        now = self.clock() if now is None else now
        return self.last_run is None or now - self.last_run >= self.cfg.sweep_every

    def cutoff(self, kind: str, now: float) -> Cutoff:
        """Per camera, the time before which ``kind`` expires."""
        default = getattr(self.cfg, kind)
        cams = {cam: self.cfg.horizon(kind, cam) for cam in self.cfg.cameras}
        return Cutoff(None if default is None else now - default,
                      {cam: None if h is None else now - h for cam, h in cams.items()})

    def shortest(self, kind: str) -> float | None:
        values = [h for h in (getattr(self.cfg, kind), *(self.cfg.horizon(kind, c) for c in self.cfg.cameras))
                  if h is not None]
        return min(values) if values else None

    def run(self, now: float | None = None) -> SweepResult:
        """One sweep at ``now`` (default: the clock); returns what it deleted."""
        now = self.clock() if now is None else now
        self.last_run = now
        out = SweepResult()
        if self.store.schema_version < V_PRIVACY:
            log.warning("retention: store %s is at schema v%d, nothing swept", self.store.path, self.store.schema_version)
            return out
        self._tracks(out, now)
        self._crops(out, now)
        refs = retention.expired_tracks(self.store, self.cutoff("embeddings", now), "embedding IS NOT NULL")
        if refs:
            with self.store.transaction():
                retention.drop_embeddings(self.store, refs)
            out.embeddings = len(refs)
        with self.store.transaction():
            out.events = retention.delete_events(self.store, self.cutoff("events", now))
            if (horizon := self.shortest("events")) is not None:
                out.events += event_log.delete_older_than(self.store, now - horizon)
            if self.cfg.watchlists is not None:
                cut = now - self.cfg.watchlists
                out.watchlists = watchlists.delete_older_than(self.store, cut) + \
                    watchlists.delete_hits_older_than(self.store, cut)
            if self.cfg.audit is not None:
                out.audit = retention.delete_tombstones(self.store, now - self.cfg.audit)
        if self.cfg.audit is not None and self.store.location != ":memory:" and audit_exists(self.store.location):
            with open_audit(self.store.location) as log_store:
                out.audit += delete_before(log_store, now - self.cfg.audit)
        if self.eraser.bus is not None:
            self._bus(out, self.eraser.bus, now)
        if out.tracks or out.crops or out.embeddings:
            self.store.flush_deleted()   # no copy of what went stays in the WAL
        for f in fields(out):
            setattr(self.totals, f.name, getattr(self.totals, f.name) + getattr(out, f.name))
        if any(out.as_dict().values()):
            log.info("retention sweep: %s", out.as_dict())
        return out

    def _tracks(self, out: SweepResult, now: float) -> None:
        refs = retention.expired_tracks(self.store, self.cutoff("tracks", now))
        if refs:
            counts = self.eraser.remove(refs, erased=False)
            out.tracks, out.identities, out.files = counts.n_tracks, counts.n_identities, counts.n_files
            out.crops += counts.n_crops
            out.dead_letters += counts.n_dead

    def _crops(self, out: SweepResult, now: float) -> None:
        refs = retention.expired_tracks(self.store, self.cutoff("crops", now), "thumbnail IS NOT NULL")
        keeper, folder = self.eraser.crops, self.eraser.folder
        if refs:
            uids = [r.track_uid for r in refs]
            if keeper is not None:
                out.crops += keeper.drop_tracks(uids)
            if folder is not None:   # their identities' contact sheets show those crops
                out.files += scrub_outputs(folder, (), (), (), self._roots(refs))
            with self.store.transaction():
                retention.drop_thumbnails(self.store, uids)
        longest = self._longest("crops")
        if keeper is not None and longest is not None:
            out.crops += keeper.drop_older_than(now - longest)

    def _roots(self, refs: list[TrackRef]) -> set[int]:
        parents = merged_parents(self.store)
        return {find_root(parents, r.identity_id) for r in refs if r.identity_id is not None}

    def _longest(self, kind: str) -> float | None:
        values = [getattr(self.cfg, kind), *(self.cfg.horizon(kind, c) for c in self.cfg.cameras)]
        return None if any(v is None for v in values) else max(values)  # type: ignore[type-var]

    def _bus(self, out: SweepResult, bus: Bus, now: float) -> None:
        for stream, kind in STREAM_KINDS:
            horizon = self.shortest(kind)
            if horizon is not None:
                out.stream_entries += bus.trim_before(stream, int((now - horizon) * 1000))
            if self.cfg.dead_letters is not None:
                out.dead_letters += bus.trim_before(dead_stream(stream), int((now - self.cfg.dead_letters) * 1000))
