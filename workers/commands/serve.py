"""``xreid serve``: the query API and dashboard over the store, under uvicorn.

The server reads the store, so it runs beside a replay or the distributed matcher on the same file,
or, several replicas of it, on one PostgreSQL store; it streams their live events by tailing the
store's event log (``GET /events/stream``), and writes only watchlist entries (admin routes).
Binding a non-loopback address needs a bearer token (``XREID_API__TOKEN``). A store
written by a newer build is refused at start (exit 2), as every other command refuses it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

SHUTDOWN_GRACE_S = 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="query API and dashboard (where else was this person seen?)",
                       description="Serve the JSON API (OpenAPI at /openapi.json, docs at /docs) and the dashboard "
                                   "(/) over the store. Set the bearer token with XREID_API__TOKEN; it is required "
                                   "when --host is not a loopback address.")
    p.add_argument("--config", type=Path, help="YAML config (default: built-in defaults + XREID_* environment)")
    p.add_argument("--store", help="the store: a SQLite file or postgresql://user@host:port/db (password: PGPASSWORD) "
                                   "(default: api.store_path, else store.url, else store.path = xreid-out/xreid.sqlite)")
    p.add_argument("--host", help="bind address (default: api.host = 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port (default: api.port = 8000)")
    p.add_argument("--checkpoint", help="X-ReID checkpoint for image search (default: api.checkpoint, else the "
                                        "committed synthetic-trained tiny model that replay/demo use by default)")
    p.add_argument("--untrained-encoder", action="store_true",
                   help="image search with an UNTRAINED tiny model instead (plumbing only: scores mean nothing)")
    p.add_argument("--no-image-search", action="store_true", help="load no encoder: search by track id only")
    p.add_argument("--device", default="cpu", help="device of the image-search encoder: cpu, cuda, auto (default cpu)")
    p.set_defaults(func=run)


def serve_until_stopped(config: Any, on_exit: Callable[[], None]) -> bool:
    """Run uvicorn with ``config`` until SIGTERM/SIGINT, calling ``on_exit`` first when told to stop.

    The open event streams never end by themselves and shutdown waits for open responses
    (``SHUTDOWN_GRACE_S`` at most, then cancels them): ``on_exit`` ends them so the stop is clean.
    Returns whether the server started (False: e.g. the port was taken; uvicorn logged why).
    """
    import asyncio

    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            try:   # a signal handler: hand the closing to the event loop rather than take locks here
                asyncio.get_running_loop().call_soon_threadsafe(on_exit)
            except RuntimeError:
                on_exit()
            super().handle_exit(sig, frame)

    server = Server(config)
    server.run()
    return bool(server.started)


def run(args: argparse.Namespace) -> int:
    import logging
    import signal

    import uvicorn

    from models.errors import ConfigError
    from pipeline.api import create_app
    from pipeline.api.queries import StoreReader
    from pipeline.config.loader import load_config
    from pipeline.config.settings import XreidCfg
    from pipeline.store.base import describe
    from pipeline.store.configured import network_options, store_location

    log = logging.getLogger("workers.serve")
    flags = {"host": args.host, "port": args.port, "checkpoint": args.checkpoint}
    cfg = load_config(XreidCfg, args.config, env=os.environ,
                      overrides={"api": {k: v for k, v in flags.items() if v is not None}})
    api = cfg.api
    store_path = store_location(cfg.store, args.store or api.store_path)
    network = network_options(cfg.store)
    # a store from a newer build is refused here with the CLI's reason (exit 2); one swapped in
    # later is answered 503 with the same reason; a missing one may still be created by its writer
    reader = StoreReader(store_path, network=network)
    reader.check_schema()
    reader.close()
    encoder = None
    if api.checkpoint and args.untrained_encoder:
        raise ConfigError("--untrained-encoder and a checkpoint (--checkpoint / api.checkpoint) exclude each other")
    if api.checkpoint or args.untrained_encoder or not args.no_image_search:
        from workers.identity_chain import load_encoder

        # no checkpoint: the committed model replay and demo use by default, so their stores are searchable
        encoder = load_encoder(api.checkpoint, device=args.device, untrained=args.untrained_encoder)
        log.info("image search with %s", encoder.model_id)
    app = create_app(api, store_path, encoder=encoder, gallery=cfg.matcher.gallery, events_cfg=cfg.events,
                     network=network)
    host = f"[{api.host}]" if ":" in api.host else api.host
    print(f"xreid serve: http://{host}:{api.port}/ over {describe(store_path)} (auth {'on' if api.token is not None else 'off'})",
          flush=True)
    level = logging.getLogger().getEffectiveLevel()
    # uvicorn shuts down gracefully on SIGTERM, restores the previous handler and re-raises the
    # signal; with this no-op handler in place the re-raise is absorbed and we exit 0 (DESIGN §7)
    signal.signal(signal.SIGTERM, lambda signum, frame: log.info("SIGTERM: stopped"))
    config = uvicorn.Config(app, host=api.host, port=api.port, log_level=max(level, logging.INFO)
                            if level > logging.DEBUG else logging.DEBUG, access_log=level <= logging.INFO,
                            server_header=False, timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
    if not serve_until_stopped(config, on_exit=app.state.sse.close):
        raise ConfigError(f"cannot serve on {host}:{api.port} (see the error above)")
    return 0
