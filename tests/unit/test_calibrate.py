from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from pipeline.bus import STREAM_EMBEDDINGS, MemoryBus
from pipeline.config.loader import load_config
from pipeline.config.settings import MatcherCfg, PairThresholds, XreidCfg
from pipeline.matcher.calibrate import LabelledTrack, fit_thresholds, label_tracks, pairwise_f1, partition
from pipeline.matcher.matcher import Matcher
from pipeline.matcher.stage import MatcherStage
from pipeline.store.base import Store
from tests.support.matcher_helpers import emb, unit
from workers.cli import main

DIM = 24
S = 1.52  # persons 0 and 1 share this much of an RGB look: rgb-rgb 0.65 across them, 0.93 within


def _rgb(p: int, k: int) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    v[p], v[10 + k] = 1.0, 0.5
    if p in (0, 1):
        v[9] = S
    return unit(v)


def _ir(p: int) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    v[p], v[14 + p] = 1.0, 1.2   # cross-modal similarity to the same person ~0.34..0.57, 0 to others
    return unit(v)


def _scene() -> list:
    """4 people: an RGB track on c1, one on c2, an IR track on c3, at separate times."""
    out = []
    for p in range(4):
        base = 1000.0 + 100 * p
        out.append(emb("c1", f"p{p}-c1", _rgb(p, 0), base, base + 10))
        out.append(emb("c2", f"p{p}-c2", _rgb(p, 1), base + 20, base + 30))
        out.append(emb("c3", f"p{p}-c3", _ir(p), base + 40, base + 50, modality="ir"))
    return out


def _labelled(embs) -> list[LabelledTrack]:
    return [LabelledTrack(e, e.track_uid.split("-")[0]) for e in embs]


def test_pairwise_f1_counts_pairs():
    assert pairwise_f1([1, 1, 2, 2], ["a", "a", "b", "b"]) == (1.0, 1.0, 1.0)
    p, r, f = pairwise_f1([1, 1, 1, 2], ["a", "a", "b", "b"])
    assert (p, r) == pytest.approx((1 / 3, 1 / 2))
    assert pairwise_f1([1, 2], ["a", None]) == (1.0, 1.0, 1.0), "unlabelled tracks do not count"


def test_fit_finds_thresholds_that_separate_look_alikes_and_link_modalities():
    tracks = _labelled(_scene())
    lax = MatcherCfg(thresholds=PairThresholds(rgb_rgb=0.6, ir_ir=0.6, rgb_ir=0.45))   # the old static defaults
    before = pairwise_f1(partition(tracks, lax), [t.label for t in tracks])
    assert before[0] < 1.0 and before[1] < 1.0, "lax thresholds merge the look-alikes and miss the IR links"
    fit = fit_thresholds([tracks], lax)
    assert (fit.precision, fit.recall, fit.f1) == (1.0, 1.0, 1.0)
    assert fit.baseline_f1 == pytest.approx(before[2])
    assert 0.65 < fit.thresholds.rgb_rgb <= 0.93
    assert 0.0 < fit.thresholds.rgb_ir <= 0.34
    assert (fit.n_tracks, fit.n_labelled, fit.n_people) == (12, 12, 4)


def test_label_tracks_matches_mot_output_to_global_ids(tmp_path):
    gt = tmp_path / "gt.txt"
    pred = tmp_path / "pred.txt"
    gt.write_text("".join(f"{f},7,10,10,50,100,1,1,1\n{f},9,200,10,50,100,1,1,1\n" for f in range(1, 11)))
    rows = [f"{f},1,12,12,50,100,0.9\n" for f in range(1, 11)]               # follows person 7
    rows += [f"{f},2,400,300,30,60,0.5\n" for f in range(1, 6)]              # a false positive
    rows += [f"{f},3,200,10,50,100,0.8\n" for f in range(1, 11)]               # follows person 9
    rows += [f"{f},4,{202 if f <= 3 else 420},10,50,100,0.8\n" for f in range(1, 11)]  # on 9 only 3 of 10 frames
    pred.write_text("".join(rows))
    labels = label_tracks(pred, gt)
    assert labels == {1: 7, 3: 9}


def test_calibrate_command_writes_a_loadable_config(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    with Store(run / "xreid.sqlite") as store:
        bus = MemoryBus()
        stage = MatcherStage(bus, store, Matcher())
        for e in _scene():
            bus.publish(STREAM_EMBEDDINGS, e.to_bytes())
        stage.drain()
    (run / "summary.json").write_text(json.dumps({"run_id": "r1", "cameras": {"c1": {}, "c2": {}, "c3": {}}}))
    labels = tmp_path / "labels.csv"
    labels.write_text("track_uid,person\n" + "".join(f"p{p}-c{c},{p}\n" for p in range(4) for c in (1, 2, 3)))
    base = tmp_path / "base.yaml"
    base.write_text("clips:\n  seq_len: 6\n")
    out = tmp_path / "calibrated.yaml"
    assert main(["calibrate", "--run", str(run), "--labels", str(labels), "--config", str(base), "--out", str(out),
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["f1"] == 1.0 and res["f1_before"] < 1.0 and res["labelled"] == 12
    cfg = load_config(XreidCfg, out)
    assert cfg.clips.seq_len == 6, "the rest of the input config is kept"
    assert cfg.matcher.thresholds.rgb_ir == res["thresholds"]["rgb_ir"]
    assert yaml.safe_load(out.read_text())["matcher"]["thresholds"]["rgb_rgb"] == res["thresholds"]["rgb_rgb"]
    assert main(["calibrate", "--run", str(tmp_path), "--labels", str(labels), "--out", str(out)]) == 2
    assert "not a replay output folder" in capsys.readouterr().err
