"""Bus payloads a hostile or broken producer can send: valid framing around a poisoned header.

The three named defects reproduce issue 19 item 5 (each used to kill the consuming worker with an
exception the decoder did not expect); ``reframe`` rebuilds a payload around any edited header,
keeping the blobs, so tests can poison one field at a time.
"""

from __future__ import annotations

import json
import struct

PREFIX = struct.Struct("<2sBBI")


def split(payload: bytes) -> tuple[int, dict, bytes]:
    """(kind, header, blob bytes) of a valid payload."""
    _magic, _version, kind, head_len = PREFIX.unpack_from(payload)
    head = payload[PREFIX.size:PREFIX.size + head_len]
    return kind, json.loads(head), payload[PREFIX.size + head_len:]


def reframe(kind: int, header_json: bytes, body: bytes, version: int = 1) -> bytes:
    """A payload with correct framing (magic, lengths) around ``header_json``."""
    return PREFIX.pack(b"XR", version, kind, len(header_json)) + header_json + body


def with_raw_field(payload: bytes, name: str, raw_json: str) -> bytes:
    """``payload`` with header field ``name`` replaced by the literal JSON text ``raw_json``."""
    kind, header, body = split(payload)
    header[name] = "\x00PLACEHOLDER\x00"
    text = json.dumps(header).replace(json.dumps("\x00PLACEHOLDER\x00"), raw_json)
    return reframe(kind, text.encode(), body)


def huge_float_field(payload: bytes, name: str = "t_start") -> bytes:
    """``name`` = 10**400: valid JSON, a Python int that ``float()`` overflows on."""
    return with_raw_field(payload, name, "1" + "0" * 400)


def many_digit_field(payload: bytes, name: str = "segment") -> bytes:
    """``name`` = a 5,000-digit integer: ``json.loads`` refuses it with ValueError."""
    return with_raw_field(payload, name, "7" * 5000)


def deep_header(payload: bytes, depth: int = 100_000) -> bytes:
    """An extra header field nested ``depth`` lists deep: ``json.loads`` raises RecursionError."""
    return with_raw_field(payload, "x", "[" * depth + "]" * depth)


REPROS = {"t_start=10^400": huge_float_field, "5000-digit int": many_digit_field, "nested 100000 deep": deep_header}
