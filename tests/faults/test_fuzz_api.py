"""Generated inputs against the API in process (hypothesis + FastAPI's test client): random query
parameters and path segments, and uploads of random bytes, cut-off files and headers claiming any size
in PNG, JPEG, BMP, GIF and WebP. Every answer is a success or a 4xx whose ``detail`` is one line of
text; never a 5xx, never a hang. The store is healthy, so a 503 here would be a bug too.

Corpus sizes (``max_examples``) are recorded in docs/hardening.md; keep the whole file under ~20 s on
2 cores. schemathesis covers the published schema over HTTP in test_api_live.py; in process it costs
~0.1 s per call here, so these targeted strategies do the bulk of the work instead.
"""

from __future__ import annotations

import pytest
import torch
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.xreid.encoder import ReidEncoder
from models.xreid.registry import create_model
from pipeline.api import create_app
from pipeline.config.settings import ApiCfg
from pipeline.ingest.image_input import ImageLimits, ImageRejected, decode_image
from tests.support.api_helpers import populate
from tests.support.hostile_images import bmp_header, encoded, gif_header, jpeg_header, png_header


def fuzz(examples: int) -> settings:
    """Derandomized (the same corpus every run, no example database), no per-example deadline."""
    return settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
HEADERS = {"PNG": png_header, "JPEG": jpeg_header, "BMP": bmp_header, "GIF": gif_header}
VALID = {fmt: encoded(fmt, (24, 12), seed=i) for i, fmt in enumerate(FORMATS)}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    torch.manual_seed(0)
    encoder = ReidEncoder.from_model(create_model("xreid_tiny"), "xreid_tiny.fuzz", device="cpu")
    world = populate(tmp_path_factory.mktemp("fuzz") / "xreid.sqlite", encoder)
    cfg = ApiCfg(max_upload_bytes=64 * 1024, max_image_pixels=4_000_000, max_request_pixels=6_000_000)
    with TestClient(create_app(cfg, world.path, encoder=encoder)) as c:
        yield c


def _claimed_header(draw) -> bytes:
    fmt = draw(st.sampled_from(sorted(HEADERS)))
    limit = 65535 if fmt in ("JPEG", "GIF") else 2**31 - 1
    return HEADERS[fmt](draw(st.integers(0, limit)), draw(st.integers(0, limit)))


@st.composite
def image_bytes(draw) -> bytes:
    """Random bytes; a valid image cut short; one with bytes flipped; a header claiming any size."""
    kind = draw(st.sampled_from(("random", "truncated", "mutated", "claimed", "claimed+tail", "valid")))
    if kind == "random":
        return draw(st.binary(max_size=512))
    if kind == "claimed":
        return _claimed_header(draw)
    if kind == "claimed+tail":
        return _claimed_header(draw) + draw(st.binary(max_size=256))
    data = VALID[draw(st.sampled_from(FORMATS))]
    if kind == "truncated":
        return data[:draw(st.integers(0, len(data) - 1))]
    if kind == "mutated":
        buf = bytearray(data)
        for pos, val in draw(st.lists(st.tuples(st.integers(0, len(buf) - 1), st.integers(0, 255)),
                                      min_size=1, max_size=8)):
            buf[pos] = val
        return bytes(buf)
    return data


def _one_line_detail(resp) -> None:
    detail = resp.json()["detail"]
    if isinstance(detail, str):
        assert "\n" not in detail and detail.strip(), detail
    else:  # FastAPI's validation list: each entry names the parameter and the reason
        assert detail and all(e.get("msg") and e.get("loc") for e in detail), detail


@given(data=image_bytes())
@fuzz(400)
def test_the_image_policy_returns_an_image_or_a_reason_for_any_bytes(data):
    limits = ImageLimits(max_bytes=64 * 1024, max_pixels=4_000_000)
    try:
        rgb = decode_image(data, "x", limits)
    except ImageRejected as e:
        assert e.reason in {"empty", "too_large", "not_image", "wrong_type", "too_many_pixels", "too_small",
                            "corrupt"} and "\n" not in str(e)
    else:
        assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.shape[0] * rgb.shape[1] <= limits.max_pixels


@given(files=st.lists(image_bytes(), min_size=1, max_size=3), modality=st.sampled_from(["rgb", "ir"]))
@fuzz(120)
def test_any_upload_is_answered_with_a_result_or_a_4xx_reason(client, files, modality):
    resp = client.post("/search", files=[("images", (f"f{i}", b, "image/png")) for i, b in enumerate(files)],
                       data={"modality": modality, "k": "3"})
    assert resp.status_code in (200, 413, 415, 422), (resp.status_code, resp.text[:300])
    if resp.status_code == 200:
        assert resp.json()["n_images"] == len(files)
    else:
        _one_line_detail(resp)


TEXT = st.text(max_size=40)
PARAM = st.one_of(TEXT, st.integers(-2**70, 2**70).map(str), st.sampled_from(
    ["rgb", "ir", "", "0", "-1", "1e309", "nan", "2026-11-24T08:00:00Z", "9999-12-31T23:59:59", "0001-01-01",
     "2026-13-45", "1" * 400]))


@given(path=st.sampled_from(["/tracks", "/identities"]),
       params=st.dictionaries(st.sampled_from(["camera", "modality", "identity", "since", "until", "limit",
                                               "offset"]), PARAM, max_size=5))
@fuzz(250)
def test_any_query_parameters_get_a_page_or_a_4xx_reason(client, path, params):
    resp = client.get(path, params=params)
    assert resp.status_code in (200, 422), (params, resp.status_code, resp.text[:300])
    if resp.status_code == 200:
        assert "items" in resp.json()
    else:
        _one_line_detail(resp)


@given(template=st.sampled_from(["/tracks/{}", "/tracks/{}/thumbnail.jpg", "/identities/{}",
                                 "/identities/{}/thumbnail.jpg", "/identities/{}/contact-sheet.jpg",
                                 "/cameras/{}/modality"]),
       segment=st.one_of(TEXT.filter(lambda s: s not in ("", ".", "..")), st.integers(-2**70, 2**70).map(str)),
       extra=st.dictionaries(st.sampled_from(["modality", "max_tiles", "since", "until"]), PARAM, max_size=2))
@fuzz(200)
def test_any_path_segment_gets_an_answer_or_a_4xx_reason(client, template, segment, extra):
    from urllib.parse import quote

    resp = client.get(template.format(quote(segment, safe="")), params=extra)
    assert resp.status_code in (200, 404, 422), (template, segment, extra, resp.status_code, resp.text[:300])
    if resp.status_code != 200:
        _one_line_detail(resp)


def test_the_policy_does_not_go_through_a_patched_image_open():
    """ultralytics replaces ``PIL.Image.open`` process-wide with a wrapper that tries to fetch a HEIF
    plugin for unidentified files; in a process that imported it (the camera workers, the tests) a
    broken upload must still be refused with its reason, not a ModuleNotFoundError."""
    import ultralytics.utils.patches  # noqa: F401  (installs the wrapper)
    from PIL import Image

    assert Image.open.__module__ == "ultralytics.utils.patches"
    for data, reason in ((b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "corrupt"), (b"garbage" * 9, "not_image"),
                         (png_header(20000, 20000), "too_many_pixels")):
        with pytest.raises(ImageRejected) as e:
            decode_image(data, "x", ImageLimits())
        assert e.value.reason == reason
