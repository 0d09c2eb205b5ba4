"""The re-ID stage: clips from the bus → dynamic batches → encoder → ``Embedding``s → ack.

Runs in the embedded pipeline (a thread over ``MemoryBus``) and as the distributed re-ID worker
(over ``RedisBus``) unchanged. ``step`` handles one batch: take over stale entries, wait up to
``idle_block_ms`` for a first clip, then keep reading until ``max_batch`` clips or
``max_wait_ms`` have passed (dynamic batching across cameras), decode and check every clip,
encode the good ones in one call, publish one ``Embedding`` each, and only then ack.

A clip that cannot be embedded never stops the worker: it goes to the dead-letter stream with a
reason code (``contract``, ``undecodable_jpeg``, ``wrong_seq_len``, ``bad_shape``,
``encoder_error``), counted in ``counters.dead_lettered``. Redelivery is harmless: clip ids are
deterministic and the matcher folds each clip into its track once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from models.errors import ContractError
from pipeline.bus import GROUP_REID, STREAM_CLIPS, STREAM_EMBEDDINGS, Bus, Message
from pipeline.bus.messages import Clip, Embedding
from pipeline.config.settings import ReidCfg
from pipeline.ingest.image_input import ImageRejected, peek_header
from pipeline.reid.camera_index import camera_key
from pipeline.runtime.counters import StageCounters
from pipeline.runtime.stage_loop import StageLoop
from pipeline.store.crops import CropKeeper

log = logging.getLogger(__name__)


class Encoder(Protocol):
    """What the stage needs of an encoder (``models.xreid.encoder.ReidEncoder`` is one)."""

    model_id: str
    embed_dim: int
    seq_len: int

    def encode(self, clips: Sequence[Sequence[np.ndarray]], modalities: Sequence[str],
               camera_ids: Sequence[str] | None = None) -> np.ndarray:
        """(N, D) float32 L2-normalised vectors of N clips of RGB uint8 HxWx3 crops."""


class PoisonClip(ContractError):
    """A clip the encoder must not see; ``code`` is the dead-letter reason code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


@dataclass(frozen=True)
class StepResult:
    consumed: int
    published: int
    dead_lettered: int


@dataclass(frozen=True)
class _Ready:
    msg: Message
    clip: Clip
    crops: list[np.ndarray]


def decode_crops(clip: Clip, max_frames: int, min_px: int, max_px: int) -> list[np.ndarray]:
    """The clip's crops as RGB uint8 HxWx3 arrays; raises ``PoisonClip`` with the reason.

    A clip need not have exactly the model's T crops: the encoder samples T evenly (with
    repetition for short clips, XREID.md), so cameras configured for another T still get
    embeddings. Only a clip longer than any camera would cut is refused.

    Args:
        max_frames: the most crops a clip may carry.
        min_px, max_px: accepted crop side lengths.
    """
    if clip.seq_len > max_frames:
        raise PoisonClip("wrong_seq_len", f"clip {clip.clip_id} has {clip.seq_len} crops, at most {max_frames} "
                                          f"are accepted (reid.max_clip_frames)")
    crops = []
    for i, jpeg in enumerate(clip.frames):
        try:  # Clip holds only data starting with a JPEG SOI, so the one format this can read is JPEG
            header = peek_header(jpeg, f"clip {clip.clip_id} frame {i}")
        except ImageRejected as e:
            raise PoisonClip("undecodable_jpeg", str(e)) from None
        if not (min_px <= header.height <= max_px and min_px <= header.width <= max_px):
            # checked before decoding: a few hundred bytes can declare an image of gigabytes
            raise PoisonClip("bad_shape", f"clip {clip.clip_id} frame {i} declares {header.height}x{header.width}, "
                                          f"sides must be in [{min_px}, {max_px}]")
        try:
            img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)  # thermal gray -> 3 equal channels
        except cv2.error as e:  # a crafted JPEG header can make OpenCV raise instead of returning None
            raise PoisonClip("undecodable_jpeg", f"clip {clip.clip_id} frame {i}: {str(e).strip()[:200]}") from None
        if img is None:
            raise PoisonClip("undecodable_jpeg", f"clip {clip.clip_id} frame {i} is not a decodable JPEG")
        h, w = img.shape[:2]
        if img.ndim != 3 or img.shape[2] != 3 or not (min_px <= h <= max_px and min_px <= w <= max_px):
            raise PoisonClip("bad_shape", f"clip {clip.clip_id} frame {i} is {img.shape}, sides must be in "
                                          f"[{min_px}, {max_px}]")
        crops.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    return crops


