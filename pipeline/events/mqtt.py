"""MQTT publisher: events as JSON on ``<prefix>/<site>/<kind with '.' as '/'>`` at QoS 1.

One thread owns the paho client and drives it with ``select`` (paho's external-loop API), woken by
a socket pair whenever ``submit`` queues an event, so a publish leaves within a select wake-up.
Delivery is at least once: an event leaves the outbox only when the broker's PUBACK for it
arrives. If the connection drops, every event still in flight is published again on the next
connection (a fresh client, so paho keeps no second copy), hence a broker restart loses nothing
that fits in the outbox; receivers deduplicate on ``event_id``.

``camera.status`` goes to ``<prefix>/<site>/camera/status/<camera_id>`` and is retained, so a
dashboard that subscribes later learns every camera's last state at once.
"""

from __future__ import annotations

import contextlib
import logging
import random
import select
import socket
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from pipeline.config.redact import redact_text, redact_url
from pipeline.events.config import parse_mqtt_url
from pipeline.events.event import Event
from pipeline.events.sink import Outbox, SinkCounters, enqueue, publisher_backoff
from pipeline.runtime.backoff import Backoff

log = logging.getLogger(__name__)

QOS = 1
RETAINED_KINDS = frozenset({"camera.status"})


def topic_for(prefix: str, event: Event) -> str:
    """``xreid/lobby/track/started``; camera status adds the camera (one retained message each)."""
    topic = f"{prefix}/{event.site}/{event.kind.replace('.', '/')}"
    if event.kind in RETAINED_KINDS:
        topic += f"/{event.payload['camera_id']}"
    return topic


