"""What retention may delete (schema v6): rows older than a cut-off, per camera where the data has a camera.

An item's age counts from when the store last wrote it (``stored_at``), or, on rows written before
schema v6, from the time it shows (a track's end, an event's time): a replay of last year's footage is
kept for the horizon after the replay, a live camera's tracks for the horizon after they ended.
Deleting tracks goes through the one cascade, ``erasure.delete_tracks``; the sweep that calls these
(``pipeline/matcher/retention.py``) also removes the files and the bus entries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pipeline.store.base import Store, marks
from pipeline.store.erasure import TrackRef
from pipeline.store.schema import V_CALIBRATION, V_CAMERAS, V_MODALITY_EVENTS, V_PRIVACY

_TRACK_AGE = "coalesce(stored_at, t_end)"


@dataclass(frozen=True)
class Cutoff:
    """Items older than ``default`` (UTC epoch seconds) expire; ``cameras`` overrides it per camera id.

    ``None`` keeps the items forever (the default, or one camera's).
    """

    default: float | None
    cameras: Mapping[str, float | None] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return self.default is not None or any(v is not None for v in self.cameras.values())


def _camera_clauses(age: str, cut: Cutoff) -> list[tuple[str, list[object]]]:
    """``(sql, params)`` conditions, one per distinct cut-off, that together select the expired rows."""
    out: list[tuple[str, list[object]]] = []
    for cam, t in sorted(cut.cameras.items()):
        if t is not None:
            out.append((f"camera_id = ? AND {age} < ?", [cam, float(t)]))
    if cut.default is not None:
        named = sorted(cut.cameras)
        clause = f"{age} < ?" if not named else f"camera_id NOT IN ({marks(len(named))}) AND {age} < ?"
        out.append((clause, [*named, float(cut.default)]))
    return out


def expired_tracks(store: Store, cut: Cutoff, extra: str = "") -> list[TrackRef]:
    """Tracks last written before their camera's cut-off (``extra``: a further SQL condition)."""
    cols = "track_uid, camera_id, track_no, identity_id" if store.schema_version >= 2 else \
        "track_uid, camera_id, NULL, NULL"
    age = _TRACK_AGE if store.schema_version >= V_PRIVACY else "t_end"
    out: list[TrackRef] = []
    for clause, params in _camera_clauses(age, cut):
        sql = f"SELECT {cols} FROM tracks WHERE {clause}" + (f" AND {extra}" if extra else "")
        out += [TrackRef(str(u), str(c), None if n is None else int(n), None if i is None else int(i))
                for u, c, n, i in store.execute(sql, params)]
    return out


def drop_thumbnails(store: Store, track_uids: Sequence[str]) -> None:
    """Forget the stored crop of these tracks (their rows stay)."""
    for i in range(0, len(track_uids), 500):
        chunk = list(track_uids[i:i + 500])
        store.execute(f"UPDATE tracks SET thumbnail = NULL WHERE track_uid IN ({marks(len(chunk))})", chunk)


def drop_embeddings(store: Store, refs: Sequence[TrackRef]) -> None:
    """Forget the vectors of these tracks and the calibration scores measured on them (rows, numbers and
    identities stay: the person's timeline outlives the biometric template)."""
    nos = [r.track_no for r in refs if r.track_no is not None]
    for i in range(0, len(refs), 500):
        chunk = [r.track_uid for r in refs[i:i + 500]]
        store.execute(f"UPDATE tracks SET embedding = NULL, n_embedded = 0, segments = NULL "
                      f"WHERE track_uid IN ({marks(len(chunk))})", chunk)
    if store.schema_version >= V_CALIBRATION:
        for i in range(0, len(nos), 500):
            chunk = nos[i:i + 500]
            m = marks(len(chunk))
            store.execute(f"DELETE FROM calibration_scores WHERE track_a IN ({m}) OR track_b IN ({m})",
                          [*chunk, *chunk])


def delete_events(store: Store, cut: Cutoff) -> int:
    """Delete day/night switches and camera status rows past their camera's cut-off; returns how many."""
    n = 0
    if store.schema_version >= V_MODALITY_EVENTS:
        age = "coalesce(stored_at, ts)" if store.schema_version >= V_PRIVACY else "ts"
        for clause, params in _camera_clauses(age, cut):
            n += len(store.execute(f"DELETE FROM modality_events WHERE {clause} RETURNING camera_id", params))
    if store.schema_version >= V_CAMERAS:
        for clause, params in _camera_clauses("updated_at", cut):
            n += len(store.execute(f"DELETE FROM cameras WHERE {clause} RETURNING camera_id", params))
    return n


def delete_tombstones(store: Store, before: float) -> int:
    """Delete finished erasure tombstones and forgotten-track hashes older than ``before`` (the audit horizon;
    the query log beside the store: ``audit.delete_before``)."""
    if store.schema_version < V_PRIVACY:
        return 0
    n = len(store.execute("DELETE FROM erasures WHERE status IN ('done', 'failed') AND done_at < ? RETURNING id",
                           (float(before),)))
    n += len(store.execute("DELETE FROM forgotten_tracks WHERE ts < ? RETURNING uid_hash", (float(before),)))
    return n
