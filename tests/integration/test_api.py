"""The query API through FastAPI's test client, over a store written by the real matcher.

The whole suite runs once per backend (``world``: a SQLite file, then a PostgreSQL database).
"""

from __future__ import annotations

import hashlib
import io
import re

import cv2
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from models.errors import StoreError
from models.xreid.encoder import ReidEncoder
from models.xreid.registry import create_model
from pipeline.api import create_app
from pipeline.config.settings import ApiCfg
from pipeline.store.base import Store, is_postgres
from pipeline.store.copy import copy_store
from pipeline.store.tracks import TrackRow, upsert_track
from tests.support.api_helpers import SEARCH_CROPS, T0, TRACKS, crop_jpeg, crop_rgb, populate
from tests.support.hostile_images import bmp_header, jpeg_header, png_1bit_bomb, png_header
from tests.support.postgres import create_database, drop_database

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def encoder() -> ReidEncoder:
    torch.manual_seed(0)
    return ReidEncoder.from_model(create_model("xreid_tiny"), "xreid_tiny.apitest", device="cpu")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request, tmp_path_factory, encoder):
    if request.param == "sqlite":
        return populate(str(tmp_path_factory.mktemp("api") / "xreid.sqlite"), encoder)
    url = create_database()
    request.addfinalizer(lambda: drop_database(url))
    return populate(url, encoder)


@pytest.fixture
def world_copy(world, tmp_path):
    """A copy of the world's store on the same backend, for tests that write to it."""
    dst = create_database() if is_postgres(world.path) else str(tmp_path / "copy.sqlite")
    copy_store(world.path, dst)
    yield dst
    if is_postgres(dst):
        drop_database(dst)


@pytest.fixture(scope="module")
def client(world, encoder):
    with TestClient(create_app(ApiCfg(), world.path, encoder=encoder)) as c:
        yield c


@pytest.fixture(scope="module")
def authed(world, encoder):
    with TestClient(create_app(ApiCfg(token=TOKEN), world.path, encoder=encoder)) as c:
        yield c


def iso(seconds_after_t0: float) -> str:
    from datetime import UTC, datetime
    return datetime.fromtimestamp(T0 + seconds_after_t0, tz=UTC).isoformat().replace("+00:00", "Z")


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def detail(resp) -> str:
    body = resp.json()["detail"]
    return body if isinstance(body, str) else " ".join(str(e.get("msg")) + " " + str(e.get("loc")) for e in body)


# --------------------------------------------------------------------------- system routes


def test_health_reports_a_readable_store_at_its_schema_version(client):
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["store"]["readable"] is True and body["store"]["schema_version"] >= 2
    assert body["search_model"] == "xreid_tiny.apitest"


def test_missing_store_degrades_health_and_data_routes_answer_503_with_reason(tmp_path):
    with TestClient(create_app(ApiCfg(), tmp_path / "not-yet.sqlite")) as c:
        health = c.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        assert "does not exist" in health.json()["store"]["error"]
        resp = c.get("/tracks")
        assert resp.status_code == 503 and "does not exist" in detail(resp)
        metrics = c.get("/metrics").text
        assert "xreid_store_up 0.0" in metrics


def test_an_unreachable_or_empty_database_degrades_health_and_data_routes_answer_503(pg_url):
    from tests.support.services import free_port

    for url, reason in ((f"postgresql://xreid:pw@127.0.0.1:{free_port()}/xreid", "Connection refused"),
                        (pg_url, "no tracks table yet")):   # the writer has not created the schema yet
        with TestClient(create_app(ApiCfg(), url)) as c:
            health = c.get("/health").json()
            assert health["status"] == "degraded" and reason in health["store"]["error"], health
            assert "pw@" not in health["store"]["path"] + health["store"]["error"]
            resp = c.get("/tracks")
            assert resp.status_code == 503 and reason in detail(resp)
            assert "xreid_store_up 0.0" in c.get("/metrics").text
    Store(pg_url).close()   # the writer arrives: the same server now answers
    with TestClient(create_app(ApiCfg(), pg_url)) as c:
        assert c.get("/health").json()["status"] == "ok" and c.get("/tracks").json()["total"] == 0


