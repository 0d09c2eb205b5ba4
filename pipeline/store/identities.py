"""Identities, their link decisions and merges (schema v2), and the one answer to "which identity is this now?".

An identity is never deleted: merging ``b`` into ``a`` sets ``identities.merged_into`` of ``b`` to ``a``
and records a ``merges`` row with the evidence. ``find_root`` is the only resolver of the code base: the
matcher's in-memory ``IdentityForest`` calls it on its own parent map, and every store read calls it
on ``merged_parents`` (loser → winner, one row per merge). One Python walk rather than a recursive
SQL query, because the matcher must resolve on every clip without a round trip to the database, merges
are few (the map is small), and ``SELECT id, merged_into`` is plain SQL any backend runs, so a merge
chain means the same thing to the matcher, the CLI, the report and the API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from models.errors import StoreError
from pipeline.store.base import Store, marks
from pipeline.store.schema import V_IDENTITIES


def find_root(parents: Mapping[int, int], ident: int) -> int:
    """The surviving identity ``ident`` was merged into (itself when never merged).

    Args:
        parents: merged identity → the identity it was merged into (roots are absent).

    Raises:
        StoreError: when the links form a cycle (a store edited by hand).
    """
    root, steps = ident, 0
    while root in parents:
        root = parents[root]
        steps += 1
        if steps > len(parents):
            raise StoreError(f"merge cycle at identity {ident}")
    return root


def members(parents: Mapping[int, int], root: int) -> list[int]:
    """``root`` first, then every identity merged into it (directly or along a chain), by id."""
    return member_map(parents, [root])[root]


def member_map(parents: Mapping[int, int], roots: Iterable[int]) -> dict[int, list[int]]:
    """``members`` of each of ``roots``, walking the merges once for all of them."""
    out = {int(r): [int(r)] for r in roots}
    for i in sorted(parents):
        found = out.get(find_root(parents, i))
        if found is not None:
            found.append(i)
    return out


def merged_parents(store: Store) -> dict[int, int]:
    """Every merged identity → the identity it was merged into (empty before schema v2)."""
    if store.schema_version < V_IDENTITIES:
        return {}
    return {int(i): int(m) for i, m in store.execute("SELECT id, merged_into FROM identities "
                                                       "WHERE merged_into IS NOT NULL")}


def identity_model(store: Store, ident: int) -> str | None:
    """The model whose vectors formed identity ``ident``; ``None`` when there is no such identity."""
    if store.schema_version < V_IDENTITIES:
        return None
    rows = store.execute("SELECT model_id FROM identities WHERE id = ?", (int(ident),))
    return str(rows[0][0]) if rows else None


def resolve(store: Store, ident: int, parents: Mapping[int, int] | None = None) -> int | None:
    """The identity ``ident`` lives on as (itself, or the winner of its merges); ``None`` when unknown."""
    if identity_model(store, ident) is None:
        return None
    return find_root(merged_parents(store) if parents is None else parents, int(ident))


# -- the matcher's writes (inside its transaction) and its restart reads -----------------------------


@dataclass(frozen=True, slots=True)
class Link:
    """One decision of the matcher about a track, with its evidence, as the ``links`` table keeps it.

    Attributes:
        kind: ``join`` (joined ``identity``), ``new`` (founded ``identity``), ``blocked`` (a
            candidate that passed the threshold but a constraint forbade), ``update`` (a later
            clip of a known track; ``score`` is its similarity to the track so far).
        matched_track: the candidate track behind ``score`` (None for ``new`` without one).
        score: cosine similarity; ``threshold`` the bar of the modality ``pair``.
    """

    track_key: int
    kind: str
    identity: int
    matched_track: int | None
    score: float | None
    threshold: float | None
    pair: str | None
    reason: str
    ts: float


@dataclass(frozen=True, slots=True)
class MergeRow:
    """``loser`` now resolves to ``winner``; ``evidence_track_no`` scored ``score`` against both at ``ts``."""

    winner: int
    loser: int
    evidence_track_no: int
    score: float
    ts: float


def add_identity(store: Store, ident: int, model_id: str, created_at: float) -> None:
    store.execute("INSERT INTO identities (id, model_id, created_at) VALUES (?, ?, ?)",
                  (int(ident), model_id, float(created_at)))


def add_links(store: Store, clip_id: str, links: Sequence[Link]) -> None:
    """Record the decisions one clip caused (call inside a transaction)."""
    store.execute_many("INSERT INTO links (clip_id, track_no, kind, identity_id, matched_track_no, score, threshold, "
                       "pair, reason, ts) VALUES (?,?,?,?,?,?,?,?,?,?)",
                       [(clip_id, ln.track_key, ln.kind, ln.identity, ln.matched_track, ln.score,
                         ln.threshold, ln.pair, ln.reason, ln.ts) for ln in links])


def add_merge(store: Store, m: MergeRow) -> None:
    """Record the merge and point the loser at the winner (call inside a transaction)."""
    store.execute("INSERT INTO merges (winner, loser, evidence_track_no, score, ts) VALUES (?,?,?,?,?)",
                  (m.winner, m.loser, m.evidence_track_no, m.score, m.ts))
    store.execute("UPDATE identities SET merged_into = ? WHERE id = ?", (m.winner, m.loser))


def load_identities(store: Store) -> list[tuple[int, str]]:
    """``(id, model_id)`` of every identity, oldest first."""
    if store.schema_version < V_IDENTITIES:
        return []
    return [(int(i), str(m)) for i, m in store.execute("SELECT id, model_id FROM identities ORDER BY id")]


def load_merges(store: Store) -> list[MergeRow]:
    """Every merge in the order it was decided."""
    if store.schema_version < V_IDENTITIES:
        return []
    return [MergeRow(int(w), int(lo), int(e), float(s), float(ts)) for w, lo, e, s, ts in store.execute(
        "SELECT winner, loser, evidence_track_no, score, ts FROM merges ORDER BY id")]


def reset_identities(store: Store) -> None:
    """Forget every identity, link and merge, and the tracks' vectors and numbers (``xreid reembed``)."""
    with store.transaction():
        store.execute("UPDATE tracks SET identity_id = NULL, track_no = NULL, model_id = NULL, embedding = NULL, "
                      "n_embedded = 0, segments = NULL")
        store.execute("DELETE FROM links")
        store.execute("DELETE FROM merges")
        store.execute("DELETE FROM identities")


