"""Modality switch events in the store, the per-camera timeline, and camera × modality for X-ReID."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.errors import ConfigError, StoreError
from models.xreid import ReidEncoder, create_model
from pipeline.ingest.daynight import ModalitySwitch
from pipeline.reid.camera_index import camera_key, expand_camera_index
from pipeline.store.base import Store
from pipeline.store.modality_events import cameras_with_events, list_switches, modality_timeline, record_switch

T0 = 1_700_000_000.0


def test_switch_events_round_trip_and_rewrites_are_idempotent(store_url):
    with Store(store_url) as store:
        events = [ModalitySwitch("gate", T0, None, "rgb", 0.4, 0.92),
                  ModalitySwitch("gate", T0 + 3600, "rgb", "ir", 0.01, 0.999),
                  ModalitySwitch("lobby", T0 + 10, None, "ir", float("nan"), float("nan"))]
        for ev in events + events[:2]:
            record_switch(store, ev)
        got = list_switches(store)
        assert [(e.camera_id, e.ts, e.from_modality, e.to_modality) for e in got] == [
            ("gate", T0, None, "rgb"), ("gate", T0 + 3600, "rgb", "ir"), ("lobby", T0 + 10, None, "ir")]
        assert got[1].saturation == pytest.approx(0.01) and np.isnan(got[2].saturation)
        assert cameras_with_events(store) == ["gate", "lobby"]
    with Store(store_url, readonly=True) as reader:           # the API reads it read-only
        assert len(list_switches(reader, "gate")) == 2


def test_timeline_spans_cover_colour_and_infrared_periods(store_url):
    with Store(store_url) as store:
        for ev in (ModalitySwitch("gate", T0, None, "rgb", 0.4, 0.9),
                   ModalitySwitch("gate", T0 + 100, "rgb", "ir", 0.0, 1.0),
                   ModalitySwitch("gate", T0 + 500, "ir", "rgb", 0.4, 0.9)):
            record_switch(store, ev)
        spans = modality_timeline(store, "gate")
        assert [(s.modality, s.t_start, s.t_end, s.switched_in) for s in spans] == [
            ("rgb", T0, T0 + 100, False), ("ir", T0 + 100, T0 + 500, True), ("rgb", T0 + 500, None, True)]
        assert [s.modality for s in modality_timeline(store, "gate", t_from=T0 + 200, t_to=T0 + 300)] == ["ir"]
        assert modality_timeline(store, "nowhere") == []
        assert spans[1].as_dict()["modality"] == "ir"


def test_store_schema_has_the_modality_events_table(store_url):
    with Store(store_url) as store:
        assert "modality_events" in store.table_names()
        with pytest.raises(StoreError, match="(?i)check constraint"):
            store.execute("INSERT INTO modality_events (camera_id, ts, to_modality) VALUES ('c', 1, 'thermal')")


def test_camera_index_expands_plain_and_per_modality_keys():
    idx = expand_camera_index({"lobby": 3, "gate": 1, "gate:ir": 7})
    assert idx == {"lobby:rgb": 3, "lobby:ir": 3, "gate:rgb": 1, "gate:ir": 7}
    assert camera_key("gate", "ir") == "gate:ir"
    with pytest.raises(ConfigError, match="modality"):
        expand_camera_index({"gate:thermal": 1})
    with pytest.raises(ConfigError, match=">= 0"):
        expand_camera_index({"gate": -1})


def test_a_switching_camera_is_two_cameras_to_the_model():
    torch.manual_seed(0)
    model = create_model("xreid_tiny").eval()
    with torch.no_grad():
        model.camera_embed.normal_(0, 1.0)
    n = model.cfg.camera_num                                       # first half colour cameras, second half infrared
    model.set_camera_modalities(torch.tensor([[i < n // 2, i >= n // 2] for i in range(n)]))
    enc = ReidEncoder.from_model(model, "m", camera_index=expand_camera_index({"gate:rgb": 1, "gate:ir": 2}))
    rng = np.random.default_rng(0)
    clip = [rng.integers(0, 256, (96, 40, 3), dtype=np.uint8) for _ in range(4)]
    day = enc.encode([clip], ["ir"], [camera_key("gate", "rgb")])
    night = enc.encode([clip], ["ir"], [camera_key("gate", "ir")])
    assert np.abs(day - night).max() > 1e-3                        # a different learned embedding per modality
    unseen_night = enc.encode([clip], ["ir"], [camera_key("yard", "ir")])
    assert np.array_equal(unseen_night, enc.encode([clip], ["ir"]))  # unseen: the infrared mean embedding
    unseen_day = enc.encode([clip], ["rgb"], [camera_key("yard", "rgb")])
    assert np.abs(unseen_day - unseen_night).max() > 1e-3          # ... which is not the colour one


def test_api_shows_each_cameras_modality_timeline(store_url):
    from fastapi.testclient import TestClient

    from pipeline.api import create_app
    from pipeline.config.settings import ApiCfg
    from pipeline.store.tracks import TrackRow, upsert_track

    path = store_url
    with Store(path) as store:
        for ev in (ModalitySwitch("gate", T0, None, "rgb", 0.4, 0.9),
                   ModalitySwitch("gate", T0 + 100, "rgb", "ir", 0.0, 1.0),
                   ModalitySwitch("lobby", T0, None, "ir", float("nan"), float("nan"))):
            record_switch(store, ev)
        upsert_track(store, TrackRow("gate-r-1", "gate", "rgb", T0 + 10, T0 + 20, 10, 1))
        upsert_track(store, TrackRow("gate-r~1-1", "gate", "ir", T0 + 110, T0 + 120, 10, 1))
    with TestClient(create_app(ApiCfg(), path)) as client:
        cams = {c["camera_id"]: c for c in client.get("/cameras").json()}
        assert cams["gate"]["current_modality"] == "ir" and cams["gate"]["modality_switches"] == 1
        assert cams["gate"]["modalities"] == ["ir", "rgb"]
        assert cams["lobby"]["current_modality"] == "ir" and cams["lobby"]["n_tracks"] == 0
        spans = client.get("/cameras/gate/modality").json()
        assert [(s["modality"], s["switched_in"], s["t_end"] is None) for s in spans] == [
            ("rgb", False, False), ("ir", True, True)]
        assert spans[0]["t_end"] == spans[1]["t_start"]
        late = client.get("/cameras/gate/modality", params={"since": "2023-11-14T22:15:00Z"}).json()
        assert [s["modality"] for s in late] == ["ir"]
        assert client.get("/cameras/nowhere/modality").status_code == 404