def test_cameras_lists_every_camera_with_modalities_and_time_span(client):
    cams = {c["camera_id"]: c for c in client.get("/cameras").json()}
    assert set(cams) == {"cam-a", "cam-b", "cam-ir", "cam-s"}
    assert cams["cam-ir"]["modalities"] == ["ir"] and cams["cam-a"]["modalities"] == ["rgb"]
    expected_a = [t for t in TRACKS if t[1] == "cam-a"]
    assert cams["cam-a"]["n_tracks"] == len(expected_a) + 1  # + the camera-side-only track
    assert cams["cam-a"]["first_seen"] == iso(min(t[3] for t in expected_a))
    assert cams["cam-a"]["status"] is None  # this store records no camera status


def test_metrics_expose_request_counts_and_store_size(client, world):
    client.get("/tracks")
    text = client.get("/metrics").text
    assert re.search(r'xreid_api_requests_total\{method="GET",route="/tracks",status="200"\} [1-9]', text)
    assert f"xreid_store_tracks {len(TRACKS) + len(SEARCH_CROPS) + 1}.0" in text
    n_ids = len(set(world.identity_of.values()))
    assert f"xreid_store_identities {n_ids}.0" in text


def test_openapi_schema_lists_every_route(client):
    paths = client.get("/openapi.json").json()["paths"]
    for route in ("/health", "/metrics", "/cameras", "/tracks", "/tracks/{track_uid}", "/identities",
                  "/identities/{identity_id}", "/search", "/tracks/{track_uid}/thumbnail.jpg",
                  "/identities/{identity_id}/contact-sheet.jpg", "/calibration"):
        assert route in paths, route


# --------------------------------------------------------------------------- tracks


def all_pages(client, url: str, limit: int) -> list[dict]:
    items, offset = [], 0
    while offset is not None:
        page = client.get(url, params={"limit": limit, "offset": offset}).json()
        assert page["limit"] == limit and page["offset"] == offset
        assert len(page["items"]) <= limit
        items += page["items"]
        offset = page["next_offset"]
    return items


def test_tracks_paginate_over_every_track_exactly_once_newest_first(client, world):
    items = all_pages(client, "/tracks", limit=3)
    uids = [t["track_uid"] for t in items]
    assert sorted(uids) == sorted(world.track_uids + world.search_uids + [world.orphan_uid])
    starts = [t["t_start"] for t in items]
    assert starts == sorted(starts, reverse=True)
    assert client.get("/tracks", params={"limit": 3}).json()["total"] == len(uids)


def test_tracks_filter_by_camera_modality_identity_and_time(client, world):
    def uids(**params):
        return {t["track_uid"] for t in client.get("/tracks", params={"limit": 500, **params}).json()["items"]}

    by_index = dict(enumerate(world.track_uids))
    assert uids(camera="cam-ir") == {by_index[i] for i, t in enumerate(TRACKS) if t[1] == "cam-ir"}
    assert uids(modality="ir") == uids(camera="cam-ir")
    p0 = world.identity_of[world.track_uids[0]]
    assert uids(identity=p0) == {by_index[i] for i, t in enumerate(TRACKS) if t[0] == 0}
    # overlap with [1008, 1022]: P0 cam-a (1000-1010), P1 cam-a (1005-1015), P0 cam-ir (1020-1030)
    assert uids(since=iso(1008), until=iso(1022)) == {by_index[0], by_index[1], by_index[2]}
    # an explicit offset is honoured: 15:30:00+01:00 is 14:30:00Z = T0 + 1000 s
    assert by_index[0] in uids(since="2026-09-21T15:30:00+01:00", until="2026-09-21T15:30:05+01:00")
    assert uids(camera="cam-ir", modality="rgb") == set()
    assert uids(identity=999_999) == set()


@pytest.mark.parametrize("params, needle", [
    ({"limit": 0}, "limit"),
    ({"limit": 501}, "limit"),
    ({"offset": -1}, "offset"),
    ({"modality": "uv"}, "modality"),
    ({"since": "yesterday"}, "since"),
    ({"identity": "abc"}, "identity"),
    ({"since": "2026-09-21T15:00:00Z", "until": "2026-09-21T14:00:00Z"}, "until is before since"),
])
def test_bad_track_parameters_get_422_naming_the_parameter(client, params, needle):
    resp = client.get("/tracks", params=params)
    assert resp.status_code == 422
    assert needle in detail(resp)


