"""X-ReID training objective (reference: ``loss/make_loss.py`` and the stage-2 processor).

    total = id_weight * Σ CE_ls(sequence logits)            (label-smoothed ID loss, each branch)
          + triplet_weight * Σ triplet(sequence features)   (hard-mined, each feature part)
          + frame_id_weight / T * Σ CE(frame logits)        (per-frame ID loss, each branch)
          + cpc_weight * (CE vs RGB prototypes + CE vs IR prototypes)     (CPC)
          + cross_modal_weight * cross-modality constraint on MII's CII output

Triplet variants: ``batch_hard`` (the reference: hardest positive and negative over the whole
mixed-modality batch, margin ranking), ``soft_margin`` (log(1 + exp(d_ap - d_an)), the reference's
NO_MARGIN option) and ``cross_modality`` (positives and negatives mined only from the other
modality, so the loss acts on the modality gap itself).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from models.errors import ContractError
from models.train.config import LossSection


def pairwise_distance(x: Tensor) -> Tensor:
    """(B, D) → (B, B) Euclidean distances (clamped for a stable gradient at 0)."""
    sq = (x * x).sum(1)
    d = sq[:, None] + sq[None, :] - 2.0 * x @ x.t()
    return d.clamp_min(1e-12).sqrt()


def triplet_loss(features: Tensor, labels: Tensor, modality: Tensor, kind: str = "batch_hard",
                 margin: float = 0.3) -> Tensor:
    """Batch-hard triplet loss over (B, D) features.

    Args:
        features: (B, D) sequence features (not normalised, as in the reference).
        labels: (B,) identities; every anchor needs a positive in the batch.
        modality: (B,) 0 = RGB, 1 = IR (used by ``cross_modality``).
        kind: ``batch_hard`` | ``soft_margin`` | ``cross_modality``.
        margin: ranking margin (``batch_hard``, ``cross_modality``).
    """
    d = pairwise_distance(features.float())
    same = labels[:, None] == labels[None, :]
    if kind == "cross_modality":
        allowed = modality[:, None] != modality[None, :]
    else:
        allowed = torch.ones_like(same)
    pos_mask = same & allowed & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    neg_mask = ~same & allowed
    valid = pos_mask.any(1) & neg_mask.any(1)
    if not bool(valid.any()):
        raise ContractError("triplet loss needs, for some anchor, a positive and a negative in the batch")
    d_ap = torch.where(pos_mask, d, torch.full_like(d, -1.0)).max(1).values
    d_an = torch.where(neg_mask, d, torch.full_like(d, float("inf"))).min(1).values
    d_ap, d_an = d_ap[valid], d_an[valid]
    if kind == "soft_margin":
        return F.softplus(d_ap - d_an).mean()
    return F.relu(d_ap - d_an + margin).mean()


def cross_entropy_ls(logits: Tensor, labels: Tensor, smoothing: float) -> Tensor:
    """Cross-entropy with label smoothing ε: target (1-ε) on the label, ε/C spread over all classes."""
    return F.cross_entropy(logits.float(), labels, label_smoothing=smoothing)


def xreid_loss(out: dict, labels: Tensor, modality: Tensor, seq_len: int, cfg: LossSection,
               cpc=None) -> dict[str, Tensor]:
    """All terms of the objective, and ``total``.

    Args:
        out: the model's training dict (``forward_head``): ``id_logits``, ``frame_id_logits``,
            ``triplet_features``, ``prototype_features``, optionally ``cross_modal_features``.
        labels: (B,) identities. modality: (B,) 0 = RGB, 1 = IR. seq_len: T.
        cfg: weights and variants.
        cpc: the model's ``CrossModalityPrototypes`` (None or weight 0: no CPC term).
    """
    # branch selection: "clip" keeps only the CLIP branch (first id/frame logits, CLS + projection)
    n_branch = 1 if cfg.branches == "clip" else len(out["id_logits"])
    id_logits = out["id_logits"][:n_branch]
    frame_logits = out["frame_id_logits"][:n_branch]
    trip_feats = out["triplet_features"][: 2 if cfg.branches == "clip" else None]
    frame_labels = labels.repeat_interleave(seq_len)
    terms: dict[str, Tensor] = {
        "id": cfg.id_weight * sum(cross_entropy_ls(s, labels, cfg.label_smoothing) for s in id_logits),
        "triplet": cfg.triplet_weight * sum(triplet_loss(f, labels, modality, cfg.triplet, cfg.triplet_margin)
                                            for f in trip_feats),
        "frame_id": cfg.frame_id_weight / seq_len * sum(F.cross_entropy(s.float(), frame_labels)
                                                         for s in frame_logits),
    }
    if cpc is not None and cfg.cpc_weight > 0:
        cpc_losses = cpc(out["prototype_features"], labels)
        terms["cpc"] = cfg.cpc_weight * cpc_losses["total"]
    if cfg.branches == "all" and cfg.cross_modal_weight > 0 and "cross_modal_features" in out:
        from models.xreid.mii import cross_modality_constraint_loss

        terms["cross_modal"] = cfg.cross_modal_weight * cross_modality_constraint_loss(
            out["cross_modal_features"].float(), labels, modality)
    terms["total"] = sum(terms.values())
    return terms
