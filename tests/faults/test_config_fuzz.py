"""Generated config values (hypothesis): any value for any known key, from a YAML file or XREID_*.

The contract (docs/design.md, issue 19): a config either loads or fails with one ``ConfigError`` line
that names the key (or its section, for checks that span fields), and the CLI turns that into
exit 2 with one line on stderr; never a traceback, never a secret echoed. Corpus sizes are the
``max_examples`` below; docs/hardening.md records them with the results.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import typing
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.errors import ConfigError
from pipeline.config.loader import load_config
from pipeline.config.settings import XreidCfg
from workers.cli import main

FILE_EXAMPLES = 150
ENV_EXAMPLES = 150
CLI_EXAMPLES = 25
SECRET_TEXT = "Zq9-secret-4471"


def _leaf_keys(cls: type, where: str = "") -> list[str]:
    """Dotted paths of every scalar-or-list key under ``cls`` (nested sections included)."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{where}.{f.name}" if where else f.name
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += _leaf_keys(tp, key)
        else:
            out.append(key)
    return out


KEYS = _leaf_keys(XreidCfg)

scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=16)
           | st.just(f"rtsp://admin:{SECRET_TEXT}@cam/1"))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)
# raw YAML text: what a person (or a broken template) may put after the colon
raw_yaml = st.one_of(
    json_values.map(lambda v: json.dumps(v)),
    st.sampled_from(["null", "~", "", " ", "yes", "0x1F", "1e400", "-.inf", ".nan", "7" * 5000, "1" + "0" * 400,
                     "[" * 3000 + "]" * 3000, "{a: " * 200 + "1" + "}" * 200, "!!python/object:os.system x",
                     "&a [*a]", "'unterminated", "- a\n- b", "{x: 1", "\t", "2024-05-01", "@x", "`cmd`"]),
    st.text(max_size=30),
)


def _nested(key: str, raw: str) -> str:
    """YAML text setting dotted ``key`` to the raw value text, in flow style."""
    parts = key.split(".")
    return "".join(f"{{{p}: " for p in parts) + raw + "}" * len(parts) + "\n"


def _check(err: ConfigError, key: str) -> None:
    msg = str(err)
    assert "\n" not in msg and len(msg) < 1000, msg
    section = key.rsplit(".", 1)[0]  # checks that span fields name the section, e.g. api.host -> "api.token ..."
    assert key in msg or section in msg or "YAML" in msg or "XREID_" in msg, (key, msg)
    assert SECRET_TEXT not in msg, msg


@settings(max_examples=FILE_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None, derandomize=True)
@given(key=st.sampled_from(KEYS), raw=raw_yaml)
def test_any_value_for_any_key_in_a_yaml_file_loads_or_is_one_line_naming_the_key(tmp_path, key, raw):
    path = tmp_path / "fuzz.yaml"
    path.write_text(_nested(key, raw), encoding="utf-8")
    try:
        load_config(XreidCfg, path)
    except ConfigError as e:
        _check(e, key)


@settings(max_examples=ENV_EXAMPLES, deadline=None, database=None, derandomize=True)
@given(key=st.sampled_from(KEYS), raw=raw_yaml)
def test_any_value_for_any_key_from_the_environment_loads_or_is_one_line_naming_the_key(key, raw):
    name = "XREID_" + key.upper().replace(".", "__")
    try:
        load_config(XreidCfg, env={name: raw.replace("\x00", "")})
    except ConfigError as e:
        _check(e, key)


@settings(max_examples=CLI_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None, derandomize=True)
@given(key=st.sampled_from(KEYS), raw=raw_yaml, via_env=st.booleans())
def test_the_cli_exits_2_with_one_line_on_any_config_error(tmp_path, key, raw, via_env):
    path = tmp_path / "fuzz.yaml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("XREID_")}
    if via_env:
        path.write_text("{}\n")
        env["XREID_" + key.upper().replace(".", "__")] = raw.replace("\x00", "")
    else:
        path.write_text(_nested(key, raw), encoding="utf-8")
    err = io.StringIO()
    # `xreid tracks` loads the config, then needs a store: with a missing store it exits 2 either way,
    # so what is checked is that every outcome is one line on stderr and never a traceback. The store is
    # named explicitly so that a store left in the working directory (a demo's xreid-out/) cannot answer.
    with mock.patch.dict(os.environ, env, clear=True), contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(io.StringIO()):
        code = main(["tracks", "--config", str(path), "--store", str(tmp_path / "absent.sqlite")])
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("xreid tracks: error:"), err.getvalue()
    assert SECRET_TEXT not in err.getvalue()


@pytest.mark.parametrize(("key", "raw", "expected"), [
    ("detector.conf", "1" + "0" * 400, "detector.conf is out of range"),        # was OverflowError
    ("bus.block_ms", "1" + "0" * 400, "bus.block_ms is out of range"),          # was OverflowError
    ("rtsp.open_timeout_s", ".inf", "rtsp.open_timeout_s must be a finite number"),  # was accepted
    ("matcher.max_batch", "7" * 5000, "XREID_MATCHER__MAX_BATCH: unreadable value"),   # was ValueError
    ("detector.heat.max_area_fraction", "0", "detector.heat.max_area_fraction must be in (0, 1]"),  # was 'heat.' only
])
def test_defects_the_generated_values_found_are_one_line_errors(key, raw, expected):
    with pytest.raises(ConfigError) as e:
        load_config(XreidCfg, env={"XREID_" + key.upper().replace(".", "__"): raw})
    assert expected in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("key", ["retention.crops", "retention.cameras.cam1.tracks", "cameras"])
def test_a_check_that_quotes_the_value_it_refused_masks_credentials(tmp_path, key):
    # found by the YAML fuzz above: the duration check quoted a camera URL, password and all
    url = f"rtsp://admin:{SECRET_TEXT}@cam/1"
    path = tmp_path / "leak.yaml"
    raw = json.dumps([{"id": url}]) if key == "cameras" else json.dumps(url)
    path.write_text(_nested(key, raw))
    with pytest.raises(ConfigError) as e:
        load_config(XreidCfg, path)
    assert SECRET_TEXT not in str(e.value) and "rtsp://***@cam/1" in str(e.value), str(e.value)


@pytest.mark.parametrize("key", ["retention.crops", "events.topic_prefix", "events.site"])
def test_a_check_that_shortens_the_value_it_quotes_masks_credentials_first(tmp_path, key):
    # a check that cuts a long value at 40 or 80 characters cut the URL before its '@', so the masking
    # after it saw no credentials to mask
    url = f"rtsp://admin:{SECRET_TEXT}{'x' * 80}@cam/1"
    path = tmp_path / "long.yaml"
    path.write_text(_nested(key, json.dumps(url)))
    with pytest.raises(ConfigError) as e:
        load_config(XreidCfg, path)
    assert SECRET_TEXT not in str(e.value) and "rtsp://***@" in str(e.value), str(e.value)


def test_a_deeply_nested_yaml_file_is_a_config_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("detector: " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ConfigError, match="unreadable YAML value"):
        load_config(XreidCfg, path)


def test_every_key_is_reachable():
    assert len(KEYS) > 100 and "api.token" in KEYS and "detector.motion.scale" in KEYS
