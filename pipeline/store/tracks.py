"""The ``tracks`` table: the replay's and the matcher's writes, the one track lister, thumbnails and vectors.

A track is one camera's tracklet. Schema v1 holds what the camera side knows (span, counts, a JPEG
thumbnail: ``TrackRow``, written by ``upsert_track``); schema v2 adds the matcher's columns (track
number, model, running-mean embedding, clip segments folded in, assigned identity: ``MatchedTrack``).
``list_tracks`` is the one way to list them: the API, ``xreid tracks``, the identity report and the
tests all read through it, with the assigned identity resolved through merges.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from models.errors import StoreError
from pipeline.bus.messages import MODALITIES
from pipeline.camera.clipbuffer import TrackSpan
from pipeline.store.base import Store, marks, where_clause
from pipeline.store.erasure import uid_hash
from pipeline.store.identities import find_root, members, merged_parents, resolve
from pipeline.store.schema import V_IDENTITIES, V_PRIVACY

_JPEG_SOI = b"\xff\xd8"


@dataclass(frozen=True)
class TrackRow:
    """One track as the camera side writes it (columns of schema v1).

    Attributes:
        t_start, t_end: UTC epoch seconds of the first and last observed frame.
        n_frames: frames the track was observed in.
        n_clips: clips emitted for it so far.
        thumbnail: one JPEG crop, or ``None``.
    """

    track_uid: str
    camera_id: str
    modality: str
    t_start: float
    t_end: float
    n_frames: int = 0
    n_clips: int = 0
    thumbnail: bytes | None = None

    def __post_init__(self) -> None:
        if not self.track_uid or not self.camera_id:
            raise StoreError(f"track row needs a track_uid and camera_id, got {self.track_uid!r}/{self.camera_id!r}")
        if self.modality not in MODALITIES:
            raise StoreError(f"track {self.track_uid}: modality must be one of {MODALITIES}, got {self.modality!r}")
        if not (math.isfinite(self.t_start) and math.isfinite(self.t_end)) or self.t_end < self.t_start:
            raise StoreError(f"track {self.track_uid}: bad time span {self.t_start}..{self.t_end}")
        if self.n_frames < 0 or self.n_clips < 0:
            raise StoreError(f"track {self.track_uid}: counts must be >= 0")
        if self.thumbnail is not None and not bytes(self.thumbnail).startswith(_JPEG_SOI):
            raise StoreError(f"track {self.track_uid}: thumbnail is not JPEG data")


def upsert_track(store: Store, row: TrackRow) -> None:
    """Insert a track, or widen an existing one: its span grows, counts take the larger value.

    Idempotent: writing the same row twice leaves the store as after one write. The matcher's
    columns (identity, embedding) are left untouched. A track that was erased is not written again
    (a camera may still be following the person when the erasure runs).

    Raises:
        StoreError: the store refused the write (read-only, disk full, ...).
    """
    stamped = store.schema_version >= V_PRIVACY   # retention ages count from the last write
    if stamped and store.execute("SELECT 1 FROM forgotten_tracks WHERE uid_hash = ?", (uid_hash(row.track_uid),)):
        return
    try:
        # the stored row's columns are named by table: PostgreSQL finds a bare name ambiguous next to excluded's
        store.execute(
            "INSERT INTO tracks (track_uid, camera_id, modality, t_start, t_end, n_frames, n_clips, thumbnail"
            f"{', stored_at' if stamped else ''}) VALUES (?, ?, ?, ?, ?, ?, ?, ?{', ?' if stamped else ''}) "
            "ON CONFLICT(track_uid) DO UPDATE SET "
            "t_start = min(tracks.t_start, excluded.t_start), t_end = max(tracks.t_end, excluded.t_end), "
            "n_frames = max(tracks.n_frames, excluded.n_frames), n_clips = max(tracks.n_clips, excluded.n_clips), "
            "thumbnail = coalesce(excluded.thumbnail, tracks.thumbnail)"
            f"{', stored_at = excluded.stored_at' if stamped else ''}",
            (row.track_uid, row.camera_id, row.modality, float(row.t_start), float(row.t_end),
             int(row.n_frames), int(row.n_clips), row.thumbnail, *((time.time(),) if stamped else ())))
    except StoreError as e:
        raise type(e)(f"cannot write track {row.track_uid}: {e}") from None   # keeps the kind: unreachable, ...


# -- the lister -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackFilter:
    """Which tracks to list; times are UTC epoch seconds, a track matches if it overlaps the range.

    ``identity_id`` selects the tracks of the identity it lives on as (old merged ids work too).
    """

    camera_id: str | None = None
    modality: str | None = None
    t_from: float | None = None
    t_to: float | None = None
    identity_id: int | None = None


@dataclass(frozen=True)
class Track(TrackSpan):
    """One stored track as readers see it.

    Attributes:
        has_thumbnail: whether a JPEG crop is stored (``thumbnail`` reads it).
        track_no: the matcher's number for it (``None`` before the matcher saw it).
        identity: the identity it belongs to now (its assigned one resolved through merges).
        assigned_identity: the identity the matcher assigned when it linked the track.
    """

    has_thumbnail: bool
    track_no: int | None
    model_id: str | None
    identity: int | None
    assigned_identity: int | None

    def listing(self) -> dict[str, object]:
        """The fields ``xreid tracks --json`` and ``identities.json`` show, in their order."""
        return {"track_no": self.track_no, "track_uid": self.track_uid, "camera_id": self.camera_id,
                "modality": self.modality, "t_start": self.t_start, "t_end": self.t_end, "n_clips": self.n_clips,
                "model_id": self.model_id, "identity": self.identity, "assigned_identity": self.assigned_identity}


def _select(store: Store) -> str:
    matcher_cols = "track_no, model_id, identity_id" if store.schema_version >= V_IDENTITIES \
        else "NULL AS track_no, NULL AS model_id, NULL AS identity_id"
    return ("SELECT track_uid, camera_id, modality, t_start, t_end, n_frames, n_clips, thumbnail IS NOT NULL, "
            f"{matcher_cols} FROM tracks")


def _where(store: Store, f: TrackFilter, parents: Mapping[int, int]) -> tuple[str, list[object]] | None:
    """The filter as SQL; ``None`` when it can match nothing (an unknown identity)."""
    where, params = where_clause([("camera_id = ?", f.camera_id), ("modality = ?", f.modality),
                                  ("t_end >= ?", None if f.t_from is None else float(f.t_from)),
                                  ("t_start <= ?", None if f.t_to is None else float(f.t_to))])
    if f.identity_id is None:
        return where, params
    root = resolve(store, f.identity_id, parents)
    if root is None:
        return None
    ids = members(parents, root)  # by the stored column, so its index serves the filter
    clause = f"identity_id IN ({marks(len(ids))})"
    return (where + " AND " if where else " WHERE ") + clause, [*params, *ids]


def _track(r: Sequence[object], parents: Mapping[int, int]) -> Track:
    uid, cam, modality, t0, t1, n_frames, n_clips, has_thumb, track_no, model_id, ident = r
    return Track(str(uid), str(cam), str(modality), float(t0), float(t1), int(n_frames), int(n_clips),  # type: ignore[arg-type]
                 bool(has_thumb), None if track_no is None else int(track_no),  # type: ignore[call-overload]
                 None if model_id is None else str(model_id),
                 None if ident is None else find_root(parents, int(ident)),  # type: ignore[call-overload]
                 None if ident is None else int(ident))  # type: ignore[call-overload]


def list_tracks(store: Store, f: TrackFilter = TrackFilter(), limit: int | None = None, offset: int = 0,
                newest_first: bool = False, parents: Mapping[int, int] | None = None) -> list[Track]:
    """Tracks passing ``f``, oldest first (``newest_first``: latest start first), ties by uid.

    Args:
        limit: at most this many (``None``: all); ``offset`` skips that many first.
        parents: ``merged_parents(store)`` when the caller already holds it (one read per loop).
    """
    parents = merged_parents(store) if parents is None else parents
    found = _where(store, f, parents)
    if found is None:
        return []
    where, params = found
    sql = f"{_select(store)}{where} ORDER BY t_start{' DESC' if newest_first else ''}, track_uid"
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        params = [*params, int(limit), int(offset)]
    return [_track(r, parents) for r in store.execute(sql, params)]


def count_tracks(store: Store, f: TrackFilter = TrackFilter(), parents: Mapping[int, int] | None = None) -> int:
    """How many tracks pass ``f`` (the total behind a page of ``list_tracks``)."""
    found = _where(store, f, merged_parents(store) if parents is None else parents)
    if found is None:
        return 0
    where, params = found
    return int(store.execute(f"SELECT count(*) FROM tracks{where}", params)[0][0])


def get_track(store: Store, track_uid: str, parents: Mapping[int, int] | None = None) -> Track | None:
    parents = merged_parents(store) if parents is None else parents
    rows = store.execute(f"{_select(store)} WHERE track_uid = ?", (track_uid,))
    return _track(rows[0], parents) if rows else None


def assigned_identities(store: Store, f: TrackFilter = TrackFilter(), parents: Mapping[int, int] | None = None) -> set[int]:
    """The identities assigned to tracks passing ``f`` (as assigned: resolve them with ``find_root``)."""
    if store.schema_version < V_IDENTITIES:
        return set()
    found = _where(store, f, merged_parents(store) if parents is None else parents)
    if found is None:
        return set()
    where, params = found
    where += (" AND " if where else " WHERE ") + "identity_id IS NOT NULL"
    return {int(r[0]) for r in store.execute(f"SELECT DISTINCT identity_id FROM tracks{where}", params)}


def tracks_by_number(store: Store, track_nos: Sequence[int]) -> dict[int, Track]:
    """The tracks with these matcher numbers (absent numbers are left out)."""
    if not track_nos or store.schema_version < V_IDENTITIES:
        return {}
    parents = merged_parents(store)
    rows = store.execute(f"{_select(store)} WHERE track_no IN ({marks(len(track_nos))})", [int(n) for n in track_nos])
    return {t.track_no: t for t in (_track(r, parents) for r in rows)}  # type: ignore[misc]


def per_camera(store: Store) -> list[tuple[str, list[str], int, float, float]]:
    """``(camera_id, modalities seen (sorted), n_tracks, first t_start, last t_end)`` per camera, by id."""
    # a track's modality is 'rgb' or 'ir' (a CHECK constraint), so min and max name every one a camera has;
    # grouping by camera alone lets the (camera_id, t_start) index serve the scan
    rows = store.execute("SELECT camera_id, min(modality), max(modality), count(*), min(t_start), max(t_end) "
                         "FROM tracks GROUP BY camera_id ORDER BY camera_id")
    return [(str(c), sorted({str(lo), str(hi)}), int(n), float(t0), float(t1)) for c, lo, hi, n, t0, t1 in rows]


# -- thumbnails -----------------------------------------------------------------------------------


def thumbnail(store: Store, track_uid: str) -> bytes | None:
    rows = store.execute("SELECT thumbnail FROM tracks WHERE track_uid = ?", (track_uid,))
    return bytes(rows[0][0]) if rows and rows[0][0] is not None else None


def thumbnails(store: Store, track_uids: Sequence[str]) -> dict[str, bytes]:
    """track_uid → JPEG of those that have one."""
    if not track_uids:
        return {}
    rows = store.execute(f"SELECT track_uid, thumbnail FROM tracks WHERE track_uid IN ({marks(len(track_uids))})",
                         list(track_uids))
    return {str(u): bytes(t) for u, t in rows if t}


def identity_thumbnails(store: Store, identity_ids: Sequence[int], modality: str | None, limit: int) -> list[bytes]:
    """Thumbnails of the longest-observed tracks assigned to any of ``identity_ids`` (optionally one modality)."""
    if not identity_ids or store.schema_version < V_IDENTITIES:
        return []
    sql = f"SELECT thumbnail FROM tracks WHERE identity_id IN ({marks(len(identity_ids))}) AND thumbnail IS NOT NULL"
    params: list[object] = list(identity_ids)
    if modality is not None:
        sql += " AND modality = ?"
        params.append(modality)
    rows = store.execute(sql + " ORDER BY n_frames DESC, t_start LIMIT ?", [*params, int(limit)])
    return [bytes(r[0]) for r in rows]


def thumbnail_modalities(store: Store, identity_ids: Sequence[int]) -> list[tuple[int, str]]:
    """``(assigned identity, modality)`` for each modality an identity has a thumbnail in."""
    if not identity_ids or store.schema_version < V_IDENTITIES:
        return []
    return [(int(i), str(m)) for i, m in store.execute(
        f"SELECT DISTINCT identity_id, modality FROM tracks WHERE identity_id IN ({marks(len(identity_ids))}) "
        "AND thumbnail IS NOT NULL", list(identity_ids))]


# -- the matcher's columns ------------------------------------------------------------------------


@dataclass(frozen=True)
class MatchedTrack:
    """A track as the matcher keeps it (schema v2 columns).

    Attributes:
        track_no: the matcher's number (gallery key).
        mean: (D,) float32 running mean of its ``n_embedded`` clip vectors under ``model_id`` (not normalised).
        segments: clip segments folded in, so a redelivered clip is a no-op.
        identity_id: the identity assigned (resolve it through merges).
    """

    track_uid: str
    camera_id: str
    modality: str
    t_start: float
    t_end: float
    n_clips: int
    thumbnail: bytes | None
    track_no: int
    model_id: str
    mean: np.ndarray
    n_embedded: int
    segments: tuple[int, ...]
    identity_id: int


def save_matched_track(store: Store, t: MatchedTrack) -> None:
    """Write the matcher's view of a track (call inside the matcher's transaction).

    Raises:
        StoreError: the track is already embedded by another model (vectors of two models never mix).
    """
    save_matched_tracks(store, [t])


def save_matched_tracks(store: Store, batch: Sequence[MatchedTrack]) -> None:
    """Write the matcher's view of several tracks, in order (a later state of one track wins).

    The model check reads the batch's tracks in one query, so on a network store a batch costs a few
    round trips, not one per track.

    Raises:
        StoreError: a track is already embedded by another model (vectors of two models never mix).
    """
    if not batch:
        return
    uids = sorted({t.track_uid for t in batch})
    stored: dict[str, str] = {}
    for i in range(0, len(uids), 500):
        chunk = uids[i:i + 500]
        stored.update((str(u), str(m)) for u, m in store.execute(
            f"SELECT track_uid, model_id FROM tracks WHERE track_uid IN ({marks(len(chunk))}) "
            "AND model_id IS NOT NULL", chunk))
    for t in batch:
        if stored.get(t.track_uid, t.model_id) != t.model_id:
            raise StoreError(f"track {t.track_uid} is embedded by model {stored[t.track_uid]}, not {t.model_id}")
    stamped = store.schema_version >= V_PRIVACY   # retention ages count from the last write
    now = time.time()
    store.execute_many(
        "INSERT INTO tracks (track_uid, camera_id, modality, t_start, t_end, n_clips, thumbnail, track_no, "
        f"model_id, embedding, n_embedded, segments, identity_id{', stored_at' if stamped else ''}) "
        f"VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?{',?' if stamped else ''}) "
        "ON CONFLICT(track_uid) DO UPDATE SET t_start = min(tracks.t_start, excluded.t_start), "
        "t_end = max(tracks.t_end, excluded.t_end), n_clips = max(tracks.n_clips, excluded.n_clips), "
        "thumbnail = coalesce(tracks.thumbnail, excluded.thumbnail), track_no = excluded.track_no, "
        "model_id = excluded.model_id, embedding = excluded.embedding, n_embedded = excluded.n_embedded, "
        "segments = excluded.segments, identity_id = excluded.identity_id"
        f"{', stored_at = excluded.stored_at' if stamped else ''}",
        [(t.track_uid, t.camera_id, t.modality, t.t_start, t.t_end, t.n_clips, t.thumbnail or None, t.track_no,
          t.model_id, np.asarray(t.mean).astype("<f4").tobytes(), t.n_embedded, json.dumps(sorted(t.segments)),
          t.identity_id, *((now,) if stamped else ())) for t in batch])


def load_matched_tracks(store: Store) -> list[MatchedTrack]:
    """Every track the matcher numbered that still has its vector, by number (what a restarting matcher
    rebuilds from; a track whose vector retention dropped stays on its identity's timeline, out of the gallery)."""
    if store.schema_version < V_IDENTITIES:
        return []
    rows = store.execute("SELECT track_uid, camera_id, modality, t_start, t_end, n_clips, thumbnail, track_no, "
                         "model_id, embedding, n_embedded, segments, identity_id FROM tracks "
                         "WHERE track_no IS NOT NULL AND embedding IS NOT NULL ORDER BY track_no")
    return [MatchedTrack(str(uid), str(cam), str(mod), float(t0), float(t1), int(nc), bytes(th) if th else None,
                         int(no), str(model), _vector(emb), int(ne), tuple(json.loads(str(seg))), int(ident))
            for uid, cam, mod, t0, t1, nc, th, no, model, emb, ne, seg, ident in rows]


def model_ids(store: Store) -> list[str]:
    """Models that embedded at least one track, sorted."""
    if store.schema_version < V_IDENTITIES:
        return []
    return sorted(str(r[0]) for r in store.execute("SELECT DISTINCT model_id FROM tracks WHERE model_id IS NOT NULL"))


@dataclass(frozen=True)
class TrackEmbedding:
    """A track's stored vector, the model that made it and the matcher's number for the track.

    Attributes:
        mean: (D,) float32 running mean as stored (not normalised).
    """

    mean: np.ndarray
    model_id: str
    track_no: int

    @property
    def unit(self) -> np.ndarray:
        """(D,) float32, L2-normalised."""
        return _unit_rows(self.mean[None, :])[0]


def track_embedding(store: Store, track_uid: str | None = None, track_no: int | None = None) -> TrackEmbedding | None:
    """The embedding of the track with this uid (or, given ``track_no``, this number); ``None`` when it has none."""
    if store.schema_version < V_IDENTITIES:
        return None
    column, key = ("track_uid", track_uid) if track_no is None else ("track_no", int(track_no))
    rows = store.execute(f"SELECT embedding, model_id, track_no FROM tracks WHERE {column} = ?", (key,))
    if not rows or any(v is None for v in rows[0]):
        return None
    emb, model_id, no = rows[0]
    return TrackEmbedding(_vector(emb), str(model_id), int(no))


def gallery_fingerprint(store: Store, model_id: str) -> tuple[int, float]:
    """Changes whenever a track embedding of ``model_id`` is added or updated."""
    if store.schema_version < V_IDENTITIES:
        return 0, 0.0
    n, folded = store.execute("SELECT count(*), coalesce(sum(n_embedded), 0) FROM tracks WHERE model_id = ? "
                              "AND embedding IS NOT NULL AND track_no IS NOT NULL", (model_id,))[0]
    return int(n), float(folded)


def gallery(store: Store, model_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(N,) int64 track numbers and (N, D) unit float32 embeddings of every track of ``model_id``."""
    if store.schema_version < V_IDENTITIES:
        return np.empty(0, np.int64), np.empty((0, 0), np.float32)
    rows = store.execute("SELECT track_no, embedding FROM tracks WHERE model_id = ? "
                         "AND embedding IS NOT NULL AND track_no IS NOT NULL", (model_id,))
    if not rows:
        return np.empty(0, np.int64), np.empty((0, 0), np.float32)
    keys = np.array([r[0] for r in rows], dtype=np.int64)
    return keys, _unit_rows(np.vstack([_vector(r[1]) for r in rows]))


def _vector(blob: object) -> np.ndarray:
    return np.frombuffer(bytes(blob), dtype="<f4").astype(np.float32)  # type: ignore[call-overload]


def _unit_rows(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.ascontiguousarray(v / np.maximum(norms, 1e-12), dtype=np.float32)
