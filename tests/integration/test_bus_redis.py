"""RedisBus beyond the shared contract: credentials, TLS, connection loss, restarts, foreign entries."""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading

import pytest
import redis

from models.errors import BusError
from pipeline.bus import create_bus, dead_stream
from pipeline.bus.redis import RedisBus
from pipeline.config.settings import BusCfg
from tests.support.services import free_port, wait_until

S = "test:clips"
SECRET = "s3cr3t-Pa55"


def _fast(**kw) -> BusCfg:
    base = dict(backoff_initial_s=0.02, backoff_max_s=0.2, socket_timeout_s=2.0, connect_timeout_s=0.5, block_ms=200)
    return BusCfg(**{**base, **kw})


def _acl_user(server) -> str:
    admin = redis.Redis.from_url(server.url)
    admin.execute_command("ACL", "SETUSER", "xreid", "on", f">{SECRET}", "~test:*", "+@all")
    admin.close()
    return f"redis://xreid:{SECRET}@127.0.0.1:{server.port}/0"


def test_acl_user_and_password_in_url_work_and_never_reach_logs(redis_server, caplog):
    caplog.set_level(logging.DEBUG)
    bus = create_bus(_acl_user(redis_server), _fast())
    bus.ensure_group(S, "g")
    bus.publish(S, b"hello")
    assert [m.data for m in bus.read(S, "g", "c", count=1)] == [b"hello"]
    assert SECRET not in bus.safe_url and "xreid" not in bus.safe_url
    bus.close()

    wrong = f"redis://xreid:{SECRET}-wrong@127.0.0.1:{redis_server.port}/0"
    with pytest.raises(BusError) as err:
        create_bus(wrong, _fast()).publish(S, b"x")
    assert "credentials" in str(err.value) and SECRET not in str(err.value)

    dead_port = free_port()
    bus = create_bus(f"redis://xreid:{SECRET}@127.0.0.1:{dead_port}/0", _fast(retry_timeout_s=0.3))
    with pytest.raises(BusError) as err:
        bus.publish(S, b"x")
    assert SECRET not in str(err.value)
    assert SECRET not in caplog.text
    assert "unavailable" in caplog.text, "the outage itself is logged"


def test_rediss_url_connects_over_tls(tmp_path):
    openssl = shutil.which("openssl")
    assert openssl, "openssl is installed by scripts/system-deps.sh"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                             "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
                             "--tls-auth-clients", "no", "--save", "", "--requirepass", SECRET],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"rediss://:{SECRET}@127.0.0.1:{port}/0?ssl_ca_certs={cert}"

        def up() -> bool:
            try:
                return redis.Redis.from_url(url, socket_timeout=0.5).ping()
            except redis.RedisError:
                return False

        wait_until(up, what="TLS redis")
        bus = create_bus(url, _fast())
        bus.ensure_group(S, "g")
        bus.publish(S, b"over tls")
        assert [m.data for m in bus.read(S, "g", "c", count=1)] == [b"over tls"]
        assert SECRET not in bus.safe_url
        bus.close()
        plain = create_bus(f"redis://:{SECRET}@127.0.0.1:{port}/0", _fast(retry_timeout_s=0.5))
        with pytest.raises(BusError):
            plain.publish(S, b"plaintext to a TLS port fails")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_publish_rides_out_an_outage_with_backoff_not_a_busy_loop(redis_server):
    bus = create_bus(redis_server.url, _fast())
    bus.ensure_group(S, "g")
    bus.publish(S, b"before")
    redis_server.stop()
    done: list[str] = []
    producer = threading.Thread(target=lambda: done.append(bus.publish(S, b"during")))
    producer.start()
    wait_until(lambda: bus.stats().get("connection_failures", 0) >= 3, what="producer retrying")
    assert not done, "publish waits for the server instead of failing"
    redis_server.start()  # no persistence: the server comes back empty
    producer.join(timeout=10)
    assert done, "publish completed by itself after the restart"
    stats = bus.stats()
    assert stats["reconnects"] == 1 and stats["server_restarts"] == 1
    # backoff, not a busy loop: with 20 ms doubling to 200 ms, a few seconds of outage is dozens of tries at most
    assert stats["connection_failures"] < 100
    got = bus.read(S, "g", "c", count=10)  # the group vanished with the server: recreated, and reported
    assert [m.data for m in got] == [b"during"]
    assert bus.stats()["groups_recreated"] == 1
    bus.close()


