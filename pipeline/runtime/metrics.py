"""Health and Prometheus metrics of a worker process, served over a small HTTP server.

Each worker owns a ``CollectorRegistry`` (no process-global collectors, so tests can run several
workers in one process). Stage counters are not duplicated into Prometheus objects: a
``SnapshotCollector`` reads them at scrape time and turns plain samples into metric families.

    GET /metrics  -> Prometheus text format
    GET /health   -> JSON ``{"status": "ok"|"degraded"|"failed", ...}``; HTTP 200 unless failed (503)
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from models.errors import ConfigError

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HealthState = Literal["ok", "degraded", "failed"]


@dataclass(frozen=True)
class Sample:
    """One metric value with labels; samples of one ``name`` become one family.

    ``kind="histogram"`` takes ``buckets`` (upper bound -> cumulative count, ending in ``+Inf``)
    and ``value`` as the sum.
    """

    name: str
    value: float
    kind: Literal["counter", "gauge", "histogram"] = "gauge"
    labels: Mapping[str, str] = field(default_factory=dict)
    help: str = ""
    buckets: tuple[tuple[str, float], ...] = ()


class SnapshotCollector:
    """A Prometheus collector that calls ``snapshot()`` at every scrape."""

    def __init__(self, snapshot: Callable[[], Iterable[Sample]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for s in self._snapshot():
            names = sorted(s.labels)
            fam = families.get(s.name)
            if fam is None:
                if s.kind == "counter":
                    fam = CounterMetricFamily(s.name, s.help or s.name, labels=names)
                elif s.kind == "histogram":
                    fam = HistogramMetricFamily(s.name, s.help or s.name, labels=names)
                else:
                    fam = GaugeMetricFamily(s.name, s.help or s.name, labels=names)
                families[s.name] = fam
            values = [str(s.labels[k]) for k in names]
            if s.kind == "histogram":
                fam.add_metric(values, list(s.buckets), s.value)  # type: ignore[attr-defined]
            else:
                fam.add_metric(values, s.value)  # type: ignore[attr-defined]
        yield from families.values()


def histogram_from_counts(counts: Mapping[int, int], bounds: Iterable[float]) -> tuple[tuple[tuple[str, float], ...], float]:
    """Cumulative Prometheus buckets and the sum from an exact ``value -> occurrences`` table."""
    bounds = sorted(bounds)
    buckets = []
    for b in bounds:
        buckets.append((_fmt(b), float(sum(n for v, n in counts.items() if v <= b))))
    buckets.append(("+Inf", float(sum(counts.values()))))
    return tuple(buckets), float(sum(v * n for v, n in counts.items()))


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


@dataclass
class Health:
    """What ``/health`` reports; workers update it from their loop."""

    status: HealthState = "ok"
    detail: dict[str, Any] = field(default_factory=dict)


class MetricsServer:
    """Serves ``/metrics`` and ``/health`` from a daemon thread.

    Args:
        registry: the worker's collectors.
        health: called per ``/health`` request.
        host, port: where to listen; port 0 picks a free one (see ``port`` after ``start``).

    Raises:
        ConfigError: the port is taken or the host cannot be bound.
    """

    def __init__(self, registry: CollectorRegistry, health: Callable[[], Health], host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.registry = registry
        self._health = health
        handler = self._handler_class()
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as e:
            raise ConfigError(f"cannot serve metrics on {host}:{port}: {e.strerror or e}") from None
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body, ctype, code = generate_latest(owner.registry), CONTENT_TYPE, 200
                elif path in ("/health", "/healthz"):
                    h = owner._health()
                    body = json.dumps({"status": h.status, **h.detail}, default=str).encode()
                    ctype, code = "application/json", 503 if h.status == "failed" else 200
                else:
                    body, ctype, code = b"not found\n", "text/plain", 404
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("metrics http: " + fmt, *args)

        return Handler

    def start(self) -> MetricsServer:
        self._thread.start()
        log.info("metrics and health on http://%s:%d/metrics", self.host, self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
