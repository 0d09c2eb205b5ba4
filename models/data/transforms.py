"""Sequence transforms: the same geometric/erasing draw is applied to every frame of a sequence.

Training (reference ``make_dataloader_clipreid_vvi.py``): resize to the input size, random
horizontal flip, random erasing, to tensor, normalise. Testing: resize, to tensor, normalise.
Resizing and normalising go through ``models.xreid.preprocess.crops_to_tensor``, the function the
deployed encoder uses, so training, evaluation and inference see identical pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from models.errors import ContractError
from models.xreid.preprocess import crops_to_tensor


class SequenceTransform:
    """uint8 RGB frames (H, W, 3) → float tensor (T, 3, H', W'), normalised.

    Args:
        size_hw: output (height, width).
        mean, std: per-channel normalisation on [0, 1] pixels.
        train: enable the random flip and erasing.
        flip_p: probability of flipping the whole sequence.
        erase_p: probability of erasing one rectangle (same place in every frame).
    """

    def __init__(self, size_hw: tuple[int, int], mean: Sequence[float], std: Sequence[float], train: bool,
                 flip_p: float = 0.5, erase_p: float = 0.5) -> None:
        if len(size_hw) != 2 or min(size_hw) < 1:
            raise ContractError(f"size_hw must be (height, width) > 0, got {size_hw}")
        self.size_hw = (int(size_hw[0]), int(size_hw[1]))
        self.mean_t, self.std_t = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        self.train, self.flip_p, self.erase_p = train, flip_p, erase_p

    def __call__(self, frames: Sequence[np.ndarray], rng: np.random.Generator | None = None) -> torch.Tensor:
        x = crops_to_tensor(frames, self.size_hw, self.mean_t, self.std_t)      # (T, 3, H, W)
        if self.train:
            rng = rng if rng is not None else np.random.default_rng()
            if rng.random() < self.flip_p:
                x = x.flip(-1)
            if rng.random() < self.erase_p:
                x = self._erase(x, rng)
        return x

    @staticmethod
    def _erase(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Random erasing (Zhong et al.): 2-40% of the area, aspect 0.3-3.3, filled with the mean."""
        h, w = x.shape[-2:]
        for _ in range(10):
            area = rng.uniform(0.02, 0.4) * h * w
            aspect = np.exp(rng.uniform(np.log(0.3), np.log(1 / 0.3)))
            eh, ew = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
            if 0 < eh < h and 0 < ew < w:
                y0, x0 = int(rng.integers(0, h - eh)), int(rng.integers(0, w - ew))
                x = x.clone()
                x[..., y0:y0 + eh, x0:x0 + ew] = 0.0                            # 0 = the mean after normalising
                return x
        return x
