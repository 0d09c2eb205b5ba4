"""``xreid camera``: run one or more cameras from a YAML list, publishing clips to Redis."""

from __future__ import annotations

import argparse
import os

from workers.commands.reid_worker import add_worker_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("camera", help="camera worker: cameras from a YAML list -> clips on Redis (distributed mode)",
                       description="Decode, detect, track and clip every camera of the config's 'cameras:' list "
                                   "(rtsp:// or rtsps:// URLs, or video files), one thread each, and publish clips "
                                   "to the Redis clips stream. Exits 0 once every source has ended for good (files at "
                                   "their end, RTSP reconnects spent: finished, do not restart) or on SIGTERM, 1 when a "
                                   "camera stopped on an error. See configs/cameras.example.yaml.")
    add_worker_args(p, metrics_port=9101)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from models.errors import ConfigError
    from pipeline.bus import create_bus
    from pipeline.config.redact import redact_url
    from pipeline.ingest.rtsp import ffmpeg_capture_options
    from pipeline.runtime.metrics import MetricsServer
    from workers.commands.reid_worker import load_worker_config
    from workers.lifecycle import METRICS_HOST_ENV, Shutdown, default_consumer, resolve_redis_url

    if args.config is None:
        raise ConfigError("xreid camera needs --config CAMERAS.yaml (a 'cameras:' list; see configs/cameras.example.yaml)")
    cfg = load_worker_config(args)
    # FFmpeg takes its RTSP options from the environment: set once here, before any thread opens a stream
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", ffmpeg_capture_options(cfg.rtsp))
    if args.verbose < 2:
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's chatter would bury our one-line errors
    from workers.camera import CameraWorker

    shutdown = Shutdown().install()
    url = resolve_redis_url(args.redis, os.environ, cfg.bus.url)
    bus = create_bus(url, cfg.bus, stop_event=shutdown.abort, client_name=args.consumer or default_consumer("camera"))
    worker = CameraWorker(cfg, bus, shutdown)
    host = args.metrics_host or os.environ.get(METRICS_HOST_ENV, "127.0.0.1")
    metrics = MetricsServer(worker.registry, worker.health, host, args.metrics_port).start()
    names = ", ".join(f"{c.cam.id}={c.state.source_name}" for c in worker.cameras)
    print(f"camera worker run {worker.run_id}: {names}; bus {redact_url(url)}, "
          f"metrics http://{metrics.host}:{metrics.port}/metrics", flush=True)
    return worker.run(metrics)
