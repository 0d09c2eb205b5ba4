from __future__ import annotations

import json

import cv2
import pytest

from pipeline.bus import STREAM_CLIPS, STREAM_EMBEDDINGS, MemoryBus
from pipeline.config.settings import MatcherCfg, PairThresholds, ReidCfg
from pipeline.matcher.matcher import Matcher
from pipeline.matcher.stage import MatcherStage
from pipeline.reid.stage import ReidStage, decode_crops
from pipeline.store.base import Store
from tests.support.hostile_images import bmp_header, png_1bit_bomb, png_header
from tests.support.matcher_helpers import emb, person, view
from tests.support.reid_helpers import make_clip
from workers.cli import main

# one clip per track is enough here: these tests are about the store and its queries, not the precision rules
CFG = MatcherCfg(thresholds=PairThresholds(rgb_rgb=0.7, ir_ir=0.7, rgb_ir=0.5), merge_margin=0.1, min_clips=1, min_gap=0.0)


@pytest.fixture
def store_path(store_url):
    """The matcher's store on each backend: a SQLite file, then a PostgreSQL database."""
    embs = [
        emb("c1", "a", view(0, 0.85, 1), 100, 110),
        emb("c2", "b", 0.85 * person(0) - 0.527 * person(1), 100, 110, modality="ir"),
        emb("c1", "p2", person(2), 100, 110),
        emb("c3", "bridge", person(0), 140, 150),
        emb("c2", "p2ir", view(2, 0.8, 7), 200, 230, modality="ir"),
    ]
    bus = MemoryBus()
    with Store(store_url) as store:
        stage = MatcherStage(bus, store, Matcher(CFG))
        for e in embs:
            bus.publish(STREAM_EMBEDDINGS, e.to_bytes())
        stage.drain()
    return store_url


def _json(capsys, argv) -> object:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_tracks_filters_by_camera_modality_time_and_identity(store_path, capsys):
    rows = _json(capsys, ["tracks", "--store", store_path, "--json"])
    assert [r["track_uid"] for r in rows] == ["a", "b", "p2", "bridge", "p2ir"]
    by_uid = {r["track_uid"]: r for r in rows}
    assert by_uid["a"]["identity"] == by_uid["b"]["identity"] == by_uid["bridge"]["identity"]
    assert by_uid["b"]["assigned_identity"] != by_uid["b"]["identity"], "b was founded, then merged"
    assert [r["track_uid"] for r in _json(capsys, ["tracks", "--store", store_path, "--camera", "c2", "--json"])] \
        == ["b", "p2ir"]
    assert [r["track_uid"] for r in _json(capsys, ["tracks", "--store", store_path, "--modality", "ir", "--json"])] \
        == ["b", "p2ir"]
    window = ["tracks", "--store", store_path, "--from", "1970-01-01T00:02:10Z", "--to", "205", "--json"]
    assert [r["track_uid"] for r in _json(capsys, window)] == ["bridge", "p2ir"]
    old_id = by_uid["b"]["assigned_identity"]
    via_old = _json(capsys, ["tracks", "--store", store_path, "--identity", str(old_id), "--json"])
    assert {r["track_uid"] for r in via_old} == {"a", "b", "bridge"}
    assert main(["tracks", "--store", store_path]) == 0
    table = capsys.readouterr().out
    assert "track_uid" in table and "5 track(s)" in table


def test_identity_shows_tracks_per_camera_and_modality_with_scores(store_path, capsys):
    ident = _json(capsys, ["tracks", "--store", store_path, "--json"])[0]["identity"]
    d = _json(capsys, ["identity", str(ident), "--store", store_path, "--json"])
    assert d["identity"] == ident and set(d["cameras"]) == {"c1", "c2", "c3"}
    assert set(d["cameras"]["c2"]) == {"ir"} and len(d["merges"]) == 1
    bridge = d["cameras"]["c3"]["rgb"][0]
    assert bridge["links"][0]["kind"] == "join" and bridge["links"][0]["score"] == pytest.approx(0.85, abs=1e-3)
    old = d["merged_ids"][0]
    assert main(["identity", str(old), "--store", store_path]) == 0
    text = capsys.readouterr().out
    assert f"identity {ident} (id {old} was merged into it)" in text
    assert main(["identity", "999", "--store", store_path]) == 2
    assert "no identity 999" in capsys.readouterr().err


def test_search_by_track_ranks_identities(store_path, capsys):
    res = _json(capsys, ["search", "--track", "p2", "--store", store_path, "-k", "3", "--json"])
    top = res["results"][0]
    assert top["score"] == pytest.approx(1.0, abs=1e-5) and top["track_uid"] == "p2"
    assert [r["score"] for r in res["results"]] == sorted((r["score"] for r in res["results"]), reverse=True)
    assert main(["search", "--track", "nope", "--store", store_path]) == 2
    assert "no embedded track" in capsys.readouterr().err


