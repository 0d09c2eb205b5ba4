"""The site centre an adapted checkpoint carries: what inference subtracts, and how adapt measures it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.errors import ContractError
from models.xreid import ReidEncoder, create_model
from models.xreid.checkpoint import load_checkpoint, save_checkpoint
from pipeline.adapt.site import SiteTrack
from pipeline.adapt.trainer import site_centre


def _tiny():
    torch.manual_seed(0)
    return create_model("xreid_tiny").eval()


def _clip(seed: int, model) -> torch.Tensor:
    h, w = model.cfg.input_hw
    return torch.randn(1, model.cfg.seq_len, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_inference_subtracts_the_modality_row_before_normalising():
    model = _tiny()
    x = _clip(1, model)
    raw = {m: F.normalize(model(x, torch.tensor([m])), dim=1) for m in (0, 1)}
    centre = torch.stack([raw[0][0] * 0.5, -raw[1][0] * 0.25])
    model.set_site_centre(centre)
    assert model.cfg.site_centre
    for m in (0, 1):
        out = model(x, torch.tensor([m]))
        assert torch.allclose(out, raw[m] - centre[m], atol=1e-5)
    # rgb: raw - raw/2 points where raw did; ir: raw + raw/4 as well: the rows are applied per modality
    assert torch.allclose(F.normalize(model(x, torch.tensor([0])), dim=1), raw[0], atol=1e-5)


def test_a_centred_checkpoint_has_its_own_model_id_and_round_trips(tmp_path):
    model = _tiny()
    plain_id = save_checkpoint(model, tmp_path / "plain.pt")
    model.set_site_centre(torch.full((2, model.embed_dim), 0.01))
    centred_id = save_checkpoint(model, tmp_path / "centred.pt")
    assert centred_id != plain_id, "vectors with and without a centre must never share a gallery"
    back = load_checkpoint(tmp_path / "centred.pt")
    assert back.model_id == centred_id and back.cfg.site_centre
    assert torch.equal(back.site_centre, model.site_centre)
    assert not load_checkpoint(tmp_path / "plain.pt").cfg.site_centre
    clip = [np.full((64, 32, 3), 120, np.uint8)] * 3
    a = ReidEncoder.from_model(model, centred_id).encode([clip], ["rgb"])
    b = ReidEncoder.from_model(back, centred_id).encode([clip], ["rgb"])
    assert np.allclose(a, b, atol=1e-6) and np.isclose(np.linalg.norm(a), 1.0, atol=1e-5)


def test_a_centre_of_the_wrong_shape_is_refused():
    model = _tiny()
    with pytest.raises(ContractError, match="site centre must be"):
        model.set_site_centre(torch.zeros(model.embed_dim))


def test_adapt_centre_is_the_mean_unit_clip_vector_per_modality_and_fills_a_missing_one():
    model = _tiny()
    h, w = model.cfg.input_hw
    rng = np.random.default_rng(0)

    def track(uid: str, segments: list[int]) -> SiteTrack:
        crops = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in segments]
        return SiteTrack(uid, "cam", "rgb", 0.0, 1.0, crops, segments)

    tracks = [track("a", [0, 0, 1]), track("b", [0, 0])]
    centre, clips = site_centre(model, tracks, model.cfg.seq_len)
    assert clips == {"rgb": 3, "ir": 0}, "one vector per kept clip (track, segment)"
    assert torch.equal(centre[1], centre[0]), "a modality the site never showed takes the shared mean"
    # by hand: each clip through the inference path, unit length, averaged
    from pipeline.adapt.trainer import embed

    vecs = []
    for t in tracks:
        for seg in sorted(set(t.segments)):
            crops = [c for c, s in zip(t.crops, t.segments, strict=True) if s == seg]
            idx = (np.arange(model.cfg.seq_len) * len(crops)) // model.cfg.seq_len   # the re-ID stage's even sampling
            v = embed(model, np.stack([crops[i] for i in idx])[None], ["rgb"])[0]
            vecs.append(F.normalize(v, dim=0))
    assert torch.allclose(centre[0], torch.stack(vecs).mean(0), atol=1e-5)
