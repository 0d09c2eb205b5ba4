"""X-ReID network on the tiny config (CPU): shapes, gradients, determinism, cameras, MII, CPC."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.errors import ConfigError, ContractError, WeightsNotFound
from models.xreid import XReIDCfg, create_model
from models.xreid.cpc import PrototypeMemory
from models.xreid.mii import cross_modality_constraint_loss, temporal_shift


def tiny(num_classes: int = 0, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return create_model("xreid_tiny", num_classes=num_classes, **overrides)


def frames(b: int, t: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, 3, 64, 32, generator=g)


def randomise_necks(model) -> None:
    """Give BN running stats non-trivial values so eval outputs exercise them."""
    g = torch.Generator().manual_seed(5)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm1d):
            mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
            mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)


@pytest.mark.parametrize("b,t", [(1, 1), (2, 3), (5, 4), (3, 7)])
def test_eval_embedding_shape_for_several_batch_sizes_and_lengths(b: int, t: int) -> None:
    model = tiny().eval()
    emb = model(frames(b, t), torch.zeros(b, dtype=torch.long))
    assert emb.shape == (b, model.embed_dim)
    assert torch.isfinite(emb).all()


def test_embed_dim_is_sum_of_branches() -> None:
    # tiny: width 64, proj 32 -> CLS + proj + short-term (+ long-term)
    assert tiny().embed_dim == 64 + 32 + 64 + 64
    assert tiny(mii_long_term="off").embed_dim == 64 + 32 + 64
    # ViT-B-16 with the reference forward: 768 + 512 + 768
    assert XReIDCfg().input_hw == (288, 144) and XReIDCfg().seq_len == 10


@pytest.mark.parametrize("t", [1, 4])
def test_train_outputs_have_logits_features_and_prototype_inputs(t: int) -> None:
    model = tiny(num_classes=7).train()
    b = 4
    out = model(frames(b, t), torch.tensor([0, 1, 0, 1]), torch.tensor([0, 1, 2, 3]))
    assert [x.shape for x in out["id_logits"]] == [(b, 7)] * 3
    assert [x.shape for x in out["frame_id_logits"]] == [(b * t, 7)] * 3
    assert [x.shape for x in out["triplet_features"]] == [(b, 64), (b, 32), (b, 64), (b, 64)]
    assert out["prototype_features"].shape == (b, 96)
    assert out["cross_modal_features"].shape == (b, 64)
    assert out["embedding"].shape == (b, model.embed_dim)


def test_single_modality_batch_has_no_cross_modal_features() -> None:
    model = tiny(num_classes=3).train()
    out = model(frames(2, 2), torch.tensor([1, 1]))
    assert "cross_modal_features" not in out


def test_gradients_reach_backbone_mii_cpc_inputs_and_heads() -> None:
    model = tiny(num_classes=4).train()
    labels, modality = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])
    x = frames(4, 3)
    model.cpc.initialise(model.prototype_features(x), labels, modality)
    before = model.cpc.rgb.prototypes.clone()
    out = model(x, modality, torch.tensor([0, 1, 2, 3]))
    t = x.shape[1]
    loss = sum(F.cross_entropy(s, labels) for s in out["id_logits"])
    loss = loss + sum(F.cross_entropy(s, labels.repeat_interleave(t)) for s in out["frame_id_logits"]) / t
    loss = loss + model.cpc(out["prototype_features"], labels)["total"]
    loss = loss + cross_modality_constraint_loss(out["cross_modal_features"], labels, modality)
    loss.backward()

    def grad_norm(name: str) -> float:
        p = dict(model.named_parameters())[name]
        return 0.0 if p.grad is None else float(p.grad.norm())

    for name in ("backbone.visual.transformer.resblocks.0.attn.in_proj_weight", "backbone.visual.class_embedding",
                 "backbone.visual.proj", "camera_embed", "short_term.blocks.0.attn.query.weight",
                 "short_term.blocks.1.mlp.fc2.weight", "long_term.block.attn.key.weight",
                 "cross_modality.block.attn.value.weight", "clip_head.seq_classifier.weight",
                 "short_term_head.seq_classifier.weight", "long_term_head.seq_classifier.weight"):
        assert grad_norm(name) > 0, name
    # frozen as in the reference: patch projection, BN-neck biases
    assert model.backbone.visual.conv1.weight.grad is None
    assert model.clip_head.seq_norms[0].bias.grad is None
    # CPC: the backward pass moved the prototypes and kept them unit-norm
    after = model.cpc.rgb.prototypes
    assert not torch.allclose(before, after)
    assert torch.allclose(after[:2].norm(dim=1), torch.ones(2), atol=1e-5)  # identities 0, 1 in the batch


def test_mii_reads_detached_tokens_unless_configured() -> None:
    for detach, expect_grad in ((True, False), (False, True)):
        model = tiny(num_classes=3, mii_detach_input=detach, mii_long_term="off").train()
        out = model(frames(2, 2), torch.tensor([0, 1]))
        out["triplet_features"][2].sum().backward()  # short-term branch only
        grad = model.backbone.visual.transformer.resblocks[0].mlp.c_fc.weight.grad
        assert (grad is not None and float(grad.norm()) > 0) is expect_grad


def test_eval_is_deterministic() -> None:
    model = tiny().eval()
    randomise_necks(model)
    x, m = frames(3, 4), torch.tensor([0, 1, 0])
    with torch.no_grad():
        assert torch.equal(model(x, m), model(x, m))


def test_embedding_does_not_depend_on_batch_companions() -> None:
    model = tiny().eval()
    randomise_necks(model)
    x = frames(6, 4)
    m, cam = torch.tensor([0, 1, 0, 1, 1, 0]), torch.tensor([0, 1, -1, 3, -1, 2])
    with torch.no_grad():
        together = model(x, m, cam)
        alone = torch.cat([model(x[i:i + 1], m[i:i + 1], cam[i:i + 1]) for i in range(6)])
        pair = model(x[2:4], m[2:4], cam[2:4])
    assert (together - alone).abs().max() < 1e-5
    assert (together[2:4] - pair).abs().max() < 1e-5


def test_known_camera_changes_output_and_modality_does_not() -> None:
    model = tiny().eval()
    x = frames(1, 4).expand(2, -1, -1, -1, -1)
    with torch.no_grad():
        cams = model(x, torch.tensor([0, 0]), torch.tensor([0, 1]))
        mods = model(x, torch.tensor([0, 1]), torch.tensor([2, 2]))
    assert (cams[0] - cams[1]).abs().max() > 1e-4  # camera embedding enters every frame's CLS
    assert torch.equal(mods[0], mods[1])  # the reference network has no modality input


def test_unseen_camera_gets_its_modality_mean_embedding() -> None:
    model = tiny().eval()
    # cameras 0,1 recorded RGB only, 2,3 IR only
    model.set_camera_modalities(torch.tensor([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=torch.bool))
    bias = model.camera_bias(torch.tensor([0, 1, 0]), torch.tensor([-1, -1, 3]))
    emb = model.camera_embed.detach()
    assert torch.allclose(bias[0], emb[:2].mean(0))
    assert torch.allclose(bias[1], emb[2:].mean(0))
    assert torch.allclose(bias[2], emb[3])
    x = frames(1, 4).expand(2, -1, -1, -1, -1)
    with torch.no_grad():
        unseen = model(x, torch.tensor([0, 1]))  # camera None: all unseen
        explicit = model(x, torch.tensor([0, 1]), torch.tensor([-1, -1]))
    assert (unseen[0] - unseen[1]).abs().max() > 1e-4  # RGB vs IR fallback differ
    assert torch.equal(unseen, explicit)


def test_unseen_camera_zero_mode_ignores_modality() -> None:
    model = tiny(unseen_camera="zero").eval()
    model.set_camera_modalities(torch.tensor([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=torch.bool))
    assert torch.equal(model.camera_bias(torch.tensor([0, 1]), None), torch.zeros(2, 64))
    x = frames(1, 3).expand(2, -1, -1, -1, -1)
    with torch.no_grad():
        out = model(x, torch.tensor([0, 1]))
    assert torch.equal(out[0], out[1])


def test_bad_camera_or_modality_is_contract_error() -> None:
    model = tiny().eval()
    with pytest.raises(ContractError):
        model(frames(1, 2), torch.tensor([2]))
    with pytest.raises(ContractError):
        model(frames(1, 2), torch.tensor([0]), torch.tensor([4]))
    with pytest.raises(ContractError):
        model(torch.zeros(1, 3, 64, 32), torch.tensor([0]))


def test_temporal_shift_moves_channel_quarters_one_frame_with_repeat_edges() -> None:
    t, d = 3, 8
    x = torch.arange(t, dtype=torch.float).view(1, t, 1, 1).expand(1, t, 1, d).clone()  # value = frame index
    y = temporal_shift(x, shift_div=4)[0, :, 0]
    assert y[:, :2].tolist() == [[0, 0], [0, 0], [1, 1]]  # from the previous frame, first repeats
    assert y[:, 2:4].tolist() == [[1, 1], [2, 2], [2, 2]]  # from the next frame, last repeats
    assert y[:, 4:].tolist() == [[0] * 4, [1] * 4, [2] * 4]  # untouched
    assert torch.equal(temporal_shift(x[:, :1]), x[:, :1])  # T = 1: nothing to shift


def test_long_term_rotate_queries_frame_t_patches_with_next_frame_cls() -> None:
    model = tiny(mii_long_term="rotate").eval()
    lt = model.long_term
    tokens = torch.randn(2 * 3, 9, 64)
    out = lt(tokens, 2, 3)
    # position 0 of sequence 0: frame 1's CLS over frame 0's patches
    manual = lt.block(tokens[1:2, :1], tokens[0:1, 1:])[:, 0]
    assert torch.allclose(out[0:1], manual, atol=1e-6)


def test_prototype_hard_update_moves_toward_least_similar_instance() -> None:
    mem = PrototypeMemory(num_classes=2, dim=2, temperature=0.05, momentum=0.5, update="hard")
    mem.initialise(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1]))
    feats = torch.tensor([[1.0, 0.1], [0.6, 0.8]], requires_grad=True)  # both identity 0
    loss = mem(feats, torch.tensor([0, 0]))
    loss.backward()
    hard = F.normalize(torch.tensor([0.6, 0.8]), dim=0)  # the less similar to prototype (1, 0)
    expected = F.normalize(0.5 * torch.tensor([1.0, 0.0]) + 0.5 * hard, dim=0)
    assert torch.allclose(mem.prototypes[0], expected, atol=1e-6)
    assert torch.equal(mem.prototypes[1], torch.tensor([0.0, 1.0]))
    assert feats.grad is not None and feats.grad.abs().sum() > 0


def test_cross_modality_constraint_is_zero_for_aligned_centres_and_positive_otherwise() -> None:
    labels, modality = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])
    aligned = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    assert float(cross_modality_constraint_loss(aligned, labels, modality)) == pytest.approx(0.0, abs=1e-6)
    apart = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 2.0]])
    assert float(cross_modality_constraint_loss(apart, labels, modality)) == pytest.approx(0.5)


def test_unknown_name_or_override_is_config_error() -> None:
    with pytest.raises(ConfigError):
        create_model("xreid_huge")
    with pytest.raises(ConfigError):
        create_model("xreid_tiny", no_such_key=1)
    with pytest.raises(ConfigError):
        create_model("xreid_tiny", unseen_camera="random")


def test_missing_pretrained_weights_raise_weights_not_found(tmp_path) -> None:
    with pytest.raises(WeightsNotFound, match="not found"):
        create_model("xreid_tiny", pretrained=str(tmp_path / "ViT-B-16.pt"))
    with pytest.raises(WeightsNotFound, match="pass the file path"):
        create_model("xreid_vitb16", pretrained="openai")  # offline, nothing cached


def test_clip_weights_file_loads_with_positional_embedding_resized(tmp_path) -> None:
    from open_clip.model import _build_vision_tower

    from models.xreid.backbone import LOCAL_CLIP_CONFIGS

    cfg = LOCAL_CLIP_CONFIGS["xreid-tiny-vit"]
    torch.manual_seed(3)
    square = _build_vision_tower(cfg["embed_dim"], {**cfg["vision_cfg"], "image_size": 64}, quick_gelu=True)
    state = {f"visual.{k}": v for k, v in square.state_dict().items()}
    state["logit_scale"] = torch.tensor(4.6)  # a full CLIP file also holds text-tower keys
    path = tmp_path / "clip.pt"
    torch.save(state, path)
    model = create_model("xreid_tiny", pretrained=str(path))
    visual = model.backbone.visual
    assert torch.equal(visual.conv1.weight, square.conv1.weight)
    assert torch.equal(visual.transformer.resblocks[1].mlp.c_fc.weight, square.transformer.resblocks[1].mlp.c_fc.weight)
    assert visual.positional_embedding.shape == (1 + 4 * 2, 64)  # 4x4 grid -> 64x32 crop's 4x2
    assert torch.equal(visual.positional_embedding[0], square.positional_embedding[0])  # CLS position kept


@pytest.mark.parametrize("name,path", [("xreid_vitb16", "configs/xreid-vitb16.yaml"), ("xreid_tiny", "configs/xreid-tiny.yaml")])
def test_yaml_model_configs_match_the_registry(name: str, path: str) -> None:
    from pathlib import Path

    from models.xreid.registry import MODEL_CFGS
    from pipeline.config.loader import load_config

    root = Path(__file__).resolve().parents[2]
    assert load_config(XReIDCfg, root / path, env={}) == MODEL_CFGS[name]


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::FutureWarning")
def test_openai_torchscript_weights_file_is_read(tmp_path) -> None:
    """OpenAI's released ViT-B-16.pt is a TorchScript archive; a scripted tiny CLIP stands in."""
    from open_clip.model import _build_vision_tower

    from models.xreid.backbone import LOCAL_CLIP_CONFIGS

    cfg = LOCAL_CLIP_CONFIGS["xreid-tiny-vit"]

    class Clip(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.visual = _build_vision_tower(cfg["embed_dim"], {**cfg["vision_cfg"], "image_size": 64}, quick_gelu=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.visual(x)

    torch.manual_seed(4)
    clip = Clip().eval()
    path = tmp_path / "ViT-tiny.pt"
    torch.jit.trace(clip, torch.randn(1, 3, 64, 64), check_trace=False).save(str(path))
    model = create_model("xreid_tiny", pretrained=str(path))
    assert torch.equal(model.backbone.visual.proj, clip.visual.proj)
    assert torch.equal(model.backbone.visual.ln_post.weight, clip.visual.ln_post.weight)


def test_overlapping_patch_stride_uses_the_reference_grid_formula() -> None:
    # h = (64 - 16) // 8 + 1 = 7, w = (32 - 16) // 8 + 1 = 3
    model = tiny(stride_hw=(8, 8)).eval()
    assert model.backbone.grid_hw == (7, 3)
    assert model.backbone.visual.positional_embedding.shape == (1 + 7 * 3, 64)
    with torch.no_grad():
        tokens, _ = model.backbone(torch.randn(2, 3, 64, 32))
    assert tokens.shape == (2, 1 + 7 * 3, 64)
