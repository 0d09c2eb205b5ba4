"""Multi-granularity Information Interaction (MII): temporal and cross-modality token interaction.

The paper's MII has three parts; what the reference code (AsuradaYuci/X-ReID) holds for each:

* short-term interaction between adjacent frames: ``model/SP_TPM.py`` ``TPM_space_shift``. A
  quarter of the patch-token channels shifts one frame forward in time, a quarter one frame back
  (temporal shift), then each frame's CLS token queries the shifted patch tokens through two
  cross-attention blocks. Used in the reference forward. -> ``ShortTermInteraction``.
* long-term cross-frame fusion: the reference builds ``model/TP_TPM.py`` ``TPM_temp_shift`` (frame
  t+1's CLS queries frame t's patches) but its released forward never calls it.
  -> ``LongTermInteraction`` with ``mode="rotate"`` (that module) or ``mode="sequence"`` (each
  frame's CLS queries the patch tokens of every frame of its sequence: our reading of "long-term").
* cross-modality alignment: absent from the reference code. -> ``CrossModalityInteraction`` and
  ``cross_modality_constraint_loss``, training-only, from the paper's description.

All blocks share one shape: ``CrossAttentionBlock`` (pre-norm cross-attention + MLP, residual).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CrossAttention(nn.Module):
    """Multi-head attention of queries over a separate token set.

    As in the reference, keys see a LayerNorm of the tokens, values the raw tokens, and the
    q/k/v projections have no bias.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.key_norm = nn.LayerNorm(dim)
        self.query = nn.Linear(dim, dim, bias=False)
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=False)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, queries: Tensor, tokens: Tensor) -> Tensor:
        """(B, M, D) queries over (B, N, D) tokens -> (B, M, D)."""
        b, m, d = queries.shape
        n, h = tokens.shape[1], self.num_heads
        q = self.query(queries).view(b, m, h, d // h).transpose(1, 2)  # B, h, M, d/h
        k = self.key(self.key_norm(tokens)).view(b, n, h, d // h).transpose(1, 2)
        v = self.value(tokens).view(b, n, h, d // h).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)  # B, h, M, d/h
        return self.out_proj(out.transpose(1, 2).reshape(b, m, d))


class Mlp(nn.Module):
    """Two linear layers with GELU, hidden width ``4 * dim``."""

    def __init__(self, dim: int, ratio: float = 4.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, int(dim * ratio))
        self.act = nn.GELU()
        self.fc2 = nn.Linear(int(dim * ratio), dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class CrossAttentionBlock(nn.Module):
    """``q + attn(norm(q), tokens)`` then ``q + mlp(norm(q))``: one query-refinement step."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.norm_query = nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, num_heads)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = Mlp(dim)

    def forward(self, queries: Tensor, tokens: Tensor) -> Tensor:
        queries = queries + self.attn(self.norm_query(queries), tokens)
        return queries + self.mlp(self.norm_mlp(queries))


def temporal_shift(patches: Tensor, shift_div: int = 4) -> Tensor:
    """Shift channel groups of patch tokens one frame along time, edges repeating.

    Channels ``[0, D/div)`` of frame t take frame t-1's values, channels ``[D/div, 2D/div)`` take
    frame t+1's; the first/last frame keep their own (the reference's ``padding='repeat'``).

    Args:
        patches: (B, T, N, D) patch tokens.
    """
    t, d = patches.shape[1], patches.shape[-1]
    if t == 1:
        return patches
    fold = d // shift_div
    fwd = torch.cat([patches[:, :1, :, :fold], patches[:, :-1, :, :fold]], dim=1)
    bwd = torch.cat([patches[:, 1:, :, fold:2 * fold], patches[:, -1:, :, fold:2 * fold]], dim=1)
    return torch.cat([fwd, bwd, patches[..., 2 * fold:]], dim=-1)


class ShortTermInteraction(nn.Module):
    """Adjacent-frame interaction: CLS queries temporally shifted patch tokens (2 blocks)."""

    def __init__(self, dim: int, num_heads: int, shift_div: int = 4) -> None:
        super().__init__()
        self.shift_div = shift_div
        self.blocks = nn.ModuleList([CrossAttentionBlock(dim, num_heads) for _ in range(2)])

    def forward(self, tokens: Tensor, b: int, t: int) -> Tensor:
        """(B*T, 1+N, D) frame tokens -> (B*T, D) per-frame short-term features."""
        bt, length, d = tokens.shape
        patches = temporal_shift(tokens[:, 1:].reshape(b, t, length - 1, d), self.shift_div)
        patches = patches.reshape(bt, length - 1, d)
        x = tokens[:, :1]  # B*T, 1, D
        for block in self.blocks:
            x = block(x, patches)
        return x[:, 0]


class LongTermInteraction(nn.Module):
    """Cross-frame fusion: CLS tokens query patch tokens of other frames (1 block).

    ``mode="sequence"``: each frame's CLS attends to the patches of all T frames of its sequence.
    ``mode="rotate"``: the reference ``TPM_temp_shift``: output t is frame t+1's CLS (cyclic)
    attending to frame t's patches.
    """

    def __init__(self, dim: int, num_heads: int, mode: str = "sequence") -> None:
        super().__init__()
        if mode not in ("sequence", "rotate"):
            raise ValueError(f"long-term mode must be sequence|rotate, got {mode!r}")
        self.mode = mode
        self.block = CrossAttentionBlock(dim, num_heads)

    def forward(self, tokens: Tensor, b: int, t: int) -> Tensor:
        """(B*T, 1+N, D) frame tokens -> (B*T, D) per-frame long-term features."""
        bt, length, d = tokens.shape
        cls = tokens[:, 0].reshape(b, t, d)
        if self.mode == "rotate":
            rolled = torch.roll(cls, shifts=-1, dims=1).reshape(bt, 1, d)  # position t <- frame t+1
            return self.block(rolled, tokens[:, 1:])[:, 0]
        patches = tokens[:, 1:].reshape(b, t * (length - 1), d)  # every frame's patches
        return self.block(cls, patches).reshape(bt, d)


class CrossModalityInteraction(nn.Module):
    """Training-only: each sequence's frame features query the other modality's frame features.

    Not in the reference code; built from the paper's "cross-modality feature alignment" (CII,
    dropped at inference). The batch must hold both modalities (the VVI sampler guarantees it).
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.block = CrossAttentionBlock(dim, num_heads)

    def forward(self, frame_feats: Tensor, modality: Tensor) -> Tensor | None:
        """(B, T, D) frame features, (B,) modality -> (B, D) interacted sequence features.

        Returns None when the batch holds a single modality (nothing to interact with).
        """
        out = torch.empty_like(frame_feats[:, 0])
        for m in (0, 1):
            own, other = modality == m, modality != m
            if not own.any():
                continue
            if not other.any():
                return None
            memory = frame_feats[other].reshape(1, -1, frame_feats.shape[-1])  # 1, B_o*T, D
            queries = frame_feats[own]  # B_m, T, D
            fused = self.block(queries, memory.expand(queries.shape[0], -1, -1))
            out[own] = fused.mean(1)
        return out


def cross_modality_constraint_loss(features: Tensor, labels: Tensor, modality: Tensor) -> Tensor:
    """Pull each identity's RGB and IR feature centres together (paper's CMCL, our reading).

    Mean over identities present in both modalities of ``1 - cos(centre_rgb, centre_ir)``; zero
    (with a graph) when no identity has both modalities in the batch.

    Args:
        features: (B, D) sequence features (e.g. ``CrossModalityInteraction`` output).
        labels: (B,) identity labels.
        modality: (B,) 0 = RGB, 1 = IR.
    """
    terms = []
    for pid in torch.unique(labels):
        rgb = (labels == pid) & (modality == 0)
        ir = (labels == pid) & (modality == 1)
        if rgb.any() and ir.any():
            terms.append(1.0 - F.cosine_similarity(features[rgb].mean(0), features[ir].mean(0), dim=0))
    if not terms:
        return features.sum() * 0.0
    return torch.stack(terms).mean()