def test_search_by_images_with_the_tiny_xreid_checkpoint(tmp_path, capsys):
    import torch

    from models.xreid import create_model, save_checkpoint
    from models.xreid.encoder import ReidEncoder

    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(create_model("xreid_tiny"), ckpt)
    enc = ReidEncoder.from_checkpoint(ckpt, device="cpu")
    bus, path = MemoryBus(), tmp_path / "x.sqlite"
    clips = [make_clip(f"cam{i}", f"u{i}", identity=i, t=enc.seq_len, size=(64 + 16 * i, 32 + 8 * i)) for i in range(4)]
    for c in clips:
        bus.publish(STREAM_CLIPS, c.to_bytes())
    with Store(path) as store:
        ReidStage(bus, enc, ReidCfg(max_wait_ms=0)).drain()
        MatcherStage(bus, store, Matcher(MatcherCfg(thresholds=PairThresholds(1.0, 1.0, 1.0)))).drain()
    images = []
    for k, crop in enumerate(decode_crops(clips[2], enc.seq_len, 8, 4096)):
        p = tmp_path / f"q{k}.png"
        cv2.imwrite(str(p), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        images.append(str(p))
    res = _json(capsys, ["search", "--image", *images, "--checkpoint", str(ckpt), "--store", str(path), "--json"])
    assert res["model_id"] == enc.model_id
    assert res["results"][0]["track_uid"] == "u2" and res["results"][0]["score"] > 0.99
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    assert main(["search", "--image", str(bad), "--checkpoint", str(ckpt), "--store", str(path)]) == 2
    assert "not an image (accepted: JPEG, PNG, WEBP, BMP)" in capsys.readouterr().err
    # without --checkpoint the committed model embeds the images; the store holds another model's vectors
    assert main(["search", "--image", *images, "--store", str(path)]) == 2
    assert "has no gallery for model xreid_mnv2." in capsys.readouterr().err


def test_missing_store_is_a_one_line_error(tmp_path, capsys):
    assert main(["tracks", "--store", str(tmp_path / "none.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no store at" in err


def test_output_cut_short_by_the_reader_is_not_a_traceback(tmp_path):
    import subprocess
    import sys

    from pipeline.store.base import Store
    from pipeline.store.tracks import TrackRow, upsert_track

    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        for i in range(3000):
            upsert_track(store, TrackRow(f"cam1-{i}", "cam1", "rgb", float(i), float(i) + 1, 10, 1))
    proc = subprocess.Popen([sys.executable, "-m", "workers.cli", "tracks", "--store", str(path), "--limit", "3000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and "Traceback" not in err, err


def _one_line(capsys, argv, needle: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and needle in err, err
    return err.strip()


@pytest.mark.parametrize("make, needle", [
    (lambda: b"", "empty file"),
    (lambda: png_header(20000, 20000), "the header claims 20000x20000"),
    (lambda: bmp_header(20000, 20000), "the header claims 20000x20000"),
    (lambda: png_1bit_bomb(20000, 20000), "the header claims 20000x20000"),
    (lambda: png_header(7000, 7000), "7000x7000 = 49000000 pixels, over the 40000000-pixel limit"),
    (lambda: b"\x89PNG\r\n\x1a\n" + b"\x00" * 7, "PNG image with a broken header"),
    (lambda: b"II*\x00" + b"\x00" * 64, "not an image (accepted: JPEG, PNG, WEBP, BMP)"),
])
def test_search_image_refuses_empty_garbage_and_bombs_before_decoding(store_path, tmp_path, capsys, make, needle):
    img = tmp_path / "q.png"
    img.write_bytes(make())
    _one_line(capsys, ["search", "--image", str(img), "--store", store_path], needle)


def test_search_images_share_one_pixel_budget(store_path, tmp_path, capsys):
    paths = []
    for i in range(3):  # each under the per-image limit, together past the per-request one
        paths.append(tmp_path / f"q{i}.png")
        paths[-1].write_bytes(png_header(6000, 6000))
    _one_line(capsys, ["search", "--image", *map(str, paths), "--store", store_path],
              "together exceed the 80000000-pixel limit per request")


def test_a_store_from_a_newer_build_is_refused_with_the_same_reason_as_the_api(store_path, capsys):
    from fastapi.testclient import TestClient

    from pipeline.api import create_app
    from pipeline.config.settings import ApiCfg
    from pipeline.store.base import describe

    with Store(store_path) as store:   # what a newer build's migration would leave behind
        store.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    reason = f"store {describe(store_path)} has schema v99, newer than this build"
    for argv in (["tracks"], ["identity", "1"], ["search", "--track", "a"]):
        _one_line(capsys, [*argv, "--store", store_path], reason)
    with TestClient(create_app(ApiCfg(), store_path)) as client:
        for url in ("/tracks", "/identities", "/cameras"):
            resp = client.get(url)
            assert resp.status_code == 503 and reason in resp.json()["detail"], resp.text
        health = client.get("/health").json()
        assert health["status"] == "degraded" and reason in health["store"]["error"]


def test_a_missing_database_or_wrong_credentials_are_one_line_with_the_password_masked(pg_url, capsys):
    base = pg_url.rsplit("/", 1)[0]
    _one_line(capsys, ["tracks", "--store", base + "/no_such_xreid_db"], 'database "no_such_xreid_db" does not exist')
    err = _one_line(capsys, ["tracks", "--store", base.replace("postgres@", "nobody_here:hunter2@") + "/postgres"],
                    'role "nobody_here" does not exist')
    assert "hunter2" not in err and "postgresql://***@127.0.0.1" in err


def test_an_unreachable_database_is_retried_then_one_line(capsys, monkeypatch):
    import time

    from tests.support.services import free_port

    monkeypatch.setenv("XREID_STORE__RETRY_TIMEOUT_S", "1.5")
    t0 = time.monotonic()
    err = _one_line(capsys, ["tracks", "--store", f"postgresql://xreid:pw@127.0.0.1:{free_port()}/xreid"],
                    "unreachable for")
    assert time.monotonic() - t0 >= 1.5, "gave up before the retry budget"
    assert "pw@" not in err and "Connection refused" in err
