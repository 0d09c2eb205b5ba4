"""Camera status reports: redacted at the source, stored by the store's single writer, latest wins."""

from __future__ import annotations

import pytest

from models.errors import ContractError
from pipeline.bus import MemoryBus
from pipeline.camera.status import STREAM_CAMERA_STATUS, CameraStatusEvent
from pipeline.matcher.status_sink import CameraStatusSink
from pipeline.store.base import Store

SECRET = "pa55-word"


def _rows(store: Store) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in store.execute("SELECT camera_id, status, reason, source, modality, updated_at "
                                               "FROM cameras")}


def test_status_events_are_redacted_and_round_trip():
    e = CameraStatusEvent.make("cam1", "reconnecting", f"cannot open rtsp://admin:{SECRET}@10.0.0.9/live",
                               f"rtsp://admin:{SECRET}@10.0.0.9/live", "rgb", 1000.0)
    assert SECRET not in e.reason and SECRET not in e.source and "10.0.0.9" in e.source
    assert SECRET.encode() not in e.to_bytes()
    assert CameraStatusEvent.from_bytes(e.to_bytes()) == e
    for bad in (b"\xff", b"[]", b'{"v": 1, "kind": "camera_status"}', b'{"v": 2, "kind": "camera_status"}'):
        with pytest.raises(ContractError):
            CameraStatusEvent.from_bytes(bad)
    with pytest.raises(ContractError, match="state"):
        CameraStatusEvent.make("cam1", "sleeping", "", "", "rgb", 1.0)


def test_sink_stores_the_latest_state_per_camera_and_dead_letters_garbage(tmp_path):
    bus = MemoryBus()
    store = Store(tmp_path / "xreid.sqlite")
    sink = CameraStatusSink(bus, store, "matcher-1")
    events = [CameraStatusEvent.make("cam1", "connected", "", f"rtsp://u:{SECRET}@h/1", "rgb", 10.0),
              CameraStatusEvent.make("cam2", "failed", "gave up after 3 reconnect attempts", "/f.mp4", "ir", 11.0),
              CameraStatusEvent.make("cam1", "reconnecting", "stream lost", f"rtsp://u:{SECRET}@h/1", "rgb", 12.0)]
    for e in events:
        bus.publish(STREAM_CAMERA_STATUS, e.to_bytes())
    bus.publish(STREAM_CAMERA_STATUS, b"not json")
    assert sink.step() == 3 and sink.dead_lettered == 1
    rows = _rows(store)
    assert rows["cam1"][:2] == ("reconnecting", "stream lost") and rows["cam1"][2] == "rtsp://***@h/1"
    assert rows["cam2"][:2] == ("failed", "gave up after 3 reconnect attempts")
    late = CameraStatusEvent.make("cam1", "connected", "", "rtsp://h/1", "rgb", 5.0)  # older than what is stored
    bus.publish(STREAM_CAMERA_STATUS, late.to_bytes())
    assert sink.step() == 1 and _rows(store)["cam1"][0] == "reconnecting", "an older report never wins"
    assert sink.step() == 0 and bus.pending(STREAM_CAMERA_STATUS, "status-store") == 0
    assert SECRET not in str(rows)
    store.close()


def test_day_night_switches_reach_the_store_through_the_sink(tmp_path):
    import math

    from pipeline.camera.status import decode_report, switch_to_bytes
    from pipeline.ingest.daynight import ModalitySwitch
    from pipeline.store.modality_events import list_switches

    bus = MemoryBus()
    store = Store(tmp_path / "xreid.sqlite")
    sink = CameraStatusSink(bus, store, "matcher-1")
    first = ModalitySwitch("gate", 100.0, None, "rgb", math.nan, math.nan)
    night = ModalitySwitch("gate", 160.5, "rgb", "ir", 0.03, 0.99)
    assert decode_report(switch_to_bytes(night)) == night
    for e in (first, night, night):  # a redelivered report rewrites the same row
        bus.publish(STREAM_CAMERA_STATUS, switch_to_bytes(e))
    assert sink.step() == 3
    got = list_switches(store, "gate")
    assert [(e.from_modality, e.to_modality, e.ts) for e in got] == [(None, "rgb", 100.0), ("rgb", "ir", 160.5)]
    store.close()
