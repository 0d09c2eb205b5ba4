"""ReidEncoder: clips of person crops in, L2-normalised float32 X-ReID embeddings out.

What the re-ID worker holds: one eval-mode ``XReID``, its ``model_id``, and the evaluation
preprocessing. Clips of any length and crop size are sampled to the model's T, stacked and run in
batches of ``max_batch`` under ``torch.inference_mode`` (and autocast bf16/fp16 on CUDA). Every
clip's vector depends only on that clip: eval-mode BN uses running statistics and attention never
crosses sequences.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.errors import ContractError
from models.xreid.model import MODALITIES, XReID
from models.xreid.preprocess import SAMPLINGS, clip_to_uint8, normalize_frames

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodedClips:
    """Embeddings of N clips and how many real frames each clip had."""

    vectors: np.ndarray  # (N, D) float32, L2-normalised
    frame_counts: np.ndarray  # (N,) int, true number of crops per clip (before sampling to T)
    model_id: str

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.vectors.dtype != np.float32:
            raise ContractError(f"EncodedClips.vectors must be (N, D) float32, got {self.vectors.shape} {self.vectors.dtype}")
        if self.frame_counts.shape != (self.vectors.shape[0],):
            raise ContractError("EncodedClips.frame_counts must have one entry per vector")


class _Done:
    """An already-computed result with the ``Future.result()`` interface (inline preprocessing)."""

    def __init__(self, value) -> None:
        self._value = value

    def result(self):
        return self._value


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class ReidEncoder:
    """Batched, inference-only wrapper around an ``XReID``.

    Args:
        model: the network (put in eval mode and moved to ``device`` here).
        model_id: name + checkpoint hash travelling with every vector.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``...
        amp: autocast on CUDA (bf16 where supported, else fp16); CPU always runs fp32.
        compile: wrap the model in ``torch.compile`` (True: default backend; a string names the backend).
        max_batch: sequences per forward pass.
        camera_index: deployed camera id -> training camera index, for cameras that were in
            training; every other camera is unseen (modality mean or zero embedding, per config).
        sampling: how T frames are picked from a clip: ``even`` (default) or ``reference`` (the
            reference test loader; see ``preprocess.sample_indices``).
        preprocess_workers: threads resizing crops (default: up to 4, one per CPU); 1 = inline.
        cpu_bf16: on CPU, run a bfloat16 copy of the model (fast on CPUs with AMX / AVX512-BF16;
            vectors differ from fp32 by ~1e-3 cosine). Off by default: CPU otherwise runs fp32.
    """

    def __init__(self, model: XReID, model_id: str, device: str | torch.device = "cpu", amp: bool = True,
                 compile: bool | str = False, max_batch: int = 32, camera_index: Mapping[str, int] | None = None,
                 sampling: str = "even", preprocess_workers: int | None = None, cpu_bf16: bool = False) -> None:
        if max_batch < 1:
            raise ContractError(f"max_batch must be >= 1, got {max_batch}")
        if sampling not in SAMPLINGS:
            raise ContractError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        self.sampling = sampling
        self.preprocess_workers = preprocess_workers or min(4, os.cpu_count() or 1)
        self.device = resolve_device(device)
        self.cpu_bf16 = cpu_bf16 and self.device.type == "cpu"
        if hasattr(model.backbone, "optimize_for_inference"):
            # fold BN, channels-last: changes the module tree, so on a copy; the caller's model stays trainable
            model = copy.deepcopy(model).eval()
            model.backbone.optimize_for_inference()
        if self.cpu_bf16:
            model = copy.deepcopy(model).to(torch.bfloat16)  # leave the caller's fp32 model alone
        self.model = model.eval().to(self.device)
        self.model_id = model_id
        self.embed_dim: int = model.embed_dim
        self.seq_len: int = model.cfg.seq_len
        self.input_hw: tuple[int, int] = tuple(model.cfg.input_hw)
        self.max_batch = max_batch
        self.camera_index = dict(camera_index or {})
        self.amp_dtype: torch.dtype | None = None
        if amp and self.device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if compile:
            self._forward = torch.compile(self.model, **({"backend": compile} if isinstance(compile, str) else {}))
        else:
            self._forward = self.model

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", amp: bool = True, compile: bool | str = False,
                        **kwargs) -> ReidEncoder:
        """Load one of our checkpoints (see ``models.xreid.checkpoint``)."""
        from models.xreid.checkpoint import load_checkpoint

        model = load_checkpoint(path)
        return cls(model, model.model_id, device=device, amp=amp, compile=compile, **kwargs)

    @classmethod
    def from_model(cls, model: XReID, model_id: str, device: str = "cpu", amp: bool = True, compile: bool | str = False,
                   **kwargs) -> ReidEncoder:
        """Wrap an in-memory model (tests, benchmarks, right after training)."""
        return cls(model, model_id, device=device, amp=amp, compile=compile, **kwargs)

    def encode(self, clips: Sequence[Sequence[np.ndarray]], modalities: Sequence[str],
               camera_ids: Sequence[str] | None = None) -> np.ndarray:
        """(N, D) float32 L2-normalised embeddings of N clips.

        Args:
            clips: each a list of T_i >= 1 RGB uint8 HxWx3 crops (HxW thermal is replicated), any size.
            modalities: ``rgb`` or ``ir`` per clip.
            camera_ids: deployed camera id per clip (see ``camera_index``); None = all unseen.
        """
        return self.encode_detailed(clips, modalities, camera_ids).vectors

    def encode_detailed(self, clips: Sequence[Sequence[np.ndarray]], modalities: Sequence[str],
                        camera_ids: Sequence[str] | None = None) -> EncodedClips:
        """Like ``encode``, also returning each clip's true frame count."""
        n = len(clips)
        if len(modalities) != n or (camera_ids is not None and len(camera_ids) != n):
            raise ContractError(f"{n} clips need {n} modalities (got {len(modalities)}) and camera ids")
        bad = sorted({m for m in modalities if m not in MODALITIES})
        if bad:
            raise ContractError(f"modality must be one of {MODALITIES}, got {bad}")
        if any(len(c) == 0 for c in clips):
            raise ContractError("every clip needs at least one crop")
        vectors = np.empty((n, self.embed_dim), dtype=np.float32)
        counts = np.empty(n, dtype=np.int64)
        chunks = [(start, min(start + self.max_batch, n)) for start in range(0, n, self.max_batch)]
        workers = min(self.preprocess_workers, n)
        with ThreadPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
            def submit(chunk: tuple[int, int]) -> list:
                items = clips[chunk[0]:chunk[1]]
                if pool is None:
                    return [_Done(self._prepare(c)) for c in items]
                return [pool.submit(self._prepare, c) for c in items]

            pending = submit(chunks[0]) if chunks else []
            for k, (start, stop) in enumerate(chunks):
                prepared = [f.result() for f in pending]
                # resize the next batch's crops (PIL drops the GIL) while the model runs this one
                pending = submit(chunks[k + 1]) if k + 1 < len(chunks) else []
                counts[start:stop] = [c for _, c in prepared]
                frames_u8 = torch.from_numpy(np.stack([f for f, _ in prepared]))
                modality = torch.tensor([MODALITIES.index(m) for m in modalities[start:stop]], dtype=torch.long)
                camera = None
                if camera_ids is not None:
                    camera = torch.tensor([self.camera_index.get(c, -1) for c in camera_ids[start:stop]],
                                          dtype=torch.long)
                vectors[start:stop] = self.embed_uint8(frames_u8, modality, camera)
        return EncodedClips(vectors=vectors, frame_counts=counts, model_id=self.model_id)

    def _prepare(self, clip: Sequence[np.ndarray]) -> tuple[np.ndarray, int]:
        return clip_to_uint8(clip, self.seq_len, self.input_hw, self.sampling)

    def embed_uint8(self, frames_u8: torch.Tensor, modality: torch.Tensor, camera: torch.Tensor | None = None) -> np.ndarray:
        """(B, T, H, W, 3) uint8 sampled, resized frames -> (B, D) float32 L2-normalised array.

        uint8 travels to the device (4x less than float32) and is normalised there.
        """
        frames_u8 = frames_u8.to(self.device, non_blocking=True)
        cfg = self.model.cfg
        return self.embed_tensor(normalize_frames(frames_u8, cfg.pixel_mean, cfg.pixel_std), modality, camera)

    def embed_tensor(self, frames: torch.Tensor, modality: torch.Tensor, camera: torch.Tensor | None = None) -> np.ndarray:
        """(B, T, 3, H, W) preprocessed frames -> (B, D) float32 L2-normalised numpy array."""
        with torch.inference_mode():
            frames = frames.to(self.device, non_blocking=True)
            if self.cpu_bf16:
                frames = frames.to(torch.bfloat16)
            modality = modality.to(self.device)
            camera = None if camera is None else camera.to(self.device)
            if self.amp_dtype is not None:
                with torch.autocast(self.device.type, dtype=self.amp_dtype):
                    emb = self._forward(frames, modality, camera)
            else:
                emb = self._forward(frames, modality, camera)
            return F.normalize(emb.float(), dim=1).cpu().numpy()
