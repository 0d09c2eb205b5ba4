"""Retention and erasure on the bus, one contract for MemoryBus and RedisBus (a real redis-server):
``trim_before`` drops every entry older than a horizon (pending ones too), ``delete_dead_letters``
drops named dead letters, and the groups carry on reading what is left."""

from __future__ import annotations

import pytest

from pipeline.bus import create_bus, dead_stream
from pipeline.bus.base import Message
from pipeline.bus.messages import payload_owner
from pipeline.config.settings import BusCfg
from tests.support.reid_helpers import make_clip

S = "test:clips"


@pytest.fixture(params=["memory", "redis"])
def bus(request):
    url = "memory" if request.param == "memory" else request.getfixturevalue("redis_server").url
    b = create_bus(url, BusCfg())
    yield b
    b.close()


def _ms(entry_id: str) -> int:
    return int(entry_id.split("-")[0])


def test_trim_before_drops_older_entries_pending_or_not_and_reading_goes_on(bus):
    bus.ensure_group(S, "g")
    old = [bus.publish(S, b"old%d" % i) for i in range(3)]
    pending = bus.read(S, "g", "c1", 2)                     # two of the old ones are handed out, not acked
    assert [m.id for m in pending] == old[:2]
    horizon = _ms(old[-1]) + 1
    ids = list(old)
    while _ms(ids[-1]) < horizon:                           # publish until an entry is newer than the horizon
        ids.append(bus.publish(S, b"new"))
    older = sum(_ms(i) < horizon for i in ids)
    assert older >= 3 and older < len(ids)
    assert bus.trim_before(S, horizon) == older
    assert bus.length(S) == len(ids) - older
    assert bus.trim_before(S, horizon) == 0, "idempotent"
    rest = bus.read(S, "g", "c1", 100)
    assert rest and all(_ms(m.id) >= horizon for m in rest), "the group reads on past the trimmed entries"
    assert bus.ack(S, "g", [m.id for m in rest]) == len(rest)
    assert bus.claim_stale(S, "g", "c2", 0, 10) == [], "trimmed pending entries are not handed out again"


def test_dead_letters_of_one_track_are_deleted_by_id_and_others_stay(bus):
    bus.ensure_group(S, "g")
    mine, other = make_clip("cam1", "run1-7", identity=1), make_clip("cam1", "run1-8", identity=2)
    for clip in (mine, other, mine):
        bus.publish(S, clip.to_bytes())
    for m in bus.read(S, "g", "c1", 10):
        bus.dead_letter(S, "g", Message(m.id, m.data[:200], m.deliveries), "poison")   # truncated, as kept
    dead = bus.dead_letters(S)
    owners = [payload_owner(d.data) for d in dead]
    assert [o.track_uid for o in owners] == ["run1-7", "run1-8", "run1-7"] and owners[0].camera_id == "cam1"
    hits = [d.id for d, o in zip(dead, owners, strict=True) if o.track_uid == "run1-7"]
    assert bus.delete_dead_letters(S, hits) == 2
    assert [payload_owner(d.data).track_uid for d in bus.dead_letters(S)] == ["run1-8"]
    assert bus.length(dead_stream(S)) == 1
    assert bus.delete_dead_letters(S, hits) == 0, "idempotent"


def test_payload_owner_reads_only_headers_and_refuses_garbage():
    clip = make_clip("cam2", "r-1", identity=0)
    owner = payload_owner(clip.to_bytes()[:60])
    assert owner is None or owner.track_uid in (None, "r-1")   # cut inside the header: unreadable, never wrong
    full = payload_owner(clip.to_bytes())
    assert (full.camera_id, full.track_uid, full.t_end) == ("cam2", "r-1", clip.t_end)
    assert payload_owner(b"garbage") is None and payload_owner(b"") is None
