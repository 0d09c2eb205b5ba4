"""Identities seen through their tracks: which identities own tracks, their summaries, one identity's detail.

Tracks are grouped by their assigned identity in SQL and the groups folded into the identity each
one lives on as now (``identities.find_root``), so a merge needs no rewrite of the tracks. The API
lists and pages these summaries; ``xreid identity`` and the report's ``identities.json`` show
``identity_detail``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.store.base import Store, marks
from pipeline.store.identities import (
    find_root,
    identity_model,
    list_links,
    list_merges,
    member_map,
    members,
    merged_parents,
    resolve,
)
from pipeline.store.schema import V_IDENTITIES
from pipeline.store.tracks import TrackFilter, assigned_identities, list_tracks, thumbnail_modalities


@dataclass(frozen=True)
class IdentitySummary:
    """One identity over all its tracks (those of the identities merged into it included)."""

    identity_id: int
    n_tracks: int
    first_seen: float
    last_seen: float
    cameras: list[str]
    modalities: list[str]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def identity_ids(store: Store, track_uid_like: str | None = None) -> list[int]:
    """Surviving identities that own at least one track, oldest first.

    Args:
        track_uid_like: SQL LIKE pattern; only identities owning such a track (``"%-<run_id>-%"``: one replay's).
    """
    if store.schema_version < V_IDENTITIES:
        return []
    sql = "SELECT DISTINCT identity_id FROM tracks WHERE identity_id IS NOT NULL"
    params: list[object] = []
    if track_uid_like is not None:
        sql += " AND track_uid LIKE ?"
        params.append(track_uid_like)
    parents = merged_parents(store)
    return sorted({find_root(parents, int(r[0])) for r in store.execute(sql, params)})


def summarize(store: Store, roots: Sequence[int] | None = None,
              parents: Mapping[int, int] | None = None) -> dict[int, IdentitySummary]:
    """Summaries of the identities ``roots`` (``None``: every identity that owns a track), by identity."""
    if store.schema_version < V_IDENTITIES or (roots is not None and not roots):
        return {}
    parents = merged_parents(store) if parents is None else parents
    sql = ("SELECT identity_id, camera_id, modality, count(*), min(t_start), max(t_end) FROM tracks "
           "WHERE identity_id IS NOT NULL")
    params: list[object] = []
    if roots is not None:
        ids = sorted({m for group in member_map(parents, roots).values() for m in group})
        sql += f" AND identity_id IN ({marks(len(ids))})"
        params = list(ids)
    folded: dict[int, list[Any]] = {}
    for ident, cam, modality, n, t0, t1 in store.execute(sql + " GROUP BY identity_id, camera_id, modality", params):
        root = find_root(parents, int(ident))
        cur = folded.get(root)
        if cur is None:
            folded[root] = [int(n), float(t0), float(t1), {str(cam)}, {str(modality)}]
            continue
        cur[0] += int(n)
        cur[1], cur[2] = min(cur[1], float(t0)), max(cur[2], float(t1))
        cur[3].add(str(cam))
        cur[4].add(str(modality))
    return {root: IdentitySummary(root, n, t0, t1, sorted(cams), sorted(mods))
            for root, (n, t0, t1, cams, mods) in folded.items()}


def list_identities(store: Store, f: TrackFilter, limit: int, offset: int) -> tuple[list[IdentitySummary], int]:
    """Identities most recently seen first that have a track passing ``f``, and how many there are.

    The summary covers all of an identity's tracks; the filter only chooses which identities. Ranking
    needs only each identity's last sighting, so cameras and modalities are read for the page alone.
    """
    if store.schema_version < V_IDENTITIES:
        return [], 0
    parents = merged_parents(store)
    last_seen: dict[int, float] = {}
    for ident, t1 in store.execute("SELECT identity_id, max(t_end) FROM tracks WHERE identity_id IS NOT NULL "
                                   "GROUP BY identity_id"):
        root = find_root(parents, int(ident))
        last_seen[root] = max(last_seen.get(root, float(t1)), float(t1))
    if f != TrackFilter():
        scope = {find_root(parents, i) for i in assigned_identities(store, f, parents)}
        last_seen = {k: v for k, v in last_seen.items() if k in scope}
    ranked = sorted(last_seen, key=lambda root: (-last_seen[root], root))
    page = ranked[offset:offset + limit]
    found = summarize(store, page, parents)
    return [found[root] for root in page], len(ranked)


def thumbnail_modalities_of(store: Store, roots: Sequence[int],
                            parents: Mapping[int, int] | None = None) -> dict[int, set[str]]:
    """For each identity, the modalities it has a thumbnail in."""
    parents = merged_parents(store) if parents is None else parents
    owner = {m: r for r, group in member_map(parents, roots).items() for m in group}
    out: dict[int, set[str]] = {}
    for ident, modality in thumbnail_modalities(store, list(owner)):
        out.setdefault(owner[ident], set()).add(modality)
    return out


def identity_detail(store: Store, identity: int, parents: Mapping[int, int] | None = None) -> dict[str, object] | None:
    """One identity as ``identities.json`` and ``xreid identity`` show it: tracks per camera and modality with
    the decisions that put them there, and its merges. An id that was merged away shows the survivor.

    Returns:
        The document, or ``None`` when there is no such identity.
    """
    parents = merged_parents(store) if parents is None else parents
    root = resolve(store, identity, parents)
    if root is None:
        return None
    tracks = list_tracks(store, TrackFilter(identity_id=root), parents=parents)
    track_nos = [t.track_no for t in tracks if t.track_no is not None]
    link_by_track: dict[int, list[dict[str, object]]] = {}
    for ln in list_links(store, track_nos, ("join", "new", "blocked")):
        link_by_track.setdefault(ln.track_no, []).append({
            "kind": ln.kind, "identity": ln.identity_id, "matched_track": ln.matched_track_no, "score": ln.score,
            "threshold": ln.threshold, "pair": ln.pair, "reason": ln.reason, "ts": ln.ts})
    merges = [{"winner": m.winner, "loser": m.loser, "evidence_track": m.evidence_track_no, "score": m.score,
               "ts": m.ts} for m in list_merges(store, root, parents)]
    cameras: dict[str, dict[str, list[dict[str, object]]]] = {}
    for t in tracks:
        entry = {**t.listing(), "links": link_by_track.get(t.track_no, []) if t.track_no is not None else []}
        cameras.setdefault(t.camera_id, {}).setdefault(t.modality, []).append(entry)
    return {
        "identity": root,
        "model_id": identity_model(store, root),
        "merged_ids": members(parents, root)[1:],
        "t_start": min((t.t_start for t in tracks), default=None),
        "t_end": max((t.t_end for t in tracks), default=None),
        "n_tracks": len(tracks),
        "cameras": cameras,
        "merges": merges,
    }