class MqttSink:
    """Publishes events to one broker from a background thread (see the module doc).

    Args:
        url: ``mqtt[s]://[user[:password]@]host[:port]``; shown only redacted.
        topic_prefix: first topic level(s), checked by ``EventsCfg``.
        outbox_size: events kept while the broker is unreachable; beyond, the oldest is dropped.
        max_inflight: published events awaiting PUBACK at once.
        connect_timeout_s: TCP connect and CONNACK wait.
    """

    def __init__(self, url: str, topic_prefix: str = "xreid", outbox_size: int = 10_000, keepalive_s: int = 30,
                 backoff: Backoff | None = None, max_inflight: int = 100, connect_timeout_s: float = 5.0,
                 client_id: str | None = None, name: str = "mqtt") -> None:
        self.target = parse_mqtt_url(url)
        self.name = name
        self.display = redact_url(url)
        self.topic_prefix = topic_prefix
        self.keepalive_s = keepalive_s
        self.max_inflight = max_inflight
        self.connect_timeout_s = connect_timeout_s
        self.client_id = client_id or f"xreid-events-{uuid.uuid4().hex[:12]}"
        self.counters = SinkCounters()
        self.last_error: str | None = None
        self.connect_attempts = 0
        self._backoff = backoff or publisher_backoff(0.5, 30.0)
        self._failures = 0                       # since the last session came up
        self._rng = random.Random()
        self._retry_at = 0.0
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.outbox = Outbox(outbox_size, on_put=self._wake)
        # owned by the sink thread only
        self._client: mqtt.Client | None = None
        self._session_up = False
        self._connect_started = 0.0
        self._inflight: dict[int, str] = {}      # mid -> event_id awaiting PUBACK
        self._resend: set[str] = set()           # ids in flight when a connection dropped
        self._ever_connected = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"events-{name}", daemon=True)
        self._thread.start()

    # -- caller side --------------------------------------------------------------------------

    def submit(self, event: Event) -> None:
        enqueue(self.outbox, self.counters, event, self.name, log)

    def flush(self, timeout_s: float) -> bool:
        return self.outbox.wait_empty(timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        self.flush(timeout_s)
        self._stop.set()
        self._wake()
        self._thread.join(timeout=max(1.0, self.connect_timeout_s + 1.0))
        for s in (self._wake_r, self._wake_w):
            s.close()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake-up is already pending) or closed
            self._wake_w.send(b"\0")

    # -- sink thread --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self._client is None:
                    delay = self._retry_at - time.monotonic()
                    if delay > 0:   # backoff after any failure: refused TCP, refused login, lost session
                        self._stop.wait(delay)
                    else:
                        self._connect()
                    continue
                self._step()
        finally:
            self._disconnect()

    def _connect(self) -> bool:
        self.connect_attempts += 1
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True,
                             protocol=mqtt.MQTTv311)
        client.max_inflight_messages_set(self.max_inflight)
        client.connect_timeout = self.connect_timeout_s
        if self.target.username is not None:
            client.username_pw_set(self.target.username, self.target.password)
        if self.target.tls:
            client.tls_set()
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_disconnect = self._on_disconnect
        try:
            client.connect(self.target.host, self.target.port, keepalive=self.keepalive_s)
        except (OSError, ValueError) as e:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            self._failed(f"connect: {type(e).__name__}: {e}")
            return False
        self._client = client
        self._session_up = False
        self._connect_started = time.monotonic()
        return True

    def _step(self) -> None:
        client = self._client
        assert client is not None
        if self._session_up:
            self._publish_pending(client)
        elif time.monotonic() - self._connect_started > self.connect_timeout_s:
            self._lost("no CONNACK within the connect timeout")
            return
        sock = client.socket()
        if sock is None:
            self._lost("socket closed")
            return
        wants_write = [sock] if client.want_write() else []
        try:
            readable, writable, _ = select.select([sock, self._wake_r], wants_write, [], self._tick_s())
        except (OSError, ValueError) as e:  # the socket closed under select
            self._lost(f"select: {e}")
            return
        if self._wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                self._wake_r.recv(4096)
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        if sock in readable:
            rc = client.loop_read()
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and (writable or client.want_write()):
            rc = client.loop_write()
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            rc = client.loop_misc()
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS and self._client is not None:
            self._lost(mqtt.error_string(rc))

    def _tick_s(self) -> float:
        return min(1.0, self.keepalive_s / 4)

    def _publish_pending(self, client: mqtt.Client) -> None:
        room = self.max_inflight - len(self._inflight)
        if room <= 0:
            return
        for event in self.outbox.first(room, skip=set(self._inflight.values())):
            info = client.publish(topic_for(self.topic_prefix, event), event.to_json().encode(), qos=QOS,
                                  retain=event.kind in RETAINED_KINDS)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._lost(f"publish: {mqtt.error_string(info.rc)}")
                return
            self._inflight[info.mid] = event.event_id
            if event.event_id in self._resend:
                self._resend.discard(event.event_id)
                self.counters.retries += 1

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001 - paho's
        if reason_code.is_failure:
            self._failed(f"broker refused the connection: {reason_code}")
            self._drop_client()
            return
        self._session_up = True
        self.counters.connected = True
        self.last_error = None
        self._failures = 0
        if self._ever_connected:
            self.counters.reconnects += 1
        self._ever_connected = True
        log.info("events mqtt connected to %s (%d queued)", self.display, len(self.outbox))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # noqa: ANN001 - paho's
        event_id = self._inflight.pop(mid, None)
        if event_id is not None and self.outbox.remove(event_id):
            self.counters.published += 1

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001 - paho's
        if self._client is client and not self._stop.is_set():
            self._lost(f"disconnected: {reason_code}")

    def _lost(self, reason: str) -> None:
        """The connection is gone: whatever was in flight goes out again on the next one."""
        in_flight = set(self._inflight.values())
        self._resend = {eid for eid in self._resend | in_flight if self.outbox.contains(eid)}
        self._inflight.clear()
        self._failed(reason)
        self._drop_client()

    def _failed(self, reason: str) -> None:
        """Record a failure and schedule the next connect (WARNING once per outage, then DEBUG)."""
        was_connected = self.counters.connected
        self.counters.connected = False
        self.last_error = redact_text(reason)
        level = logging.WARNING if was_connected or self._failures == 0 else logging.DEBUG
        self._failures += 1
        delay = self._backoff.delay_s(self._failures, self._rng)
        self._retry_at = time.monotonic() + delay
        log.log(level, "events mqtt %s: %s (%d queued, retry in %.1fs)", self.display, self.last_error,
                len(self.outbox), delay)

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        self._session_up = False
        if client is not None:
            client.on_disconnect = None
            with contextlib.suppress(OSError):
                sock = client.socket()
                if sock is not None:
                    sock.close()

    def _disconnect(self) -> None:
        client = self._client
        if client is None:
            return
        client.on_disconnect = None
        with contextlib.suppress(OSError):
            client.disconnect()
            client.loop_write()
        self._drop_client()
        self.counters.connected = False

