"""Clip preprocessing shared by evaluation and the inference encoder: sample T, resize, normalise.

One function for both so that what the re-ID worker feeds the model is exactly what the model was
evaluated on. Resizing uses PIL bicubic, as the reference's ``T.Resize(size, interpolation=3)`` on
PIL images; pixels go to [0, 1], then ``(x - mean) / std`` with the model's mean/std.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from models.errors import ContractError

SAMPLINGS = ("even", "reference")


def sample_indices(n: int, t: int, method: str = "even") -> np.ndarray:
    """T frame indices over a clip of ``n`` frames.

    ``even``: ``floor(i * n / t)`` for ``i < t``, spread end to end, repeating frames evenly when
    ``n < t`` (24 frames, T=10 -> 0 2 4 7 9 12 14 16 19 21; 3 frames -> 0 0 0 0 1 1 1 2 2 2).
    ``reference``: the reference test loader (``video_loader_vvi.py``, ``video_test``): every
    ``ceil(n / t)``-th frame clamped to the last (24, T=10 -> 0 3 6 .. 21 23 23), or all frames then
    the last one repeated when ``n < t`` (3 -> 0 1 2 2 2 2 2 2 2 2). For benchmark parity.
    """
    if n < 1 or t < 1:
        raise ContractError(f"need at least one frame and T >= 1, got n={n}, T={t}")
    if method == "even":
        return (np.arange(t) * n) // t
    if method == "reference":
        step = 1 if n < t else -(-n // t)
        return np.minimum(np.arange(t) * step, n - 1)
    raise ContractError(f"sampling must be one of {SAMPLINGS}, got {method!r}")


def as_rgb_uint8(crop: np.ndarray) -> np.ndarray:
    """Check a crop and give it 3 channels (single-channel thermal is replicated)."""
    if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8:
        raise ContractError(f"a crop must be a uint8 numpy array, got {type(crop).__name__} {getattr(crop, 'dtype', '')}")
    if crop.ndim == 2:
        crop = crop[:, :, None]
    if crop.ndim != 3 or crop.shape[2] not in (1, 3) or crop.shape[0] < 1 or crop.shape[1] < 1:
        raise ContractError(f"a crop must be HxWx3 (or HxW / HxWx1 thermal), got shape {crop.shape}")
    return np.repeat(crop, 3, axis=2) if crop.shape[2] == 1 else crop


def resize_crops(crops: Sequence[np.ndarray], input_hw: tuple[int, int]) -> np.ndarray:
    """(len(crops), H, W, 3) uint8 RGB crops resized to ``input_hw`` with PIL bicubic."""
    h, w = input_hw
    out = np.empty((len(crops), h, w, 3), dtype=np.uint8)
    for i, crop in enumerate(crops):
        rgb = as_rgb_uint8(crop)
        out[i] = rgb if rgb.shape[:2] == (h, w) else np.asarray(Image.fromarray(rgb).resize((w, h), Image.BICUBIC))
    return out


def normalize_frames(frames_u8: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32 ``(x / 255 - mean) / std``, on frames' device.

    Elementwise, so normalising a stacked batch gives bit-identical values to normalising each
    clip alone; the encoder does it once per batch (on the GPU when there is one).
    """
    x = frames_u8.movedim(-1, -3).float().div_(255.0)
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(3, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(3, 1, 1)
    return (x - m) / s


def crops_to_tensor(
    crops: Sequence[np.ndarray],
    input_hw: tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
) -> Tensor:
    """(len(crops), 3, H, W) float32 tensor of resized, normalised RGB crops."""
    return normalize_frames(torch.from_numpy(resize_crops(crops, input_hw)), mean, std)


def clip_to_uint8(crops: Sequence[np.ndarray], seq_len: int, input_hw: tuple[int, int],
                  sampling: str = "even") -> tuple[np.ndarray, int]:
    """One clip -> ((seq_len, H, W, 3) uint8 sampled and resized frames, true frame count)."""
    n = len(crops)
    idx = sample_indices(n, seq_len, sampling)
    unique, inverse = np.unique(idx, return_inverse=True)  # resize each chosen frame once
    return resize_crops([crops[i] for i in unique], input_hw)[inverse.reshape(-1)], n


def clip_to_tensor(
    crops: Sequence[np.ndarray],
    seq_len: int,
    input_hw: tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
    sampling: str = "even",
) -> tuple[Tensor, int]:
    """One clip -> ((seq_len, 3, H, W) float32 tensor, true frame count): evaluation preprocessing."""
    frames, n = clip_to_uint8(crops, seq_len, input_hw, sampling)
    return normalize_frames(torch.from_numpy(frames), mean, std), n
