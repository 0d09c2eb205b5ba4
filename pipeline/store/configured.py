"""The store a configuration names: its location, how it rides out outages, where its crops go.

Every command opens its store through ``open_store`` so that ``--store``, ``store.url`` and
``store.path`` mean the same thing everywhere, and a PostgreSQL store gets the same pool and backoff
whichever process opens it.
"""

from __future__ import annotations

import threading

from pipeline.config.settings import StoreCfg
from pipeline.store.base import NetworkOptions, Store, is_postgres

CLI_GIVE_UP_S = 10.0   # a query command waits this long for an unreachable database when store.retry_timeout_s is 0


def store_location(cfg: StoreCfg, flag: str | None = None) -> str:
    """``--store`` when given, else ``store.url``, else ``store.path``."""
    return flag if flag else cfg.location


def network_options(cfg: StoreCfg, stop: threading.Event | None = None,
                    give_up_s: float | None = None) -> NetworkOptions:
    """The pool and outage policy of ``cfg``; ``give_up_s`` overrides ``store.retry_timeout_s`` (0 = never)."""
    if give_up_s is None:
        give_up_s = cfg.retry_timeout_s if cfg.retry_timeout_s > 0 else None
    return NetworkOptions(pool_size=cfg.pool_size, backoff_initial_s=cfg.backoff_initial_s,
                          backoff_max_s=cfg.backoff_max_s, give_up_s=give_up_s, stop=stop)


def open_store(location: str, cfg: StoreCfg, readonly: bool = False, stop: threading.Event | None = None,
               give_up_s: float | None = None) -> Store:
    """``Store(location)`` with the connection settings of ``cfg`` (a SQLite file ignores them)."""
    # SQLite: how long a statement waits on the writer's lock; PostgreSQL: on a connection of the pool
    timeout_s = cfg.connect_timeout_s if is_postgres(location) else 10.0
    return Store(location, readonly=readonly, timeout_s=timeout_s, network=network_options(cfg, stop, give_up_s))
