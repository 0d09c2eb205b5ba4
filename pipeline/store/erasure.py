"""Erasing tracks and every row that points at them, and the queue of forget requests (schema v6).

``delete_tracks`` is the one cascade: forget and retention both call it. It deletes the tracks (their
thumbnails and vectors go with the rows), their link decisions, the calibration scores measured on them,
and every identity left without a track of its own or of an identity merged into it (with the links and
merges naming it). What other rows only *mention* an erased track loses the mention: a surviving track's
decision that matched it keeps its score but no longer names it (``matched_track_no`` NULL), a merge it
was the evidence of keeps its winner and loser with ``evidence_track_no`` 0 ("the evidence was erased";
real numbers start at 1). Live events and watchlists (schema v7) lose what came from the tracks and the
identities that went: every logged event mentioning them, the watchlist references taken from the
tracks (an entry left without references goes), the entries made from the identities, the tracks'
watchlist hits. Track numbers and identity ids are never handed out again
(``id_floors``): an erased id must not come back naming someone else.

The ``erasures`` table is the request queue and, once a request ran, its tombstone: what was erased
(identity id, camera, or the *hash* of a track uid: the uid itself must not survive), when, by whom,
and how much. ``forgotten_tracks`` keeps those hashes (``uid_hash``) so clips of an erased track still
on the bus are dropped instead of bringing it back. ``writer_lease`` says whether a live matcher holds
the store and will execute a queued request (``pipeline/matcher/forget.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from models.errors import StoreError
from pipeline.store import event_log, watchlists
from pipeline.store.base import Store, marks
from pipeline.store.identities import find_root, members, merged_parents, resolve
from pipeline.store.schema import V_CALIBRATION, V_PRIVACY

KINDS = ("identity", "track", "camera")
EVIDENCE_ERASED = 0      # merges.evidence_track_no of a merge whose evidence track was erased
_CHUNK = 500             # values per IN (...) list, far below any backend's parameter limit
_FLOOR_KEYS = ("next_track_no", "next_identity")


def uid_hash(track_uid: str) -> str:
    """The stand-in for a track uid in tombstones and in ``forgotten_tracks`` (uids are unique across
    cameras and restarts, so the uid alone names the track)."""
    return hashlib.sha256(track_uid.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _chunks(values: Sequence[object]) -> Iterable[list[object]]:
    for i in range(0, len(values), _CHUNK):
        yield list(values[i:i + _CHUNK])


def _require(store: Store) -> None:
    if store.schema_version < V_PRIVACY:
        raise StoreError(f"store {store.path} is at schema v{store.schema_version}; erasure needs v{V_PRIVACY} "
                         "(open it once with a writer of this build to migrate it)")


# -- what a request covers ------------------------------------------------------------------------


@dataclass(frozen=True)
class Selector:
    """What to erase: one identity (``target`` its id), one track (its uid) or a camera's tracks that
    began before ``before_ts`` (UTC epoch seconds)."""

    kind: str
    target: str
    before_ts: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise StoreError(f"erasure kind must be one of {KINDS}, got {self.kind!r}")
        if not self.target:
            raise StoreError("erasure target is empty")
        if (self.kind == "camera") != (self.before_ts is not None):
            raise StoreError("a camera erasure needs a before time, and only a camera erasure takes one")
        if self.kind == "identity" and not self.target.isdigit():
            raise StoreError(f"identity id must be a non-negative integer, got {self.target!r}")

    def describe(self) -> str:
        if self.kind == "camera":
            return f"camera {self.target} before {self.before_ts}"
        return f"{self.kind} {self.target}"


@dataclass(frozen=True, slots=True)
class TrackRef:
    """A track to erase: its keys, and the identity it was assigned (for the reports to clean up)."""

    track_uid: str
    camera_id: str
    track_no: int | None
    identity_id: int | None


def _refs(store: Store, where: str, params: Sequence[object]) -> list[TrackRef]:
    cols = "track_uid, camera_id, track_no, identity_id" if store.schema_version >= 2 else \
        "track_uid, camera_id, NULL, NULL"
    return [TrackRef(str(u), str(c), None if n is None else int(n), None if i is None else int(i))
            for u, c, n, i in store.execute(f"SELECT {cols} FROM tracks WHERE {where}", params)]


def select_tracks(store: Store, sel: Selector) -> list[TrackRef] | None:
    """The tracks ``sel`` covers; ``None`` when its identity, track or camera is unknown to the store.

    An identity id that was merged into another selects the person it lives on as: every track of the
    survivor and of every identity merged into it.
    """
    if sel.kind == "track":
        found = _refs(store, "track_uid = ?", (sel.target,))
        return found or None
    if sel.kind == "camera":
        if not store.execute("SELECT 1 FROM tracks WHERE camera_id = ? LIMIT 1", (sel.target,)):
            return None
        return _refs(store, "camera_id = ? AND t_start < ?", (sel.target, float(sel.before_ts)))  # type: ignore[arg-type]
    parents = merged_parents(store)
    root = resolve(store, int(sel.target), parents)
    if root is None:
        return None
    out: list[TrackRef] = []
    for chunk in _chunks(members(parents, root)):
        out += _refs(store, f"identity_id IN ({marks(len(chunk))})", chunk)
    return out


# -- the cascade ----------------------------------------------------------------------------------


@dataclass
class ErasedRows:
    """What ``delete_tracks`` removed, and the surviving identities that lost tracks."""

    track_uids: list[str] = field(default_factory=list)
    identities: list[int] = field(default_factory=list)
    changed_identities: list[int] = field(default_factory=list)

    @property
    def n_tracks(self) -> int:
        return len(self.track_uids)


def delete_tracks(store: Store, refs: Sequence[TrackRef]) -> ErasedRows:
    """Delete ``refs`` and everything pointing at them (see the module doc); call inside a transaction.

    Idempotent: refs already gone delete nothing.
    """
    out = ErasedRows()
    if not refs:
        return out
    parents = merged_parents(store)
    touched = {find_root(parents, r.identity_id) for r in refs if r.identity_id is not None}
    nos = [r.track_no for r in refs if r.track_no is not None]
    _raise_floors(store, max(nos, default=0) + 1, 0)
    for chunk in _chunks(nos):
        m = marks(len(chunk))
        store.execute(f"DELETE FROM links WHERE track_no IN ({m})", chunk)
        store.execute(f"UPDATE links SET matched_track_no = NULL WHERE matched_track_no IN ({m})", chunk)
        store.execute(f"UPDATE merges SET evidence_track_no = {EVIDENCE_ERASED} WHERE evidence_track_no IN ({m})",
                      chunk)
        if store.schema_version >= V_CALIBRATION:
            store.execute(f"DELETE FROM calibration_scores WHERE track_a IN ({m}) OR track_b IN ({m})",
                          [*chunk, *chunk])
    uids = [r.track_uid for r in refs]
    for chunk in _chunks(uids):
        store.execute(f"DELETE FROM tracks WHERE track_uid IN ({marks(len(chunk))})", chunk)
    out.track_uids = uids
    out.identities = drop_orphan_identities(store)
    watchlists.delete_hits_for_tracks(store, uids)
    watchlists.delete_refs_for_tracks(store, nos)
    watchlists.delete_for_identities(store, out.identities)
    event_log.delete_mentioning(store, uids, out.identities)
    gone = set(out.identities)
    out.changed_identities = sorted(touched - gone)
    return out


def affected_roots(store: Store, refs: Sequence[TrackRef]) -> tuple[list[int], list[int]]:
    """The identities (as they live on) ``refs`` belong to, split into those erasing ``refs`` leaves
    without any track (gone) and those that keep some (changed): what the report files must lose."""
    parents = merged_parents(store)
    roots = sorted({find_root(parents, r.identity_id) for r in refs if r.identity_id is not None})
    erased = {r.track_uid for r in refs}
    gone, changed = [], []
    for root in roots:
        ids = members(parents, root)
        left = {str(u) for chunk in _chunks(ids) for (u,) in store.execute(
            f"SELECT track_uid FROM tracks WHERE identity_id IN ({marks(len(chunk))})", chunk)} - erased
        (changed if left else gone).append(root)
    return gone, changed


def drop_orphan_identities(store: Store) -> list[int]:
    """Delete every identity that neither owns a track nor had a track-owning identity merged into it,
    with the links and merges naming it; returns their ids (call inside a transaction)."""
    if store.schema_version < 2:
        return []
    parents = merged_parents(store)
    alive: set[int] = set()
    for (ident,) in store.execute("SELECT DISTINCT identity_id FROM tracks WHERE identity_id IS NOT NULL"):
        i = int(ident)
        while i not in alive:   # the identity and every one it was merged into
            alive.add(i)
            if i not in parents:
                break
            i = parents[i]
    dead = sorted(int(i) for (i,) in store.execute("SELECT id FROM identities") if int(i) not in alive)
    if dead:
        _raise_floors(store, 0, max(dead) + 1)
    for chunk in _chunks(dead):
        m = marks(len(chunk))
        store.execute(f"DELETE FROM links WHERE identity_id IN ({m})", chunk)
        store.execute(f"DELETE FROM merges WHERE winner IN ({m}) OR loser IN ({m})", [*chunk, *chunk])
        store.execute(f"UPDATE identities SET merged_into = NULL WHERE id IN ({m})", chunk)
        store.execute(f"DELETE FROM identities WHERE id IN ({m})", chunk)
    return dead


def _raise_floors(store: Store, next_track_no: int, next_identity: int) -> None:
    current = id_floors(store)
    for key, value, now in zip(_FLOOR_KEYS, (next_track_no, next_identity), current, strict=True):
        if value > now:
            store.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                          "value = excluded.value", (key, str(int(value))))


def id_floors(store: Store) -> tuple[int, int]:
    """The least track number and identity id the matcher may hand out next (1, 1 when nothing was erased)."""
    rows = dict(store.execute(f"SELECT key, value FROM meta WHERE key IN ({marks(2)})", _FLOOR_KEYS)) \
        if store.schema_version >= 1 else {}
    return int(rows.get(_FLOOR_KEYS[0], 1)), int(rows.get(_FLOOR_KEYS[1], 1))


# -- forgotten tracks -----------------------------------------------------------------------------


def remember_forgotten(store: Store, hashes: Iterable[str], erasure_id: int, ts: float) -> None:
    store.execute_many("INSERT INTO forgotten_tracks (uid_hash, erasure_id, ts) VALUES (?, ?, ?) "
                       "ON CONFLICT (uid_hash) DO NOTHING", [(h, int(erasure_id), float(ts)) for h in hashes])


def is_forgotten(store: Store, track_uid: str) -> bool:
    """Whether ``track_uid`` was erased (its late reports must not name it again)."""
    if store.schema_version < V_PRIVACY:
        return False
    return bool(store.execute("SELECT 1 FROM forgotten_tracks WHERE uid_hash = ?", (uid_hash(track_uid),)))


def forgotten_hashes(store: Store) -> set[str]:
    """Hashes of every erased track (the matcher drops their late clips)."""
    if store.schema_version < V_PRIVACY:
        return set()
    return {str(h) for (h,) in store.execute("SELECT uid_hash FROM forgotten_tracks")}


# -- the request queue and its tombstones ---------------------------------------------------------


@dataclass(frozen=True)
class Erasure:
    """One row of ``erasures``: a queued request, or the tombstone of an executed one."""

    id: int
    kind: str
    target: str
    before_ts: float | None
    requested_by: str
    requested_at: float
    status: str
    executed_by: str | None
    done_at: float | None
    n_tracks: int
    n_identities: int
    n_crops: int
    n_files: int
    n_dead: int
    reason: str

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)

    @property
    def selector(self) -> Selector:
        return Selector(self.kind, self.target, self.before_ts)


_COLUMNS = ("id, kind, target, before_ts, requested_by, requested_at, status, executed_by, done_at, n_tracks, "
            "n_identities, n_crops, n_files, n_dead, reason")


def _erasure(r: Sequence[object]) -> Erasure:
    return Erasure(*r)  # type: ignore[arg-type]


def tombstone_target(sel: Selector) -> str:
    """What a finished request keeps of its target: a track uid becomes ``hash:<uid_hash(uid)>``."""
    return f"hash:{uid_hash(sel.target)}" if sel.kind == "track" else sel.target


def add_request(store: Store, sel: Selector, requested_by: str, now: float) -> int:
    """Queue a request; returns its id."""
    _require(store)
    rows = store.execute("INSERT INTO erasures (kind, target, before_ts, requested_by, requested_at, status) "
                         "VALUES (?, ?, ?, ?, ?, 'pending') RETURNING id",
                         (sel.kind, sel.target, sel.before_ts, requested_by, float(now)))
    return int(rows[0][0])


def get_erasure(store: Store, erasure_id: int) -> Erasure | None:
    if store.schema_version < V_PRIVACY:
        return None
    rows = store.execute(f"SELECT {_COLUMNS} FROM erasures WHERE id = ?", (int(erasure_id),))
    return _erasure(rows[0]) if rows else None


def runnable(store: Store, now: float, stale_s: float) -> list[Erasure]:
    """Requests waiting for an executor: pending ones, and running ones whose executor went quiet
    (claimed longer than ``stale_s`` ago: it died between its steps, which are each idempotent)."""
    if store.schema_version < V_PRIVACY:
        return []
    return [_erasure(r) for r in store.execute(
        f"SELECT {_COLUMNS} FROM erasures WHERE status = 'pending' OR (status = 'running' AND claimed_at < ?) "
        "ORDER BY id", (float(now) - stale_s,))]


def claim(store: Store, erasure_id: int, executor: str, now: float, stale_s: float) -> bool:
    """Take a runnable request for ``executor``; False when someone else has it (or it is finished)."""
    rows = store.execute("UPDATE erasures SET status = 'running', executed_by = ?, claimed_at = ? WHERE id = ? AND "
                         "(status = 'pending' OR (status = 'running' AND claimed_at < ?)) RETURNING id",
                         (executor, float(now), int(erasure_id), float(now) - stale_s))
    return bool(rows)


@dataclass(frozen=True)
class Counts:
    """How much an executed request erased."""

    n_tracks: int = 0
    n_identities: int = 0
    n_crops: int = 0
    n_files: int = 0
    n_dead: int = 0


def finish(store: Store, e: Erasure, status: str, counts: Counts, reason: str, now: float) -> None:
    """Turn the request into its tombstone (the target of a track request becomes its hash)."""
    store.execute("UPDATE erasures SET status = ?, target = ?, done_at = ?, n_tracks = ?, n_identities = ?, "
                  "n_crops = ?, n_files = ?, n_dead = ?, reason = ? WHERE id = ?",
                  (status, tombstone_target(e.selector), float(now), counts.n_tracks, counts.n_identities,
                   counts.n_crops, counts.n_files, counts.n_dead, reason, e.id))


def find_tombstone(store: Store, sel: Selector) -> Erasure | None:
    """The latest finished erasure of exactly this identity or track (what makes forget idempotent)."""
    if store.schema_version < V_PRIVACY or sel.kind == "camera":
        return None
    rows = store.execute(f"SELECT {_COLUMNS} FROM erasures WHERE kind = ? AND target = ? AND status = 'done' "
                         "ORDER BY id DESC LIMIT 1", (sel.kind, tombstone_target(sel)))
    return _erasure(rows[0]) if rows else None


def last_done_id(store: Store) -> int:
    """The id of the latest executed request (0: none); a change tells the matcher to rebuild itself."""
    if store.schema_version < V_PRIVACY:
        return 0
    return int(store.execute("SELECT coalesce(max(id), 0) FROM erasures WHERE status = 'done'")[0][0])


def list_erasures(store: Store, limit: int = 100, offset: int = 0) -> list[Erasure]:
    """Requests and tombstones, newest first."""
    if store.schema_version < V_PRIVACY:
        return []
    return [_erasure(r) for r in store.execute(f"SELECT {_COLUMNS} FROM erasures ORDER BY id DESC LIMIT ? OFFSET ?",
                                               (int(limit), int(offset)))]


# -- the writer lease -----------------------------------------------------------------------------


def heartbeat(store: Store, role: str, holder: str, now: float) -> None:
    """``holder`` is alive and writes the store as ``role`` (the matcher renews it every few seconds)."""
    store.execute("INSERT INTO writer_lease (role, holder, heartbeat_at) VALUES (?, ?, ?) ON CONFLICT (role) "
                  "DO UPDATE SET holder = excluded.holder, heartbeat_at = excluded.heartbeat_at",
                  (role, holder, float(now)))


def release(store: Store, role: str, holder: str) -> None:
    store.execute("DELETE FROM writer_lease WHERE role = ? AND holder = ?", (role, holder))


def live_holder(store: Store, role: str, now: float, lease_s: float) -> str | None:
    """Who holds ``role`` with a heartbeat newer than ``lease_s``; None when nobody does."""
    if store.schema_version < V_PRIVACY:
        return None
    rows = store.execute("SELECT holder FROM writer_lease WHERE role = ? AND heartbeat_at >= ?",
                         (role, float(now) - lease_s))
    return str(rows[0][0]) if rows else None
