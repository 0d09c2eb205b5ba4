"""Wire contracts between stages: ``Clip`` (camera → re-ID) and ``Embedding`` (re-ID → matcher).

Both are frozen dataclasses validated on construction, so a malformed object cannot exist in
memory, and both encode to one versioned binary blob so Redis entries and in-memory queue items
are byte-identical. Decoding is strict: any defect raises ``ContractError`` with the reason,
which the bus turns into a dead-letter entry.

Wire layout (little endian)::

    b"XR" | version:u8 | kind:u8 | header_len:u32 | header (JSON, utf-8) | blob_0 | blob_1 | ...

The JSON header carries the scalar fields and the byte length of every blob, so the payload is
self-describing and its total length can be checked exactly.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self, TypeVar

import numpy as np

from models.errors import ContractError
from pipeline.config.ids import check_camera_id

WIRE_VERSION = 1
MODALITIES = ("rgb", "ir")
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024  # far above any real clip; guards decoders against garbage

_MAGIC = b"XR"
_PREFIX = struct.Struct("<2sBBI")
_KIND_CLIP = 1
_KIND_EMBEDDING = 2
_JPEG_SOI = b"\xff\xd8"


def make_clip_id(camera_id: str, track_uid: str, segment: int) -> str:
    """Deterministic clip id: a redelivered clip overwrites itself instead of duplicating."""
    return f"{camera_id}:{track_uid}:{segment}"


def _check_modality(modality: str, owner: str) -> None:
    if modality not in MODALITIES:
        raise ContractError(f"{owner}.modality must be one of {MODALITIES}, got {modality!r}")


def _check_span(t_start: float, t_end: float, owner: str) -> None:
    if not (math.isfinite(t_start) and math.isfinite(t_end)):
        raise ContractError(f"{owner} times must be finite, got {t_start}..{t_end}")
    if t_end < t_start:
        raise ContractError(f"{owner}.t_end {t_end} is before t_start {t_start}")


def _check_id(value: str, name: str, owner: str) -> None:
    if not isinstance(value, str) or not value:
        raise ContractError(f"{owner}.{name} must be a non-empty string, got {value!r}")


@dataclass(frozen=True, slots=True)
class _TrackSegment:
    """What both contracts share: the track segment a message is about, checked and framed alike.

    The field order is the order of the JSON header on the wire (the kind's own keys follow).
    """

    clip_id: str
    camera_id: str
    modality: str
    track_uid: str
    segment: int
    t_start: float
    t_end: float

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for name in ("camera_id", "track_uid"):
            _check_id(getattr(self, name), name, owner)
        check_camera_id(self.camera_id, f"{owner}.camera_id", ContractError)
        _check_modality(self.modality, owner)
        expected = make_clip_id(self.camera_id, self.track_uid, self.segment)
        if self.clip_id != expected:
            raise ContractError(f"{owner}.clip_id must be {expected!r}, got {self.clip_id!r}")
        _check_span(self.t_start, self.t_end, owner)

    def _header(self, **kind_fields: Any) -> dict[str, Any]:
        """The JSON header: the segment fields, then the ones only this kind has."""
        return {**{name: getattr(self, name) for name in _SEGMENT_FIELDS}, **kind_fields}

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Decode and check one payload; any defect raises ``ContractError`` with the reason."""
        return contract_guard(cls._from_bytes, data)  # type: ignore[attr-defined]


_SEGMENT_FIELDS = tuple(f.name for f in fields(_TrackSegment))


@dataclass(frozen=True, slots=True)
class Clip(_TrackSegment):
    """T person crops of one track segment, in time order.

    Attributes (after the segment's, see ``_TrackSegment``):
        frames: T JPEG-encoded crops.
        boxes_xyxy: (T, 4) float32 boxes in source pixels.
        frame_ts: (T,) float64 UTC epoch seconds of each crop's frame.
        det_scores: (T,) float32 detector confidence of each crop.
        n_seen: frames the track was observed in for this segment (>= T crops kept).
    """

    frames: tuple[bytes, ...]
    boxes_xyxy: np.ndarray
    frame_ts: np.ndarray
    det_scores: np.ndarray
    n_seen: int = 0
    v: int = WIRE_VERSION

    kind: ClassVar[int] = _KIND_CLIP

    def __post_init__(self) -> None:
        _TrackSegment.__post_init__(self)  # slots dataclasses cannot use zero-argument super()
        if not isinstance(self.segment, int) or self.segment < 0:
            raise ContractError(f"Clip.segment must be an int >= 0, got {self.segment!r}")
        t = len(self.frames)
        if t == 0:
            raise ContractError("Clip.frames is empty")
        for i, jpeg in enumerate(self.frames):
            if not isinstance(jpeg, bytes) or not jpeg.startswith(_JPEG_SOI):
                raise ContractError(f"Clip.frames[{i}] is not JPEG data")
        _check_array(self.boxes_xyxy, (t, 4), np.float32, "Clip.boxes_xyxy")
        _check_array(self.frame_ts, (t,), np.float64, "Clip.frame_ts")
        _check_array(self.det_scores, (t,), np.float32, "Clip.det_scores")
        if not isinstance(self.n_seen, int) or self.n_seen < 0:
            raise ContractError(f"Clip.n_seen must be an int >= 0, got {self.n_seen!r}")

    @property
    def seq_len(self) -> int:
        return len(self.frames)

    def to_bytes(self) -> bytes:
        header = self._header(n_seen=self.n_seen)
        blobs = [
            *self.frames,
            self.boxes_xyxy.astype("<f4").tobytes(),
            self.frame_ts.astype("<f8").tobytes(),
            self.det_scores.astype("<f4").tobytes(),
        ]
        return _encode(_KIND_CLIP, header, blobs)

    @classmethod
    def _from_bytes(cls, data: bytes) -> Clip:
        header, blobs = _decode(data, _KIND_CLIP)
        t = len(blobs) - 3
        if t < 1:
            raise ContractError(f"Clip payload has {len(blobs)} blobs, needs at least 4")
        scalars = _take(header, Clip, (*_SEGMENT_FIELDS, "n_seen"))
        return cls(
            **scalars,
            frames=tuple(blobs[:t]),
            boxes_xyxy=_array(blobs[t], "<f4", (t, 4), "boxes_xyxy").astype(np.float32),
            frame_ts=_array(blobs[t + 1], "<f8", (t,), "frame_ts").astype(np.float64),
            det_scores=_array(blobs[t + 2], "<f4", (t,), "det_scores").astype(np.float32),
        )


@dataclass(frozen=True, slots=True)
class Embedding(_TrackSegment):
    """One clip's X-ReID vector, tagged with the model that made it.

    Attributes (after the segment's, see ``_TrackSegment``):
        vector: (D,) float32, L2-normalised.
        model_id: ``name@hash``; vectors of different models never share a gallery.
        thumbnail: one JPEG crop representing the clip (may be empty bytes).
    """

    vector: np.ndarray
    model_id: str
    thumbnail: bytes = field(default=b"")
    v: int = WIRE_VERSION

    kind: ClassVar[int] = _KIND_EMBEDDING

    def __post_init__(self) -> None:
        _TrackSegment.__post_init__(self)  # slots dataclasses cannot use zero-argument super()
        _check_id(self.model_id, "model_id", "Embedding")
        vec = self.vector
        if not isinstance(vec, np.ndarray) or vec.ndim != 1 or vec.size == 0:
            raise ContractError(f"Embedding.vector must be a non-empty 1-D array, got {getattr(vec, 'shape', vec)!r}")
        if vec.dtype != np.float32:
            raise ContractError(f"Embedding.vector must be float32, got {vec.dtype}")
        if not np.all(np.isfinite(vec)):
            raise ContractError("Embedding.vector has non-finite values")
        norm = float(np.linalg.norm(vec))
        if abs(norm - 1.0) > 1e-3:
            raise ContractError(f"Embedding.vector must be L2-normalised, norm is {norm:.4f}")
        if self.thumbnail and not self.thumbnail.startswith(_JPEG_SOI):
            raise ContractError("Embedding.thumbnail is not JPEG data")

    def to_bytes(self) -> bytes:
        header = self._header(model_id=self.model_id, dim=int(self.vector.size))
        return _encode(_KIND_EMBEDDING, header, [self.vector.astype("<f4").tobytes(), self.thumbnail])

    @classmethod
    def _from_bytes(cls, data: bytes) -> Embedding:
        header, blobs = _decode(data, _KIND_EMBEDDING)
        if len(blobs) != 2:
            raise ContractError(f"Embedding payload has {len(blobs)} blobs, needs 2")
        scalars = _take(header, Embedding, (*_SEGMENT_FIELDS, "model_id", "dim"))
        dim = scalars.pop("dim")
        vector = _array(blobs[0], "<f4", (dim,), "vector").astype(np.float32)
        return cls(**scalars, vector=vector, thumbnail=blobs[1])


def decode_message(data: bytes) -> Clip | Embedding:
    """Decode either contract by its kind byte; raises ``ContractError`` for anything else."""
    if len(data) < _PREFIX.size:
        raise ContractError(f"payload of {len(data)} bytes is shorter than the {_PREFIX.size}-byte prefix")
    kind = data[3]
    if kind == _KIND_CLIP:
        return Clip.from_bytes(data)
    if kind == _KIND_EMBEDDING:
        return Embedding.from_bytes(data)
    raise ContractError(f"unknown message kind {kind}")


@dataclass(frozen=True, slots=True)
class PayloadOwner:
    """Whose data a payload carries, read from its header alone (a dead letter may be truncated or broken)."""

    camera_id: str | None
    track_uid: str | None
    t_end: float | None


def payload_owner(data: bytes) -> PayloadOwner | None:
    """The camera, track and end time a ``Clip``/``Embedding`` payload names; ``None`` when its header cannot
    be read. Used by erasure and retention on dead letters, which failed decoding and may be cut short,
    so nothing beyond the header is checked."""
    if len(data) < _PREFIX.size:
        return None
    magic, _version, _kind, head_len = _PREFIX.unpack_from(data)
    head = data[_PREFIX.size:_PREFIX.size + head_len]
    if magic != _MAGIC or len(head) != head_len:
        return None
    try:
        header = json.loads(head.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(header, dict):
        return None
    cam, uid, t_end = header.get("camera_id"), header.get("track_uid"), header.get("t_end")
    return PayloadOwner(cam if isinstance(cam, str) else None, uid if isinstance(uid, str) else None,
                        float(t_end) if isinstance(t_end, (int, float)) and not isinstance(t_end, bool) else None)


# ---------------------------------------------------------------------------------------------
# framing

_MAX_REASON_CHARS = 300
_T = TypeVar("_T")


def _short(text: str) -> str:
    """A reason short enough for a log line and a dead-letter entry, whatever the payload held."""
    return text if len(text) <= _MAX_REASON_CHARS else text[:_MAX_REASON_CHARS] + "..."


def contract_guard(decode: Callable[[bytes], _T], data: bytes) -> _T:
    """Run ``decode`` so that one hostile payload can only ever fail as a ``ContractError``.

    The checks above name every defect we know of; this catches the ones we do not (an exception
    a crafted header provokes deep inside json, numpy or a constructor), so the consumer
    dead-letters the entry with a reason instead of dying and taking its batch-mates with it.
    """
    try:
        return decode(data)
    except ContractError as e:
        raise ContractError(_short(str(e))) from None
    except Exception as e:  # noqa: BLE001 - not swallowed: becomes this entry's dead-letter reason
        raise ContractError(f"malformed payload ({type(e).__name__}: {_short(str(e))})") from e


def _check_array(arr: Any, shape: tuple[int, ...], dtype: Any, name: str) -> None:
    if not isinstance(arr, np.ndarray):
        raise ContractError(f"{name} must be a numpy array, got {type(arr).__name__}")
    if arr.shape != shape or arr.dtype != dtype:
        raise ContractError(f"{name} must be {shape} {np.dtype(dtype).name}, got {arr.shape} {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ContractError(f"{name} has non-finite values")


def _encode(kind: int, header: dict[str, Any], blobs: list[bytes]) -> bytes:
    header = {**header, "blobs": [len(b) for b in blobs]}
    head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    return b"".join([_PREFIX.pack(_MAGIC, WIRE_VERSION, kind, len(head)), head, *blobs])


def _decode(data: bytes, kind: int) -> tuple[dict[str, Any], list[bytes]]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ContractError(f"payload must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ContractError(f"payload of {len(data)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
    if len(data) < _PREFIX.size:
        raise ContractError(f"payload of {len(data)} bytes is shorter than the {_PREFIX.size}-byte prefix")
    magic, version, got_kind, head_len = _PREFIX.unpack_from(data)
    if magic != _MAGIC:
        raise ContractError(f"bad magic {magic!r}: not an xreid message")
    if version != WIRE_VERSION:
        raise ContractError(f"unknown wire version {version} (this build reads {WIRE_VERSION})")
    if got_kind != kind:
        raise ContractError(f"message kind {got_kind} where kind {kind} was expected")
    body = data[_PREFIX.size:]
    if head_len > len(body):
        raise ContractError(f"header length {head_len} exceeds payload")
    try:
        header = json.loads(body[:head_len].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:  # ValueError: bad JSON, or an integer past 4300 digits
        raise ContractError(f"header is not valid JSON: {_short(str(e))}") from e
    except RecursionError:
        raise ContractError("header is nested too deeply to decode") from None
    if not isinstance(header, dict):
        raise ContractError("header must be a JSON object")
    sizes = header.pop("blobs", None)
    if not isinstance(sizes, list) or not all(isinstance(n, int) and n >= 0 for n in sizes):
        raise ContractError("header.blobs must be a list of non-negative sizes")
    rest = body[head_len:]
    if sum(sizes) != len(rest):
        raise ContractError(f"blob sizes add up to {sum(sizes)} bytes but {len(rest)} follow the header")
    blobs, offset = [], 0
    for n in sizes:
        blobs.append(rest[offset:offset + n])
        offset += n
    return header, blobs


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "segment": (int,),
    "n_seen": (int,),
    "dim": (int,),
    "t_start": (int, float),
    "t_end": (int, float),
}


def _take(header: dict[str, Any], owner: type, names: tuple[str, ...]) -> dict[str, Any]:
    missing = [n for n in names if n not in header]
    if missing:
        raise ContractError(f"{owner.__name__} header lacks {', '.join(missing)}")
    out: dict[str, Any] = {}
    for n in names:
        value = header[n]
        allowed = _FIELD_TYPES.get(n, (str,))
        if isinstance(value, bool) or not isinstance(value, allowed):
            raise ContractError(f"{owner.__name__}.{n} has type {type(value).__name__}")
        if n in ("t_start", "t_end"):
            try:
                value = float(value)
            except OverflowError:
                raise ContractError(f"{owner.__name__}.{n} is out of the float range") from None
        out[n] = value
    if out.get("dim", 1) <= 0:
        raise ContractError(f"{owner.__name__}.dim must be positive")
    return out


def _array(blob: bytes, dtype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    need = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if len(blob) != need:
        raise ContractError(f"{name} has {len(blob)} bytes, expected {need} for shape {shape}")
    return np.frombuffer(blob, dtype=dtype).reshape(shape)
