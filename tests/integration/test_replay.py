from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from models.errors import ConfigError, SourceError
from pipeline.bus import STREAM_CLIPS, MemoryBus
from pipeline.bus.messages import Clip
from pipeline.config.loader import from_dict
from pipeline.config.settings import XreidCfg
from pipeline.ingest.pseudo_thermal import render_video
from pipeline.replay.embedded import Replay, ReplayOptions, parse_camera_spec, with_camera_settings
from pipeline.store.base import Store
from pipeline.store.tracks import count_tracks, list_tracks
from pipeline.tracking.mot import read_mot

ROOT = Path(__file__).resolve().parents[2]
XREID = [sys.executable, "-m", "workers.cli"]
FAST = {"detector": {"hog_upscale": 1.0}, "clips": {"min_track_frames": 3, "segment_seconds": 1.0}}


@pytest.fixture(scope="module")
def cameras(vtest_path, tmp_path_factory):
    """The first 24 frames of vtest.avi as an RGB MP4, and its SYNTHETIC thermal rendering."""
    d = tmp_path_factory.mktemp("footage")
    rgb = d / "rgb.mp4"
    cap = cv2.VideoCapture(str(vtest_path))
    writer = cv2.VideoWriter(str(rgb), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (768, 576))
    for _ in range(24):
        ok, frame = cap.read()
        assert ok
        writer.write(frame)
    writer.release()
    cap.release()
    return rgb, render_video(rgb, d / "ir.avi")


class Recorder:
    """A downstream stage that consumes clips from the bus, like the re-ID stage will."""

    def __init__(self, bus: MemoryBus) -> None:
        self.bus, self.polls, self.drains, self.clips = bus, 0, 0, []

    def poll(self) -> int:
        self.polls += 1
        msgs = self.bus.read(STREAM_CLIPS, "rec", "c1", count=100)
        self.clips += [Clip.from_bytes(m.data) for m in msgs]
        self.bus.ack(STREAM_CLIPS, "rec", [m.id for m in msgs])
        return len(msgs)

    def drain(self) -> int:
        self.drains += 1
        return self.poll()