def test_one_track_and_its_thumbnail(client, world):
    uid = world.track_uids[2]
    track = client.get(f"/tracks/{uid}").json()
    assert (track["camera_id"], track["modality"]) == ("cam-ir", "ir")
    assert track["t_start"] == iso(1020) and track["duration_s"] == 10.0
    assert track["identity_id"] == world.identity_of[uid]
    img = client.get(track["thumbnail_url"])
    assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(img.content, np.uint8), cv2.IMREAD_COLOR) is not None


def test_unknown_track_and_missing_thumbnail_are_404_with_reason(client, world):
    resp = client.get("/tracks/no-such-track")
    assert resp.status_code == 404 and "no track" in detail(resp)
    orphan = client.get(f"/tracks/{world.orphan_uid}").json()
    assert orphan["identity_id"] is None and orphan["thumbnail_url"] is None
    resp = client.get(f"/tracks/{world.orphan_uid}/thumbnail.jpg")
    assert resp.status_code == 404 and "no thumbnail" in detail(resp)


# --------------------------------------------------------------------------- identities


def test_identities_list_most_recent_first_with_thumbnails_per_modality(client, world):
    items = all_pages(client, "/identities", limit=2)
    assert {i["identity_id"] for i in items} == set(world.identity_of.values())
    last = [i["last_seen"] for i in items]
    assert last == sorted(last, reverse=True)
    p1 = next(i for i in items if i["identity_id"] == world.identity_of[world.track_uids[1]])
    assert p1["cameras"] == ["cam-a", "cam-ir"] and p1["modalities"] == ["ir", "rgb"] and p1["n_tracks"] == 2
    assert p1["thumbnails"]["rgb"] and p1["thumbnails"]["ir"]
    p2 = next(i for i in items if i["identity_id"] == world.identity_of[world.track_uids[5]])
    assert p2["thumbnails"]["ir"] is None  # only seen in RGB


def test_identities_filter_by_camera_modality_and_time(client, world):
    def ids(**params):
        return {i["identity_id"] for i in client.get("/identities", params={"limit": 500, **params}).json()["items"]}

    people = {p: world.identity_of[world.track_uids[i]] for i, (p, *_rest) in enumerate(TRACKS)}
    assert ids(modality="ir") == {people[0], people[1], people[3]}
    assert ids(camera="cam-b", until=iso(1250)) == {people[0], people[2]}
    assert ids(camera="nowhere") == set()


def test_identity_timeline_covers_every_camera_and_modality_in_time_order(client, world):
    p0 = world.identity_of[world.track_uids[0]]
    body = client.get(f"/identities/{p0}").json()
    assert body["identity_id"] == p0 and body["n_tracks"] == 3
    timeline = body["timeline"]
    assert [(t["camera_id"], t["modality"]) for t in timeline] == [("cam-a", "rgb"), ("cam-ir", "ir"), ("cam-b", "rgb")]
    assert [t["t_start"] for t in timeline] == [iso(1000), iso(1020), iso(1100)]
    # link evidence: the founding track, then joins with their score above the pair's threshold
    assert timeline[0]["link_kind"] == "new"
    assert timeline[1]["link_kind"] == "join" and timeline[1]["link_pair"] == "rgb_ir"
    assert timeline[1]["link_score"] > 0.45 and timeline[1]["matched_track_uid"] == world.track_uids[0]
    assert body["first_seen"] == iso(1000) and body["last_seen"] == iso(1120)


def test_a_merged_identity_resolves_to_the_one_it_was_merged_into(client, world):
    assert world.merged is not None, "the scenario must produce a merge"
    winner, loser = world.merged
    body = client.get(f"/identities/{loser}").json()
    assert body["identity_id"] == winner and loser in body["merged_ids"]
    assert body["n_tracks"] == 3 and body["cameras"] == ["cam-a", "cam-b", "cam-ir"]
    assert [m["loser"] for m in body["merges"]] == [loser]
    # tracks assigned to the loser report the winner, and filtering by either id finds all three
    for ident in (winner, loser):
        items = client.get("/tracks", params={"identity": ident}).json()["items"]
        assert len(items) == 3 and {t["identity_id"] for t in items} == {winner}


