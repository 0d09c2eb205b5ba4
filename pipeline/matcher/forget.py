"""Erasing a person: executing a forget request everywhere the system keeps them, and asking for one.

**Who executes.** The matcher is the store's single writer and holds every track in memory (gallery,
union-find, members), so a request made while it runs is executed *by the matcher*: ``xreid forget`` and
``DELETE /identities/{id}`` queue the request in the store's ``erasures`` table, the matcher picks it up
between two batches (``pipeline/matcher/privacy.py``), executes it, rebuilds its memory from the store
(the faiss gallery without the erased vectors) and the requester, polling, reports the tombstone. When no
matcher holds the store (its ``writer_lease`` heartbeat is older than ``LEASE_S``: an embedded replay that
has finished, a stopped site), the requester claims the request and executes it in place. Queueing in the
store rather than on the bus keeps one path for both modes and makes a request survive any restart.

**What executing removes**, each step idempotent so a request whose executor died is simply run again:

1. the crop files of the tracks (``<store>.crops/<uid>/``), and their late clips' crops from then on;
2. the report files beside the store: contact sheets of the identities concerned, their entries in
   ``identities.json``, their lines in ``tracks.jsonl`` (``pipeline/store/outputs.py``);
3. dead letters on the bus that carry their clips or embeddings (when the executor has the bus);
4. in one transaction: the rows (``erasure.delete_tracks``: tracks with thumbnails and vectors, links,
   merges and union-find history, calibration scores, identities left empty), the hashes of the erased
   uids (``forgotten_tracks``: their clips still in flight are dropped, not re-linked) and the tombstone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from models.errors import StoreError
from pipeline.bus import STREAM_CLIPS, STREAM_EMBEDDINGS, Bus
from pipeline.bus.messages import payload_owner
from pipeline.camera.status import STREAM_CAMERA_STATUS
from pipeline.store import erasure
from pipeline.store.base import Store
from pipeline.store.crops import CropKeeper
from pipeline.store.erasure import Counts, Erasure, Selector, TrackRef
from pipeline.store.outputs import scrub_outputs

log = logging.getLogger(__name__)

MATCHER_ROLE = "matcher"
LEASE_S = 15.0            # a matcher whose heartbeat is older than this is not running
HEARTBEAT_S = 2.0         # how often a running matcher renews it
STALE_CLAIM_S = 120.0     # a request claimed this long ago and not finished: its executor died; run it again
DEAD_STREAMS = (STREAM_CLIPS, STREAM_EMBEDDINGS, STREAM_CAMERA_STATUS)   # their dead letters may hold a person
_DEAD_SCAN = 100_000      # dead letters read per stream when looking for a person's


class UnknownTarget(StoreError):
    """The identity, track or camera to forget is not in the store and was never erased (exit 2, 404)."""


class Eraser:
    """Executes erasures on one store, its crop files and report files, and (when given) the bus.

    Args:
        store: a writable store at schema v6.
        crops: the store's crop keeper (None: no crops are kept, or the store lives in memory).
        bus: where dead letters of the erased tracks are looked for (None: not reachable from here).
        name: who executes (``matcher-host-123``, ``cli:alice``), recorded in the tombstone.
        reports_dir: the folder of a replay's report files (``tracks.jsonl``, ``identities.json``, contact
            sheets); None: the SQLite store's own folder, where a replay writes them. A PostgreSQL store has
            no folder: its reports are cleaned only where a folder is given (the replay's ``--out``).
        clock: UTC epoch seconds (tests inject one).
    """

    def __init__(self, store: Store, crops: CropKeeper | None, bus: Bus | None, name: str,
                 reports_dir: str | Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self.store, self.crops, self.bus, self.name, self.clock = store, crops, bus, name, clock
        if reports_dir is not None:
            self.folder: Path | None = Path(reports_dir)
        elif store.dialect == "sqlite" and store.location != ":memory:":
            self.folder = Path(store.location).parent
        else:
            self.folder = None

    def remove(self, refs: Sequence[TrackRef], erased: bool,
               then: Callable[[Counts], None] | None = None) -> Counts:
        """Remove ``refs`` everywhere: files and dead letters first, then the rows in one transaction.

        Args:
            erased: a forget (late clips of these tracks are dropped too), not retention.
            then: runs inside the rows' transaction with the counts (the tombstone commits with the rows).
        """
        uids = [r.track_uid for r in refs]
        nos = [r.track_no for r in refs if r.track_no is not None]
        gone, changed = erasure.affected_roots(self.store, refs)
        n_crops = self.crops.drop_tracks(uids, erased=erased) if self.crops is not None and uids else 0
        n_files = scrub_outputs(self.folder, uids, nos, gone, changed) if self.folder is not None and uids else 0
        n_dead = self._drop_dead_letters(set(uids)) if uids else 0
        with self.store.transaction():
            rows = erasure.delete_tracks(self.store, refs)
            counts = Counts(rows.n_tracks, len(rows.identities), n_crops, n_files, n_dead)
            if then is not None:
                then(counts)
        return counts

    def execute(self, e: Erasure) -> Erasure:
        """Run a claimed request to its tombstone; returns the finished row.

        A target that vanished since the request was queued (an earlier request erased it) finishes as
        done with nothing erased; any other failure finishes as failed with the reason.
        """
        sel = e.selector
        try:
            refs = erasure.select_tracks(self.store, sel) or []
            hashes = [erasure.uid_hash(r.track_uid) for r in refs]

            def tombstone(counts: Counts) -> None:
                erasure.remember_forgotten(self.store, hashes, e.id, self.clock())
                erasure.finish(self.store, e, "done", counts, "", self.clock())

            self.remove(refs, erased=True, then=tombstone)
            if not self.store.flush_deleted():
                log.warning("erasure #%d: a reader holds an old snapshot; the WAL is emptied at the next erasure "
                            "or checkpoint", e.id)
        except (StoreError, OSError) as err:
            log.error("erasure #%d (%s) failed: %s", e.id, e.kind, err)
            with self.store.transaction():
                erasure.finish(self.store, e, "failed", Counts(), str(err)[:500], self.clock())
        done = erasure.get_erasure(self.store, e.id)
        assert done is not None
        log.warning("erasure #%d of %s by %s for %s: %s, %d tracks, %d identities, %d crop folders, %d report files, "
                    "%d dead letters", e.id, e.kind, self.name, e.requested_by, done.status, done.n_tracks,
                    done.n_identities, done.n_crops, done.n_files, done.n_dead)
        return done

    def _drop_dead_letters(self, uids: set[str]) -> int:
        if self.bus is None:
            return 0
        n = 0
        for stream in DEAD_STREAMS:
            hits = []
            for d in self.bus.dead_letters(stream, _DEAD_SCAN):
                owner = payload_owner(d.data)
                if owner is not None and owner.track_uid is not None:
                    if owner.track_uid in uids:
                        hits.append(d.id)
                elif any(u.encode("utf-8", "surrogateescape") in d.data for u in uids):
                    hits.append(d.id)   # a payload whose header is broken: its bytes still name the track
            n += self.bus.delete_dead_letters(stream, hits)
        return n


@dataclass(frozen=True)
class ForgetOutcome:
    """What a forget request came to.

    Attributes:
        state: ``done`` (executed now), ``already`` (an earlier request erased it: nothing left),
            ``pending`` (queued; the live matcher has not finished it within the wait), ``failed``.
        erasure: the request's row (its tombstone when done).
    """

    state: str
    erasure: Erasure

    def as_dict(self) -> dict[str, object]:
        return {"state": self.state, **self.erasure.as_dict()}


def request_forget(store: Store, sel: Selector, requested_by: str, make_eraser: Callable[[], Eraser] | None,
                   wait_s: float = 30.0, clock: Callable[[], float] = time.time, poll_s: float = 0.1) -> ForgetOutcome:
    """Forget what ``sel`` names: queue the request, then let the live matcher run it or run it here.

    Args:
        store: a writable store (the requester writes the request row).
        make_eraser: builds the executor used when no matcher is live; None: this process cannot reach what
            the matcher keeps (the API of a PostgreSQL store, on another machine than the matcher's crops), so
            the request waits in the queue for a matcher (``pending`` at once when none is live).
        wait_s: how long to wait for a live matcher to finish it.

    Raises:
        UnknownTarget: nothing of that name is stored and no tombstone says it was erased.
        StoreError: the store cannot take the request.
    """
    if erasure.select_tracks(store, sel) is None:
        tomb = erasure.find_tombstone(store, sel)
        if tomb is not None:
            return ForgetOutcome("already", tomb)
        raise UnknownTarget(f"no {sel.describe()} in store {store.path}")
    eid = erasure.add_request(store, sel, requested_by, clock())
    deadline = time.monotonic() + wait_s
    if erasure.live_holder(store, MATCHER_ROLE, clock(), LEASE_S) is None:
        if make_eraser is None:
            deadline = time.monotonic()   # nobody will run it before a matcher starts: say so now
        else:
            eraser = make_eraser()
            if erasure.claim(store, eid, eraser.name, clock(), STALE_CLAIM_S):
                done = eraser.execute(erasure.get_erasure(store, eid))  # type: ignore[arg-type]
                return ForgetOutcome(done.status, done)
    while True:
        e = erasure.get_erasure(store, eid)
        assert e is not None
        if e.status in ("done", "failed"):
            return ForgetOutcome(e.status, e)
        if time.monotonic() >= deadline:
            return ForgetOutcome("pending", e)
        time.sleep(poll_s)
