"""In-process ``Bus`` with the same pending-until-ack semantics as Redis Streams.

The embedded mode runs every stage in one process; this bus lets them keep the exact protocol
they use against Redis (groups, acks, reclaim, dead letters), so nothing is a test double. It is
thread-safe: stages may run in threads.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from .base import DeadLetter, Message, dead_stream


@dataclass
class _Pending:
    consumer: str
    delivered_at: float
    deliveries: int


@dataclass
class _Group:
    next_index: int = 0  # index into the stream's entry list of the next never-delivered entry
    pending: OrderedDict[str, _Pending] = field(default_factory=OrderedDict)


@dataclass
class _Stream:
    ids: list[str] = field(default_factory=list)
    data: dict[str, bytes] = field(default_factory=dict)
    groups: dict[str, _Group] = field(default_factory=dict)
    last_ms: int = 0
    seq: int = 0


class MemoryBus:
    """A ``Bus`` held in this process's memory; see ``pipeline.bus.base`` for the contract."""

    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}
        self._dead: dict[str, list[DeadLetter]] = {}
        self._cond = threading.Condition()

    def _stream(self, name: str) -> _Stream:
        s = self._streams.get(name)
        if s is None:
            s = self._streams[name] = _Stream()
        return s

    def _next_id(self, s: _Stream) -> str:
        now_ms = int(time.time() * 1000)
        if now_ms > s.last_ms:
            s.last_ms, s.seq = now_ms, 0
        else:
            s.seq += 1
        return f"{s.last_ms}-{s.seq}"

    def ensure_group(self, stream: str, group: str) -> None:
        with self._cond:
            self._stream(stream).groups.setdefault(group, _Group())

    def publish(self, stream: str, data: bytes) -> str:
        with self._cond:
            s = self._stream(stream)
            entry_id = self._next_id(s)
            s.ids.append(entry_id)
            s.data[entry_id] = bytes(data)
            self._cond.notify_all()
            return entry_id

    def read(self, stream: str, group: str, consumer: str, count: int, block_ms: int = 0) -> list[Message]:
        deadline = time.monotonic() + block_ms / 1000.0
        with self._cond:
            while True:
                s = self._stream(stream)
                g = s.groups.setdefault(group, _Group())
                if g.next_index < len(s.ids):
                    out = []
                    now = time.monotonic()
                    for entry_id in s.ids[g.next_index:g.next_index + count]:
                        g.pending[entry_id] = _Pending(consumer, now, 1)
                        out.append(Message(entry_id, s.data[entry_id], 1))
                    g.next_index += len(out)
                    return out
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)

    def ack(self, stream: str, group: str, ids: Sequence[str]) -> int:
        with self._cond:
            g = self._stream(stream).groups.get(group)
            if g is None:
                return 0
            return sum(g.pending.pop(i, None) is not None for i in ids)

    def claim_stale(self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int) -> list[Message]:
        with self._cond:
            s = self._stream(stream)
            g = s.groups.get(group)
            if g is None:
                return []
            now = time.monotonic()
            out = []
            for entry_id, p in list(g.pending.items()):
                if len(out) >= count:
                    break
                if (now - p.delivered_at) * 1000.0 < min_idle_ms:
                    continue
                p.consumer, p.delivered_at, p.deliveries = consumer, now, p.deliveries + 1
                out.append(Message(entry_id, s.data[entry_id], p.deliveries))
            return out

    def dead_letter(self, stream: str, group: str, msg: Message, reason: str) -> None:
        with self._cond:
            dead = self._dead.setdefault(stream, [])
            dead_id = self._next_id(self._stream(dead_stream(stream)))
            dead.append(DeadLetter(dead_id, msg.id, msg.data, reason))
        self.ack(stream, group, [msg.id])

    def dead_letters(self, stream: str, count: int = 100) -> list[DeadLetter]:
        with self._cond:
            return list(self._dead.get(stream, [])[:count])

    def pending(self, stream: str, group: str) -> int:
        with self._cond:
            g = self._stream(stream).groups.get(group)
            return len(g.pending) if g else 0

    def lag(self, stream: str, group: str) -> int:
        with self._cond:
            s = self._stream(stream)
            g = s.groups.get(group)
            return len(s.ids) - (g.next_index if g else 0)

    def length(self, stream: str) -> int:
        with self._cond:
            return len(self._stream(stream).ids)

    def close(self) -> None:
        with self._cond:
            self._cond.notify_all()
