"""100+ malformed entries on a live Redis stream are dead-lettered with reasons; valid ones keep flowing."""

from __future__ import annotations

import json
import random
import struct
import threading

import numpy as np
import redis

from pipeline.bus import STREAM_CLIPS, create_bus, decode_batch
from pipeline.bus.messages import Clip, Embedding, make_clip_id
from pipeline.config.settings import BusCfg
from tests.support.services import wait_until

GROUP = "reid"
_PREFIX = struct.Struct("<2sBBI")


def _clip(i: int) -> Clip:
    ts = 1_700_000_000.0 + i + np.arange(4, dtype=np.float64) * 0.1
    return Clip(clip_id=make_clip_id("cam1", f"s1-{i}", 0), camera_id="cam1", modality="rgb", track_uid=f"s1-{i}",
                segment=0, t_start=float(ts[0]), t_end=float(ts[-1]),
                frames=tuple(b"\xff\xd8" + bytes([i % 256]) * 50 + b"\xff\xd9" for _ in range(4)),
                boxes_xyxy=np.zeros((4, 4), np.float32), frame_ts=ts, det_scores=np.ones(4, np.float32))


def _frame(version: int, kind: int, header: bytes, body: bytes = b"") -> bytes:
    return _PREFIX.pack(b"XR", version, kind, len(header)) + header + body


def _malformed(rng: random.Random) -> list[tuple[str, dict[bytes, bytes]]]:
    """(expected reason fragment, raw entry fields) for every defect class a producer can commit."""
    good = _clip(9999).to_bytes()
    out: list[tuple[str, dict[bytes, bytes]]] = []
    for _ in range(40):
        out.append(("", {b"d": rng.randbytes(rng.randint(0, 3000))}))  # random bytes: any contract reason
    for v in (0, 2, 7, 255) * 4:
        out.append(("unknown wire version", {b"d": good[:2] + bytes([v]) + good[3:]}))
    for k in (0, 3, 9) * 3:
        out.append(("unknown message kind", {b"d": good[:3] + bytes([k]) + good[4:]}))
    for missing in ("camera_id", "track_uid", "segment", "t_start", "clip_id", "modality") * 2:
        head = {"clip_id": "cam1:x:0", "camera_id": "cam1", "modality": "rgb", "track_uid": "x", "segment": 0,
                "t_start": 0.0, "t_end": 1.0, "n_seen": 1, "blobs": [0, 0, 0, 0]}
        del head[missing]
        out.append(("lacks", {b"d": _frame(1, 1, json.dumps(head).encode())}))
    for cut in range(10):
        out.append(("", {b"d": good[: len(good) - 1 - cut * 7]}))  # truncated payloads
    for _ in range(5):
        out.append(("not valid JSON", {b"d": _frame(1, 1, b"{not json")}))
    for i in range(5):
        vec = np.zeros(8, np.float32)
        vec[i] = 1.0
        emb = Embedding(clip_id=make_clip_id("cam1", "e", i), camera_id="cam1", modality="ir", track_uid="e",
                        segment=i, t_start=0.0, t_end=1.0, vector=vec, model_id="m@1")
        out.append(("Embedding on a stream of Clip", {b"d": emb.to_bytes()}))
    for _ in range(5):
        out.append(("no payload field", {b"payload": b"x", b"v": b"1"}))
    for _ in range(3):
        out.append(("exceeds the bus limit", {b"d": b"\xff" * (2 * 1024 * 1024)}))
    rng.shuffle(out)
    return out


def test_malformed_entries_are_dead_lettered_while_valid_ones_flow(redis_server):
    rng = random.Random(5)
    bus = create_bus(redis_server.url, BusCfg(max_payload_bytes=1024 * 1024, dead_payload_max_bytes=4096))
    bus.ensure_group(STREAM_CLIPS, GROUP)
    raw = redis.Redis.from_url(redis_server.url)
    bad = _malformed(rng)
    assert len(bad) >= 100
    valid = [_clip(i) for i in range(60)]
    expected_reason: dict[str, str] = {}
    published: list[str] = []
    stored: list[str] = []  # the consumer's "durable write": clip ids, in order
    stop = threading.Event()

    def consumer() -> None:
        while not stop.is_set():
            msgs = bus.read(STREAM_CLIPS, GROUP, "worker-1", count=16, block_ms=200)
            ok = decode_batch(bus, STREAM_CLIPS, GROUP, msgs, Clip)
            stored.extend(clip.clip_id for _, clip in ok)
            bus.ack(STREAM_CLIPS, GROUP, [m.id for m, _ in ok])

    worker = threading.Thread(target=consumer)
    worker.start()
    try:
        order = [("bad", b) for b in bad] + [("good", c) for c in valid]
        rng.shuffle(order)
        for kind, item in order:
            if kind == "good":
                bus.publish(STREAM_CLIPS, item.to_bytes())
                published.append(item.clip_id)
            else:
                reason, fields = item
                expected_reason[raw.xadd(STREAM_CLIPS, fields).decode()] = reason
        wait_until(lambda: len(stored) == len(valid) and bus.length(STREAM_CLIPS + ":dead") == len(bad),
                   timeout=20, what="every entry consumed or dead-lettered")
    finally:
        stop.set()
        worker.join(timeout=10)
    assert stored == published, "valid clips arrive once each, in order, around the garbage"
    dead = bus.dead_letters(STREAM_CLIPS, count=1000)
    assert sorted(d.source_id for d in dead) == sorted(expected_reason)
    for d in dead:
        assert d.reason, f"entry {d.source_id} dead-lettered without a reason"
        assert expected_reason[d.source_id] in d.reason, (expected_reason[d.source_id], d.reason)
        assert len(d.data) <= 4096 and d.size >= len(d.data)
    assert bus.pending(STREAM_CLIPS, GROUP) == 0 and bus.lag(STREAM_CLIPS, GROUP) == 0
    assert bus.stats()["dead_lettered"] == len(bad)
    raw.close()
    bus.close()
