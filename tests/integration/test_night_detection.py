"""Detection and tracking on night footage: real vtest.avi rendered as a noisy, soft near-infrared camera
(pipeline.ingest.looks.NightNirLook), the noise estimate and denoiser, the gray-frame motion mask, and cameras that
send frames without a picture (all black, all saturated)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from models.errors import ContractError
from pipeline.camera.modality_front import blank_kind
from pipeline.config.loader import from_dict
from pipeline.config.settings import DenoiseCfg, DetectorCfg, MotionCfg, XreidCfg
from pipeline.detection.conditioning import Denoiser, noise_sigma
from pipeline.detection.motion import ForegroundModel, is_gray
from pipeline.ingest.looks import NightNirLook, render_camera
from pipeline.replay.embedded import Replay, ReplayOptions, parse_camera_spec
from pipeline.store.base import Store
from pipeline.store.modality_events import list_switches
from pipeline.tracking.mot import evaluate, read_mot

NIGHT_FRAMES = 150


@pytest.fixture(scope="module")
def night_video(vtest_path, tmp_path_factory) -> Path:
    """Frames 1-150 of vtest.avi as the issue's night camera: noise sigma 8, soft focus."""
    out = tmp_path_factory.mktemp("night") / "night_s8.avi"
    return render_camera(vtest_path, out, NightNirLook(noise_sigma=8.0, blur=True, gamma=0.8),
                         max_frames=NIGHT_FRAMES, seed=0)


def _replay(spec: str, out: Path, cfg: XreidCfg | None = None, frames: int | None = None) -> dict:
    cfg = cfg or XreidCfg()
    return Replay(cfg, [parse_camera_spec(spec)], ReplayOptions(out_dir=out, start_time=0.0, max_frames=frames,
                                                                 mot_out=True, progress=False)).run()


