"""The API's privacy routes: the admin/read token split, erasure over HTTP, and the audit trail.

On both backends: a SQLite store (the API executes an erasure itself when no matcher runs; the audit log
is ``<stem>.audit.sqlite``) and a PostgreSQL store (the API only queues, the matcher's privacy duty
executes; the audit log is the database's ``xreid_audit`` schema).
"""

from __future__ import annotations

import hashlib
import json

import psycopg
import pytest
from fastapi.testclient import TestClient

from models.errors import ConfigError
from pipeline.api import create_app
from pipeline.config.settings import ApiCfg
from pipeline.matcher.forget import Eraser
from pipeline.matcher.privacy import PrivacyDuty
from pipeline.store.audit import AUDIT_SCHEMA, audit_path
from pipeline.store.base import Store, is_postgres
from pipeline.store.crops import CropKeeper
from tests.support.privacy_helpers import cells_holding, files_holding, make_site, references

READ, ADMIN = "read-token-1", "admin-token-2"


def tid(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def hdr(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def site(tmp_path, store_url):
    return make_site(tmp_path / "out", store_url if is_postgres(store_url) else None)


def matcher_runs_its_duty(site) -> int:
    """What the running matcher does between two batches: execute the queued requests; how many it ran."""
    with Store(site.store) as store:
        duty = PrivacyDuty(Eraser(store, CropKeeper(site.crops), None, "matcher-test"))
        duty.tick()
        return duty.executed


def erase(client, site, path: str) -> dict:
    """DELETE ``path`` as the admin; the erasure's row once executed. SQLite: the API executes it (no
    matcher runs); PostgreSQL: the API only queues (202) and the matcher executes it."""
    r = client.delete(path, headers=hdr(ADMIN))
    if not site.postgres:
        assert r.status_code == 200, r.text
        return r.json()
    assert r.status_code == 202 and r.json()["state"] == "pending", r.text
    assert matcher_runs_its_duty(site) == 1
    return next(e for e in client.get("/erasures", headers=hdr(ADMIN)).json() if e["erasure_id"] == r.json()["erasure_id"])


@pytest.fixture
def client(site):
    with TestClient(create_app(ApiCfg(token=READ, admin_token=ADMIN), site.store)) as c:
        yield c


def test_reading_needs_a_token_and_erasing_needs_the_admin_token(client, site):
    ident = site.world.identity_of[site.world.track_uids[5]]
    assert client.delete(f"/identities/{ident}").status_code == 401
    refused = client.delete(f"/identities/{ident}", headers=hdr(READ))
    assert refused.status_code == 403 and refused.json()["detail"] == "this route needs the admin token"
    assert client.get("/audit", headers=hdr(READ)).status_code == 403
    assert client.get(f"/identities/{ident}", headers=hdr(ADMIN)).status_code == 200, "the admin token reads too"
    assert client.get(f"/identities/{ident}", headers=hdr(READ)).status_code == 200, "403 erased nothing"


def test_delete_identity_erases_the_person_and_get_answers_404(client, site):
    winner, _ = site.world.merged
    uids = site.uids_of(winner)
    nos = list(site.track_nos(uids).values())
    body = erase(client, site, f"/identities/{winner}")
    assert body["state"] == "done" and body["n_tracks"] == 3 and body["n_identities"] == 2
    assert body["requested_by"] == f"api:{tid(ADMIN)}@testclient" and body["target"] == str(winner)
    assert client.get(f"/identities/{winner}", headers=hdr(READ)).status_code == 404
    assert all(client.get(f"/tracks/{u}", headers=hdr(READ)).status_code == 404 for u in uids)
    assert references(site.store, uids, nos, list(site.world.merged), skip_tables=("erasures",)) == []
    assert files_holding(site.folder, [site.crop_of[u] for u in uids]) == []
    assert cells_holding(site.store, [site.crop_of[u] for u in uids]) == []
    again = client.delete(f"/identities/{winner}", headers=hdr(ADMIN))
    assert again.status_code == 200 and again.json()["state"] == "already"
    unknown = client.delete("/identities/4242", headers=hdr(ADMIN))
    assert unknown.status_code == 404 and unknown.json()["detail"].startswith("no identity 4242")
    # search by another track of the same model no longer returns the erased person
    other = site.world.track_uids[0]
    hits = client.post("/search", data={"track_id": other, "k": 10}, headers=hdr(READ)).json()["hits"]
    assert hits and all(h["track_uid"] not in uids for h in hits)


def test_delete_track_keeps_the_identity_and_tombstones_list_it_without_its_uid(client, site):
    uid = site.world.track_uids[0]
    ident = site.world.identity_of[uid]
    done = erase(client, site, f"/tracks/{uid}")
    assert done["state"] == "done" and done["n_tracks"] == 1 and done["n_identities"] == 0
    assert client.get(f"/tracks/{uid}", headers=hdr(READ)).status_code == 404
    assert client.get(f"/identities/{ident}", headers=hdr(READ)).json()["n_tracks"] == 2
    tombs = client.get("/erasures", headers=hdr(ADMIN)).json()
    assert [t["kind"] for t in tombs] == ["track"] and uid not in str(tombs) and tombs[0]["target"].startswith("hash:")
    assert client.delete("/tracks/nope", headers=hdr(ADMIN)).status_code == 404


def test_every_query_is_audited_with_token_id_route_params_count_and_client(client, site):
    client.get("/tracks", params={"camera": "cam-a", "limit": 2}, headers=hdr(READ))
    client.get(f"/identities/{site.world.identity_of[site.world.track_uids[0]]}", headers=hdr(READ))
    client.get("/health")                                     # public: not audited
    client.get("/tracks/nope", headers=hdr(READ))
    page = client.get("/audit", headers=hdr(ADMIN)).json()
    entries = list(reversed(page["items"]))
    assert [(e["method"], e["route"], e["status"], e["result_count"]) for e in entries] == [
        ("GET", "/tracks", 200, 2), ("GET", "/identities/{identity_id}", 200, 1), ("GET", "/tracks/{track_uid}", 404, 0)]
    assert entries[0]["params"] == {"camera": "cam-a", "limit": "2"}
    assert entries[2]["params"] == {"track_uid": "nope"}
    assert {e["token_id"] for e in entries} == {tid(READ)} and {e["client"] for e in entries} == {"testclient"}
    assert READ not in str(page) and ADMIN not in str(page)
    mine = client.get("/audit", params={"token_id": tid(ADMIN)}, headers=hdr(ADMIN)).json()
    assert [e["route"] for e in mine["items"]] == ["/audit"], "reading the log is itself audited"
    assert site.postgres or audit_path(site.store).is_file()


def test_an_answer_that_cannot_be_audited_is_not_given(site):
    if site.postgres:   # the log cannot be opened: its schema was made by a newer build
        with psycopg.connect(site.store, autocommit=True) as db:
            db.execute(f"CREATE SCHEMA {AUDIT_SCHEMA}")
            db.execute(f"CREATE TABLE {AUDIT_SCHEMA}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute(f"INSERT INTO {AUDIT_SCHEMA}.meta VALUES ('schema_version', '99')")
    else:
        audit_path(site.store).mkdir()                        # the log cannot be opened: a directory is in the way
    with TestClient(create_app(ApiCfg(), site.store)) as c:
        r = c.get("/tracks")
        assert r.status_code == 503 and "audit log unavailable" in r.json()["detail"]
        assert c.get("/health").status_code == 200
        assert "xreid_api_audit_failures_total 1.0" in c.get("/metrics").text


def test_without_an_admin_token_admin_routes_are_off_and_tokens_must_differ(site):
    with TestClient(create_app(ApiCfg(), site.store)) as c:   # loopback, no auth: reads are open ...
        r = c.delete(f"/identities/{site.world.identity_of[site.world.track_uids[0]]}")
        assert r.status_code == 403 and "XREID_API__ADMIN_TOKEN" in r.json()["detail"]   # ... erasing is not
        assert c.get("/tracks").status_code == 200
        assert c.get("/audit").status_code == 403
    with pytest.raises(ConfigError, match="admin_token must differ"):
        ApiCfg(token="same", admin_token="same")
    with TestClient(create_app(ApiCfg(admin_token=ADMIN), site.store)) as c:   # admin only, reads open
        assert c.delete("/tracks/x", headers=hdr("wrong")).status_code == 403
        assert c.delete("/tracks/x", headers=hdr(ADMIN)).status_code == 404


def test_xreid_audit_lists_the_queries_and_the_tombstones(client, site, capsys):
    from workers.cli import main

    client.get("/identities", params={"camera": "cam-b"}, headers=hdr(READ))
    client.delete(f"/tracks/{site.world.track_uids[1]}", headers=hdr(ADMIN))
    if site.postgres:
        assert matcher_runs_its_duty(site) == 1   # queued by the API, executed by the matcher
    assert main(["audit", "--store", str(site.store), "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [(e["method"], e["route"], e["token_id"]) for e in entries] == [
        ("DELETE", "/tracks/{track_uid}", tid(ADMIN)), ("GET", "/identities", tid(READ))]
    # the count is what the answer held: the erased tracks, none yet when it was only queued (PostgreSQL)
    assert entries[1]["params"] == {"camera": "cam-b"} and entries[0]["result_count"] == (0 if site.postgres else 1)
    assert main(["audit", "--store", str(site.store), "--route", "/identities"]) == 0
    text = capsys.readouterr().out
    assert "GET /identities" in text and "1 of 1 entry" in text and "DELETE" not in text
    assert main(["audit", "--store", str(site.store), "--erasures"]) == 0
    text = capsys.readouterr().out
    assert f"api:{tid(ADMIN)}@testclient" in text and "1 erasure(s)" in text
    assert site.world.track_uids[1] not in text
