"""Camera reports from camera workers to the store (and so to the API's ``/cameras``).

A camera worker publishes on ``xreid:camera-status`` a ``CameraStatusEvent`` whenever a source
changes state (``connected | reconnecting | ended | failed``, with the reason), and a
``ModalitySwitch`` whenever a day/night camera changes modality. The store has one writer, the
matcher, so the matcher worker runs a ``CameraStatusSink``: it drains the stream, writes the
``cameras`` and ``modality_events`` tables, then acks. Reasons and source URLs are redacted when
the event is made, so a password never travels or lands on disk.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from models.errors import ContractError
from pipeline.bus import Bus
from pipeline.daynight import ModalitySwitch
from pipeline.messages import contract_guard
from pipeline.modality_events import record_switch
from pipeline.redact import redact_text, redact_url
from pipeline.store import Store

log = logging.getLogger(__name__)

STREAM_CAMERA_STATUS = "xreid:camera-status"
GROUP_STATUS_STORE = "status-store"
STATES = ("connected", "reconnecting", "ended", "failed")
_VERSION = 1


@dataclass(frozen=True, slots=True)
class CameraStatusEvent:
    """One camera's state at ``ts`` (UTC epoch seconds). Build with ``make`` to redact secrets."""

    camera_id: str
    state: str
    reason: str
    source: str
    modality: str
    ts: float

    def __post_init__(self) -> None:
        if not isinstance(self.camera_id, str) or not self.camera_id:
            raise ContractError(f"CameraStatusEvent.camera_id must be a non-empty string, got {self.camera_id!r}")
        if self.state not in STATES:
            raise ContractError(f"CameraStatusEvent.state must be one of {STATES}, got {self.state!r}")
        for name in ("reason", "source", "modality"):
            if not isinstance(getattr(self, name), str):
                raise ContractError(f"CameraStatusEvent.{name} must be a string")
        if isinstance(self.ts, bool) or not isinstance(self.ts, (int, float)) or not math.isfinite(self.ts):
            raise ContractError(f"CameraStatusEvent.ts must be a finite number, got {self.ts!r}")

    @classmethod
    def make(cls, camera_id: str, state: str, reason: str, source: str, modality: str, ts: float) -> CameraStatusEvent:
        """An event with the reason and source URL redacted."""
        return cls(camera_id, state, redact_text(reason), redact_url(source), modality, float(ts))

    def to_bytes(self) -> bytes:
        return json.dumps({"v": _VERSION, "kind": "camera_status", "camera_id": self.camera_id, "state": self.state,
                           "reason": self.reason, "source": self.source, "modality": self.modality,
                           "ts": self.ts}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> CameraStatusEvent:
        try:
            d = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ContractError(f"camera status is not JSON: {e}") from None
        if not isinstance(d, dict) or d.get("kind") != "camera_status" or d.get("v") != _VERSION:
            raise ContractError("not a camera status event of version 1")
        try:
            return cls.make(d["camera_id"], d["state"], d["reason"], d["source"], d["modality"], d["ts"])
        except KeyError as e:
            raise ContractError(f"camera status lacks {e.args[0]}") from None
        except (TypeError, AttributeError) as e:
            raise ContractError(f"camera status has a malformed field: {e}") from None


def switch_to_bytes(event: ModalitySwitch) -> bytes:
    """A day/night camera's modality event as a status-stream message."""
    def num(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    return json.dumps({"v": _VERSION, "kind": "modality_switch", "camera_id": event.camera_id, "ts": event.ts,
                       "from_modality": event.from_modality, "to_modality": event.to_modality,
                       "saturation": num(event.saturation), "correlation": num(event.correlation)}).encode()


def decode_report(data: bytes) -> CameraStatusEvent | ModalitySwitch:
    """Either report kind of the status stream; raises ``ContractError`` for anything else."""
    return contract_guard(_decode_report, data)


def _decode_report(data: bytes) -> CameraStatusEvent | ModalitySwitch:
    try:
        d = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ContractError(f"camera report is not JSON: {e}") from None
    if isinstance(d, dict) and d.get("kind") == "modality_switch" and d.get("v") == _VERSION:
        try:
            return ModalitySwitch(d["camera_id"], float(d["ts"]), d["from_modality"], d["to_modality"],
                                  math.nan if d["saturation"] is None else float(d["saturation"]),
                                  math.nan if d["correlation"] is None else float(d["correlation"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ContractError(f"modality switch report is malformed: {e!r}") from None
    return CameraStatusEvent.from_bytes(data)


def save_statuses(store: Store, events: Sequence[CameraStatusEvent]) -> None:
    """Upsert ``events`` into the ``cameras`` table in one transaction; an older report never wins."""
    with store.transaction() as conn:
        for e in events:
            conn.execute(
                "INSERT INTO cameras (camera_id, status, reason, source, modality, updated_at) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(camera_id) DO UPDATE SET status = excluded.status, reason = excluded.reason, "
                "source = excluded.source, modality = excluded.modality, updated_at = excluded.updated_at "
                "WHERE excluded.updated_at >= cameras.updated_at",
                (e.camera_id, e.state, e.reason, e.source, e.modality, e.ts))


class CameraStatusSink:
    """Moves camera status events from the bus into the store (run by the store's single writer)."""

    def __init__(self, bus: Bus, store: Store, consumer: str, claim_idle_ms: int = 30_000) -> None:
        self.bus, self.store, self.consumer, self.claim_idle_ms = bus, store, consumer, claim_idle_ms
        self.saved = 0
        self.dead_lettered = 0
        bus.ensure_group(STREAM_CAMERA_STATUS, GROUP_STATUS_STORE)

    def step(self, count: int = 100) -> int:
        """Store what is waiting (never blocks); returns how many events were saved."""
        msgs = self.bus.claim_stale(STREAM_CAMERA_STATUS, GROUP_STATUS_STORE, self.consumer, self.claim_idle_ms, count)
        msgs += self.bus.read(STREAM_CAMERA_STATUS, GROUP_STATUS_STORE, self.consumer, count, 0)
        if not msgs:
            return 0
        statuses: list[CameraStatusEvent] = []
        switches: list[ModalitySwitch] = []
        ids: list[str] = []
        for m in msgs:
            try:
                report = decode_report(m.data)
            except ContractError as e:
                self.bus.dead_letter(STREAM_CAMERA_STATUS, GROUP_STATUS_STORE, m, f"contract: {e}")
                self.dead_lettered += 1
                continue
            (statuses if isinstance(report, CameraStatusEvent) else switches).append(report)
            ids.append(m.id)
        save_statuses(self.store, statuses)  # durable first, then ack
        for event in switches:
            record_switch(self.store, event)  # idempotent: a redelivered event rewrites the same row
        self.bus.ack(STREAM_CAMERA_STATUS, GROUP_STATUS_STORE, ids)
        self.saved += len(ids)
        return len(ids)
