"""PostgreSQL for the tests: throwaway databases on the machine's server, and a cluster a test owns.

The store suites run on both backends. Their PostgreSQL side gets a fresh database per test (or per
module) on the server at ``XREID_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``:
trust auth, the ``postgres`` superuser), dropped afterwards. A fault test that must stop and restart
the server gets its own cluster (``PgCluster``): ``initdb`` on a free port under a temporary folder.
``initdb`` and ``postgres`` refuse to run as root, so as root the cluster runs as the ``postgres``
system user (the Debian package creates it; CI runs as root too).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from models.errors import StoreError
from tests.support.services import free_port, wait_until

ADMIN_URL = os.environ.get("XREID_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_BIN = Path(os.environ.get("XREID_PG_BIN", "/usr/lib/postgresql/15/bin"))


def create_database(admin_url: str = ADMIN_URL, prefix: str = "xreid_test") -> str:
    """A new empty database on the server; returns its URL."""
    from pipeline.store.postgres import create_database as create

    try:
        return create(admin_url, f"{prefix}_{uuid.uuid4().hex[:12]}")
    except StoreError as e:
        raise RuntimeError(f"the store tests need PostgreSQL at {admin_url} (set XREID_TEST_PG): {e}") from None


def drop_database(url: str) -> None:
    """Drop the database at ``url``, closing whatever sessions are still on it."""
    from pipeline.store.postgres import drop_database as drop

    drop(url)


def run_sql(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    """One statement on ``url`` outside the store (what an operator or a test would type into psql)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


@dataclass
class PgCluster:
    """A PostgreSQL server this test owns: ``initdb`` on a free port; stop and start it at will."""

    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="xreid-pg-")))
    password: str = "s3cret-pg-pass"
    running: bool = False

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, user: str = "xreid", db: str = "xreid", password: bool = False) -> str:
        auth = f"{user}:{self.password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{db}"

    def _as_owner(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        return ["runuser", "-u", "postgres", "--", *argv]

    def init(self) -> PgCluster:
        """``initdb`` with password auth over TCP, a ``xreid`` role and database."""
        if not (PG_BIN / "initdb").is_file():
            raise RuntimeError(f"initdb not found in {PG_BIN} (install PostgreSQL 15 or set XREID_PG_BIN)")
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        subprocess.run(self._as_owner([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "xreid", "--pwfile",
                                       str(pwfile), "--auth-host", "scram-sha-256", "--auth-local", "trust",
                                       "--no-sync", "-E", "UTF8", "--locale", "C"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        with (self.data / "postgresql.conf").open("a") as f:
            f.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\n"
                    "fsync = on\nlog_min_messages = warning\n")
        self.start()
        env = {**os.environ, "PGPASSWORD": self.password}
        subprocess.run([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "xreid", "xreid"],
                       check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(self._as_owner([str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args]), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)

    def start(self) -> None:
        self._pg_ctl("-l", str(self.root / "server.log"), "-w", "start")
        self.running = True
        wait_until(self._accepting, timeout=30, interval=0.05, what=f"postgres on port {self.port}")

    def _accepting(self) -> bool:
        try:
            with psycopg.connect(self.url(db="postgres", password=True), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        """Fast shutdown: sessions are cut, committed work is on disk."""
        if self.running:
            self._pg_ctl("-m", "fast", "-w", "stop")
            self.running = False

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
