"""The matcher stage: embeddings from the bus → ``Matcher`` → store, acked after the commit.

Runs in the embedded pipeline (a thread over ``MemoryBus``) and as the distributed matcher
worker (over ``RedisBus``) unchanged. One ``step`` handles one batch: claim stale entries, read
new ones, decode, match each in order, write every outcome in one transaction, then ack. A
malformed embedding is dead-lettered with its reason and never stops the loop; a failed store
write leaves the batch pending (redelivered later) and reloads the matcher from the store so
memory never runs ahead of what is durable (a rebuild that fails too, the database being down, is
retried before the next batch). Redelivery is idempotent: a clip already folded
into its track is recognised by its segment and only acked. With an ``Announcer`` the batch's
events are logged in the same transaction and published once it has committed
(``pipeline/matcher/announce.py``); a redelivered clip announces nothing again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

from models.errors import ContractError, StoreError
from pipeline.bus import GROUP_MATCHER, STREAM_EMBEDDINGS, Bus, Message
from pipeline.bus.messages import Embedding
from pipeline.config.settings import MatcherCfg
from pipeline.matcher import records
from pipeline.matcher.announce import Announcer
from pipeline.matcher.matcher import Matcher, Outcome
from pipeline.matcher.privacy import PrivacyDuty
from pipeline.runtime.counters import StageCounters
from pipeline.runtime.stage_loop import StageLoop
from pipeline.store import erasure
from pipeline.store.base import Store
from pipeline.store.crops import CropKeeper

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepResult:
    consumed: int
    stored: int
    duplicates: int
    dead_lettered: int


class MatcherStage(StageLoop):
    """Consume ``Embedding``s, link them, persist, ack.

    Args:
        bus: the message bus (memory or Redis).
        store: the store (schema v2, SQLite or PostgreSQL); the matcher's state is rebuilt from it here.
        matcher: a fresh ``Matcher``; ``records.load_into`` fills it from ``store``.
        cfg: batch size and read wait.
        consumer: this worker's consumer name in the group.
        claim_idle_ms: entries pending longer than this on another consumer are taken over.
        crops: keeps each clip's thumbnail beside the store for ``xreid adapt`` (pipeline/store/crops.py).
        privacy: erasures and retention, run between batches (pipeline/matcher/privacy.py); None: neither.
        keep_thumbnails: False in embeddings-only mode: an embedding's crop is dropped before anything keeps it.
        announcer: announces the decisions as live events (None: no events).
    """

    def __init__(self, bus: Bus, store: Store, matcher: Matcher, cfg: MatcherCfg | None = None,
                 consumer: str = "matcher-0", claim_idle_ms: int = 30_000, stream: str = STREAM_EMBEDDINGS,
                 group: str = GROUP_MATCHER, crops: CropKeeper | None = None, privacy: PrivacyDuty | None = None,
                 keep_thumbnails: bool = True, announcer: Announcer | None = None) -> None:
        self.crops, self.privacy, self.keep_thumbnails = crops, privacy, keep_thumbnails
        self.announcer = announcer
        self.bus, self.store, self.cfg = bus, store, cfg or matcher.cfg
        self.consumer, self.claim_idle_ms, self.stream, self.group = consumer, claim_idle_ms, stream, group
        self.counters = StageCounters()
        self.forgotten_dropped = 0   # clips of erased tracks that arrived after the erasure, acked unused
        self.matcher = records.load_into(store, matcher)
        self._stale = False   # memory ran ahead of the store: rebuild before the next batch
        self.forgotten = erasure.forgotten_hashes(store)
        self.bus.ensure_group(stream, group)

    def reload(self) -> None:
        """Rebuild the matcher from the store (after an erasure or a sweep removed rows it holds)."""
        self.matcher = records.load_into(self.store, Matcher(self.matcher.cfg))
        self.forgotten = erasure.forgotten_hashes(self.store)
        if self.announcer is not None and self.announcer.watchlist is not None:
            self.announcer.watchlist.reload()   # entries and hits derived from erased tracks are gone

    def step(self, block_ms: int | None = None) -> StepResult:
        """Handle one batch (claim/read → match → store → ack); returns what it did."""
        if self.privacy is not None and self.privacy.tick():
            self._stale = True   # an erasure or a sweep removed rows the matcher holds
        if self._stale:   # a failed rebuild raises again here, before any entry is read
            self.reload()
            self._stale = False
        msgs = self.bus.claim_stale(self.stream, self.group, self.consumer, self.claim_idle_ms, self.cfg.max_batch)
        if len(msgs) < self.cfg.max_batch:
            wait = self.cfg.idle_block_ms if block_ms is None else block_ms
            msgs += self.bus.read(self.stream, self.group, self.consumer, self.cfg.max_batch - len(msgs), wait)
        if not msgs:
            return StepResult(0, 0, 0, 0)
        t0 = time.perf_counter()
        self.counters.consumed += len(msgs)
        outcomes: list[Outcome] = []
        done: list[str] = []
        embs: list[Embedding] = []
        dead = 0
        announcer = self.announcer
        ann = announcer.begin() if announcer is not None else None
        for msg in msgs:
            try:
                emb = Embedding.from_bytes(msg.data)
                if self.forgotten and erasure.uid_hash(emb.track_uid) in self.forgotten:
                    self.forgotten_dropped += 1   # erased while in flight: must not bring the track back
                    done.append(msg.id)
                    continue
                if not self.keep_thumbnails and emb.thumbnail:
                    emb = replace(emb, thumbnail=b"")
                out = self.matcher.observe(emb)
                outcomes.append(out)
                if announcer is not None and ann is not None:
                    announcer.outcome(ann, out, self.matcher)
                embs.append(emb)
                done.append(msg.id)
            except ContractError as e:
                self._dead(msg, "contract", str(e))
                dead += 1
        try:
            records.save(self.store, outcomes, self.matcher.cfg.calibration.max_samples,
                         also=announcer.writer(ann) if announcer is not None and ann is not None else None)
        except StoreError as e:
            # the batch may or may not have committed (a connection lost at COMMIT): the rebuild reads
            # what did, and a redelivered clip already folded in is then recognised and only acked
            log.error("store write failed, %d entries stay pending for redelivery: %s", len(done), e)
            if announcer is not None and ann is not None:
                announcer.abort(ann)
            self._stale = True
            self.reload()
            self._stale = False
            raise
        if announcer is not None and ann is not None:   # durable now: tell the world (queued, never blocks)
            announcer.publish(ann)
        if self.crops is not None:   # after the commit, before the ack: a redelivery rewrites the same files
            self.crops.keep_embeddings(embs)
        self.bus.ack(self.stream, self.group, done)  # ack after the commit: a crash before this redelivers
        dup = sum(o.duplicate for o in outcomes)
        self.counters.published += len(outcomes) - dup
        self.counters.duplicates += dup
        self.counters.acked += len(done)
        self.counters.record_batch(len(msgs), time.perf_counter() - t0)
        return StepResult(len(msgs), len(outcomes) - dup, dup, dead)

    def _dead(self, msg: Message, code: str, detail: str) -> None:
        self.bus.dead_letter(self.stream, self.group, msg, f"{code}: {detail}")
        self.counters.dead_lettered[code] += 1

    def poll(self) -> int:
        """Embedded mode: link whatever embeddings are ready, without waiting."""
        return self.step(block_ms=0).consumed