# -- reads for the CLI, the report and the API ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """A stored decision with the uid of the track it matched (``None`` when it matched none)."""

    track_no: int
    kind: str
    identity_id: int
    matched_track_no: int | None
    matched_track_uid: str | None
    score: float | None
    threshold: float | None
    pair: str | None
    reason: str
    ts: float


def list_links(store: Store, track_nos: Sequence[int], kinds: Iterable[str]) -> list[LinkInfo]:
    """The decisions of ``kinds`` about ``track_nos``, in the order they were made."""
    kinds = list(kinds)
    if not track_nos or not kinds or store.schema_version < V_IDENTITIES:
        return []
    rows = store.execute(
        "SELECT l.track_no, l.kind, l.identity_id, l.matched_track_no, m.track_uid, l.score, l.threshold, l.pair, "
        f"l.reason, l.ts FROM links l LEFT JOIN tracks m ON m.track_no = l.matched_track_no "
        f"WHERE l.track_no IN ({marks(len(track_nos))}) AND l.kind IN ({marks(len(kinds))}) ORDER BY l.id",
        [*map(int, track_nos), *kinds])
    return [LinkInfo(*r) for r in rows]


@dataclass(frozen=True, slots=True)
class MergeInfo:
    """A stored merge with the uid of its evidence track (``None`` when that track is gone)."""

    winner: int
    loser: int
    evidence_track_no: int
    evidence_track_uid: str | None
    score: float
    ts: float


def list_merges(store: Store, root: int, parents: Mapping[int, int] | None = None) -> list[MergeInfo]:
    """The merges that folded other identities into ``root``, in the order they were decided."""
    parents = merged_parents(store) if parents is None else parents
    losers = members(parents, root)[1:]
    if not losers:
        return []
    rows = store.execute(
        "SELECT g.winner, g.loser, g.evidence_track_no, e.track_uid, g.score, g.ts FROM merges g "
        f"LEFT JOIN tracks e ON e.track_no = g.evidence_track_no WHERE g.loser IN ({marks(len(losers))}) "
        "ORDER BY g.id", losers)
    return [MergeInfo(*r) for r in rows]
