"""Compare each new or updated track with the watchlists: "tell me when this person shows up".

The matcher runs ``Watchlist.check`` on every track it just folded a clip into. A track hits an
entry of its own model when its best score against the entry's references reaches the entry's
threshold; each (entry, track) pair hits at most once, so a person who stays in view is announced
once per track, not once per clip. Entries are added and removed by the CLI and the API's admin
routes in the store; the matcher re-reads them every ``refresh_s`` seconds (a handful of rows).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import numpy as np

from models.errors import StoreError
from pipeline.matcher.matcher import TrackState
from pipeline.store import watchlists
from pipeline.store.base import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WatchHit:
    """One track matching one watchlist entry, with the evidence a receiver is sent."""

    watchlist_id: int
    name: str
    model_id: str
    threshold: float
    track: TrackState
    score: float
    scores: tuple[float, ...]   # one per reference vector of the entry
    ts: float

    @property
    def crops_path(self) -> str:
        """Where the API serves the track's crop (fetched with the API token)."""
        return f"/tracks/{quote(self.track.track_uid, safe='')}/thumbnail.jpg"


@dataclass(frozen=True, slots=True)
class _Entry:
    id: int
    name: str
    threshold: float
    refs: np.ndarray   # (N, D) unit float32


class Watchlist:
    """The store's watchlist entries, grouped by model, and the hits already recorded.

    Args:
        store: where entries and hits live (the matcher's store).
        refresh_s: how often entries are re-read from the store.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, store: Store, refresh_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.refresh_s, self.clock = store, refresh_s, clock
        self._by_model: dict[str, list[_Entry]] = {}
        self._hit: set[tuple[int, str]] = set()
        self._pending: set[tuple[int, str]] = set()   # hits of the batch not committed yet
        self._loaded_at: float | None = None
        self.hits = 0
        self.reload()

    def reload(self) -> None:
        """Read entries and recorded hits now (at start, after a failed commit, and every ``refresh_s``)."""
        by_model: dict[str, list[_Entry]] = {}
        try:
            for entry, refs in watchlists.load_refs(self.store):
                by_model.setdefault(entry.model_id, []).append(_Entry(entry.id, entry.name, entry.threshold, refs))
            hit = watchlists.hit_keys(self.store)
        except StoreError as e:   # the entries in memory stay until the store answers again
            log.warning("watchlists not re-read: %s", e)
            self._loaded_at = self.clock()
            return
        self._by_model, self._hit, self._loaded_at = by_model, hit, self.clock()

    @property
    def n_entries(self) -> int:
        return sum(len(v) for v in self._by_model.values())

    def check(self, track: TrackState, ts: float) -> list[WatchHit]:
        """Entries of ``track``'s model that it hits now for the first time (``commit`` or ``abort`` them).

        Args:
            ts: when (UTC epoch seconds of the evidence) the track was seen matching.
        """
        if self._loaded_at is None or self.clock() - self._loaded_at >= self.refresh_s:
            self.reload()
        entries = self._by_model.get(track.model_id)
        if not entries:
            return []
        vec = track.vector
        out = []
        for e in entries:
            key = (e.id, track.track_uid)
            if key in self._hit or key in self._pending or e.refs.shape[1] != vec.size:
                continue
            scores = e.refs @ vec                      # (N,) cosine per reference
            best = float(scores.max())
            if best >= e.threshold:
                self._pending.add(key)
                out.append(WatchHit(e.id, e.name, track.model_id, e.threshold, track, round(best, 6),
                                    tuple(round(float(s), 6) for s in scores), ts))
        return out

    def commit(self, hits: list[WatchHit]) -> None:
        """The hits are durable: never announce them again."""
        for h in hits:
            key = (h.watchlist_id, h.track.track_uid)
            self._hit.add(key)
            self._pending.discard(key)
        self.hits += len(hits)

    def abort(self) -> None:
        """The batch's commit failed: its hits may be found again when it is redelivered."""
        self._pending.clear()

    @staticmethod
    def rows(hits: list[WatchHit]) -> list[watchlists.HitRow]:
        return [watchlists.HitRow(h.watchlist_id, h.track.track_uid, h.score, h.ts) for h in hits]
