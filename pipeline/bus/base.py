"""The ``Bus`` seam: streams of opaque payloads read by consumer groups, pending until acked.

Two implementations honour one contract (``tests/integration/test_bus_contract.py``): ``MemoryBus`` for the
embedded mode and ``RedisBus`` (Redis Streams) for the distributed mode. The semantics are those
of Redis Streams, so code written against the in-memory bus behaves the same on Redis:

* ``publish`` appends; nothing unread is ever trimmed.
* ``read`` hands each new entry to one consumer of a group; it stays *pending* until ``ack``.
* ``claim_stale`` moves entries pending longer than ``min_idle_ms`` to another consumer (a killed
  worker loses nothing); every hand-out increments the entry's delivery count.
* ``claim_stale`` dead-letters, instead of handing out, an entry delivered more than
  ``max_deliveries`` times (a poison message that keeps killing its workers).
* ``dead_letter`` copies an entry with its reason to ``{stream}:dead`` and acks it.
* ``trim_acked`` drops entries every group has acknowledged. Retention and erasure delete too, and
  only they: ``trim_before`` drops every entry older than a horizon (acked or not: past the horizon
  the data may not be kept), ``delete_dead_letters`` drops named dead letters (an erased person's clips).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

DEAD_SUFFIX = ":dead"


def dead_stream(stream: str) -> str:
    """Name of the dead-letter stream paired with ``stream``."""
    return stream + DEAD_SUFFIX


@dataclass(frozen=True, slots=True)
class Message:
    """One stream entry as a consumer sees it.

    Attributes:
        id: the stream's entry id (``"<ms>-<seq>"``), unique per stream.
        data: the payload (an encoded ``Clip``/``Embedding``, or garbage a test injected).
        deliveries: how many times this entry has been handed out, this time included.
    """

    id: str
    data: bytes
    deliveries: int = 1


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead-lettered entry: the original payload (possibly truncated) and why it was rejected.

    Attributes:
        size: the original payload's length in bytes; ``len(data)`` is smaller when truncated.
    """

    id: str
    source_id: str
    data: bytes
    reason: str
    size: int = 0


class Bus(Protocol):
    """What every stage needs from a message bus."""

    def ensure_group(self, stream: str, group: str) -> None:
        """Create ``group`` on ``stream`` (reading from the start) if it does not exist."""

    def publish(self, stream: str, data: bytes) -> str:
        """Append one payload; returns its entry id."""

    def read(self, stream: str, group: str, consumer: str, count: int, block_ms: int = 0) -> list[Message]:
        """Hand up to ``count`` never-delivered entries to ``consumer``; waits up to ``block_ms``."""

    def ack(self, stream: str, group: str, ids: Sequence[str]) -> int:
        """Mark entries done for ``group``; returns how many were pending."""

    def claim_stale(self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int) -> list[Message]:
        """Take over entries another consumer has held longer than ``min_idle_ms``."""

    def dead_letter(self, stream: str, group: str, msg: Message, reason: str) -> None:
        """Copy ``msg`` with ``reason`` to the dead-letter stream, then ack it."""

    def dead_letters(self, stream: str, count: int = 100) -> list[DeadLetter]:
        """Read back the dead-letter stream of ``stream`` (oldest first)."""

    def pending(self, stream: str, group: str) -> int:
        """Entries delivered to ``group`` and not yet acked."""

    def lag(self, stream: str, group: str) -> int:
        """Entries of ``stream`` not yet delivered to ``group``."""

    def length(self, stream: str) -> int:
        """Entries currently in ``stream``."""

    def trim_acked(self, stream: str) -> int:
        """Delete the entries every group of ``stream`` has acked; returns how many were deleted."""

    def trim_before(self, stream: str, before_ms: int) -> int:
        """Delete every entry of ``stream`` whose id time is before ``before_ms`` (UTC epoch ms), pending or
        not (retention); returns how many were deleted."""

    def delete_dead_letters(self, stream: str, ids: Sequence[str]) -> int:
        """Delete these entries (``DeadLetter.id``) from the dead-letter stream of ``stream`` (erasure)."""

    def stats(self) -> dict[str, int]:
        """Counters since start (``dead_lettered``, ``reclaimed``, ``reconnects``, …) for metrics."""

    def close(self) -> None:
        """Release connections; the bus is unusable afterwards."""
