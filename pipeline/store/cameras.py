"""Camera source status (schema v4) and the camera overview the API lists.

The ``cameras`` table keeps one row per camera, the latest report winning; ``reason`` and ``source``
arrive with credentials already redacted (``pipeline/camera/status.py``). The overview joins it with
what the tracks and the day/night modality events say about each camera.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.camera.status import CameraStatusEvent
from pipeline.store.base import Store
from pipeline.store.modality_events import camera_modalities
from pipeline.store.schema import V_CAMERAS
from pipeline.store.tracks import per_camera


def save_statuses(store: Store, events: Sequence[CameraStatusEvent]) -> None:
    """Upsert ``events`` in one transaction; an older report never wins over a newer one."""
    with store.transaction():
        upsert_statuses(store, events)


def upsert_statuses(store: Store, events: Sequence[CameraStatusEvent]) -> None:
    """``save_statuses`` inside the caller's transaction (the matcher logs their events in the same one)."""
    store.execute_many(
        "INSERT INTO cameras (camera_id, status, reason, source, modality, updated_at) VALUES (?,?,?,?,?,?) "
        "ON CONFLICT(camera_id) DO UPDATE SET status = excluded.status, reason = excluded.reason, "
        "source = excluded.source, modality = excluded.modality, updated_at = excluded.updated_at "
        "WHERE excluded.updated_at >= cameras.updated_at",
        [(e.camera_id, e.state, e.reason, e.source, e.modality, e.ts) for e in events])


def camera_statuses(store: Store) -> list[dict[str, Any]]:
    """The stored status of each camera: camera_id, status, reason, source, modality, updated_at."""
    if store.schema_version < V_CAMERAS:
        return []
    return store.query("SELECT camera_id, status, reason, source, modality, updated_at FROM cameras "
                       "ORDER BY camera_id")


def camera_overview(store: Store) -> list[dict[str, Any]]:
    """Every camera seen in tracks, status reports or modality events, by id.

    Each: modalities, n_tracks, first_seen/last_seen (track times), status, reason, status_at, source
    (when a status is stored), current_modality and modality_switches (day/night cameras).
    """
    out: dict[str, dict[str, Any]] = {}
    for cam, modalities, n, t0, t1 in per_camera(store):
        out[cam] = {"camera_id": cam, "modalities": modalities, "n_tracks": n, "first_seen": t0, "last_seen": t1,
                    "current_modality": None, "status": None, "reason": None, "status_at": None}
    for r in camera_statuses(store):
        c = out.setdefault(r["camera_id"], {
            "camera_id": r["camera_id"], "modalities": [r["modality"]] if r["modality"] else [],
            "n_tracks": 0, "first_seen": None, "last_seen": None, "current_modality": None})
        c.update(status=r["status"], reason=r["reason"] or None, status_at=r["updated_at"], source=r["source"])
    for cam, (modality, switches) in camera_modalities(store).items():
        c = out.setdefault(cam, {   # a camera that switched before anyone walked by
            "camera_id": cam, "modalities": [modality], "n_tracks": 0, "first_seen": None, "last_seen": None,
            "status": None, "reason": None, "status_at": None})
        c.update(current_modality=modality, modality_switches=switches)
    return [out[k] for k in sorted(out)]
