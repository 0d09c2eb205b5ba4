"""Hostile and broken image bytes for the upload and ``--image`` tests: headers that lie about
their size (decompression bombs), a real highly compressible bomb, and cut-off files."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header(width: int, height: int, bit_depth: int = 8, color_type: int = 2) -> bytes:
    """A 45-byte PNG: signature, an IHDR claiming ``width`` x ``height``, IEND; no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")


def png_1bit_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit black PNG: tens of KB on the wire, ``width * height * 3`` bytes once decoded as RGB."""
    row = b"\x00" + bytes((width + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def bmp_header(width: int, height: int, bpp: int = 24) -> bytes:
    """A BMP file header + BITMAPINFOHEADER claiming ``width`` x ``height``, with no pixel data."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bpp, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def jpeg_header(width: int, height: int) -> bytes:
    """SOI + a baseline SOF0 segment claiming ``width`` x ``height`` (3 components), then EOI."""
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"".join(bytes((i, 0x11, 0)) for i in (1, 2, 3))
    return b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + b"\xff\xd9"


def gif_header(width: int, height: int) -> bytes:
    """A GIF89a logical screen descriptor claiming ``width`` x ``height`` (GIF is not accepted at all)."""
    return b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + b";"


def encoded(fmt: str, hw: tuple[int, int] = (32, 16), seed: int = 0) -> bytes:
    """A small valid image in ``fmt`` (PNG, JPEG, BMP, WEBP, GIF)."""
    rgb = np.random.default_rng(seed).integers(0, 255, (*hw, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt)
    return buf.getvalue()
