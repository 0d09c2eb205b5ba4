"""`xreid adapt` and `xreid reembed` on a store made by a real short replay of vtest.avi (tiny model, CPU)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models.weights import DEFAULT_CHECKPOINT
from models.xreid.checkpoint import load_checkpoint, read_checkpoint
from models.xreid.encoder import ReidEncoder
from pipeline.adapt.reembed import reembed
from pipeline.adapt.site import MIN_TRACKS, bridge, load_site
from pipeline.adapt.trainer import site_centre
from pipeline.bus import STREAM_CLIPS, STREAM_EMBEDDINGS, create_bus
from pipeline.bus.messages import Clip, make_clip_id
from pipeline.config.settings import MatcherCfg, ReidCfg
from pipeline.matcher.matcher import Matcher
from pipeline.matcher.stage import MatcherStage
from pipeline.reid.stage import ReidStage
from pipeline.store.base import Store
from pipeline.store.crops import CropKeeper, crops_dir
from tests.support.services import wait_until

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def xreid(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workers.cli", *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=300)


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI in this process (no interpreter start-up): exit status, stdout, stderr."""
    from workers.cli import main

    capsys.readouterr()
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def copy_store(src: Path, dst_dir: Path) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / src.name
    shutil.copy(src, dst)
    shutil.copytree(crops_dir(src), crops_dir(dst))
    return dst


def models_in(store: Path) -> tuple[set, set]:
    with sqlite3.connect(store) as conn:
        tracks = {r[0] for r in conn.execute("SELECT model_id FROM tracks")}
        idents = {r[0] for r in conn.execute("SELECT model_id FROM identities")}
    return tracks, idents


