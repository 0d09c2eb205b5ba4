"""One camera-id rule everywhere an id enters: --camera, config camera lists, bus messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from models.errors import ConfigError, ContractError
from pipeline.config.ids import check_camera_id, is_camera_id
from pipeline.config.loader import from_dict
from pipeline.config.settings import XreidCfg
from tests.support.messages import make_clip, make_embedding

ROOT = Path(__file__).resolve().parents[2]
BAD_IDS = ["", "cam\n1", "cam\r", "a/b", "..", ".", ".hidden", "-x", "_x", "cam 1", "c:1", "c\x00", "c\x1b[31m",
           "x" * 65, "ü", "cam\t2", "a\\b"]
GOOD_IDS = ["cam1", "cam-a", "cam-ir", "c", "C2", "entrance-thermal", "lobby.recording", "yard_2", "x" * 64,
            "1cam", "a..b"]


@pytest.mark.parametrize("cam_id", GOOD_IDS)
def test_ids_in_use_are_valid(cam_id):
    assert is_camera_id(cam_id) and check_camera_id(cam_id) == cam_id


@pytest.mark.parametrize("cam_id", BAD_IDS)
def test_ids_that_could_reach_a_path_a_clip_id_or_a_log_line_are_refused(cam_id):
    assert not is_camera_id(cam_id)
    with pytest.raises(ConfigError, match="must match"):
        check_camera_id(cam_id)


@pytest.mark.parametrize("cam_id", ["cam\n1", "../etc", "c:1", "cam 1"])
def test_the_config_camera_list_and_the_message_contracts_apply_the_same_rule(cam_id):
    with pytest.raises(ConfigError, match="must match"):
        from_dict(XreidCfg, {"cameras": [{"id": cam_id, "source": "a.mp4"}]}, "site.yaml")
    with pytest.raises(ContractError, match="Clip.camera_id must match"):
        make_clip(camera_id=cam_id, clip_id=f"{cam_id}:abc-7:0")
    with pytest.raises(ContractError, match="Embedding.camera_id must match"):
        make_embedding(camera_id=cam_id, clip_id=f"{cam_id}:t1:3")


def test_every_camera_id_the_shipped_configs_use_is_valid():
    ids = []
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text()) or {}
        ids += [c["id"] for c in doc.get("cameras") or [] if isinstance(c, dict) and "id" in c]
    assert len(ids) >= 3 and all(is_camera_id(i) for i in ids), ids
