"""Untrusted image bytes → RGB arrays, under one policy for the API's uploads and ``xreid search --image``.

The policy, in the order it is applied:

1. size: empty bytes are refused, and so is anything over ``max_bytes``;
2. type: the format is read from the bytes' signature (never a file name or a client's content type)
   and must be JPEG, PNG, WebP or BMP; only those four Pillow parsers ever see the bytes;
3. pixels: the dimensions come from the header alone, before a single pixel is decoded; an image over
   ``max_pixels`` (a decompression bomb: a 45-byte PNG header can claim 20000 x 20000) is refused, and
   callers holding several images check their sum with ``check_total_pixels`` before decoding any;
4. decode: corrupt or truncated data is refused; EXIF orientation is applied (as OpenCV's ``imread``
   does), so a phone photo is upright whichever path it takes.

``peek_header`` is the one header reader of the code base: the re-ID stage also reads each clip crop's
declared size with it (a few hundred bytes of JPEG can declare 30,000 x 30,000 pixels, which OpenCV would
allocate and decode: about 5 GB and 30 s) and applies its own crop bounds before ``cv2.imdecode``.

Every refusal is an ``ImageRejected`` (a ``ContractError``: the CLI prints one line and exits 2) with a
``reason`` code the API maps to its status (413, 415 or 422) and counts as a metric.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np
from PIL import (
    BmpImagePlugin,
    Image,
    ImageOps,
    JpegImagePlugin,
    PngImagePlugin,
    UnidentifiedImageError,
    WebPImagePlugin,
)

from models.errors import ContractError

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")
# Pillow's image classes are called directly, not through ``Image.open``: only these four parsers ever
# see untrusted bytes, and a process-wide patch of ``Image.open`` (ultralytics installs one that tries
# to fetch a HEIF plugin for any unidentified file) cannot change what an upload does.
_OPENERS = {"JPEG": JpegImagePlugin.JpegImageFile, "PNG": PngImagePlugin.PngImageFile,
            "WEBP": WebPImagePlugin.WebPImageFile, "BMP": BmpImagePlugin.BmpImageFile}
_ORIENTATION = 0x0112  # EXIF tag

# What Pillow's parsers and decoders raise on hostile or broken input (struct.error on cut headers,
# SyntaxError for a bad signature, EOFError on truncated data). Anything else is a bug.
_PIL_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError,
               TypeError, KeyError, ZeroDivisionError, Image.DecompressionBombError)


@dataclass(frozen=True)
class ImageLimits:
    """Bounds on one untrusted image (the API's ``api.max_upload_bytes`` / ``api.max_image_pixels``)."""

    max_bytes: int = 8 * 1024 * 1024
    max_pixels: int = 40_000_000
    min_side: int = 2

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_pixels <= 0 or self.min_side < 1:
            raise ContractError(f"image limits must be positive, got {self}")


class ImageRejected(ContractError):
    """An image the policy refuses; ``reason`` is a short code (``too_many_pixels``, ``corrupt``, ...)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ImageHeader:
    """What the header says, before any pixel is decoded."""

    name: str
    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def sniff_format(data: bytes) -> str | None:
    """The image format its first bytes announce (Pillow's own signatures), ``None`` when unknown."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:2] == b"BM":
        return "BMP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    return None


def _open(data: bytes, name: str) -> Image.Image:
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageRejected(f"{name}: not an image (accepted: {', '.join(ACCEPTED_FORMATS)})", "not_image")
    if fmt not in _OPENERS:
        raise ImageRejected(f"{name}: {fmt} images are not accepted (accepted: {', '.join(ACCEPTED_FORMATS)})",
                            "wrong_type")
    try:
        return _OPENERS[fmt](io.BytesIO(data))  # reads the header only; pixels are decoded on load()
    except _PIL_ERRORS:
        raise ImageRejected(f"{name}: {fmt} image with a broken header (corrupt or truncated)", "corrupt") from None


def peek_header(data: bytes, name: str) -> ImageHeader:
    """Format and declared dimensions, read from the header alone; no size or pixel limit is applied.

    Raises:
        ImageRejected: ``not_image``, ``wrong_type``, ``corrupt`` (a header Pillow cannot parse).
    """
    img = _open(data, name)
    w, h = img.size
    return ImageHeader(name, str(img.format), w, h)


def read_header(data: bytes, name: str, limits: ImageLimits) -> ImageHeader:
    """Check size, type and pixel count from the header alone.

    Raises:
        ImageRejected: ``empty``, ``too_large``, ``not_image``, ``wrong_type``, ``too_many_pixels``, ``too_small``.
    """
    if not data:
        raise ImageRejected(f"{name}: empty file", "empty")
    if len(data) > limits.max_bytes:
        raise ImageRejected(f"{name}: {len(data)} bytes exceeds the {limits.max_bytes}-byte limit per image",
                            "too_large")
    header = peek_header(data, name)
    w, h = header.width, header.height
    if w * h > limits.max_pixels:
        raise ImageRejected(f"{name}: the header claims {w}x{h} = {w * h} pixels, over the {limits.max_pixels}-pixel "
                            "limit per image (refused before decoding: a decompression bomb or an oversized photo)",
                            "too_many_pixels")
    if min(w, h) < limits.min_side:
        raise ImageRejected(f"{name}: image is too small ({w}x{h})", "too_small")
    return header


def check_total_pixels(headers: list[ImageHeader], max_total: int) -> None:
    """Refuse a set of images whose pixels together exceed ``max_total`` (checked before decoding any).

    Raises:
        ImageRejected: ``too_many_pixels``.
    """
    total = sum(h.pixels for h in headers)
    if total > max_total:
        raise ImageRejected(f"{len(headers)} images of {total} pixels together exceed the {max_total}-pixel limit "
                            "per request", "too_many_pixels")


def decode_image(data: bytes, name: str, limits: ImageLimits) -> np.ndarray:
    """Decode one untrusted image to an (H, W, 3) uint8 RGB array, upright per its EXIF orientation.

    Raises:
        ImageRejected: any refusal of ``read_header``, or ``corrupt`` when the pixel data is broken.
    """
    header = read_header(data, name, limits)
    img = _open(data, name)
    try:
        if img.getexif().get(_ORIENTATION, 1) != 1:  # transposing copies: only when it turns the image
            img = ImageOps.exif_transpose(img)
        rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except _PIL_ERRORS:
        raise ImageRejected(f"{name}: image data is corrupt or truncated", "corrupt") from None
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < limits.min_side:
        raise ImageRejected(f"{name}: image is too small ({header.width}x{header.height})", "too_small")
    return rgb
