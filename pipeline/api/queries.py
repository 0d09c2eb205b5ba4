"""Read-only SQL over the store file for the API: cameras, tracks, identities, thumbnails.

The API never writes. Every request opens its own read-only connection and reads inside one
transaction, so a page and its total come from the same WAL snapshot while the matcher keeps
committing. The schema is discovered per snapshot (tables and columns present), because the
API may start before the writer has created or migrated the file: identity routes simply find
nothing in a store that has no identities yet.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from models.errors import StoreError
from pipeline.store.sqlite import check_schema_version, where_clause

log = logging.getLogger(__name__)

TRACK_FIELDS = ("track_uid", "camera_id", "modality", "t_start", "t_end", "n_frames", "n_clips")


class StoreUnavailable(StoreError):
    """The store file is missing, unreadable, or not an xreid store (the API answers 503)."""


class StoreTooNew(StoreUnavailable):
    """The store was written by a newer build (``xreid serve`` refuses to start; routes answer 503)."""


@dataclass(frozen=True)
class TrackFilter:
    """Filters of ``/tracks``; times are UTC epoch seconds, a track matches if it overlaps the range."""

    camera_id: str | None = None
    modality: str | None = None
    t_from: float | None = None
    t_to: float | None = None
    identity_id: int | None = None


class StoreReader:
    """Opens read-only snapshots of the store at ``path``.

    Args:
        path: the SQLite file the writer (replay or matcher) maintains.
        timeout_s: how long a read waits on a lock (WAL readers rarely wait at all).
    """

    def __init__(self, path: str | Path, timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s

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

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """A consistent read view; raises ``StoreUnavailable`` when the store cannot be read."""
        if not self.path.is_file():
            raise StoreUnavailable(f"store {self.path} does not exist yet (has the replay or matcher run?)")
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=self.timeout_s, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as e:
            raise StoreUnavailable(f"cannot open store {self.path}: {e}") from None
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA query_only = 1")
            conn.execute("BEGIN")
            try:
                snap = Snapshot(conn)
                try:
                    check_schema_version(self.path, snap.schema_version)
                except StoreError as e:
                    raise StoreTooNew(str(e)) from None
                yield snap
            finally:
                conn.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            raise StoreUnavailable(f"cannot read store {self.path}: {e}") from None
        finally:
            conn.close()


# A track's identity may have been merged since it was assigned: ``canon`` maps every MERGED
# identity to the survivor at the end of its merge chain (walking up ``merged_into``; merges are
# few, so this stays small), and ``t`` is the tracks table with the resolved identity as ``pid``.
_WITH_CANON = """WITH RECURSIVE up(id, cur) AS (
    SELECT id, merged_into FROM identities WHERE merged_into IS NOT NULL
    UNION SELECT up.id, i.merged_into FROM up JOIN identities i ON i.id = up.cur WHERE i.merged_into IS NOT NULL),
canon(id, root) AS (SELECT id, cur FROM up WHERE cur NOT IN (SELECT id FROM identities WHERE merged_into IS NOT NULL)),
t AS (SELECT tracks.*, coalesce(canon.root, tracks.identity_id) AS pid FROM tracks
      LEFT JOIN canon ON canon.id = tracks.identity_id)
