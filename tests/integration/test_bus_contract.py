"""One contract, two buses: MemoryBus and RedisBus (against a real redis-server) behave the same."""

from __future__ import annotations

import threading

import pytest

from models.errors import ContractError
from pipeline.bus import MemoryBus, create_bus, dead_stream
from pipeline.config.settings import BusCfg
from tests.support.services import wait_until

S = "test:clips"


@pytest.fixture(params=["memory", "redis"])
def make_bus(request):
    """Factory of buses of the parametrised kind; every bus it makes is closed after the test."""
    made = []

    def make(**cfg):
        url = "memory" if request.param == "memory" else request.getfixturevalue("redis_server").url
        bus = create_bus(url, BusCfg(**cfg))
        made.append(bus)
        return bus

    yield make
    for bus in made:
        bus.close()


@pytest.fixture
def bus(make_bus):
    return make_bus()


def _publish(bus, n: int, prefix: bytes = b"m") -> list[str]:
    return [bus.publish(S, prefix + str(i).encode()) for i in range(n)]


def test_payloads_round_trip_byte_exact(bus):
    bus.ensure_group(S, "g")
    payloads = [b"", b"\x00\xff" * 100, bytes(range(256)), b"x" * 70_000]
    ids = [bus.publish(S, p) for p in payloads]
    got = bus.read(S, "g", "c1", count=10)
    assert [m.id for m in got] == ids
    assert [m.data for m in got] == payloads
    assert all(m.deliveries == 1 for m in got)


def test_read_hands_out_each_entry_once_per_group_in_batches(bus):
    bus.ensure_group(S, "g")
    ids = _publish(bus, 5)
    first = bus.read(S, "g", "c1", count=3)
    second = bus.read(S, "g", "c2", count=3)
    assert [m.id for m in first] == ids[:3]
    assert [m.id for m in second] == ids[3:]
    assert bus.read(S, "g", "c1", count=3) == []


def test_entries_stay_pending_until_acked(bus):
    bus.ensure_group(S, "g")
    _publish(bus, 4)
    msgs = bus.read(S, "g", "c1", count=10)
    assert bus.pending(S, "g") == 4
    assert bus.ack(S, "g", [msgs[0].id, msgs[1].id]) == 2
    assert bus.pending(S, "g") == 2
    assert bus.ack(S, "g", [msgs[0].id]) == 0, "a second ack of the same entry is a no-op"
    assert bus.ack(S, "g", []) == 0
    assert bus.ack(S, "g", [m.id for m in msgs[2:]]) == 2
    assert bus.pending(S, "g") == 0


def test_lag_counts_undelivered_and_pending_counts_unacked(bus):
    bus.ensure_group(S, "g")
    assert (bus.lag(S, "g"), bus.pending(S, "g"), bus.length(S)) == (0, 0, 0)
    _publish(bus, 10)
    assert (bus.lag(S, "g"), bus.pending(S, "g")) == (10, 0)
    msgs = bus.read(S, "g", "c1", count=4)
    assert (bus.lag(S, "g"), bus.pending(S, "g")) == (6, 4)
    bus.ack(S, "g", [m.id for m in msgs])
    assert (bus.lag(S, "g"), bus.pending(S, "g"), bus.length(S)) == (6, 0, 10)


def test_groups_are_independent(bus):
    bus.ensure_group(S, "a")
    bus.ensure_group(S, "b")
    ids = _publish(bus, 3)
    got_a = bus.read(S, "a", "c", count=10)
    bus.ack(S, "a", [m.id for m in got_a])
    assert [m.id for m in got_a] == ids
    assert (bus.lag(S, "b"), bus.pending(S, "b")) == (3, 0)
    assert [m.id for m in bus.read(S, "b", "c", count=10)] == ids
    assert bus.pending(S, "b") == 3 and bus.pending(S, "a") == 0


def test_group_created_later_or_implicitly_reads_from_the_start(bus):
    ids = _publish(bus, 3)
    bus.ensure_group(S, "late")
    bus.ensure_group(S, "late")  # idempotent
    assert [m.id for m in bus.read(S, "late", "c", count=10)] == ids
    assert [m.id for m in bus.read(S, "implicit", "c", count=10)] == ids


def test_publish_never_trims_unread_entries(bus):
    bus.ensure_group(S, "g")
    _publish(bus, 3000)
    assert bus.length(S) == 3000
    assert bus.lag(S, "g") == 3000
    got = []
    while batch := bus.read(S, "g", "c", count=500):
        got.extend(batch)
    assert len(got) == 3000 and len({m.id for m in got}) == 3000
    assert bus.length(S) == 3000, "reading does not delete anything either"


