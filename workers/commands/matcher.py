"""``xreid matcher``: link embeddings from Redis into identities in the store (distributed mode)."""

from __future__ import annotations

import argparse
import os

from workers.commands.reid_worker import add_worker_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("matcher", help="matcher: embeddings from Redis -> identities in the store (distributed mode)",
                       description="Consume embeddings from the Redis embeddings stream in the 'matcher' group, link "
                                   "tracks into identities and write the store. Run exactly one per store (on "
                                   "PostgreSQL a second one refuses to start).")
    p.add_argument("--store", default=None, help="the store: a SQLite file or postgresql://user@host:port/db, "
                                                 "password from PGPASSWORD (default: store.url, else store.path)")
    add_worker_args(p, metrics_port=9103)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from pipeline.bus import create_bus
    from pipeline.config.redact import redact_url
    from pipeline.events import create_hub
    from pipeline.matcher.announce import Announcer
    from pipeline.matcher.matcher import Matcher
    from pipeline.matcher.stage import MatcherStage
    from pipeline.runtime.metrics import MetricsServer
    from pipeline.store.configured import open_store, store_location
    from workers.commands.reid_worker import load_worker_config
    from workers.identity_chain import keeps_crops, privacy_duty
    from workers.lifecycle import METRICS_HOST_ENV, Shutdown, default_consumer, resolve_redis_url
    from workers.matcher import MatcherWorker

    log = logging.getLogger("workers.matcher")
    cfg = load_worker_config(args)
    shutdown = Shutdown().install()
    url = resolve_redis_url(args.redis, os.environ, cfg.bus.url)
    consumer = args.consumer or default_consumer("matcher")
    store = open_store(store_location(cfg.store, args.store), cfg.store, stop=shutdown.abort)
    if not store.hold_writer_lock():   # PostgreSQL: a second matcher stops here with the holder named
        log.info("store %s: one matcher per file is not enforced on SQLite; run exactly one", store.path)
    bus = create_bus(url, cfg.bus, stop_event=shutdown.abort, client_name=consumer)
    hub = create_hub(cfg.events)   # MQTT and webhooks when configured (events:); the store's event log always
    privacy = privacy_duty(cfg, store, bus, consumer)   # forget requests, retention sweeps (docs/privacy.md)
    stage = MatcherStage(bus, store, Matcher(cfg.matcher), cfg.matcher, consumer=consumer,
                         claim_idle_ms=cfg.bus.claim_idle_ms,
                         crops=privacy.eraser.crops if keeps_crops(cfg) else None, privacy=privacy,
                         keep_thumbnails=not cfg.retention.embeddings_only,
                         announcer=Announcer.for_config(cfg.events, store, hub))
    worker = MatcherWorker(bus, stage, store, shutdown, consumer, cfg.bus.trim_every_s, hub=hub,
                           end_wait_s=cfg.events.track_end_wait_s)
    host = args.metrics_host or os.environ.get(METRICS_HOST_ENV, "127.0.0.1")
    metrics = MetricsServer(worker.registry, worker.health, host, args.metrics_port).start()
    print(f"matcher {consumer}: store {store.path}, bus {redact_url(url)}, "
          f"metrics http://{metrics.host}:{metrics.port}/metrics", flush=True)
    return worker.run(metrics)
