"""Each camera's modality over time: switch events in the store, and the timeline built from them.

Schema v3 (``modality_events`` in ``pipeline/store/schema.py``) holds one row per modality decision of a
camera: the first one (``from_modality`` NULL: a fixed camera's configured modality, or an auto
camera's first frame) and every switch, dated to the first frame in the new modality. The
timeline of a camera is the list of spans between those events; the API and the dashboard show
it ("when was this camera colour, when infrared"). Writes are keyed by (camera, ts), so writing
the same event twice is harmless.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from models.errors import ContractError, StoreError
from pipeline.ingest.daynight import ModalitySwitch
from pipeline.store.base import Store, where_clause
from pipeline.store.schema import V_MODALITY_EVENTS, V_PRIVACY


@dataclass(frozen=True, slots=True)
class ModalitySpan:
    """A camera was in ``modality`` from ``t_start`` until ``t_end`` (``None``: still is).

    Attributes:
        switched_in: True when the span began with a switch (False: the camera's first decision).
    """

    camera_id: str
    modality: str
    t_start: float
    t_end: float | None
    switched_in: bool

    def as_dict(self) -> dict[str, object]:
        return {"camera_id": self.camera_id, "modality": self.modality, "t_start": self.t_start,
                "t_end": self.t_end, "switched_in": self.switched_in}


def record_switch(store: Store, event: ModalitySwitch) -> None:
    """Write one modality event (idempotent)."""
    stamped = store.schema_version >= V_PRIVACY   # retention ages count from the write
    store.execute(
        "INSERT INTO modality_events (camera_id, ts, from_modality, to_modality, saturation, correlation"
        f"{', stored_at' if stamped else ''}) VALUES (?, ?, ?, ?, ?, ?{', ?' if stamped else ''}) "
        "ON CONFLICT (camera_id, ts) DO UPDATE SET "
        "from_modality = excluded.from_modality, to_modality = excluded.to_modality, "
        "saturation = excluded.saturation, correlation = excluded.correlation",
        (event.camera_id, float(event.ts), event.from_modality, event.to_modality,
         _finite_or_none(event.saturation), _finite_or_none(event.correlation), *((time.time(),) if stamped else ())))


def list_switches(store: Store, camera_id: str | None = None, t_from: float | None = None,
                  t_to: float | None = None) -> list[ModalitySwitch]:
    """Stored events, oldest first, optionally for one camera and a time range (none before schema v3)."""
    if store.schema_version < V_MODALITY_EVENTS:
        return []
    where, params = where_clause([("camera_id = ?", camera_id),
                                  ("ts >= ?", None if t_from is None else float(t_from)),
                                  ("ts <= ?", None if t_to is None else float(t_to))])
    sql = ("SELECT camera_id, ts, from_modality, to_modality, saturation, correlation FROM modality_events"
           + where + " ORDER BY camera_id, ts")
    out = []
    for cam, ts, frm, to, sat, corr in store.execute(sql, params):
        try:
            out.append(ModalitySwitch(str(cam), float(ts), frm, str(to), _nan_if_none(sat), _nan_if_none(corr)))
        except ContractError as e:  # a row written by hand that breaks the contract
            raise StoreError(f"store {store.path}: bad modality event for camera {cam} at {ts}: {e}") from None
    return out


def modality_timeline(store: Store, camera_id: str, t_from: float | None = None,
                      t_to: float | None = None) -> list[ModalitySpan]:
    """The camera's modality spans overlapping ``[t_from, t_to]``, oldest first (a span that
    began before ``t_from`` is included with its real start)."""
    events = [(e.ts, e.from_modality, e.to_modality) for e in list_switches(store, camera_id, None, t_to)]
    return spans_from_events(camera_id, events, t_from)


def spans_from_events(camera_id: str, events: Sequence[tuple[float, str | None, str]],
                      t_from: float | None = None) -> list[ModalitySpan]:
    """``(ts, from_modality, to_modality)`` rows in time order → spans; each ends where the next begins."""
    spans: list[ModalitySpan] = []
    for i, (ts, frm, to) in enumerate(events):
        end = float(events[i + 1][0]) if i + 1 < len(events) else None
        if t_from is not None and end is not None and end <= t_from:
            continue
        spans.append(ModalitySpan(camera_id, str(to), float(ts), end, frm is not None))
    return spans


def cameras_with_events(store: Store) -> list[str]:
    if store.schema_version < V_MODALITY_EVENTS:
        return []
    return [str(r[0]) for r in store.execute("SELECT DISTINCT camera_id FROM modality_events ORDER BY camera_id")]


def camera_modalities(store: Store) -> dict[str, tuple[str, int]]:
    """Each camera with events → (its current modality: the latest event's, how many switches it made)."""
    if store.schema_version < V_MODALITY_EVENTS:
        return {}
    rows = store.execute("SELECT camera_id, count(from_modality), (SELECT to_modality FROM modality_events l "
                         "WHERE l.camera_id = e.camera_id ORDER BY ts DESC LIMIT 1) FROM modality_events e "
                         "GROUP BY camera_id")
    return {str(cam): (str(modality), int(n)) for cam, n, modality in rows}


def _finite_or_none(x: float) -> float | None:
    return float(x) if x == x and abs(x) != float("inf") else None


def _nan_if_none(x: object) -> float:
    return float("nan") if x is None else float(x)  # type: ignore[arg-type]
