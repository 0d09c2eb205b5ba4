"""Thermal input formats: palettes back to intensity, 16-bit raw through AGC or a fixed window, bad frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.errors import ConfigError, ContractError, SourceError
from pipeline.config.loader import from_dict
from pipeline.config.settings import ThermalCfg
from pipeline.ingest.thermal import (
    FALSE_COLOUR_PALETTES,
    GRAY_PALETTES,
    ImageSequenceSource,
    PaletteInverter,
    RawToGray,
    ThermalDecoder,
    palette_bgr,
    render_palette,
)
from tests.support.thermal_scenes import box_iou, gt_boxes, heat_detector, render_scene


@pytest.fixture(scope="module")
def scene():
    return render_scene(40, seed=0, n_people=3)


def to_raw(intensity: np.ndarray, rng: np.random.Generator, noise_counts: float = 4.0) -> np.ndarray:
    """White-hot gray → radiometric 16-bit counts (centi-kelvin): gray 0 = 10 C, gray 255 = 40 C."""
    temp_c = 10.0 + intensity.astype(np.float64) * (30.0 / 255.0)
    raw = (temp_c + 273.15) / 0.01 + rng.normal(0, noise_counts, intensity.shape)
    return np.clip(np.round(raw), 0, 65535).astype(np.uint16)


def matched(a: np.ndarray, b: np.ndarray, iou: float = 0.7) -> bool:
    """Same number of boxes, each with a partner above ``iou``."""
    if len(a) != len(b):
        return False
    return len(a) == 0 or bool((box_iou(a, b).max(axis=1) >= iou).all())


@pytest.mark.parametrize("palette", GRAY_PALETTES + FALSE_COLOUR_PALETTES)
def test_every_palette_inverts_back_to_intensity(palette):
    ramp = np.tile(np.arange(256, dtype=np.uint8), (8, 1))
    intensity, off = PaletteInverter(palette, 40.0).invert(render_palette(ramp, palette))
    assert off == 0.0
    assert np.abs(intensity.astype(int) - ramp).max() <= 2     # 64^3 colour cube: within 2 levels


def test_palettes_are_distinct_and_hot_is_last():
    for name in FALSE_COLOUR_PALETTES:
        assert palette_bgr(name).shape == (256, 3)
    for name in ("ironbow", "hot", "inferno", "magma"):             # dark-to-bright palettes: hot is bright
        lut = palette_bgr(name).astype(float)
        assert lut[-1].sum() > lut[128].sum() > lut[0].sum()
    assert not np.array_equal(palette_bgr("ironbow"), palette_bgr("inferno"))
    with pytest.raises(ConfigError, match="unknown thermal palette"):
        palette_bgr("sepia")


def test_white_hot_black_hot_and_ironbow_give_the_same_detections(scene):
    det = heat_detector()
    decoders = {p: ThermalDecoder("cam-t", ThermalCfg(palette=p)) for p in ("white_hot", "black_hot", "ironbow")}
    n_dets = 0
    for t in range(0, 40, 3):
        white = scene.frames[t]
        sent = {
            "white_hot": cv2.cvtColor(white, cv2.COLOR_GRAY2BGR),
            "black_hot": cv2.cvtColor(255 - white, cv2.COLOR_GRAY2BGR),
            "ironbow": render_palette(white, "ironbow"),
        }
        boxes = {p: det.detect(decoders[p].decode(frame)).xyxy for p, frame in sent.items()}
        assert matched(boxes["white_hot"], boxes["black_hot"], 0.99), t
        assert matched(boxes["white_hot"], boxes["ironbow"], 0.8), t
        n_dets += len(boxes["white_hot"])
    assert n_dets >= 10


def test_ironbow_survives_video_compression(scene):
    """Cameras send palettes through lossy codecs: JPEG q=85 must still invert and detect the same people."""
    det = heat_detector()
    decoder = ThermalDecoder("cam-t", ThermalCfg(palette="ironbow"))
    for t in (10, 25, 39):
        ok, jpeg = cv2.imencode(".jpg", render_palette(scene.frames[t], "ironbow"), [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        recovered = decoder.decode(cv2.imdecode(jpeg, cv2.IMREAD_COLOR))
        assert matched(det.detect(scene.frames[t]).xyxy, det.detect(recovered).xyxy, 0.7), t


def test_auto_palette_finds_the_false_colour_palette_in_use(scene):
    decoder = ThermalDecoder("cam-t", ThermalCfg(palette="auto"))
    for name in ("rainbow", "ironbow"):
        intensity = decoder.decode(render_palette(scene.frames[5], name))
        assert decoder.palette == name
        assert np.abs(intensity.astype(int) - scene.frames[5]).max() <= 2


def test_a_frame_that_does_not_fit_the_palette_is_a_clear_error(scene, vtest_path):
    cap = cv2.VideoCapture(str(vtest_path))
    ok, colour = cap.read()
    cap.release()
    assert ok
    with pytest.raises(ContractError, match=r"camera cam-t: .*does not fit palette 'ironbow'"):
        ThermalDecoder("cam-t", ThermalCfg(palette="ironbow")).decode(colour)
    with pytest.raises(ContractError, match=r"camera cam-t: .*does not fit palette 'white_hot'"):
        ThermalDecoder("cam-t", ThermalCfg(palette="white_hot")).decode(render_palette(scene.frames[0], "ironbow"))
    with pytest.raises(ContractError, match=r"camera cam-t: .*fits no known thermal palette"):
        ThermalDecoder("cam-t", ThermalCfg(palette="auto")).decode(colour)
    with pytest.raises(ContractError, match=r"camera cam-t: 1-channel 8-bit frame .*'ironbow'"):
        ThermalDecoder("cam-t", ThermalCfg(palette="ironbow")).decode(scene.frames[0])


@pytest.mark.parametrize("frame", [
    np.zeros((48, 64), np.float32),                 # float frames: no defined bit depth
    np.zeros((48, 64), np.uint32),
    np.zeros((48, 64, 3), np.uint16),               # 16-bit colour: not a thermal format
    np.zeros((48, 64, 4), np.uint8),
    np.zeros((48, 64), np.int8),
], ids=["float32", "uint32", "uint16x3", "uint8x4", "int8"])
def test_wrong_bit_depth_or_channels_names_camera_and_format(frame):
    with pytest.raises(ContractError, match=r"camera cam-t: cannot interpret a 48x64.* frame as thermal"):
        ThermalDecoder("cam-t", ThermalCfg()).decode(frame)


def test_16bit_raw_png_sequence_agc_then_detections(scene, tmp_path):
    rng = np.random.default_rng(0)
    for t, frame in enumerate(scene.frames):
        assert cv2.imwrite(str(tmp_path / f"f{t:05d}.png"), to_raw(frame, rng))
    source = ImageSequenceSource(tmp_path, fps=10.0, start_time=1000.0)
    decoder = ThermalDecoder("cam-raw", ThermalCfg())
    det = heat_detector()
    tp = n_gt = n_det = tp8 = 0
    with source:
        while (frame := source.read()) is not None:
            assert frame.image.dtype == np.uint16 and frame.ts == pytest.approx(1000.0 + frame.index / 10.0)
            gray = decoder.decode(frame.image)
            assert gray.dtype == np.uint8 and gray.shape == frame.image.shape
            boxes, gt = det.detect(gray).xyxy, gt_boxes(scene, frame.index)
            n_gt, n_det = n_gt + len(gt), n_det + len(boxes)
            tp += int((box_iou(boxes, gt).max(axis=0) >= 0.5).sum()) if len(boxes) and len(gt) else 0
            boxes8 = det.detect(scene.frames[frame.index]).xyxy      # the same scene as 8-bit white-hot
            tp8 += int((box_iou(boxes8, gt).max(axis=0) >= 0.5).sum()) if len(boxes8) and len(gt) else 0
    assert source.status.state == "ended"
    assert n_gt > 40 and tp / n_gt >= 0.85 and tp / n_det >= 0.6
    assert tp >= tp8 - 0.05 * n_gt                                    # AGC loses nothing that matters


def test_16bit_tiff_keeps_its_depth(tmp_path):
    raw = to_raw(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (16, 1)), np.random.default_rng(1), 0.0)
    assert cv2.imwrite(str(tmp_path / "a.tiff"), raw)
    src = ImageSequenceSource(tmp_path / "*.tiff", fps=5.0, start_time=0.0)
    frame = src.read()
    assert frame is not None and frame.image.dtype == np.uint16 and np.array_equal(frame.image, raw)


def test_agc_maps_the_scene_range_and_is_smoothed_over_frames():
    rng = np.random.default_rng(2)
    base = np.full((64, 80), 29000, np.uint16) + rng.integers(0, 400, (64, 80)).astype(np.uint16)
    agc = RawToGray(ThermalCfg(agc_smoothing=1.0))
    gray = agc(base)
    assert gray.min() <= 5 and gray.max() >= 250                   # the scene spans the 8-bit range
    hot = base.copy()
    hot[:8, :8] = 40000                                            # something very hot enters
    jumps, settled = {}, {}
    for smoothing in (1.0, 0.2):
        agc = RawToGray(ThermalCfg(agc_smoothing=smoothing))
        before = agc(base)[20:, 20:].mean()
        jumps[smoothing] = before - agc(hot)[20:, 20:].mean()
        for _ in range(30):
            settled[smoothing] = agc(hot)[20:, 20:].mean()
    assert jumps[1.0] > 50                                         # unsmoothed: the background darkens at once
    assert 0 < jumps[0.2] < jumps[1.0]                             # smoothed: gradually ...
    assert abs(settled[0.2] - settled[1.0]) < 2                    # ... to the same picture


def test_agc_does_not_stretch_a_flat_scene_into_noise():
    flat = np.full((64, 64), 30000, np.uint16) + np.random.default_rng(3).integers(0, 3, (64, 64)).astype(np.uint16)
    gray = RawToGray(ThermalCfg(agc_min_span=64))(flat)
    assert int(gray.max()) - int(gray.min()) <= 255 * 3 / 64 + 1


def test_fixed_temperature_window_maps_degrees_to_gray():
    cfg = from_dict(ThermalCfg, {"window_c": [20, 40]})
    raw = np.array([[(t + 273.15) * 100 for t in (10.0, 20.0, 30.0, 40.0, 50.0)]], np.float64).round().astype(np.uint16)
    gray = RawToGray(cfg)(raw)
    assert gray.tolist() == [[0, 0, 128, 255, 255]]


def test_thermal_config_is_validated():
    with pytest.raises(ConfigError, match="window_c"):
        ThermalCfg(window_c=(40.0, 20.0))
    with pytest.raises(ConfigError, match="palette"):
        from_dict(ThermalCfg, {"palette": "sepia"})


def test_image_sequence_skips_a_corrupt_file_and_goes_on(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((8, 8), i * 1000, np.uint16))
    (tmp_path / "1.png").write_bytes(b"not a png")
    src = ImageSequenceSource(tmp_path, fps=1.0, start_time=0.0)
    frames = [f.index for f in iter(src.read, None)]
    assert frames == [0, 2] and src.bad_files == 1 and src.status.state == "ended"
    with pytest.raises(SourceError, match="no .png/.tif/.tiff"):
        ImageSequenceSource(tmp_path / "nothing-*.png")


def test_16bit_y16_video_keeps_its_depth_through_a_thermal_camera(scene, tmp_path):
    """A gray16 (Y16) FFV1 video, as radiometric recorders write it: replayed as raw counts, then AGC."""
    from pipeline.camera.modality_front import open_file_source
    from pipeline.config.settings import CameraCfg

    video = tmp_path / "y16.mkv"
    rng = np.random.default_rng(4)
    writer = cv2.VideoWriter(str(video), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"FFV1"), 10.0,
                             scene.frames[0].shape[::-1], [cv2.VIDEOWRITER_PROP_DEPTH, cv2.CV_16U,
                                                           cv2.VIDEOWRITER_PROP_IS_COLOR, 0])
    raws = [to_raw(f, rng) for f in scene.frames[:12]]
    for raw in raws:
        writer.write(raw)
    writer.release()
    with open_file_source(CameraCfg(id="y16", source=str(video), modality="ir")) as source:
        frames = list(iter(source.read, None))
    assert len(frames) == 12 and all(f.image.dtype == np.uint16 and f.image.ndim == 2 for f in frames)
    assert np.array_equal(frames[5].image, raws[5])                 # lossless, all 16 bits
    det = heat_detector()
    gray = ThermalDecoder("y16", ThermalCfg()).decode(frames[11].image)
    assert matched(det.detect(gray).xyxy, det.detect(scene.frames[11]).xyxy, 0.8)
