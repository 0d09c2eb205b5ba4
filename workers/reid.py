"""The distributed re-ID worker: ``ReidStage`` over Redis, with signals, health and metrics.

Several workers share the ``reid`` consumer group, so scaling out is starting more of them. Each
batch is acked only after its embeddings are published; a worker killed mid-batch leaves its
entries pending and another worker reclaims them after ``bus.claim_idle_ms``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram

from pipeline.bus import GROUP_REID, STREAM_CLIPS, Bus
from pipeline.config.settings import XreidCfg
from pipeline.reid.stage import Encoder, ReidStage
from pipeline.runtime.metrics import Health, MetricsServer, Sample, SnapshotCollector, histogram_from_counts
from workers.lifecycle import Shutdown, StageMonitor, bus_samples, run_loop

log = logging.getLogger(__name__)

BATCH_BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ReidWorker:
    """One re-ID worker process.

    Args:
        bus: a ``RedisBus`` (any ``Bus`` works; tests may pass a ``MemoryBus``).
        encoder: the X-ReID encoder (``ReidEncoder``) or anything with its surface.
        cfg: ``reid`` (batching) and ``bus`` (claim timeout, trimming) sections are used.
        consumer: this worker's name in the ``reid`` group; unique per process.
        shutdown: the process's stop/abort events.
    """

    def __init__(self, bus: Bus, encoder: Encoder, cfg: XreidCfg, consumer: str, shutdown: Shutdown) -> None:
        self.bus, self.cfg, self.consumer, self.shutdown = bus, cfg, consumer, shutdown
        self.stage = ReidStage(bus, encoder, cfg.reid, consumer=consumer, claim_idle_ms=cfg.bus.claim_idle_ms)
        self.started = time.monotonic()
        self.registry = CollectorRegistry()
        self.latency = Histogram("xreid_reid_batch_latency_seconds", "read -> ack time of one batch",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(SnapshotCollector(self.samples))
        self.monitor = StageMonitor(bus, STREAM_CLIPS, GROUP_REID, self.stage.counters, self.latency, cfg.bus.trim_every_s)

    def samples(self) -> Iterator[Sample]:
        c = self.stage.counters
        yield Sample("xreid_clips_consumed_total", c.consumed, "counter", {}, "clip entries read (redeliveries included)")
        yield Sample("xreid_embeddings_produced_total", c.published, "counter", {}, "embeddings published")
        yield Sample("xreid_clips_acked_total", c.acked, "counter", {}, "clip entries acknowledged")
        for reason, n in sorted(c.dead_lettered.items()):
            yield Sample("xreid_clips_dead_lettered_total", n, "counter", {"reason": reason},
                         "clips sent to the dead-letter stream, by reason")
        buckets, total = histogram_from_counts(c.batch_sizes, BATCH_BOUNDS)
        yield Sample("xreid_reid_batch_size", total, "histogram", {}, "clips per encoder batch", buckets)
        for kind, value in self.monitor.backlog().items():
            yield Sample("xreid_clips_backlog", value, "gauge", {"kind": kind}, "clips stream backlog of the reid group")
        yield from bus_samples(self.bus, "reid")

    def health(self) -> Health:
        status, stale, bus = self.monitor.liveness()
        return Health(status, {"worker": "reid", "consumer": self.consumer, "since_last_step_s": round(stale, 1),
                               **bus, "snapshot": self.stage.counters.snapshot()})

    def run(self, metrics: MetricsServer | None = None) -> int:
        """Process batches until SIGTERM; the batch in hand is finished and acked. Returns 0."""
        log.info("reid worker %s consuming %s (group %s)", self.consumer, STREAM_CLIPS, GROUP_REID)
        try:
            run_loop(self.stage.step, self.shutdown, self.monitor.beat, "reid worker")
        finally:
            if metrics is not None:
                metrics.stop()
            self.bus.close()
        snap = self.stage.counters.snapshot()
        log.warning("reid worker %s stopped: %d consumed, %d embeddings, %d acked, dead-lettered %s",
                    self.consumer, snap["consumed"], snap["published"], snap["acked"], snap["dead_lettered"])
        return 0
