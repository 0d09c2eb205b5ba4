"""Model names -> configs, and ``create_model``: the one way to build an X-ReID network.

Sizes are data (``MODEL_CFGS``), not subclasses. ``pretrained`` follows open_clip: an open_clip
tag (``openai``) read from the local cache only, or a file path (CLIP image-tower weights, one of
our checkpoints, or a reference X-ReID checkpoint, recognised by its keys).
"""

from __future__ import annotations

import logging
from typing import Any

from models.errors import ConfigError
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
}


def list_models() -> list[str]:
    """Registered model names."""
    return sorted(MODEL_CFGS)


def model_cfg(name: str, **overrides: Any) -> XReIDCfg:
    """The registered config of ``name`` with ``overrides`` applied."""
    if name not in MODEL_CFGS:
        raise ConfigError(f"unknown X-ReID model {name!r}; known: {', '.join(list_models())}")
    return MODEL_CFGS[name].replace(**overrides)


def create_model(name: str, pretrained: str | None = None, num_classes: int = 0, **overrides: Any):
    """Build an X-ReID network.

    Args:
        name: registry name (``xreid_vitb16``, ``xreid_tiny``).
        pretrained: None (random init), an open_clip tag for the CLIP image tower (``openai``,
            local cache only), or a path to CLIP weights / a reference X-ReID checkpoint.
        num_classes: training identities (0: inference only, no classifiers).
        **overrides: ``XReIDCfg`` fields to change.

    Raises:
        ConfigError: unknown name or override.
        WeightsNotFound: ``pretrained`` is given but no local file holds it.
    """
    from models.xreid.model import XReID

    cfg = model_cfg(name, num_classes=num_classes, **overrides)
    model = XReID(cfg)
    if pretrained:
        from models.xreid.backbone import read_clip_weights
        from models.xreid.ref_keys import is_reference_state, load_reference_state

        state = read_clip_weights(cfg.clip_model, pretrained)
        if is_reference_state(state):
            load_reference_state(model, state)
        else:
            model.backbone.load_clip_state_dict(state)
        log.info("built %s with weights %s", name, pretrained)
    return model
