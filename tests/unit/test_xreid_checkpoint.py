"""Checkpoints: our format round-trips and is hash-checked; reference checkpoints load by key map.

The reference-layout test writes a state dict with the reference repository's parameter names and
shapes (``make_model_clipreid.py`` ``build_transformer`` for the tiny config), loads it, checks
every tensor landed where the table says, and compares our eval output with an independent
functional re-implementation of the reference's eval forward that reads the reference keys.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from models.errors import ContractError, WeightsNotFound
from models.xreid import create_model, load_checkpoint, load_reference_checkpoint, save_checkpoint
from models.xreid.checkpoint import file_sha256
from models.xreid.ref_keys import OURS_ONLY, map_reference_key

W, P, LAYERS, HEADS, MII_HEADS, GRID, CAMS, CLASSES = 64, 32, 2, 4, 4, (4, 2), 4, 6


def frames(b: int, t: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, t, 3, 64, 32, generator=torch.Generator().manual_seed(seed))


def test_save_load_round_trip_gives_identical_outputs(tmp_path) -> None:
    torch.manual_seed(0)
    model = create_model("xreid_tiny", num_classes=5).eval()
    model.set_camera_modalities(torch.tensor([[1, 0], [1, 1], [0, 1], [0, 1]], dtype=torch.bool))
    path = tmp_path / "m.pt"
    model_id = save_checkpoint(model, path, extra={"epoch": 3})
    assert model_id.startswith("xreid_tiny.") and model.model_id == model_id
    loaded = load_checkpoint(path)
    assert loaded.model_id == model_id and loaded.cfg == model.cfg and not loaded.training
    x, m, cam = frames(3, 4), torch.tensor([0, 1, 1]), torch.tensor([-1, 2, -1])
    with torch.no_grad():
        assert torch.equal(model(x, m, cam), loaded(x, m, cam))
    assert save_checkpoint(loaded, tmp_path / "again.pt") == model_id  # same content, same id


def test_model_id_changes_with_weights(tmp_path) -> None:
    torch.manual_seed(0)
    model = create_model("xreid_tiny")
    first = save_checkpoint(model, tmp_path / "a.pt")
    with torch.no_grad():
        model.camera_embed[0, 0] += 1.0
    assert save_checkpoint(model, tmp_path / "b.pt") != first


def test_tampered_or_mismatched_checkpoint_is_refused(tmp_path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "m.pt"
    save_checkpoint(create_model("xreid_tiny"), path)
    good_sha = file_sha256(path)
    assert load_checkpoint(path, sha256=good_sha).model_id
    with pytest.raises(ContractError, match="sha256"):
        load_checkpoint(path, sha256="0" * 64)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["camera_embed"][0, 0] += 1.0
    torch.save(payload, path)
    with pytest.raises(ContractError, match="hash mismatch"):
        load_checkpoint(path)
    with pytest.raises(WeightsNotFound):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ContractError, match="not an xreid checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


# ----------------------------------------------------------------------------- reference layout
def reference_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Reference ``build_transformer.state_dict()`` names and shapes, tiny dims, random values."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, scale: float = 0.05) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    def bn(prefix: str, d: int) -> dict[str, torch.Tensor]:
        return {f"{prefix}.weight": 1 + r(d), f"{prefix}.bias": r(d), f"{prefix}.running_mean": r(d),
                f"{prefix}.running_var": 0.5 + torch.rand(d, generator=g), f"{prefix}.num_batches_tracked": torch.tensor(7)}

    def ln(prefix: str, d: int) -> dict[str, torch.Tensor]:
        return {f"{prefix}.weight": 1 + r(d), f"{prefix}.bias": r(d)}

    def rotation(prefix: str) -> dict[str, torch.Tensor]:
        s = {**ln(f"{prefix}.norm1", W), **ln(f"{prefix}.attn.normy", W), **ln(f"{prefix}.norm2", W)}
        for name in ("q_", "k_", "v_"):
            s[f"{prefix}.attn.{name}.weight"] = r(W, W, scale=0.2)
        s |= {f"{prefix}.attn.proj.weight": r(W, W, scale=0.2), f"{prefix}.attn.proj.bias": r(W),
              f"{prefix}.mlp.fc1.weight": r(4 * W, W, scale=0.2), f"{prefix}.mlp.fc1.bias": r(4 * W),
              f"{prefix}.mlp.fc2.weight": r(W, 4 * W, scale=0.1), f"{prefix}.mlp.fc2.bias": r(W)}
        return s

    s: dict[str, torch.Tensor] = {
        "image_encoder.class_embedding": r(W, scale=0.5),
        "image_encoder.positional_embedding": r(1 + GRID[0] * GRID[1], W, scale=0.5),
        "image_encoder.proj": r(W, P, scale=0.2),
        "image_encoder.conv1.weight": r(W, 3, 16, 16, scale=0.02),
        "cv_embed": r(CAMS, W, scale=0.5),
        **ln("image_encoder.ln_pre", W), **ln("image_encoder.ln_post", W),
    }
    for i in range(LAYERS):
        p = f"image_encoder.transformer.resblocks.{i}"
        s |= {f"{p}.attn.in_proj_weight": r(3 * W, W, scale=0.2), f"{p}.attn.in_proj_bias": r(3 * W),
              f"{p}.attn.out_proj.weight": r(W, W, scale=0.2), f"{p}.attn.out_proj.bias": r(W),
              **ln(f"{p}.ln_1", W), **ln(f"{p}.ln_2", W),
              f"{p}.mlp.c_fc.weight": r(4 * W, W, scale=0.2), f"{p}.mlp.c_fc.bias": r(4 * W),
              f"{p}.mlp.c_proj.weight": r(W, 4 * W, scale=0.1), f"{p}.mlp.c_proj.bias": r(W)}
    s |= {"classifier_clip_temp.weight": r(CLASSES, W + P), "classifier_clip_frame.weight": r(CLASSES, W + P)}
    for name, d in (("bn_feat_temp", W), ("bn_feat_frame", W), ("bn_proj_temp", P), ("bn_proj_frame", P),
                    ("bottleneck_local", W), ("bn_TSM_tp0", W), ("bn_TSM_frame0", W), ("bn_TSM_tp1", W),
                    ("bn_TSM_frame1", W)):
        s |= bn(name, d)
    for name in ("classifier_TSM_tp0", "classifier_TSM_frame0", "classifier_TSM_tp1", "classifier_TSM_frame1"):
        s[f"{name}.weight"] = r(CLASSES, W)
    s |= rotation("TSM_space.Reconstuct_shift.Rotation") | rotation("TSM_space.Reconstuct_shift2.Rotation")
    s |= rotation("TSM_temp.Reconstuct_shift.Rotation")
    return {f"module.{k}": v for k, v in s.items()}  # saved from DDP: "module." prefix


def reference_eval_forward(s: dict[str, torch.Tensor], x: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """The reference's eval output ``cat[feat, feat_proj, TSM_temporal0]``, written from its code."""
    s = {k.removeprefix("module."): v for k, v in s.items()}
    b, t = x.shape[:2]
    e = "image_encoder."

    def lnorm(z, p):
        return F.layer_norm(z, (z.shape[-1],), s[f"{p}.weight"], s[f"{p}.bias"])

    def bnorm(z, p):
        return F.batch_norm(z, s[f"{p}.running_mean"], s[f"{p}.running_var"], s[f"{p}.weight"], s[f"{p}.bias"])

    z = F.conv2d(x.flatten(0, 1), s[e + "conv1.weight"], stride=16).flatten(2).transpose(1, 2)
    cls = s[e + "class_embedding"].expand(z.shape[0], 1, W).clone()
    cls[:, 0] += s["cv_embed"][cam].repeat_interleave(t, 0)  # SIE_COE = 1
    z = torch.cat([cls, z], 1) + s[e + "positional_embedding"]
    z = lnorm(z, e + "ln_pre")
    for i in range(LAYERS):
        p = f"{e}transformer.resblocks.{i}"
        h = lnorm(z, p + ".ln_1")
        q, k, v = F.linear(h, s[p + ".attn.in_proj_weight"], s[p + ".attn.in_proj_bias"]).chunk(3, -1)
        q, k, v = (u.unflatten(-1, (HEADS, W // HEADS)).transpose(1, 2) for u in (q, k, v))
        a = ((q @ k.transpose(-1, -2)) / math.sqrt(W // HEADS)).softmax(-1) @ v
        z = z + F.linear(a.transpose(1, 2).flatten(2), s[p + ".attn.out_proj.weight"], s[p + ".attn.out_proj.bias"])
        h = F.linear(lnorm(z, p + ".ln_2"), s[p + ".mlp.c_fc.weight"], s[p + ".mlp.c_fc.bias"])
        z = z + F.linear(h * torch.sigmoid(1.702 * h), s[p + ".mlp.c_proj.weight"], s[p + ".mlp.c_proj.bias"])
    z = lnorm(z, e + "ln_post")
    feat = bnorm(z[:, 0].unflatten(0, (b, t)).mean(1), "bn_feat_temp")
    feat_proj = bnorm((z[:, 0] @ s[e + "proj"]).unflatten(0, (b, t)).mean(1), "bn_proj_temp")
    # TSM_space: shift a quarter of patch channels forward / backward in time, two CLS->patch blocks
    patches = z[:, 1:].unflatten(0, (b, t)).clone()
    fold, src = W // 4, patches.clone()
    patches[:, 1:, :, :fold] = src[:, :-1, :, :fold]
    patches[:, :-1, :, fold:2 * fold] = src[:, 1:, :, fold:2 * fold]
    patches = patches.flatten(0, 1)
    q_tok = z[:, 0]
    for blk in ("TSM_space.Reconstuct_shift.Rotation", "TSM_space.Reconstuct_shift2.Rotation"):
        qn = F.linear(lnorm(q_tok, blk + ".norm1"), s[blk + ".attn.q_.weight"]).view(-1, 1, MII_HEADS, W // MII_HEADS).transpose(1, 2)
        kk = F.linear(lnorm(patches, blk + ".attn.normy"), s[blk + ".attn.k_.weight"]).unflatten(-1, (MII_HEADS, W // MII_HEADS)).transpose(1, 2)
        vv = F.linear(patches, s[blk + ".attn.v_.weight"]).unflatten(-1, (MII_HEADS, W // MII_HEADS)).transpose(1, 2)
        att = ((qn @ kk.transpose(-1, -2)) * (W // MII_HEADS) ** -0.5).softmax(-1) @ vv
        q_tok = q_tok + F.linear(att.transpose(1, 2).reshape(-1, W), s[blk + ".attn.proj.weight"], s[blk + ".attn.proj.bias"])
        h = F.gelu(F.linear(lnorm(q_tok, blk + ".norm2"), s[blk + ".mlp.fc1.weight"], s[blk + ".mlp.fc1.bias"]))
        q_tok = q_tok + F.linear(h, s[blk + ".mlp.fc2.weight"], s[blk + ".mlp.fc2.bias"])
    tsm = bnorm(q_tok.unflatten(0, (b, t)).mean(1), "bn_TSM_tp0")
    return torch.cat([feat, feat_proj, tsm], 1)


UNUSED_BY_REFERENCE = ("bottleneck_local.", "classifier_TSM_frame0.", "TSM_temp.", "bn_TSM_tp1.", "bn_TSM_frame1.",
                       "classifier_TSM_tp1.", "classifier_TSM_frame1.")


def test_reference_layout_checkpoint_loads_every_tensor_in_place(tmp_path) -> None:
    ref = reference_state()
    path = tmp_path / "checkpoint_ep.pth.tar"
    torch.save(ref, path)
    model = load_reference_checkpoint(path, name="xreid_tiny")
    assert model.cfg.num_classes == CLASSES and model.cfg.camera_num == CAMS and model.cfg.mii_long_term == "off"
    ours = model.state_dict()
    landed = {}
    for ref_key, value in ref.items():
        target = map_reference_key(ref_key)
        bare = ref_key.removeprefix("module.")
        if target is None or target not in ours:
            assert bare.startswith(UNUSED_BY_REFERENCE), f"{ref_key} was dropped but the reference uses it"
            continue
        assert torch.equal(ours[target], value), f"{ref_key} -> {target} differs"
        landed[target] = ref_key
    # no missing keys: every tensor of ours came from the reference (but our camera->modality mask)
    assert set(ours) - set(landed) == set(OURS_ONLY)
    assert len(set(landed)) == len(landed)  # no two reference tensors on one of ours
    x, cam = frames(3, 4), torch.tensor([0, 3, 1])
    with torch.no_grad():
        ours_out = model(x, torch.tensor([0, 1, 0]), cam)
        ref_out = reference_eval_forward(ref, x, cam)
    assert ours_out.shape == (3, W + P + W)
    assert (ours_out - ref_out).abs().max() < 1e-4


def test_reference_long_term_and_separate_frame_classifier_map_when_enabled(tmp_path) -> None:
    ref = reference_state(seed=2)
    torch.save(ref, tmp_path / "ref.pth")
    model = load_reference_checkpoint(tmp_path / "ref.pth", name="xreid_tiny", mii_long_term="rotate",
                                      share_frame_classifier=False)
    ours = model.state_dict()
    assert torch.equal(ours["long_term.block.attn.query.weight"], ref["module.TSM_temp.Reconstuct_shift.Rotation.attn.q_.weight"])
    assert torch.equal(ours["long_term_head.seq_norms.0.running_var"], ref["module.bn_TSM_tp1.running_var"])
    assert torch.equal(ours["short_term_head.frame_classifier.weight"], ref["module.classifier_TSM_frame0.weight"])


def test_reference_checkpoint_with_wrong_shapes_or_keys_is_refused(tmp_path) -> None:
    ref = reference_state()
    ref["module.cv_embed"] = torch.zeros(CAMS, W + 1)
    torch.save(ref, tmp_path / "bad.pth")
    with pytest.raises(ContractError, match="shape"):
        load_reference_checkpoint(tmp_path / "bad.pth", name="xreid_tiny")
    with pytest.raises(ContractError, match="not in the key-mapping table"):
        map_reference_key("prompt_learner.cls_ctx")
    torch.save({"cv_embed": torch.zeros(2, W)}, tmp_path / "partial.pth")
    with pytest.raises(ContractError):
        load_reference_checkpoint(tmp_path / "partial.pth", name="xreid_tiny")


def test_create_model_recognises_reference_checkpoint_as_pretrained(tmp_path) -> None:
    ref = reference_state()
    torch.save(ref, tmp_path / "ref.pth")
    model = create_model("xreid_tiny", pretrained=str(tmp_path / "ref.pth"), num_classes=CLASSES,
                         mii_long_term="off", mii_cross_modality=False)
    assert torch.equal(model.camera_embed, ref["module.cv_embed"])
