"""Live events (issue 22): the event contract and its publishers (MQTT, webhooks, Server-Sent Events).

The matcher announces facts (a track started, an identity merged, a watchlist hit) through one
``EventHub``; each sink delivers them from its own thread with a bounded outbox, so a dead broker or
endpoint never slows the pipeline. docs/events.md documents topics, payloads and signatures.
"""

from pipeline.config.events import EventsCfg
from pipeline.events.event import EVENT_VERSION, KINDS, Event
from pipeline.events.hub import EventHub, create_hub, create_sse
from pipeline.events.mqtt import MqttSink, topic_for
from pipeline.events.sink import EventSink, SinkCounters
from pipeline.events.sse import SseBroadcaster
from pipeline.events.webhook import WebhookSink, sign, verify_signature

__all__ = [
    "EVENT_VERSION",
    "Event",
    "EventHub",
    "EventSink",
    "EventsCfg",
    "KINDS",
    "MqttSink",
    "SinkCounters",
    "SseBroadcaster",
    "WebhookSink",
    "create_hub",
    "create_sse",
    "sign",
    "topic_for",
    "verify_signature",
]
