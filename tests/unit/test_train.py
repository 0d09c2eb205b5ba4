"""Training: the loss goes down, resume continues exactly, the recipe configs load, the CLI works end to end."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from models.data.synth import SynthCfg, write_synth_vcm
from models.data.vcm import load_vcm
from models.errors import ConfigError
from models.train import TrainCfg, Trainer
from models.train.losses import triplet_loss
from models.train.optim import lr_factor
from pipeline.config.loader import load_config
from workers.cli import main

ROOT = Path(__file__).resolve().parents[2]
DATA = SynthCfg(num_identities=6, num_test_identities=2, rgb_cameras=2, ir_cameras=2, frames_per_tracklet=4,
                height=64, width=32, presence=1.0, seed=11)


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    return write_synth_vcm(tmp_path_factory.mktemp("synth") / "vcm", DATA)


def _cfg(**over) -> TrainCfg:
    cfg = load_config(TrainCfg, ROOT / "configs" / "train-tiny-ci.yaml")
    return dataclasses.replace(cfg, **over)


def _dataset(root: Path):
    return load_vcm(root, min_seq_len=1, num_cameras=4, name="synth")


def test_a_few_steps_lower_the_loss(synth_root, tmp_path):
    torch.set_num_threads(1)
    trainer = Trainer(_cfg(), _dataset(synth_root), tmp_path)
    trainer.init_prototypes()
    batch = next(iter(trainer._batches(0)))
    losses = [trainer.train_step(batch)["total"] for _ in range(12)]
    assert losses[-1] < 0.8 * losses[0], losses


def test_resume_continues_where_it_stopped(synth_root, tmp_path):
    torch.set_num_threads(1)
    ds = _dataset(synth_root)
    straight = Trainer(_cfg(epochs=2), ds, tmp_path / "straight")
    straight.fit(evaluate=False)

    Trainer(_cfg(epochs=1), ds, tmp_path / "resumed").fit(evaluate=False)   # "stopped" after epoch 1
    resumed = Trainer(_cfg(epochs=2), ds, tmp_path / "resumed")
    assert resumed.resume() and resumed.start_epoch == 1
    resumed.fit(evaluate=False)

    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = (tmp_path / "resumed" / "metrics.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]


def test_cpc_waits_for_its_start_epoch(synth_root, tmp_path):
    torch.set_num_threads(1)
    base = _cfg(epochs=2, iters_per_epoch=2, eval_period=0)
    cfg = dataclasses.replace(base, loss=dataclasses.replace(base.loss, cpc_weight=1.0, cpc_start_epoch=1))
    trainer = Trainer(cfg, _dataset(synth_root), tmp_path)
    assert trainer.use_cpc and not trainer.cpc_active
    trainer.fit(evaluate=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert "loss_cpc" not in rows[0]                      # epoch 0 (before the start): no CPC term at all
    assert rows[1]["loss_cpc"] > 0                        # from the start epoch on it is in the objective
    assert trainer.model.cpc.rgb.prototypes.abs().sum() > 0   # and its memories were built


def test_cpc_start_epoch_is_validated():
    base = _cfg()
    with pytest.raises(ConfigError):
        dataclasses.replace(base.loss, cpc_start_epoch=-1)
    with pytest.raises(ConfigError):
        dataclasses.replace(base.loss, cpc_start_epoch=1.5)
    with pytest.raises(ConfigError):                      # CPC weighted but never started
        dataclasses.replace(base, loss=dataclasses.replace(base.loss, cpc_weight=1.0, cpc_start_epoch=base.epochs))
    off = dataclasses.replace(base, loss=dataclasses.replace(base.loss, cpc_weight=0.0, cpc_start_epoch=base.epochs))
    assert off.loss.cpc_start_epoch == base.epochs        # no CPC: the start epoch does not matter


def test_batch_hard_triplet_on_a_hand_example():
    feats = torch.tensor([[0.0], [1.0], [3.0], [3.5]])
    labels = torch.tensor([0, 0, 1, 1])
    modality = torch.tensor([0, 1, 0, 1])
    # anchors: d_ap = 1, 1, .5, .5 ; d_an = 3, 2, 2, 2.5  -> relu(d_ap - d_an + 0.3) = 0 everywhere
    assert triplet_loss(feats, labels, modality, "batch_hard", 0.3).item() == pytest.approx(0.0, abs=1e-5)
    # margin 2.2: 0.2, 1.2, 0.7, 0.2 -> mean 0.575
    assert triplet_loss(feats, labels, modality, "batch_hard", 2.2).item() == pytest.approx(0.575, abs=1e-4)
    soft = triplet_loss(feats, labels, modality, "soft_margin").item()
    assert soft == pytest.approx(float(torch.nn.functional.softplus(torch.tensor([-2.0, -1.0, -1.5, -2.0])).mean()),
                                 abs=1e-4)
    cross = triplet_loss(feats, labels, modality, "cross_modality", 2.2).item()
    # other-modality pairs only: d_ap = 1, 1, .5, .5 ; d_an = 3.5, 2, 2, 3.5 -> 0, 1.2, .7, 0
    # (anchor 3.5 may not mine the infrared 1.0 it mined above: its hardest visible negative is 0.0)
    assert cross == pytest.approx((0.0 + 1.2 + 0.7 + 0.0) / 4, abs=1e-4)


def test_warmup_multistep_schedule_matches_the_reference():
    cfg = load_config(TrainCfg, ROOT / "configs" / "xreid-vitb16-vcm.yaml").schedule
    assert lr_factor(0, cfg, 30) == pytest.approx(0.1)
    assert lr_factor(5, cfg, 30) == pytest.approx(0.1 * 0.5 + 0.5)
    assert lr_factor(10, cfg, 30) == pytest.approx(1.0)
    assert lr_factor(30, cfg, 80) == pytest.approx(0.1)


def test_recipe_configs_load_with_the_reference_numbers():
    cfg = load_config(TrainCfg, ROOT / "configs" / "xreid-vitb16-vcm.yaml")
    assert (cfg.optim.name, cfg.optim.base_lr, cfg.epochs, cfg.iters_per_epoch) == ("Adam", 5e-6, 30, 300)
    assert (cfg.sampler.num_pids, cfg.sampler.num_instances, cfg.loss.id_weight) == (4, 2, 0.25)
    for path in sorted((ROOT / "configs").glob("train-*.yaml")):
        load_config(TrainCfg, path)


def test_cli_train_then_eval(synth_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--config", str(ROOT / "configs" / "train-tiny-ci.yaml"), "--data", str(synth_root),
                 "--out", str(out), "--epochs", "1", "--no-progress"]) == 0
    assert (out / "model.pt").is_file() and (out / "last.pt").is_file() and (out / "metrics.csv").is_file()
    assert main(["eval", "--checkpoint", str(out / "model.pt"), "--data", str(synth_root), "--min-seq-len", "1",
                 "--out", str(tmp_path / "eval"), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "ir_to_rgb" in text and "rgb_to_ir" in text
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert set(report) >= {"ir_to_rgb", "rgb_to_ir", "model_id"}
    assert 0.0 <= report["ir_to_rgb"]["rank1"] <= 1.0 and (tmp_path / "eval" / "cmc.png").is_file()


def test_cli_bad_data_root_is_one_line_error(tmp_path, capsys):
    rc = main(["train", "--config", str(ROOT / "configs" / "train-tiny-ci.yaml"), "--data", str(tmp_path / "nope"),
               "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "not a HITSZ-VCM tree" in err and "Traceback" not in err
