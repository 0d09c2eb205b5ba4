"""The matcher's side of camera reports: drain ``xreid:camera-status`` into the store, then ack.

The store has one writer, the matcher, so camera workers publish their status and modality switches on
the bus (``pipeline/camera/status.py``) and this sink, run by the matcher worker, makes them durable.
"""

from __future__ import annotations

from models.errors import ContractError
from pipeline.bus import Bus
from pipeline.camera.status import GROUP_STATUS_STORE, STREAM_CAMERA_STATUS, CameraStatusEvent, decode_report
from pipeline.ingest.daynight import ModalitySwitch
from pipeline.store.base import Store
from pipeline.store.cameras import save_statuses
from pipeline.store.modality_events import record_switch


class CameraStatusSink:
    """Moves camera status events from the bus into the store (run by the store's single writer)."""

    def __init__(self, bus: Bus, store: Store, consumer: str, claim_idle_ms: int = 30_000) -> None:
        self.bus, self.store, self.consumer, self.claim_idle_ms = bus, store, consumer, claim_idle_ms
        self.saved = 0
        self.dead_lettered = 0
        bus.ensure_group(STREAM_CAMERA_STATUS, GROUP_STATUS_STORE)

    def step(self, count: int = 100) -> int:
        """Store what is waiting (never blocks); returns how many events were saved."""
        msgs = self.bus.claim_stale(STREAM_CAMERA_STATUS, GROUP_STATUS_STORE, self.consumer, self.claim_idle_ms, count)
        msgs += self.bus.read(STREAM_CAMERA_STATUS, GROUP_STATUS_STORE, self.consumer, count, 0)
        if not msgs:
            return 0
        statuses: list[CameraStatusEvent] = []
        switches: list[ModalitySwitch] = []
        ids: list[str] = []
        for m in msgs:
            try:
                report = decode_report(m.data)
            except ContractError as e:
                self.bus.dead_letter(STREAM_CAMERA_STATUS, GROUP_STATUS_STORE, m, f"contract: {e}")
                self.dead_lettered += 1
                continue
            (statuses if isinstance(report, CameraStatusEvent) else switches).append(report)
            ids.append(m.id)
        save_statuses(self.store, statuses)  # durable first, then ack
        for event in switches:
            record_switch(self.store, event)  # idempotent: a redelivered event rewrites the same row
        self.bus.ack(STREAM_CAMERA_STATUS, GROUP_STATUS_STORE, ids)
        self.saved += len(ids)
        return len(ids)
