"""Uploaded query images in, person-crop contact sheets out.

Uploads are identified by their bytes (never by the client's content type), size-checked before
decoding, and refused past a pixel budget so a small file cannot expand into gigabytes.
"""

from __future__ import annotations

import io
import math

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from models.errors import ContractError

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")
MAX_PIXELS = 40_000_000


class ImageRejected(ContractError):
    """An upload that is not a usable image; ``status`` is the HTTP code that says why."""

    def __init__(self, message: str, status: int, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def decode_upload(data: bytes, name: str, max_bytes: int) -> np.ndarray:
    """Decode one uploaded image to an (H, W, 3) uint8 RGB array.

    Raises:
        ImageRejected: 413 when larger than ``max_bytes`` or the pixel budget, 415 when not a
            JPEG/PNG/WebP/BMP image, 422 when the image data is corrupt.
    """
    if len(data) > max_bytes:
        raise ImageRejected(f"{name}: {len(data)} bytes exceeds the {max_bytes}-byte limit per image", 413, "too_large")
    if not data:
        raise ImageRejected(f"{name}: empty file", 422, "empty")
    try:
        img = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError):
        raise ImageRejected(f"{name}: not an image (accepted: {', '.join(ACCEPTED_FORMATS)})", 415,
                            "not_image") from None
    if img.format not in ACCEPTED_FORMATS:
        raise ImageRejected(f"{name}: {img.format} images are not accepted (accepted: {', '.join(ACCEPTED_FORMATS)})",
                            415, "wrong_type")
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageRejected(f"{name}: {w}x{h} exceeds the {MAX_PIXELS}-pixel limit", 413, "too_many_pixels")
    try:
        rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        raise ImageRejected(f"{name}: image data is corrupt or truncated", 422, "corrupt") from None
    if rgb.ndim != 3 or min(rgb.shape[:2]) < 2:
        raise ImageRejected(f"{name}: image is too small ({w}x{h})", 422, "too_small")
    return rgb


def contact_sheet(jpegs: list[bytes], tile_hw: tuple[int, int] = (160, 80), cols: int = 8,
                  quality: int = 85) -> bytes:
    """Tile JPEG crops into one JPEG grid, each crop letterboxed into a ``tile_hw`` cell.

    Crops that fail to decode are left out (a bad thumbnail never breaks the sheet).
    """
    th, tw = tile_hw
    tiles = []
    for data in jpegs:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            continue
        scale = min(th / img.shape[0], tw / img.shape[1])
        resized = cv2.resize(img, (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale))),
                             interpolation=cv2.INTER_AREA)
        tile = np.full((th, tw, 3), 32, np.uint8)
        y, x = (th - resized.shape[0]) // 2, (tw - resized.shape[1]) // 2
        tile[y:y + resized.shape[0], x:x + resized.shape[1]] = resized
        tiles.append(tile)
    if not tiles:
        tiles = [np.full((th, tw, 3), 32, np.uint8)]
    cols = min(cols, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    sheet = np.full((rows * th, cols * tw, 3), 32, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = tile
    ok, buf = cv2.imencode(".jpg", sheet, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ContractError("cannot encode the contact sheet as JPEG")
    return buf.tobytes()
