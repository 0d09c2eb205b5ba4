"""Camera reports from camera workers to the store (and so to the API's ``/cameras``).

A camera worker publishes on ``xreid:camera-status`` a ``CameraStatusEvent`` whenever a source
changes state (``connected | reconnecting | ended | failed``, with the reason), a
``ModalitySwitch`` whenever a day/night camera changes modality, and a ``TrackEnded`` when its tracker
drops a track that became at least one clip (the camera is the only one that knows a track is over;
the matcher announces it once the track's clips are matched). The store has one writer, the
matcher, so the matcher worker runs a ``CameraStatusSink`` (``pipeline/matcher/status_sink.py``): it
drains the stream, writes the ``cameras`` and ``modality_events`` tables, then acks. Reasons and source URLs are redacted when
the event is made, so a password never travels or lands on disk.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass

from models.errors import ContractError
from pipeline.bus.messages import MODALITIES, contract_guard
from pipeline.camera.clipbuffer import TrackSummary
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


@dataclass(frozen=True, slots=True)
class TrackEnded:
    """A camera's tracker dropped a track after ``n_clips`` clips (>= 1) of it were published.

    Attributes:
        t_start, t_end: UTC epoch seconds of its first and last observed frame.
        n_frames: frames it was observed in.
    """

    camera_id: str
    track_uid: str
    modality: str
    t_start: float
    t_end: float
    n_frames: int
    n_clips: int

    def __post_init__(self) -> None:
        for name in ("camera_id", "track_uid"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ContractError(f"TrackEnded.{name} must be a non-empty string")
        if self.modality not in MODALITIES:
            raise ContractError(f"TrackEnded.modality must be one of {MODALITIES}, got {self.modality!r}")
        for name in ("t_start", "t_end"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ContractError(f"TrackEnded.{name} must be a finite number, got {v!r}")
        if self.t_end < self.t_start:
            raise ContractError(f"TrackEnded.t_end {self.t_end} is before t_start {self.t_start}")
        for name in ("n_frames", "n_clips"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ContractError(f"TrackEnded.{name} must be an integer >= 0, got {v!r}")

    def to_bytes(self) -> bytes:
        return json.dumps({"v": _VERSION, "kind": "track_ended", "camera_id": self.camera_id,
                           "track_uid": self.track_uid, "modality": self.modality, "t_start": self.t_start,
                           "t_end": self.t_end, "n_frames": self.n_frames, "n_clips": self.n_clips}).encode()


def track_ended_reports(summaries: Iterable[TrackSummary]) -> list[TrackEnded]:
    """The ``TrackEnded`` reports of the summaries of ended tracks that became clips (others are noise)."""
    return [TrackEnded(s.camera_id, s.track_uid, s.modality, float(s.t_start), float(s.t_end), int(s.n_frames),
                       int(s.n_clips)) for s in summaries if s.ended and s.n_clips > 0]


def switch_to_bytes(event: ModalitySwitch) -> bytes:
    """A day/night camera's modality event as a status-stream message."""
    def num(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    return json.dumps({"v": _VERSION, "kind": "modality_switch", "camera_id": event.camera_id, "ts": event.ts,
                       "from_modality": event.from_modality, "to_modality": event.to_modality,
                       "saturation": num(event.saturation), "correlation": num(event.correlation)}).encode()


Report = CameraStatusEvent | ModalitySwitch | TrackEnded


def decode_report(data: bytes) -> Report:
    """Any report kind of the status stream; raises ``ContractError`` for anything else."""
    return contract_guard(_decode_report, data)


def _decode_report(data: bytes) -> Report:
    try:
        d = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ContractError(f"camera report is not JSON: {e}") from None
    if isinstance(d, dict) and d.get("kind") == "track_ended" and d.get("v") == _VERSION:
        try:
            return TrackEnded(d["camera_id"], d["track_uid"], d["modality"], d["t_start"], d["t_end"],
                              d["n_frames"], d["n_clips"])
        except KeyError as e:
            raise ContractError(f"track ended report lacks {e.args[0]}") from None
    if isinstance(d, dict) and d.get("kind") == "modality_switch" and d.get("v") == _VERSION:
        try:
            return ModalitySwitch(d["camera_id"], float(d["ts"]), d["from_modality"], d["to_modality"],
                                  math.nan if d["saturation"] is None else float(d["saturation"]),
                                  math.nan if d["correlation"] is None else float(d["correlation"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ContractError(f"modality switch report is malformed: {e!r}") from None
    return CameraStatusEvent.from_bytes(data)