def test_two_cameras_replay_into_store_files_and_bus(cameras, tmp_path):
    rgb, ir = cameras
    cfg = from_dict(XreidCfg, FAST)
    cams = [parse_camera_spec(f"cam1:rgb:{rgb}"), parse_camera_spec(f"cam2:ir:{ir}")]
    bus = MemoryBus()
    rec = Recorder(bus)
    options = ReplayOptions(out_dir=tmp_path, start_time=1_700_000_000.0, max_frames=20, annotate=True,
                            mot_out=True, progress=False)
    summary = Replay(cfg, cams, options, bus=bus, downstream=[rec]).run()

    assert summary["frames"] == 40 and summary["cameras"]["cam2"]["modality"] == "ir"
    assert summary["cameras"]["cam1"]["detections"] > 40
    for cam in ("cam1", "cam2"):
        assert summary["cameras"][cam]["status"] == "ended"
        assert set(summary["cameras"][cam]["fps"]) >= {"decode", "detect", "track", "pipeline"}
    assert rec.polls >= 5 and rec.drains == 1
    assert len(rec.clips) == summary["clips"] > 0 and bus.pending(STREAM_CLIPS, "rec") == 0
    assert {c.camera_id for c in rec.clips} == {"cam1", "cam2"}
    assert all(c.modality == ("ir" if c.camera_id == "cam2" else "rgb") for c in rec.clips)
    assert all(1_700_000_000.0 <= c.t_start <= c.t_end <= 1_700_000_002.0 for c in rec.clips)

    lines = [json.loads(x) for x in (tmp_path / "tracks.jsonl").read_text().splitlines()]
    with Store(tmp_path / "xreid.sqlite") as store:
        assert count_tracks(store) == len(lines) == summary["tracks"] > 0
        assert {t.track_uid for t in list_tracks(store)} == {x["track_uid"] for x in lines}
        assert all(t.has_thumbnail for t in list_tracks(store))
    assert json.loads((tmp_path / "summary.json").read_text())["run_id"] == summary["run_id"]
    mot = read_mot(tmp_path / "cam1.mot.txt")
    assert mot[:, 0].min() >= 1 and mot[:, 0].max() <= 20
    cap = cv2.VideoCapture(str(tmp_path / "cam2.annotated.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 20
    cap.release()


def test_track_uids_stay_unique_across_runs(cameras, tmp_path):
    rgb, _ = cameras
    cfg = from_dict(XreidCfg, FAST)
    uids = []
    for _ in range(2):
        options = ReplayOptions(out_dir=tmp_path, max_frames=8, progress=False)
        Replay(cfg, [parse_camera_spec(f"cam1:rgb:{rgb}")], options).run()
        uids.append({json.loads(x)["track_uid"] for x in (tmp_path / "tracks.jsonl").read_text().splitlines()})
    assert uids[0] and uids[1] and not uids[0] & uids[1]
    with Store(tmp_path / "xreid.sqlite") as store:
        assert count_tracks(store) == len(uids[0]) + len(uids[1])


def test_bad_camera_specs_and_duplicate_ids(cameras, tmp_path):
    rgb, _ = cameras
    with pytest.raises(ConfigError, match="ID:MODALITY:PATH"):
        parse_camera_spec("cam1:rgb")
    with pytest.raises(ConfigError, match="unknown modality 'thermal'"):
        parse_camera_spec(f"cam1:thermal:{rgb}")
    assert parse_camera_spec("c:rgb:C:/videos/a.mp4").source == "C:/videos/a.mp4"
    with pytest.raises(ConfigError, match="unique"):
        Replay(XreidCfg(), [parse_camera_spec(f"a:rgb:{rgb}")] * 2, ReplayOptions(out_dir=tmp_path))
    with pytest.raises(SourceError, match="not found"):
        Replay(XreidCfg(), [parse_camera_spec(f"a:rgb:{rgb}"), parse_camera_spec("b:ir:/nope.mp4")],
               ReplayOptions(out_dir=tmp_path))


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "XREID_DETECTOR__HOG_UPSCALE": "1.0", "PYTHONPATH": str(ROOT)}
    return subprocess.run([*XREID, "replay", *args, "--no-progress"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def _one_line_error(proc: subprocess.CompletedProcess, expected: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("xreid replay: error:") and expected in lines[0], proc.stderr


def test_cli_bad_inputs_give_one_line_errors(cameras, vtest_path, tmp_path):
    rgb, _ = cameras
    _one_line_error(_cli("--camera", f"cam1:rgb:{tmp_path / 'missing.mp4'}", cwd=tmp_path), "not found")
    fake = tmp_path / "fake.mp4"
    fake.write_text("plain text pretending to be a video\n" * 100)
    _one_line_error(_cli("--camera", f"cam1:rgb:{fake}", cwd=tmp_path), "not a video file")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(vtest_path.read_bytes()[:1_500_000])
    _one_line_error(_cli("--camera", f"cam1:rgb:{cut}", "--stride", "40", "--out", str(tmp_path / "o"),
                         "--no-identities", cwd=tmp_path), "truncated or corrupt")
    _one_line_error(_cli("--camera", f"cam1:uv:{rgb}", cwd=tmp_path), "unknown modality 'uv'")
    _one_line_error(_cli("--camera", f"cam1:rgb:{rgb}", "--start-time", "yesterday", cwd=tmp_path), "ISO 8601")


def test_cli_replays_two_cameras(cameras, tmp_path):
    rgb, ir = cameras
    out = tmp_path / "out"
    proc = _cli("--camera", f"cam1:rgb:{rgb}", "--camera", f"cam2:ir:{ir}", "--max-frames", "6", "--out", str(out),
                "--start-time", "2024-05-01T12:00:00Z", "--mot-out", "--no-identities", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "cam1" in proc.stdout and "cam2" in proc.stdout and str(out / "summary.json") in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 12 and summary["cameras"]["cam1"]["outputs"]["mot"].endswith("cam1.mot.txt")


def test_per_camera_detector_settings_come_from_the_config(cameras, tmp_path):
    rgb, ir = cameras
    cfg = from_dict(XreidCfg, {"cameras": [{"id": "cam2", "source": "unused", "modality": "ir",
                                            "detector": {"conf": 0.9, "hog_upscale": 1.0}}]})
    cams = with_camera_settings([parse_camera_spec(f"cam1:rgb:{rgb}"), parse_camera_spec(f"cam2:ir:{ir}")],
                                cfg.cameras)
    assert cams[0].detector is None and cams[1].detector.conf == 0.9 and cams[1].source == str(ir)
    assert with_camera_settings([], cfg.cameras) == cfg.cameras
    replay = Replay(from_dict(XreidCfg, FAST), cams, ReplayOptions(out_dir=tmp_path, progress=False))
    assert replay._cams[1].cfg.detector.conf == 0.9
    assert replay._cams[0].proc.detector is not replay._cams[1].proc.detector  # cam2 got its own detector
    replay.store.close()


def test_an_unwritable_out_is_one_line_and_exit_2(cameras, tmp_path):
    rgb, _ = cameras
    _one_line_error(_cli("--camera", f"c:rgb:{rgb}", "--no-identities", "--out", "/sys/x", cwd=tmp_path),
                    "--out '/sys/x': cannot write an output folder there")


@pytest.mark.parametrize("command", ["replay", "demo"])
def test_an_out_that_is_a_file_or_under_one_is_refused_before_any_work(cameras, tmp_path, capsys, command):
    from workers.cli import main

    rgb, _ = cameras
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder\n")
    spec = ["--camera", f"c:rgb:{rgb}"] if command == "replay" else []
    for out in (a_file, a_file / "sub"):
        assert main([command, *spec, "--no-identities", "--no-progress", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"xreid {command}: error: --out '{out}'" in err, err
    assert a_file.read_text() == "not a folder\n"


@pytest.mark.parametrize("cam_id", ["cam\n1", "a/b", "..", ".hidden", "-x", "cam 1", "c\x00", "x" * 65, "ü"])
def test_camera_ids_that_could_escape_a_file_name_are_refused(cameras, cam_id):
    rgb, _ = cameras
    with pytest.raises(ConfigError, match="must match"):
        parse_camera_spec(f"{cam_id}:rgb:{rgb}")


@pytest.mark.parametrize("argv", [
    ["train", "--config", str(ROOT / "configs" / "train-tiny-ci.yaml"), "--data", "nowhere"],
    ["eval", "--checkpoint", "none.pt", "--data", "nowhere"],
    ["synth"],
])
def test_train_eval_and_synth_refuse_an_unwritable_out_before_loading_anything(tmp_path, capsys, argv):
    from workers.cli import main

    a_file = tmp_path / "taken"
    a_file.write_text("x")
    assert main([*argv, "--out", str(a_file / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--out '{a_file / 'sub'}': cannot write an output folder there" in err, err


def test_replay_into_a_postgresql_store_writes_there_and_no_sqlite_file(cameras, tmp_path, pg_url, capsys):
    import yaml

    from workers.cli import main

    rgb, _ = cameras
    cfg = tmp_path / "fast.yaml"
    cfg.write_text(yaml.safe_dump(FAST))
    out = tmp_path / "out"
    assert main(["replay", "--camera", f"cam1:rgb:{rgb}", "--max-frames", "24", "--out", str(out), "--store", pg_url,
                 "--config", str(cfg), "--no-progress", "--start-time", "2024-05-01T12:00:00Z"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["outputs"]["store"].startswith("postgresql://***@127.0.0.1")
    assert not list(out.glob("*.sqlite")), "nothing written beside the run"
    with Store(pg_url, readonly=True) as store:
        stored = {t.track_uid for t in list_tracks(store)}
    assert stored and len(stored) == summary["tracks"]
    capsys.readouterr()
    assert main(["tracks", "--store", pg_url, "--json"]) == 0
    assert {r["track_uid"] for r in json.loads(capsys.readouterr().out)} == stored
    database = pg_url.rsplit("/", 1)[1]
    assert summary["identities"]["clips_embedded"] > 0
    assert list((out / f"{database}.crops").rglob("*.jpg")), "crops of a PostgreSQL store go under --out"
