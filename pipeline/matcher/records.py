"""The matcher's rows in the store (schema v2): write outcomes, read state back, answer queries.

``save`` writes a batch of ``Outcome``s in one transaction (the stage acks only after it), and
``load_into`` rebuilds a fresh ``Matcher`` from the same rows on start. The read helpers serve
the CLI, the report and the API.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.errors import StoreError
from pipeline.matcher.calibration import Evidence, PairCalibration
from pipeline.matcher.matcher import Matcher, Outcome, TrackState
from pipeline.matcher.unionfind import Merge
from pipeline.store.sqlite import Store

log = logging.getLogger(__name__)

_TRACK_SELECT = ("SELECT track_no, model_id, camera_id, track_uid, modality, t_start, t_end, embedding, "
                 "n_embedded, identity_id, segments, thumbnail FROM tracks")


def save(store: Store, outcomes: Sequence[Outcome], keep_samples: int | None = None) -> None:
    """Persist every change of ``outcomes`` atomically (duplicates write nothing).

    Args:
        keep_samples: when a pair is recomputed, keep only this many newest calibration samples per
            model, pair and kind (None: keep all).
    """
    if store.schema_version < 2:
        raise StoreError(f"store {store.path} is at schema v{store.schema_version}; the matcher needs v2")
    try:
        _save(store, outcomes, keep_samples)
    except sqlite3.Error as e:
        raise StoreError(f"store {store.path}: cannot write matcher outcomes: {e}") from None


def _save(store: Store, outcomes: Sequence[Outcome], keep_samples: int | None) -> None:
    calibrated = store.schema_version >= 5
    with store.transaction() as conn:
        for out in outcomes:
            if calibrated:
                _save_calibration(conn, out, keep_samples)
            if out.duplicate or out.track is None:
                continue
            t = out.track
            if out.new_identity is not None:
                conn.execute("INSERT INTO identities (id, model_id, created_at) VALUES (?, ?, ?)",
                             (out.new_identity, t.model_id, t.t_end))
            existing = conn.execute("SELECT model_id FROM tracks WHERE track_uid = ?", (t.track_uid,)).fetchone()
            if existing and existing[0] is not None and existing[0] != t.model_id:
                raise StoreError(f"track {t.track_uid} is embedded by model {existing[0]}, not {t.model_id}")
            conn.execute(
                "INSERT INTO tracks (track_uid, camera_id, modality, t_start, t_end, n_clips, thumbnail, track_no, "
                "model_id, embedding, n_embedded, segments, identity_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(track_uid) DO UPDATE SET t_start = min(t_start, excluded.t_start), "
                "t_end = max(t_end, excluded.t_end), n_clips = max(n_clips, excluded.n_clips), "
                "thumbnail = coalesce(thumbnail, excluded.thumbnail), track_no = excluded.track_no, "
                "model_id = excluded.model_id, embedding = excluded.embedding, n_embedded = excluded.n_embedded, "
                "segments = excluded.segments, identity_id = excluded.identity_id",
                (t.track_uid, t.camera_id, t.modality, t.t_start, t.t_end, t.n_clips, t.thumbnail or None, t.key,
                 t.model_id, t.mean.astype("<f4").tobytes(), t.n_clips, json.dumps(sorted(t.segments)), t.identity))
            conn.executemany(
                "INSERT INTO links (clip_id, track_no, kind, identity_id, matched_track_no, score, threshold, pair, "
                "reason, ts) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(out.clip_id, ln.track_key, ln.kind, ln.identity, ln.matched_track, ln.score, ln.threshold, ln.pair,
                  ln.reason, ln.ts) for ln in out.links])
            for m in out.merges:
                conn.execute("INSERT INTO merges (winner, loser, evidence_track_no, score, ts) VALUES (?,?,?,?,?)",
                             (m.winner, m.loser, m.evidence_track, m.score, m.ts))
                conn.execute("UPDATE identities SET merged_into = ? WHERE id = ?", (m.winner, m.loser))


def _save_calibration(conn: sqlite3.Connection, out: Outcome, keep_samples: int | None) -> None:
    conn.executemany("INSERT INTO calibration_scores (model_id, pair, kind, score, track_a, track_b, ts) "
                     "VALUES (?,?,?,?,?,?,?)",
                     [(e.model_id, e.pair, e.kind, e.score, e.track_a, e.track_b, e.ts) for e in out.evidence])
    for c in out.calibration:
        conn.execute("INSERT INTO calibration (model_id, pair, threshold, source, n_genuine, n_impostor, impostor_rate, "
                     "genuine_rate, target_fmr, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(model_id, pair) "
                     "DO UPDATE SET threshold = excluded.threshold, source = excluded.source, "
                     "n_genuine = excluded.n_genuine, n_impostor = excluded.n_impostor, "
                     "impostor_rate = excluded.impostor_rate, genuine_rate = excluded.genuine_rate, "
                     "target_fmr = excluded.target_fmr, updated_at = excluded.updated_at",
                     (c.model_id, c.pair, c.threshold, c.source, c.n_genuine, c.n_impostor, c.impostor_rate,
                      c.genuine_rate, c.target_fmr, c.updated_at))
        for kind, n in (("genuine", c.n_genuine), ("impostor", c.n_impostor)):
            if keep_samples is not None and n >= keep_samples:   # the matcher counts only the newest
                conn.execute("DELETE FROM calibration_scores WHERE model_id = ? AND pair = ? AND kind = ? AND id <= "
                             "coalesce((SELECT id FROM calibration_scores WHERE model_id = ? AND pair = ? AND kind = ? "
                             "ORDER BY id DESC LIMIT 1 OFFSET ?), -1)",
                             (c.model_id, c.pair, kind, c.model_id, c.pair, kind, keep_samples))


def load_into(store: Store, matcher: Matcher) -> Matcher:
    """Rebuild ``matcher`` (fresh) from the store: identities, merges in order, tracks, galleries."""
    if store.schema_version < 2:
        return matcher
    identities = [(int(i), str(m)) for i, m in store.execute("SELECT id, model_id FROM identities ORDER BY id")]
    merges = [Merge(int(w), int(lo), int(e), float(s), float(ts)) for w, lo, e, s, ts in store.execute(
        "SELECT winner, loser, evidence_track_no, score, ts FROM merges ORDER BY id")]
    tracks = [_track_state(r) for r in store.execute(_TRACK_SELECT + " WHERE track_no IS NOT NULL ORDER BY track_no")]
    evidence = [Evidence(str(m), str(p), str(k), float(s), int(a), None if b is None else int(b), float(ts))
                for m, p, k, s, a, b, ts in store.execute(
                    "SELECT model_id, pair, kind, score, track_a, track_b, ts FROM calibration_scores ORDER BY id")
                ] if store.schema_version >= 5 else []
    matcher.restore(identities, tracks, merges, evidence)
    if store.schema_version >= 5 and not store.readonly:   # the recomputed thresholds, for readers
        states = tuple(c for m in matcher.model_ids for c in matcher.calibrator.state(m))
        try:
            save(store, [Outcome("", False, calibration=states)])
        except StoreError as e:   # only what readers show is stale; the matcher itself is rebuilt
            log.warning("cannot record the recomputed thresholds: %s", e)
    return matcher


def _track_state(r: Sequence[object]) -> TrackState:
    key, model_id, cam, uid, modality, t0, t1, emb, n, ident, segments, thumb = r
    mean = np.frombuffer(bytes(emb), dtype="<f4").astype(np.float32)  # type: ignore[arg-type]
    return TrackState(int(key), str(model_id), str(cam), str(uid), str(modality), float(t0), float(t1),  # type: ignore[arg-type]
                      mean, int(n), int(ident), set(json.loads(str(segments))), bytes(thumb) if thumb else b"")  # type: ignore[arg-type,call-overload]


# ---------------------------------------------------------------------------------------------
# reads for the CLI, report and API


@dataclass(frozen=True)
class TrackInfo:
    """A track as queries show it; ``identity`` is resolved through merges."""

    track_no: int | None
    track_uid: str
    camera_id: str
    modality: str
    t_start: float
    t_end: float
    n_clips: int
    model_id: str | None
    identity: int | None
    assigned_identity: int | None

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def resolve(store: Store, identity: int) -> int | None:
    """The surviving identity ``identity`` was merged into (None when unknown)."""
    seen = set()
    current = identity
    while current not in seen:
        seen.add(current)
        rows = store.execute("SELECT merged_into FROM identities WHERE id = ?", (current,))
        if not rows:
            return None
        if rows[0][0] is None:
            return current
        current = int(rows[0][0])
    raise StoreError(f"merge cycle at identity {identity}")


def identity_roots(store: Store) -> dict[int, int]:
    """Every identity id → the surviving identity it resolves to (one query; pass it along when looping)."""
    parent = {int(i): (int(m) if m is not None else None) for i, m in store.execute("SELECT id, merged_into FROM identities")}
    out: dict[int, int] = {}
    for i in parent:
        r = i
        while parent.get(r) is not None:
            r = parent[r]  # type: ignore[assignment]
        out[i] = r
    return out


def list_tracks(store: Store, camera_id: str | None = None, modality: str | None = None, t_from: float | None = None,
                t_to: float | None = None, identity: int | None = None, limit: int = 1000,
                roots: dict[int, int] | None = None) -> list[TrackInfo]:
    """Tracks overlapping ``[t_from, t_to]``, filtered; ``identity`` matches merged ids too."""
    if roots is None:
        roots = identity_roots(store) if store.schema_version >= 2 else {}
    clauses, params = [], []
    for sql, value in (("camera_id = ?", camera_id), ("modality = ?", modality), ("t_end >= ?", t_from),
                       ("t_start <= ?", t_to)):
        if value is not None:
            clauses.append(sql)
            params.append(value)
    if identity is not None:
        root = roots.get(identity)
        if root is None:
            return []
        members = [i for i, r in roots.items() if r == root]
        clauses.append(f"identity_id IN ({','.join('?' * len(members))})")
        params.extend(members)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    cols = "track_no, track_uid, camera_id, modality, t_start, t_end, n_clips, model_id, identity_id"
    if store.schema_version < 2:
        cols = "NULL, track_uid, camera_id, modality, t_start, t_end, n_clips, NULL, NULL"
    rows = store.execute(f"SELECT {cols} FROM tracks{where} ORDER BY t_start, track_uid LIMIT ?", [*params, int(limit)])
    return [TrackInfo(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], roots.get(r[8]) if r[8] is not None else None,
                      r[8]) for r in rows]


def identity_ids(store: Store) -> list[int]:
    """Surviving identities that own at least one track, oldest first."""
    rows = store.execute("SELECT DISTINCT identity_id FROM tracks WHERE identity_id IS NOT NULL")
    roots = identity_roots(store)
    return sorted({roots[int(r[0])] for r in rows})


def identity_detail(store: Store, identity: int, roots: dict[int, int] | None = None) -> dict[str, object] | None:
    """One identity as ``identities.json`` shows it: tracks per camera and modality, links, merges."""
    roots = identity_roots(store) if roots is None else roots
    root = roots.get(identity)
    if root is None:
        return None
    tracks = list_tracks(store, identity=root, limit=1_000_000, roots=roots)
    track_nos = [t.track_no for t in tracks if t.track_no is not None]
    marks = ",".join("?" * len(track_nos)) or "NULL"
    links = store.execute(f"SELECT track_no, kind, identity_id, matched_track_no, score, threshold, pair, reason, ts "
                          f"FROM links WHERE track_no IN ({marks}) AND kind IN ('join', 'new', 'blocked') ORDER BY id",
                          track_nos)
    link_by_track: dict[int, list[dict[str, object]]] = {}
    for tn, kind, ident, matched, score, thr, pair, reason, ts in links:
        link_by_track.setdefault(tn, []).append({"kind": kind, "identity": ident, "matched_track": matched,
                                                 "score": score, "threshold": thr, "pair": pair, "reason": reason,
                                                 "ts": ts})
    members = sorted(i for i, r in roots.items() if r == root)
    merges = [{"winner": w, "loser": lo, "evidence_track": e, "score": s, "ts": ts} for w, lo, e, s, ts in store.execute(
        f"SELECT winner, loser, evidence_track_no, score, ts FROM merges WHERE winner IN "
        f"({','.join('?' * len(members))}) ORDER BY id", members)]
    model = store.execute("SELECT model_id FROM identities WHERE id = ?", (root,))[0][0]
    cameras: dict[str, dict[str, list[dict[str, object]]]] = {}
    for t in tracks:
        entry = {**t.to_dict(), "links": link_by_track.get(t.track_no, []) if t.track_no is not None else []}
        cameras.setdefault(t.camera_id, {}).setdefault(t.modality, []).append(entry)
    return {
        "identity": root,
        "model_id": model,
        "merged_ids": [i for i in members if i != root],
        "t_start": min((t.t_start for t in tracks), default=None),
        "t_end": max((t.t_end for t in tracks), default=None),
        "n_tracks": len(tracks),
        "cameras": cameras,
        "merges": merges,
    }


def calibration_rows(store: Store) -> list[dict[str, object]]:
    """Each model's thresholds per modality pair as the matcher last computed them (schema v5)."""
    if store.schema_version < 5:
        return []
    cols = [f.name for f in dataclasses.fields(PairCalibration)]
    rows = store.execute(f"SELECT {', '.join(cols)} FROM calibration ORDER BY model_id, "
                         "CASE pair WHEN 'rgb_rgb' THEN 0 WHEN 'ir_ir' THEN 1 ELSE 2 END")
    return [dict(zip(cols, r, strict=True)) for r in rows]


def track_vector(store: Store, track_uid_or_no: str) -> tuple[str, np.ndarray] | None:
    """``(model_id, unit vector)`` of a track given by its uid or number."""
    rows = store.execute("SELECT model_id, embedding FROM tracks WHERE track_uid = ? OR CAST(track_no AS TEXT) = ?",
                         (track_uid_or_no, track_uid_or_no))
    if not rows or rows[0][1] is None:
        return None
    v = np.frombuffer(bytes(rows[0][1]), dtype="<f4").astype(np.float32)
    return str(rows[0][0]), v / max(float(np.linalg.norm(v)), 1e-12)


def thumbnails(store: Store, track_uids: Sequence[str]) -> dict[str, bytes]:
    if not track_uids:
        return {}
    rows = store.execute(f"SELECT track_uid, thumbnail FROM tracks WHERE track_uid IN ({','.join('?' * len(track_uids))})",
                         list(track_uids))
    return {str(u): bytes(t) for u, t in rows if t}
