"""The matcher's side of the store: its ``Outcome``s become store rows, and store rows rebuild a ``Matcher``.

``save`` writes a batch of ``Outcome``s in one transaction (the stage acks only after it), and
``load_into`` rebuilds a fresh ``Matcher`` from the same rows on start. The SQL lives in
``pipeline/store/``; this module only translates between the matcher's types (``Outcome``,
``TrackState``, ``Merge``, ``Evidence``, ``PairCalibration``) and the store's rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from models.errors import StoreError
from pipeline.matcher.matcher import Matcher, Outcome, TrackState
from pipeline.matcher.unionfind import Merge
from pipeline.store import calibration, erasure, identities, tracks
from pipeline.store.base import Store
from pipeline.store.schema import V_CALIBRATION, V_IDENTITIES, V_PRIVACY

log = logging.getLogger(__name__)


def save(store: Store, outcomes: Sequence[Outcome], keep_samples: int | None = None,
         also: Callable[[Store], None] | None = None) -> None:
    """Persist every change of ``outcomes`` atomically (duplicates write nothing).

    Args:
        keep_samples: when a pair is recomputed, keep only this many newest calibration samples per
            model, pair and kind (None: keep all).
        also: more writes for the same transaction (the events announcing these outcomes).

    Raises:
        StoreError: the store refused the batch (nothing of it was written).
    """
    if store.schema_version < V_IDENTITIES:
        raise StoreError(f"store {store.path} is at schema v{store.schema_version}; the matcher needs v2")
    calibrated = store.schema_version >= V_CALIBRATION
    with store.transaction():
        matched: list[tracks.MatchedTrack] = []   # written after the loop, in one statement per batch
        for out in outcomes:
            if calibrated:
                calibration.add_evidence(store, out.evidence)
                for c in out.calibration:
                    calibration.save_threshold(store, c, keep_samples)
            if out.duplicate or out.track is None:
                continue
            t = out.track
            if out.new_identity is not None:
                identities.add_identity(store, out.new_identity, t.model_id, t.t_end)
            matched.append(tracks.MatchedTrack(
                t.track_uid, t.camera_id, t.modality, t.t_start, t.t_end, t.n_clips, t.thumbnail or None, t.key,
                t.model_id, t.mean, t.n_clips, tuple(sorted(t.segments)), t.identity))
            identities.add_links(store, out.clip_id, out.links)
            for m in out.merges:
                identities.add_merge(store, identities.MergeRow(m.winner, m.loser, m.evidence_track, m.score, m.ts))
        tracks.save_matched_tracks(store, matched)   # after the identities they name (foreign keys)
        if also is not None:
            also(store)


def load_into(store: Store, matcher: Matcher) -> Matcher:
    """Rebuild ``matcher`` (fresh) from the store: identities, merges in order, tracks, galleries."""
    if store.schema_version < V_IDENTITIES:
        return matcher
    merges = [Merge(m.winner, m.loser, m.evidence_track_no, m.score, m.ts) for m in identities.load_merges(store)]
    states = [TrackState(t.track_no, t.model_id, t.camera_id, t.track_uid, t.modality, t.t_start, t.t_end, t.mean,
                         t.n_embedded, t.identity_id, set(t.segments), t.thumbnail or b"")
              for t in tracks.load_matched_tracks(store)]
    matcher.restore(identities.load_identities(store), states, merges, calibration.load_evidence(store))
    if store.schema_version >= V_PRIVACY:   # numbers of erased tracks and identities are never handed out again
        next_track, next_identity = erasure.id_floors(store)
        matcher.next_track = max(matcher.next_track, next_track)
        matcher.next_identity = max(matcher.next_identity, next_identity)
    if store.schema_version >= V_CALIBRATION and not store.readonly:   # the recomputed thresholds, for readers
        thresholds = tuple(c for m in matcher.model_ids for c in matcher.calibrator.state(m))
        try:
            save(store, [Outcome("", False, calibration=thresholds)])
        except StoreError as e:   # only what readers show is stale; the matcher itself is rebuilt
            log.warning("cannot record the recomputed thresholds: %s", e)
    return matcher
