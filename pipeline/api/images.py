"""Uploaded query images in (the shared policy of ``pipeline.ingest.image_input``, as HTTP statuses; the
encoding shared by ``/search`` and the watchlist routes), person-crop contact sheets out."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from fastapi import HTTPException, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from models.errors import ContractError
from pipeline.ingest.image_input import ImageLimits, ImageRejected, check_total_pixels, decode_image, read_header

# the image policy's refusal reasons (pipeline/ingest/image_input.py) as HTTP statuses
STATUS_BY_REASON = {"empty": 422, "too_large": 413, "not_image": 415, "wrong_type": 415, "too_many_pixels": 413,
                    "too_small": 422, "corrupt": 422}


def http_status(e: ImageRejected) -> int:
    """The status that says why an upload was refused (413 size, 415 type, 422 content)."""
    return STATUS_BY_REASON.get(e.reason, 422)


def check_headers(blobs: list[tuple[str, bytes]], limits: ImageLimits, max_total_pixels: int) -> None:
    """Size, type and pixel counts from the headers only: bombs are refused before any decoding."""
    check_total_pixels([read_header(data, name, limits) for name, data in blobs], max_total_pixels)


def embed_images(encoder: Any, blobs: list[tuple[str, bytes]], limits: ImageLimits, modality: str,
                 each: bool = False) -> np.ndarray:
    """Decode the crops of one person and encode them as one clip, (1, D), or with ``each`` one clip per
    image, (N, D) (watchlist references: a hit reports a score per image); unit float32.

    Run it in a worker thread: neither decoding nor encoding may run on the event loop.
    """
    crops = [decode_image(data, name, limits) for name, data in blobs]
    if each:
        return encoder.encode([[c] for c in crops], [modality] * len(crops))
    return encoder.encode([crops], [modality])


async def encode_uploads(request: Request, uploads: list[UploadFile], encoder: Any, modality: str,
                         each: bool = False, on_reject: Callable[[str], None] | None = None) -> np.ndarray:
    """Uploaded crops → unit vectors under the whole upload policy, or an HTTPException saying why not.

    Headers are checked off the event loop before any decoding (bombs refused early); decoding and encoding
    wait for one of the server's bounded decode slots (decoded crops are large). ``on_reject`` sees the
    policy's reason of a refused upload (the search route counts them).
    """
    cfg = request.app.state.cfg
    blobs = [(upload.filename or f"image {i}", await upload.read(cfg.max_upload_bytes + 1))
             for i, upload in enumerate(uploads)]
    limits = ImageLimits(max_bytes=cfg.max_upload_bytes, max_pixels=cfg.max_image_pixels)
    try:
        await run_in_threadpool(check_headers, blobs, limits, cfg.max_request_pixels)
        async with request.app.state.decode_gate.slot():
            return await run_in_threadpool(embed_images, encoder, blobs, limits, modality, each)
    except ImageRejected as e:
        if on_reject is not None:
            on_reject(e.reason)
        raise HTTPException(http_status(e), str(e)) from None
    except ContractError as e:
        raise HTTPException(422, f"cannot encode the images: {e}") from None


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
