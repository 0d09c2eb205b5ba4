"""Thermal frames as cameras send them, turned into one 8-bit white-hot intensity image.

Thermal cameras send either an 8-bit picture drawn with a palette (gray ``white_hot`` or
``black_hot``, or a false-colour palette such as ironbow) or 16-bit raw counts (radiometric
cameras: counts are linear in temperature; PNG/TIFF sequences, Y16 video). Detectors and the
re-ID model want one thing: hotter = brighter, 8 bits. ``ThermalDecoder`` does that per camera:

* gray palettes: the channel mean (inverted for black-hot); a frame with colour is rejected;
* false-colour palettes: each pixel becomes the index of its nearest palette colour, looked up in
  a 64^3 colour cube built once per palette (``PaletteInverter``); a frame whose colours are far
  from every palette entry is rejected, so a wrong palette setting is an error, not garbage;
* 16 bits: automatic gain control (percentile range, smoothed over frames so the picture does
  not pump) or a fixed temperature window from config (``RawToGray``).

Every rejection is a ``ContractError`` naming the camera and the frame's format; the camera
worker counts it as a dropped frame and goes on.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from models.errors import ConfigError, ContractError, SourceError
from pipeline.config.settings import ThermalCfg
from pipeline.ingest.sources import Frame, SourceStatus

log = logging.getLogger(__name__)

GRAY_PALETTES = ("white_hot", "black_hot")
FALSE_COLOUR_PALETTES = ("ironbow", "rainbow", "turbo", "hot", "inferno", "magma")

# Ironbow as thermal cameras draw it: black, deep blue-violet, magenta, red-orange, yellow, white.
# (position, R, G, B); linear in between.
_IRONBOW_RGB = (
    (0.00, 0, 0, 0), (0.12, 25, 0, 90), (0.28, 95, 0, 150), (0.42, 170, 20, 140), (0.56, 225, 70, 60),
    (0.70, 245, 135, 10), (0.85, 255, 205, 45), (1.00, 255, 255, 235),
)
_OPENCV_MAPS = {"rainbow": cv2.COLORMAP_JET, "turbo": cv2.COLORMAP_TURBO, "hot": cv2.COLORMAP_HOT,
                "inferno": cv2.COLORMAP_INFERNO, "magma": cv2.COLORMAP_MAGMA}
_CUBE_BITS = 6                        # colour cube resolution per channel (64 levels)
_SHIFT = 8 - _CUBE_BITS


def palette_bgr(name: str) -> np.ndarray:
    """The palette's 256 colours, (256, 3) uint8 BGR; row ``i`` is the colour of intensity ``i`` (hot = 255).

    Raises:
        ConfigError: for an unknown palette name.
    """
    ramp = np.arange(256, dtype=np.uint8)
    if name == "white_hot":
        return np.repeat(ramp[:, None], 3, axis=1)
    if name == "black_hot":
        return np.repeat(ramp[::-1, None], 3, axis=1).copy()
    if name == "ironbow":
        pos = np.array([p[0] for p in _IRONBOW_RGB]) * 255.0
        rgb = np.stack([np.interp(np.arange(256), pos, [p[c] for p in _IRONBOW_RGB]) for c in (1, 2, 3)], axis=1)
        return np.round(rgb[:, ::-1]).astype(np.uint8)
    if name in _OPENCV_MAPS:
        return cv2.applyColorMap(ramp.reshape(256, 1), _OPENCV_MAPS[name]).reshape(256, 3)
    raise ConfigError(f"unknown thermal palette {name!r} (valid: {', '.join(GRAY_PALETTES + FALSE_COLOUR_PALETTES)})")


def render_palette(intensity: np.ndarray, name: str) -> np.ndarray:
    """Draw a white-hot (H, W) uint8 image with palette ``name`` → (H, W, 3) BGR (how a camera would send it)."""
    return palette_bgr(name)[intensity]


class PaletteInverter:
    """Maps a false-colour (or gray) palette picture back to white-hot intensity.

    Args:
        palette: a name from ``GRAY_PALETTES`` or ``FALSE_COLOUR_PALETTES``.
        max_colour_distance: pixels farther than this (Euclidean, 0..255 units) from the palette are off-palette.
    """

    def __init__(self, palette: str, max_colour_distance: float) -> None:
        self.palette = palette
        self.max_colour_distance = float(max_colour_distance)
        self._colours = palette_bgr(palette)
        self._cube_index: np.ndarray | None = None   # built on first use: (64^3,) uint8 intensity
        self._cube_dist: np.ndarray | None = None    # (64^3,) uint8 distance to that palette colour

    def invert(self, bgr: np.ndarray) -> tuple[np.ndarray, float]:
        """(H, W, 3) uint8 BGR → ((H, W) uint8 white-hot intensity, fraction of off-palette pixels)."""
        if self.palette in GRAY_PALETTES:
            f = bgr.astype(np.int16)
            mean = f.sum(axis=2) // 3
            dist = np.sqrt(((f - mean[..., None]) ** 2).sum(axis=2))
            gray = mean.astype(np.uint8)
            intensity = gray if self.palette == "white_hot" else 255 - gray
        else:
            index, cube_dist = self._cube()
            q = (bgr >> _SHIFT).astype(np.int32)
            cell = (q[..., 0] << (2 * _CUBE_BITS)) | (q[..., 1] << _CUBE_BITS) | q[..., 2]
            intensity, dist = index[cell], cube_dist[cell]
        return intensity, float(np.count_nonzero(dist > self.max_colour_distance)) / max(1, dist.size)

    def _cube(self) -> tuple[np.ndarray, np.ndarray]:
        if self._cube_index is None or self._cube_dist is None:
            from scipy.spatial import cKDTree

            levels = (np.arange(1 << _CUBE_BITS, dtype=np.float32) * (1 << _SHIFT)) + ((1 << _SHIFT) - 1) / 2.0
            grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)  # (B, G, R)
            dist, idx = cKDTree(self._colours.astype(np.float32)).query(grid, k=1)
            self._cube_index = idx.astype(np.uint8)
            self._cube_dist = np.minimum(np.round(dist), 255).astype(np.uint8)
        return self._cube_index, self._cube_dist


class RawToGray:
    """16-bit raw counts → 8-bit white-hot, by AGC or by a fixed temperature window.

    AGC maps the ``agc_low_percentile``..``agc_high_percentile`` range of the scene to 0..255;
    the range is an exponential moving average over frames (``agc_smoothing`` = weight of the
    newest frame) so a person walking in does not make the background pump, and it is never
    narrower than ``agc_min_span`` counts so a flat scene is not stretched into noise. With
    ``window_c`` set, counts become degrees (``raw * raw_scale + raw_offset``) and the window
    maps to 0..255 (everything outside saturates) — comparable across frames and cameras.
    """

    def __init__(self, cfg: ThermalCfg) -> None:
        self.cfg = cfg
        self._range: tuple[float, float] | None = None
        if cfg.window_c is not None:
            lo, hi = ((t - cfg.raw_offset) / cfg.raw_scale for t in cfg.window_c)
            self._range = (min(lo, hi), max(lo, hi))
            self._invert = cfg.raw_scale < 0     # counts falling with temperature

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """(H, W) uint16 raw counts → (H, W) uint8, hot = bright."""
        cfg = self.cfg
        if cfg.window_c is not None:
            assert self._range is not None
            lo, hi = self._range
            gray = self._scale(raw, lo, hi - lo)
            return 255 - gray if self._invert else gray
        sample = raw[::4, ::4] if raw.size > 4096 else raw
        lo, hi = (float(v) for v in np.percentile(sample, (cfg.agc_low_percentile, cfg.agc_high_percentile)))
        if self._range is not None:
            a = cfg.agc_smoothing
            lo, hi = (1 - a) * self._range[0] + a * lo, (1 - a) * self._range[1] + a * hi
        self._range = (lo, hi)
        span = max(hi - lo, float(cfg.agc_min_span))
        return self._scale(raw, (lo + hi - span) / 2.0, span)

    @staticmethod
    def _scale(raw: np.ndarray, lo: float, span: float) -> np.ndarray:
        return np.clip((raw.astype(np.float32) - lo) * (255.0 / span) + 0.5, 0, 255).astype(np.uint8)


class ThermalDecoder:
    """One thermal camera's frames → (H, W) uint8 white-hot intensity.

    Args:
        camera_id: named in every error.
        cfg: the camera's ``thermal`` section.
    """

    def __init__(self, camera_id: str, cfg: ThermalCfg) -> None:
        self.camera_id = camera_id
        self.cfg = cfg
        self._raw = RawToGray(cfg)
        self._inverters: dict[str, PaletteInverter] = {}
        self.palette: str | None = None if cfg.palette == "auto" else cfg.palette

    def decode(self, frame: np.ndarray) -> np.ndarray:
        """Interpret one frame.

        Raises:
            ContractError: the frame's format cannot be read as thermal (bit depth, channels), or
                its colours do not fit the configured palette.
        """
        if not isinstance(frame, np.ndarray):
            raise ContractError(f"camera {self.camera_id}: thermal frame is {type(frame).__name__}, not an image")
        channels = 1 if frame.ndim == 2 else frame.shape[2] if frame.ndim == 3 else -1
        fmt = f"{'x'.join(map(str, frame.shape))} {frame.dtype}"
        if frame.dtype == np.uint16 and channels == 1:
            return self._raw(frame.reshape(frame.shape[:2]))
        if frame.dtype == np.uint8 and channels == 1:
            gray = frame.reshape(frame.shape[:2])
            if self.cfg.palette in FALSE_COLOUR_PALETTES:
                raise ContractError(f"camera {self.camera_id}: 1-channel 8-bit frame ({fmt}) cannot be drawn "
                                    f"with the false-colour palette {self.cfg.palette!r}; set thermal.palette "
                                    "to white_hot or black_hot")
            return 255 - gray if self.cfg.palette == "black_hot" else gray
        if frame.dtype == np.uint8 and channels == 3:
            return self._from_palette(frame, fmt)
        raise ContractError(f"camera {self.camera_id}: cannot interpret a {fmt} frame as thermal "
                            "(expected 8-bit gray or palette colour, or 1-channel 16-bit raw)")

    def _inverter(self, palette: str) -> PaletteInverter:
        if palette not in self._inverters:
            self._inverters[palette] = PaletteInverter(palette, self.cfg.max_colour_distance)
        return self._inverters[palette]

    def _from_palette(self, bgr: np.ndarray, fmt: str) -> np.ndarray:
        limit = self.cfg.max_off_palette_fraction
        if self.palette is not None:
            intensity, off = self._inverter(self.palette).invert(bgr)
            if off <= limit:
                return intensity
            if self.cfg.palette != "auto":
                raise ContractError(f"camera {self.camera_id}: {fmt} frame does not fit palette {self.palette!r} "
                                    f"({off:.0%} of pixels are off-palette, limit {limit:.0%}); "
                                    "check thermal.palette")
        # auto: the false-colour palette that fits best (the camera may have been switched to another one)
        fits = {p: self._inverter(p).invert(bgr) for p in FALSE_COLOUR_PALETTES}
        best = min(fits, key=lambda p: fits[p][1])
        intensity, off = fits[best]
        if off > limit:
            raise ContractError(f"camera {self.camera_id}: {fmt} frame fits no known thermal palette "
                                f"(best {best!r} with {off:.0%} off-palette pixels, limit {limit:.0%})")
        if best != self.palette:
            log.info("camera=%s thermal palette detected: %s (%.1f%% off-palette pixels)",
                     self.camera_id, best, 100 * off)
        self.palette = best
        return intensity


def read_raw_frame(path: str | Path) -> np.ndarray:
    """One image file, keeping its bit depth (16-bit PNG/TIFF stay uint16).

    Raises:
        SourceError: the file cannot be read as an image.
    """
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise SourceError(f"cannot read image {path}: missing, unreadable or not an image")
    return img


def list_image_sequence(pattern: str | Path) -> list[Path]:
    """Files of an image sequence in name order: a directory (its .png/.tif/.tiff files) or a glob.

    Raises:
        SourceError: nothing matches.
    """
    p = Path(pattern)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in (".png", ".tif", ".tiff"))
    else:
        files = sorted(Path(p.parent).glob(p.name))
    if not files:
        raise SourceError(f"image sequence {pattern}: no .png/.tif/.tiff files found")
    return files


class ImageSequenceSource:
    """Frames of an image sequence (a directory of PNG/TIFF files, or a glob), bit depth kept.

    Thermal cameras and their recorders often write one 16-bit PNG or TIFF per frame. Files are
    read in name order; their clock is ``start_time`` (else the first file's mtime) plus
    ``index / fps``. A file that cannot be read is skipped, counted and logged, and the sequence
    goes on (one corrupt file must not stop a camera). Implements ``pipeline.ingest.sources.FrameSource``.

    Args:
        pattern: directory or glob (``/data/cam3/*.png``).
        fps: frame rate of the sequence.
        start_time: UTC epoch seconds of the first frame.
        stride: hand out every ``stride``-th file.
        max_frames: stop after this many files.

    Raises:
        SourceError: nothing matches the pattern.
    """

    def __init__(self, pattern: str | Path, fps: float = 10.0, start_time: float | None = None, stride: int = 1,
                 max_frames: int | None = None) -> None:
        if fps <= 0 or stride < 1:
            raise SourceError(f"image sequence {pattern}: fps must be > 0 and stride >= 1")
        self._files = list_image_sequence(pattern)[:max_frames]
        self.path = Path(pattern)
        self.name = self.path.name or str(pattern)
        self.fps = float(fps)
        self.stride = stride
        self.start_time = float(self._files[0].stat().st_mtime if start_time is None else start_time)
        self.bad_files = 0
        self._next = 0
        self._status = SourceStatus("connected")

    @property
    def status(self) -> SourceStatus:
        return self._status

    @property
    def expected_frames(self) -> int:
        return -(-len(self._files) // self.stride)

    def read(self) -> Frame | None:
        while self._status.state == "connected":
            index = self._next
            if index >= len(self._files):
                self._status = SourceStatus("ended", "end of image sequence")
                return None
            self._next += self.stride
            try:
                image = read_raw_frame(self._files[index])
            except SourceError as e:
                self.bad_files += 1
                log.warning("source %s: skipping frame %d: %s", self.name, index, e)
                continue
            return Frame(image, self.start_time + index / self.fps, index)
        return None

    def close(self) -> None:
        if self._status.state == "connected":
            self._status = SourceStatus("ended", "closed")

    def __enter__(self) -> ImageSequenceSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_image_sequence(source: str) -> bool:
    """True for a directory or a glob of images (``/data/cam3/``, ``/data/cam3/*.tiff``), not a video file."""
    p = Path(source)
    if p.is_dir():
        return True
    return any(ch in p.name for ch in "*?[") and p.suffix.lower() in (".png", ".tif", ".tiff")
