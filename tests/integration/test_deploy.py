"""The deployment files start the commands the README documents, and docker-compose accepts them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.config.loader import load_config
from pipeline.config.settings import XreidCfg
from pipeline.ingest.rtsp import is_rtsp_url
from workers.cli import build_parser
from workers.site import SiteCfg, site_processes

ROOT = Path(__file__).resolve().parents[2]


def _parses(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert getattr(args, "func", None) is not None, f"no subcommand in {argv}"


def test_compose_file_is_valid_for_docker_compose():
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose missing: run `bash scripts/system-deps.sh`"
    env = {**os.environ, "REDIS_PASSWORD": "test-password", "POSTGRES_PASSWORD": "pg-password",
           "XREID_API_TOKEN": "test-token"}
    proc = subprocess.run([exe, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"], env=env,
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


def test_compose_refuses_to_start_without_secrets():
    secrets = {"REDIS_PASSWORD": "x", "POSTGRES_PASSWORD": "y", "XREID_API_TOKEN": "z"}
    base = {k: v for k, v in os.environ.items() if k not in secrets}
    for missing in secrets:
        env = {**base, **{k: v for k, v in secrets.items() if k != missing}}
        proc = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"], env=env,
                              capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode != 0 and missing in proc.stderr, missing


def test_compose_file_holds_no_secret_values():
    text = (ROOT / "docker-compose.yml").read_text()
    assert "requirepass" in text and "${REDIS_PASSWORD" in text
    for line in text.splitlines():
        if "password" in line.lower() and ":" in line and "${" not in line and "$$" not in line:
            assert line.strip().startswith("#"), f"literal secret-looking line: {line}"


def test_compose_services_run_documented_xreid_commands():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "camera", "reid", "matcher", "api"} <= set(services)
    for name in ("camera", "reid", "matcher", "api"):
        _parses(list(services[name]["command"]))
    gpu = services["reid"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    assert "appendonly yes" in " ".join(services["redis"]["command"])


def test_compose_keeps_the_store_in_postgres_with_the_password_in_the_environment_only():
    env = {**os.environ, "REDIS_PASSWORD": "r-pass", "POSTGRES_PASSWORD": "pg-s3cret", "XREID_API_TOKEN": "t"}
    proc = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"], env=env,
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pg-s3cret"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    for name in ("matcher", "api"):
        svc = services[name]
        env_ = svc["environment"]
        assert env_["XREID_STORE__URL"].startswith("postgresql://") and "pg-s3cret" not in env_["XREID_STORE__URL"]
        assert env_["PGPASSWORD"] == "pg-s3cret"
        assert "pg-s3cret" not in " ".join(svc["command"]) and "--store" not in svc["command"]
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert not any("sqlite" in str(v) for v in svc.get("volumes", [])), "no store file is shared"
    cfg = load_config(XreidCfg, None, env={k: v for k, v in services["matcher"]["environment"].items()
                                           if k.startswith("XREID_STORE__")})
    assert cfg.store.location == "postgresql://xreid@postgres:5432/xreid" and cfg.store.crops_dir == "/data/crops"


def test_kubernetes_example_runs_documented_xreid_commands():
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / "k8s" / "xreid.yaml").read_text()) if d]
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert len(deployments) == 4
    for dep in deployments:
        for container in dep["spec"]["template"]["spec"]["containers"]:
            _parses([a.replace("$(REDIS_PASSWORD)", "x") for a in container["args"]])


def test_kubernetes_keeps_the_store_in_a_postgres_statefulset_with_the_password_from_the_secret():
    text = (ROOT / "deploy" / "k8s" / "xreid.yaml").read_text()
    assert "ReadWriteMany" not in text and "sqlite" not in text, "no store file shared between pods"
    docs = [d for d in yaml.safe_load_all(text) if d]
    (pg,) = [d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "postgres"]
    assert any(d["kind"] == "Service" and d["metadata"]["name"] == "postgres" for d in docs)
    (server,) = pg["spec"]["template"]["spec"]["containers"]
    pw = {e["name"]: e for e in server["env"]}["POSTGRES_PASSWORD"]
    assert pw["valueFrom"]["secretKeyRef"]["key"] == "postgres-password"
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert deployments["xreid-matcher"]["spec"]["replicas"] == 1 and deployments["xreid-api"]["spec"]["replicas"] >= 2
    for name in ("xreid-matcher", "xreid-api"):
        (c,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in c["env"]}
        assert env["XREID_STORE__URL"]["value"] == "postgresql://xreid@postgres:5432/xreid"
        assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "xreid-secrets", "key": "postgres-password"}
        assert "--store" not in c["args"] and not any("postgres" in a for a in c["args"])
    assert "--from-literal=postgres-password=" in text


def test_compose_restarts_a_crashed_camera_but_not_a_finished_one():
    """Exit 0 means the camera worker finished for good (docs/distributed.md): ``on-failure`` leaves it down."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert services["camera"]["restart"] == "on-failure"
    for name in ("redis", "postgres", "reid", "matcher", "api"):  # services never finish: restarted whatever
        assert services[name]["restart"] == "unless-stopped", name


def test_kubernetes_runs_recordings_as_a_job_that_is_not_rerun_after_exit_0():
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / "k8s" / "xreid.yaml").read_text()) if d]
    jobs = [d for d in docs if d["kind"] == "Job"]
    assert len(jobs) == 1
    pod = jobs[0]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "OnFailure" and jobs[0]["spec"]["backoffLimit"] >= 1
    (container,) = pod["containers"]
    args = [a.replace("$(REDIS_PASSWORD)", "x") for a in container["args"]]
    _parses(args)
    assert args[0] == "camera"
    # the config it mounts (the README's configmap command) holds recordings only: no live or looping source
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["footage"]["persistentVolumeClaim"]["claimName"] in claims
    assert "configs/recordings.example.yaml" in (ROOT / "deploy" / "k8s" / "xreid.yaml").read_text()
    cfg = load_config(XreidCfg, ROOT / "configs" / "recordings.example.yaml")
    assert cfg.cameras and all(not is_rtsp_url(c.source) and not c.loop for c in cfg.cameras)


