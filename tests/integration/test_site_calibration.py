"""Site calibration: free evidence from one camera's tracks places each model's thresholds (issue 16, part 3)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.api import create_app
from pipeline.bus import STREAM_EMBEDDINGS, MemoryBus
from pipeline.config.settings import ApiCfg, CalibrationCfg, FallbackThresholds, MatcherCfg, PairThresholds
from pipeline.matcher.calibration import GENUINE, IMPOSTOR, Calibrator, decision_z, place_threshold
from pipeline.matcher.matcher import Matcher
from pipeline.matcher.stage import MatcherStage
from pipeline.store.base import Store
from pipeline.store.calibration import Evidence, list_thresholds
from tests.support.matcher_helpers import drain_matcher, emb, unit
from workers.cli import main

DIM = 32
SMALL = CalibrationCfg(min_impostor=20, min_genuine=5, recompute_every=5, floor=0.3, target_fmr=0.05)


def _lookalike(rng: np.random.Generator, base: np.ndarray, cos: float) -> np.ndarray:
    """A random unit vector at cosine ``cos`` from unit ``base``."""
    noise = rng.normal(size=DIM)
    noise -= (noise @ base) * base
    return unit(cos * base + np.sqrt(1 - cos ** 2) * noise / np.linalg.norm(noise))


def _crowd(rng: np.random.Generator, n_rounds: int = 12, people: int = 4, start: float = 0.0):
    """A model whose people all look alike (pairwise cosine ~0.85): ``people`` at once on camera c1, round after
    round, each person with two clips (one genuine sample each). Yields embeddings in arrival order."""
    centre = unit(rng.normal(size=DIM))
    for r in range(n_rounds):
        t0 = start + 30.0 * r
        faces = [_lookalike(rng, centre, 0.85) for _ in range(people)]
        for p, face in enumerate(faces):
            yield emb("c1", f"r{r}p{p}", _lookalike(rng, face, 0.97), t0, t0 + 10)
        for p, face in enumerate(faces):
            yield emb("c1", f"r{r}p{p}", _lookalike(rng, face, 0.97), t0 + 10, t0 + 20, segment=1)
    return centre


def test_place_threshold_lets_at_most_the_target_share_of_impostors_through():
    scores = np.linspace(0.0, 0.99, 200)
    t = place_threshold(scores, 0.01, floor=-1.0, ceiling=1.0)
    assert np.sum(scores >= t) == 2 and t > scores[-3]
    assert place_threshold(scores, 0.01, floor=0.995, ceiling=1.0) == 0.995, "never laxer than the floor"
    assert place_threshold(scores, 0.01, floor=-1.0, ceiling=0.5) == 0.5, "never stricter than the ceiling"
    assert place_threshold([0.9] * 50, 0.01, floor=-1.0, ceiling=1.0) > 0.9, "ties at the bar do not pass"


def test_overlapping_tracks_of_one_camera_are_impostors_and_later_clips_genuine():
    m = Matcher(MatcherCfg(calibration=SMALL))
    a, b, c = (np.eye(DIM, dtype=np.float32)[i] for i in range(3))
    first = m.observe(emb("c1", "a", a, 0, 10))
    assert first.evidence == () and [s.source for s in first.calibration] == ["default"] * 3
    overlap = m.observe(emb("c1", "b", unit(a + b), 5, 15))
    [imp] = overlap.evidence
    assert (imp.kind, imp.pair, imp.track_b) == (IMPOSTOR, "rgb_rgb", first.track.key)
    assert imp.score == pytest.approx(np.sqrt(0.5), abs=1e-6)
    assert m.observe(emb("c2", "c", a, 5, 15)).evidence == (), "another camera at the same time may be the same person"
    assert m.observe(emb("c1", "later", c, 40, 50)).evidence == (), "after both ended: no evidence"
    update = m.observe(emb("c1", "a", unit(a + 0.1 * c), 10, 20, segment=1))
    kinds = sorted((e.kind, e.track_b) for e in update.evidence)
    assert kinds == [(GENUINE, None)], "the pair a/b was scored once already"
    assert update.evidence[0].score == pytest.approx(float(unit(a + 0.1 * c) @ a), abs=1e-6)
    ir = m.observe(emb("c3", "i1", a, 0, 10, modality="ir"))
    cohort = sorted(e.track_b for e in ir.evidence)
    assert {(e.kind, e.pair, e.track_a) for e in ir.evidence} == {(IMPOSTOR, "rgb_ir", ir.track.key)}
    assert cohort == [first.track.key, overlap.track.key, 3, 4], "a new ir track is scored against the rgb cohort"
    assert m.observe(emb("c3", "i2", b, 0, 10, modality="ir")).evidence[0].pair == "ir_ir"


def test_a_track_that_grows_into_another_is_scored_against_it_once():
    m = Matcher(MatcherCfg(calibration=SMALL))
    a, b = (np.eye(DIM, dtype=np.float32)[i] for i in range(2))
    m.observe(emb("c1", "p", a, 0, 10))
    assert m.observe(emb("c1", "q", b, 12, 20)).evidence == (), "apart in time so far"
    grown = m.observe(emb("c1", "p", a, 10, 20, segment=1))
    assert sorted(e.kind for e in grown.evidence) == [GENUINE, IMPOSTOR], "p now overlaps q: two people"
    again = m.observe(emb("c1", "q", b, 20, 30, segment=1))
    assert [e.kind for e in again.evidence] == [GENUINE], "the pair p/q counts once"


def test_the_calibrated_threshold_keeps_look_alikes_apart_where_the_fallback_merges_them():
    rng = np.random.default_rng(0)
    embs = list(_crowd(rng))
    one_clip = {"min_clips": 1, "min_gap": 0.0}   # the stranger has one clip; this test is about thresholds
    lax = Matcher(MatcherCfg(calibration=CalibrationCfg(enabled=False, fallback=FallbackThresholds(rgb_rgb=0.6)),
                             **one_clip))
    auto = Matcher(MatcherCfg(calibration=SMALL, **one_clip))
    for e in embs:
        lax.observe(e)
        auto.observe(e)
    [state] = [s for s in auto.calibrator.state() if s.pair == "rgb_rgb"]
    assert state.source == "auto" and state.n_impostor >= 20 and state.n_genuine >= 5
    assert state.threshold > 0.7 and state.impostor_rate <= SMALL.target_fmr
    # a newcomer on another camera who looks like everyone (cosine 0.7-0.77 to each) but is none of them
    centre = unit(np.sum([e.vector for e in embs], axis=0))
    stranger = emb("c2", "stranger", _lookalike(rng, centre, 0.75), 1000, 1010)
    assert lax.observe(stranger).new_identity is None, "the old static threshold merges a stranger"
    out = auto.observe(stranger)
    assert out.new_identity is not None and out.links[0].reason == "best candidate below threshold"
    assert all(s.source == "default" for s in auto.calibrator.state() if s.pair == "rgb_ir"), "no ir track: no cohort"


def test_manual_thresholds_override_and_too_little_evidence_keeps_the_fallback():
    rng = np.random.default_rng(1)
    manual = Matcher(MatcherCfg(thresholds=PairThresholds(rgb_rgb=0.55), calibration=SMALL))
    few = Matcher(MatcherCfg(calibration=CalibrationCfg(min_impostor=10_000, max_samples=10_000)))
    for e in _crowd(rng):
        manual.observe(e)
        few.observe(e)
    by_pair = {s.pair: s for s in manual.calibrator.state()}
    assert (by_pair["rgb_rgb"].source, by_pair["rgb_rgb"].threshold) == ("manual", 0.55)
    assert by_pair["rgb_rgb"].n_impostor > 0, "evidence is still collected under a manual threshold"
    assert by_pair["ir_ir"].source == "default"
    [rgb] = [s for s in few.calibrator.state() if s.pair == "rgb_rgb"]
    assert (rgb.source, rgb.threshold) == ("default", CalibrationCfg().fallback.rgb_rgb)


def test_evidence_and_thresholds_persist_and_a_restart_recomputes_the_same(tmp_path):
    cfg = MatcherCfg(calibration=SMALL)
    embs = list(_crowd(np.random.default_rng(2)))
    with Store(tmp_path / "x.sqlite") as store:
        stage = drain_matcher(store, cfg, embs)
        stored = list_thresholds(store)
        assert [(r["pair"], r["source"]) for r in stored][0] == ("rgb_rgb", "auto")
        before = stage.matcher.calibrator.recompute("test@0")   # what all the evidence gives now
        n = store.execute("SELECT kind, count(*) FROM calibration_scores GROUP BY kind ORDER BY kind")
        assert dict(n) == {"genuine": before[0].n_genuine, "impostor": before[0].n_impostor}
    with Store(tmp_path / "x.sqlite") as store:
        again = MatcherStage(MemoryBus(), store, Matcher(cfg)).matcher.calibrator.state()
        rows = list_thresholds(store)
    assert [(s.pair, s.threshold, s.source) for s in again] == [(s.pair, s.threshold, s.source) for s in before]
    assert [(r["pair"], r["threshold"], r["source"]) for r in rows] == [(s.pair, s.threshold, s.source) for s in again]


def test_old_samples_are_pruned_to_max_samples(tmp_path):
    cfg = MatcherCfg(calibration=CalibrationCfg(min_impostor=5, min_genuine=5, max_samples=30, recompute_every=2,
                                                min_cohort=5))
    with Store(tmp_path / "x.sqlite") as store:
        bus = MemoryBus()
        stage = MatcherStage(bus, store, Matcher(cfg))
        for e in _crowd(np.random.default_rng(3), n_rounds=20):
            bus.publish(STREAM_EMBEDDINGS, e.to_bytes())
        stage.drain()
        counts = dict(store.execute("SELECT kind, count(*) FROM calibration_scores GROUP BY kind"))
    assert counts["impostor"] <= 30 + 2 * 6 and counts["genuine"] <= 30 + 2 * 4   # at most one recompute's worth over
    [rgb] = [s for s in stage.matcher.calibrator.state() if s.pair == "rgb_rgb"]
    assert rgb.n_impostor == 30, "the matcher counts the newest max_samples"


def _calibrated_store(path):
    with Store(path) as store:
        bus = MemoryBus()
        stage = MatcherStage(bus, store, Matcher(MatcherCfg(calibration=SMALL)))
        for e in _crowd(np.random.default_rng(4)):
            bus.publish(STREAM_EMBEDDINGS, e.to_bytes())
        stage.drain()
        return stage.matcher.calibrator.state()


def test_calibration_command_prints_each_pair_with_its_source_and_evidence(store_url, tmp_path, capsys):
    state = _calibrated_store(store_url)
    assert main(["calibration", "--store", store_url, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["pair"], r["source"]) for r in rows] == [("rgb_rgb", "auto"), ("ir_ir", "default"), ("rgb_ir", "default")]
    assert rows[0]["threshold"] == pytest.approx(state[0].threshold)
    assert main(["calibration", "--store", store_url]) == 0
    text = capsys.readouterr().out
    assert "rgb_rgb" in text and "auto" in text and f"{state[0].threshold:.3f}" in text
    assert main(["calibration", "--store", str(tmp_path / "missing.sqlite")]) == 2
    assert "no store at" in capsys.readouterr().err


def test_api_serves_the_calibration_and_the_matcher_worker_exports_it(tmp_path):
    from workers.lifecycle import Shutdown
    from workers.matcher import MatcherWorker

    state = _calibrated_store(tmp_path / "x.sqlite")
    with TestClient(create_app(ApiCfg(), tmp_path / "x.sqlite")) as c:
        rows = c.get("/calibration").json()
        assert [r["source"] for r in rows] == ["auto", "default", "default"]
        assert rows[0]["threshold"] == pytest.approx(state[0].threshold) and rows[0]["n_impostor"] > 0
        assert c.get("/calibration", params={"model_id": "nope@0"}).json() == []
        assert "/calibration" in c.get("/openapi.json").json()["paths"]
    with Store(tmp_path / "x.sqlite") as store:
        bus = MemoryBus()
        stage = MatcherStage(bus, store, Matcher(MatcherCfg(calibration=SMALL)))
        worker = MatcherWorker(bus, stage, store, Shutdown(), "m-t")
        fams = {f.name: f for f in text_string_to_metric_families(generate_latest(worker.registry).decode())}
        rows = list_thresholds(store)   # rewritten by the restart, from all the stored evidence
    thr = {s.labels["pair"]: (s.value, s.labels["source"]) for s in fams["xreid_matcher_threshold"].samples}
    assert thr["rgb_rgb"] == (pytest.approx(rows[0]["threshold"]), "auto") and thr["rgb_ir"][1] == "default"
    n = {(s.labels["pair"], s.labels["kind"]): s.value for s in fams["xreid_matcher_calibration_samples"].samples}
    assert n[("rgb_rgb", "impostor")] == rows[0]["n_impostor"] > 0



def test_per_decision_keeps_a_crowd_of_strangers_apart_where_the_per_pair_rate_merges_them():
    """Nobody in the crowd returns, so every join is a wrong merge. A per-pair 1 % bar meets a gallery of
    a hundred strangers at every new track; per decision, the bar grows with the gallery."""
    embs = list(_crowd(np.random.default_rng(3), n_rounds=50))
    merged = {}
    for per_decision in (False, True):
        m = Matcher(MatcherCfg(calibration=CalibrationCfg(per_decision=per_decision)))
        for e in embs:
            m.observe(e)
        merged[per_decision] = 200 - len({m.identity_of(k) for k in range(1, m.next_track)})
        [state] = [s for s in m.calibrator.state() if s.pair == "rgb_rgb"]
        assert state.source == "auto"
    assert merged[False] >= 10, merged
    assert merged[True] <= 2, merged


def test_the_per_decision_bar_rises_with_the_gallery_and_never_undercuts_the_per_pair_bar():
    rng = np.random.default_rng(4)
    impostor = rng.normal(0.6, 0.08, size=400).tolist()
    evidence = [Evidence("m", "rgb_rgb", IMPOSTOR, s, 1, 2, 0.0) for s in impostor] + \
               [Evidence("m", "rgb_rgb", GENUINE, 0.9, 1, None, 0.0) for _ in range(10)]
    bars = []
    for tracks in (2, 10, 100, 1000):
        cal = Calibrator(MatcherCfg(calibration=CalibrationCfg(per_decision=True)))
        cal.restore(evidence, {"m": tracks})
        bars.append(cal.threshold("m", "rgb_rgb"))
    per_pair = place_threshold(impostor, 0.01, 0.3, 1.0)
    assert bars == sorted(bars) and bars[-1] > bars[0] + 0.05
    assert min(bars) >= per_pair
    assert bars[-1] == pytest.approx(0.6 + 0.08 * decision_z(0.01, 999), abs=0.02)   # a normal tail, extrapolated
