"""Webhooks against real HTTP receivers: signatures, retries, give-up, dead and hanging endpoints."""

from __future__ import annotations

import base64
import socket

from pipeline.events import Event, EventHub, WebhookSink, sign, verify_signature
from pipeline.events.sink import publisher_backoff
from pipeline.events.webhook import EVENT_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER
from pipeline.runtime.backoff import Backoff
from tests.support.events import PAYLOADS, WebhookReceiver, track_event
from tests.support.services import free_port, wait_until

SECRET = "shared-secret-0123456789"


def fast_backoff() -> Backoff:
    return publisher_backoff(0.02, 0.1)


def accounted(sink: WebhookSink) -> int:
    c = sink.counters
    return c.published + c.failed + c.dropped


def test_posts_are_signed_and_name_their_event():
    receiver = WebhookReceiver(SECRET)
    sink = WebhookSink(receiver.url("/hook?src=xreid").replace("http://", "http://ops:p%40ss@"), SECRET,
                       backoff=fast_backoff())
    hub = EventHub([sink], site="lobby")
    try:
        sent = [hub.emit(kind, 50.0, **payload) for kind, payload in PAYLOADS.items()]
        assert hub.flush(10.0)
        hits = receiver.snapshot()
        assert len(hits) == len(sent) and all(h.signature_ok for h in hits)
        for event, hit in zip(sent, hits, strict=True):   # one endpoint: delivered in order
            assert hit.path == "/hook?src=xreid"
            assert Event.from_json(hit.body) == event
            assert hit.headers[EVENT_HEADER] == event.kind and hit.headers[EVENT_ID_HEADER] == event.event_id
            assert hit.headers[SIGNATURE_HEADER] == sign(hit.body, SECRET)
            assert hit.headers["Authorization"] == "Basic " + base64.b64encode(b"ops:p@ss").decode()
        assert not verify_signature(hits[0].body, "another-secret-000000", hits[0].headers[SIGNATURE_HEADER])
        assert not verify_signature(hits[0].body + b" ", SECRET, hits[0].headers[SIGNATURE_HEADER])
        assert not verify_signature(hits[0].body, SECRET, None)
        c = sink.counters
        assert (c.published, c.retries, c.failed, c.dropped, c.connected) == (len(sent), 0, 0, 0, True)
        assert "p@ss" not in sink.display and "hook" not in sink.display
    finally:
        hub.close()
        receiver.close()


def test_server_errors_are_retried_until_accepted():
    receiver = WebhookReceiver(SECRET, statuses=[500, 503])
    sink = WebhookSink(receiver.url(), SECRET, backoff=fast_backoff(), max_attempts=4)
    try:
        event = track_event(1)
        sink.submit(event)
        assert sink.flush(10.0)
        hits = receiver.snapshot()
        assert [Event.from_json(h.body).event_id for h in hits] == [event.event_id] * 3
        assert all(h.signature_ok for h in hits)
        c = sink.counters
        assert (c.published, c.retries, c.failed) == (1, 2, 0)
    finally:
        sink.close()
        receiver.close()


def test_client_errors_fail_at_once_and_persistent_errors_give_up():
    receiver = WebhookReceiver(SECRET, statuses=[400, 500, 500, 500])
    sink = WebhookSink(receiver.url(), SECRET, backoff=fast_backoff(), max_attempts=3)
    try:
        sink.submit(track_event(1))   # 400: would never improve
        sink.submit(track_event(2))   # 500 three times: given up after max_attempts
        sink.submit(track_event(3))   # then 200
        assert sink.flush(10.0)
        ids = [Event.from_json(h.body).payload["track_uid"] for h in receiver.snapshot()]
        assert ids == ["cam1-1", "cam1-2", "cam1-2", "cam1-2", "cam1-3"]
        c = sink.counters
        assert (c.published, c.failed, c.retries, c.dropped) == (1, 2, 2, 0)
        assert sink.last_error == "HTTP 500"
    finally:
        sink.close()
        receiver.close()


def test_dead_endpoint_never_blocks_the_caller_and_counts_drops():
    sink = WebhookSink(f"http://127.0.0.1:{free_port()}/hook", SECRET, outbox_size=3, max_attempts=3,
                       backoff=publisher_backoff(0.2, 0.4))
    hub = EventHub([sink], site="lobby")
    try:
        for i in range(50):
            hub.publish(track_event(i))
        # the caller did not wait for delivery: had it, nothing would have been dropped
        assert sink.counters.dropped >= 50 - 3 - 1   # at most one in delivery, three waiting
        assert len(sink.outbox) == 3
        wait_until(lambda: accounted(sink) == 50, timeout=15, what="every event delivered, failed or dropped")
        c = sink.counters
        assert c.published == 0 and c.failed >= 1 and not c.connected
        assert "ConnectionRefusedError" in (sink.last_error or "")
        assert hub.degraded() == [sink.name]
    finally:
        hub.close(timeout_s=0.1)


def test_hanging_endpoint_costs_its_timeout_not_the_caller():
    listener = socket.create_server(("127.0.0.1", 0))   # accepts connections, never answers
    port = listener.getsockname()[1]
    sink = WebhookSink(f"http://127.0.0.1:{port}/hook", SECRET, timeout_s=0.3, max_attempts=2, backoff=fast_backoff())
    try:
        sink.submit(track_event(1))
        assert sink.counters.failed == 0   # submit returned before the two 0.3 s attempts gave up
        wait_until(lambda: sink.counters.failed == 1, timeout=10, what="hung delivery given up")
        assert sink.counters.retries == 1 and "timed out" in (sink.last_error or "")
    finally:
        sink.close(timeout_s=0.1)
        listener.close()