@pytest.fixture(scope="module")
def site_store(tmp_path_factory, vtest_path) -> Path:
    """Two cameras, 60 frames each, through the real embedded replay: 12 tracks with kept crops."""
    out = tmp_path_factory.mktemp("site")
    r = xreid("replay", "--camera", f"a:rgb:{vtest_path}", "--camera", f"b:rgb:{vtest_path}", "--max-frames", "60",
              "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    return out / "xreid.sqlite"


@pytest.fixture(scope="module")
def adapted(site_store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "site.pt"
    r = xreid("adapt", "--store", str(site_store), "--out", str(out), "--minutes", "0.02", "--threads", "1",
              "--no-progress")
    assert r.returncode == 0, r.stderr
    return out


def test_replay_keeps_a_few_jpeg_crops_per_track_beside_the_store(site_store):
    keeper = CropKeeper(crops_dir(site_store))
    with Store(site_store, readonly=True) as store:
        uids = [r[0] for r in store.execute("SELECT track_uid FROM tracks")]
    assert len(uids) >= MIN_TRACKS
    for uid in uids:
        kept = keeper.crops(uid)
        assert 1 <= len(kept) <= 16
        assert all(c.path.read_bytes()[:2] == b"\xff\xd8" for c in kept)


def test_adapt_writes_a_loadable_checkpoint_with_a_new_model_id_and_a_card(adapted, site_store):
    model = load_checkpoint(adapted)
    base = load_checkpoint(DEFAULT_CHECKPOINT)
    assert model.model_id != base.model_id
    assert model.model_id.startswith(base.cfg.name + ".")
    card = json.loads(adapted.with_name("site.card.json").read_text())
    assert card["model_id"] == model.model_id and card["from_model_id"] == base.model_id
    assert card["source_store"] == str(site_store.resolve())
    assert card["counts"]["tracks"] >= MIN_TRACKS and card["counts"]["crops"] >= card["counts"]["tracks"]
    assert card["steps"] >= 1 and len(card["losses"]) == card["steps"]
    assert adapted.with_name("site.loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert read_checkpoint(adapted)["extra"]["adapt"]["source_store"] == card["source_store"]
    assert not [p for p in adapted.parent.iterdir() if p.name.endswith(".tmp")]


def test_with_centre_the_adapted_model_carries_the_sites_mean_embedding_measured_on_its_own_clips(adapted, site_store,
                                                                                                  tmp_path):
    assert not load_checkpoint(adapted).cfg.site_centre, "no centre unless asked for"
    assert json.loads(adapted.with_name("site.card.json").read_text())["site_centre_clips"] is None
    out = tmp_path / "centred.pt"
    r = xreid("adapt", "--store", str(site_store), "--out", str(out), "--minutes", "0.01", "--threads", "1", "--centre",
              "--no-progress")
    assert r.returncode == 0, r.stderr
    model = load_checkpoint(out)
    card = json.loads(out.with_name("centred.card.json").read_text())
    assert model.cfg.site_centre and "site centre from" in r.stdout
    assert card["site_centre_clips"]["rgb"] >= card["counts"]["tracks"] and card["site_centre_clips"]["ir"] == 0
    site = load_site(site_store, tuple(model.cfg.input_hw))
    centre, _ = site_centre(model, site.tracks, model.cfg.seq_len)   # the raw path: the stored centre is not applied
    assert torch.allclose(model.site_centre, centre, atol=1e-5)
    assert torch.equal(model.site_centre[1], model.site_centre[0]), "no IR at this site: IR is centred like RGB"


def test_adapt_refuses_a_store_with_too_few_tracks_or_no_crops_in_one_line(site_store, tmp_path, capsys):
    few = copy_store(site_store, tmp_path / "few")
    keeper = CropKeeper(crops_dir(few))
    uids = sorted(p.name for p in crops_dir(few).iterdir())
    keeper.drop_tracks(uids[MIN_TRACKS - 3:])           # retention purged all but 5 tracks' crops
    rc, _, err = cli(capsys, "adapt", "--store", str(few), "--out", str(tmp_path / "m.pt"), "--minutes", "0.02")
    assert rc == 2
    assert err.strip().count("\n") == 0 and f"at least {MIN_TRACKS}" in err and "5 tracks" in err
    shutil.rmtree(crops_dir(few))
    rc, _, err = cli(capsys, "adapt", "--store", str(few), "--out", str(tmp_path / "m.pt"), "--minutes", "0.02")
    assert rc == 2 and err.strip().count("\n") == 0 and "no kept crops" in err
    assert not (tmp_path / "m.pt").exists()


def test_an_interrupted_adapt_leaves_no_checkpoint(site_store, tmp_path):
    out = tmp_path / "killed.pt"
    proc = subprocess.Popen([sys.executable, "-m", "workers.cli", "adapt", "--store", str(site_store), "--out",
                             str(out), "--minutes", "5", "--threads", "1", "--no-progress"],
                            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()   # printed just before training starts
        assert line.startswith("adapt:"), line
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert list(tmp_path.iterdir()) == []   # no checkpoint, no card, no temporary file


def test_adapting_a_store_built_with_another_model_is_reported_and_the_store_untouched(site_store, adapted, tmp_path,
                                                                                      capsys):
    before = models_in(site_store)
    rc, _, err = cli(capsys, "adapt", "--store", str(site_store), "--out", str(tmp_path / "again.pt"), "--from",
                     str(adapted), "--minutes", "0.02", "--threads", "1", "--no-progress")
    assert rc == 0, err
    base_id = load_checkpoint(DEFAULT_CHECKPOINT).model_id
    assert f"was embedded by {base_id}, adapting {load_checkpoint(adapted).model_id}" in err
    card = json.loads((tmp_path / "again.card.json").read_text())
    assert card["store_model_mismatch"] is True and card["store_model_ids"] == [base_id]
    assert models_in(site_store) == before == ({base_id}, {base_id})


def test_reembed_moves_the_whole_store_to_the_new_model(site_store, adapted, tmp_path, capsys):
    store = copy_store(site_store, tmp_path)
    new_id = load_checkpoint(adapted).model_id
    with Store(store, readonly=True) as s:
        purged = s.execute("SELECT track_uid FROM tracks ORDER BY track_uid LIMIT 1")[0][0]
    CropKeeper(crops_dir(store)).drop_tracks([purged])
    rc, out, err = cli(capsys, "reembed", "--store", str(store), "--checkpoint", str(adapted), "--threads", "1",
                       "--no-progress", "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["model_id"] == new_id and res["tracks_without_crops"] == 1
    tracks, idents = models_in(store)
    assert tracks == {new_id, None} and idents == {new_id}      # one model's gallery, nothing of the old one
    with sqlite3.connect(store) as conn:
        unlinked = conn.execute("SELECT track_uid FROM tracks WHERE identity_id IS NULL OR embedding IS NULL").fetchall()
        dangling = conn.execute("SELECT count(*) FROM links WHERE identity_id NOT IN (SELECT id FROM identities)").fetchone()
    assert unlinked == [(purged,)] and dangling == (0,)
    assert res["identities_after"] >= 1


def test_bridged_renderings_are_gray_and_keep_the_shape():
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 255, (64, 32, 3), dtype=np.uint8)
    for kind in ("gray", "nir", "thermal"):
        out = bridge(crop, kind, rng)
        assert out.shape == crop.shape and out.dtype == np.uint8
        assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def _clips_from_crops(store: Path, segment: int) -> list[Clip]:
    """Clips re-cut from the kept crops (a camera worker would send such clips over Redis)."""
    keeper = CropKeeper(crops_dir(store))
    with Store(store, readonly=True) as s:
        rows = s.execute("SELECT track_uid, camera_id, modality, t_end FROM tracks")
    clips = []
    for uid, cam, modality, t_end in rows:
        frames = tuple(c.path.read_bytes() for c in keeper.crops(uid))[:4]
        n = len(frames)
        t0 = float(t_end) + 1.0 + 10.0 * segment
        clips.append(Clip(make_clip_id(cam, uid, segment), cam, modality, uid, segment, t0, t0 + n, frames,
                          np.tile(np.array([0, 0, 32, 64], np.float32), (n, 1)), t0 + np.arange(n, dtype=np.float64),
                          np.full(n, 0.8, np.float32), n))
    return clips


def _drain(*stages) -> None:
    for st in stages:
        while st.step(block_ms=0).consumed:
            pass


def test_distributed_switch_over_moves_workers_and_matcher_to_the_new_checkpoint(redis_server, site_store, adapted,
                                                                                  tmp_path):
    """Drain, stop re-ID workers and matcher, reembed, restart both on the new checkpoint (docs/adapt.md)."""
    old = ReidEncoder.from_checkpoint(DEFAULT_CHECKPOINT, device="cpu", preprocess_workers=1)
    new = ReidEncoder.from_checkpoint(adapted, device="cpu", preprocess_workers=1)
    seed = copy_store(site_store, tmp_path / "seed")
    store_path = tmp_path / "live" / "xreid.sqlite"
    bus = create_bus(redis_server.url)
    cfg = MatcherCfg()
    with Store(store_path) as store:   # before: the deployment runs the old model
        keeper = CropKeeper(crops_dir(store_path), 16)
        reid, matcher = ReidStage(bus, old, ReidCfg()), MatcherStage(bus, store, Matcher(cfg), cfg, crops=keeper)
        for clip in _clips_from_crops(seed, segment=1):
            bus.publish(STREAM_CLIPS, clip.to_bytes())
        _drain(reid, matcher)
        assert models_in(store_path)[0] == {old.model_id}
    # switch-over: both workers are stopped and the embeddings stream is drained; then reembed
    result = reembed(store_path, new, cfg)
    assert result.tracks_without_crops == 0 and result.previous_model_ids == [old.model_id]
    # a straggler the old re-ID worker published after the drain must not land in the new gallery
    straggler = ReidStage(bus, old, ReidCfg(), consumer="reid-old")
    with Store(store_path) as store:
        reid, matcher = ReidStage(bus, new, ReidCfg(), consumer="reid-1"), MatcherStage(
            bus, store, Matcher(cfg), cfg, consumer="matcher-1", crops=CropKeeper(crops_dir(store_path), 16))
        late = _clips_from_crops(seed, segment=2)
        bus.publish(STREAM_CLIPS, late[0].to_bytes())
        _drain(straggler)
        for clip in late[1:]:
            bus.publish(STREAM_CLIPS, clip.to_bytes())
        _drain(reid, matcher)
    tracks, idents = models_in(store_path)
    assert tracks == {new.model_id} and idents == {new.model_id}
    wait_until(lambda: len(bus.dead_letters(STREAM_EMBEDDINGS)) == 1, what="straggler dead-lettered")
    dead = bus.dead_letters(STREAM_EMBEDDINGS)
    assert old.model_id in dead[0].reason and new.model_id in dead[0].reason


def test_crop_keeping_is_capped_per_track_idempotent_and_off_at_zero(tmp_path):
    from tests.support.reid_helpers import make_clip

    assert CropKeeper.for_store(tmp_path / "x.sqlite", 0) is None
    assert CropKeeper.for_store(":memory:", 16) is None
    keeper = CropKeeper.for_store(tmp_path / "x.sqlite", 6)
    assert keeper is not None and keeper.root == tmp_path / "x.crops"
    clips = [make_clip("cam1", "cam1-run-7", 3, t=8, segment=s, t0=100.0 + 10 * s) for s in range(3)]
    assert keeper.keep_clip(clips[0]) == 4 and keeper.keep_clip(clips[0]) == 4   # a redelivery rewrites
    assert keeper.keep_clip(clips[1]) == 2 and keeper.keep_clip(clips[2]) == 0   # capped at 6, earliest first
    kept = keeper.crops("cam1-run-7")
    assert [(c.segment, c.index) for c in kept] == [(0, 0), (0, 2), (0, 5), (0, 7), (1, 0), (1, 2)]
    assert kept[0].t_start == 100.0 and not list(keeper.root.rglob("*.tmp"))
    assert keeper.drop_tracks(["cam1-run-7", "other"]) == 1 and keeper.crops("cam1-run-7") == []
