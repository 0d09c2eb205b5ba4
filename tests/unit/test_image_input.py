"""The shared image policy (pipeline/ingest/image_input.py) on well-formed inputs: orientation and budgets."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.ingest.image_input import ImageLimits, ImageRejected, check_total_pixels, decode_image, read_header
from tests.support.hostile_images import png_header


def test_exif_orientation_is_applied_as_opencv_does():
    rgb = np.zeros((10, 20, 3), np.uint8)  # landscape; the camera says "rotate 90° clockwise to view"
    rgb[:, :10] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", exif=exif, quality=95)
    ours = decode_image(buf.getvalue(), "phone.jpg", ImageLimits())
    theirs = cv2.cvtColor(cv2.imdecode(np.frombuffer(buf.getvalue(), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert ours.shape == theirs.shape == (20, 10, 3)
    assert np.abs(ours.astype(int) - theirs.astype(int)).mean() < 2.0


def test_headers_are_read_without_decoding_and_share_a_request_budget():
    headers = [read_header(png_header(3000, 3000), f"{i}.png", ImageLimits()) for i in range(2)]  # no pixel data
    assert [(h.format, h.pixels) for h in headers] == [("PNG", 9_000_000)] * 2
    check_total_pixels(headers, 18_000_000)
    with pytest.raises(ImageRejected, match="18000000 pixels together exceed the 17999999-pixel limit"):
        check_total_pixels(headers, 17_999_999)
