"""A JPEG's declared size, read from its header without decoding it.

A few hundred bytes of JPEG can declare a 30,000 x 30,000 image; OpenCV allocates and decodes all
of it (about 5 GB and 30 s), so a consumer must check the declared size before ``cv2.imdecode``.
"""

from __future__ import annotations

# start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) declared by the first start-of-frame segment, or None if there is none.

    None means the data cannot be a decodable JPEG: no SOI, a segment running past the end, or
    the scan starting (SOS) or the image ending (EOI) before any frame header.
    """
    if data[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(data)
    while i + 1 < n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        if marker in (0xD9, 0xDA) or i + 4 > n:
            return None
        length = (data[i + 2] << 8) | data[i + 3]
        if length < 2 or i + 2 + length > n:
            return None
        if marker in _SOF:
            if length < 7:
                return None
            return (data[i + 5] << 8) | data[i + 6], (data[i + 7] << 8) | data[i + 8]
        i += 2 + length
    return None
