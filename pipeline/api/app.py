"""The FastAPI application: routes, auth, limits, metrics and the dashboard, wired in one place.

``create_app`` takes everything it needs as arguments (config section, store location, an optional
encoder) so tests, ``xreid serve`` and the distributed API container build the same app.
Middleware order, outermost first: metrics (so refusals are counted) → CORS (only when origins
are configured) → bearer auth (before routing: unknown paths get 401 too) → audit trail (every
authenticated data request is recorded before its answer leaves) → body limit → routes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPMethod
from pathlib import Path
from typing import Protocol

import numpy as np
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from pipeline.api.audit import AuditLog, AuditTrail
from pipeline.api.auth import BearerAuth
from pipeline.api.event_tail import EventTail
from pipeline.api.limits import BodyLimit, DecodeGate
from pipeline.api.metrics import ApiMetrics, RequestMetrics
from pipeline.api.queries import StoreReader
from pipeline.api.routes import calibration, dashboard, events, identities, privacy, search, system, tracks, watchlists
from pipeline.api.search import SearchIndex
from pipeline.config.events import EventsCfg
from pipeline.config.settings import ApiCfg, GalleryCfg
from pipeline.events.hub import create_sse
from pipeline.store.base import NetworkOptions

log = logging.getLogger(__name__)

FORM_OVERHEAD_BYTES = 1024 * 1024  # multipart boundaries and small fields on top of the images
CORS_METHODS = (HTTPMethod.GET, HTTPMethod.POST, HTTPMethod.DELETE)  # DELETE: the admin's erasure routes, watchlists


class QueryEncoder(Protocol):
    """What ``/search`` needs from the re-ID encoder (``models.xreid`` ``ReidEncoder``)."""

    model_id: str

    def encode(self, clips: list[list[np.ndarray]], modalities: list[str]) -> np.ndarray: ...


def create_app(cfg: ApiCfg, store_path: str | Path, encoder: QueryEncoder | None = None,
               gallery: GalleryCfg | None = None, events_cfg: EventsCfg | None = None,
               network: NetworkOptions | None = None) -> FastAPI:
    """Build the API over the store at ``store_path``.

    Args:
        cfg: the ``api`` config section (token, admin token, limits, CORS).
        store_path: the SQLite file or ``postgresql://`` URL the replay or matcher writes; it may not exist yet.
        encoder: encodes uploaded images for ``/search`` and watchlist entries; ``None`` limits search to
            track ids and watchlists to identities.
        gallery: faiss index settings of the search galleries (the matcher's, ideally).
        events_cfg: the ``events`` section (SSE buffers, how often the store's event log is read).
        network: pool size and backoff of a PostgreSQL store.
    """
    events_cfg = events_cfg or EventsCfg()
    sse = create_sse(events_cfg)
    reader = StoreReader(store_path, network=network)
    audit_log = AuditLog(store_path, reader.network)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # the event log is tailed only while the server runs (tests building the app alone start no thread)
        tail = EventTail(app.state.reader, sse, events_cfg.api_poll_s, events_cfg.sse_replay).start()
        app.state.event_tail = tail
        try:
            yield
        finally:
            tail.stop()
            sse.close()
            reader.close()   # a PostgreSQL store's pools
            audit_log.close()

    app = FastAPI(
        lifespan=lifespan,
        title="xreid",
        version="0.1.0",
        description="Where else was this person seen? Tracks and cross-camera, cross-modality identities "
                    "from the xreid store. Times are ISO-8601 UTC. Authenticate with `Authorization: Bearer <token>` "
                    "when the server has a token.",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.cfg = cfg
    app.state.reader = reader
    app.state.audit_log = audit_log
    app.state.encoder = encoder
    app.state.search_index = SearchIndex(gallery)
    app.state.decode_gate = DecodeGate(cfg.max_concurrent_decodes, cfg.decode_wait_s)
    app.state.metrics = metrics = ApiMetrics(reader)
    app.state.sse = sse
    app.state.events_cfg = events_cfg
    app.state.event_tail = None

    for module in (system, tracks, identities, calibration, search, events, watchlists, dashboard, privacy):
        app.include_router(module.router)

    # add_middleware wraps: the last added is the outermost
    app.add_middleware(BodyLimit, max_bytes=cfg.max_upload_files * cfg.max_upload_bytes + FORM_OVERHEAD_BYTES)
    app.add_middleware(AuditTrail, audit_log=audit_log, public_paths=dashboard.public_paths(),
                       on_failure=metrics.audit_failures.inc)
    if cfg.token is not None:
        admin = cfg.admin_token.get_secret_value() if cfg.admin_token is not None else None
        app.add_middleware(BearerAuth, token=cfg.token.get_secret_value(), public_paths=dashboard.public_paths(),
                           on_failure=metrics.auth_failures.inc, admin_token=admin)
    if cfg.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cfg.cors_origins),
                           allow_methods=[m.value for m in CORS_METHODS], allow_headers=["authorization", "content-type"])
    app.add_middleware(RequestMetrics, metrics=metrics)
    log.info("api over store %s (auth %s, search model %s)", reader.path, "on" if cfg.token is not None else "off",
             encoder.model_id if encoder is not None else "none")
    return app
