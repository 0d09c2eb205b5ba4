from __future__ import annotations

import struct

import numpy as np
import pytest

from models.errors import ContractError
from pipeline.bus.messages import Clip, Embedding, decode_message
from tests.support.messages import make_clip, make_embedding


def test_clip_round_trip_is_exact():
    clip = make_clip()
    back = Clip.from_bytes(clip.to_bytes())
    assert back.clip_id == clip.clip_id and back.frames == clip.frames and back.n_seen == 12
    np.testing.assert_array_equal(back.boxes_xyxy, clip.boxes_xyxy)
    np.testing.assert_array_equal(back.frame_ts, clip.frame_ts)
    assert back.frame_ts.dtype == np.float64 and back.det_scores.dtype == np.float32


def test_embedding_round_trip_is_exact():
    emb = make_embedding()
    back = decode_message(emb.to_bytes())
    assert isinstance(back, Embedding)
    np.testing.assert_array_equal(back.vector, emb.vector)
    assert back.model_id == emb.model_id and back.thumbnail == emb.thumbnail


@pytest.mark.parametrize("kw, match", [
    (dict(modality="uv"), "modality"),
    (dict(clip_id="cam1:other:0"), "clip_id"),
    (dict(t_end=50.0), "before t_start"),
    (dict(frames=()), "empty"),
    (dict(frames=(b"not a jpeg",) * 4), "JPEG"),
    (dict(boxes_xyxy=np.zeros((3, 4), np.float32)), "boxes_xyxy"),
    (dict(det_scores=np.full(4, np.nan, np.float32)), "non-finite"),
    (dict(segment=-1), "segment"),
])
def test_invalid_clip_is_refused_on_construction(kw, match):
    with pytest.raises(ContractError, match=match):
        make_clip(**kw)


def test_unnormalised_embedding_is_refused():
    with pytest.raises(ContractError, match="L2-normalised"):
        make_embedding(vector=np.ones(8, np.float32))


def _corruptions(payload: bytes):
    yield b"", "shorter"
    yield b"garbage" * 10, "magic"
    yield payload[:2] + bytes([99]) + payload[3:], "wire version"
    yield payload[:3] + bytes([2]) + payload[3:], "kind"
    yield payload[:-5], "blob sizes"
    yield payload + b"x", "blob sizes"
    yield payload[:4] + struct.pack("<I", 10**6) + payload[8:], "header length"
    yield payload[:8] + b"}" + payload[9:], "JSON"


def test_corrupt_clip_payloads_raise_contract_error():
    payload = make_clip().to_bytes()
    for bad, match in _corruptions(payload):
        with pytest.raises(ContractError, match=match):
            Clip.from_bytes(bad)


def test_random_bytes_never_escape_as_other_exceptions():
    rng = np.random.default_rng(1)
    payload = make_clip().to_bytes()
    for _ in range(300):
        data = bytearray(payload)
        for pos in rng.integers(0, len(data), size=int(rng.integers(1, 8))):
            data[pos] = int(rng.integers(0, 256))
        try:
            decode_message(bytes(data))
        except ContractError:
            pass


def test_missing_header_field_is_named():
    import json
    payload = make_embedding().to_bytes()
    head_len = struct.unpack_from("<I", payload, 4)[0]
    header = json.loads(payload[8:8 + head_len])
    del header["model_id"]
    head = json.dumps(header).encode()
    bad = payload[:4] + struct.pack("<I", len(head)) + head + payload[8 + head_len:]
    with pytest.raises(ContractError, match="model_id"):
        Embedding.from_bytes(bad)
