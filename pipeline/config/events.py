"""``events:`` config section: where live events go (MQTT broker, webhook endpoints, SSE buffers).

A pydantic model with ``extra="forbid"``, one section of the pipeline's tree (``XreidCfg.events``), so
``XREID_EVENTS__MQTT_URL`` and a bad key in ``configs/*.yaml`` behave like every other section's. It
lives in ``pipeline.config`` (the lowest rank) because the tree does; ``pipeline.events`` uses it.
``EventsCfg.from_mapping`` builds the section alone and turns a validation failure into one
``ConfigError`` line naming the dotted key (``events.mqtt_url: …``). The broker URL, the webhook URLs
(hook services put tokens in the path) and the signing secret are ``SecretStr``: they never print,
and the errors about them show only a redacted form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from models.errors import ConfigError
from pipeline.config.ids import SITE_PATTERN, is_site
from pipeline.config.redact import redact_text, redact_url

MQTT_SCHEMES = {"mqtt": 1883, "mqtts": 8883}
WEBHOOK_SCHEMES = ("http", "https")
MIN_SECRET_CHARS = 16
_MAX_TOPIC_PREFIX = 128


@dataclass(frozen=True, slots=True)
class MqttTarget:
    """A parsed ``mqtt[s]://[user[:password]@]host[:port]`` URL (user and password percent-decoded)."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None


def parse_mqtt_url(url: str) -> MqttTarget:
    """Split a broker URL; raises ``ValueError`` with a redacted reason when it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ValueError(f"not a broker URL ({e}): {redact_url(url)}") from None
    if parts.scheme not in MQTT_SCHEMES:
        raise ValueError(f"scheme must be mqtt:// or mqtts://, got {redact_url(url)}")
    if not parts.hostname:
        raise ValueError(f"needs a host: {redact_url(url)}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"takes no path, query or fragment: {redact_url(url)}")
    return MqttTarget(host=parts.hostname, port=port or MQTT_SCHEMES[parts.scheme], tls=parts.scheme == "mqtts",
                      username=unquote(parts.username) if parts.username is not None else None,
                      password=unquote(parts.password) if parts.password is not None else None)


def check_webhook_url(url: str) -> str:
    """Return ``url`` when it is an absolute http(s) URL; raises ``ValueError`` with a redacted reason."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as e:
        raise ValueError(f"not a URL ({e}): {redact_url(url)}") from None
    if parts.scheme not in WEBHOOK_SCHEMES or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL with a host, got {redact_url(url)}")
    if parts.fragment or any(c.isspace() or ord(c) < 0x20 for c in url):
        raise ValueError(f"has a fragment or whitespace: {redact_url(url)}")
    return url


def check_topic_prefix(prefix: str) -> str:
    """Return ``prefix`` when it can head every topic: levels without wildcards, nothing empty."""
    if not prefix or len(prefix) > _MAX_TOPIC_PREFIX:
        raise ValueError(f"must be 1..{_MAX_TOPIC_PREFIX} characters, got {redact_text(prefix)!r:.80}")
    if prefix.startswith("$"):
        raise ValueError(f"must not start with '$' (reserved for the broker), got {redact_text(prefix)!r:.80}")
    if any(c in "+#\x00" or c.isspace() for c in prefix):
        raise ValueError(f"must not contain '+', '#', NUL or whitespace, got {redact_text(prefix)!r:.80}")
    if "" in prefix.split("/"):
        raise ValueError(f"must not have an empty level (leading, trailing or double '/'), got {redact_text(prefix)!r:.80}")
    return prefix


def _webhook_secret_url(v: SecretStr) -> SecretStr:
    check_webhook_url(v.get_secret_value())
    return v


WebhookUrl = Annotated[SecretStr, AfterValidator(_webhook_secret_url)]   # errors name the item: webhook_urls[2]


