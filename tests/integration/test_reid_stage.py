from __future__ import annotations

import numpy as np

from pipeline.bus import GROUP_REID, STREAM_CLIPS, STREAM_EMBEDDINGS, MemoryBus, create_bus
from pipeline.bus.messages import Embedding
from pipeline.config.settings import ReidCfg
from pipeline.reid.stage import ReidStage, decode_crops
from tests.support.reid_helpers import CodeEncoder, jpeg, make_clip, paint_person


class OrderedBus(MemoryBus):
    """The real MemoryBus, recording the order of publishes and acks."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []

    def publish(self, stream: str, data: bytes) -> str:
        self.log.append(f"publish {stream}")
        return super().publish(stream, data)

    def ack(self, stream, group, ids):
        self.log.append(f"ack {stream} {len(ids)}")
        return super().ack(stream, group, ids)


def _embeddings(bus) -> dict[str, Embedding]:
    bus.ensure_group(STREAM_EMBEDDINGS, "check")
    out = {}
    for msg in bus.read(STREAM_EMBEDDINGS, "check", "t", 1000, 0):
        e = Embedding.from_bytes(msg.data)
        out[e.clip_id] = e
    return out


def _drain(stage: ReidStage) -> list[int]:
    sizes = []
    while (r := stage.step(block_ms=0)).consumed:
        sizes.append(r.consumed)
    return sizes


def test_batching_preserves_per_clip_results_with_controlled_test_encoder():
    bus, enc = OrderedBus(), CodeEncoder()
    clips = [make_clip(f"cam{i % 3}", f"u{i}", identity=i % 7, modality="ir" if i % 2 else "rgb") for i in range(11)]
    for c in clips:
        bus.publish(STREAM_CLIPS, c.to_bytes())
    bus.log.clear()
    stage = ReidStage(bus, enc, ReidCfg(max_batch=4, max_wait_ms=0))
    assert _drain(stage) == [4, 4, 3]
    assert enc.calls == [4, 4, 3], "one encoder call per batch"
    got = _embeddings(bus)
    assert set(got) == {c.clip_id for c in clips}
    single = CodeEncoder()
    for c in clips:
        e = got[c.clip_id]
        alone = single.encode([decode_crops(c, 4, 8, 4096)], [c.modality], [c.camera_id])[0]
        np.testing.assert_array_equal(e.vector, alone)
        assert (e.camera_id, e.modality, e.track_uid, e.model_id) == (c.camera_id, c.modality, c.track_uid, enc.model_id)
        assert int(np.argmax(e.vector)) == int(c.track_uid[1:]) % 7
        assert e.thumbnail == c.frames[-1], "the highest-scoring crop is the thumbnail"
    assert bus.pending(STREAM_CLIPS, GROUP_REID) == 0
    assert stage.counters.published == 11 and stage.counters.batch_sizes == {4: 2, 3: 1}
    # every ack follows the publishes of its batch
    assert bus.log[:5] == [f"publish {STREAM_EMBEDDINGS}"] * 4 + [f"ack {STREAM_CLIPS} 4"]


def test_batching_preserves_per_clip_results_with_tiny_xreid():
    import torch

    from models.xreid import create_model
    from models.xreid.encoder import ReidEncoder

    torch.manual_seed(0)
    enc = ReidEncoder.from_model(create_model("xreid_tiny"), "xreid_tiny@test")
    bus = MemoryBus()
    clips = [make_clip(f"cam{i % 2}", f"u{i}", identity=i, modality="ir" if i % 2 else "rgb", t=enc.seq_len,
                       size=(64 + 8 * i, 32 + 4 * i)) for i in range(6)]
    for c in clips:
        bus.publish(STREAM_CLIPS, c.to_bytes())
    stage = ReidStage(bus, enc, ReidCfg(max_batch=4, max_wait_ms=0))
    assert _drain(stage) == [4, 2]
    got = _embeddings(bus)
    for c in clips:
        alone = enc.encode([decode_crops(c, 64, 8, 4096)], [c.modality], [c.camera_id])[0]
        np.testing.assert_allclose(got[c.clip_id].vector, alone, atol=1e-5)
        assert got[c.clip_id].vector.shape == (enc.embed_dim,) and got[c.clip_id].model_id == "xreid_tiny@test"


def test_poison_clips_are_dead_lettered_with_reasons_and_the_worker_goes_on():
    bus, enc = MemoryBus(), CodeEncoder(fail_on_identity=9)
    good = [make_clip("cam1", f"g{i}", identity=i) for i in range(3)]
    broken_jpeg = b"\xff\xd8\xff\xe0" + b"\x00garbage" * 20
    poison = {
        "undecodable_jpeg": make_clip("cam1", "p1", 0, frames=(broken_jpeg,) * 4),
        "wrong_seq_len": make_clip("cam1", "p2", 0, t=ReidCfg().max_clip_frames + 1),
        "bad_shape": make_clip("cam1", "p3", 0, frames=(jpeg(paint_person(4, 2, 0, "rgb")),) * 4),
        "encoder_error": make_clip("cam1", "p4", identity=9),
    }
    order = [good[0], poison["undecodable_jpeg"], good[1], poison["wrong_seq_len"], poison["bad_shape"],
             poison["encoder_error"], good[2]]
    for c in order:
        bus.publish(STREAM_CLIPS, c.to_bytes())
    bus.publish(STREAM_CLIPS, b"XR\x01\x01 not a clip at all")
    stage = ReidStage(bus, enc, ReidCfg(max_batch=16, max_wait_ms=0))
    result = stage.step(block_ms=0)
    assert (result.consumed, result.published, result.dead_lettered) == (8, 3, 5)
    assert set(_embeddings(bus)) == {c.clip_id for c in good}
    dead = bus.dead_letters(STREAM_CLIPS)
    reasons = sorted(d.reason.split(":")[0] for d in dead)
    assert reasons == sorted(["contract", *poison])
    by_code = {d.reason.split(":")[0]: d for d in dead}
    for code, clip in poison.items():
        assert by_code[code].data == clip.to_bytes()
        assert clip.clip_id in by_code[code].reason
    assert "refuses identity 9" in by_code["encoder_error"].reason
    assert stage.counters.dead_lettered == {"contract": 1, "undecodable_jpeg": 1, "wrong_seq_len": 1,
                                            "bad_shape": 1, "encoder_error": 1}
    assert bus.pending(STREAM_CLIPS, GROUP_REID) == 0
    # the worker is still alive and serving
    bus.publish(STREAM_CLIPS, make_clip("cam2", "after", 5).to_bytes())
    assert stage.step(block_ms=0).published == 1


def test_reid_stage_over_redis_streams_with_controlled_test_encoder(redis_server):
    bus = create_bus(redis_server.url)
    try:
        clips = [make_clip("cam1", f"u{i}", identity=i % 5) for i in range(7)]
        for c in clips:
            bus.publish(STREAM_CLIPS, c.to_bytes())
        bus.publish(STREAM_CLIPS, make_clip("cam1", "bad", 0, t=ReidCfg().max_clip_frames + 1).to_bytes())
        stage = ReidStage(bus, CodeEncoder(), ReidCfg(max_batch=3, max_wait_ms=0), consumer="w1")
        assert sum(_drain(stage)) == 8
        assert set(_embeddings(bus)) == {c.clip_id for c in clips}
        assert [d.reason.split(":")[0] for d in bus.dead_letters(STREAM_CLIPS)] == ["wrong_seq_len"]
        assert bus.pending(STREAM_CLIPS, GROUP_REID) == 0
    finally:
        bus.close()


def test_stale_pending_clips_of_a_dead_worker_are_reclaimed():
    bus = MemoryBus()
    bus.ensure_group(STREAM_CLIPS, GROUP_REID)
    c = make_clip("cam1", "u1", 2)
    bus.publish(STREAM_CLIPS, c.to_bytes())
    assert len(bus.read(STREAM_CLIPS, GROUP_REID, "dead-worker", 10, 0)) == 1  # taken, never acked
    stage = ReidStage(bus, CodeEncoder(), ReidCfg(max_wait_ms=0), consumer="w2", claim_idle_ms=0)
    assert stage.step(block_ms=0).published == 1
    assert set(_embeddings(bus)) == {c.clip_id}
    assert bus.pending(STREAM_CLIPS, GROUP_REID) == 0


def test_clips_of_another_length_than_the_models_t_are_embedded_by_even_sampling():
    """Cameras configured for T=8 still feed a T=4 model: the encoder samples T crops evenly."""
    import torch

    from models.xreid import create_model
    from models.xreid.encoder import ReidEncoder

    torch.manual_seed(0)
    enc = ReidEncoder.from_model(create_model("xreid_tiny"), "xreid_tiny@test", device="cpu")
    bus = MemoryBus()
    clips = [make_clip("cam1", "long", 1, t=enc.seq_len * 2), make_clip("cam1", "short", 2, t=1)]
    for c in clips:
        bus.publish(STREAM_CLIPS, c.to_bytes())
    stage = ReidStage(bus, enc, ReidCfg(max_batch=8, max_wait_ms=0))
    assert stage.step(block_ms=0).published == 2
    got = _embeddings(bus)
    assert set(got) == {c.clip_id for c in clips}
    long_crops = decode_crops(clips[0], 64, 8, 4096)
    alone = enc.encode([long_crops], ["rgb"], ["cam1"])[0]
    np.testing.assert_allclose(got[clips[0].clip_id].vector, alone, atol=1e-5)
    assert bus.dead_letters(STREAM_CLIPS) == []
