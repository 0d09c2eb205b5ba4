"""Shared fixtures: a real redis-server per test that needs one, and the real vtest.avi footage."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.ingest.footage import default_cache_dir, ensure_vtest
from tests.support.paths import PETS_GT
from tests.support.services import RedisServer, free_port


@pytest.fixture
def redis_server(tmp_path):
    """A fresh, empty redis-server on a free loopback port, stopped after the test."""
    server = RedisServer(port=free_port(), workdir=tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def vtest_path() -> Path:
    """The real PETS09-S2L1 footage (fetched once per machine into the xreid cache)."""
    return ensure_vtest(default_cache_dir(dict(os.environ)))


@pytest.fixture(scope="session")
def pets_gt_path() -> Path:
    if not PETS_GT.is_file():
        raise RuntimeError(f"ground truth missing at {PETS_GT}")
    return PETS_GT


@pytest.fixture
def mosquitto(tmp_path):
    """A fresh mosquitto on a free loopback port (anonymous, persistent), stopped after the test."""
    from tests.support.events import MosquittoBroker

    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    broker = MosquittoBroker(port=free_port(), workdir=workdir)
    broker.start()
    yield broker
    broker.stop()



@pytest.fixture
def pg_url():
    """A fresh, empty PostgreSQL database on the machine's server (``tests/support/postgres.py``), dropped after."""
    from tests.support.postgres import create_database, drop_database

    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """Where a store test keeps its store, once per backend: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "xreid.sqlite")
    return request.getfixturevalue("pg_url")
