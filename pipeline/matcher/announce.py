"""The matcher's decisions as live events: built before the commit, logged in it, published after it.

The matcher is where tracks become durable facts, so it is where they are announced (docs/events.md):

* ``track.started``: a track's first clip is committed (a camera track too short to become a clip
  is noise nobody can look up, so it is never announced);
* ``identity.created`` / ``identity.linked`` / ``identity.merged``: the ``Outcome`` of a clip;
* ``watchlist.hit``: a new or updated track reaches a watchlist entry of its model (``Watchlist``);
* ``track.ended``, ``camera.status``, ``modality.switch``: camera reports the status sink stores
  (``pipeline/matcher/status_sink.py``).

The caller collects a batch's events in an ``Announcement``, writes their rows into the store's
event log inside the transaction of the facts (``write``), and hands them to the ``EventHub`` only
once that transaction has committed (``publish``): an event always names a fact a reader can find,
and a rolled-back batch announces nothing (``abort``). The API tails the event log; MQTT and
webhooks get the events from the hub.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from models.errors import ContractError
from pipeline.camera.status import CameraStatusEvent, TrackEnded
from pipeline.config.events import EventsCfg
from pipeline.events.event import Event
from pipeline.events.hub import EventHub
from pipeline.ingest.daynight import ModalitySwitch
from pipeline.matcher.matcher import Matcher, Outcome, TrackState
from pipeline.matcher.watchlist import WatchHit, Watchlist
from pipeline.store import event_log
from pipeline.store.base import Store
from pipeline.store.watchlists import add_hits

log = logging.getLogger(__name__)

TRIM_EVERY = 256   # logged events between two trims of the event log


@dataclass
class Announcement:
    """The events (and watchlist hits) of one batch, from the decision to their publication."""

    decided_at: float = field(default_factory=time.perf_counter)
    events: list[Event] = field(default_factory=list)
    hits: list[WatchHit] = field(default_factory=list)


class Announcer:
    """Turns decisions into ``Event``s, logs them with the facts and publishes them after the commit.

    Args:
        hub: where events go after the commit (MQTT, webhooks); None: only the store's event log.
        site: stamped on every event (``events.site``).
        log_keep: newest events kept in the store's event log (0: no log).
        watchlist: compares each new or updated track with the watchlists (None: no watchlists).

    Attributes:
        announced: events published, by kind.
        invalid: events that could not be built (a bug: logged, never raised into the matcher).
        latencies_s: recent decision -> hand-over-to-sinks times (the store commit included).
    """

    def __init__(self, hub: EventHub | None = None, site: str = "default", log_keep: int = 10_000,
                 watchlist: Watchlist | None = None) -> None:
        self.hub, self.site, self.log_keep, self.watchlist = hub, site, log_keep, watchlist
        self.announced: Counter[str] = Counter()
        self.invalid = 0
        self.latencies_s: deque[float] = deque(maxlen=4096)
        self._since_trim = 0

    @classmethod
    def for_config(cls, cfg: EventsCfg, store: Store, hub: EventHub | None) -> Announcer:
        """The announcer the ``events`` section asks for, with the store's watchlists."""
        return cls(hub, cfg.site, cfg.log_keep, Watchlist(store, cfg.watchlist_refresh_s))

    def begin(self) -> Announcement:
        return Announcement()

    # -- building ------------------------------------------------------------------------------

    def _event(self, ann: Announcement, kind: str, ts: float, **payload: Any) -> None:
        try:
            ann.events.append(Event.make(kind, self.site, ts, **payload))
        except ContractError as e:
            self.invalid += 1
            log.error("event %s not announced (invalid: %s)", kind, e)

    def outcome(self, ann: Announcement, out: Outcome, matcher: Matcher) -> None:
        """Add the events of one clip's outcome (call right after ``observe``: merges move identities later)."""
        if out.duplicate or out.track is None:
            return
        t = out.track
        where = {"camera_id": t.camera_id, "track_uid": t.track_uid, "modality": t.modality}
        if out.new_track:
            self._event(ann, "track.started", t.t_start, **where, t_start=t.t_start)
        if out.new_identity is not None:
            self._event(ann, "identity.created", t.t_end, identity=out.new_identity, **where)
        for ln in out.links:
            if ln.kind != "join" or ln.score is None or ln.threshold is None or ln.matched_track is None:
                continue
            matched = matcher.track(ln.matched_track)
            if matched is not None:
                self._event(ann, "identity.linked", ln.ts, identity=ln.identity, **where, score=ln.score,
                            threshold=ln.threshold, matched_track_uid=matched.track_uid)
        for m in out.merges:
            evidence = matcher.track(m.evidence_track)
            if evidence is not None:
                self._event(ann, "identity.merged", m.ts, winner=m.winner, loser=m.loser,
                            evidence_track_uid=evidence.track_uid, score=m.score)
        if self.watchlist is not None:
            identity = matcher.forest.find(t.identity)
            for hit in self.watchlist.check(t, t.t_end):
                ann.hits.append(hit)
                self._event(ann, "watchlist.hit", hit.ts, watchlist_id=hit.watchlist_id, name=hit.name,
                            identity=identity, **where, model_id=hit.model_id, score=hit.score,
                            threshold=hit.threshold, scores=list(hit.scores), crops_path=hit.crops_path)

    def track_ended(self, ann: Announcement, report: TrackEnded, track: TrackState | None,
                    identity: int | None) -> None:
        """``track.ended`` with the span the camera saw and the identity the matcher gave the track."""
        t_start = min(report.t_start, track.t_start) if track is not None else report.t_start
        t_end = max(report.t_end, track.t_end) if track is not None else report.t_end
        self._event(ann, "track.ended", t_end, camera_id=report.camera_id, track_uid=report.track_uid,
                    modality=report.modality, t_start=t_start, t_end=t_end, identity=identity)

    def camera_status(self, ann: Announcement, ev: CameraStatusEvent) -> None:
        self._event(ann, "camera.status", ev.ts, camera_id=ev.camera_id, state=ev.state, reason=ev.reason,
                    source=ev.source, modality=ev.modality)

    def modality_switch(self, ann: Announcement, sw: ModalitySwitch) -> None:
        self._event(ann, "modality.switch", sw.ts, camera_id=sw.camera_id, from_modality=sw.from_modality,
                    to_modality=sw.to_modality, saturation=_finite(sw.saturation), correlation=_finite(sw.correlation))

    # -- the commit ------------------------------------------------------------------------------

    def write(self, store: Store, ann: Announcement) -> None:
        """Log the batch's events and hits (call inside the transaction of the facts they announce)."""
        if self.watchlist is not None and ann.hits:
            add_hits(store, Watchlist.rows(ann.hits))
        if self.log_keep <= 0 or not ann.events or not event_log.has_log(store):
            return
        event_log.append(store, [event_log.LogRow(e.event_id, e.kind, e.ts, e.to_json(), tracks=e.tracks,
                                                  identities=e.identities) for e in ann.events])
        self._since_trim += len(ann.events)
        if self._since_trim >= TRIM_EVERY:
            self._since_trim = 0
            event_log.trim(store, self.log_keep)

    def writer(self, ann: Announcement) -> Callable[[Store], None]:
        """``write`` bound to ``ann``, for ``records.save(..., also=...)``."""
        return lambda store: self.write(store, ann)

    def publish(self, ann: Announcement) -> None:
        """The transaction committed: hand the events to the sinks (never blocks, never raises)."""
        if self.watchlist is not None:
            self.watchlist.commit(ann.hits)
        for e in ann.events:
            self.announced[e.kind] += 1
            if self.hub is not None:
                self.hub.publish(e)
        if ann.events:
            self.latencies_s.append(time.perf_counter() - ann.decided_at)

    def abort(self, ann: Announcement) -> None:
        """The transaction rolled back: nothing of ``ann`` happened."""
        if self.watchlist is not None:
            self.watchlist.abort()
        ann.events.clear()
        ann.hits.clear()

    def snapshot(self) -> dict[str, Any]:
        """Counts for metrics and health (the hub's own counters are ``hub.snapshot()``)."""
        return {"announced": dict(self.announced), "invalid": self.invalid,
                "watchlist_entries": self.watchlist.n_entries if self.watchlist is not None else 0,
                "watchlist_hits": self.watchlist.hits if self.watchlist is not None else 0}


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
