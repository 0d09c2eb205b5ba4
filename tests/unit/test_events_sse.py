"""The SSE broadcaster: frame format, order, Last-Event-ID replay, slow subscribers, heartbeats, hub fan-out."""

from __future__ import annotations

import asyncio
import json
import threading
import time

from pipeline.events import Event, EventHub, SseBroadcaster
from pipeline.events.sink import SinkCounters
from pipeline.events.sse import DROPPED_EVENT, HEARTBEAT_FRAME
from tests.support.events import track_event


def parse(frame: str) -> dict[str, str]:
    """One SSE frame as the browser's EventSource reads it (field: value lines, blank line ends it)."""
    assert frame.endswith("\n\n"), frame
    out: dict[str, str] = {}
    for line in frame[:-2].split("\n"):
        name, _, value = line.partition(": ")
        assert name not in out, f"field {name} twice in {frame!r}"
        out[name] = value
    return out


async def take(stream, n: int, timeout_s: float = 5.0) -> list[dict[str, str]]:
    return [parse(await asyncio.wait_for(anext(stream), timeout_s)) for _ in range(n)]


def test_frames_carry_id_kind_and_the_event_json_in_order():
    async def main() -> None:
        sse = SseBroadcaster()
        stream = sse.stream()
        assert parse(await anext(stream)) == {"retry": "3000"}
        events = [track_event(i) for i in range(20)]

        def produce() -> None:   # the matcher's thread, not the event loop
            for e in events:
                sse.submit(e)

        producer = threading.Thread(target=produce)
        producer.start()
        frames = await take(stream, 20)
        producer.join()
        assert [f["id"] for f in frames] == [e.event_id for e in events]
        assert {f["event"] for f in frames} == {"track.started"}
        assert [Event.from_json(f["data"]) for f in frames] == events
        assert sse.subscribers == 1
        await stream.aclose()
        assert sse.subscribers == 0

    asyncio.run(main())


def test_last_event_id_replays_what_the_client_missed():
    async def main() -> None:
        sse = SseBroadcaster(replay=5)
        events = [track_event(i) for i in range(10)]
        for e in events:
            sse.submit(e)
        stream = sse.stream(last_event_id=events[7].event_id)
        await anext(stream)   # retry:
        replayed = await take(stream, 2)
        assert [f["id"] for f in replayed] == [events[8].event_id, events[9].event_id]
        live = track_event(10)
        sse.submit(live)
        assert (await take(stream, 1))[0]["id"] == live.event_id
        await stream.aclose()

        evicted = sse.stream(last_event_id=events[1].event_id)   # older than the ring: all it holds
        await anext(evicted)
        assert [f["id"] for f in await take(evicted, 5)] == [e.event_id for e in [*events[6:], live]]
        await evicted.aclose()

        fresh = sse.stream()   # no Last-Event-ID: live events only
        await anext(fresh)
        newest = track_event(11)
        sse.submit(newest)
        assert (await take(fresh, 1))[0]["id"] == newest.event_id
        await fresh.aclose()

    asyncio.run(main())


def test_slow_subscriber_drops_its_oldest_without_hurting_others():
    async def main() -> None:
        sse = SseBroadcaster(queue_size=3)
        fast, slow = sse.stream(), sse.stream()
        await anext(fast)
        await anext(slow)
        events = [track_event(i) for i in range(10)]
        got_fast = []
        for e in events:
            sse.submit(e)
            got_fast += await take(fast, 1)
        assert [f["id"] for f in got_fast] == [e.event_id for e in events]
        first = await take(slow, 4)
        assert first[0]["event"] == DROPPED_EVENT and json.loads(first[0]["data"]) == {"dropped": 7}
        assert [f["id"] for f in first[1:]] == [e.event_id for e in events[7:]]
        assert sse.counters.dropped == 7 and sse.counters.submitted == 10 and sse.counters.published == 20
        await fast.aclose()
        await slow.aclose()

    asyncio.run(main())


def test_idle_stream_sends_heartbeats_and_close_ends_it():
    async def main() -> None:
        sse = SseBroadcaster(heartbeat_s=0.05)
        stream = sse.stream()
        await anext(stream)
        t0 = time.monotonic()
        assert await asyncio.wait_for(anext(stream), 2.0) == HEARTBEAT_FRAME
        assert time.monotonic() - t0 >= 0.04
        sse.submit(track_event(1))
        sse.close()
        assert parse(await asyncio.wait_for(anext(stream), 2.0))["id"] == track_event(1).event_id
        rest = [frame async for frame in stream]   # ends instead of waiting for more
        assert rest == [] and sse.subscribers == 0

    asyncio.run(main())


class _BrokenSink:
    """A sink whose submit raises (a bug): the hub must carry on with the others."""

    name = "broken"

    def __init__(self) -> None:
        self.counters = SinkCounters()

    def submit(self, event: Event) -> None:
        raise RuntimeError("bug in a sink")

    def flush(self, timeout_s: float) -> bool:
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        pass


def test_hub_fans_out_and_survives_a_broken_sink(caplog):
    async def main() -> None:
        sse = SseBroadcaster()
        hub = EventHub([_BrokenSink(), sse], site="lobby")
        stream = sse.stream()
        await anext(stream)
        event = hub.emit("identity.created", 3.0, identity=1, camera_id="cam1", track_uid="u1", modality="rgb")
        assert (await take(stream, 1))[0]["id"] == event.event_id
        assert hub.published == 1 and hub.sink_errors == 1
        assert hub.snapshot()["sinks"]["sse"]["submitted"] == 1
        await stream.aclose()

    asyncio.run(main())
    assert "bug in a sink" in caplog.text
