"""XReIDCfg: every number that shapes an X-ReID network, frozen and validated once.

The defaults are the reference repository's ViT-B/16 setting (``configs/vit_clipreid_vcm.yml`` of
AsuradaYuci/X-ReID); registry entries in ``registry.py`` override them. The checkpoint stores this
dataclass as a plain dict, so a model rebuilds from its file alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from models.errors import ConfigError

UnseenCamera = Literal["modality_mean", "zero"]
LongTerm = Literal["sequence", "rotate", "off"]
PrototypeUpdate = Literal["hard", "mean"]
Backbone = Literal["clip_vit", "mobilenet_v2"]


@dataclass(frozen=True)
class XReIDCfg:
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
    """

    name: str = "xreid_vitb16"
    backbone: Backbone = "clip_vit"
    clip_model: str = "ViT-B-16"
    input_hw: tuple[int, int] = (288, 144)
    stride_hw: tuple[int, int] = (16, 16)
    seq_len: int = 10
    pixel_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    pixel_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    quick_gelu: bool = True
    freeze_patch_embed: bool = True
    token_dim: int = 256
    frozen_blocks: int = 0
    edge_view: bool = False
    camera_num: int = 12
    sie_coe: float = 1.0
    unseen_camera: UnseenCamera = "modality_mean"
    mii_heads: int = 12
    mii_detach_input: bool = True
    mii_shift_div: int = 4
    mii_long_term: LongTerm = "sequence"
    mii_cross_modality: bool = True
    share_frame_classifier: bool = True
    cpc_temperature: float = 0.05
    cpc_momentum: float = 0.1
    cpc_update: PrototypeUpdate = "hard"
    num_classes: int = 0

    def __post_init__(self) -> None:
        if len(self.input_hw) != 2 or min(self.input_hw) <= 0:
            raise ConfigError(f"xreid.input_hw must be two positive ints, got {self.input_hw}")
        if len(self.stride_hw) != 2 or min(self.stride_hw) <= 0:
            raise ConfigError(f"xreid.stride_hw must be two positive ints, got {self.stride_hw}")
        if self.backbone not in ("clip_vit", "mobilenet_v2"):
            raise ConfigError(f"xreid.backbone must be clip_vit|mobilenet_v2, got {self.backbone!r}")
        step = 64 if self.edge_view else 32
        if self.backbone == "mobilenet_v2" and (self.input_hw[0] % step or self.input_hw[1] % step):
            raise ConfigError(f"xreid.input_hw must be multiples of {step} for mobilenet_v2"
                              f"{' with edge_view' if self.edge_view else ''}, got {self.input_hw}")
        if self.backbone == "mobilenet_v2" and (self.token_dim < 1 or self.token_dim % self.mii_heads):
            raise ConfigError(f"xreid.token_dim must be a positive multiple of mii_heads, got {self.token_dim}")
        if not 0 <= self.frozen_blocks <= 18:
            raise ConfigError(f"xreid.frozen_blocks must be in [0, 18], got {self.frozen_blocks}")
        if self.seq_len < 1:
            raise ConfigError(f"xreid.seq_len must be >= 1, got {self.seq_len}")
        if len(self.pixel_mean) != 3 or len(self.pixel_std) != 3 or min(self.pixel_std) <= 0:
            raise ConfigError("xreid.pixel_mean/pixel_std must be 3 values each, std > 0")
        if self.camera_num < 1:
            raise ConfigError(f"xreid.camera_num must be >= 1, got {self.camera_num}")
        if self.unseen_camera not in ("modality_mean", "zero"):
            raise ConfigError(f"xreid.unseen_camera must be modality_mean|zero, got {self.unseen_camera!r}")
        if self.mii_long_term not in ("sequence", "rotate", "off"):
            raise ConfigError(f"xreid.mii_long_term must be sequence|rotate|off, got {self.mii_long_term!r}")
        if self.cpc_update not in ("hard", "mean"):
            raise ConfigError(f"xreid.cpc_update must be hard|mean, got {self.cpc_update!r}")
        if self.mii_shift_div < 2:
            raise ConfigError(f"xreid.mii_shift_div must be >= 2, got {self.mii_shift_div}")
        if not 0.0 <= self.cpc_momentum < 1.0 or self.cpc_temperature <= 0:
            raise ConfigError("xreid.cpc_momentum must be in [0, 1) and cpc_temperature > 0")
        if self.num_classes < 0:
            raise ConfigError(f"xreid.num_classes must be >= 0, got {self.num_classes}")

    def replace(self, **overrides: Any) -> XReIDCfg:
        """A copy with ``overrides`` applied; unknown names are a ``ConfigError``."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown xreid config keys: {', '.join(unknown)}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain-python dict (lists for tuples) for checkpoints and YAML."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> XReIDCfg:
        """Inverse of ``to_dict``; unknown keys are a ``ConfigError``."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown xreid config keys: {', '.join(unknown)}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)
