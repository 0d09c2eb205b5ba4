"""Forget while the matcher runs: the matcher executes the request, drops the person from its gallery,
and clips of the erased track still in flight do not bring it back.

First in one process (``MatcherStage`` on ``MemoryBus`` in a thread, as in an embedded replay), then
distributed: a real redis-server, a real ``xreid matcher`` process, ``xreid forget --redis`` as a process.
Both on a SQLite file and on a PostgreSQL database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from pipeline.bus import STREAM_EMBEDDINGS, MemoryBus, create_bus
from pipeline.config.settings import BusCfg, MatcherCfg, PairThresholds
from pipeline.matcher.forget import Eraser, request_forget
from pipeline.matcher.matcher import Matcher
from pipeline.matcher.privacy import PrivacyDuty
from pipeline.matcher.stage import MatcherStage
from pipeline.store.base import Store
from pipeline.store.crops import CropKeeper, crops_root
from pipeline.store.erasure import Selector
from tests.support.fault_helpers import REPO, WorkerProc
from tests.support.matcher_helpers import emb, view
from tests.support.privacy_helpers import references, unique_crop
from tests.support.services import wait_until

CFG = MatcherCfg(thresholds=PairThresholds(rgb_rgb=0.6, ir_ir=0.6, rgb_ir=0.45), min_clips=1, min_gap=0.0,
                 idle_block_ms=20)


def thumb(e, seed: int):
    from dataclasses import replace

    return replace(e, thumbnail=unique_crop(seed))


def tracks_of(store_path, uids) -> list[str]:
    with Store(store_path, readonly=True) as s:
        return [u for u in uids if s.execute("SELECT 1 FROM tracks WHERE track_uid = ?", (u,))]


def identity_of(store_path, uid) -> int | None:
    with Store(store_path, readonly=True) as s:
        rows = s.execute("SELECT identity_id FROM tracks WHERE track_uid = ?", (uid,))
    return rows[0][0] if rows else None


def test_forget_during_an_embedded_run_is_executed_by_the_running_matcher(tmp_path, store_url):
    path = store_url
    crops = crops_root(path, None, tmp_path)   # SQLite: beside the file; PostgreSQL: the run's folder
    bus, store = MemoryBus(), Store(path)
    eraser = Eraser(store, CropKeeper(crops), bus, "matcher-embedded")
    stage = MatcherStage(bus, store, Matcher(CFG), CFG, crops=eraser.crops, privacy=PrivacyDuty(eraser))
    stop = threading.Event()
    runner = threading.Thread(target=lambda: [stage.step() for _ in iter(stop.is_set, True)], daemon=True)
    runner.start()
    try:
        for i, (cam, uid, person) in enumerate([("cam1", "a-1", 0), ("cam2", "a-2", 0), ("cam1", "b-1", 1)]):
            bus.publish(STREAM_EMBEDDINGS, thumb(emb(cam, uid, view(person, 0.95, 8 + i), 100 + 10 * i,
                                                     105 + 10 * i), i).to_bytes())
        wait_until(lambda: len(tracks_of(path, ["a-1", "a-2", "b-1"])) == 3, what="three tracks stored")
        person = identity_of(path, "a-1")
        assert identity_of(path, "a-2") == person != identity_of(path, "b-1")
        with Store(path) as requester:   # another connection, as `xreid forget` would open
            outcome = request_forget(requester, Selector("identity", str(person)), "test",
                                     lambda: Eraser(requester, None, None, "requester"), wait_s=10)
        assert outcome.state == "done" and outcome.erasure.executed_by == "matcher-embedded"
        assert outcome.erasure.n_tracks == 2
        # a late clip of an erased track, then the same person seen anew on a third camera
        bus.publish(STREAM_EMBEDDINGS, thumb(emb("cam1", "a-1", view(0, 0.95, 12), 106, 108, segment=1), 7).to_bytes())
        bus.publish(STREAM_EMBEDDINGS, emb("cam3", "a-3", view(0, 0.95, 13), 200, 205).to_bytes())
        wait_until(lambda: tracks_of(path, ["a-3"]), what="the new sighting stored")
        wait_until(lambda: stage.forgotten_dropped == 1, what="the late clip dropped")
        assert tracks_of(path, ["a-1", "a-2"]) == []
        assert identity_of(path, "a-3") > person, "a new identity: the erased one is not in the gallery any more"
        assert CropKeeper(crops).crops("a-1") == []
    finally:
        stop.set()
        runner.join(timeout=10)
        store.close()
    assert references(path, ["a-1", "a-2"], [1, 2], [person], skip_tables=("erasures",)) == []


def _metric(worker: WorkerProc, name: str) -> float:
    for line in worker.metrics().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return 0.0


def test_forget_during_a_live_distributed_run(tmp_path, redis_server, store_url):
    store_path = store_url
    env = {"XREID_REDIS_URL": redis_server.url, "XREID_MATCHER__MIN_CLIPS": "1", "XREID_MATCHER__MIN_GAP": "0",
           "XREID_MATCHER__THRESHOLDS__RGB_RGB": "0.6", "XREID_MATCHER__IDLE_BLOCK_MS": "50",
           "XREID_STORE__CROPS_DIR": str(tmp_path / "crops")}   # a PostgreSQL store's crops: not under the repo
    matcher = WorkerProc(["matcher", "--store", str(store_path), "--consumer", "m-live"], env, tmp_path / "m.log")
    bus = create_bus(redis_server.url, BusCfg())
    matcher.start()
    try:
        matcher.wait_healthy()
        sent = [("cam1", "p-1", 0), ("cam2", "p-2", 0), ("cam1", "q-1", 1)]
        for i, (cam, uid, person) in enumerate(sent):
            bus.publish(STREAM_EMBEDDINGS, thumb(emb(cam, uid, view(person, 0.95, 8 + i), 100 + 10 * i,
                                                     105 + 10 * i), i).to_bytes())
        # an embedding of p-1 the matcher refuses (an rgb track cannot turn ir): dead-lettered with p-1 in it
        bus.publish(STREAM_EMBEDDINGS, emb("cam1", "p-1", view(0, 0.95, 9), 106, 107, modality="ir",
                                           segment=3).to_bytes())
        wait_until(lambda: len(tracks_of(store_path, ["p-1", "p-2", "q-1"])) == 3 and
                   len(bus.dead_letters(STREAM_EMBEDDINGS)) == 1, timeout=30, what="tracks stored, one dead letter")
        person = identity_of(store_path, "p-1")
        done = subprocess.run([sys.executable, "-m", "workers.cli", "forget", "--identity", str(person), "--store",
                               str(store_path), "--wait", "30", "--json", "--redis"], cwd=REPO, capture_output=True, text=True,
                              timeout=60, env={**os.environ, **env})
        assert done.returncode == 0, done.stderr
        assert '"executed_by": "m-live"' in done.stdout and '"n_dead": 1' in done.stdout, done.stdout
        assert bus.dead_letters(STREAM_EMBEDDINGS) == [], "the dead letter carrying the erased track is gone"
        bus.publish(STREAM_EMBEDDINGS, emb("cam2", "p-2", view(0, 0.95, 14), 116, 118, segment=1).to_bytes())
        bus.publish(STREAM_EMBEDDINGS, emb("cam3", "p-3", view(0, 0.95, 13), 300, 305).to_bytes())
        wait_until(lambda: tracks_of(store_path, ["p-3"]), timeout=30, what="the new sighting stored")
        wait_until(lambda: _metric(matcher, "xreid_embeddings_forgotten_total") == 1, timeout=10,
                   what="the late clip of an erased track dropped")
        assert tracks_of(store_path, ["p-1", "p-2"]) == []
        assert identity_of(store_path, "p-3") > person and identity_of(store_path, "q-1") is not None
        assert _metric(matcher, "xreid_erasures_executed_total") == 1
    finally:
        matcher.sigterm()
        matcher.proc.wait(timeout=15)
        bus.close()
    assert matcher.proc.returncode == 0, matcher.output()[-2000:]
    assert references(store_path, ["p-1", "p-2"], [1, 2], [person], skip_tables=("erasures",)) == []
    again = subprocess.run([sys.executable, "-m", "workers.cli", "forget", "--identity", str(person), "--store",
                            str(store_path), "--wait", "1"], cwd=REPO, capture_output=True, text=True, timeout=60,
                           env={**os.environ, **env})
    assert again.returncode == 0 and "already erased" in again.stdout, again.stdout + again.stderr
    with Store(store_path, readonly=True) as s:
        assert s.execute("SELECT count(*) FROM writer_lease")[0][0] == 0, "a clean stop gives the lease up"
