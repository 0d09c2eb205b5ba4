"""P×K visible-infrared batches and the reference's frame sampling."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from models.data.sampler import VVIBatchSampler, evenly_spaced_indices, frame_chunks, restricted_random_indices
from models.errors import ContractError


def _labels():
    rgb = [p for p in range(10) for _ in range(3)]          # 30 visible tracklets
    ir = [p for p in range(10) for _ in range(2)] + [10]   # 21 infrared; pid 10 has no visible tracklet
    return rgb, ir


def test_every_identity_in_a_batch_has_k_tracklets_in_both_modalities():
    rgb, ir = _labels()
    sampler = VVIBatchSampler(rgb, ir, num_pids=4, num_instances=2, seed=1)
    assert len(sampler) == 21 // 8
    batches = list(sampler)
    assert len(batches) == len(sampler)
    for batch in batches:
        assert len(batch) == 8
        rgb_pids = Counter(rgb[a] for a, _ in batch)
        ir_pids = Counter(ir[b] for _, b in batch)
        assert rgb_pids == ir_pids                           # same identities, same counts, both modalities
        assert len(rgb_pids) == 4 and set(rgb_pids.values()) == {2}
        assert all(rgb[a] == ir[b] for a, b in batch)        # each pair is one identity
        assert 10 not in ir_pids                             # never an identity missing a modality


def test_sampler_is_deterministic_per_seed_and_epoch():
    rgb, ir = _labels()
    a = VVIBatchSampler(rgb, ir, 4, 2, seed=3)
    b = VVIBatchSampler(rgb, ir, 4, 2, seed=3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first


def test_sampler_rejects_too_few_identities():
    with pytest.raises(ContractError, match="both visible and infrared"):
        VVIBatchSampler([0, 1], [0, 2], num_pids=2, num_instances=1)


@pytest.mark.parametrize("num", [1, 3, 10, 24, 25, 37])
def test_frame_sampling_invariants(num):
    t = 10
    chunks = frame_chunks(num, t)
    assert len(chunks) == t and all(0 <= i < num for c in chunks for i in c)
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = restricted_random_indices(num, t, rng)
        assert len(idx) == t and idx == sorted(idx)
        assert all(i in c for i, c in zip(idx, chunks, strict=True))
    even = evenly_spaced_indices(num, t)
    assert even == [c[0] for c in chunks] and even == sorted(even)


def test_short_tracklets_repeat_the_last_frame_and_long_ones_are_spread():
    assert evenly_spaced_indices(3, 5) == [0, 1, 2, 2, 2]
    assert evenly_spaced_indices(24, 10) == [0, 3, 6, 9, 12, 15, 18, 21, 23, 23]   # ceil(24/10)=3, padded
    assert evenly_spaced_indices(20, 10) == list(range(0, 20, 2))
