"""XReID: image encoder + camera embedding + MII + BN-neck heads (+ CPC when training).

The image encoder is a CLIP ViT (``backbone: clip_vit``, the reference) or an ImageNet MobileNetV2
whose feature map becomes the tokens (``backbone: mobilenet_v2``, ``mobilenet.py``; its "CLS" is
the mean token and its "projection" the pooled 1280-d feature, or 2560-d with the edge view).

Data flow for a batch of B sequences of T frames (reference: ``make_model_clipreid.py``):

    frames (B,T,3,H,W) -> backbone per frame, camera embedding on CLS -> tokens (B*T, 1+h*w, W)
      CLS (B*T, W) and its CLIP projection (B*T, P)        -> CLIP branch
      MII short-term on the tokens (B*T, W)                -> short-term branch
      MII long-term on the tokens (B*T, W), if configured  -> long-term branch
    each branch: mean over T -> BN-neck -> (ID classifier when training)
    embedding (eval) = concat of the branches' necked sequence features
      ViT-B-16, long-term off: 768 + 512 + 768 = 2048 (the reference's test feature)

``forward_features`` returns the per-frame features; ``forward_head`` pools and necks them.
"""

from __future__ import annotations

import dataclasses
import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.errors import ContractError
from models.xreid.backbone import ClipImageEncoder
from models.xreid.config import XReIDCfg
from models.xreid.cpc import CrossModalityPrototypes
from models.xreid.heads import BranchHead
from models.xreid.mii import CrossModalityInteraction, LongTermInteraction, ShortTermInteraction
from models.xreid.mobilenet import MobileNetV2Encoder

log = logging.getLogger(__name__)

MODALITIES = ("rgb", "ir")  # index = modality code in tensors


def build_backbone(cfg: XReIDCfg) -> ClipImageEncoder | MobileNetV2Encoder:
    """The image encoder ``cfg.backbone`` names; both return ``(tokens, cls_proj)`` per frame."""
    if cfg.backbone == "mobilenet_v2":
        return MobileNetV2Encoder(cfg.input_hw, cfg.token_dim, cfg.frozen_blocks, cfg.edge_view, cfg.pixel_mean,
                                  cfg.pixel_std)
    return ClipImageEncoder(cfg.clip_model, cfg.input_hw, cfg.stride_hw, cfg.quick_gelu, cfg.freeze_patch_embed)


