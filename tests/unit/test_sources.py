from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from models.errors import SourceError
from pipeline.ingest.sources import FileSource, Frame


def _read_all(src: FileSource) -> list[Frame]:
    out = []
    while (f := src.read()) is not None:
        out.append(f)
    return out


def test_frames_carry_source_clock_and_index(vtest_path):
    with FileSource(vtest_path, start_time=1000.0, max_frames=12) as src:
        assert src.fps == pytest.approx(10.0) and src.expected_frames == 12
        frames = _read_all(src)
        assert src.status.state == "ended"
    assert [f.index for f in frames] == list(range(12))
    assert [round(f.ts - 1000.0, 3) for f in frames] == [round(i / 10, 3) for i in range(12)]
    assert frames[0].image.shape == (576, 768, 3) and frames[0].image.dtype == np.uint8


def test_stride_skips_frames_and_keeps_their_time(vtest_path):
    with FileSource(vtest_path, start_time=0.0, stride=4, max_frames=20) as src:
        frames = _read_all(src)
        assert src.expected_frames == 5
    assert [f.index for f in frames] == [0, 4, 8, 12, 16]
    assert [round(f.ts, 3) for f in frames] == [0.0, 0.4, 0.8, 1.2, 1.6]


def test_default_clock_is_the_file_mtime(vtest_path):
    with FileSource(vtest_path, max_frames=1) as src:
        assert src.read().ts == pytest.approx(os.stat(vtest_path).st_mtime)


def test_grayscale_frames_for_thermal_cameras(vtest_path):
    with FileSource(vtest_path, max_frames=2, grayscale=True) as src:
        assert src.read().image.shape == (576, 768)


def test_missing_and_non_video_files_are_clear_errors(tmp_path):
    with pytest.raises(SourceError, match="video file not found"):
        FileSource(tmp_path / "absent.mp4")
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is a text file, not a video\n" * 50)
    with pytest.raises(SourceError, match="not a video file FFmpeg can read"):
        FileSource(fake)
    with pytest.raises(SourceError, match="not a file"):
        FileSource(tmp_path)


def test_truncated_video_fails_with_a_reason(vtest_path, tmp_path):
    cut = tmp_path / "cut.avi"
    cut.write_bytes(vtest_path.read_bytes()[:1_500_000])
    with FileSource(cut, stride=25) as src:
        frames = _read_all(src)
        assert frames and src.status.state == "failed"
        assert "truncated or corrupt" in src.status.reason and "of 795 frames" in src.status.reason


def test_any_ffmpeg_container_works(tmp_path):
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (64, 48))
    for i in range(10):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    with FileSource(path, start_time=0.0) as src:
        frames = _read_all(src)
        assert src.status.state == "ended"
    assert len(frames) == 10 and frames[-1].ts == pytest.approx(9 / 25, abs=1e-3)
