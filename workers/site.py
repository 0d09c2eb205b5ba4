"""The site description behind ``xreid up``: which workers to run against which Redis."""

from __future__ import annotations

import sys
from dataclasses import field
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from models.config_base import Section, config_dataclass
from pipeline.config.redact import redact_url
from workers.supervisor import ProcessSpec


@config_dataclass
class RestartCfg(Section):
    """How the supervisor restarts a crashed worker."""

    max_restarts: Annotated[int, Field(ge=0)] = 10
    backoff_s: Annotated[float, Field(gt=0)] = 1.0
    backoff_max_s: float = 30.0

    @model_validator(mode="after")
    def _backoff_band(self) -> Self:
        if self.backoff_max_s < self.backoff_s:
            raise ValueError("backoff_max_s must be >= backoff_s")
        return self


@config_dataclass
class SiteApiCfg(Section):
    """The site's API worker (``xreid serve``)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080


@config_dataclass
class SiteCfg(Section):
    """One site: a Redis URL, a camera list, how many re-ID workers, where the store lives.

    ``exit_when_cameras_finish``: once the camera worker has finished for good (every source
    ended: file end, max_frames, RTSP reconnects spent), wait up to ``drain_timeout_s`` for the
    clips already on the bus to be embedded and stored, then stop the services and exit. Off by
    default: a site's re-ID, matcher and API keep serving after its cameras are done.
    """

    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")  # may carry a password: never printed in clear
    cameras: str = "configs/cameras.example.yaml"
    store: str = "xreid-out/site/xreid.sqlite"   # or postgresql://user@host:port/db (password: PGPASSWORD)
    reid_workers: Annotated[int, Field(ge=0, le=64)] = 1
    reid_device: str = "auto"
    checkpoint: str | None = None
    metrics_base_port: int = 9100
    log_dir: str = "xreid-out/site/logs"
    api: SiteApiCfg = field(default_factory=SiteApiCfg)
    restart: RestartCfg = field(default_factory=RestartCfg)
    exit_when_cameras_finish: bool = False
    drain_timeout_s: Annotated[float, Field(gt=0)] = 300.0

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: SecretStr) -> SecretStr:
        if not url.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            shown = redact_url(url.get_secret_value())
            raise ValueError(f"must start with redis://, rediss:// or unix://, got {shown!r}")
        return url

    @field_validator("store")
    @classmethod
    def _no_password_in_argv(cls, store: str) -> str:
        # the store is passed to the matcher and the API as --store: a password there would show in ps
        if urlsplit(store).password is not None:
            raise ValueError(f"holds a password, which would show in `ps` as an argument of the matcher and the API: "
                             f"put it in PGPASSWORD instead ({redact_url(store)})")
        return store

    @model_validator(mode="after")
    def _drain_needs_reid(self) -> Self:
        if self.exit_when_cameras_finish and self.reid_workers == 0:
            raise ValueError("exit_when_cameras_finish needs reid_workers >= 1: with none, the clips on the bus "
                             "are never embedded and the site would wait drain_timeout_s for nothing")
        return self


def site_processes(site: SiteCfg, python: str = sys.executable) -> list[ProcessSpec]:
    """The child commands of a site, each an ordinary ``xreid`` invocation.

    The Redis URL travels in the environment, not on the command line, so a password in it never
    shows up in ``ps`` output.
    """
    xreid = (python, "-m", "workers.cli")
    env = {"XREID_REDIS_URL": site.redis_url.get_secret_value()}  # the children's environment, never argv
    port = site.metrics_base_port
    # the camera worker exits 0 only when every source has ended for good: not restarted (no replay)
    specs = [ProcessSpec("camera", (*xreid, "camera", "--config", site.cameras, "--metrics-port", str(port + 1)), env,
                         may_finish=True)]
    for i in range(site.reid_workers):
        argv = [*xreid, "reid-worker", "--device", site.reid_device, "--metrics-port", str(port + 10 + i),
                "--consumer", f"reid-{i}"]
        if site.checkpoint:
            argv += ["--checkpoint", site.checkpoint]
        specs.append(ProcessSpec(f"reid-{i}", tuple(argv), env))
    specs.append(ProcessSpec("matcher", (*xreid, "matcher", "--store", site.store, "--metrics-port", str(port + 2)),
                             env))
    if site.api.enabled:
        specs.append(ProcessSpec("api", (*xreid, "serve", "--store", site.store, "--host", site.api.host,
                                         "--port", str(site.api.port)), {}))
    return specs
