"""Embeddings-only mode: the identity chain keeps vectors and timelines, and no crop anywhere."""

from __future__ import annotations

from fastapi.testclient import TestClient

from pipeline.api import create_app
from pipeline.bus import STREAM_CLIPS, MemoryBus
from pipeline.camera.clipbuffer import TrackSummary
from pipeline.config.loader import from_dict
from pipeline.config.settings import ApiCfg, XreidCfg
from pipeline.replay.embedded import _row
from pipeline.store.base import Store
from pipeline.store.crops import crops_dir
from tests.support.reid_helpers import CodeEncoder, make_clip
from tests.support.services import wait_until
from workers.identity_chain import identity_stages, privacy_duty


def _run_chain(tmp_path, embeddings_only: bool):
    cfg = from_dict(XreidCfg, {"retention": {"embeddings_only": embeddings_only}, "reid": {"max_wait_ms": 0},
                               "matcher": {"min_clips": 1}})
    path = tmp_path / ("eo" if embeddings_only else "full") / "xreid.sqlite"
    bus = MemoryBus()
    with Store(path) as store:
        stages = identity_stages(cfg, CodeEncoder(), bus, store, privacy_duty(cfg, store, bus, "t"))
        for i in range(3):
            bus.publish(STREAM_CLIPS, make_clip("cam1", f"u{i}", identity=i, t0=1000.0 + 20 * i).to_bytes())
        wait_until(lambda: [s.poll() for s in stages] and
                   store.execute("SELECT count(*) FROM tracks")[0][0] == 3, what="three tracks stored")
        thumbs = store.execute("SELECT count(*) FROM tracks WHERE thumbnail IS NOT NULL")[0][0]
        vectors = store.execute("SELECT count(*) FROM tracks WHERE embedding IS NOT NULL")[0][0]
    return path, thumbs, vectors


def test_embeddings_only_keeps_vectors_and_no_crop(tmp_path):
    path, thumbs, vectors = _run_chain(tmp_path, embeddings_only=True)
    assert (thumbs, vectors) == (0, 3)
    assert not crops_dir(path).exists() or not any(crops_dir(path).iterdir())
    with TestClient(create_app(ApiCfg(), path)) as c:
        ident = c.get("/identities").json()["items"][0]
        assert ident["thumbnails"] == {"rgb": None, "ir": None}, "the dashboard shows placeholders"
        assert c.get(f"/identities/{ident['identity_id']}").json()["n_tracks"] == 1
    full, thumbs, vectors = _run_chain(tmp_path, embeddings_only=False)
    assert (thumbs, vectors) == (3, 3) and any(crops_dir(full).iterdir()), "the same chain keeps crops by default"


def test_embeddings_only_replay_rows_carry_no_thumbnail():
    s = TrackSummary("cam1-r-1", "cam1", "rgb", 1.0, 2.0, 10, 1, b"\xff\xd8jpeg", True)
    assert _row(s).thumbnail == b"\xff\xd8jpeg" and _row(s, keep_thumbnail=False).thumbnail is None