class ReidStage(StageLoop):
    """Consume ``Clip``s, publish ``Embedding``s.

    Args:
        bus: the message bus (memory or Redis).
        encoder: anything with the ``Encoder`` surface.
        cfg: batching and crop limits.
        consumer: this worker's consumer name in the ``reid`` group.
        claim_idle_ms: entries pending longer than this on another consumer are taken over.
        crops: keeps some of each embedded clip's crops beside the store for ``xreid adapt`` (embedded mode).
    """

    def __init__(self, bus: Bus, encoder: Encoder, cfg: ReidCfg | None = None, consumer: str = "reid-0",
                 claim_idle_ms: int = 30_000, clips_stream: str = STREAM_CLIPS,
                 embeddings_stream: str = STREAM_EMBEDDINGS, group: str = GROUP_REID,
                 crops: CropKeeper | None = None) -> None:
        self.crops = crops
        self.bus, self.encoder, self.cfg = bus, encoder, cfg or ReidCfg()
        self.consumer, self.claim_idle_ms = consumer, claim_idle_ms
        self.clips_stream, self.embeddings_stream, self.group = clips_stream, embeddings_stream, group
        self.counters = StageCounters()
        self.bus.ensure_group(clips_stream, group)

    # ------------------------------------------------------------------ batching

    def _collect(self, block_ms: int, wait_ms: int) -> list[Message]:
        cap = self.cfg.max_batch
        msgs = self.bus.claim_stale(self.clips_stream, self.group, self.consumer, self.claim_idle_ms, cap)
        if len(msgs) < cap:
            msgs += self.bus.read(self.clips_stream, self.group, self.consumer, cap - len(msgs),
                                  0 if msgs else block_ms)
        if not msgs:
            return msgs
        deadline = time.monotonic() + wait_ms / 1000.0
        while len(msgs) < cap:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                break
            more = self.bus.read(self.clips_stream, self.group, self.consumer, cap - len(msgs), left_ms)
            if not more:
                break
            msgs += more
        return msgs

    # ------------------------------------------------------------------ one batch

    def step(self, block_ms: int | None = None, wait_ms: int | None = None) -> StepResult:
        """One batch: read/claim → decode → encode → publish → ack; returns its counts.

        Args:
            block_ms: how long to wait for a first clip (default ``cfg.idle_block_ms``).
            wait_ms: how long to keep filling the batch after it (default ``cfg.max_wait_ms``).
        """
        msgs = self._collect(self.cfg.idle_block_ms if block_ms is None else block_ms,
                             self.cfg.max_wait_ms if wait_ms is None else wait_ms)
        if not msgs:
            return StepResult(0, 0, 0)
        t0 = time.perf_counter()
        self.counters.consumed += len(msgs)
        ready: list[_Ready] = []
        dead = 0
        for msg in msgs:
            try:
                clip = Clip.from_bytes(msg.data)
                crops = decode_crops(clip, self.cfg.max_clip_frames, self.cfg.min_crop_px, self.cfg.max_crop_px)
                ready.append(_Ready(msg, clip, crops))
            except PoisonClip as e:
                self._dead(msg, e.code, str(e))
                dead += 1
            except ContractError as e:
                self._dead(msg, "contract", str(e))
                dead += 1
        vectors, ready, failed = self._encode(ready)
        dead += failed
        for item, vec in zip(ready, vectors, strict=True):
            self.bus.publish(self.embeddings_stream, self._embedding(item.clip, vec).to_bytes())
            if self.crops is not None:
                self.crops.keep_clip(item.clip)
        # ack only after every embedding of the batch is published: a crash before this redelivers
        self.bus.ack(self.clips_stream, self.group, [item.msg.id for item in ready])
        self.counters.published += len(ready)
        self.counters.acked += len(ready)
        self.counters.record_batch(len(msgs), time.perf_counter() - t0)
        return StepResult(len(msgs), len(ready), dead)

    def _encode(self, ready: list[_Ready]) -> tuple[np.ndarray, list[_Ready], int]:
        """Encode the batch; if the encoder refuses it, isolate the clip(s) at fault one by one."""
        if not ready:
            return np.empty((0, self.encoder.embed_dim), np.float32), ready, 0
        try:
            return self._checked(ready), ready, 0
        except (ContractError, RuntimeError, ValueError) as e:
            if len(ready) == 1:
                self._dead(ready[0].msg, "encoder_error", f"clip {ready[0].clip.clip_id}: {e}")
                return np.empty((0, self.encoder.embed_dim), np.float32), [], 1
            log.warning("encoder refused a batch of %d clips (%s); retrying one by one", len(ready), e)
        kept, vecs, failed = [], [], 0
        for item in ready:
            v, ok, f = self._encode([item])
            kept += ok
            vecs.append(v)
            failed += f
        return np.concatenate(vecs), kept, failed

    def _checked(self, ready: list[_Ready]) -> np.ndarray:
        # a day/night camera is one camera per modality to the model (pipeline/reid/camera_index.py)
        vectors = self.encoder.encode([r.crops for r in ready], [r.clip.modality for r in ready],
                                      [camera_key(r.clip.camera_id, r.clip.modality) for r in ready])
        vectors = np.asarray(vectors)
        if vectors.shape != (len(ready), self.encoder.embed_dim) or vectors.dtype != np.float32:
            raise ContractError(f"encoder returned {vectors.shape} {vectors.dtype} for {len(ready)} clips")
        norms = np.linalg.norm(vectors, axis=1)
        if not np.all(np.abs(norms - 1.0) < 1e-3):
            raise ContractError(f"encoder returned vectors that are not L2-normalised (norms {norms.min():.3f}..{norms.max():.3f})")
        return vectors

    def _embedding(self, clip: Clip, vector: np.ndarray) -> Embedding:
        thumb = clip.frames[int(np.argmax(clip.det_scores))]
        return Embedding(clip.clip_id, clip.camera_id, clip.modality, clip.track_uid, clip.segment, clip.t_start,
                         clip.t_end, np.ascontiguousarray(vector, dtype=np.float32), self.encoder.model_id, thumb)

    def _dead(self, msg: Message, code: str, detail: str) -> None:
        self.bus.dead_letter(self.clips_stream, self.group, msg, detail if detail.startswith(code) else f"{code}: {detail}")
        self.counters.dead_lettered[code] += 1

    def poll(self) -> int:
        """Embedded mode: embed whatever clips are ready, without waiting; returns how many were read."""
        return self.step(block_ms=0, wait_ms=0).consumed
