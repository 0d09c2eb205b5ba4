"""Whether a site's bus has delivered and acknowledged everything, so its services may stop.

``xreid up`` with ``exit_when_cameras_finish`` stops the re-ID workers, the matcher and the API
once the cameras have finished; stopping them while clips still wait on ``xreid:clips`` (or
embeddings on ``xreid:embeddings``) would leave those tracks out of the store until the next
start. The consumer groups' lag (entries never handed out) and pending (handed out, not acked)
are both zero only after the matcher has committed the last embedding: the re-ID workers ack a
clip after its embedding is on the bus, the matcher acks after its SQLite transaction.
"""

from __future__ import annotations

import logging
import time

from models.errors import BusError
from pipeline.bus import GROUP_MATCHER, GROUP_REID, STREAM_CLIPS, STREAM_EMBEDDINGS, Bus
from pipeline.camera.status import GROUP_STATUS_STORE, STREAM_CAMERA_STATUS

log = logging.getLogger(__name__)

# upstream first: a clip acked by re-ID already has its embedding on the next stream
SITE_GROUPS = ((STREAM_CLIPS, GROUP_REID), (STREAM_EMBEDDINGS, GROUP_MATCHER),
               (STREAM_CAMERA_STATUS, GROUP_STATUS_STORE))


def backlog(bus: Bus, groups: tuple[tuple[str, str], ...] = SITE_GROUPS) -> dict[str, int]:
    """``stream -> lag + pending`` of its group (a stream whose group does not exist yet counts its length).

    Raises:
        BusError: Redis unreachable past the bus's retry budget.
    """
    return {stream: bus.lag(stream, group) + bus.pending(stream, group) for stream, group in groups}


class DrainWatch:
    """Polled by the supervisor loop after the cameras finished: drained, still waiting, or timed out.

    Args:
        bus: a client of the site's Redis (a short ``retry_timeout_s`` keeps a poll from blocking
            the supervisor while Redis is down; the failure then counts as "not drained yet").
        timeout_s: how long to wait for the backlog to reach zero before giving up.
    """

    def __init__(self, bus: Bus, timeout_s: float) -> None:
        self.bus = bus
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s = timeout_s
        self.last: dict[str, int] | None = None

    def drained(self) -> bool:
        try:
            self.last = backlog(self.bus)
        except BusError as e:
            log.warning("backlog not measurable yet: %s", e)
            return False
        return not any(self.last.values())

    def timed_out(self) -> bool:
        return time.monotonic() >= self.deadline

    def close(self) -> None:
        self.bus.close()
