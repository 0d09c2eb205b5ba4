"""The CLIP image tower, resized to person crops, with a camera embedding on the CLS token.

Built from an open_clip vision config (``ViT-B-16`` by default) and re-shaped the way the reference
(AsuradaYuci/X-ReID, ``model/clip/model.py`` of its CLIP-ReID lineage) does: the patch grid is
``h = (H - patch) // stride_h + 1``, ``w = (W - patch) // stride_w + 1``, pretrained positional
embeddings are bilinearly resized to that grid, and a per-frame vector (the scaled camera
embedding) is added to the CLS token after it is prepended and before the positional embedding.
Weights are only ever read from local files: this module never downloads.
"""

from __future__ import annotations

import logging
import math
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from open_clip.model import _build_vision_tower
from torch import Tensor, nn

from models.errors import ConfigError, ContractError, WeightsNotFound

log = logging.getLogger(__name__)

# Vision towers we define ourselves (open_clip's registry is global; we keep ours local).
LOCAL_CLIP_CONFIGS: dict[str, dict[str, Any]] = {
    # A 2-layer, 64-wide tower for CPU tests and CI: same code path as ViT-B-16.
    "xreid-tiny-vit": {"embed_dim": 32, "vision_cfg": {"layers": 2, "width": 64, "head_width": 16, "patch_size": 16}},
}


def clip_model_config(name: str) -> dict[str, Any]:
    """open_clip-style model config (``embed_dim`` + ``vision_cfg``) for ``name``."""
    if name in LOCAL_CLIP_CONFIGS:
        return LOCAL_CLIP_CONFIGS[name]
    import open_clip

    cfg = open_clip.get_model_config(name)
    if cfg is None:
        known = ", ".join(sorted(LOCAL_CLIP_CONFIGS) + open_clip.list_models()[:8])
        raise ConfigError(f"unknown open_clip model config {name!r} (e.g. {known}, ...)")
    return cfg


def grid_size(input_hw: tuple[int, int], patch: int, stride_hw: tuple[int, int]) -> tuple[int, int]:
    """Patch grid of a crop: ``(H - patch) // stride + 1`` per axis (the reference's formula)."""
    h = (input_hw[0] - patch) // stride_hw[0] + 1
    w = (input_hw[1] - patch) // stride_hw[1] + 1
    if h < 1 or w < 1:
        raise ConfigError(f"input {input_hw} is smaller than one {patch}px patch")
    return h, w


def resize_pos_embed(pos: Tensor, grid_hw: tuple[int, int]) -> Tensor:
    """Bilinearly resize a square-grid ``(1 + g*g, D)`` positional embedding to ``grid_hw``."""
    cls_pos, patch_pos = pos[:1], pos[1:]
    old = math.isqrt(patch_pos.shape[0])
    if old * old != patch_pos.shape[0]:
        raise ContractError(f"positional embedding of {pos.shape[0]} rows is not 1 + square grid")
    if (old, old) == tuple(grid_hw):
        return pos
    grid = patch_pos.reshape(1, old, old, -1).permute(0, 3, 1, 2)  # 1, D, g, g
    grid = F.interpolate(grid.float(), size=grid_hw, mode="bilinear").to(pos.dtype)
    return torch.cat([cls_pos, grid.permute(0, 2, 3, 1).reshape(grid_hw[0] * grid_hw[1], -1)], dim=0)


