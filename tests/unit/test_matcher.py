from __future__ import annotations

import numpy as np
import pytest

from models.errors import ContractError
from pipeline.config.settings import MatcherCfg, PairThresholds, TransitionCfg
from pipeline.matcher.matcher import Matcher
from tests.support.matcher_helpers import emb, person, view

# the threshold and constraint mechanics, one clip at a time; the precision rules have their own tests
CFG = MatcherCfg(thresholds=PairThresholds(rgb_rgb=0.7, ir_ir=0.7, rgb_ir=0.5), merge_margin=0.1, min_clips=1, min_gap=0.0)


def test_tracks_join_by_pair_threshold_and_decisions_carry_scores():
    m = Matcher(CFG)
    a = m.observe(emb("c1", "a", person(0), 0, 10))
    assert a.new_identity == 1 and a.links[0].kind == "new" and a.links[0].reason == "no candidate"
    # rgb->ir at cos 0.6: passes the cross-modal 0.5, would fail the rgb_rgb 0.7
    b = m.observe(emb("c2", "b", view(0, 0.6, 5), 20, 30, modality="ir"))
    assert b.new_identity is None
    join = b.links[0]
    assert (join.kind, join.identity, join.matched_track, join.pair) == ("join", 1, a.track.key, "rgb_ir")
    assert join.score == pytest.approx(0.6, abs=1e-5) and join.threshold == 0.5
    c = m.observe(emb("c3", "c", view(0, 0.6, 6), 40, 50))  # the same 0.6 is too low for rgb->rgb
    assert c.new_identity == 2
    below = c.links[0]
    assert (below.kind, below.reason, below.matched_track, below.pair) == (
        "new", "best candidate below threshold", a.track.key, "rgb_rgb")
    assert below.score == pytest.approx(0.6, abs=1e-5)


def test_co_occurrence_blocks_a_link_similarity_alone_would_make():
    m = Matcher(CFG)
    first = m.observe(emb("c1", "a", person(0), 0, 10))
    twin = m.observe(emb("c1", "b", view(0, 0.95, 3), 5, 15))  # same camera, overlapping time
    kinds = [ln.kind for ln in twin.links]
    assert kinds == ["blocked", "new"]
    blocked = twin.links[0]
    assert blocked.score == pytest.approx(0.95, abs=1e-5) and "co-occurrence" in blocked.reason
    assert m.identity_of(twin.track.key) != m.identity_of(first.track.key)
    # the same look on another camera at the same time is allowed
    other = m.observe(emb("c2", "c", view(0, 0.95, 4), 5, 15))
    assert other.links[0].kind == "join"
    # and on the same camera after the first track ended
    later = m.observe(emb("c1", "d", view(0, 0.95, 7), 30, 40))
    assert later.links[0].kind == "join" and m.identity_of(later.track.key) == m.identity_of(first.track.key)


def test_transition_window_blocks_too_fast_and_too_slow_crossings():
    cfg = MatcherCfg(thresholds=CFG.thresholds, min_clips=1, min_gap=0.0, transitions=[TransitionCfg("c1", "c2", min_s=5, max_s=60)])
    m = Matcher(cfg)
    m.observe(emb("c1", "a", person(0), 0, 10))
    fast = m.observe(emb("c2", "b", person(0), 11, 20))     # 1 s after leaving c1
    assert fast.links[0].kind == "blocked" and "transition" in fast.links[0].reason
    ok = m.observe(emb("c2", "c", person(1), 0, 1))
    assert ok.new_identity is not None
    m2 = Matcher(cfg)
    m2.observe(emb("c1", "a", person(0), 0, 10))
    assert m2.observe(emb("c2", "b", person(0), 30, 40)).links[0].kind == "join"
    assert m2.observe(emb("c2", "late", view(0, 0.99, 9), 500, 510)).links[0].kind == "join"  # prev sighting on c2


def test_later_evidence_merges_identities_and_old_ids_resolve():
    m = Matcher(CFG)
    # one person seen as two identities (cos 0.45 < 0.7) until a track close to both (0.85) bridges them
    left = m.observe(emb("c1", "a", view(0, 0.85, 1), 0, 10))
    right = m.observe(emb("c2", "b", 0.85 * person(0) - 0.527 * person(1), 0, 10))
    assert left.new_identity == 1 and right.new_identity == 2
    bridge = m.observe(emb("c3", "x", person(0), 20, 30))
    assert len(bridge.merges) == 1
    merge = bridge.merges[0]
    assert (merge.winner, merge.loser) == (left.new_identity, right.new_identity)
    assert merge.evidence_track == bridge.track.key and merge.score > CFG.thresholds.rgb_rgb + CFG.merge_margin
    assert m.forest.find(right.new_identity) == m.forest.find(left.new_identity) == left.new_identity
    assert {t.key for t in m.identity_tracks(right.new_identity)} == {left.track.key, right.track.key, bridge.track.key}


def test_merge_is_refused_when_identities_co_occur():
    m = Matcher(CFG)
    a = m.observe(emb("c1", "a", view(0, 0.85, 1), 0, 10))
    b = m.observe(emb("c1", "b", 0.85 * person(0) - 0.527 * person(1), 0, 10))  # same camera, same time
    assert b.new_identity is not None
    bridge = m.observe(emb("c3", "x", person(0), 20, 30))
    assert bridge.links[0].kind == "join" and bridge.merges == ()
    assert m.identity_of(a.track.key) != m.identity_of(b.track.key)


def test_running_mean_updates_and_redelivery_is_a_noop():
    m = Matcher(CFG)
    m.observe(emb("c1", "a", person(0), 0, 10, segment=0))
    out = m.observe(emb("c1", "a", person(1), 10, 20, segment=1))
    assert out.links[0].kind == "update" and out.links[0].score == pytest.approx(0.0, abs=1e-6)
    t = out.track
    assert t.n_clips == 2 and (t.t_start, t.t_end) == (0, 20)
    np.testing.assert_allclose(t.vector, (person(0) + person(1)) / np.sqrt(2), atol=1e-6)
    again = m.observe(emb("c1", "a", person(1), 10, 20, segment=1))
    assert again.duplicate and again.track.n_clips == 2


def test_model_id_isolation():
    m = Matcher(CFG)
    a = m.observe(emb("c1", "a", person(0), 0, 10, model="A@1"))
    b = m.observe(emb("c2", "b", person(0), 20, 30, model="B@1"))
    assert b.new_identity is not None and b.links[0].reason == "no candidate"
    assert m.identity_of(a.track.key) != m.identity_of(b.track.key)
    assert [i for i, _, _ in m.search("A@1", person(0))] == [m.identity_of(a.track.key)]
    assert [i for i, _, _ in m.search("B@1", person(0))] == [m.identity_of(b.track.key)]
    assert m.search("C@1", person(0)) == []
    with pytest.raises(ContractError, match="embedded by model A@1"):
        m.observe(emb("c1", "a", person(0), 10, 20, segment=1, model="B@1"))
    with pytest.raises(ContractError, match="16-d"):
        m.observe(emb("c9", "z", np.ones(8, np.float32), 0, 1, model="A@1"))
