"""ReidEncoder on the tiny config: preprocessing, sampling, batching, normalisation, cameras."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.errors import ContractError
from models.xreid import ReidEncoder, create_model, save_checkpoint
from models.xreid.preprocess import clip_to_tensor, sample_indices


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = create_model("xreid_tiny").eval()
    g = torch.Generator().manual_seed(5)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm1d):
            mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
    return m


def crops(n: int, seed: int, hw: tuple[int, int] | None = None) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h, w = hw or (int(rng.integers(40, 200)), int(rng.integers(20, 90)))
        out.append(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))
    return out


def test_sample_indices_spread_evenly_and_repeat_short_clips() -> None:
    assert sample_indices(24, 10).tolist() == [0, 2, 4, 7, 9, 12, 14, 16, 19, 21]
    assert sample_indices(3, 10).tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert sample_indices(1, 4).tolist() == [0, 0, 0, 0]
    assert sample_indices(4, 4).tolist() == [0, 1, 2, 3]
    with pytest.raises(ContractError):
        sample_indices(0, 4)


def test_reference_sampling_matches_the_reference_test_loader() -> None:
    assert sample_indices(24, 10, "reference").tolist() == [0, 3, 6, 9, 12, 15, 18, 21, 23, 23]
    assert sample_indices(3, 10, "reference").tolist() == [0, 1, 2, 2, 2, 2, 2, 2, 2, 2]
    assert sample_indices(10, 10, "reference").tolist() == list(range(10))
    with pytest.raises(ContractError):
        sample_indices(5, 4, "random")


def test_encode_returns_unit_float32_vectors_for_clips_of_any_length_and_size(model) -> None:
    enc = ReidEncoder.from_model(model, "xreid_tiny.test", device="cpu")
    assert (enc.embed_dim, enc.seq_len, enc.input_hw, enc.model_id) == (model.embed_dim, 4, (64, 32), "xreid_tiny.test")
    clips = [crops(1, 0), crops(3, 1), crops(9, 2), crops(4, 3)]
    result = enc.encode_detailed(clips, ["rgb", "ir", "ir", "rgb"])
    assert result.vectors.shape == (4, model.embed_dim) and result.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)
    assert result.frame_counts.tolist() == [1, 3, 9, 4]
    assert result.model_id == "xreid_tiny.test"
    assert np.array_equal(enc.encode(clips, ["rgb", "ir", "ir", "rgb"]), result.vectors)


def test_encoder_matches_model_on_evaluation_preprocessing(model) -> None:
    enc = ReidEncoder.from_model(model, "m", device="cpu")
    clip = crops(6, 7)
    x, n = clip_to_tensor(clip, 4, (64, 32), model.cfg.pixel_mean, model.cfg.pixel_std)
    assert x.shape == (4, 3, 64, 32) and n == 6
    with torch.no_grad():
        expected = F.normalize(model(x[None], torch.tensor([1])), dim=1)[0].numpy()
    assert np.abs(enc.encode([clip], ["ir"])[0] - expected).max() < 1e-6


def test_embedding_independent_of_batch_companions_and_chunking(model) -> None:
    clips = [crops(int(n), 10 + i) for i, n in enumerate([2, 5, 1, 7, 3])]
    mods = ["rgb", "ir", "rgb", "ir", "ir"]
    big = ReidEncoder.from_model(model, "m", device="cpu", max_batch=32).encode(clips, mods)
    small = ReidEncoder.from_model(model, "m", device="cpu", max_batch=2).encode(clips, mods)
    alone = np.stack([ReidEncoder.from_model(model, "m").encode([c], [m])[0] for c, m in zip(clips, mods, strict=True)])
    assert np.abs(big - small).max() < 1e-5
    assert np.abs(big - alone).max() < 1e-5


def test_single_channel_thermal_crops_are_replicated(model) -> None:
    enc = ReidEncoder.from_model(model, "m")
    gray = [c[:, :, 0] for c in crops(3, 4, hw=(80, 40))]
    rgb = [np.repeat(g[:, :, None], 3, axis=2) for g in gray]
    assert np.array_equal(enc.encode([gray], ["ir"]), enc.encode([rgb], ["ir"]))


def test_training_cameras_map_through_camera_index_and_others_are_unseen(model) -> None:
    enc = ReidEncoder.from_model(model, "m", camera_index={"cam-A": 1})
    clip = crops(4, 5)
    known = enc.encode([clip], ["rgb"], camera_ids=["cam-A"])
    unseen = enc.encode([clip], ["rgb"], camera_ids=["gate-7"])
    default = enc.encode([clip], ["rgb"])
    assert np.abs(known - unseen).max() > 1e-4
    assert np.array_equal(unseen, default)


def test_bad_inputs_are_contract_errors(model) -> None:
    enc = ReidEncoder.from_model(model, "m")
    with pytest.raises(ContractError, match="modality"):
        enc.encode([crops(2, 0)], ["thermal"])
    with pytest.raises(ContractError, match="at least one crop"):
        enc.encode([[]], ["rgb"])
    with pytest.raises(ContractError):
        enc.encode([crops(2, 0)], ["rgb", "ir"])
    with pytest.raises(ContractError, match="uint8"):
        enc.encode([[np.zeros((10, 10, 3), dtype=np.float32)]], ["rgb"])
    with pytest.raises(ContractError, match="HxWx3"):
        enc.encode([[np.zeros((10, 10, 4), dtype=np.uint8)]], ["rgb"])


def test_from_checkpoint_carries_model_id(model, tmp_path) -> None:
    model_id = save_checkpoint(model, tmp_path / "m.pt")
    enc = ReidEncoder.from_checkpoint(tmp_path / "m.pt", device="auto")
    assert enc.model_id == model_id
    clip = crops(3, 9)
    ref = ReidEncoder.from_model(model, model_id).encode([clip], ["rgb"])
    assert np.abs(enc.encode([clip], ["rgb"]) - ref).max() < 1e-6


def test_threaded_preprocessing_gives_identical_vectors(model) -> None:
    clips = [crops(int(n), 40 + i) for i, n in enumerate([3, 6, 1, 4, 5])]
    mods = ["ir", "rgb", "ir", "rgb", "rgb"]
    inline = ReidEncoder.from_model(model, "m", max_batch=2, preprocess_workers=1).encode_detailed(clips, mods)
    pooled = ReidEncoder.from_model(model, "m", max_batch=2, preprocess_workers=3).encode_detailed(clips, mods)
    assert np.array_equal(inline.vectors, pooled.vectors)
    assert inline.frame_counts.tolist() == pooled.frame_counts.tolist() == [3, 6, 1, 4, 5]


def test_cpu_bf16_copy_is_close_to_fp32_and_leaves_the_model_fp32(model) -> None:
    clips = [crops(4, 60), crops(2, 61)]
    fp32 = ReidEncoder.from_model(model, "m").encode(clips, ["rgb", "ir"])
    bf16 = ReidEncoder.from_model(model, "m", cpu_bf16=True).encode(clips, ["rgb", "ir"])
    assert bf16.dtype == np.float32
    assert (fp32 * bf16).sum(1).min() > 0.99  # cosine of unit vectors
    assert next(model.parameters()).dtype == torch.float32


def test_compiled_encoder_gives_the_same_vectors(model) -> None:
    clips = [crops(3, 70), crops(5, 71)]
    plain = ReidEncoder.from_model(model, "m").encode(clips, ["rgb", "ir"])
    compiled = ReidEncoder.from_model(model, "m", compile="eager").encode(clips, ["rgb", "ir"])
    assert np.abs(plain - compiled).max() < 1e-5
