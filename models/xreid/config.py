"""XReIDCfg: every number that shapes an X-ReID network, frozen and validated once.

The defaults are the reference repository's ViT-B/16 setting (``configs/vit_clipreid_vcm.yml`` of
AsuradaYuci/X-ReID); registry entries in ``registry.py`` override them. The checkpoint stores this
dataclass as a plain dict, so a model rebuilds from its file alone.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator

from models.config_base import Section, config_dataclass

UnseenCamera = Literal["modality_mean", "zero"]
LongTerm = Literal["sequence", "rotate", "off"]
PrototypeUpdate = Literal["hard", "mean"]
Backbone = Literal["clip_vit", "mobilenet_v2"]
Pixels = Annotated[int, Field(gt=0)]
Std = Annotated[float, Field(gt=0)]


@config_dataclass
class XReIDCfg(Section):
    """Architecture and head settings of one X-ReID network.

    Attributes:
        name: registry name the config came from (``xreid_vitb16``, ``xreid_tiny``).
        backbone: ``clip_vit`` (a CLIP image tower, ``clip_model``) or ``mobilenet_v2`` (an ImageNet
            MobileNetV2 trunk whose feature map becomes the tokens; ``models/xreid/mobilenet.py``).
        clip_model: open_clip config name of the image tower (``ViT-B-16``) or a local tiny one.
        input_hw: crop size (H, W) fed to the backbone, pixels.
        stride_hw: patch-embedding stride (H, W); smaller than the patch size means overlap.
        seq_len: frames per sequence (T) the model was trained with and the encoder samples.
        pixel_mean / pixel_std: per-channel normalisation of [0, 1] RGB input.
        quick_gelu: QuickGELU activations, as OpenAI CLIP weights were trained with.
        freeze_patch_embed: keep the patch-projection conv fixed (reference stability trick).
        token_dim: ``mobilenet_v2`` only: width of the tokens MII reads (1280 channels reduced).
        frozen_blocks: ``mobilenet_v2`` only: stem + this many inverted residual blocks get no gradient
            (18: the whole trunk, head included).
        edge_view: ``mobilenet_v2`` only: the trunk also encodes a coarse edge map of each frame
            (``mobilenet.EdgeView``), whose pooled feature joins the CLIP-branch projection.
        camera_num: learned camera embeddings (training cameras).
        sie_coe: scale of the camera embedding added to each frame's CLS token.
        unseen_camera: what a camera outside training gets: its modality's mean camera
            embedding (stored in the checkpoint) or zero.
        mii_heads: attention heads of the MII cross-attention blocks.
        mii_detach_input: MII reads a detached copy of the backbone tokens (reference behaviour).
        mii_shift_div: 1/mii_shift_div of channels shift forward in time, as many backward.
        mii_long_term: long-term cross-frame fusion: ``sequence`` (each frame's CLS attends to the
            patch tokens of every frame; our reading of the paper), ``rotate`` (the reference's
            ``TPM_temp_shift``: frame t+1's CLS attends to frame t's patches) or ``off`` (the
            reference's released forward, which never calls it).
        mii_cross_modality: build the training-only cross-modality interaction (paper's CII).
        share_frame_classifier: per-frame MII logits reuse the sequence classifier (reference).
        cpc_temperature / cpc_momentum / cpc_update: prototype memory settings of CPC.
        num_classes: training identities; 0 builds no classifiers (inference only).
        site_centre: the checkpoint carries one site's mean unit embedding per modality (buffer
            ``site_centre``, set by ``xreid adapt``) and inference subtracts it before the vector is
            normalised: what every person at that site shares (the scene, the lens, the modality's
            look) stops counting as likeness. Off for a model trained once for every site.
    """

    name: str = "xreid_vitb16"
    backbone: Backbone = "clip_vit"
    clip_model: str = "ViT-B-16"
    input_hw: tuple[Pixels, Pixels] = (288, 144)
    stride_hw: tuple[Pixels, Pixels] = (16, 16)
    seq_len: Annotated[int, Field(ge=1)] = 10
    pixel_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    pixel_std: tuple[Std, Std, Std] = (0.5, 0.5, 0.5)
    quick_gelu: bool = True
    freeze_patch_embed: bool = True
    token_dim: Annotated[int, Field(ge=1)] = 256
    frozen_blocks: Annotated[int, Field(ge=0, le=18)] = 0
    edge_view: bool = False
    camera_num: Annotated[int, Field(ge=1)] = 12
    sie_coe: float = 1.0
    unseen_camera: UnseenCamera = "modality_mean"
    mii_heads: Annotated[int, Field(ge=1)] = 12
    mii_detach_input: bool = True
    mii_shift_div: Annotated[int, Field(ge=2)] = 4
    mii_long_term: LongTerm = "sequence"
    mii_cross_modality: bool = True
    share_frame_classifier: bool = True
    cpc_temperature: Annotated[float, Field(gt=0)] = 0.05
    cpc_momentum: Annotated[float, Field(ge=0, lt=1)] = 0.1
    cpc_update: PrototypeUpdate = "hard"
    num_classes: Annotated[int, Field(ge=0)] = 0
    site_centre: bool = False

    @model_validator(mode="after")
    def _mobilenet_shapes(self) -> Self:
        if self.backbone != "mobilenet_v2":
            return self
        step = 64 if self.edge_view else 32
        if self.input_hw[0] % step or self.input_hw[1] % step:
            raise ValueError(f"input_hw must be multiples of {step} for mobilenet_v2"
                             f"{' with edge_view' if self.edge_view else ''}, got {list(self.input_hw)}")
        if self.token_dim % self.mii_heads:
            raise ValueError(f"token_dim ({self.token_dim}) must be a multiple of mii_heads ({self.mii_heads})")
        return self

    def replace(self, **overrides: Any) -> XReIDCfg:
        """A copy with ``overrides`` applied; unknown names or bad values are a ``ConfigError``."""
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain-python dict (lists for tuples) for checkpoints and YAML; ``config_base.validate`` reads it back."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
