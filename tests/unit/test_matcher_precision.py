"""The matcher's precision rules: a track joins only with enough clips and a clear lead (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import ConfigError
from pipeline.bus import STREAM_EMBEDDINGS, MemoryBus
from pipeline.config.settings import MatcherCfg, PairThresholds
from pipeline.matcher.matcher import Matcher
from pipeline.matcher.stage import MatcherStage
from pipeline.store.base import Store
from tests.support.matcher_helpers import emb, person, unit, view

TH = PairThresholds(rgb_rgb=0.5, ir_ir=0.5, rgb_ir=0.5)


def _two_people_at_once(m: Matcher) -> tuple[int, int]:
    """Persons 0 and 1 side by side on camera c1 (so never one identity), two clips each; their track keys."""
    a = m.observe(emb("c1", "a", view(0, 0.98, 5), 0, 10)).track.key
    b = m.observe(emb("c1", "b", view(1, 0.98, 6), 0, 10)).track.key
    m.observe(emb("c1", "a", view(0, 0.98, 7), 10, 20, segment=1))
    m.observe(emb("c1", "b", view(1, 0.98, 8), 10, 20, segment=1))
    return a, b


def _between(noise_axis: int) -> np.ndarray:
    """Someone on camera c2 who scores about 0.6 against both person 0 and person 1."""
    return unit(0.62 * person(0) + 0.60 * person(1) + 0.5 * np.eye(16, dtype=np.float32)[noise_axis])


def test_a_track_between_two_people_abstains_where_the_old_rule_joins_the_nearer():
    old = Matcher(MatcherCfg(thresholds=TH, min_clips=1, min_gap=0.0))
    new = Matcher(MatcherCfg(thresholds=TH, min_gap=0.05))
    outs = []
    for m in (old, new):
        a, b = _two_people_at_once(m)
        m.observe(emb("c2", "q", _between(9), 100, 110))
        outs.append(m.observe(emb("c2", "q", _between(10), 110, 120, segment=1)))
    q_old, q_new = (m.identity_of(o.track.key) for m, o in zip((old, new), outs, strict=True))
    assert q_old == old.identity_of(a), "the old rule joins whichever of two look-alikes scores higher"
    assert q_new not in (new.identity_of(a), new.identity_of(b)), "the new rule keeps the track apart"
    [blocked] = [ln for ln in outs[1].links if ln.kind == "blocked"]
    assert blocked.reason.startswith("ambiguous: identity") and blocked.score >= TH.rgb_rgb


def test_one_clip_waits_and_a_clear_match_joins_at_the_second():
    m = Matcher(MatcherCfg(thresholds=TH))   # defaults: min_clips 2, min_gap from the genuine scores
    a, b = _two_people_at_once(m)
    first = m.observe(emb("c2", "q", view(0, 0.9, 9), 100, 110))
    assert first.new_identity is not None and first.links[-1].reason == "joins only at 2 clips"
    second = m.observe(emb("c2", "q", view(0, 0.9, 10), 110, 120, segment=1))
    [join] = [ln for ln in second.links if ln.kind == "join"]
    assert join.matched_track == a and join.reason == "best passing candidate at 2 clips"
    assert [(mg.winner, mg.loser) for mg in second.merges] == [(m.identity_of(a), first.new_identity)]
    assert m.identity_of(second.track.key) == m.identity_of(a) != m.identity_of(b)
    # the same first clip joins at once under the old rule
    old = Matcher(MatcherCfg(thresholds=TH, min_clips=1, min_gap=0.0))
    a_old, _ = _two_people_at_once(old)
    at_once = old.observe(emb("c2", "q", view(0, 0.9, 9), 100, 110))
    assert at_once.new_identity is None and at_once.links[-1].matched_track == a_old


def test_the_gap_is_the_spread_of_genuine_scores_and_survives_a_restart(tmp_path):
    cfg = MatcherCfg(thresholds=TH)
    embs = [emb("c1", f"t{i}", view(i % 4, 0.95, 4 + (i + s) % 12), 30 * i + 10 * s, 30 * i + 10 * s + 10, segment=s)
            for i in range(6) for s in range(3)]
    with Store(tmp_path / "x.sqlite") as store:
        bus = MemoryBus()
        stage = MatcherStage(bus, store, Matcher(cfg))
        assert stage.matcher.min_gap("test@0", "rgb") == 0.0, "no evidence yet: no gap"
        for e in embs:
            bus.publish(STREAM_EMBEDDINGS, e.to_bytes())
            stage.drain()
        genuine = [float(s) for (s,) in store.execute("SELECT score FROM calibration_scores WHERE kind = 'genuine'")]
        gap = stage.matcher.min_gap("test@0", "rgb")
    assert len(genuine) == 12 and gap == pytest.approx(float(np.std(genuine)), abs=1e-6) and gap > 0
    assert Matcher(MatcherCfg(thresholds=TH, min_gap=0.2)).min_gap("test@0", "rgb") == 0.2
    with Store(tmp_path / "x.sqlite") as store:
        again = MatcherStage(MemoryBus(), store, Matcher(cfg)).matcher
    assert again.min_gap("test@0", "rgb") == pytest.approx(gap, abs=1e-6) and again.min_gap("test@0", "ir") == 0.0


@pytest.mark.parametrize("bad", [{"min_clips": 0}, {"min_gap": -0.1}])
def test_bad_precision_settings_are_refused(bad):
    with pytest.raises(ConfigError, match="MatcherCfg: min_"):  # built in code: the class names the section
        MatcherCfg(**bad)