def test_noise_estimate_follows_added_sensor_noise():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:240, 0:320]
    scene = (60 + 0.3 * xx + 40 * (((xx // 40) + (yy // 40)) % 2)).astype(np.float32)   # ramps and hard edges
    clean = np.clip(scene, 0, 255).astype(np.uint8)
    assert noise_sigma(clean) < 1.0
    for sigma in (4.0, 8.0, 12.0):
        noisy = np.clip(scene + rng.normal(0, sigma, scene.shape), 0, 255).astype(np.uint8)
        assert abs(noise_sigma(noisy) - sigma) < 0.2 * sigma
    with pytest.raises(ContractError):
        noise_sigma(np.zeros((2, 5), np.uint8))


def test_denoiser_passes_clean_frames_and_cleans_noisy_ones(vtest_path):
    cap = cv2.VideoCapture(str(vtest_path))
    ok, day = cap.read()
    cap.release()
    assert ok
    den = Denoiser(DenoiseCfg())
    den.observe(day)                     # daylight: below min_sigma, the very same pixels go to the detector
    assert not den.active and den.apply(day) is day
    night = NightNirLook(noise_sigma=8.0).render(day, np.random.default_rng(1))
    den.observe(night)
    assert den.active and den.sigma > DenoiseCfg().min_sigma
    assert noise_sigma(den.apply(night)[..., 0]) < 0.5 * den.sigma


def test_motion_mask_sees_people_darker_than_the_background_on_gray_frames():
    """MOG2's shadow test files every darker pixel of a gray frame as shadow: not on gray frames."""
    cfg = MotionCfg(detect_shadows=True, scale=1.0, warmup_frames=0, history=50)
    rng = np.random.default_rng(0)
    for colour in (False, True):
        fg = ForegroundModel(cfg)
        for t in range(40):
            gray = np.full((120, 180), 150, np.float32) + rng.normal(0, 3, (120, 180))
            x = 5 + 3 * t
            gray[40:90, x:x + 20] = 95                  # a walker darker than the ground (a shadow's ratio)
            frame = np.clip(gray, 0, 255).astype(np.uint8)
            if colour:                                  # a colour frame: the walker has colour, the ground not
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
                frame[40:90, x:x + 20] = (95, 60, 140)
            fg.update(frame)
        assert fg.gray is (not colour)
        assert fg.fraction(np.array([[x, 40, x + 20, 90]], np.float32))[0] > 0.5


def test_is_gray_tolerates_codec_chroma_noise_only():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 255, (60, 80), np.uint8)
    noisy = np.clip(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR) + rng.integers(-1, 2, (60, 80, 3)), 0, 255).astype(np.uint8)
    assert is_gray(gray) and is_gray(noisy)
    colour = noisy.copy()
    colour[..., 2] = 255 - colour[..., 2]
    assert not is_gray(colour)


def test_ir_camera_defaults_track_people_in_noisy_soft_night_footage(night_video, pets_gt_path, tmp_path):
    """The issue's night camera, with nothing configured: most people are found and tracked."""
    summary = _replay(f"cam1:ir:{night_video}", tmp_path)
    pred = read_mot(summary["cameras"]["cam1"]["outputs"]["mot"])
    m = evaluate(read_mot(pets_gt_path), pred, frames=(1, NIGHT_FRAMES))
    assert m["recall"] >= 0.55 and m["precision"] >= 0.85 and m["mota"] >= 0.45
    # the same frames without denoising: the detector loses people (what the default fixes)
    raw = from_dict(XreidCfg, {"detector": {"denoise": {"method": "none"}}})
    summary = _replay(f"cam1:ir:{night_video}", tmp_path / "raw", cfg=raw)
    m_raw = evaluate(read_mot(pets_gt_path), read_mot(summary["cameras"]["cam1"]["outputs"]["mot"]),
                     frames=(1, NIGHT_FRAMES))
    assert m["recall"] > m_raw["recall"] + 0.05


def test_auto_camera_after_dusk_tracks_night_footage_like_an_ir_camera(night_video, pets_gt_path, tmp_path):
    summary = _replay(f"yard:auto:{night_video}", tmp_path, frames=80)
    cam = summary["cameras"]["yard"]
    with Store(tmp_path / "xreid.sqlite") as store:
        assert [(e.from_modality, e.to_modality) for e in list_switches(store, "yard")] == [(None, "ir")]
    m = evaluate(read_mot(pets_gt_path), read_mot(cam["outputs"]["mot"]), frames=(1, 80))
    assert m["recall"] >= 0.45 and m["precision"] >= 0.85


def test_blank_kind_tells_no_picture_from_a_dark_scene():
    rng = np.random.default_rng(0)
    black = np.clip(rng.normal(4, 8, (288, 384)), 0, 255).astype(np.uint8)    # high gain, lens capped
    assert blank_kind(black) == "black"
    assert blank_kind(cv2.cvtColor(black, cv2.COLOR_GRAY2BGR)) == "black"
    assert blank_kind(np.full((288, 384, 3), 252, np.uint8)) == "saturated"
    dark_scene = black.copy()
    dark_scene[100:160, 200:220] = 90                                          # one lit person
    assert blank_kind(dark_scene) is None
    assert blank_kind(np.full((288, 384), 128, np.uint8)) is None


def test_camera_sending_black_and_saturated_frames_counts_them_and_makes_no_tracks(vtest_path, tmp_path):
    cap = cv2.VideoCapture(str(vtest_path))
    frames = [cap.read()[1] for _ in range(30)]
    cap.release()
    video = tmp_path / "blinded.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (768, 576))
    rng = np.random.default_rng(0)
    for _ in range(40):                                          # illuminator dead: noisy black
        writer.write(np.clip(rng.normal(3, 6, (576, 768, 3)), 0, 255).astype(np.uint8))
    for _ in range(20):                                          # blinded by headlights
        writer.write(np.full((576, 768, 3), 255, np.uint8))
    for f in frames:                                             # then the picture comes back
        writer.write(f)
    writer.release()
    summary = _replay(f"cam1:rgb:{video}", tmp_path / "out")
    cam = summary["cameras"]["cam1"]
    assert cam["bad_frames"] == {"black": 40, "saturated": 20}
    assert cam["frames"] == 30 and cam["detections"] > 30
    pred = read_mot(cam["outputs"]["mot"])
    assert len(pred) and pred[:, 0].min() > 60                   # no track before the picture came back
    # a camera that never sends a picture: counted, no crash, no tracks
    only_black = tmp_path / "black.avi"
    writer = cv2.VideoWriter(str(only_black), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 240))
    for _ in range(25):
        writer.write(np.zeros((240, 320, 3), np.uint8))
    writer.release()
    summary = _replay(f"cam2:ir:{only_black}", tmp_path / "out2")
    cam = summary["cameras"]["cam2"]
    assert cam["bad_frames"] == {"black": 25} and cam["frames"] == 0 and cam["tracks"] == 0


def test_denoise_config_is_checked():
    with pytest.raises(Exception, match="kernel_px"):
        DetectorCfg(denoise=DenoiseCfg(kernel_px=4))
    with pytest.raises(Exception, match="min_sigma"):
        from_dict(XreidCfg, {"detector": {"denoise": {"min_sigma": -1}}})


def test_camera_worker_reports_black_frames_in_its_health_and_metrics(tmp_path):
    """The distributed camera worker: a camera sending only black frames is counted, reported, and ends cleanly."""
    from pipeline.bus import MemoryBus
    from workers.camera import CameraWorker
    from workers.lifecycle import Shutdown

    video = tmp_path / "capped.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 240))
    rng = np.random.default_rng(0)
    for _ in range(15):
        writer.write(np.clip(rng.normal(2, 5, (240, 320, 3)), 0, 255).astype(np.uint8))
    writer.release()
    cfg = from_dict(XreidCfg, {"cameras": [{"id": "capped", "source": str(video), "modality": "auto"}]})
    worker = CameraWorker(cfg, MemoryBus(), Shutdown())
    assert worker.run() == 0
    assert worker.states[0].status.state == "ended"
    assert worker.health().detail["cameras"]["capped"]["frames_dropped"] == {"black": 15}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in worker.samples()}
    assert samples[("xreid_frames_dropped_total", (("camera", "capped"), ("reason", "black")))] == 15
    assert samples[("xreid_frames_total", (("camera", "capped"),))] == 0
    assert samples[("xreid_tracks_total", (("camera", "capped"),))] == 0
