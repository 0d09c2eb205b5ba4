"""Plain counters a stage keeps so its worker can export them as Prometheus metrics.

Stages update these attributes; ``workers/`` read them (no metrics library in the library code).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np


@dataclass
class StageCounters:
    """Since-start counts of one stage.

    Attributes:
        consumed: bus entries read (redeliveries included).
        published: messages published downstream (re-ID) or outcomes stored (matcher).
        acked: entries acknowledged.
        dead_lettered: entries sent to the dead-letter stream, by reason code.
        batch_sizes: histogram, batch size -> number of batches.
        latencies_s: the most recent per-batch latencies (read -> ack), seconds.
    """

    consumed: int = 0
    published: int = 0
    acked: int = 0
    duplicates: int = 0
    batches: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)
    batch_sizes: Counter[int] = field(default_factory=Counter)
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=1024))

    def record_batch(self, size: int, latency_s: float) -> None:
        self.batches += 1
        self.batch_sizes[size] += 1
        self.latencies_s.append(latency_s)

    def snapshot(self) -> dict[str, object]:
        """A JSON-ready view, with latency p50/p99 over the recent window."""
        lat = np.asarray(self.latencies_s, dtype=np.float64)
        return {
            "consumed": self.consumed,
            "published": self.published,
            "acked": self.acked,
            "duplicates": self.duplicates,
            "batches": self.batches,
            "dead_lettered": dict(self.dead_lettered),
            "batch_sizes": {int(k): v for k, v in sorted(self.batch_sizes.items())},
            "latency_p50_ms": float(np.percentile(lat, 50) * 1000) if lat.size else None,
            "latency_p99_ms": float(np.percentile(lat, 99) * 1000) if lat.size else None,
        }
