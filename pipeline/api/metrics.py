"""Prometheus metrics of the API: requests by route and status, latency, refusals, store size.

Each app owns its registry (no process-global collectors), so several apps in one process (tests)
never collide. Store gauges are read at scrape time from a fresh snapshot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.api.queries import StoreReader, StoreUnavailable

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _StoreCollector:
    def __init__(self, reader: StoreReader) -> None:
        self.reader = reader

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("xreid_store_up", "1 when the API can read the store")
        tracks = GaugeMetricFamily("xreid_store_tracks", "tracks in the store")
        identities = GaugeMetricFamily("xreid_store_identities", "identities with tracks (merged ones count once)")
        try:
            with self.reader.snapshot() as snap:
                n_tracks, n_ids = snap.counts()
        except StoreUnavailable as e:
            log.debug("store gauges unavailable: %s", e)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        tracks.add_metric([], n_tracks)
        identities.add_metric([], n_ids)
        yield from (up, tracks, identities)


class ApiMetrics:
    """The API's collectors in their own registry."""

    def __init__(self, reader: StoreReader) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("xreid_api_requests", "HTTP requests by route template, method and status",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("xreid_api_request_seconds", "request latency by route template", ["route"],
                                 registry=self.registry)
        self.auth_failures = Counter("xreid_api_auth_failures", "requests refused for a missing or wrong token",
                                     registry=self.registry)
        self.audit_failures = Counter("xreid_api_audit_failures", "answers replaced by 503: the audit entry could "
                                      "not be recorded", registry=self.registry)
        self.rejected_uploads = Counter("xreid_api_rejected_uploads", "search uploads refused, by reason",
                                        ["reason"], registry=self.registry)
        self.registry.register(_StoreCollector(reader))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware counting every response (401s from the auth layer included)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        t0 = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"  # templates: bounded label set
            self.metrics.requests.labels(route, scope.get("method", ""), str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - t0)