class XReID(nn.Module):
    """Video visible-infrared person re-ID network (X-ReID).

    Args:
        cfg: architecture settings; ``cfg.num_classes > 0`` adds ID classifiers and CPC memories.
    """

    def __init__(self, cfg: XReIDCfg) -> None:
        super().__init__()
        self.cfg = cfg
        self.model_id = ""
        self.backbone = build_backbone(cfg)
        width, proj = self.backbone.width, self.backbone.proj_dim
        self.camera_embed = nn.Parameter(torch.zeros(cfg.camera_num, width))
        nn.init.trunc_normal_(self.camera_embed, std=0.02)
        # which training cameras saw which modality; an unseen camera gets the mean embedding of
        # its modality's cameras. Persistent: it travels in the checkpoint with the embeddings.
        self.register_buffer("camera_modalities", torch.ones(cfg.camera_num, 2, dtype=torch.bool))
        n = cfg.num_classes
        self.clip_head = BranchHead((width, proj), n)
        self.short_term = ShortTermInteraction(width, cfg.mii_heads, cfg.mii_shift_div)
        self.short_term_head = BranchHead((width,), n, cfg.share_frame_classifier)
        self.long_term = None
        self.long_term_head = None
        if cfg.mii_long_term != "off":
            self.long_term = LongTermInteraction(width, cfg.mii_heads, cfg.mii_long_term)
            self.long_term_head = BranchHead((width,), n, cfg.share_frame_classifier)
        self.cross_modality = CrossModalityInteraction(width, cfg.mii_heads) if cfg.mii_cross_modality else None
        self.cpc = (CrossModalityPrototypes(n, width + proj, cfg.cpc_temperature, cfg.cpc_momentum, cfg.cpc_update)
                    if n else None)
        self.embed_dim: int = width + proj + width * (2 if self.long_term is not None else 1)
        if cfg.site_centre:
            self.register_buffer("site_centre", torch.zeros(2, self.embed_dim))

    # ----------------------------------------------------------------- site centre
    def set_site_centre(self, centre: Tensor) -> None:
        """Subtract ``centre`` ((2, embed_dim), rows rgb and ir) from every unit embedding at inference.

        Turns ``cfg.site_centre`` on, so the buffer travels in the checkpoint and ``model_id`` changes:
        vectors with and without the centre never share a gallery.
        """
        if tuple(centre.shape) != (2, self.embed_dim):
            raise ContractError(f"site centre must be (2, {self.embed_dim}), got {tuple(centre.shape)}")
        if not self.cfg.site_centre:
            self.cfg = dataclasses.replace(self.cfg, site_centre=True)
            self.register_buffer("site_centre", torch.zeros(2, self.embed_dim))
        self.site_centre.copy_(centre.to(self.site_centre.dtype))

    # ----------------------------------------------------------------- cameras
    def set_camera_modalities(self, seen: Tensor) -> None:
        """Record which training cameras carried which modality: ``seen`` (camera_num, 2) bool."""
        if tuple(seen.shape) != (self.cfg.camera_num, 2):
            raise ContractError(f"camera_modalities must be ({self.cfg.camera_num}, 2), got {tuple(seen.shape)}")
        self.camera_modalities.copy_(seen.to(torch.bool))

    def unseen_camera_embeddings(self) -> Tensor:
        """(2, width): the embedding an unseen RGB / IR camera gets (modality mean, or zero)."""
        if self.cfg.unseen_camera == "zero":
            return self.camera_embed.new_zeros(2, self.camera_embed.shape[1])
        mask = self.camera_modalities.to(self.camera_embed.dtype)  # C, 2
        counts = mask.sum(0).clamp_min(1.0)
        return (mask.t() @ self.camera_embed) / counts[:, None]

    def camera_bias(self, modality: Tensor, camera: Tensor | None) -> Tensor:
        """(B, width) scaled camera embedding per sequence; camera None or -1 means unseen."""
        if modality.dim() != 1 or bool(((modality < 0) | (modality > 1)).any()):
            raise ContractError("modality must be a (B,) tensor of 0 (rgb) / 1 (ir)")
        fallback = self.unseen_camera_embeddings()[modality]
        if camera is None:
            return self.cfg.sie_coe * fallback
        if camera.shape != modality.shape or bool((camera >= self.cfg.camera_num).any()):
            raise ContractError(f"camera must be (B,) indices < {self.cfg.camera_num} or -1 (unseen)")
        known = camera >= 0
        emb = torch.where(known[:, None], self.camera_embed[camera.clamp_min(0)], fallback)
        return self.cfg.sie_coe * emb

    # ----------------------------------------------------------------- forward
    def forward_features(self, frames: Tensor, modality: Tensor, camera: Tensor | None = None) -> dict[str, Tensor]:
        """Per-frame features.

        Args:
            frames: (B, T, 3, H, W) normalised frames.
            modality: (B,) long, 0 = RGB, 1 = IR.
            camera: (B,) long training-camera index, -1 for an unseen camera; None = all unseen.

        Returns:
            ``cls`` (B,T,W), ``proj`` (B,T,P), ``short_term`` (B,T,W), ``long_term`` (B,T,W) when
            configured, and ``modality`` (B,) passed through for the head.
        """
        if frames.dim() != 5 or frames.shape[2] != 3:
            raise ContractError(f"frames must be (B, T, 3, H, W), got {tuple(frames.shape)}")
        b, t = frames.shape[:2]
        cls_bias = self.camera_bias(modality.to(frames.device), None if camera is None else camera.to(frames.device))
        tokens, cls_proj = self.backbone(frames.flatten(0, 1), cls_bias.repeat_interleave(t, dim=0))
        mii_in = tokens.detach() if self.cfg.mii_detach_input else tokens  # reference: MII sees a detached copy
        out = {
            "cls": tokens[:, 0].unflatten(0, (b, t)),
            "proj": cls_proj.unflatten(0, (b, t)),
            "short_term": self.short_term(mii_in, b, t).unflatten(0, (b, t)),
            "modality": modality,
        }
        if self.long_term is not None:
            out["long_term"] = self.long_term(mii_in, b, t).unflatten(0, (b, t))
        return out

    def forward_head(self, feats: dict[str, Tensor], pre_logits: bool = False) -> Tensor | dict[str, Tensor | list[Tensor]]:
        """Pool over time, BN-neck, and classify.

        Returns:
            pre_logits (or no classifiers): the (B, embed_dim) embedding, not normalised.
            otherwise a dict (see models/xreid/README.md "Training outputs"):
              ``id_logits`` [CLIP seq, short-term seq, (long-term seq)] each (B, C);
              ``frame_id_logits`` [CLIP frame, short-term frame, (long-term frame)] each (B*T, C);
              ``triplet_features`` [CLS mean, proj mean, short-term mean, (long-term mean)] (B, ·);
              ``prototype_features`` (B, W+P) necked CLIP feature for CPC;
              ``cross_modal_features`` (B, W) or absent (single-modality batch / not built);
              ``embedding`` (B, embed_dim).
        """
        branches = self._branches(feats)
        seq_necked = [head.sequence([p.mean(1) for p in parts]) for head, parts in branches]
        embedding = torch.cat(seq_necked, dim=1)
        if pre_logits or self.cfg.num_classes == 0:
            return embedding
        frame_necked = [head.frames([p.flatten(0, 1) for p in parts]) for head, parts in branches]
        out: dict[str, Tensor | list[Tensor]] = {
            "id_logits": [head.seq_logits(x) for (head, _), x in zip(branches, seq_necked, strict=True)],
            "frame_id_logits": [head.frame_logits(x) for (head, _), x in zip(branches, frame_necked, strict=True)],
            "triplet_features": [p.mean(1) for _, parts in branches for p in parts],
            "prototype_features": seq_necked[0],
            "embedding": embedding,
        }
        if self.cross_modality is not None:
            fused = self.cross_modality(feats["short_term"], feats["modality"])
            if fused is not None:
                out["cross_modal_features"] = fused
        return out

    def forward(self, frames: Tensor, modality: Tensor, camera: Tensor | None = None):
        """Embedding (B, embed_dim) in eval mode (site-centred when the model has a centre, then not
        normalised); the training dict of ``forward_head`` in train mode."""
        out = self.forward_head(self.forward_features(frames, modality, camera), pre_logits=not self.training)
        if self.training or not self.cfg.site_centre:
            return out
        return F.normalize(out.float(), dim=1).to(out.dtype) - self.site_centre[modality].to(out.dtype)

    @torch.no_grad()
    def prototype_features(self, frames: Tensor) -> Tensor:
        """(B, W+P) necked CLIP sequence feature without camera embedding, to initialise CPC.

        The reference builds its memories from this path (``model(img, get_image=True)``).
        """
        b, t = frames.shape[:2]
        tokens, cls_proj = self.backbone(frames.flatten(0, 1))
        return self.clip_head.sequence([tokens[:, 0].unflatten(0, (b, t)).mean(1), cls_proj.unflatten(0, (b, t)).mean(1)])

    def _branches(self, feats: dict[str, Tensor]) -> list[tuple[BranchHead, list[Tensor]]]:
        branches = [(self.clip_head, [feats["cls"], feats["proj"]]), (self.short_term_head, [feats["short_term"]])]
        if self.long_term_head is not None:
            branches.append((self.long_term_head, [feats["long_term"]]))
        return branches

    def no_weight_decay(self) -> set[str]:
        """Parameter names an optimiser should not decay (embeddings)."""
        return {"camera_embed", "backbone.visual.class_embedding", "backbone.visual.positional_embedding",
                "backbone.pos_embed"}