def test_identity_images_are_jpeg_and_absent_modalities_404(client, world):
    p0 = world.identity_of[world.track_uids[0]]
    for url in (f"/identities/{p0}/thumbnail.jpg", f"/identities/{p0}/thumbnail.jpg?modality=ir",
                f"/identities/{p0}/contact-sheet.jpg"):
        resp = client.get(url)
        assert resp.status_code == 200 and resp.headers["content-type"] == "image/jpeg", url
    sheet = cv2.imdecode(np.frombuffer(client.get(f"/identities/{p0}/contact-sheet.jpg").content, np.uint8), 1)
    assert sheet.shape[1] == 3 * 80  # three tracks, one tile each
    p2 = world.identity_of[world.track_uids[5]]
    resp = client.get(f"/identities/{p2}/thumbnail.jpg?modality=ir")
    assert resp.status_code == 404 and "no ir thumbnail" in detail(resp)


@pytest.mark.parametrize("url, status", [
    ("/identities/424242", 404), ("/identities/-1", 422), ("/identities/abc", 422),
    ("/identities/424242/thumbnail.jpg", 404), ("/identities/424242/contact-sheet.jpg", 404),
])
def test_unknown_or_malformed_identity_ids(client, url, status):
    resp = client.get(url)
    assert resp.status_code == status
    assert detail(resp)


# --------------------------------------------------------------------------- search


def test_search_by_track_finds_the_same_person_on_other_cameras(client, world):
    uid = world.track_uids[0]  # P0 on cam-a (rgb)
    body = client.post("/search", data={"track_id": uid, "k": 3}).json()
    assert body["query"] == "track" and body["model_id"] == "test@0"
    top = body["hits"][0]
    assert top["identity_id"] == world.identity_of[uid]
    assert top["track_uid"] != uid and top["camera_id"] in ("cam-b", "cam-ir")  # seen elsewhere
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True) and len(body["hits"]) == 3


def test_search_by_uploaded_images_finds_the_track_with_those_crops(client, world):
    target = 1
    files = [("images", ("crop.png", png_bytes(crop_rgb(SEARCH_CROPS[target])), "image/png"))]
    body = client.post("/search", files=files, data={"k": 2}).json()
    assert body["query"] == "images" and body["n_images"] == 1 and body["model_id"] == "xreid_tiny.apitest"
    assert body["hits"][0]["identity_id"] == world.identity_of[world.search_uids[target]]
    assert body["hits"][0]["score"] > 0.999
    # several images of one person are one clip; JPEG works as well as PNG
    jpeg = crop_jpeg(SEARCH_CROPS[target])
    files = [("images", (f"c{i}.jpg", jpeg, "image/jpeg")) for i in range(3)]
    body = client.post("/search", files=files).json()
    assert body["n_images"] == 3 and body["hits"][0]["identity_id"] == world.identity_of[world.search_uids[target]]


def _half_jpeg() -> bytes:
    data = crop_jpeg((1, 2, 3))
    return data[: len(data) // 2]  # headers intact, scan data cut


def gif_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="GIF")
    return buf.getvalue()


@pytest.mark.parametrize("files, data, status, needle", [
    (None, {}, 422, "either images or track_id"),
    ([("images", ("a.png", b"\x89PNG", "image/png"))], {"track_id": "x"}, 422, "either images or track_id"),
    ([("images", ("notes.txt", b"hello, not an image", "image/jpeg"))], {}, 415, "not an image"),
    ([("images", ("anim.gif", gif_bytes(), "image/gif"))], {}, 415, "GIF images are not accepted"),
    ([("images", ("cut.jpg", _half_jpeg(), "image/jpeg"))], {}, 422, "corrupt"),
    ([("images", ("a.png", b"", "image/png"))], {}, 422, "empty"),
    (None, {"track_id": "no-such-track"}, 404, "no track"),
    (None, {"track_id": "x", "k": 0}, 422, "k"),
    (None, {"track_id": "x", "modality": "uv"}, 422, "modality"),
])
def test_bad_searches_get_4xx_with_reason(client, files, data, status, needle):
    resp = client.post("/search", files=files, data=data)
    assert resp.status_code == status, resp.text
    assert needle in detail(resp)


