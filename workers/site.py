"""The site description behind ``xreid up``: which workers to run against which Redis."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from models.errors import ConfigError
from pipeline.config.loader import secret
from pipeline.config.redact import redact_url
from workers.supervisor import ProcessSpec


@dataclass(frozen=True)
class RestartCfg:
    max_restarts: int = 10
    backoff_s: float = 1.0
    backoff_max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0 or self.backoff_s <= 0 or self.backoff_max_s < self.backoff_s:
            raise ConfigError("restart needs max_restarts >= 0 and 0 < backoff_s <= backoff_max_s")


@dataclass(frozen=True)
class SiteApiCfg:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True)
class SiteCfg:
    """One site: a Redis URL, a camera list, how many re-ID workers, where the store lives.

    ``exit_when_cameras_finish``: once the camera worker has finished for good (every source
    ended: file end, max_frames, RTSP reconnects spent), wait up to ``drain_timeout_s`` for the
    clips already on the bus to be embedded and stored, then stop the services and exit. Off by
    default: a site's re-ID, matcher and API keep serving after its cameras are done.
    """

    redis_url: str = secret("redis://127.0.0.1:6379/0")  # may carry a password: never printed in clear
    cameras: str = "configs/cameras.example.yaml"
    store: str = "xreid-out/site/xreid.sqlite"
    reid_workers: int = 1
    reid_device: str = "auto"
    checkpoint: str | None = None
    metrics_base_port: int = 9100
    log_dir: str = "xreid-out/site/logs"
    api: SiteApiCfg = field(default_factory=SiteApiCfg)
    restart: RestartCfg = field(default_factory=RestartCfg)
    exit_when_cameras_finish: bool = False
    drain_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"redis_url must start with redis://, rediss:// or unix://, got {redact_url(self.redis_url)!r}")
        if not 0 <= self.reid_workers <= 64:
            raise ConfigError(f"reid_workers must be in [0, 64], got {self.reid_workers}")
        if self.drain_timeout_s <= 0:
            raise ConfigError(f"drain_timeout_s must be > 0, got {self.drain_timeout_s}")
        if self.exit_when_cameras_finish and self.reid_workers == 0:
            raise ConfigError("exit_when_cameras_finish needs reid_workers >= 1: with none, the clips on the bus "
                              "are never embedded and the site would wait drain_timeout_s for nothing")


def site_processes(site: SiteCfg, python: str = sys.executable) -> list[ProcessSpec]:
    """The child commands of a site, each an ordinary ``xreid`` invocation.

    The Redis URL travels in the environment, not on the command line, so a password in it never
    shows up in ``ps`` output.
    """
    xreid = (python, "-m", "workers.cli")
    env = {"XREID_REDIS_URL": site.redis_url}
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
