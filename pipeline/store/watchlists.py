"""Watchlists (schema v7): "tell me when this person shows up", and the hits the matcher recorded.

An entry is a name, the model whose vectors it holds (``model_id``: a track of another model is never
compared with it), a cosine ``threshold`` and up to ``MAX_REFS`` reference vectors, unit float32: one
per query image (``xreid watch add --image``) or one per track of the identity it was made from
(``--identity``; ``identity_id`` remembers which). The CLI and the API's admin routes add and remove
entries; the matcher reads them (``load_refs``) and records each hit once per entry and track
(``add_hits``) in the transaction that announces it.

Forget and retention: an entry made from an identity holds that person's vectors, so the cascade that
deletes tracks (``pipeline/store/erasure.py`` ``delete_tracks``, run by forget and by the retention of
tracks) deletes the references taken from those tracks (``delete_refs_for_tracks``: an entry left
without any goes), the entries made from the identities that went (``delete_for_identities``) and the
hits of those tracks (``delete_hits_for_tracks``). The ``retention.watchlists`` horizon deletes entries
created, and hits recorded, before it (``delete_older_than``, ``delete_hits_older_than``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from models.errors import StoreError
from pipeline.store.base import Store, marks
from pipeline.store.identities import find_root, members, merged_parents
from pipeline.store.schema import V_EVENTS

MAX_REFS = 64          # reference vectors per entry (a watchlist hit lists one score per reference)
MAX_NAME_CHARS = 200
_CHUNK = 500           # values per IN (...) list


@dataclass(frozen=True)
class WatchEntry:
    """One watchlist entry as readers see it (no vectors)."""

    id: int
    name: str
    model_id: str
    threshold: float
    identity_id: int | None
    created_at: float
    n_refs: int
    n_hits: int

    def listing(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "model_id": self.model_id, "threshold": self.threshold,
                "identity": self.identity_id, "created_at": self.created_at, "n_refs": self.n_refs,
                "n_hits": self.n_hits}


@dataclass(frozen=True)
class HitRow:
    watchlist_id: int
    track_uid: str
    score: float
    ts: float


def check_store(store: Store) -> None:
    """Raises ``StoreError`` when the store predates watchlists (open it writable once to migrate it)."""
    if store.schema_version < V_EVENTS:
        raise StoreError(f"store {store.path} is at schema v{store.schema_version}; watchlists need v{V_EVENTS} "
                         "(any xreid command that writes the store migrates it)")


def add_entry(store: Store, name: str, model_id: str, threshold: float, refs: np.ndarray,
              identity_id: int | None = None, track_nos: Sequence[int | None] | None = None,
              created_at: float | None = None) -> int:
    """Store a new entry and its reference vectors (normalised here); returns its id.

    Args:
        refs: (N, D) float32, 1 <= N <= ``MAX_REFS``.
        track_nos: the track each reference came from (``--identity``), or None.

    Raises:
        StoreError: an empty name, a threshold outside [-1, 1], no or too many references, or non-finite values.
    """
    check_store(store)
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS or any(ord(c) < 0x20 for c in name):
        raise StoreError(f"watchlist name must be 1..{MAX_NAME_CHARS} printable characters, got {name[:80]!r}")
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and -1.0 <= threshold <= 1.0):
        raise StoreError(f"watchlist threshold must be a cosine in [-1, 1], got {threshold!r}")
    refs = np.asarray(refs, dtype=np.float32)
    if refs.ndim != 2 or not 1 <= refs.shape[0] <= MAX_REFS or refs.shape[1] == 0:
        raise StoreError(f"a watchlist entry needs 1..{MAX_REFS} reference vectors, got shape {refs.shape}")
    norms = np.linalg.norm(refs, axis=1, keepdims=True)
    if not np.all(np.isfinite(refs)) or np.any(norms == 0):
        raise StoreError("watchlist reference vectors must be finite and non-zero")
    refs = refs / norms
    nos = list(track_nos) if track_nos is not None else [None] * len(refs)
    with store.transaction():
        # RETURNING, not max(id): on PostgreSQL several API replicas may add entries at once
        entry_id = int(store.execute("INSERT INTO watchlists (name, model_id, threshold, identity_id, created_at) "
                                     "VALUES (?, ?, ?, ?, ?) RETURNING id",
                                     (name, model_id, float(threshold), identity_id,
                                      time.time() if created_at is None else float(created_at)))[0][0])
        store.execute_many("INSERT INTO watchlist_refs (watchlist_id, idx, vector, track_no) VALUES (?, ?, ?, ?)",
                           [(entry_id, i, v.astype("<f4").tobytes(), no) for i, (v, no) in enumerate(zip(refs, nos,
                                                                                                          strict=True))])
    return entry_id


_SELECT = ("SELECT w.id, w.name, w.model_id, w.threshold, w.identity_id, w.created_at, "
           "(SELECT count(*) FROM watchlist_refs r WHERE r.watchlist_id = w.id), "
           "(SELECT count(*) FROM watchlist_hits h WHERE h.watchlist_id = w.id) FROM watchlists w")


def list_entries(store: Store) -> list[WatchEntry]:
    """Every entry, oldest first (empty before schema v7)."""
    if store.schema_version < V_EVENTS:
        return []
    return [_entry(r) for r in store.execute(_SELECT + " ORDER BY w.id")]


def get_entry(store: Store, entry_id: int) -> WatchEntry | None:
    if store.schema_version < V_EVENTS:
        return None
    rows = store.execute(_SELECT + " WHERE w.id = ?", (int(entry_id),))
    return _entry(rows[0]) if rows else None


def _entry(r: Sequence[object]) -> WatchEntry:
    i, name, model, thr, ident, at, n_refs, n_hits = r
    return WatchEntry(int(i), str(name), str(model), float(thr), None if ident is None else int(ident),  # type: ignore[arg-type]
                      float(at), int(n_refs), int(n_hits))  # type: ignore[arg-type]


def remove_entry(store: Store, entry_id: int) -> bool:
    """Delete an entry with its references and hits; False when there was none."""
    check_store(store)
    with store.transaction():
        return _delete(store, [int(entry_id)]) > 0


def _delete(store: Store, ids: Sequence[int]) -> int:
    """Delete entries with their hits and references (hits and references first: an entry left without
    references by a crash midway is never compared). Opens no transaction: callers may hold one."""
    if not ids:
        return 0
    found = [int(r[0]) for r in store.execute(f"SELECT id FROM watchlists WHERE id IN ({marks(len(ids))})", ids)]
    for table, col in (("watchlist_hits", "watchlist_id"), ("watchlist_refs", "watchlist_id"), ("watchlists", "id")):
        if found:
            store.execute(f"DELETE FROM {table} WHERE {col} IN ({marks(len(found))})", found)
    return len(found)


def load_refs(store: Store) -> list[tuple[WatchEntry, np.ndarray]]:
    """Every entry with its (N, D) unit float32 references (what the matcher compares tracks with)."""
    if store.schema_version < V_EVENTS:
        return []
    vectors: dict[int, list[np.ndarray]] = {}
    for wid, blob in store.execute("SELECT watchlist_id, vector FROM watchlist_refs ORDER BY watchlist_id, idx"):
        vectors.setdefault(int(wid), []).append(np.frombuffer(bytes(blob), dtype="<f4").astype(np.float32))
    return [(e, np.vstack(vectors[e.id])) for e in list_entries(store) if e.id in vectors]


def add_hits(store: Store, hits: Sequence[HitRow], stored_at: float | None = None) -> None:
    """Record hits (call inside the matcher's transaction); a hit already recorded stays as it was.

    Args:
        stored_at: when they are recorded (UTC epoch seconds; default now): retention ages them from it.
    """
    now = time.time() if stored_at is None else float(stored_at)
    store.execute_many("INSERT INTO watchlist_hits (watchlist_id, track_uid, score, ts, stored_at) "
                       "VALUES (?, ?, ?, ?, ?) ON CONFLICT (watchlist_id, track_uid) DO NOTHING",
                       [(h.watchlist_id, h.track_uid, float(h.score), float(h.ts), now) for h in hits])


def hit_keys(store: Store) -> set[tuple[int, str]]:
    """(entry, track uid) of every recorded hit: a restarted matcher does not announce them again."""
    if store.schema_version < V_EVENTS:
        return set()
    return {(int(w), str(t)) for w, t in store.execute("SELECT watchlist_id, track_uid FROM watchlist_hits")}


def identity_references(store: Store, identity: int, limit: int = MAX_REFS) -> tuple[str, list[int], np.ndarray]:
    """The vectors an entry made from ``identity`` holds: its tracks' embeddings, most clips first.

    Returns:
        (model_id, track numbers, (N, D) unit float32 vectors), N <= ``limit``.

    Raises:
        StoreError: no such identity, or none of its tracks is embedded yet.
    """
    parents = merged_parents(store)
    known = store.execute("SELECT 1 FROM identities WHERE id = ?", (int(identity),))
    if not known:
        raise StoreError(f"no identity {identity} in {store.path}")
    ids = members(parents, find_root(parents, int(identity)))
    rows = store.execute(f"SELECT track_no, model_id, embedding FROM tracks WHERE identity_id IN ({marks(len(ids))}) "
                         "AND embedding IS NOT NULL AND track_no IS NOT NULL ORDER BY n_embedded DESC, track_no "
                         "LIMIT ?", [*ids, int(limit)])
    if not rows:
        raise StoreError(f"identity {identity} has no embedded track yet")
    model_id = str(rows[0][1])
    rows = [r for r in rows if r[1] == model_id]   # one identity is one model's; guard a hand-edited store
    vectors = np.vstack([np.frombuffer(bytes(r[2]), dtype="<f4").astype(np.float32) for r in rows])
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return model_id, [int(r[0]) for r in rows], vectors


# -- retention and forget --------------------------------------------------------------------------


def delete_older_than(store: Store, ts: float) -> int:
    """Delete entries created before ``ts`` (UTC epoch seconds) with their references and hits; returns how many.

    Opens no transaction (retention may run it inside its own).
    """
    if store.schema_version < V_EVENTS:
        return 0
    ids = [int(r[0]) for r in store.execute("SELECT id FROM watchlists WHERE created_at < ?", (float(ts),))]
    return _delete(store, ids)


def delete_for_identities(store: Store, identities: Iterable[int]) -> int:
    """Delete entries made from any of ``identities`` (or from an identity merged into or with one of them).

    Call it before the identities themselves are deleted: the merges are read to match old ids. Opens no
    transaction (forget may run it inside its own).
    """
    if store.schema_version < V_EVENTS:
        return 0
    parents = merged_parents(store)
    roots = {find_root(parents, int(i)) for i in identities}
    rows = store.execute("SELECT id, identity_id FROM watchlists WHERE identity_id IS NOT NULL")
    ids = [int(w) for w, ident in rows if find_root(parents, int(ident)) in roots or int(ident) in roots]
    return _delete(store, ids)


def delete_hits_older_than(store: Store, ts: float) -> int:
    """Delete hits recorded before ``ts`` (UTC epoch seconds); returns how many went. Opens no transaction."""
    if store.schema_version < V_EVENTS:
        return 0
    return len(store.execute("DELETE FROM watchlist_hits WHERE stored_at < ? RETURNING watchlist_id", (float(ts),)))


def delete_hits_for_tracks(store: Store, track_uids: Sequence[str]) -> int:
    """Delete the recorded hits of forgotten tracks; returns how many went. Opens no transaction."""
    if store.schema_version < V_EVENTS or not track_uids:
        return 0
    uids = list(track_uids)
    n = 0
    for i in range(0, len(uids), _CHUNK):
        chunk = uids[i:i + _CHUNK]
        n += len(store.execute(f"DELETE FROM watchlist_hits WHERE track_uid IN ({marks(len(chunk))}) "
                               "RETURNING watchlist_id", chunk))
    return n


def delete_refs_for_tracks(store: Store, track_nos: Sequence[int]) -> int:
    """Delete the reference vectors taken from these tracks, and the entries left without any (with their
    hits); returns how many entries went. Opens no transaction (the erasure holds one)."""
    if store.schema_version < V_EVENTS or not track_nos:
        return 0
    nos = [int(n) for n in track_nos]
    touched: set[int] = set()
    for i in range(0, len(nos), _CHUNK):
        chunk = nos[i:i + _CHUNK]
        touched.update(int(w) for (w,) in store.execute(
            f"DELETE FROM watchlist_refs WHERE track_no IN ({marks(len(chunk))}) RETURNING watchlist_id", chunk))
    if not touched:
        return 0
    ids = sorted(touched)
    kept = {int(w) for (w,) in store.execute(
        f"SELECT DISTINCT watchlist_id FROM watchlist_refs WHERE watchlist_id IN ({marks(len(ids))})", ids)}
    return _delete(store, [i for i in ids if i not in kept])
