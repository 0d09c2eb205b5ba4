"""The ``events:`` section in the pipeline's config tree: YAML, XREID_EVENTS__* and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.errors import ConfigError
from pipeline.config.loader import load_config, to_dict
from pipeline.config.settings import XreidCfg
from pipeline.events import create_hub

SECRET = "s3cret-broker-pass"
REPO = Path(__file__).resolve().parents[2]


def test_default_config_publishes_nowhere_but_logs_for_the_api():
    cfg = load_config(XreidCfg, REPO / "configs" / "default.yaml")
    assert cfg.events.mqtt_url is None and cfg.events.webhook_urls == [] and cfg.events.log_keep > 0
    hub = create_hub(cfg.events)
    assert hub.sinks == [] and hub.site == "default"


def test_environment_configures_the_broker_and_webhooks_and_secrets_stay_masked():
    env = {"XREID_EVENTS__MQTT_URL": f"mqtt://bob:{SECRET}@127.0.0.1:1884", "XREID_EVENTS__SITE": "dock",
           "XREID_EVENTS__WEBHOOK_URLS": "http://127.0.0.1:9/a, http://127.0.0.1:9/b",
           "XREID_EVENTS__WEBHOOK_SECRET": SECRET, "XREID_API__ADMIN_TOKEN": SECRET}
    cfg = load_config(XreidCfg, None, env=env)
    t = cfg.events.mqtt_target
    assert (t.host, t.port, t.username, t.password) == ("127.0.0.1", 1884, "bob", SECRET)
    assert [u.get_secret_value() for u in cfg.events.webhook_urls] == ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]
    assert cfg.api.admin_token.get_secret_value() == SECRET
    shown = str(to_dict(cfg))
    assert SECRET not in shown and "mqtt://***@127.0.0.1:1884" in shown


@pytest.mark.parametrize("yaml_text, env, key", [
    ("events:\n  topic_prefix: xreid/#\n", {}, "events.topic_prefix"),
    ("events:\n  site: lobby/east\n", {}, "events.site"),
    ("events:\n  mqtt_urll: mqtt://h\n", {}, "events.mqtt_urll"),
    ("", {"XREID_EVENTS__MQTT_URL": f"http://bob:{SECRET}@broker:1883"}, "events.mqtt_url"),
    ("", {"XREID_EVENTS__WEBHOOK_URLS": f"ftp://u:{SECRET}@h/x", "XREID_EVENTS__WEBHOOK_SECRET": SECRET * 2},
     "events.webhook_urls[0]"),
    ("events:\n  webhook_urls: [https://h.example/x]\n", {}, "events.webhook_secret"),
    ("events:\n  api_poll_s: 0\n", {}, "events.api_poll_s"),
])
def test_a_bad_events_value_is_one_config_error_naming_the_key(tmp_path, yaml_text, env, key):
    path = tmp_path / "x.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(XreidCfg, path, env=env)
    msg = str(info.value)
    assert key in msg and "\n" not in msg and SECRET not in msg, msg
