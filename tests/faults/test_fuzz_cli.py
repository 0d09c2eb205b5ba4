"""Generated arguments for the query commands and ``replay``'s camera specs, through ``xreid``'s own
``main()`` in process (a subprocess per example would cost ~3 s). Every run either succeeds (exit 0)
or exits 2 with one ``xreid <command>: error: ...`` line (argparse adds its usage line above its own);
never a traceback, never another exit status. Corpus sizes are recorded in docs/hardening.md.
"""

from __future__ import annotations

import contextlib
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.errors import ConfigError
from pipeline.replay.embedded import parse_camera_spec
from tests.support.api_helpers import populate
from workers.cli import main

# what a command line can carry: no NUL, no lone surrogates
ARG = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
NUMBERISH = st.one_of(ARG, st.integers(-2**70, 2**70).map(str), st.sampled_from(
    ["0", "-1", "1e309", "-1e309", "nan", "inf", "2026-11-24T08:00:00Z", "9999-12-31T23:59:59", "0001-01-01",
     "2026-13-45", "1" * 400, "rgb", "ir", "cam-a"]))
# integer flags: boundaries of SQLite's 64-bit integers and of int() itself, often
INTISH = st.one_of(st.sampled_from([str(2**63), str(-2**63 - 1), str(2**63 - 1), "9" * 25, "1" * 5000, "0", "-1"]),
                   st.integers(-2**70, 2**70).map(str), NUMBERISH)


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return str(populate(tmp_path_factory.mktemp("fuzzcli") / "xreid.sqlite").path)


def run_cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse: usage line + one error line, status 2
            rc = e.code if isinstance(e.code, int) else 2
    return rc, err.getvalue()


def assert_clean(argv: list[str], rc: int, err: str) -> None:
    assert "Traceback" not in err, (argv, err)
    assert rc in (0, 2), (argv, rc, err)
    if rc == 2:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert lines and lines[-1].startswith((f"xreid {argv[0]}: error: ", "xreid: error: ")), (argv, err)
        assert len([ln for ln in lines if not ln.startswith(("usage:", " "))]) == 1, (argv, err)


def _opt(flag: str, values: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.just([]), values.map(lambda v: [flag, v]))


@st.composite
def query_argv(draw) -> list[str]:
    command = draw(st.sampled_from(["tracks", "identity", "search"]))
    argv = [command]
    if command == "tracks":
        for flag in ("--camera", "--modality", "--from", "--to"):
            argv += draw(_opt(flag, NUMBERISH))
        for flag in ("--identity", "--limit"):
            argv += draw(_opt(flag, INTISH))
    elif command == "identity":
        argv.append(draw(INTISH))
    else:
        argv += ["--track", draw(NUMBERISH)] + draw(_opt("-k", INTISH)) + draw(_opt("--modality", NUMBERISH))
    return argv + draw(st.sampled_from([[], ["--json"]]))


@given(argv=query_argv())
@fuzz(300)
def test_query_commands_answer_or_refuse_in_one_line_for_any_flag_values(store, argv):
    argv = [*argv, "--store", store]
    assert_clean(argv, *run_cli(argv))


@given(spec=st.one_of(ARG, st.tuples(ARG, st.sampled_from(["rgb", "ir", "auto", "uv", ""]), ARG).map(":".join)))
@fuzz(400)
def test_camera_specs_parse_or_are_refused_with_a_config_error(spec):
    try:
        cam = parse_camera_spec(spec)
    except ConfigError as e:
        assert "\n" not in str(e).replace("\\n", "")
    else:
        assert f"{cam.id}:{cam.modality}:{cam.source}" == spec


@given(spec=st.tuples(ARG, st.sampled_from(["rgb", "ir", "auto", "x"]), ARG).map(":".join),
       extra=st.lists(st.sampled_from(["--max-frames", "--stride", "--start-time", "--conf"]).flatmap(
           lambda f: NUMBERISH.map(lambda v: [f, v])), max_size=2))
@fuzz(40)
def test_replay_refuses_bad_camera_specs_and_flags_in_one_line(tmp_path_factory, spec, extra):
    out = tmp_path_factory.mktemp("o")
    argv = ["replay", "--camera", spec, "--no-identities", "--no-progress", "--out", str(out),
            *[x for pair in extra for x in pair]]
    rc, err = run_cli(argv)
    assert rc == 2, (argv, rc, err)  # the generated paths name no video
    assert_clean(argv, rc, err)
