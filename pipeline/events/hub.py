"""``EventHub``: the one object the matcher calls to announce a fact; it fans out to every sink.

``publish`` hands the event to each sink's ``submit``, which only queues it (``EventSink``), so the
call costs microseconds whatever the brokers and endpoints are doing. ``create_hub`` builds the
sinks an ``EventsCfg`` asks for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from pipeline.events.config import EventsCfg
from pipeline.events.event import Event
from pipeline.events.mqtt import MqttSink
from pipeline.events.sink import EventSink, publisher_backoff
from pipeline.events.sse import SseBroadcaster
from pipeline.events.webhook import WebhookSink

log = logging.getLogger(__name__)


class EventHub:
    """Fan-out to sinks; never blocks and never raises for a delivery problem.

    Args:
        sinks: where events go (MQTT, webhooks, SSE, any ``EventSink``).
        site: stamped on events built by ``emit``.

    Attributes:
        published: events passed to ``publish``.
        sink_errors: ``submit`` calls that raised (a sink bug: logged with its traceback, the
            other sinks and the caller carry on).
    """

    def __init__(self, sinks: Iterable[EventSink] = (), site: str = "default") -> None:
        self.sinks: list[EventSink] = list(sinks)
        self.site = site
        self.published = 0
        self.sink_errors = 0

    def add(self, sink: EventSink) -> None:
        self.sinks.append(sink)

    def publish(self, event: Event) -> None:
        """Queue ``event`` on every sink and return."""
        self.published += 1
        for sink in self.sinks:
            try:
                sink.submit(event)
            except Exception:  # noqa: BLE001 - a broken sink must not take the matcher down; logged, counted
                self.sink_errors += 1
                log.exception("events sink %s failed to queue event=%s", sink.name, event.event_id)

    def emit(self, kind: str, ts: float, **payload: Any) -> Event:
        """Build an event of this hub's site (``Event.make``), publish it and return it.

        Raises:
            ContractError: a malformed payload (a caller bug: nothing is published).
        """
        event = Event.make(kind, self.site, ts, **payload)
        self.publish(event)
        return event

    def flush(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` in all for every sink's outbox to empty."""
        deadline = time.monotonic() + timeout_s
        return all([s.flush(max(0.0, deadline - time.monotonic())) for s in self.sinks])

    def close(self, timeout_s: float = 5.0) -> None:
        """Give queued events up to ``timeout_s`` to leave, then stop every sink."""
        self.flush(timeout_s)
        for sink in self.sinks:
            sink.close(timeout_s=0.0)

    def degraded(self) -> list[str]:
        """Names of sinks whose far side is unreachable now (for a health status)."""
        return [s.name for s in self.sinks if not s.counters.connected]

    def snapshot(self) -> dict[str, Any]:
        """Counters of the hub and of each sink, JSON-ready (for metrics and /health)."""
        return {"published": self.published, "sink_errors": self.sink_errors,
                "sinks": {s.name: {**s.counters.snapshot(), "queued": _queued(s)} for s in self.sinks}}


def _queued(sink: EventSink) -> int:
    outbox = getattr(sink, "outbox", None)
    return len(outbox) if outbox is not None else 0


def create_hub(cfg: EventsCfg, sse: SseBroadcaster | None = None) -> EventHub:
    """The sinks ``cfg`` configures (MQTT if ``mqtt_url``, one webhook sink per URL), plus ``sse`` if given."""
    sinks: list[EventSink] = []
    if cfg.mqtt_url is not None:
        sinks.append(MqttSink(cfg.mqtt_url.get_secret_value(), topic_prefix=cfg.topic_prefix,
                              outbox_size=cfg.outbox_size, keepalive_s=cfg.mqtt_keepalive_s,
                              backoff=publisher_backoff(cfg.backoff_initial_s, cfg.backoff_max_s)))
    secret = cfg.webhook_secret.get_secret_value() if cfg.webhook_secret else ""
    for i, url in enumerate(cfg.webhook_urls):
        sinks.append(WebhookSink(url.get_secret_value(), secret, outbox_size=cfg.outbox_size,
                                 timeout_s=cfg.webhook_timeout_s, max_attempts=cfg.webhook_max_attempts,
                                 backoff=publisher_backoff(cfg.backoff_initial_s, cfg.backoff_max_s), name=f"webhook{i}"))
    if sse is not None:
        sinks.append(sse)
    return EventHub(sinks, site=cfg.site)


def create_sse(cfg: EventsCfg) -> SseBroadcaster:
    """The SSE broadcaster sized by ``cfg`` (the API serves its ``stream``)."""
    return SseBroadcaster(replay=cfg.sse_replay, queue_size=cfg.sse_queue, heartbeat_s=cfg.sse_heartbeat_s)
