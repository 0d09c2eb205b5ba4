"""The API's read view of the store: one read-only snapshot per request, rows shaped for the responses.

The API never writes. Every request reads inside one read-only snapshot (its own ``Store`` on a
SQLite file; a pooled connection of a PostgreSQL store), so a page and its total come from the
same state while the matcher keeps committing; several API replicas can read one PostgreSQL store. The API may start before the writer has created or migrated the file: the store's
readers answer by schema version, so identity routes simply find nothing in a store that has no
identities yet. The SQL lives in ``pipeline/store/``; this module only shapes its rows as dicts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import StoreError
from pipeline.store import cameras, identities, modality_events, summaries, tracks
from pipeline.store.base import NetworkOptions, Store, describe, is_postgres
from pipeline.store.calibration import list_thresholds
from pipeline.store.schema import V_TRACKS, SchemaTooNew, check_schema_version
from pipeline.store.tracks import Track, TrackFilter

log = logging.getLogger(__name__)

class StoreUnavailable(StoreError):
    """The store file is missing, unreadable, or not an xreid store (the API answers 503)."""


class StoreTooNew(StoreUnavailable):
    """The store was written by a newer build (``xreid serve`` refuses to start; routes answer 503)."""


class StoreReader:
    """Opens read-only snapshots of the store at ``location``.

    A SQLite file is opened per request (cheap, and a file that appears later is found). A PostgreSQL
    store is opened once, lazily, and its pool serves every request; while the database is unreachable
    a request fails at once (503) instead of queueing, and the pool reconnects in the background.

    Args:
        location: the SQLite file or ``postgresql://`` URL the writer (replay or matcher) maintains.
        timeout_s: how long a read waits on a lock (WAL readers rarely wait at all) or for a connection.
        network: pool size and backoff of a PostgreSQL store (``give_up_s`` is forced to 0: answer now).
    """

    def __init__(self, location: str | Path, timeout_s: float = 5.0, network: NetworkOptions | None = None) -> None:
        self.location = str(location)
        self.path = describe(location)
        self.timeout_s = timeout_s
        self.network = replace(network or NetworkOptions(), give_up_s=0.0)
        self._shared: Store | None = None
        self._lock = threading.Lock()

    def check_schema(self) -> None:
        """Refuse a store from a newer build; a missing or unreadable one may still appear (the
        writer may start later), so only ``StoreTooNew`` is raised.

        Raises:
            StoreTooNew: the same one-line reason the CLI gives.
        """
        try:
            with self.snapshot():
                pass
        except StoreTooNew:
            raise
        except StoreUnavailable:
            return

    def _open(self) -> Store:
        try:
            return Store(self.location, readonly=True, timeout_s=self.timeout_s, network=self.network)
        except SchemaTooNew as e:
            raise StoreTooNew(str(e)) from None
        except StoreError as e:
            raise StoreUnavailable(str(e)) from None

    def _network_store(self) -> Store:
        with self._lock:
            if self._shared is None:
                self._shared = self._open()
            return self._shared

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """A consistent read view; raises ``StoreUnavailable`` when the store cannot be read."""
        shared = is_postgres(self.location)
        if shared:
            store = self._network_store()
        elif not Path(self.location).is_file():
            raise StoreUnavailable(f"store {self.path} does not exist yet (has the replay or matcher run?)")
        else:
            store = self._open()
        try:
            with store.snapshot():
                if store.schema_version < V_TRACKS:
                    raise StoreUnavailable("the store has no tracks table yet (schema not created)")
                try:
                    check_schema_version(store.path, store.schema_version, store.latest_version)
                except SchemaTooNew as e:   # migrated by a newer writer while this server ran
                    raise StoreTooNew(str(e)) from None
                yield Snapshot(store)
        except StoreUnavailable:
            raise
        except StoreError as e:
            raise StoreUnavailable(f"cannot read store {self.path}: {e}") from None
        finally:
            if not shared:
                store.close()

    def close(self) -> None:
        """Close a PostgreSQL store's pool (at server shutdown)."""
        with self._lock:
            if self._shared is not None:
                self._shared.close()
                self._shared = None


