"""The identity report of a run: ``identities.json`` and one contact sheet PNG per identity.

``identities.json`` lists every identity (after merges) with its tracks grouped by camera and
modality, their time spans, and the link decisions with scores that put each track there. A
contact sheet shows the identity's RGB thumbnails in the left column and its thermal (IR)
thumbnails in the right column, one track per row, captioned with camera and time.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.store.base import Store
from pipeline.store.identities import merged_parents
from pipeline.store.summaries import identity_detail, identity_ids
from pipeline.store.tracks import thumbnails

log = logging.getLogger(__name__)

CELL_H = 160
CELL_W = 200
CAPTION_H = 18
HEADER_H = 28


def write_report(store: Store, out_dir: str | Path, track_uid_like: str | None = None,
                 max_sheets: int = 500) -> dict[str, Any]:
    """Write ``identities.json`` and ``identities/<id>.png`` under ``out_dir``.

    Args:
        store: a schema-v2 store the matcher wrote.
        track_uid_like: SQL LIKE pattern; only identities owning such a track are reported
            (``"%-<run_id>-%"`` selects one replay's identities). None: every identity.
        max_sheets: contact sheets written at most (the JSON always lists everything).

    Returns:
        The JSON document that was written.
    """
    out = Path(out_dir)
    sheets_dir = out / "identities"
    sheets_dir.mkdir(parents=True, exist_ok=True)
    ids = identity_ids(store, track_uid_like)
    parents = merged_parents(store)
    identities = []
    for n, ident in enumerate(ids):
        detail = identity_detail(store, ident, parents)
        if detail is None:
            continue
        if n < max_sheets:
            path = sheets_dir / f"{ident}.png"
            write_contact_sheet(store, detail, path)
            detail["contact_sheet"] = str(path.relative_to(out))
        identities.append(detail)
    doc = {
        "generated_at": time.time(),
        "store": str(store.path),
        "n_identities": len(identities),
        "n_tracks": sum(int(d["n_tracks"]) for d in identities),
        "cross_modal": sum(1 for d in identities if _modalities(d) == {"rgb", "ir"}),
        "multi_camera": sum(1 for d in identities if len(d["cameras"]) > 1),
        "identities": identities,
    }
    (out / "identities.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    log.info("report: %d identities (%d cross-modal) in %s", len(identities), doc["cross_modal"], out)
    return doc


def _modalities(detail: dict[str, Any]) -> set[str]:
    return {m for per_cam in detail["cameras"].values() for m in per_cam}


def _tracks(detail: dict[str, Any], modality: str) -> list[dict[str, Any]]:
    rows = [t for per_cam in detail["cameras"].values() for t in per_cam.get(modality, [])]
    return sorted(rows, key=lambda t: t["t_start"])


def write_contact_sheet(store: Store, detail: dict[str, Any], path: str | Path) -> None:
    """One PNG: RGB track thumbnails left, IR right, one row per track, oldest first."""
    columns = {m: _tracks(detail, m) for m in ("rgb", "ir")}
    thumbs = thumbnails(store, [t["track_uid"] for ts in columns.values() for t in ts])
    rows = max(1, *(len(ts) for ts in columns.values()))
    sheet = np.full((HEADER_H + rows * (CELL_H + CAPTION_H), 2 * CELL_W, 3), 255, np.uint8)
    title = f"identity {detail['identity']}: {detail['n_tracks']} tracks"
    if detail["merged_ids"]:
        title += f" (merged {', '.join(map(str, detail['merged_ids']))})"
    _text(sheet, title, 6, 19, 0.5)
    for col, modality in enumerate(("rgb", "ir")):
        x0 = col * CELL_W
        if not columns[modality]:
            _text(sheet, f"no {modality.upper()} track", x0 + 8, HEADER_H + CELL_H // 2, 0.45, (150, 150, 150))
        for row, t in enumerate(columns[modality]):
            y0 = HEADER_H + row * (CELL_H + CAPTION_H)
            _paste(sheet, thumbs.get(t["track_uid"]), x0, y0)
            span = f"{t['camera_id']} {modality} {time.strftime('%H:%M:%S', time.gmtime(t['t_start']))}" \
                   f" +{t['t_end'] - t['t_start']:.0f}s"
            _text(sheet, span, x0 + 4, y0 + CELL_H + 13, 0.38)
    cv2.line(sheet, (CELL_W, HEADER_H), (CELL_W, sheet.shape[0]), (200, 200, 200), 1)
    if not cv2.imwrite(str(path), sheet):
        raise OSError(f"cannot write contact sheet {path}")


def _paste(sheet: np.ndarray, jpeg: bytes | None, x0: int, y0: int) -> None:
    if not jpeg:
        cv2.rectangle(sheet, (x0 + 4, y0 + 4), (x0 + CELL_W - 4, y0 + CELL_H - 4), (220, 220, 220), -1)
        return
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return
    h, w = img.shape[:2]
    scale = min((CELL_H - 8) / h, (CELL_W - 8) / w)
    img = cv2.resize(img, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    ox, oy = x0 + (CELL_W - w) // 2, y0 + (CELL_H - h) // 2
    sheet[oy:oy + h, ox:ox + w] = img


def _text(img: np.ndarray, text: str, x: int, y: int, scale: float, colour: Sequence[int] = (20, 20, 20)) -> None:
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, tuple(int(c) for c in colour), 1, cv2.LINE_AA)
