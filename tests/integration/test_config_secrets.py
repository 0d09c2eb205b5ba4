"""Issue 19 items 6, 7 and 9: secrets stay literal, never print, never reach summary.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from models.errors import ConfigError
from pipeline.config.loader import load_config, secret_paths, to_dict
from pipeline.config.settings import XreidCfg
from pipeline.ingest.looks import rerender_video
from workers.site import SiteCfg

ROOT = Path(__file__).resolve().parents[2]
XREID = [sys.executable, "-m", "workers.cli"]
TOKEN = "839201746512"
PASSWORD = "Hunter2-pw-7781"


def _xreid(*args: str, env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("XREID_")}
    return subprocess.run([*XREID, *args], cwd=cwd, env={**clean, "PYTHONPATH": str(ROOT), **env},
                          capture_output=True, text=True, timeout=timeout)


def _one_line_error(proc: subprocess.CompletedProcess, command: str) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"xreid {command}: error:"), proc.stderr
    return lines[0]


def test_the_secret_fields_are_marked_in_one_place():
    assert secret_paths(XreidCfg) == {"api.token", "api.admin_token", "bus.url", "store.url", "events.mqtt_url",
                                      "events.webhook_urls", "events.webhook_secret"}
    assert secret_paths(SiteCfg) == {"redis_url"}


@pytest.mark.parametrize("raw", ["839201746512", "true", "[a, b]", "{x: 1}", " spaced ", "0x1F", "1e400"])
def test_secret_environment_values_are_literal_strings(raw):
    cfg = load_config(XreidCfg, env={"XREID_API__TOKEN": raw, "XREID_BUS__URL": f"redis://:{raw}@h:1/0"})
    assert cfg.api.token.get_secret_value() == raw and cfg.bus.url.get_secret_value() == f"redis://:{raw}@h:1/0"


def test_a_store_url_from_the_environment_is_literal_masked_and_never_null():
    url = "postgresql://xreid:p4ss:w0rd@db:5432/xreid"
    cfg = load_config(XreidCfg, env={"XREID_STORE__URL": url})
    assert cfg.store.location == url and "p4ss" not in repr(cfg.store) and "p4ss" not in str(to_dict(cfg))
    for raw in ("null", "~", " "):
        with pytest.raises(ConfigError, match="store.url is set but empty"):
            load_config(XreidCfg, env={"XREID_STORE__URL": raw})
    with pytest.raises(ConfigError, match="store.url must be a file path or a postgresql:// URL, got a mysql://"):
        load_config(XreidCfg, env={"XREID_STORE__URL": "mysql://u:secretpw@db/x"})


def test_a_null_bus_url_from_the_environment_is_not_the_default():
    with pytest.raises(ConfigError, match="bus.url must be"):  # before: null silently meant the in-process bus
        load_config(XreidCfg, env={"XREID_BUS__URL": "null"})


@pytest.mark.parametrize("raw", ["", " ", "\t\n", "null", "~", "NULL", "none"])
def test_an_empty_or_null_token_refuses_to_load(raw):
    with pytest.raises(ConfigError, match="api.token is set but empty"):
        load_config(XreidCfg, env={"XREID_API__TOKEN": raw})


@pytest.mark.parametrize("raw", [" ", "null", "~"])
def test_serve_with_an_empty_or_null_token_exits_2_in_one_line(tmp_path, raw):
    # before the fix null and ~ meant "no token": the server started on loopback with auth off
    proc = _xreid("serve", "--no-image-search", "--port", "1", env={"XREID_API__TOKEN": raw}, cwd=tmp_path, timeout=60)
    assert "api.token is set but empty" in _one_line_error(proc, "serve")


def test_a_non_string_token_in_a_file_is_refused_without_echoing_it(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"api:\n  token: {TOKEN}\n")
    proc = _xreid("serve", "--config", str(cfg), "--host", "0.0.0.0", "--no-image-search", env={}, cwd=tmp_path,
                  timeout=60)
    line = _one_line_error(proc, "serve")
    assert "api.token must be a string" in line and "not shown: secret" in line
    assert TOKEN not in proc.stderr + proc.stdout


def test_a_numeric_token_from_the_environment_is_the_token(tmp_path):
    # before the fix: YAML made it an int, and the error printed it ("must be a string, got 839201746512")
    cfg = load_config(XreidCfg, env={"XREID_API__TOKEN": TOKEN}, overrides={"api": {"host": "0.0.0.0"}})
    assert cfg.api.token.get_secret_value() == TOKEN


def test_up_dry_run_with_a_bad_scheme_does_not_print_the_password(tmp_path):
    proc = _xreid("up", "--dry-run", "--config", str(ROOT / "configs" / "site.yaml"),
                  env={"XREID_REDIS_URL": f"redus://:{PASSWORD}@redis:6379/0"}, cwd=ROOT, timeout=60)
    line = _one_line_error(proc, "up")
    assert "redus://***@redis:6379/0" in line
    assert PASSWORD not in proc.stderr + proc.stdout


def test_config_errors_mask_credentials_in_any_value(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"detector:\n  kind: 'rtsp://admin:{PASSWORD}@cam/stream'\n")
    with pytest.raises(ConfigError) as e:
        load_config(XreidCfg, cfg)
    assert "detector.kind" in str(e.value) and PASSWORD not in str(e.value)


def test_to_dict_masks_secrets_and_credentials():
    cfg = load_config(XreidCfg, env={"XREID_API__TOKEN": TOKEN, "XREID_BUS__URL": f"redis://:{PASSWORD}@redis:6379/0"},
                      overrides={"cameras": [{"id": "c1", "source": f"rtsp://admin:{PASSWORD}@cam/s"}]})
    text = json.dumps(to_dict(cfg))
    assert TOKEN not in text and PASSWORD not in text
    d = to_dict(cfg)
    assert d["api"]["token"] == "***" and d["bus"]["url"] == "redis://***@redis:6379/0"
    assert d["cameras"][0]["source"] == "rtsp://***@cam/s" and d["api"]["port"] == 8000
    shown = f"{cfg.api} {cfg.bus!r}"  # what a stray log line of a section would print
    assert TOKEN not in shown and PASSWORD not in shown and "**********" in shown


@pytest.fixture(scope="module")
def short_clip(vtest_path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("footage") / "six.avi"
    return rerender_video(vtest_path, path, lambda f: f, is_color=True, max_frames=6)


def test_replay_output_folder_holds_no_secret(short_clip, tmp_path):
    out = tmp_path / "out"
    env = {"XREID_API__TOKEN": TOKEN, "XREID_BUS__URL": f"redis://:{PASSWORD}@127.0.0.1:1/0",
           "XREID_DETECTOR__HOG_UPSCALE": "1.0"}
    proc = _xreid("replay", "--camera", f"cam1:rgb:{short_clip}", "--max-frames", "6", "--no-identities",
                  "--no-progress", "--out", str(out), env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["api"]["token"] == "***"
    assert summary["config"]["bus"]["url"] == "redis://***@127.0.0.1:1/0"
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files
    for p in files:
        data = p.read_bytes()
        assert TOKEN.encode() not in data and PASSWORD.encode() not in data, p
    assert TOKEN not in proc.stdout + proc.stderr and PASSWORD not in proc.stdout + proc.stderr


def test_the_admin_token_is_a_literal_secret_like_the_read_token():
    cfg = load_config(XreidCfg, env={"XREID_API__TOKEN": "reader", "XREID_API__ADMIN_TOKEN": "12345678901"})
    assert cfg.api.admin_token.get_secret_value() == "12345678901"
    assert "12345678901" not in repr(cfg) and "12345678901" not in str(to_dict(cfg))
    with pytest.raises(ConfigError) as e:
        load_config(XreidCfg, env={"XREID_API__TOKEN": "same-secret", "XREID_API__ADMIN_TOKEN": "same-secret"})
    assert "admin_token must differ" in str(e.value) and "same-secret" not in str(e.value)
