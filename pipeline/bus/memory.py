"""In-process ``Bus`` with the same pending-until-ack semantics as Redis Streams.

The embedded mode runs every stage in one process; this bus lets them keep the exact protocol
they use against Redis (groups, acks, reclaim, dead letters), so nothing is a test double. It is
thread-safe: stages may run in threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from models.errors import ContractError
from pipeline.bus.base import DEAD_SUFFIX, DeadLetter, Message, dead_stream

log = logging.getLogger(__name__)


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
    ids: list[str] = field(default_factory=list)  # trim_acked deletes from the front only
    trimmed: int = 0  # entries deleted from the front; group indexes count from the first entry ever
    data: dict[str, bytes] = field(default_factory=dict)
    groups: dict[str, _Group] = field(default_factory=dict)
    last_ms: int = 0
    seq: int = 0


class MemoryBus:
    """A ``Bus`` held in this process's memory; see ``pipeline.bus.base`` for the contract.

    Args:
        max_deliveries: hand-outs after which ``claim_stale`` dead-letters an entry instead.
        max_payload_bytes: larger payloads are refused by ``publish``.
        trim_every_s: when > 0, ``ack`` also runs ``trim_acked`` on that stream at most this often,
            so an embedded run holds only unfinished entries (there is no separate process to trim).
    """

    def __init__(self, max_deliveries: int = 5, max_payload_bytes: int = 32 * 1024 * 1024,
                 trim_every_s: float = 0.0) -> None:
        self.max_deliveries = max_deliveries
        self.max_payload_bytes = max_payload_bytes
        self.trim_every_s = trim_every_s
        self._last_trim: dict[str, float] = {}
        self._streams: dict[str, _Stream] = {}
        self._dead: dict[str, list[DeadLetter]] = {}
        self._counters: Counter[str] = Counter()
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
        if len(data) > self.max_payload_bytes:
            raise ContractError(f"payload of {len(data)} bytes exceeds the bus limit of {self.max_payload_bytes}")
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
                start = g.next_index - s.trimmed
                if start < len(s.ids):
                    out = []
                    now = time.monotonic()
                    for entry_id in s.ids[start:start + count]:
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
            n = sum(g.pending.pop(i, None) is not None for i in ids)
            if self.trim_every_s > 0:
                now = time.monotonic()
                if now - self._last_trim.setdefault(stream, now) >= self.trim_every_s:
                    self._last_trim[stream] = now
                    self.trim_acked(stream)
            return n

    def claim_stale(self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int) -> list[Message]:
        with self._cond:
            s = self._stream(stream)
            g = s.groups.get(group)
            if g is None:
                return []
            now = time.monotonic()
            out, dead = [], []
            for entry_id, p in list(g.pending.items()):
                if len(out) >= count:
                    break
                if (now - p.delivered_at) * 1000.0 < min_idle_ms:
                    continue
                p.consumer, p.delivered_at, p.deliveries = consumer, now, p.deliveries + 1
                msg = Message(entry_id, s.data[entry_id], p.deliveries)
                (dead if p.deliveries > self.max_deliveries else out).append(msg)
            self._counters["reclaimed"] += len(out)
        for msg in dead:
            self.dead_letter(stream, group, msg, f"delivered {msg.deliveries} times without being acked "
                                                 f"(max_deliveries={self.max_deliveries})")
        return out

    def dead_letter(self, stream: str, group: str, msg: Message, reason: str) -> None:
        with self._cond:
            # the dead stream is an ordinary stream too (length, groups), as it is on Redis
            ds = self._stream(dead_stream(stream))
            dead_id = self._next_id(ds)
            ds.ids.append(dead_id)
            ds.data[dead_id] = msg.data
            self._dead.setdefault(stream, []).append(DeadLetter(dead_id, msg.id, msg.data, reason, len(msg.data)))
            self._counters["dead_lettered"] += 1
        self.ack(stream, group, [msg.id])
        log.warning("dead-lettered stream=%s group=%s entry=%s: %s", stream, group, msg.id, reason)

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
            return len(s.ids) + s.trimmed - (g.next_index if g else s.trimmed)

    def length(self, stream: str) -> int:
        with self._cond:
            return len(self._stream(stream).ids)

    def trim_acked(self, stream: str) -> int:
        with self._cond:
            s = self._stream(stream)
            if not s.groups:
                return 0
            # the first index some group still needs: its oldest pending entry, else its next unread.
            # pending keeps delivery order, which is stream order, so its first key is the oldest
            keep_from = min(s.trimmed + s.ids.index(next(iter(g.pending))) if g.pending else g.next_index
                            for g in s.groups.values())
            n = max(0, keep_from - s.trimmed)
            for entry_id in s.ids[:n]:
                del s.data[entry_id]
            del s.ids[:n]
            s.trimmed += n
            return n

    def trim_before(self, stream: str, before_ms: int) -> int:
        with self._cond:
            s = self._stream(stream)
            n = 0
            while n < len(s.ids) and _id_ms(s.ids[n]) < before_ms:
                n += 1
            for entry_id in s.ids[:n]:
                del s.data[entry_id]
                for g in s.groups.values():
                    g.pending.pop(entry_id, None)   # as on Redis: a trimmed pending entry is gone
            del s.ids[:n]
            s.trimmed += n
            for g in s.groups.values():
                g.next_index = max(g.next_index, s.trimmed)
            if stream.endswith(DEAD_SUFFIX):   # the read-back copy of dead letters follows its stream
                source = stream[:-len(DEAD_SUFFIX)]
                self._dead[source] = [d for d in self._dead.get(source, []) if _id_ms(d.id) >= before_ms]
            return n

    def delete_dead_letters(self, stream: str, ids: Sequence[str]) -> int:
        gone = set(ids)
        with self._cond:
            before = self._dead.get(stream, [])
            self._dead[stream] = [d for d in before if d.id not in gone]
            ds = self._stream(dead_stream(stream))
            removed = [k for k, entry_id in enumerate(ds.ids) if entry_id in gone]
            for g in ds.groups.values():   # entries leave the middle: a group's next index moves back past them
                read = g.next_index - ds.trimmed
                g.next_index -= sum(1 for k in removed if k < read)
                for k in removed:
                    g.pending.pop(ds.ids[k], None)
            for k in removed:
                del ds.data[ds.ids[k]]
            ds.ids = [entry_id for entry_id in ds.ids if entry_id not in gone]
            return len(before) - len(self._dead[stream])

    def stats(self) -> dict[str, int]:
        with self._cond:
            return dict(self._counters)

    def close(self) -> None:
        with self._cond:
            self._cond.notify_all()


def _id_ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])