"""
_WITH_NO_IDENTITIES = "WITH t AS (SELECT tracks.*, NULL AS pid FROM tracks)\n"
_TRACK_SELECT = ", ".join(TRACK_FIELDS) + ", pid AS identity_id, thumbnail IS NOT NULL AS has_thumbnail"
_IDENTITY_AGG = ("pid AS identity_id, count(*) AS n_tracks, min(t_start) AS first_seen, max(t_end) AS last_seen, "
                 "group_concat(DISTINCT camera_id) AS cameras, group_concat(DISTINCT modality) AS modalities")


class Snapshot:
    """Queries against one read transaction. Rows come back as plain dicts."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.columns: dict[str, set[str]] = {}
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            self.columns[name] = {r[1] for r in conn.execute(f'PRAGMA table_info("{name}")').fetchall()}
        if "tracks" not in self.columns:
            raise StoreUnavailable("the store has no tracks table yet (schema not created)")
        self.has_identities = "identity_id" in self.columns["tracks"] and "identities" in self.columns
        self.has_embeddings = {"embedding", "model_id", "track_no"} <= self.columns["tracks"]
        self._with = _WITH_CANON if self.has_identities else _WITH_NO_IDENTITIES

    @property
    def schema_version(self) -> int:
        if "meta" not in self.columns:
            return 0
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(sql, tuple(params)).fetchall()]

    def _t(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run ``sql`` that reads ``t`` (tracks with their resolved identity ``pid``)."""
        return self._rows(self._with + sql, params)

    def counts(self) -> tuple[int, int]:
        """Tracks, and identities after merges, in the store."""
        row = self._t("SELECT count(*) AS n, count(DISTINCT pid) AS ids FROM t")[0]
        return int(row["n"]), int(row["ids"])

    # -- cameras ------------------------------------------------------------------------------

    def cameras(self) -> list[dict[str, Any]]:
        """Every camera seen in tracks or listed in a ``cameras`` status table, by id."""
        seen = self._rows(
            "SELECT camera_id, group_concat(DISTINCT modality) AS modalities, count(*) AS n_tracks, "
            "min(t_start) AS first_seen, max(t_end) AS last_seen FROM tracks GROUP BY camera_id")
        out = {r["camera_id"]: {**r, "modalities": sorted(r["modalities"].split(",")), "current_modality": None,
                                "status": None, "reason": None, "status_at": None} for r in seen}
        cols = self.columns.get("cameras", set())
        if {"camera_id", "status"} <= cols:
            extra = [c if c in cols else f"NULL AS {c}" for c in ("reason", "updated_at", "modality", "source")]
            for r in self._rows(f"SELECT camera_id, status, {', '.join(extra)} FROM cameras"):
                cam = out.setdefault(r["camera_id"], {
                    "camera_id": r["camera_id"], "modalities": [r["modality"]] if r["modality"] else [],
                    "n_tracks": 0, "first_seen": None, "last_seen": None, "current_modality": None})
                cam.update(status=r["status"], reason=r["reason"] or None, status_at=r["updated_at"], source=r["source"])
        if "modality_events" in self.columns:  # schema v3: day/night cameras (pipeline/store/modality_events.py)
            for r in self._rows(
                    "SELECT camera_id, count(from_modality) AS switches, (SELECT to_modality FROM modality_events l "
                    "WHERE l.camera_id = e.camera_id ORDER BY ts DESC LIMIT 1) AS modality "
                    "FROM modality_events e GROUP BY camera_id"):
                cam = out.setdefault(r["camera_id"], {   # a camera that switched before anyone walked by
                    "camera_id": r["camera_id"], "modalities": [r["modality"]], "n_tracks": 0, "first_seen": None,
                    "last_seen": None, "status": None, "reason": None, "status_at": None})
                cam.update(current_modality=r["modality"], modality_switches=int(r["switches"]))
        return [out[k] for k in sorted(out)]

    def modality_timeline(self, camera_id: str, t_from: float | None = None,
                          t_to: float | None = None) -> list[dict[str, Any]]:
        """When the camera was colour and when infrared: spans between its modality events (oldest first)."""
        from pipeline.store.modality_events import spans_from_events

        if "modality_events" not in self.columns:
            return []
        sql = "SELECT ts, from_modality, to_modality FROM modality_events WHERE camera_id = ?"
        params: list[Any] = [camera_id]
        if t_to is not None:
            sql += " AND ts <= ?"
            params.append(t_to)
        events = [(r["ts"], r["from_modality"], r["to_modality"]) for r in self._rows(sql + " ORDER BY ts", params)]
        return [s.as_dict() for s in spans_from_events(camera_id, events, t_from)]

    # -- tracks -------------------------------------------------------------------------------

    @staticmethod
    def _where(f: TrackFilter) -> tuple[str, list[Any]]:
        return where_clause([("camera_id = ?", f.camera_id), ("modality = ?", f.modality), ("pid = ?", f.identity_id),
                             ("t_end >= ?", f.t_from), ("t_start <= ?", f.t_to)])

    def tracks(self, f: TrackFilter, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        """One page of tracks, newest first, and the total matching the filter.

        An ``identity_id`` that was merged away selects the tracks of the identity it lives on as.
        """
        where, params = self._where(dataclasses.replace(f, identity_id=None))
        if f.identity_id is not None:  # by the stored column, so the index serves it
            root = self.resolve(f.identity_id)
            members = self._members(root) if root is not None else []
            clause = f"identity_id IN ({', '.join('?' * len(members))})" if members else "0"
            where = (where + " AND " if where else " WHERE ") + clause
            params = [*params, *members]
        total = self._t(f"SELECT count(*) AS n FROM t{where}", params)[0]["n"]
        rows = self._t(f"SELECT {_TRACK_SELECT} FROM t{where} ORDER BY t_start DESC, track_uid LIMIT ? OFFSET ?",
                       [*params, limit, offset])
        return rows, int(total)

    def track(self, track_uid: str) -> dict[str, Any] | None:
        rows = self._t(f"SELECT {_TRACK_SELECT} FROM t WHERE track_uid = ?", (track_uid,))
        return rows[0] if rows else None

    def track_thumbnail(self, track_uid: str) -> bytes | None:
        row = self.conn.execute("SELECT thumbnail FROM tracks WHERE track_uid = ?", (track_uid,)).fetchone()
        return bytes(row[0]) if row is not None and row[0] is not None else None

    # -- identities ---------------------------------------------------------------------------

    def resolve(self, identity_id: int) -> int | None:
        """The identity ``identity_id`` lives on as (itself, or the winner of its merges)."""
        if not self.has_identities:
            return None
        rows = self._rows(_WITH_CANON + "SELECT root FROM canon WHERE id = ? "
                          "UNION ALL SELECT id FROM identities WHERE id = ? AND merged_into IS NULL", (identity_id,) * 2)
        return int(rows[0]["root"]) if rows else None

    def _members(self, root: int) -> list[int]:
        """Identity ids that resolve to ``root``: itself and every identity merged into it."""
        rows = self._rows(_WITH_CANON + "SELECT id FROM canon WHERE root = ? ORDER BY id", (root,))
        return [root] + [int(r["id"]) for r in rows]

    def _member_where(self, roots: Sequence[int]) -> tuple[str, list[int], dict[int, int]]:
        """``identity_id IN (...)`` over the members of ``roots``, and member -> root."""
        owner = {m: r for r in roots for m in self._members(r)}
        return f"identity_id IN ({', '.join('?' * len(owner)) or 'NULL'})", list(owner), owner

    def identities(self, f: TrackFilter, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        """Identities (most recently seen first) having at least one track that passes the filter."""
        if not self.has_identities:
            return [], 0
        where, params = self._where(f)
        # the summary covers all of an identity's tracks, the filter only chooses which identities
        scope = f"pid IN (SELECT pid FROM t{where})" if where else "pid IS NOT NULL"
        rows = self._t(f"SELECT {_IDENTITY_AGG}, count(*) OVER () AS total FROM t WHERE {scope} "
                       "GROUP BY pid ORDER BY last_seen DESC, pid LIMIT ? OFFSET ?", [*params, limit, offset])
        if rows:
            total = rows[0]["total"]
        else:  # past the last page: count separately
            total = self._t(f"SELECT count(DISTINCT pid) AS n FROM t WHERE {scope}", params)[0]["n"]
        return [_split_lists({k: v for k, v in r.items() if k != "total"}) for r in rows], int(total)

    def identity(self, root: int) -> dict[str, Any] | None:
        """The summary of a resolved identity, with the ids merged into it; ``None`` if it has no track."""
        if not self.has_identities:
            return None
        found = self.identities_by_root([root])
        if root not in found:
            return None
        return {**found[root], "merged_ids": self._members(root)[1:]}

    def identities_by_root(self, roots: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Summaries of several resolved identities (those without tracks are absent)."""
        if not roots or not self.has_identities:
            return {}
        clause, params, owner = self._member_where(roots)
        rows = self._rows(f"SELECT identity_id, {_IDENTITY_AGG.replace('pid AS identity_id, ', '')} FROM tracks "
                          f"WHERE {clause} GROUP BY identity_id", params)
        out: dict[int, dict[str, Any]] = {}
        for r in rows:  # fold the members' groups into their root
            root = owner[r["identity_id"]]
            cur = out.get(root)
            if cur is None:
                out[root] = {**r, "identity_id": root, "cameras": set(r["cameras"].split(",")),
                             "modalities": set(r["modalities"].split(","))}
                continue
            cur["n_tracks"] += r["n_tracks"]
            cur["first_seen"] = min(cur["first_seen"], r["first_seen"])
            cur["last_seen"] = max(cur["last_seen"], r["last_seen"])
            cur["cameras"] |= set(r["cameras"].split(","))
            cur["modalities"] |= set(r["modalities"].split(","))
        return {k: {**v, "cameras": sorted(v["cameras"]), "modalities": sorted(v["modalities"])} for k, v in out.items()}

    def identity_tracks(self, root: int) -> list[dict[str, Any]]:
        """Every track of the identity in time order, with the decision that put it there."""
        if not self.has_identities:
            return []
        clause, params, _ = self._member_where([root])
        rows = self._rows(f"SELECT {_TRACK_SELECT.replace('pid AS identity_id', '? AS identity_id')}, track_no "
                          f"FROM tracks WHERE {clause} ORDER BY t_start, track_uid", [root, *params])
        decisions = self._decisions([r["track_no"] for r in rows if r.get("track_no") is not None])
        for r in rows:
            r.update(decisions.get(r.pop("track_no"), {"link_kind": None, "link_score": None, "link_pair": None,
                                                       "matched_track_uid": None}))
        return rows

    def _decisions(self, track_nos: list[int]) -> dict[int, dict[str, Any]]:
        """The latest join/new decision of each track (its link evidence)."""
        if not track_nos or "links" not in self.columns:
            return {}
        marks = ", ".join("?" * len(track_nos))
        out: dict[int, dict[str, Any]] = {}
        for r in self._rows(
                f"SELECT l.track_no, l.kind AS link_kind, l.score AS link_score, l.pair AS link_pair, "
                f"m.track_uid AS matched_track_uid FROM links l LEFT JOIN tracks m ON m.track_no = l.matched_track_no "
                f"WHERE l.track_no IN ({marks}) AND l.kind IN ('join', 'new') ORDER BY l.ts, l.id", track_nos):
            out[r.pop("track_no")] = r
        return out

    def merges(self, root: int) -> list[dict[str, Any]]:
        """Merges that folded other identities into this one, oldest first."""
        if "merges" not in self.columns:
            return []
        return self._rows(
            _WITH_CANON + "SELECT m.winner, m.loser, m.score, m.ts, e.track_uid AS evidence_track_uid FROM merges m "
            "LEFT JOIN tracks e ON e.track_no = m.evidence_track_no "
            "WHERE m.loser IN (SELECT id FROM canon WHERE root = ?) ORDER BY m.ts, m.id", (root,))

    def identity_thumbnails(self, root: int, modality: str | None, limit: int) -> list[bytes]:
        """Thumbnails of the identity's longest-observed tracks (optionally of one modality)."""
        if not self.has_identities:
            return []
        clause, members, _ = self._member_where([root])
        sql = f"SELECT thumbnail FROM tracks WHERE {clause} AND thumbnail IS NOT NULL"
        params: list[Any] = list(members)
        if modality is not None:
            sql += " AND modality = ?"
            params.append(modality)
        return [bytes(r["thumbnail"]) for r in self._rows(sql + " ORDER BY n_frames DESC, t_start LIMIT ?",
                                                           [*params, limit])]

    def thumbnail_modalities(self, roots: Sequence[int]) -> dict[int, set[str]]:
        """For each identity, the modalities it has a thumbnail in."""
        if not roots or not self.has_identities:
            return {}
        clause, members, owner = self._member_where(roots)
        out: dict[int, set[str]] = {}
        for r in self._rows(f"SELECT DISTINCT identity_id, modality FROM tracks WHERE {clause} "
                            "AND thumbnail IS NOT NULL", members):
            out.setdefault(owner[r["identity_id"]], set()).add(r["modality"])
        return out

    # -- embeddings ---------------------------------------------------------------------------

    def track_embedding(self, track_uid: str) -> tuple[np.ndarray, str, int] | None:
        """The track's unit-length embedding, model id and track number; ``None`` when it has none yet."""
        if not self.has_embeddings:
            return None
        row = self.conn.execute("SELECT embedding, model_id, track_no FROM tracks WHERE track_uid = ?",
                                (track_uid,)).fetchone()
        if row is None or row[0] is None or row[1] is None or row[2] is None:
            return None
        return _unit_rows(np.frombuffer(bytes(row[0]), dtype="<f4")[None, :])[0], str(row[1]), int(row[2])

    def gallery_fingerprint(self, model_id: str) -> tuple[int, float]:
        """Changes whenever a track embedding of ``model_id`` is added or updated."""
        if not self.has_embeddings:
            return 0, 0.0
        n, folded = self.conn.execute("SELECT count(*), total(n_embedded) FROM tracks WHERE model_id = ? "
                                      "AND embedding IS NOT NULL AND track_no IS NOT NULL", (model_id,)).fetchone()
        return int(n), float(folded)

    def gallery(self, model_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(N,) int64 track numbers and (N, D) unit float32 embeddings of every track of ``model_id``."""
        if not self.has_embeddings:
            return np.empty(0, np.int64), np.empty((0, 0), np.float32)
        rows = self.conn.execute("SELECT track_no, embedding FROM tracks WHERE model_id = ? "
                                 "AND embedding IS NOT NULL AND track_no IS NOT NULL", (model_id,)).fetchall()
        if not rows:
            return np.empty(0, np.int64), np.empty((0, 0), np.float32)
        keys = np.array([r[0] for r in rows], dtype=np.int64)
        vectors = np.vstack([np.frombuffer(bytes(r[1]), dtype="<f4") for r in rows])
        return keys, _unit_rows(vectors)

    def tracks_by_number(self, track_nos: Sequence[int]) -> dict[int, dict[str, Any]]:
        if not track_nos or not self.has_embeddings:
            return {}
        marks = ", ".join("?" * len(track_nos))
        rows = self._t(f"SELECT track_no, track_uid, camera_id, modality, pid FROM t WHERE track_no IN ({marks})",
                       list(track_nos))
        return {r["track_no"]: r for r in rows}

    def calibration(self, model_id: str | None = None) -> list[dict[str, Any]]:
        """Each model's thresholds per modality pair as the matcher last computed them (schema v5)."""
        if "calibration" not in self.columns:
            return []
        where, params = (" WHERE model_id = ?", [model_id]) if model_id is not None else ("", [])
        return self._rows("SELECT model_id, pair, threshold, source, n_genuine, n_impostor, impostor_rate, "
                          f"genuine_rate, target_fmr, updated_at FROM calibration{where} ORDER BY model_id, "
                          "CASE pair WHEN 'rgb_rgb' THEN 0 WHEN 'ir_ir' THEN 1 ELSE 2 END", params)


def _unit_rows(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.ascontiguousarray(v / np.maximum(norms, 1e-12), dtype=np.float32)


def _split_lists(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "cameras": sorted(row["cameras"].split(",")), "modalities": sorted(row["modalities"].split(","))}
