"""Torch datasets over tracklets: paired visible/infrared training items and single test items."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from models.data.gray import GrayMode, to_gray
from models.data.sampler import evenly_spaced_indices, restricted_random_indices
from models.data.tracklet import IR, RGB, Tracklet
from models.data.transforms import SequenceTransform
from models.errors import ContractError


class FrameReader:
    """Decode frames to uint8 RGB, optionally resized once to the model input and kept in memory.

    Resizing here (PIL bicubic, as ``crops_to_tensor``) gives the same pixels as resizing later,
    so a cached dataset trains exactly like an uncached one, only faster.
    """

    def __init__(self, cache: bool = False, size_hw: tuple[int, int] | None = None) -> None:
        self.cache: dict[str, np.ndarray] | None = {} if cache else None
        self.size_hw = size_hw

    def __call__(self, path: str) -> np.ndarray:
        if self.cache is not None and path in self.cache:
            return self.cache[path]
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise ContractError(f"cannot read frame {path} ({'missing' if not Path(path).exists() else 'not an image'})")
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        if self.size_hw is not None and img.shape[:2] != tuple(self.size_hw):
            h, w = self.size_hw
            img = np.asarray(Image.fromarray(img).resize((w, h), Image.BICUBIC))
        if self.cache is not None:
            self.cache[path] = img
        return img


class PairedTrainDataset(Dataset):
    """Items are ``(rgb_index, ir_index)`` pairs from ``VVIBatchSampler``; returns both sequences."""

    def __init__(self, rgb: Sequence[Tracklet], ir: Sequence[Tracklet], seq_len: int, transform: SequenceTransform,
                 reader: FrameReader, seed: int = 0, rgb_grayscale_p: float = 0.0,
                 rgb_gray_mode: GrayMode = "luminance") -> None:
        self.rgb, self.ir, self.seq_len = list(rgb), list(ir), seq_len
        self.transform, self.reader = transform, reader
        self.rng = np.random.default_rng(seed)
        self.rgb_grayscale_p = rgb_grayscale_p
        self.rgb_gray_mode = rgb_gray_mode

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return min(len(self.rgb), len(self.ir))

    def _clip(self, t: Tracklet) -> torch.Tensor:
        idx = restricted_random_indices(len(t.frames), self.seq_len, self.rng)
        frames = [self.reader(t.frames[i]) for i in idx]
        if t.modality == RGB and self.rgb_grayscale_p > 0 and self.rng.random() < self.rgb_grayscale_p:
            # colour is the visible modality's shortcut; grey sequences push toward shared cues
            frames = to_gray(frames, self.rgb_gray_mode, self.rng)
        return self.transform(frames, self.rng)

    def __getitem__(self, pair: tuple[int, int]) -> dict:
        rgb, ir = self.rgb[pair[0]], self.ir[pair[1]]
        return {"rgb": self._clip(rgb), "ir": self._clip(ir), "rgb_pid": rgb.pid, "ir_pid": ir.pid,
                "rgb_cam": rgb.camid, "ir_cam": ir.camid}


def collate_pairs(items: list[dict]) -> dict[str, torch.Tensor]:
    """Stack a batch as the reference does: infrared sequences first, then visible ones.

    Returns ``frames`` (2B, T, 3, H, W), ``pids``, ``camids`` and ``modality`` (2B,) long tensors.
    """
    b = len(items)
    frames = torch.stack([it["ir"] for it in items] + [it["rgb"] for it in items])
    pids = torch.tensor([it["ir_pid"] for it in items] + [it["rgb_pid"] for it in items], dtype=torch.long)
    cams = torch.tensor([it["ir_cam"] for it in items] + [it["rgb_cam"] for it in items], dtype=torch.long)
    modality = torch.tensor([IR] * b + [RGB] * b, dtype=torch.long)
    return {"frames": frames, "pids": pids, "camids": cams, "modality": modality}


class TestDataset(Dataset):
    """One item per tracklet, T evenly spaced frames (the reference's test sampling)."""

    def __init__(self, tracklets: Sequence[Tracklet], seq_len: int, transform: SequenceTransform,
                 reader: FrameReader) -> None:
        self.tracklets, self.seq_len, self.transform, self.reader = list(tracklets), seq_len, transform, reader

    def __len__(self) -> int:
        return len(self.tracklets)

    def __getitem__(self, i: int) -> dict:
        t = self.tracklets[i]
        idx = evenly_spaced_indices(len(t.frames), self.seq_len)
        return {"frames": self.transform([self.reader(t.frames[j]) for j in idx]), "pid": t.pid,
                "camid": t.camid, "modality": t.modality}


def collate_test(items: list[dict]) -> dict[str, torch.Tensor]:
    return {"frames": torch.stack([it["frames"] for it in items]),
            "pids": torch.tensor([it["pid"] for it in items], dtype=torch.long),
            "camids": torch.tensor([it["camid"] for it in items], dtype=torch.long),
            "modality": torch.tensor([it["modality"] for it in items], dtype=torch.long)}
