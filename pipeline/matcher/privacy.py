"""What the store's single writer does between two batches besides matching: privacy duties.

``MatcherStage.step`` calls ``tick`` first. It renews the writer lease (so requesters know a live matcher
will execute their forget requests), executes the queued requests (``pipeline/matcher/forget.py``), and
runs the retention sweep when it is due (``pipeline/matcher/retention.py``). ``tick`` answers whether the
store lost rows the matcher holds in memory, and the stage then rebuilds the matcher from the store: the
faiss galleries, the union-find forest and each identity's members come back without the erased tracks.
A rebuild also follows a request executed by someone else while the lease had lapsed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from models.errors import StoreError
from pipeline.matcher.forget import HEARTBEAT_S, MATCHER_ROLE, STALE_CLAIM_S, Eraser
from pipeline.matcher.retention import RetentionSweep
from pipeline.store import erasure
from pipeline.store.schema import V_PRIVACY

log = logging.getLogger(__name__)


class PrivacyDuty:
    """Lease, queued erasures and the retention schedule of one matcher.

    Args:
        eraser: executes requests (its name is the lease holder).
        sweep: the retention sweep (None: retention is run elsewhere, e.g. at replay start and end only).
        clock: UTC epoch seconds (tests inject one).
    """

    def __init__(self, eraser: Eraser, sweep: RetentionSweep | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.eraser, self.sweep, self.clock = eraser, sweep, clock
        self.store = eraser.store
        self.executed = 0
        self._last_beat: float | None = None
        self._seen_done = self._last_done()

    def _last_done(self) -> int:
        return erasure.last_done_id(self.store)

    def tick(self) -> bool:
        """Do what is due; returns True when the matcher must rebuild itself from the store."""
        if self.store.schema_version < V_PRIVACY:
            return False
        now = self.clock()
        if self._last_beat is None or now - self._last_beat >= HEARTBEAT_S:
            erasure.heartbeat(self.store, MATCHER_ROLE, self.eraser.name, now)
            self._last_beat = now
        stale = False
        for e in erasure.runnable(self.store, now, STALE_CLAIM_S):
            if erasure.claim(self.store, e.id, self.eraser.name, now, STALE_CLAIM_S):
                self.eraser.execute(e)
                self.executed += 1
                stale = True
        if self.sweep is not None and self.sweep.due(now):
            stale |= self.sweep.run(now).matcher_stale
        done = self._last_done()
        stale |= done != self._seen_done
        self._seen_done = done
        return stale

    def close(self) -> None:
        """Give the lease up (a clean stop: requesters execute in place at once)."""
        try:
            if self.store.schema_version >= V_PRIVACY:
                erasure.release(self.store, MATCHER_ROLE, self.eraser.name)
        except StoreError as e:
            log.warning("cannot release the writer lease: %s", e)
