"""Identity merges as a union-find whose history is kept, so every old identity id still resolves.

Identities are never deleted: merging ``b`` into ``a`` records ``parent[b] = a`` and a ``Merge``
entry with the evidence. ``find`` follows parents to the surviving identity with the store's
``find_root``, the one resolver every reader of the store uses too, so the matcher in memory and
the CLI, report and API on disk agree on what a merged id means. The parent kept is the direct one
(the store's ``merged_into``), which is the history; merges are few, so chains stay short.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.errors import ContractError
from pipeline.store.identities import find_root


@dataclass(frozen=True, slots=True)
class Merge:
    """One merge decision: ``loser`` now resolves to ``winner``.

    Attributes:
        evidence_track: the track whose similarity to both identities justified the merge.
        score: that similarity.
        ts: UTC epoch seconds of the evidence (the clip's end time).
    """

    winner: int
    loser: int
    evidence_track: int
    score: float
    ts: float


class IdentityForest:
    """Union-find over identity ids with the merge history."""

    def __init__(self) -> None:
        self._ids: dict[int, None] = {}   # every identity, in the order added
        self._parent: dict[int, int] = {}   # merged identity -> the identity it was merged into
        self._size: dict[int, int] = {}
        self.history: list[Merge] = []

    def __contains__(self, ident: int) -> bool:
        return ident in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, ident: int) -> None:
        """Register a new identity as its own root."""
        if ident in self._ids:
            raise ContractError(f"identity {ident} already exists")
        self._ids[ident] = None
        self._size[ident] = 1

    def find(self, ident: int) -> int:
        """The surviving identity ``ident`` was merged into (itself when never merged)."""
        if ident not in self._ids:
            raise KeyError(ident)
        return find_root(self._parent, ident)

    def roots(self) -> list[int]:
        return [i for i in self._ids if i not in self._parent]

    def merge(self, a: int, b: int, evidence_track: int, score: float, ts: float) -> Merge:
        """Union the identities of ``a`` and ``b``; the older (smaller id) survives.

        The older id wins so that ids users have already seen keep meaning the same person.

        Raises:
            ContractError: when ``a`` and ``b`` are already one identity.
        """
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            raise ContractError(f"identities {a} and {b} are already merged into {ra}")
        winner, loser = min(ra, rb), max(ra, rb)
        m = Merge(winner, loser, evidence_track, float(score), float(ts))
        self.apply(m)
        return m

    def apply(self, m: Merge) -> None:
        """Replay a recorded merge (used when rebuilding from the store)."""
        for ident in (m.winner, m.loser):
            if ident not in self._ids:
                self.add(ident)
        self._parent[m.loser] = m.winner
        self._size[m.winner] = self._size.get(m.winner, 1) + self._size.pop(m.loser, 1)
        self.history.append(m)

    def members(self, root: int) -> list[int]:
        """Every identity id that resolves to ``root`` (the root included)."""
        return [i for i in self._ids if self.find(i) == root]
