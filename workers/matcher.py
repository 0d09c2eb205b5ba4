"""The distributed matcher worker: ``MatcherStage`` over Redis into the store (SQLite or PostgreSQL).

The matcher is the store's single writer (docs/design.md §4 Store): run exactly one per store (a
PostgreSQL store enforces it with an advisory lock). It acks an embedding only after the transaction
holding its outcome has committed, so a crash, or a database lost mid-batch, redelivers instead of
losing; redelivered clips are recognised and only acked. While the store's database is unreachable the
worker waits it out with backoff and reports itself degraded, not failed. It announces its
decisions as live events (the store's event log, which the API streams, and MQTT and webhooks when
``events:`` configures them); a broker or endpoint that cannot be reached makes ``/health``
degraded and never stops the matching.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram

from models.errors import BusError, StoreError
from pipeline.bus import GROUP_MATCHER, STREAM_EMBEDDINGS, Bus
from pipeline.events.hub import EventHub
from pipeline.matcher.stage import MatcherStage
from pipeline.matcher.status_sink import CameraStatusSink
from pipeline.runtime.metrics import Health, MetricsServer, Sample, SnapshotCollector, histogram_from_counts
from pipeline.store.base import Store, StoreRefused, WriterLockHeld
from workers.lifecycle import Shutdown, StageMonitor, bus_samples, event_samples, run_loop

log = logging.getLogger(__name__)

BATCH_BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class MatcherWorker:
    """One matcher process.

    Args:
        stage: the ``MatcherStage`` (already rebuilt from the store).
        store: the store it writes (closed on exit).
        trim_every_s: how often acked embeddings are trimmed from the stream (0 = never).
        hub: the live-event sinks (MQTT, webhooks), closed on exit; the stage's announcer publishes to it.
        end_wait_s: how long ``track.ended`` waits for a track's last clips (``events.track_end_wait_s``).
    """

    def __init__(self, bus: Bus, stage: MatcherStage, store: Store, shutdown: Shutdown, consumer: str,
                 trim_every_s: float = 10.0, hub: EventHub | None = None, end_wait_s: float = 30.0) -> None:
        self.bus, self.stage, self.store, self.shutdown, self.consumer = bus, stage, store, shutdown, consumer
        self.hub = hub
        self.statuses = CameraStatusSink(bus, store, consumer, stage.claim_idle_ms, announcer=stage.announcer,
                                         matcher=lambda: stage.matcher, end_wait_s=end_wait_s)
        self.registry = CollectorRegistry()
        self.latency = Histogram("xreid_matcher_batch_latency_seconds", "read -> commit -> ack time of one batch",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(SnapshotCollector(self.samples))
        self.monitor = StageMonitor(bus, STREAM_EMBEDDINGS, GROUP_MATCHER, self.stage.counters, self.latency, trim_every_s)

    def _step(self) -> None:
        self.stage.step()
        self.statuses.step()  # camera states for /cameras: never blocks

    def samples(self) -> Iterator[Sample]:
        c = self.stage.counters
        yield Sample("xreid_embeddings_consumed_total", c.consumed, "counter", {},
                     "embedding entries read (redeliveries included)")
        yield Sample("xreid_embeddings_stored_total", c.published, "counter", {}, "embeddings folded into the store")
        yield Sample("xreid_embeddings_duplicate_total", c.duplicates, "counter", {},
                     "redelivered embeddings recognised and only acked")
        yield Sample("xreid_embeddings_acked_total", c.acked, "counter", {}, "embedding entries acknowledged")
        for reason, n in sorted(c.dead_lettered.items()):
            yield Sample("xreid_embeddings_dead_lettered_total", n, "counter", {"reason": reason},
                         "embeddings sent to the dead-letter stream, by reason")
        buckets, total = histogram_from_counts(c.batch_sizes, BATCH_BOUNDS)
        yield Sample("xreid_matcher_batch_size", total, "histogram", {}, "embeddings per store transaction", buckets)
        for kind, value in self.monitor.backlog().items():
            yield Sample("xreid_embeddings_backlog", value, "gauge", {"kind": kind},
                         "embeddings stream backlog of the matcher group")
        yield Sample("xreid_camera_status_saved_total", self.statuses.saved, "counter", {},
                     "camera status reports written to the store")
        yield Sample("xreid_embeddings_forgotten_total", self.stage.forgotten_dropped, "counter", {},
                     "embeddings of erased tracks that arrived after the erasure, acked and dropped")
        privacy = self.stage.privacy
        if privacy is not None:
            yield Sample("xreid_erasures_executed_total", privacy.executed, "counter", {},
                         "forget requests this matcher executed")
            if privacy.sweep is not None:
                for kind, n in privacy.sweep.totals.as_dict().items():
                    yield Sample("xreid_retention_deleted_total", n, "counter", {"kind": kind},
                                 "items retention sweeps deleted, by kind")
        for c in self.stage.matcher.calibrator.state():
            labels = {"model_id": c.model_id, "pair": c.pair}
            yield Sample("xreid_matcher_threshold", c.threshold, "gauge", {**labels, "source": c.source},
                         "cosine a track needs to join an identity (source: manual, auto or default)")
            for kind, n in (("genuine", c.n_genuine), ("impostor", c.n_impostor)):
                yield Sample("xreid_matcher_calibration_samples", n, "gauge", {**labels, "kind": kind},
                             "free calibration evidence behind the threshold, by kind")
            if c.impostor_rate is not None:
                yield Sample("xreid_matcher_impostor_pass_rate", c.impostor_rate, "gauge", labels,
                             "share of the site's impostor pairs at or above the threshold")
        yield from bus_samples(self.bus, "matcher")
        if self.stage.announcer is not None:
            yield from event_samples(self.hub, self.stage.announcer)
        yield Sample("xreid_store_unreachable_seconds", round(self.store.unreachable_for_s(), 1), "gauge",
                     {"worker": "matcher"}, "how long the store's database has been unreachable (0 when reachable)")

    def health(self) -> Health:
        """``degraded`` also while an event broker or endpoint is unreachable: matching goes on, events queue."""
        status, stale, bus = self.monitor.liveness()
        store_down = self.store.unreachable_for_s()
        if store_down > 0:
            status = "degraded"   # waiting out the database: restarting would not help
        unreachable = self.hub.degraded() if self.hub is not None else []
        if unreachable and status == "ok":
            status = "degraded"
        return Health(status, {"worker": "matcher", "consumer": self.consumer, "store": self.store.path,
                               "store_reachable": store_down == 0, "store_unreachable_s": round(store_down, 1),
                               "since_last_step_s": round(stale, 1), **bus,
                               "events_unreachable": unreachable,
                               "snapshot": self.stage.counters.snapshot()})

    def run(self, metrics: MetricsServer | None = None) -> int:
        """Match until SIGTERM; the batch in hand is committed and acked first. Returns 0."""
        log.info("matcher %s consuming %s into %s", self.consumer, STREAM_EMBEDDINGS, self.store.path)
        try:
            run_loop(self._step, self.shutdown, self.monitor.beat, "matcher", transient=(BusError, StoreError),
                     fatal=(StoreRefused, WriterLockHeld))
        finally:
            if metrics is not None:
                metrics.stop()
            if self.hub is not None:
                self.hub.close(timeout_s=2.0)   # queued events get a moment; the shutdown budget is 10 s
            if self.stage.privacy is not None:
                self.stage.privacy.close()   # requesters execute in place from now on
            self.bus.close()
            self.store.close()
        snap = self.stage.counters.snapshot()
        log.warning("matcher %s stopped: %d consumed, %d stored, %d duplicates, dead-lettered %s", self.consumer,
                    snap["consumed"], snap["published"], snap["duplicates"], snap["dead_lettered"])
        return 0
