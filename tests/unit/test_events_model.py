"""The live-event contract: round trips, stable ids, strict decoding, and the config section."""

from __future__ import annotations

import json

import pytest

from models.errors import ConfigError, ContractError
from pipeline.events import KINDS, Event, EventsCfg
from pipeline.events.event import MAX_EVENT_BYTES
from tests.support.events import PAYLOADS


def make(kind: str = "track.started", ts: float = 100.0, **kw) -> Event:
    return Event.make(kind, "lobby", ts, **{**PAYLOADS[kind], **kw})


def test_every_kind_has_an_example():
    assert sorted(PAYLOADS) == sorted(KINDS)


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_event_round_trips_through_json(kind):
    event = make(kind)
    text = event.to_json()
    assert "\n" not in text
    back = Event.from_json(text)
    assert back == event
    d = json.loads(text)
    assert d["v"] == 1 and d["kind"] == kind and d["site"] == "lobby" and d["payload"] == PAYLOADS[kind]


def test_event_id_names_the_fact_not_the_announcement():
    a, b = make(), make()
    assert a.event_id == b.event_id                                   # announced twice: one id
    assert make(track_uid="cam1-18").event_id != a.event_id           # another track: another id
    assert Event.make("track.ended", "lobby", 100.0, **PAYLOADS["track.ended"]).event_id != a.event_id
    assert Event.make("track.started", "hall", 100.0, **PAYLOADS["track.started"]).event_id != a.event_id
    s1, s2 = make("camera.status", ts=1.0), make("camera.status", ts=2.0)
    assert s1.event_id != s2.event_id                                 # status changes differ by time
    assert make(event_id="custom-1").event_id == "custom-1"


def test_payload_is_read_only():
    event = make()
    with pytest.raises(TypeError):
        event.payload["camera_id"] = "cam9"  # type: ignore[index]


def _doc(**override) -> str:
    d = make().as_dict()
    d.update(override)
    return json.dumps(d)


def _payload(**override) -> str:
    d = make("watchlist.hit").as_dict()
    d["payload"].update(override)
    return json.dumps(d)


@pytest.mark.parametrize("text, match", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    (json.dumps({"v": 1}), "lacks"),
    (_doc(v=2), "version"),
    (_doc(v=True), "version"),
    (_doc(kind="track.paused"), "kind"),
    (_doc(extra=1), "unknown fields"),
    (_doc(site="a/b"), "site"),
    (_doc(site="#"), "site"),
    (_doc(event_id="id\nevent: forged"), "event_id"),
    (_doc(ts="yesterday"), "ts"),
    (_doc(payload=[1]), "payload"),
    (_doc().replace('"ts":100.0', '"ts":NaN').replace('"ts": 100.0', '"ts": NaN'), "finite"),
    (_payload(crop="/9j/4AAQSkZJRgABAQ"), "unknown fields crop"),   # no pixels inline
    (_payload(vector=[0.1] * 8), "unknown fields vector"),
    (_payload(score=True), "score"),
    (_payload(watchlist_id=-1), "watchlist_id"),
    (_payload(scores=[0.5] * 65), "scores"),
    (_payload(crops_path="https://evil.example/x.jpg"), "crops_path"),
    (_payload(crops_path="/tracks/../../etc/passwd"), "crops_path"),
    (_payload(modality="uv"), "modality"),
    (_payload(camera_id="../cam"), "camera_id"),
    ('{"payload": ' * 5000 + "1" + "}" * 5000, "limit"),
])
def test_malformed_event_is_a_contract_error(text, match):
    with pytest.raises(ContractError, match=match):
        Event.from_json(text)


def test_deeply_nested_or_odd_input_is_still_a_contract_error():
    with pytest.raises(ContractError):
        Event.from_json("[" * 3000 + "]" * 3000)
    with pytest.raises(ContractError):
        Event.from_json(b"\xff\xfe")
    with pytest.raises(ContractError):
        Event.from_json(12)  # type: ignore[arg-type]
    assert len(make().to_json()) < MAX_EVENT_BYTES


def test_make_rejects_missing_and_extra_fields():
    with pytest.raises(ContractError, match="lacks t_start"):
        Event.make("track.started", "lobby", 1.0, camera_id="cam1", track_uid="u", modality="rgb")
    with pytest.raises(ContractError, match="unknown fields thumbnail"):
        Event.make("track.started", "lobby", 1.0, thumbnail=b"\xff\xd8", **PAYLOADS["track.started"])
    with pytest.raises(ContractError, match="kind"):
        Event.make("nope", "lobby", 1.0)


# ---------------------------------------------------------------------------------------------
# EventsCfg

SECRET = "hunter2-not-for-logs"


def test_events_config_defaults_configure_no_publisher():
    cfg = EventsCfg.from_mapping(None)
    assert cfg.mqtt_url is None and cfg.webhook_urls == [] and cfg.qos == 1 and cfg.site == "default"


def test_events_config_keeps_secrets_secret():
    cfg = EventsCfg.from_mapping({"mqtt_url": f"mqtts://bob:{SECRET}@broker.example", "site": "lobby",
                                  "webhook_urls": [f"https://hooks.example/{SECRET}"], "webhook_secret": SECRET})
    assert SECRET not in repr(cfg) and SECRET not in str(cfg.model_dump())
    t = cfg.mqtt_target
    assert (t.host, t.port, t.tls, t.username, t.password) == ("broker.example", 8883, True, "bob", SECRET)


@pytest.mark.parametrize("data, key", [
    ({"mqtt_url": f"http://bob:{SECRET}@broker:1883"}, "events.mqtt_url:"),
    ({"mqtt_url": f"mqtt://bob:{SECRET}@broker:99999"}, "events.mqtt_url:"),
    ({"mqtt_url": f"mqtt://bob:{SECRET}@broker/topic"}, "events.mqtt_url:"),
    ({"mqtt_url": "mqtt://"}, "events.mqtt_url:"),
    ({"mqtt_url": 1883}, "events.mqtt_url:"),
    ({"topic_prefix": "xreid/#"}, "events.topic_prefix:"),
    ({"topic_prefix": "xreid/"}, "events.topic_prefix:"),
    ({"topic_prefix": "$SYS"}, "events.topic_prefix:"),
    ({"topic_prefix": ""}, "events.topic_prefix:"),
    ({"site": "lobby/east"}, "events.site:"),
    ({"qos": 0}, "events.qos:"),
    ({"outbox_size": 0}, "events.outbox_size:"),
    ({"webhook_urls": ["https://ok.example/h", f"ftp://u:{SECRET}@x/h"], "webhook_secret": SECRET},
     "events.webhook_urls[1]:"),
    ({"webhook_urls": ["https://ok.example/h"]}, "events.webhook_secret:"),
    ({"webhook_urls": ["https://ok.example/h"], "webhook_secret": "short"}, "events.webhook_secret:"),
    ({"backoff_initial_s": 5, "backoff_max_s": 1}, "events.backoff_max_s:"),
    ({"mqtt_urll": "mqtt://h"}, "events.mqtt_urll:"),
])
def test_bad_events_config_is_one_line_naming_the_key(data, key):
    with pytest.raises(ConfigError) as info:
        EventsCfg.from_mapping(data)
    msg = str(info.value)
    assert msg.startswith(key), msg
    assert "\n" not in msg and SECRET not in msg


def test_events_config_must_be_a_mapping():
    with pytest.raises(ConfigError, match="events must be a mapping"):
        EventsCfg.from_mapping(["mqtt://h"])  # type: ignore[arg-type]