def test_trim_acked_drops_only_what_every_group_acked(bus):
    bus.ensure_group(S, "a")
    bus.ensure_group(S, "b")
    ids = _publish(bus, 10)
    bus.ack(S, "a", [m.id for m in bus.read(S, "a", "c", count=10)])
    got_b = bus.read(S, "b", "c", count=5)
    bus.ack(S, "b", [got_b[0].id, got_b[1].id, got_b[3].id])  # entry 2 and 4 still pending in b
    assert bus.trim_acked(S) == 2
    assert bus.length(S) == 8
    assert bus.pending(S, "b") == 2 and bus.lag(S, "b") == 5
    # the pending ones are still reclaimable and the unread ones still readable
    reclaimed = bus.claim_stale(S, "b", "c2", min_idle_ms=0, count=10)
    assert sorted(m.id for m in reclaimed) == sorted([ids[2], ids[4]])
    rest = bus.read(S, "b", "c2", count=10)
    assert [m.id for m in rest] == ids[5:]
    assert bus.trim_acked(S) == 0
    bus.ack(S, "b", [m.id for m in reclaimed + rest])
    assert bus.trim_acked(S) == 8
    assert bus.length(S) == 0


def test_trim_acked_leaves_streams_without_groups_alone(bus):
    _publish(bus, 3)
    assert bus.trim_acked(S) == 0
    assert bus.length(S) == 3


def test_claim_stale_redelivers_idle_entries_with_delivery_counts(bus):
    bus.ensure_group(S, "g")
    ids = _publish(bus, 3)
    bus.read(S, "g", "dead-worker", count=10)
    assert bus.claim_stale(S, "g", "rescuer", min_idle_ms=60_000, count=10) == [], "not idle long enough yet"
    first = wait_until(lambda: bus.claim_stale(S, "g", "rescuer", min_idle_ms=50, count=10),
                       what="entries idle past 50 ms")
    assert [m.id for m in first] == ids
    assert all(m.deliveries == 2 for m in first)
    assert [m.data for m in first] == [b"m0", b"m1", b"m2"]
    assert bus.pending(S, "g") == 3, "a claimed entry is still pending, now with the rescuer"
    again = bus.claim_stale(S, "g", "third", min_idle_ms=0, count=2)
    assert [m.deliveries for m in again] == [3, 3]
    bus.ack(S, "g", ids)
    assert bus.claim_stale(S, "g", "third", min_idle_ms=0, count=10) == []


def test_entry_delivered_too_often_is_dead_lettered_not_handed_out(make_bus):
    bus = make_bus(max_deliveries=2)
    bus.ensure_group(S, "g")
    poison, ok = _publish(bus, 2)
    bus.read(S, "g", "w1", count=10)
    assert [m.deliveries for m in bus.claim_stale(S, "g", "w2", min_idle_ms=0, count=10)] == [2, 2]
    bus.ack(S, "g", [ok])
    assert bus.claim_stale(S, "g", "w3", min_idle_ms=0, count=10) == []
    assert bus.pending(S, "g") == 0
    (dead,) = bus.dead_letters(S)
    assert dead.source_id == poison and dead.data == b"m0" and dead.size == 2
    assert "delivered 3 times" in dead.reason and "max_deliveries=2" in dead.reason
    assert bus.stats()["dead_lettered"] == 1


def test_dead_letter_keeps_the_reason_and_acks(bus):
    bus.ensure_group(S, "g")
    _publish(bus, 3)
    msgs = bus.read(S, "g", "c", count=10)
    bus.dead_letter(S, "g", msgs[1], "ContractError: bad magic")
    assert bus.pending(S, "g") == 2
    dead = bus.dead_letters(S)
    assert [(d.source_id, d.data, d.reason) for d in dead] == [(msgs[1].id, b"m1", "ContractError: bad magic")]
    assert bus.length(dead_stream(S)) == 1
    assert bus.dead_letters("other:stream") == []


def test_publish_refuses_payloads_over_the_limit(make_bus):
    bus = make_bus(max_payload_bytes=1000)
    bus.publish(S, b"x" * 1000)
    with pytest.raises(ContractError, match="exceeds the bus limit"):
        bus.publish(S, b"x" * 1001)
    assert bus.length(S) == 1


def test_blocking_read_wakes_up_for_a_new_entry(bus):
    bus.ensure_group(S, "g")
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(bus.read(S, "g", "c", count=1, block_ms=3000)))
    reader.start()
    entry = bus.publish(S, b"late")
    reader.join(timeout=10)
    assert [m.id for m in got] == [entry]


def test_non_blocking_read_returns_at_once_when_empty(bus):
    bus.ensure_group(S, "g")
    assert bus.read(S, "g", "c", count=5, block_ms=0) == []


def test_memory_bus_is_what_create_bus_makes_without_url():
    assert isinstance(create_bus(None), MemoryBus)
    assert isinstance(create_bus("memory"), MemoryBus)


def test_memory_bus_can_trim_acked_entries_by_itself():
    bus = MemoryBus(trim_every_s=1e-9)
    bus.ensure_group(S, "a")
    bus.ensure_group(S, "b")
    _publish(bus, 5)
    bus.ack(S, "a", [m.id for m in bus.read(S, "a", "c", count=5)])
    bus.ack(S, "a", [])  # the first ack starts the clock
    assert bus.length(S) == 5, "group b has read nothing yet"
    got = bus.read(S, "b", "c", count=3)
    bus.ack(S, "b", [m.id for m in got])
    assert bus.length(S) == 2 and [m.data for m in bus.read(S, "b", "c", count=5)] == [b"m3", b"m4"]