class EventsCfg(BaseModel):
    """Live events (issue 22): the MQTT broker, webhooks and the SSE stream's buffers.

    Every publisher is optional: no ``mqtt_url`` means no MQTT, no ``webhook_urls`` no webhooks.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    site: str = Field("default", description="deployment name: the <site> level of every topic")
    mqtt_url: SecretStr | None = Field(None, description="mqtt://[user:pass@]host:port or mqtts://…")
    topic_prefix: str = Field("xreid", description="topics are <prefix>/<site>/<kind with '.' as '/'>")
    qos: Literal[1] = Field(1, description="MQTT QoS: 1 (at least once; receivers dedup on event_id)")
    mqtt_keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    webhook_urls: list[WebhookUrl] = Field(default_factory=list, description="each gets every event, POSTed")
    webhook_secret: SecretStr | None = Field(None, validate_default=True,
                                             description="HMAC-SHA256 key of X-Xreid-Signature")
    webhook_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    webhook_max_attempts: Annotated[int, Field(ge=1, le=20)] = 6
    outbox_size: Annotated[int, Field(gt=0, le=1_000_000)] = 10_000
    backoff_initial_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    backoff_max_s: Annotated[float, Field(gt=0, le=3600, validate_default=True)] = 30.0
    sse_replay: Annotated[int, Field(ge=0, le=100_000)] = 256
    sse_queue: Annotated[int, Field(gt=0, le=100_000)] = 256
    sse_heartbeat_s: Annotated[float, Field(gt=0, le=300)] = 15.0
    log_keep: Annotated[int, Field(ge=0, le=10_000_000, description="newest events kept in the store's event log, "
                                   "which the API streams from (0: no log, no live dashboard)")] = 10_000
    api_poll_s: Annotated[float, Field(gt=0, le=10, description="how often the API reads new events from the "
                                       "store's event log")] = 0.25
    track_end_wait_s: Annotated[float, Field(ge=0, le=3600, description="track.ended waits this long for the "
                                             "track's last clips to be matched (its identity)")] = 30.0
    watchlist_refresh_s: Annotated[float, Field(gt=0, le=3600, description="how often the matcher re-reads the "
                                                "watchlists from the store")] = 2.0
    watchlist_threshold: Annotated[float, Field(ge=-1, le=1, description="cosine a track needs to hit a new "
                                                "watchlist entry unless --threshold says otherwise")] = 0.6

    @field_validator("site")
    @classmethod
    def _site(cls, v: str) -> str:
        if not is_site(v):
            raise ValueError(f"must match {SITE_PATTERN}, got {redact_text(v)!r:.80}")
        return v

    @field_validator("webhook_urls", mode="before")
    @classmethod
    def _urls_from_text(cls, v: Any) -> Any:
        # XREID_EVENTS__WEBHOOK_URLS arrives as one literal string (a secret is never parsed as YAML)
        if isinstance(v, str):
            return [u for u in v.replace(",", " ").split() if u]
        return v

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        return check_topic_prefix(v)

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None:
            parse_mqtt_url(v.get_secret_value())
        return v

    # cross-field checks sit on the later field (validate_default: they run when it is left out too),
    # so the error names the key to fix
    @field_validator("webhook_secret")
    @classmethod
    def _secret_with_hooks(cls, v: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("webhook_urls"):
            if v is None or len(v.get_secret_value()) < MIN_SECRET_CHARS:
                raise ValueError(f"at least {MIN_SECRET_CHARS} characters are required when webhook_urls are set")
        return v

    @field_validator("backoff_max_s")
    @classmethod
    def _backoff(cls, v: float, info: ValidationInfo) -> float:
        if v < info.data.get("backoff_initial_s", 0.0):
            raise ValueError("must be >= backoff_initial_s")
        return v

    @property
    def mqtt_target(self) -> MqttTarget | None:
        return parse_mqtt_url(self.mqtt_url.get_secret_value()) if self.mqtt_url else None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, where: str = "events") -> EventsCfg:
        """Build the section; the first defect becomes one ``ConfigError`` naming ``<where>.<key>``.

        Raises:
            ConfigError: e.g. ``events.mqtt_url: scheme must be mqtt:// or mqtts://, got http://***@h``.
        """
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
        try:
            return cls.model_validate(dict(data))
        except ValidationError as e:
            raise ConfigError(_one_line(e, where)) from None


def _one_line(e: ValidationError, where: str) -> str:
    """The first error as ``where.key[i]: reason``; never the input value (it may be a secret)."""
    err = e.errors(include_url=False, include_input=False)[0]
    key = where
    for part in err["loc"]:
        key += f"[{part}]" if isinstance(part, int) else f".{part}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = f"unknown key (valid: {', '.join(EventsCfg.model_fields)})"
    more = e.error_count() - 1
    return f"{key}: {msg}" + (f" (and {more} more)" if more else "")
