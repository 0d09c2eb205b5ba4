"""Which tracklets go into a batch, and which frames of a tracklet go into a sequence.

Batches follow the reference's ``datasets/sampler_vvi.py`` ``IdentitySampler``: each batch holds P
distinct identities and, for each, K visible and K infrared tracklets drawn with replacement, so
every identity in a batch is present in both modalities. An epoch has
``min(#rgb, #ir) // (P*K)`` batches, as in the reference.

Frames follow the reference's video loaders: the tracklet is cut into T equal chunks (padded with
its last frame when shorter than T or not divisible); training draws one random frame per chunk
(restricted random sampling), testing takes the first frame of each chunk (evenly spaced).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np

from models.errors import ContractError


def frame_chunks(num_frames: int, seq_len: int) -> list[list[int]]:
    """The T chunks of frame indices that both sampling modes draw from."""
    if num_frames < 1 or seq_len < 1:
        raise ContractError(f"need num_frames >= 1 and seq_len >= 1, got {num_frames} and {seq_len}")
    if num_frames < seq_len:
        strip = list(range(num_frames)) + [num_frames - 1] * (seq_len - num_frames)
        return [[i] for i in strip]
    step = math.ceil(num_frames / seq_len)
    strip = list(range(num_frames)) + [num_frames - 1] * (step * seq_len - num_frames)
    return [strip[step * s: step * (s + 1)] for s in range(seq_len)]


def restricted_random_indices(num_frames: int, seq_len: int, rng: np.random.Generator) -> list[int]:
    """Training sampling: one random frame from each of the T chunks (in time order)."""
    return [int(chunk[rng.integers(len(chunk))]) for chunk in frame_chunks(num_frames, seq_len)]


def evenly_spaced_indices(num_frames: int, seq_len: int) -> list[int]:
    """Test sampling: the first frame of each chunk; repeats the last frame for short tracklets."""
    return [chunk[0] for chunk in frame_chunks(num_frames, seq_len)]


class VVIBatchSampler:
    """P identities × K tracklets per modality per batch, both modalities for every identity.

    Yields batches as lists of ``(rgb_index, ir_index)`` pairs (``P*K`` pairs, K consecutive
    pairs per identity) indexing the visible and infrared tracklet lists given at construction.
    Deterministic for a given ``seed`` and ``set_epoch`` value.
    """

    def __init__(self, rgb_pids: Sequence[int], ir_pids: Sequence[int], num_pids: int, num_instances: int,
                 seed: int = 0) -> None:
        if num_pids < 1 or num_instances < 1:
            raise ContractError(f"P and K must be >= 1, got P={num_pids} K={num_instances}")
        self.rgb_pos: dict[int, list[int]] = defaultdict(list)
        self.ir_pos: dict[int, list[int]] = defaultdict(list)
        for i, p in enumerate(rgb_pids):
            self.rgb_pos[int(p)].append(i)
        for i, p in enumerate(ir_pids):
            self.ir_pos[int(p)].append(i)
        self.pids = sorted(set(self.rgb_pos) & set(self.ir_pos))   # only identities seen in both modalities
        if len(self.pids) < num_pids:
            raise ContractError(f"P={num_pids} identities per batch, but only {len(self.pids)} identities "
                                "have both visible and infrared training tracklets")
        self.num_pids, self.num_instances, self.seed, self.epoch = num_pids, num_instances, seed, 0
        self.num_batches = min(len(rgb_pids), len(ir_pids)) // (num_pids * num_instances)
        if self.num_batches == 0:
            raise ContractError(f"too few tracklets for one batch of P*K={num_pids * num_instances}")

    def set_epoch(self, epoch: int) -> None:
        """Reseed so every epoch draws different batches, reproducibly."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        for _ in range(self.num_batches):
            batch = []
            for pid in rng.choice(self.pids, size=self.num_pids, replace=False):
                rgb = rng.choice(self.rgb_pos[int(pid)], size=self.num_instances)
                ir = rng.choice(self.ir_pos[int(pid)], size=self.num_instances)
                batch.extend((int(a), int(b)) for a, b in zip(rgb, ir, strict=True))
            yield batch