class ClipImageEncoder(nn.Module):
    """open_clip ``VisionTransformer`` wrapped to take a per-frame CLS bias and return all tokens.

    Args:
        clip_model: open_clip config name (or a ``LOCAL_CLIP_CONFIGS`` key).
        input_hw: crop size (H, W).
        stride_hw: patch-embedding stride (H, W).
        quick_gelu: use QuickGELU (OpenAI CLIP weights need it).
        freeze_patch_embed: stop gradients into the patch projection.
    """

    def __init__(
        self,
        clip_model: str,
        input_hw: tuple[int, int],
        stride_hw: tuple[int, int],
        quick_gelu: bool = True,
        freeze_patch_embed: bool = True,
    ) -> None:
        super().__init__()
        cfg = clip_model_config(clip_model)
        vision_cfg = dict(cfg["vision_cfg"])
        patch = vision_cfg.get("patch_size", 16)
        if not isinstance(vision_cfg.get("layers"), int) or vision_cfg.get("timm_model_name"):
            raise ConfigError(f"{clip_model!r} is not a plain ViT image tower; X-ReID needs one")
        self.grid_hw = grid_size(input_hw, patch, stride_hw)
        vision_cfg["image_size"] = (self.grid_hw[0] * patch, self.grid_hw[1] * patch)
        self.visual = _build_vision_tower(cfg["embed_dim"], vision_cfg, quick_gelu=quick_gelu)
        self.visual.conv1.stride = tuple(stride_hw)
        self.width: int = self.visual.conv1.out_channels
        self.proj_dim: int = cfg["embed_dim"]
        self.heads: int = self.width // vision_cfg.get("head_width", 64)
        if freeze_patch_embed:
            # reference trick (arXiv 2104.02057): a fixed patch projection trains more stably
            self.visual.conv1.weight.requires_grad_(False)

    def forward(self, x: Tensor, cls_bias: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Encode frames.

        Args:
            x: (N, 3, H, W) normalised frames.
            cls_bias: (N, width) added to each frame's CLS token before the positional embedding.

        Returns:
            tokens: (N, 1 + h*w, width) after ``ln_post``; ``tokens[:, 0]`` is the CLS feature.
            cls_proj: (N, proj_dim) the CLS token through CLIP's projection.
        """
        v = self.visual
        x = v.conv1(x)  # N, width, h, w
        x = x.flatten(2).transpose(1, 2)  # N, h*w, width
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        if cls_bias is not None:
            cls = cls + cls_bias.to(x.dtype).unsqueeze(1)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        x = v.patch_dropout(x)
        x = v.ln_pre(x)
        x = v.transformer(x)
        tokens = v.ln_post(x)
        cls_proj = tokens[:, 0] @ v.proj
        return tokens, cls_proj

    def load_clip_state_dict(self, state: dict[str, Tensor]) -> None:
        """Load an open_clip / OpenAI CLIP state dict (``visual.*`` keys), resizing pos-embeds."""
        visual = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
        if not visual:
            visual = dict(state)  # a bare image-tower state dict
        if "positional_embedding" in visual:
            visual["positional_embedding"] = resize_pos_embed(visual["positional_embedding"], self.grid_hw)
        for key in ("input_resolution", "context_length", "vocab_size"):
            visual.pop(key, None)
        result = self.visual.load_state_dict(visual, strict=False)
        if result.missing_keys:
            raise ContractError(f"CLIP weights lack image-tower keys: {result.missing_keys[:5]}")
        log.info("loaded CLIP image tower (%d tensors, grid %s)", len(visual), self.grid_hw)


def read_clip_weights(clip_model: str, pretrained: str) -> dict[str, Tensor]:
    """Read CLIP weights from a local file, or from open_clip's local cache for a known tag.

    Args:
        clip_model: open_clip config name the weights belong to (``ViT-B-16``).
        pretrained: a file path (OpenAI ``ViT-B-16.pt`` TorchScript archive, open_clip
            ``.bin``/``.pt`` state dict, or ``.safetensors``) or an open_clip tag (``openai``).

    Raises:
        WeightsNotFound: the file is missing, or the tag's file is not in the local cache.
    """
    path = Path(pretrained).expanduser()
    if path.is_file():
        return _read_weights_file(path)
    if path.suffix or "/" in pretrained:
        raise WeightsNotFound(f"CLIP weights file not found: {path}")
    return _read_weights_file(_cached_tag_file(clip_model, pretrained))


def _cached_tag_file(clip_model: str, tag: str) -> Path:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(clip_model, tag)
    if not cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(clip_model)) or "none"
        raise WeightsNotFound(f"open_clip has no tag {tag!r} for {clip_model!r} (tags: {tags}); or pass a file path")
    hint = (
        f"no local copy of open_clip {clip_model}/{tag} weights and downloads are off: download "
        f"{cfg.get('url') or cfg.get('hf_hub')} on a connected machine and pass the file path as pretrained"
    )
    repo = (cfg.get("hf_hub") or "").strip("/")
    if repo:
        try:
            from huggingface_hub import hf_hub_download

            for filename in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
                try:
                    return Path(hf_hub_download(repo, filename, local_files_only=True))
                except Exception as e:  # huggingface_hub raises several types for "not cached"
                    log.debug("not cached: %s/%s (%s)", repo, filename, type(e).__name__)
        except ImportError:
            pass
    url = cfg.get("url") or ""
    if url:
        cached = Path.home() / ".cache" / "clip" / url.rsplit("/", 1)[-1]
        if cached.is_file():
            return cached
    raise WeightsNotFound(hint)


def _read_weights_file(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if zipfile.is_zipfile(path) and _is_torchscript(path):
        # OpenAI's released ViT-B-16.pt is a TorchScript archive, not a pickled state dict
        jit_state = torch.jit.load(str(path), map_location="cpu").state_dict()
        return {k: v.float() if v.is_floating_point() else v for k, v in jit_state.items()}
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsNotFound(f"{path} does not hold a state dict")
    return {k.removeprefix("module."): v.float() if v.is_floating_point() else v for k, v in state.items()}


def _is_torchscript(path: Path) -> bool:
    with zipfile.ZipFile(path) as zf:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in zf.namelist())
