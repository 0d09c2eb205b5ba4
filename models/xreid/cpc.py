"""Cross-modality Prototype Collaboration (CPC): identity prototypes shared across modalities.

Reference: AsuradaYuci/X-ReID ``model/cm.py`` (``ClusterMemory``, ``CM``/``CM_Hard``) and its use in
``processor/processor_clipreid_stage2.py``. Each modality keeps a memory of one L2-normalised
prototype per identity, initialised at the start of every epoch from the mean feature of that
identity's sequences in that modality. Every training sequence, whatever its modality, is scored
against *both* memories (cosine similarity / temperature, cross-entropy on its identity), and in
the backward pass both memories move toward the batch's features (momentum update, then
re-normalised). So an RGB sequence is pulled toward its identity's IR prototype and vice versa.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, autograd, nn


class _MemoryScores(autograd.Function):
    """``inputs @ memory.T`` whose backward also momentum-updates ``memory`` in place."""

    @staticmethod
    def forward(ctx, inputs: Tensor, labels: Tensor, memory: Tensor, momentum: float, hard: bool) -> Tensor:
        ctx.memory, ctx.momentum, ctx.hard = memory, momentum, hard
        ctx.save_for_backward(inputs, labels)
        return inputs.mm(memory.t())

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        inputs, labels = ctx.saved_tensors
        memory = ctx.memory
        grad_in = grad_out.mm(memory.to(grad_out.dtype)) if ctx.needs_input_grad[0] else None
        with torch.no_grad():
            for pid in torch.unique(labels).tolist():
                feats = inputs[labels == pid].to(memory.dtype)
                if ctx.hard:
                    # the least similar instance: the reference's CM_Hard update
                    target = feats[(feats @ memory[pid]).argmin()]
                else:
                    target = feats.mean(0)
                updated = ctx.momentum * memory[pid] + (1.0 - ctx.momentum) * target
                memory[pid] = updated / updated.norm().clamp_min(1e-12)
        return grad_in, None, None, None, None


class PrototypeMemory(nn.Module):
    """One modality's identity prototypes and their cross-entropy loss.

    Args:
        num_classes: identities (rows of the memory).
        dim: feature width.
        temperature: softmax temperature on cosine similarities (reference 0.05).
        momentum: weight of the old prototype in the update (reference 0.1).
        update: ``hard`` (the least similar batch instance per identity) or ``mean``.
    """

    def __init__(self, num_classes: int, dim: int, temperature: float = 0.05, momentum: float = 0.1,
                 update: str = "hard") -> None:
        super().__init__()
        self.temperature, self.momentum, self.hard = temperature, momentum, update == "hard"
        # not persistent: the reference rebuilds prototypes from the data every epoch
        self.register_buffer("prototypes", torch.zeros(num_classes, dim), persistent=False)

    @torch.no_grad()
    def initialise(self, features: Tensor, labels: Tensor) -> None:
        """Set each identity's prototype to the normalised mean of its ``features`` (N, D)."""
        for pid in torch.unique(labels).tolist():
            self.prototypes[pid] = F.normalize(features[labels == pid].mean(0), dim=0)

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        """Cross-entropy of (B, D) features against the prototypes of their (B,) labels."""
        inputs = F.normalize(features.float(), dim=1)
        scores = _MemoryScores.apply(inputs, labels, self.prototypes, self.momentum, self.hard)
        return F.cross_entropy(scores / self.temperature, labels)


class CrossModalityPrototypes(nn.Module):
    """CPC: an RGB and an IR ``PrototypeMemory``; every sequence is scored against both."""

    def __init__(self, num_classes: int, dim: int, temperature: float = 0.05, momentum: float = 0.1,
                 update: str = "hard") -> None:
        super().__init__()
        self.rgb = PrototypeMemory(num_classes, dim, temperature, momentum, update)
        self.ir = PrototypeMemory(num_classes, dim, temperature, momentum, update)

    @torch.no_grad()
    def initialise(self, features: Tensor, labels: Tensor, modality: Tensor) -> None:
        """Rebuild both memories from per-sequence ``features`` (N, D), ``labels`` and ``modality``."""
        for memory, m in ((self.rgb, 0), (self.ir, 1)):
            sel = modality == m
            if sel.any():
                memory.initialise(features[sel], labels[sel])

    def forward(self, features: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Losses of (B, D) features against both memories: ``{"rgb", "ir", "total"}``."""
        loss_rgb = self.rgb(features, labels)
        loss_ir = self.ir(features, labels)
        return {"rgb": loss_rgb, "ir": loss_ir, "total": loss_rgb + loss_ir}
