"""Camera reports from camera workers to the store (and so to the API's ``/cameras``).

A camera worker publishes on ``xreid:camera-status`` a ``CameraStatusEvent`` whenever a source
changes state (``connected | reconnecting | ended | failed``, with the reason), and a
``ModalitySwitch`` whenever a day/night camera changes modality. The store has one writer, the
matcher, so the matcher worker runs a ``CameraStatusSink`` (``pipeline/matcher/status_sink.py``): it
drains the stream, writes the ``cameras`` and ``modality_events`` tables, then acks. Reasons and source URLs are redacted when
the event is made, so a password never travels or lands on disk.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass

from models.errors import ContractError
from pipeline.bus.messages import contract_guard
from pipeline.config.redact import redact_text, redact_url
from pipeline.ingest.daynight import ModalitySwitch

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
