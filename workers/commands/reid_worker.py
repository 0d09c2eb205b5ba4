"""``xreid reid-worker``: embed clips from Redis with X-ReID, publish embeddings (distributed mode)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_worker_args(p: argparse.ArgumentParser, metrics_port: int) -> None:
    """Flags every distributed worker has."""
    p.add_argument("--redis", default=None, metavar="URL",
                   help="Redis URL (redis://[user:password@]host:port/db, rediss:// for TLS); default "
                        "$XREID_REDIS_URL, which keeps the password out of `ps`")
    p.add_argument("--config", default=None, help="pipeline YAML (bus, reid, matcher, ... sections)")
    p.add_argument("--consumer", default=None, help="consumer name in the group (default: role-host-pid)")
    p.add_argument("--metrics-port", type=int, default=metrics_port,
                   help=f"port of /metrics and /health (default {metrics_port}; 0 picks a free one)")
    p.add_argument("--metrics-host", default=None,
                   help="address of /metrics and /health (default $XREID_METRICS_HOST or 127.0.0.1)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reid-worker", help="re-ID worker: clips from Redis -> X-ReID embeddings (distributed mode)",
                       description="Consume clips from the Redis clips stream in the 'reid' group, embed them in "
                                   "dynamic batches and publish embeddings. Run several for throughput.")
    p.add_argument("--checkpoint", default=None, help="X-ReID checkpoint (default reid.checkpoint from --config, else the committed synthetic-trained tiny model)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda[:n] (default reid.device)")
    add_worker_args(p, metrics_port=9102)
    p.set_defaults(func=run)


def load_worker_config(args: argparse.Namespace):
    """``--config`` + ``XREID_SECTION__KEY`` overrides; process settings such as ``XREID_REDIS_URL``
    and ``XREID_LOG_LEVEL`` share the prefix but are not config keys, so only nested names apply."""
    from pipeline.config.loader import load_config
    from pipeline.config.settings import XreidCfg

    return load_config(XreidCfg, args.config, env=os.environ)


def run(args: argparse.Namespace) -> int:
    from models.errors import ConfigError
    from models.weights import DEFAULT_CHECKPOINT
    from models.xreid.encoder import ReidEncoder
    from pipeline.bus import create_bus
    from pipeline.config.redact import redact_url
    from pipeline.reid.camera_index import expand_camera_index
    from pipeline.runtime.metrics import MetricsServer
    from workers.lifecycle import METRICS_HOST_ENV, Shutdown, default_consumer, resolve_redis_url
    from workers.reid import ReidWorker

    cfg = load_worker_config(args)
    shutdown = Shutdown().install()
    url = resolve_redis_url(args.redis, os.environ, cfg.bus.url)
    checkpoint = args.checkpoint or cfg.reid.checkpoint or str(DEFAULT_CHECKPOINT)
    if not Path(checkpoint).is_file():
        raise ConfigError(f"X-ReID checkpoint not found: {checkpoint} (pass --checkpoint PATH or reid.checkpoint)")
    device = args.device or cfg.reid.device
    # training cameras by camera (or camera:modality, for day/night cameras); the rest are unseen
    encoder = ReidEncoder.from_checkpoint(checkpoint, device=device, amp=cfg.reid.amp, max_batch=cfg.reid.max_batch,
                                          camera_index=expand_camera_index(cfg.reid.camera_index))
    consumer = args.consumer or default_consumer("reid")
    bus = create_bus(url, cfg.bus, stop_event=shutdown.abort, client_name=consumer)
    worker = ReidWorker(bus, encoder, cfg, consumer, shutdown)
    host = args.metrics_host or os.environ.get(METRICS_HOST_ENV, "127.0.0.1")
    metrics = MetricsServer(worker.registry, worker.health, host, args.metrics_port).start()
    print(f"reid worker {consumer}: model {encoder.model_id} on {encoder.device}, bus {redact_url(url)}, "
          f"metrics http://{metrics.host}:{metrics.port}/metrics", flush=True)
    return worker.run(metrics)