@pytest.mark.parametrize("name, make, needle", [
    ("hdr20k.png", lambda: png_header(20000, 20000), "20000x20000"),   # 45 bytes
    ("hdr20k.bmp", lambda: bmp_header(20000, 20000), "20000x20000"),
    ("bomb.png", lambda: png_1bit_bomb(20000, 20000), "20000x20000"),  # a real 48 KB 1-bit image
    ("hdr.jpg", lambda: jpeg_header(20000, 20000), "20000x20000"),
    ("7k.png", lambda: png_header(7000, 7000), "7000x7000"),
])
def test_decompression_bombs_are_413_from_the_header_before_decoding(client, name, make, needle):
    resp = client.post("/search", files=[("images", (name, make(), "image/png"))])
    assert resp.status_code == 413, resp.text
    text = detail(resp)
    assert needle in text and name in text and "over the 40000000-pixel limit per image" in text, text


def test_the_images_of_one_search_share_a_pixel_budget(world, encoder):
    cfg = ApiCfg(max_image_pixels=10_000, max_request_pixels=15_000)
    with TestClient(create_app(cfg, world.path, encoder=encoder)) as c:
        ok = png_bytes(np.full((100, 80, 3), 128, np.uint8))  # 8000 pixels: one fits, two do not
        assert c.post("/search", files=[("images", ("a.png", ok, "image/png"))]).status_code == 200
        resp = c.post("/search", files=[("images", (f"{i}.png", ok, "image/png")) for i in range(2)])
        assert resp.status_code == 413 and "16000 pixels together exceed the 15000-pixel limit" in detail(resp)
        assert 'xreid_api_rejected_uploads_total{reason="too_many_pixels"} 1.0' in c.get("/metrics").text


def test_searches_past_the_decode_slots_get_503_with_retry_after(world, encoder):
    app = create_app(ApiCfg(max_concurrent_decodes=1, decode_wait_s=0), world.path, encoder=encoder)
    files = [("images", ("a.jpg", crop_jpeg(SEARCH_CROPS[0]), "image/jpeg"))]
    with TestClient(app) as c:
        gate = app.state.decode_gate
        c.portal.call(gate._sem.acquire)  # another search is decoding (held on the server's own loop)
        try:
            resp = c.post("/search", files=files)
            assert resp.status_code == 503 and resp.headers["retry-after"] == "1", resp.text
            assert "busy" in detail(resp)
            assert c.get("/health").status_code == 200  # the rest of the API keeps answering
            assert c.post("/search", data={"track_id": "no-such-track"}).status_code == 404  # no decode: no slot
        finally:
            gate._sem.release()
        assert c.post("/search", files=files).status_code == 200  # the slot is free again


def test_the_api_keeps_answering_while_an_image_search_is_inside_the_encoder(world, encoder):
    """Decoding and encoding run in a worker thread: the event loop serves other requests meanwhile."""
    import threading

    entered, release = threading.Event(), threading.Event()

    class HeldEncoder:  # the real encoder, held at the door until the test has made its other calls
        model_id = encoder.model_id

        def encode(self, clips, modalities):
            entered.set()
            assert release.wait(30)
            return encoder.encode(clips, modalities)

    files = [("images", ("a.jpg", crop_jpeg(SEARCH_CROPS[1]), "image/jpeg"))]
    with TestClient(create_app(ApiCfg(), world.path, encoder=HeldEncoder())) as c:
        result = {}
        worker = threading.Thread(target=lambda: result.update(resp=c.post("/search", files=files)))
        worker.start()
        try:
            assert entered.wait(30)
            assert c.get("/health").json()["status"] == "ok"
            assert c.get("/tracks", params={"limit": 1}).status_code == 200
        finally:
            release.set()
            worker.join(30)
        assert result["resp"].status_code == 200


def test_search_of_a_track_without_embedding_is_409(client, world):
    resp = client.post("/search", data={"track_id": world.orphan_uid})
    assert resp.status_code == 409 and "no embedding" in detail(resp)


