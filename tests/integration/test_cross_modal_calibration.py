"""Cross-modal calibration: ``rgb_ir`` placed from cohort scores against the other modality (issue 16, follow-up)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from models.errors import ConfigError
from pipeline.api import create_app
from pipeline.bus import MemoryBus
from pipeline.config.loader import load_config
from pipeline.config.settings import ApiCfg, CalibrationCfg, FallbackThresholds, MatcherCfg, PairThresholds, XreidCfg
from pipeline.matcher.calibration import IMPOSTOR, cohort_threshold, robust_location
from pipeline.matcher.matcher import Matcher
from pipeline.matcher.stage import MatcherStage
from pipeline.store.base import Store
from tests.support.matcher_helpers import drain_matcher, emb, unit
from workers.cli import main
from workers.lifecycle import Shutdown
from workers.matcher import MatcherWorker

DIM = 384
CFG = CalibrationCfg(min_cohort=50, floor=0.3)
IMP_MEAN, GEN_MEAN = 0.2, 0.6

# The synthetic tracks here have one clip each, so the precision rules that wait for a second clip
# (min_clips) and demand a gap over the runner-up (min_gap) are off: this file tests the cohort threshold.


def _site(rng: np.random.Generator, people: int = 30, strangers: int = 10):
    """Everyone on an RGB camera, then on a thermal one, one at a time; ``strangers`` only on the thermal one.

    A view is ``a*shared + b*person + c*noise`` with a^2 = 0.2 and a^2 + b^2 = 0.6: two views of different people
    score ~0.2 and two of one person ~0.6, with a spread of ~0.05 from the random noise in 384 dimensions.
    Returns the embeddings in arrival order and the uids of the thermal tracks of people seen on RGB."""
    shared = unit(rng.normal(size=DIM))
    a, b, c = np.sqrt(IMP_MEAN), np.sqrt(GEN_MEAN - IMP_MEAN), np.sqrt(1 - GEN_MEAN)

    def view(person: np.ndarray) -> np.ndarray:
        return unit(a * shared + b * person + c * unit(rng.normal(size=DIM)))

    faces = [unit(rng.normal(size=DIM)) for _ in range(people + strangers)]
    embs = [emb("c1", f"p{i}", view(faces[i]), 20.0 * i, 20.0 * i + 10) for i in range(people)]
    t0 = 20.0 * people
    order = [*range(people), *range(people, people + strangers)]
    rng.shuffle(order)
    embs += [emb("t1", f"t{i}", view(faces[i]), t0 + 20.0 * k, t0 + 20.0 * k + 10, modality="ir")
             for k, i in enumerate(order)]
    return embs, [f"t{i}" for i in order if i < people], [f"t{i}" for i in order if i >= people]


def _run(cfg: MatcherCfg, embs) -> Matcher:
    m = Matcher(cfg)
    for e in embs:
        m.observe(e)
    return m


def _rgb_ir(m: Matcher):
    [state] = [s for s in m.calibrator.state() if s.pair == "rgb_ir"]
    return state


def test_robust_location_ignores_a_few_genuine_scores_in_the_cohort():
    rng = np.random.default_rng(0)
    cohort = np.concatenate([rng.normal(IMP_MEAN, 0.05, 500), [0.6] * 15])
    med, sigma = robust_location(cohort)
    assert med == pytest.approx(IMP_MEAN, abs=0.01) and sigma == pytest.approx(0.05, abs=0.008)
    assert cohort_threshold(cohort, 3.0, -1.0, 1.0) == pytest.approx(med + 3 * sigma)
    assert cohort_threshold(cohort, 3.0, 0.5, 1.0) == 0.5, "never laxer than the floor"
    assert cohort_threshold([0.4] * 60, 3.0, -1.0, 1.0) > 0.4, "no spread: just above the median"


def test_the_cohort_places_rgb_ir_between_impostors_and_genuine_and_links_only_the_same_person():
    embs, same, strangers = _site(np.random.default_rng(1))
    m = _run(MatcherCfg(min_clips=1, min_gap=0.0, calibration=CFG), embs)
    state = _rgb_ir(m)
    assert state.source == "auto" and state.n_impostor >= CFG.min_cohort
    assert IMP_MEAN + 2 * 0.05 < state.threshold < GEN_MEAN - 2 * 0.05
    assert state.impostor_rate is not None and state.impostor_rate < 0.05
    rgb_identity = {t.track_uid: m.identity_of(t.key) for t in m._spaces["test@0"].tracks.values() if t.modality == "rgb"}

    def linked(uid: str) -> bool:
        key = m._spaces["test@0"].by_uid[("t1", uid)]
        return m.identity_of(key) in rgb_identity.values()

    late = same[5:]   # the first few thermal tracks arrive before min_cohort scores exist
    assert sum(linked(u) for u in late) >= 0.9 * len(late), "cross-modal genuine tracks link"
    assert all(m.identity_of(m._spaces["test@0"].by_uid[("t1", u)]) == rgb_identity["p" + u[1:]]
               for u in late if linked(u)), "each to its own person"
    assert not any(linked(u) for u in strangers), "people never seen on RGB found their own identities"


def test_too_few_cohort_scores_off_and_manual_keep_rgb_ir_where_the_operator_put_it():
    embs, _, _ = _site(np.random.default_rng(2), people=3, strangers=0)
    few = _rgb_ir(_run(MatcherCfg(min_clips=1, min_gap=0.0, calibration=CFG), embs))
    assert (few.source, few.threshold) == ("default", 1.0) and 0 < few.n_impostor < CFG.min_cohort
    embs, same, _ = _site(np.random.default_rng(3))
    off = _run(MatcherCfg(min_clips=1, min_gap=0.0, calibration=CalibrationCfg(min_cohort=50, floor=0.3, cross_modal="none")), embs)
    assert (_rgb_ir(off).source, _rgb_ir(off).threshold, _rgb_ir(off).n_impostor) == ("default", 1.0, 0)
    assert len({off.identity_of(t) for t in off._spaces["test@0"].tracks}) == len(off._spaces["test@0"].tracks)
    manual = _run(MatcherCfg(min_clips=1, min_gap=0.0, thresholds=PairThresholds(rgb_ir=0.95), calibration=CFG), embs)
    assert (_rgb_ir(manual).source, _rgb_ir(manual).threshold) == ("manual", 0.95)
    assert _rgb_ir(manual).n_impostor >= 50, "cohort scores are still collected under a manual threshold"
    fallback = _run(MatcherCfg(min_clips=1, min_gap=0.0, calibration=CalibrationCfg(min_cohort=10_000, max_samples=10_000,
                                                          fallback=FallbackThresholds(rgb_ir=0.99))), embs)
    assert (_rgb_ir(fallback).source, _rgb_ir(fallback).threshold) == ("default", 0.99)


def _crowd(rng: np.random.Generator, twins: bool):
    """Four people at once on RGB camera c9, twelve rounds, two clips each; with ``twins``, two of each round's four
    look alike (cosine ~0.6), a heavy upper tail that puts the calibrated rgb_rgb bar many robust sigmas up."""
    out = []
    for r in range(12):
        faces = [unit(rng.normal(size=DIM)) for _ in range(4)]
        if twins:
            faces[1] = unit(0.6 * faces[0] + 0.8 * unit(rng.normal(size=DIM)))
        out += [emb("c9", f"x{r}{p}", faces[p], 5000 + 30.0 * r + 10 * s, 5010 + 30.0 * r + 10 * s, segment=s)
                for s in range(2) for p in range(4)]
    return out


@pytest.mark.parametrize("twins", [True, False])
def test_z_is_cohort_z_or_what_the_site_own_same_modality_calibration_demands(twins):
    """rgb_ir sits as many robust sigmas above its cohort as the auto rgb_rgb bar does above its impostors, but
    never fewer than cohort_z (a few dozen impostors understate their tail)."""
    rng = np.random.default_rng(4)
    embs, _, _ = _site(rng)
    cfg = CalibrationCfg(min_cohort=50, min_impostor=20, floor=-1.0)
    m = _run(MatcherCfg(min_clips=1, min_gap=0.0, calibration=cfg), embs + _crowd(rng, twins))
    states = {s.pair: s for s in m.calibrator.recompute("test@0")}
    assert states["rgb_rgb"].source == "auto" and states["rgb_ir"].source == "auto"
    med, sigma = robust_location(list(m.calibrator._scores[("test@0", "rgb_rgb", IMPOSTOR)]))
    z_site = (states["rgb_rgb"].threshold - med) / sigma
    assert (z_site > cfg.cohort_z) is twins
    cohort = list(m.calibrator._scores[("test@0", "rgb_ir", IMPOSTOR)])
    want = cohort_threshold(cohort, max(z_site, cfg.cohort_z), -1.0, 1.0)
    assert states["rgb_ir"].threshold == pytest.approx(want)


def test_cohort_scores_persist_and_show_in_the_cli_api_and_metrics(tmp_path, capsys):
    cfg = MatcherCfg(min_clips=1, min_gap=0.0, calibration=CFG)
    embs, _, _ = _site(np.random.default_rng(5))
    with Store(tmp_path / "x.sqlite") as store:
        stage = drain_matcher(store, cfg, embs)
        before = _rgb_ir(stage.matcher)
        [(n,)] = store.execute("SELECT count(*) FROM calibration_scores WHERE pair = 'rgb_ir' AND kind = 'impostor'")
        assert n == before.n_impostor >= CFG.min_cohort
    with Store(tmp_path / "x.sqlite") as store:
        again = _rgb_ir(MatcherStage(MemoryBus(), store, Matcher(cfg)).matcher)
    assert (again.source, again.threshold) == ("auto", pytest.approx(before.threshold))
    assert main(["calibration", "--store", str(tmp_path / "x.sqlite"), "--json"]) == 0
    rows = {r["pair"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["rgb_ir"]["source"] == "auto" and rows["rgb_ir"]["n_impostor"] == before.n_impostor
    with TestClient(create_app(ApiCfg(), tmp_path / "x.sqlite")) as c:
        api = {r["pair"]: r for r in c.get("/calibration").json()}
    assert (api["rgb_ir"]["source"], api["rgb_ir"]["n_impostor"]) == ("auto", before.n_impostor)
    assert api["rgb_ir"]["threshold"] == pytest.approx(before.threshold)
    with Store(tmp_path / "x.sqlite") as store:
        stage = MatcherStage(MemoryBus(), store, Matcher(cfg))
        worker = MatcherWorker(MemoryBus(), stage, store, Shutdown(), "m-t")
        fams = {f.name: f for f in text_string_to_metric_families(generate_latest(worker.registry).decode())}
    [thr] = [x for x in fams["xreid_matcher_threshold"].samples if x.labels["pair"] == "rgb_ir"]
    assert thr.labels["source"] == "auto" and thr.value == pytest.approx(before.threshold)
    n = {(x.labels["pair"], x.labels["kind"]): x.value for x in fams["xreid_matcher_calibration_samples"].samples}
    assert n[("rgb_ir", "impostor")] == before.n_impostor


def test_the_yaml_config_turns_the_cohort_on_by_default_and_none_turns_it_off(tmp_path):
    assert load_config(XreidCfg, "configs/default.yaml").matcher.calibration.cross_modal == "cohort"
    p = tmp_path / "c.yaml"
    p.write_text("matcher:\n  calibration:\n    cross_modal: none\n")
    assert load_config(XreidCfg, p).matcher.calibration.cross_modal == "none"
    p.write_text("matcher:\n  calibration:\n    cross_modal: off\n")   # YAML reads off as false: a clear error
    with pytest.raises(ConfigError, match="cross_modal"):
        load_config(XreidCfg, p)
