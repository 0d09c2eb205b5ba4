"""RtspSource against a real GStreamer RTSP server on loopback: reading, reconnecting, redaction."""

from __future__ import annotations

import logging
import time

import pytest

from models.errors import SourceError
from pipeline.config.redact import redact_text, redact_url
from pipeline.config.settings import RtspCfg
from pipeline.ingest.rtsp import RtspSource, is_rtsp_url
from tests.support.rtsp_helpers import RtspServer, make_mjpeg_footage, read_until
from tests.support.services import free_port, wait_until

FAST = RtspCfg(open_timeout_s=5.0, read_timeout_s=2.0, backoff_initial_s=0.1, backoff_max_s=0.5)
PASSWORD = "hunter2-Secret"


@pytest.fixture(scope="session")
def rtsp_footage(vtest_path, tmp_path_factory):
    """30 s of the real vtest.avi as MJPEG (the RTP payload the test server sends)."""
    return make_mjpeg_footage(vtest_path, tmp_path_factory.mktemp("rtsp") / "vtest-mjpeg.avi", max_frames=300)


@pytest.fixture
def rtsp_server(rtsp_footage):
    server = RtspServer(rtsp_footage)
    server.start()
    yield server
    server.stop()


def test_redact_url_hides_credentials_and_secret_query_values():
    assert redact_url("rtsp://admin:pw@10.0.0.5:554/Streaming/1") == "rtsp://***@10.0.0.5:554/Streaming/1"
    assert redact_url("rediss://app:tok@redis.example:6380/0") == "rediss://***@redis.example:6380/0"
    assert redact_url("redis://:only-pass@h/0") == "redis://***@h/0"
    assert redact_url("rtsp://cam/live?channel=1&password=x&token=y") == "rtsp://cam/live?channel=1&password=***&token=***"
    assert redact_url("rtsp://cam.local/live") == "rtsp://cam.local/live"
    assert redact_url("/videos/a.mp4") == "/videos/a.mp4"
    text = "Could not open rtsp://u:p%40ss@[::1]:8554/x?auth=abc (timeout)"
    assert "p%40ss" not in redact_text(text) and "abc" not in redact_text(text) and "[::1]:8554" in redact_text(text)


def test_non_rtsp_urls_are_refused_without_leaking_the_password():
    assert is_rtsp_url("RTSP://h/x") and is_rtsp_url("rtsps://h/x") and not is_rtsp_url("/tmp/a.mp4")
    with pytest.raises(SourceError) as err:
        RtspSource(f"http://u:{PASSWORD}@h/x")
    assert PASSWORD not in str(err.value)
    with pytest.raises(SourceError, match="no host"):
        RtspSource("rtsp:///path")


def test_reads_frames_from_a_real_rtsp_server(rtsp_server):
    statuses = []
    with RtspSource(rtsp_server.url, FAST, on_status=statuses.append) as src:
        frames = read_until(src, lambda fs: len(fs) >= 10, timeout=20, what="10 frames")
        assert src.status.state == "connected"
        assert frames[0].image.shape == (576, 768, 3)
        assert [f.index for f in frames] == list(range(len(frames)))
        assert all(b.ts >= a.ts for a, b in zip(frames, frames[1:], strict=False))
    assert [s.state for s in statuses] == ["connected", "ended"]


def test_reconnects_by_itself_when_the_server_dies_and_returns(rtsp_server):
    statuses = []
    src = RtspSource(rtsp_server.url, FAST, on_status=statuses.append)
    before = read_until(src, lambda fs: len(fs) >= 5, timeout=20, what="frames before the outage")
    rtsp_server.kill()
    wait_until(lambda: src.read() is None and src.status.state == "reconnecting", timeout=15,
               interval=0.0, what="source noticing the outage")
    assert "stream lost" in src.status.reason or "cannot open" in src.status.reason
    rtsp_server.start()
    after = read_until(src, lambda fs: len(fs) >= 5, timeout=30, what="frames after the restart")
    assert src.status.state == "connected" and src.connections == 2 and src.reconnects == 1
    indices = [f.index for f in before + after]
    assert indices == sorted(indices) and len(set(indices)) == len(indices), "indices keep counting"
    assert after[0].ts > before[-1].ts
    states = [s.state for s in statuses]
    assert states[0] == "connected" and "reconnecting" in states and states[-1] == "connected"
    src.close()


def test_unreachable_camera_backs_off_then_fails_after_max_reconnects(caplog):
    caplog.set_level(logging.INFO)
    url = f"rtsp://viewer:{PASSWORD}@127.0.0.1:{free_port()}/cam"
    cfg = RtspCfg(open_timeout_s=1.0, read_timeout_s=1.0, backoff_initial_s=0.05, backoff_max_s=0.2, max_reconnects=3)
    src = RtspSource(url, cfg)
    attempts = []
    wait_until(lambda: (attempts.append(src.read()), src.status.state == "failed")[1], timeout=30, interval=0.0,
               what="source giving up")
    assert "gave up after 3 reconnect attempts" in src.status.reason
    assert src.read() is None and src.connections == 0
    assert PASSWORD not in caplog.text and "viewer" not in caplog.text
    assert src.name == f"rtsp://***@127.0.0.1:{url.rsplit(':', 1)[1]}"


def test_credentials_work_and_are_redacted_everywhere(rtsp_footage, caplog):
    caplog.set_level(logging.DEBUG)
    server = RtspServer(rtsp_footage, user="viewer", password=PASSWORD)
    server.start()
    try:
        with RtspSource(server.url, FAST) as src:
            read_until(src, lambda fs: len(fs) >= 3, timeout=20, what="frames with credentials")
            assert PASSWORD not in src.name
        wrong = server.url.replace(PASSWORD, PASSWORD + "-wrong")
        bad = RtspSource(wrong, RtspCfg(open_timeout_s=3.0, backoff_initial_s=0.05, max_reconnects=1))
        wait_until(lambda: bad.read() is None and bad.status.state == "failed", timeout=20, interval=0.0,
                   what="wrong password refused")
        assert PASSWORD not in bad.status.reason
    finally:
        server.stop()
    assert PASSWORD not in caplog.text


def test_a_source_far_behind_live_skips_buffered_frames_and_says_so(rtsp_server):
    """Processing slower than the stream: the injected clock stands 2.5 s ahead of the stream's clock."""
    frozen: list[float | None] = [None]
    cfg = RtspCfg(open_timeout_s=5.0, read_timeout_s=2.0, max_lag_s=2.0)
    with RtspSource(rtsp_server.url, cfg, clock=lambda: frozen[0] if frozen[0] is not None else time.time()) as src:
        first = read_until(src, lambda fs: len(fs) >= 3, timeout=20, what="first frames")
        assert src.skipped_behind == 0
        frozen[0] = first[-1].ts + 2.5
        (caught_up,) = read_until(src, lambda fs: len(fs) >= 1, timeout=20, what="a frame after catching up")
        assert src.skipped_behind >= 10, "about 1.5 s of 10 fps stream skipped"
        assert caught_up.index == first[-1].index + src.skipped_behind + 1, "indices count skipped frames"
        assert frozen[0] - caught_up.ts <= 1.0, "back within max_lag_s / 2"
        assert [f.ts for f in first] == sorted(f.ts for f in first) and caught_up.ts > first[-1].ts
