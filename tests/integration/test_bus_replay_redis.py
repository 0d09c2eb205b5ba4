"""``xreid replay --redis URL`` pushes recorded footage into a running deployment's Redis."""

from __future__ import annotations

import threading

import pytest

from pipeline.bus import GROUP_REID, STREAM_CLIPS, create_bus
from pipeline.bus.messages import Clip
from pipeline.config.loader import from_dict
from pipeline.config.settings import CameraCfg, XreidCfg
from pipeline.replay.embedded import Replay, ReplayOptions
from tests.support.services import wait_until
from workers.cli import main
from workers.commands.replay import deployment_bus

CLIPS = {"seq_len": 4, "segment_seconds": 1.0, "min_track_frames": 3}


def _clips_in_stream(url: str) -> list[Clip]:
    bus = create_bus(url)
    bus.ensure_group(STREAM_CLIPS, "check")
    out = []
    while batch := bus.read(STREAM_CLIPS, "check", "t", count=100):
        out.extend(Clip.from_bytes(m.data) for m in batch)
    bus.close()
    return out


def test_replay_cli_publishes_clips_to_redis_instead_of_the_embedded_bus(redis_server, vtest_path, tmp_path,
                                                                        monkeypatch, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("clips: {seq_len: 4, segment_seconds: 1.0, min_track_frames: 3}\n")
    monkeypatch.setenv("XREID_REDIS_URL", redis_server.url)  # `--redis` without a URL reads it from here
    monkeypatch.setenv("XREID_LOG_LEVEL", "WARNING")
    rc = main(["replay", "--redis", "--config", str(cfg), "--camera", f"cam1:rgb:{vtest_path}", "--max-frames", "30",
               "--out", str(tmp_path / "out"), "--no-progress"])
    assert rc == 0
    clips = _clips_in_stream(redis_server.url)
    assert clips and all(c.camera_id == "cam1" and c.seq_len == 4 for c in clips)
    assert f"{len(clips)} clips" in capsys.readouterr().out
    assert not (tmp_path / "out" / "identities.json").exists(), "no local re-ID: the deployment does it"


def test_replay_into_redis_waits_while_the_deployment_is_behind(redis_server, vtest_path, tmp_path):
    cfg = from_dict(XreidCfg, {"clips": CLIPS, "bus": {"backlog_high": 2, "backlog_low": 1}})
    bus = deployment_bus(redis_server.url, cfg)
    replay = Replay(cfg, [CameraCfg(id="cam1", source=str(vtest_path))],
                    ReplayOptions(out_dir=tmp_path / "out", max_frames=60, progress=False), bus=bus)
    summary: dict = {}
    producer = threading.Thread(target=lambda: summary.update(replay.run()))
    producer.start()
    try:
        wait_until(lambda: bus.backpressure.shedding, timeout=60, interval=0.05, what="replay held back")
        held_at = bus.length(STREAM_CLIPS)
        assert held_at <= 2 + 3, "publishing stopped near backlog_high instead of flooding Redis"
        assert producer.is_alive()
    finally:
        consumer_stop = threading.Event()

        def consume() -> None:  # the "deployment" catches up
            while not consumer_stop.is_set():
                msgs = bus.read(STREAM_CLIPS, GROUP_REID, "reid-t", count=10, block_ms=100)
                bus.ack(STREAM_CLIPS, GROUP_REID, [m.id for m in msgs])

        consumer = threading.Thread(target=consume)
        consumer.start()
        producer.join(timeout=120)
        consumer_stop.set()
        consumer.join(timeout=10)
    assert not producer.is_alive()
    assert bus.backpressure.waited_s > 0 and bus.backpressure.skipped == 0, "slowed down, nothing skipped"
    assert bus.length(STREAM_CLIPS) == summary["clips"] > 2, "every clip reached Redis"
    bus.close()


def test_replay_redis_without_any_url_is_a_one_line_error(monkeypatch, capsys, vtest_path, tmp_path):
    monkeypatch.delenv("XREID_REDIS_URL", raising=False)
    rc = main(["replay", "--redis", "--camera", f"cam1:rgb:{vtest_path}", "--out", str(tmp_path), "--no-progress"])
    assert rc == 2
    assert "no Redis URL" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["http://x", "redis:/missing-slashes"])
def test_replay_redis_rejects_non_redis_urls(url, capsys, vtest_path, tmp_path):
    assert main(["replay", "--redis", url, "--camera", f"cam1:rgb:{vtest_path}", "--out", str(tmp_path)]) == 2
    assert "redis://" in capsys.readouterr().err
