"""``create_bus``: one place that turns a bus URL (or nothing) into a ``Bus``."""

from __future__ import annotations

import threading

from models.errors import ConfigError
from pipeline.bus.base import Bus
from pipeline.bus.memory import MemoryBus
from pipeline.config.settings import BusCfg


def create_bus(url: str | None = None, cfg: BusCfg | None = None, *, stop_event: threading.Event | None = None,
               client_name: str | None = None) -> Bus:
    """Build the bus ``url`` names; ``None`` or ``"memory"`` is the in-process bus.

    Args:
        url: ``None`` / ``"memory"``, or a ``redis://``, ``rediss://`` or ``unix://`` URL; wins over ``cfg.url``
            (a secret: read here, where the bus is built).
        cfg: limits and timeouts (``BusCfg`` defaults when omitted).
        stop_event: when set, a Redis bus stops retrying an unreachable server (shutdown).
        client_name: shown by ``CLIENT LIST`` on the server (which worker is which).

    Raises:
        ConfigError: the URL names no known bus.
    """
    cfg = cfg or BusCfg()
    if url is None and cfg.url is not None:
        url = cfg.url.get_secret_value()
    if url is None or url == "memory":
        return MemoryBus(max_deliveries=cfg.max_deliveries, max_payload_bytes=cfg.max_payload_bytes,
                         trim_every_s=cfg.trim_every_s)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("bus URL must be 'memory' or start with redis://, rediss:// or unix://")
    from pipeline.bus.redis import RedisBus  # redis-py is only needed in distributed mode

    return RedisBus(url, max_deliveries=cfg.max_deliveries, max_payload_bytes=cfg.max_payload_bytes,
                    dead_payload_max_bytes=cfg.dead_payload_max_bytes, socket_timeout_s=cfg.socket_timeout_s,
                    connect_timeout_s=cfg.connect_timeout_s, backoff_initial_s=cfg.backoff_initial_s,
                    backoff_max_s=cfg.backoff_max_s, retry_timeout_s=cfg.retry_timeout_s,
                    stop_event=stop_event, client_name=client_name)