def test_upload_limits_size_count_and_whole_body(world, encoder):
    cfg = ApiCfg(max_upload_bytes=2000, max_upload_files=2)
    with TestClient(create_app(cfg, world.path, encoder=encoder)) as c:
        big = png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
        assert len(big) > 2000
        resp = c.post("/search", files=[("images", ("big.png", big, "image/png"))])
        assert resp.status_code == 413 and "2000-byte limit" in detail(resp)
        small = crop_jpeg((9, 9, 9), hw=(16, 8))
        resp = c.post("/search", files=[("images", (f"{i}.jpg", small, "image/jpeg")) for i in range(3)])
        assert resp.status_code == 422 and "at most 2 images" in detail(resp)
        huge = b"\xff\xd8" + b"0" * (3 * 1024 * 1024)  # past files x bytes + form overhead
        resp = c.post("/search", files=[("images", ("huge.jpg", huge, "image/jpeg"))])
        assert resp.status_code == 413 and "request body exceeds" in detail(resp)
        text = c.get("/metrics").text
        assert 'xreid_api_rejected_uploads_total{reason="too_large"} 1.0' in text
        assert 'xreid_api_rejected_uploads_total{reason="too_many_files"} 1.0' in text


def test_image_search_without_an_encoder_is_refused_but_track_search_works(world):
    with TestClient(create_app(ApiCfg(), world.path)) as c:
        resp = c.post("/search", files=[("images", ("a.jpg", crop_jpeg((1, 2, 3)), "image/jpeg"))])
        assert resp.status_code == 409 and "api.checkpoint" in detail(resp)
        assert c.post("/search", data={"track_id": world.track_uids[0]}).status_code == 200
        assert c.get("/health").json()["search_model"] is None


# --------------------------------------------------------------------------- auth, CORS, dashboard


def test_requests_without_the_right_token_get_401_whether_or_not_the_route_exists(authed):
    for path in ("/tracks", "/identities/1", "/no/such/route", "/openapi.json", "/metrics"):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                        {"Authorization": TOKEN}):
            resp = authed.get(path, headers=headers)
            assert resp.status_code == 401, (path, headers)
            assert resp.json() == {"detail": "missing or invalid bearer token"}
            assert resp.headers["www-authenticate"].startswith("Bearer")
    ok = {"Authorization": f"Bearer {TOKEN}"}
    assert authed.get("/tracks", headers=ok).status_code == 200
    assert authed.get("/no/such/route", headers=ok).status_code == 404
    assert authed.post("/search", headers={"Authorization": "Bearer nope"}, data={"track_id": "x"}).status_code == 401
    assert re.search(r"xreid_api_auth_failures_total [1-9]", authed.get("/metrics", headers=ok).text)


def test_liveness_and_the_dashboard_shell_need_no_token(authed):
    assert authed.get("/health").status_code == 200
    assert authed.get("/").status_code == 200
    for asset in ("app.js", "style.css", "favicon.svg"):
        assert authed.get(f"/static/{asset}").status_code == 200
    assert authed.get("/static/secret.txt").status_code == 401  # unknown static paths are not public


def test_cors_is_off_by_default_and_on_for_configured_origins(world):
    origin = {"Origin": "https://ops.example"}
    with TestClient(create_app(ApiCfg(), world.path)) as c:
        assert "access-control-allow-origin" not in c.get("/tracks", headers=origin).headers
    with TestClient(create_app(ApiCfg(cors_origins=["https://ops.example"]), world.path)) as c:
        assert c.get("/tracks", headers=origin).headers["access-control-allow-origin"] == "https://ops.example"


