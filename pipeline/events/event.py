"""The live event contract: one versioned JSON object per thing an operator may want to be told.

An ``Event`` is what the matcher (and the camera status sink) hands to ``EventHub.publish``; every
publisher (MQTT, webhooks, Server-Sent Events) sends the same JSON text, so a receiver parses one
schema whatever the transport::

    {"v": 1, "kind": "track.started", "event_id": "3f9c…", "ts": 1700000000.5, "site": "lobby",
     "payload": {"camera_id": "cam1", "track_uid": "cam1-17", "modality": "rgb", "t_start": 1700000000.5}}

Like the bus messages (``pipeline/bus/messages.py``) an event is a frozen dataclass checked on
construction, and decoding is strict: any defect raises ``ContractError`` with the reason. Payloads
are small and carry no crops or embeddings: a receiver that wants pixels fetches them from the API
(a watchlist hit names the path), where the token and retention rules apply.

``event_id`` is derived from the kind, the site and the fact's natural key (a track's uid, an
identity number, a merge's pair), so the same fact announced twice (a redelivered clip, a publisher
retrying after a broker restart) carries the same id and receivers can deduplicate on it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from models.errors import ContractError
from pipeline.bus.messages import MODALITIES, contract_guard
from pipeline.config.ids import SITE_PATTERN, is_camera_id

EVENT_VERSION = 1
MAX_EVENT_BYTES = 16 * 1024        # one event is a few hundred bytes; this bounds what a decoder accepts
MAX_SCORES = 64                    # watchlist hit: one score per reference image at most this many
CAMERA_STATES = ("connected", "reconnecting", "ended", "failed")   # pipeline/camera/status.py STATES

EVENT_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}"   # safe in an SSE ``id:`` line and an HTTP header
_SITE = re.compile(SITE_PATTERN)
_EVENT_ID = re.compile(EVENT_ID_PATTERN)
_TOP_FIELDS = ("v", "kind", "event_id", "ts", "site", "payload")
_MAX_TEXT = 512


# ---------------------------------------------------------------------------------------------
# payload field checks: each returns the value (normalised) or raises ContractError naming the field

def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_TEXT:
        raise ContractError(f"{name} must be a non-empty string of at most {_MAX_TEXT} characters, got {value!r:.80}")
    return value


def _free_text(value: Any, name: str) -> str:
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise ContractError(f"{name} must be a string of at most {_MAX_TEXT} characters")
    return value


def _camera(value: Any, name: str) -> str:
    if not is_camera_id(value):
        raise ContractError(f"{name} must be a camera id, got {value!r:.80}")
    return value


def _modality(value: Any, name: str) -> str:
    if value not in MODALITIES:
        raise ContractError(f"{name} must be one of {MODALITIES}, got {value!r:.80}")
    return value


def _opt_modality(value: Any, name: str) -> str | None:
    return None if value is None else _modality(value, name)


def _state(value: Any, name: str) -> str:
    if value not in CAMERA_STATES:
        raise ContractError(f"{name} must be one of {CAMERA_STATES}, got {value!r:.80}")
    return value


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ContractError(f"{name} must be an integer >= 0, got {value!r:.80}")
    return value


def _opt_int(value: Any, name: str) -> int | None:
    return None if value is None else _int(value, name)


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ContractError(f"{name} must be a number, got {type(value).__name__}")
    try:
        out = float(value)
    except OverflowError:
        raise ContractError(f"{name} is out of the float range") from None
    if not math.isfinite(out):
        raise ContractError(f"{name} must be finite, got {value!r}")
    return out


def _opt_number(value: Any, name: str) -> float | None:
    return None if value is None else _number(value, name)


def _scores(value: Any, name: str) -> list[float]:
    if not isinstance(value, (list, tuple)) or len(value) > MAX_SCORES:
        raise ContractError(f"{name} must be a list of at most {MAX_SCORES} numbers")
    return [_number(v, f"{name}[{i}]") for i, v in enumerate(value)]


def _api_path(value: Any, name: str) -> str:
    """A path on the xreid API (``/tracks/<uid>/crops``): never a full URL, never a file path."""
    if (not isinstance(value, str) or not value.startswith("/") or value.startswith("//") or len(value) > _MAX_TEXT
            or any(c.isspace() or ord(c) < 0x20 for c in value) or ".." in value.split("/")):
        raise ContractError(f"{name} must be an absolute API path like '/tracks/<uid>/crops', got {value!r:.80}")
    return value


_Check = Callable[[Any, str], Any]

# kind -> (payload field -> check); every field is required (null where the check allows it), no others allowed
PAYLOADS: Mapping[str, Mapping[str, _Check]] = MappingProxyType({
    "track.started": {"camera_id": _camera, "track_uid": _text, "modality": _modality, "t_start": _number},
    "track.ended": {"camera_id": _camera, "track_uid": _text, "modality": _modality, "t_start": _number,
                    "t_end": _number, "identity": _opt_int},
    "identity.created": {"identity": _int, "camera_id": _camera, "track_uid": _text, "modality": _modality},
    "identity.linked": {"identity": _int, "camera_id": _camera, "track_uid": _text, "modality": _modality,
                        "score": _number, "threshold": _number, "matched_track_uid": _text},
    "identity.merged": {"winner": _int, "loser": _int, "evidence_track_uid": _text, "score": _number},
    "modality.switch": {"camera_id": _camera, "from_modality": _opt_modality, "to_modality": _modality,
                        "saturation": _opt_number, "correlation": _opt_number},
    "camera.status": {"camera_id": _camera, "state": _state, "reason": _free_text, "source": _free_text,
                      "modality": _free_text},
    "watchlist.hit": {"watchlist_id": _int, "name": _text, "identity": _opt_int, "camera_id": _camera,
                      "track_uid": _text, "modality": _modality, "model_id": _text, "score": _number,
                      "threshold": _number, "scores": _scores, "crops_path": _api_path},
})
KINDS: tuple[str, ...] = tuple(PAYLOADS)

# kind -> what makes two announcements the same fact ("@ts": the event's own time)
_NATURAL_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "track.started": ("camera_id", "track_uid"),
    "track.ended": ("camera_id", "track_uid"),
    "identity.created": ("identity",),
    "identity.linked": ("track_uid", "identity"),
    "identity.merged": ("winner", "loser"),
    "modality.switch": ("camera_id", "@ts"),
    "camera.status": ("camera_id", "state", "@ts"),
    "watchlist.hit": ("watchlist_id", "camera_id", "track_uid"),
})

# payload fields that name a track (by uid) or an identity: what forget and retention look for
TRACK_FIELDS = ("track_uid", "matched_track_uid", "evidence_track_uid")
IDENTITY_FIELDS = ("identity", "winner", "loser")


def check_site(site: Any, what: str = "Event.site") -> str:
    """Return ``site`` when it can be an MQTT topic level and a metric label; else ``ContractError``."""
    if not isinstance(site, str) or _SITE.fullmatch(site) is None:
        raise ContractError(f"{what} must match {SITE_PATTERN}, got {site!r:.80}")
    return site


def make_event_id(kind: str, site: str, ts: float, payload: Mapping[str, Any]) -> str:
    """The id of this fact: equal for every announcement of it, different for different facts.

    32 hex digits of SHA-256 over the version, kind, site and the kind's natural key.
    """
    key = [EVENT_VERSION, kind, site]
    for name in _NATURAL_KEYS[kind]:
        key.append(repr(float(ts)) if name == "@ts" else payload[name])
    return hashlib.sha256(json.dumps(key, separators=(",", ":")).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Event:
    """One live event. Build with ``Event.make``; decode with ``Event.from_json``.

    Attributes:
        kind: one of ``KINDS`` (``track.started`` …).
        event_id: stable id of the fact (see module doc); receivers deduplicate on it.
        ts: UTC epoch seconds when the fact happened (the evidence's time, not the publish time).
        site: the deployment's name (``events.site``); part of the MQTT topic.
        payload: the kind's fields (``PAYLOADS[kind]``), read-only.
    """

    kind: str
    event_id: str
    ts: float
    site: str
    payload: Mapping[str, Any]
    v: int = EVENT_VERSION

    def __post_init__(self) -> None:
        if self.v != EVENT_VERSION or isinstance(self.v, bool):
            raise ContractError(f"unknown event version {self.v!r} (this build reads {EVENT_VERSION})")
        if self.kind not in PAYLOADS:
            raise ContractError(f"Event.kind must be one of {KINDS}, got {self.kind!r:.80}")
        if not isinstance(self.event_id, str) or _EVENT_ID.fullmatch(self.event_id) is None:
            raise ContractError(f"Event.event_id must match {EVENT_ID_PATTERN}, got {self.event_id!r:.80}")
        object.__setattr__(self, "ts", _number(self.ts, "Event.ts"))
        check_site(self.site)
        object.__setattr__(self, "payload", MappingProxyType(_check_payload(self.kind, self.payload)))

    @classmethod
    def make(cls, kind: str, site: str, ts: float, event_id: str | None = None, **payload: Any) -> Event:
        """A checked event whose id is derived from its natural key unless ``event_id`` is given.

        Raises:
            ContractError: an unknown kind, a missing, extra or malformed payload field.
        """
        if kind not in PAYLOADS:
            raise ContractError(f"Event.kind must be one of {KINDS}, got {kind!r:.80}")
        checked = _check_payload(kind, payload)
        if event_id is None:
            event_id = make_event_id(kind, check_site(site), _number(ts, "Event.ts"), checked)
        return cls(kind=kind, event_id=event_id, ts=ts, site=site, payload=checked)

    @property
    def tracks(self) -> tuple[str, ...]:
        """The track uids the event names (the store's event log keeps them for forget and retention)."""
        return tuple(self.payload[f] for f in TRACK_FIELDS if self.payload.get(f) is not None)

    @property
    def identities(self) -> tuple[int, ...]:
        """The identity ids the event names."""
        return tuple(self.payload[f] for f in IDENTITY_FIELDS if self.payload.get(f) is not None)

    def as_dict(self) -> dict[str, Any]:
        return {"v": self.v, "kind": self.kind, "event_id": self.event_id, "ts": self.ts, "site": self.site,
                "payload": dict(self.payload)}

    def to_json(self) -> str:
        """Compact JSON (one line: safe as an SSE ``data:`` field)."""
        return json.dumps(self.as_dict(), separators=(",", ":"), allow_nan=False, ensure_ascii=False)

    @classmethod
    def from_json(cls, data: str | bytes) -> Event:
        """Decode and check one event; any defect raises ``ContractError`` with the reason."""
        return contract_guard(cls._from_json, data)

    @classmethod
    def _from_json(cls, data: str | bytes) -> Event:
        if not isinstance(data, (str, bytes, bytearray)):
            raise ContractError(f"event must be JSON text, got {type(data).__name__}")
        if len(data) > MAX_EVENT_BYTES:
            raise ContractError(f"event of {len(data)} bytes exceeds the {MAX_EVENT_BYTES}-byte limit")
        try:
            d = json.loads(data)
        except (UnicodeDecodeError, ValueError) as e:
            raise ContractError(f"event is not valid JSON: {e}") from None
        if not isinstance(d, dict):
            raise ContractError("event must be a JSON object")
        missing = [k for k in _TOP_FIELDS if k not in d]
        if missing:
            raise ContractError(f"event lacks {', '.join(missing)}")
        extra = sorted(set(d) - set(_TOP_FIELDS))
        if extra:
            raise ContractError(f"event has unknown fields {', '.join(map(str, extra))}")
        if not isinstance(d["payload"], dict):
            raise ContractError("event payload must be a JSON object")
        return cls(kind=d["kind"], event_id=d["event_id"], ts=d["ts"], site=d["site"], payload=d["payload"],
                   v=d["v"])


def _check_payload(kind: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(payload, Mapping):
        raise ContractError(f"{kind} payload must be a mapping, got {type(payload).__name__}")
    spec = PAYLOADS[kind]
    missing = [k for k in spec if k not in payload]
    if missing:
        raise ContractError(f"{kind} payload lacks {', '.join(missing)}")
    extra = sorted(str(k) for k in set(payload) - set(spec))
    if extra:  # also what keeps crops and vectors out: no field can carry them
        raise ContractError(f"{kind} payload has unknown fields {', '.join(extra)}")
    return {name: check(payload[name], f"{kind}.{name}") for name, check in spec.items()}
