from __future__ import annotations

import pytest

from models.errors import ConfigError
from pipeline.config.loader import load_config
from pipeline.config.settings import XreidCfg


def _write(tmp_path, text: str):
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


def test_unknown_key_names_key_and_file(tmp_path):
    p = _write(tmp_path, "clips:\n  seq_len: 8\n  seqlen: 4\n")
    with pytest.raises(ConfigError) as e:
        load_config(XreidCfg, p)
    assert "clips.seqlen" in str(e.value) and str(p) in str(e.value)


def test_wrong_type_is_named(tmp_path):
    p = _write(tmp_path, "detector:\n  conf: high\n")
    with pytest.raises(ConfigError, match="detector.conf"):
        load_config(XreidCfg, p)


def test_bad_value_is_rejected_by_validation(tmp_path):
    p = _write(tmp_path, "detector:\n  conf: 1.5\n")
    with pytest.raises(ConfigError, match=r"detector.conf must be in \[0, 1\]"):
        load_config(XreidCfg, p)


def test_bad_literal_lists_choices(tmp_path):
    p = _write(tmp_path, "tracker:\n  kind: sort\n")
    with pytest.raises(ConfigError, match="bytetrack"):
        load_config(XreidCfg, p)


def test_environment_overrides_file(tmp_path):
    p = _write(tmp_path, "clips:\n  seq_len: 8\n")
    cfg = load_config(XreidCfg, p, env={"XREID_CLIPS__SEQ_LEN": "6", "XREID_DETECTOR__KIND": "yolo", "HOME": "/x"})
    assert cfg.clips.seq_len == 6 and cfg.detector.kind == "yolo"


def test_environment_override_with_unknown_key_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="clips.nope"):
        load_config(XreidCfg, None, env={"XREID_CLIPS__NOPE": "1"})


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(XreidCfg, tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(XreidCfg, _write(tmp_path, "a: [1, 2\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(XreidCfg, _write(tmp_path, "- 1\n- 2\n"))


def test_shipped_default_config_loads():
    from pathlib import Path
    cfg = load_config(XreidCfg, Path(__file__).resolve().parents[2] / "configs" / "default.yaml")
    assert cfg.clips.seq_len >= 1


def test_cross_field_validation(tmp_path):
    p = _write(tmp_path, "clips:\n  seq_len: 16\n  max_candidates: 8\n")
    with pytest.raises(ConfigError, match="max_candidates"):
        load_config(XreidCfg, p)


def test_process_settings_sharing_the_prefix_are_not_config_keys():
    env = {"XREID_REDIS_URL": "redis://x", "XREID_LOG_LEVEL": "debug", "XREID_CACHE": "/tmp", "XREID_CLIPS__SEQ_LEN": "4"}
    assert load_config(XreidCfg, None, env=env).clips.seq_len == 4