class Snapshot:
    """Reads of one snapshot, as the dicts the routes turn into responses."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._parents: dict[int, int] | None = None

    @property
    def parents(self) -> dict[int, int]:
        """Merged identity → the identity it was merged into, read once per snapshot."""
        if self._parents is None:
            self._parents = identities.merged_parents(self.store)
        return self._parents

    @property
    def schema_version(self) -> int:
        return self.store.schema_version

    def counts(self) -> tuple[int, int]:
        """Tracks, and identities after merges, in the store."""
        return tracks.count_tracks(self.store, parents=self.parents), len(summaries.identity_ids(self.store))

    # -- cameras ------------------------------------------------------------------------------

    def cameras(self) -> list[dict[str, Any]]:
        """Every camera seen in tracks, status reports or modality events, by id."""
        return cameras.camera_overview(self.store)

    def modality_timeline(self, camera_id: str, t_from: float | None = None,
                          t_to: float | None = None) -> list[dict[str, Any]]:
        """When the camera was colour and when infrared: spans between its modality events (oldest first)."""
        return [s.as_dict() for s in modality_events.modality_timeline(self.store, camera_id, t_from, t_to)]

    # -- tracks -------------------------------------------------------------------------------

    def tracks(self, f: TrackFilter, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        """One page of tracks, newest first, and the total matching the filter.

        An ``identity_id`` that was merged away selects the tracks of the identity it lives on as.
        """
        rows = tracks.list_tracks(self.store, f, limit, offset, newest_first=True, parents=self.parents)
        return [_track_row(t) for t in rows], tracks.count_tracks(self.store, f, self.parents)

    def track(self, track_uid: str) -> dict[str, Any] | None:
        t = tracks.get_track(self.store, track_uid, self.parents)
        return None if t is None else _track_row(t)

    def track_thumbnail(self, track_uid: str) -> bytes | None:
        return tracks.thumbnail(self.store, track_uid)

    # -- identities ---------------------------------------------------------------------------

    def resolve(self, identity_id: int) -> int | None:
        """The identity ``identity_id`` lives on as (itself, or the winner of its merges)."""
        return identities.resolve(self.store, identity_id, self.parents)

    def identities(self, f: TrackFilter, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        """Identities (most recently seen first) having at least one track that passes the filter."""
        rows, total = summaries.list_identities(self.store, f, limit, offset)
        return [r.as_dict() for r in rows], total

    def identity(self, root: int) -> dict[str, Any] | None:
        """The summary of a resolved identity, with the ids merged into it; ``None`` if it has no track."""
        found = summaries.summarize(self.store, [root], self.parents).get(root)
        if found is None:
            return None
        return {**found.as_dict(), "merged_ids": identities.members(self.parents, root)[1:]}

    def identities_by_root(self, roots: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Summaries of several resolved identities (those without tracks are absent)."""
        return {k: v.as_dict() for k, v in summaries.summarize(self.store, roots, self.parents).items()}

    def identity_tracks(self, root: int) -> list[dict[str, Any]]:
        """Every track of the identity in time order, with the decision that put it there."""
        rows = tracks.list_tracks(self.store, TrackFilter(identity_id=root), parents=self.parents)
        decisions: dict[int, dict[str, Any]] = {}   # the latest join/new decision of each track
        links = identities.list_links(self.store, [t.track_no for t in rows if t.track_no is not None],
                                      ("join", "new"))
        for ln in sorted(links, key=lambda ln: ln.ts):
            decisions[ln.track_no] = {"link_kind": ln.kind, "link_score": ln.score, "link_pair": ln.pair,
                                      "matched_track_uid": ln.matched_track_uid}
        none = {"link_kind": None, "link_score": None, "link_pair": None, "matched_track_uid": None}
        return [{**_track_row(t), **decisions.get(t.track_no, none)} for t in rows]  # type: ignore[arg-type]

    def merges(self, root: int) -> list[dict[str, Any]]:
        """Merges that folded other identities into this one, oldest first."""
        found = sorted(identities.list_merges(self.store, root, self.parents), key=lambda m: m.ts)
        return [{"winner": m.winner, "loser": m.loser, "score": m.score, "ts": m.ts,
                 "evidence_track_uid": m.evidence_track_uid} for m in found]

    def identity_thumbnails(self, root: int, modality: str | None, limit: int) -> list[bytes]:
        """Thumbnails of the identity's longest-observed tracks (optionally of one modality)."""
        return tracks.identity_thumbnails(self.store, identities.members(self.parents, root), modality, limit)

    def thumbnail_modalities(self, roots: Sequence[int]) -> dict[int, set[str]]:
        """For each identity, the modalities it has a thumbnail in."""
        return summaries.thumbnail_modalities_of(self.store, roots, self.parents)

    # -- embeddings ---------------------------------------------------------------------------

    def track_embedding(self, track_uid: str) -> tuple[np.ndarray, str, int] | None:
        """The track's unit-length embedding, model id and track number; ``None`` when it has none yet."""
        found = tracks.track_embedding(self.store, track_uid)
        return None if found is None else (found.unit, found.model_id, found.track_no)

    def gallery_fingerprint(self, model_id: str) -> tuple[int, float]:
        """Changes whenever a track embedding of ``model_id`` is added or updated."""
        return tracks.gallery_fingerprint(self.store, model_id)

    def gallery(self, model_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(N,) int64 track numbers and (N, D) unit float32 embeddings of every track of ``model_id``."""
        return tracks.gallery(self.store, model_id)

    def tracks_by_number(self, track_nos: Sequence[int]) -> dict[int, dict[str, Any]]:
        return {no: {"track_no": no, "track_uid": t.track_uid, "camera_id": t.camera_id, "modality": t.modality,
                     "pid": t.identity} for no, t in tracks.tracks_by_number(self.store, track_nos).items()}

    def calibration(self, model_id: str | None = None) -> list[dict[str, Any]]:
        """Each model's thresholds per modality pair as the matcher last computed them (schema v5)."""
        return list_thresholds(self.store, model_id)


def _track_row(t: Track) -> dict[str, Any]:
    return {"track_uid": t.track_uid, "camera_id": t.camera_id, "modality": t.modality, "t_start": t.t_start,
            "t_end": t.t_end, "n_frames": t.n_frames, "n_clips": t.n_clips, "identity_id": t.identity,
            "has_thumbnail": t.has_thumbnail}
