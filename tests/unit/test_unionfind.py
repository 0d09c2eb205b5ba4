from __future__ import annotations

import pytest

from models.errors import ContractError
from pipeline.matcher.unionfind import IdentityForest, Merge


def test_merge_keeps_history_and_every_old_id_resolves_to_the_survivor():
    f = IdentityForest()
    for i in (1, 2, 3, 4):
        f.add(i)
    m1 = f.merge(3, 2, evidence_track=10, score=0.9, ts=5.0)
    assert (m1.winner, m1.loser) == (2, 3), "the older id survives"
    f.merge(4, 3, evidence_track=11, score=0.8, ts=6.0)
    assert {f.find(i) for i in (2, 3, 4)} == {2}
    assert f.find(1) == 1
    assert sorted(f.roots()) == [1, 2]
    assert sorted(f.members(2)) == [2, 3, 4]
    assert [(m.winner, m.loser, m.evidence_track) for m in f.history] == [(2, 3, 10), (2, 4, 11)]
    with pytest.raises(ContractError, match="already merged"):
        f.merge(2, 4, 12, 0.9, 7.0)


def test_replaying_history_rebuilds_the_same_forest():
    f = IdentityForest()
    for i in range(1, 6):
        f.add(i)
    f.merge(5, 4, 1, 0.9, 1.0)
    f.merge(2, 4, 2, 0.9, 2.0)
    g = IdentityForest()
    for i in range(1, 6):
        g.add(i)
    for m in f.history:
        g.apply(Merge(m.winner, m.loser, m.evidence_track, m.score, m.ts))
    assert {i: g.find(i) for i in range(1, 6)} == {i: f.find(i) for i in range(1, 6)}