def test_example_site_file_keeps_services_running_after_the_cameras_finish():
    site = load_config(SiteCfg, ROOT / "configs" / "site.yaml")
    assert site.exit_when_cameras_finish is False and site.drain_timeout_s > 0
    camera = site_processes(site)[0]
    assert camera.name == "camera" and camera.may_finish
    assert not any(s.may_finish for s in site_processes(site)[1:]), "services are restarted on any exit"


@pytest.mark.parametrize("reid_workers", [0, 3])
def test_site_processes_are_valid_xreid_commands(reid_workers):
    specs = site_processes(SiteCfg(reid_workers=reid_workers, checkpoint="model.pt"))
    assert [s.name for s in specs].count("matcher") == 1
    assert sum(s.name.startswith("reid-") for s in specs) == reid_workers
    for spec in specs:
        assert list(spec.argv[1:3]) == ["-m", "workers.cli"]
        _parses(list(spec.argv[3:]))
        assert "redis://" not in " ".join(spec.argv), "the Redis URL must travel in the environment"


def test_dockerfiles_pin_their_base_and_drop_root():
    for name in ("Dockerfile.cpu", "Dockerfile.cuda"):
        text = (ROOT / "deploy" / name).read_text()
        base = next(line.split()[1] for line in text.splitlines() if line.startswith("FROM "))
        assert ":" in base and not base.endswith(":latest"), base
        assert "\nUSER xreid" in text


# What a process shows in `ps` (and a healthcheck runs every few seconds) must hold no secret:
# a credential URL, a redis-cli -a/--pass, or any expansion of a secret variable. The one allowed
# reference is redis-server's --requirepass: Redis retitles its process at start.
_SECRET_VARS = re.compile(r"\$\$?\{?\(?(REDIS_PASSWORD|XREID_API_TOKEN|XREID_API__TOKEN|REDISCLI_AUTH)\b")
_CREDENTIAL_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s@]*:[^/\s@]*@", re.I)


def _command_lines(node: object, path: str = "") -> list[tuple[str, str]]:
    """(where, text) of every command, args, entrypoint, healthcheck and probe in a YAML tree."""
    out: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}"
            if key in ("command", "args", "entrypoint", "test"):
                items = value if isinstance(value, list) else [value]
                out.append((where, " ".join(str(v) for v in items)))
            else:
                out += _command_lines(value, where)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _command_lines(value, f"{path}[{i}]")
    return out


def _assert_no_secret_on_command_lines(docs: list[object]) -> int:
    lines = [c for d in docs for c in _command_lines(d)]
    for where, text in lines:
        assert not _CREDENTIAL_URL.search(text), f"{where}: credential URL on a command line: {text}"
        assert not re.search(r"redis-cli\b.*\s(-a|--pass|--user)\b", text), f"{where}: redis-cli password flag: {text}"
        shown = text.replace('--requirepass \\"$$REDIS_PASSWORD\\"', "").replace('--requirepass "$$REDIS_PASSWORD"', "")
        shown = shown.replace('--requirepass "$REDIS_PASSWORD"', "")
        assert not _SECRET_VARS.search(shown), f"{where}: a secret expands into a command line: {text}"
    return len(lines)


def test_compose_puts_no_password_on_any_command_line_or_healthcheck():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert _assert_no_secret_on_command_lines([compose]) >= 10
    redis_svc = compose["services"]["redis"]
    assert "REDISCLI_AUTH" in redis_svc["environment"], "the healthcheck's redis-cli authenticates from the env"
    assert "redis-cli" in " ".join(redis_svc["healthcheck"]["test"])


def test_kubernetes_puts_no_password_on_any_command_line_or_probe():
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / "k8s" / "xreid.yaml").read_text()) if d]
    assert _assert_no_secret_on_command_lines(docs) >= 6
    for dep in (d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] != "xreid-api"):
        for container in dep["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: e for e in container["env"]}
            assert env["XREID_REDIS_URL"]["value"] == "redis://:$(REDIS_PASSWORD)@redis:6379/0"
            assert "secretKeyRef" in env["REDIS_PASSWORD"]["valueFrom"]
            assert not any("redis://" in a for a in container["args"])


def test_the_secret_check_catches_what_it_is_for():
    bad = [{"healthcheck": {"test": ["CMD-SHELL", 'redis-cli -a "$$REDIS_PASSWORD" ping']}},
           {"args": ["matcher", "--redis", "redis://:$(REDIS_PASSWORD)@redis:6379/0"]},
           {"command": ["camera", "--redis", "redis://:hunter2@redis:6379/0"]}]
    for doc in bad:
        with pytest.raises(AssertionError):
            _assert_no_secret_on_command_lines([doc])


def test_a_site_on_a_postgresql_store_passes_no_password_in_argv():
    from models.errors import ConfigError

    url = "postgresql://xreid@db:5432/xreid"
    specs = {s.name: s for s in site_processes(SiteCfg(store=url))}
    assert url in specs["matcher"].argv and url in specs["api"].argv
    with pytest.raises(ConfigError, match="put it in PGPASSWORD instead") as err:
        load_config(SiteCfg, None, overrides={"store": "postgresql://xreid:hunter2@db:5432/xreid"})
    assert "hunter2" not in str(err.value)