def test_entries_survive_a_restart_with_aof(tmp_path):
    from tests.support.services import RedisServer

    server = RedisServer(port=free_port(), workdir=tmp_path, appendonly=True)
    server.start()
    try:
        bus = create_bus(server.url, _fast())
        bus.ensure_group(S, "g")
        ids = [bus.publish(S, f"m{i}".encode()) for i in range(20)]
        first = bus.read(S, "g", "worker-a", count=5)
        server.stop()
        server.start()
        rest = bus.read(S, "g", "worker-b", count=100)
        assert [m.id for m in rest] == ids[5:]
        assert bus.ack(S, "g", [m.id for m in rest]) == 15
        reclaimed = bus.claim_stale(S, "g", "worker-b", min_idle_ms=0, count=10)
        assert [m.id for m in reclaimed] == [m.id for m in first]
        assert bus.stats().get("groups_recreated", 0) == 0, "nothing was lost, nothing reported lost"
        bus.close()
    finally:
        server.stop()


def test_retry_timeout_and_stop_event_bound_the_wait(redis_server):
    redis_server.stop()
    bus = create_bus(redis_server.url, _fast(retry_timeout_s=0.3))
    with pytest.raises(BusError, match="unreachable"):
        bus.length(S)
    stop = threading.Event()
    forever = create_bus(redis_server.url, _fast(), stop_event=stop)
    errors: list[Exception] = []

    def call() -> None:
        try:
            forever.publish(S, b"x")
        except BusError as e:
            errors.append(e)

    t = threading.Thread(target=call)
    t.start()
    wait_until(lambda: forever.stats().get("connection_failures", 0) >= 1, what="first failure")
    stop.set()
    t.join(timeout=5)
    assert not t.is_alive() and "shutting down" in str(errors[0])


def test_foreign_entries_are_dead_lettered_on_read_with_reasons(redis_server):
    bus = RedisBus(redis_server.url, max_payload_bytes=10_000, dead_payload_max_bytes=100)
    bus.ensure_group(S, "g")
    raw = redis.Redis.from_url(redis_server.url)
    no_field = raw.xadd(S, {"payload": b"x", "other": b"y"}).decode()
    huge = raw.xadd(S, {"d": b"z" * 20_000}).decode()
    good = bus.publish(S, b"fine")
    got = bus.read(S, "g", "c", count=10)
    assert [m.id for m in got] == [good]
    assert bus.pending(S, "g") == 1
    dead = {d.source_id: d for d in bus.dead_letters(S)}
    assert "no payload field" in dead[no_field].reason and "other" in dead[no_field].reason
    assert "20000 bytes exceeds" in dead[huge].reason
    assert dead[huge].size == 20_000 and len(dead[huge].data) == 100, "dead letters keep a bounded prefix"
    assert raw.xlen(dead_stream(S)) == 2
    raw.close()
    bus.close()


def test_blocking_reads_never_outlast_the_socket_timeout(redis_server):
    bus = create_bus(redis_server.url, _fast(socket_timeout_s=1.5, block_ms=1000))
    bus.ensure_group(S, "g")
    assert bus.read(S, "g", "c", count=1, block_ms=60_000) == []
    assert bus.stats().get("connection_failures", 0) == 0, "a long block is capped, not a socket timeout"
    bus.close()


def test_a_full_server_makes_producers_wait_not_fail(redis_server):
    """Redis at maxmemory (noeviction) refuses XADD with OOM: the producer backs off until there is room."""
    bus = create_bus(redis_server.url, _fast())
    bus.ensure_group(S, "g")
    admin = redis.Redis.from_url(redis_server.url)
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", used + 512 * 1024)
    published: list[str] = []
    producer = threading.Thread(target=lambda: published.extend(bus.publish(S, b"x" * 64 * 1024) for _ in range(40)))
    producer.start()
    wait_until(lambda: bus.stats().get("out_of_memory", 0) >= 1, timeout=20, what="an OOM refusal")
    assert producer.is_alive() and len(published) < 40
    admin.config_set("maxmemory", 0)  # consumers trimmed / the operator added memory
    producer.join(timeout=20)
    assert len(published) == 40 and bus.length(S) == 40, "nothing lost, nothing duplicated"
    admin.close()
    bus.close()