def test_dashboard_loads_only_local_assets(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    refs = re.findall(r'(?:src|href)="([^"#]+)"', page.text)
    assert refs and all(r.startswith("/") and not r.startswith("//") for r in refs), refs
    for ref in refs:
        if ref.startswith("/static/"):
            assert client.get(ref).status_code == 200, ref
    js = client.get("/static/app.js").text.replace('"http://www.w3.org/2000/svg"', "")  # a namespace, not a URL
    assert "http://" not in js and "https://" not in js


# --------------------------------------------------------------------------- the API is a reader


def test_the_api_never_writes_and_reads_while_a_writer_holds_a_transaction(world_copy):
    path = world_copy
    with Store(path) as writer:  # SQLite in WAL mode, like the matcher's; PostgreSQL's snapshots
        with TestClient(create_app(ApiCfg(), path)) as c:
            before = c.get("/tracks").json()["total"]
            with writer.transaction() as conn:  # an open write transaction does not block readers
                conn.execute("INSERT INTO tracks (track_uid, camera_id, modality, t_start, t_end) "
                             "VALUES ('late', 'cam-z', 'rgb', 1, 2)")
                assert c.get("/tracks").json()["total"] == before  # not committed: not visible
            assert c.get("/tracks").json()["total"] == before + 1
            upsert_track(writer, TrackRow("later", "cam-z", "ir", 3.0, 4.0))
            assert "cam-z" in {cam["camera_id"] for cam in c.get("/cameras").json()}
    if is_postgres(path):   # the API's connections refuse writes
        with Store(path, readonly=True) as reader, pytest.raises(StoreError, match="read-only transaction"):
            upsert_track(reader, TrackRow("sneaky", "cam-z", "ir", 5.0, 6.0))
        return
    from pathlib import Path
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    with TestClient(create_app(ApiCfg(), path)) as c:
        for url in ("/tracks", "/identities", "/cameras", "/metrics", "/health"):
            assert c.get(url).status_code == 200
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest


def test_cameras_show_the_current_day_night_modality_and_a_recorded_status(world_copy):
    path = world_copy
    with Store(path) as store, store.transaction() as conn:
        conn.execute("INSERT INTO modality_events (camera_id, ts, from_modality, to_modality) "
                     "VALUES ('cam-a', ?, NULL, 'rgb'), ('cam-a', ?, 'rgb', 'ir')", (T0 + 900, T0 + 1350))
        # camera source status (the `cameras` table the matcher keeps from camera workers' reports)
        conn.execute("INSERT INTO cameras (camera_id, status, reason, source, updated_at) VALUES "
                     "('cam-b', 'reconnecting', 'read timeout after 5 s', 'rtsp://***@10.0.0.8/s1', ?), "
                     "('cam-new', 'failed', 'HTTP 401 from rtsp://***@10.0.0.9/s1', NULL, ?)", (T0 + 2000, T0 + 2001))
    with TestClient(create_app(ApiCfg(), path)) as c:
        cams = {cam["camera_id"]: cam for cam in c.get("/cameras").json()}
    assert cams["cam-a"]["current_modality"] == "ir" and cams["cam-b"]["current_modality"] is None
    assert (cams["cam-b"]["status"], cams["cam-b"]["reason"]) == ("reconnecting", "read timeout after 5 s")
    assert cams["cam-b"]["status_at"] == iso(2000) and cams["cam-b"]["source"] == "rtsp://***@10.0.0.8/s1"
    assert cams["cam-new"]["status"] == "failed" and cams["cam-new"]["n_tracks"] == 0


def test_merge_chains_resolve_to_the_last_survivor(world, world_copy):
    path = world_copy
    winner, loser = world.merged
    p2 = world.identity_of[world.track_uids[5]]
    with Store(path) as store, store.transaction() as conn:  # a later merge folds the winner into P2
        conn.execute("INSERT INTO merges (winner, loser, evidence_track_no, score, ts) VALUES (?, ?, 1, 0.9, ?)",
                     (p2, winner, T0 + 5000))
        conn.execute("UPDATE identities SET merged_into = ? WHERE id = ?", (p2, winner))
    with TestClient(create_app(ApiCfg(), path)) as c:
        for ident in (loser, winner, p2):
            body = c.get(f"/identities/{ident}").json()
            assert body["identity_id"] == p2 and body["n_tracks"] == 4 and body["merged_ids"] == sorted([winner, loser])
            assert len(c.get("/tracks", params={"identity": ident}).json()["items"]) == 4
        assert [m["loser"] for m in c.get(f"/identities/{p2}").json()["merges"]] == [loser, winner]
        ids = {i["identity_id"] for i in c.get("/identities", params={"limit": 500}).json()["items"]}
        assert winner not in ids and loser not in ids and p2 in ids
