"""BN-neck + ID-classifier head for one feature branch, at sequence and frame level.

The reference (``make_model_clipreid.py``) gives every branch a BatchNorm1d "neck" whose bias is
frozen at zero, applied to the temporally averaged feature (sequence level) and to each frame's
feature (frame level), and bias-free linear ID classifiers initialised with std 0.001 on the
necked features. A branch may have several parts (the CLIP branch has the CLS feature and its
projection); parts are necked separately and concatenated.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def bn_neck(dim: int) -> nn.BatchNorm1d:
    """BatchNorm1d with weight 1, bias 0 and a frozen bias (the BNNeck of strong ReID baselines)."""
    bn = nn.BatchNorm1d(dim)
    nn.init.ones_(bn.weight)
    nn.init.zeros_(bn.bias)
    bn.bias.requires_grad_(False)
    return bn


def id_classifier(dim: int, num_classes: int) -> nn.Linear:
    """Bias-free linear ID classifier, weights N(0, 0.001)."""
    fc = nn.Linear(dim, num_classes, bias=False)
    nn.init.normal_(fc.weight, std=0.001)
    return fc


class BranchHead(nn.Module):
    """Necks and classifiers of one branch.

    Args:
        part_dims: width of each part (CLIP branch: ``(width, proj_dim)``; MII branches: ``(width,)``).
        num_classes: identities; 0 builds no classifier.
        share_frame_classifier: frame logits reuse the sequence classifier (the reference does so
            for its MII branch) instead of a separate ``frame_classifier``.
    """

    def __init__(self, part_dims: tuple[int, ...], num_classes: int = 0, share_frame_classifier: bool = False) -> None:
        super().__init__()
        total = sum(part_dims)
        self.seq_norms = nn.ModuleList([bn_neck(d) for d in part_dims])
        self.frame_norms = nn.ModuleList([bn_neck(d) for d in part_dims])
        self.seq_classifier = id_classifier(total, num_classes) if num_classes else None
        self.frame_classifier = (
            id_classifier(total, num_classes) if num_classes and not share_frame_classifier else None
        )

    def sequence(self, parts: list[Tensor]) -> Tensor:
        """(B, d_i) sequence-level parts -> (B, sum d_i) necked and concatenated."""
        return _cat([norm(p) for norm, p in zip(self.seq_norms, parts, strict=True)])

    def frames(self, parts: list[Tensor]) -> Tensor:
        """(B*T, d_i) frame-level parts -> (B*T, sum d_i) necked and concatenated."""
        return _cat([norm(p) for norm, p in zip(self.frame_norms, parts, strict=True)])

    def seq_logits(self, necked: Tensor) -> Tensor:
        assert self.seq_classifier is not None, "built with num_classes=0"
        return self.seq_classifier(necked)

    def frame_logits(self, necked: Tensor) -> Tensor:
        assert self.seq_classifier is not None, "built with num_classes=0"
        return (self.frame_classifier or self.seq_classifier)(necked)


def _cat(parts: list[Tensor]) -> Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
