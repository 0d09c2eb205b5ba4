"""Supervised-contrastive loss (SupCon, Khosla et al. 2020) over (pseudo-)labelled views.

Used by site adaptation: labels are track ids or cluster pseudo-identities, never ground truth. Every
other sample in the batch is a negative, so the loss cannot be lowered by collapsing all embeddings
to one point; ``hard_negative`` pairs (two tracks seen at once by one camera: certainly two people)
get ``hard_weight`` times the weight of an ordinary negative in the denominator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def supcon_loss(features: Tensor, labels: Tensor, temperature: float = 0.1, hard_negative: Tensor | None = None,
                hard_weight: float = 2.0) -> Tensor:
    """Mean SupCon loss of the anchors that have at least one positive.

    Args:
        features: (N, D) embeddings (normalised here).
        labels: (N,) int; equal labels are positives of each other.
        hard_negative: (N, N) bool, pairs known to be different people (must not share a label).
        hard_weight: weight of a hard negative's term in the denominator.

    Returns:
        A scalar; 0 (with a graph) when no anchor has a positive.
    """
    z = F.normalize(features, dim=1)
    n = z.shape[0]
    logits = z @ z.t() / temperature                                   # N, N
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))
    weights = torch.ones_like(logits)
    if hard_negative is not None:
        weights = torch.where(hard_negative, torch.full_like(weights, hard_weight), weights)
    log_denominator = torch.logsumexp(logits + weights.log(), dim=1, keepdim=True)   # N, 1
    positive = (labels[:, None] == labels[None, :]) & ~eye
    has_pos = positive.any(1)
    if not bool(has_pos.any()):
        return features.sum() * 0.0
    log_prob = (logits - log_denominator).masked_fill(~positive, 0.0)
    per_anchor = -log_prob.sum(1) / positive.sum(1).clamp_min(1)
    return per_anchor[has_pos].mean()
