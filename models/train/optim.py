"""Optimiser parameter groups and the warm-up LR schedules of the reference solver.

Groups follow ``solver/make_optimizer_prompt.py`` (stage 2): every trainable parameter gets
``base_lr``; biases ×``bias_lr_factor`` with their own weight decay; classifiers ×10; the MII
modules ×10 (the reference's "prompt" modules SAT/TSM are its temporal-interaction blocks).
The schedule is stepped once per epoch, like the reference's ``WarmupMultiStepLR``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.train.config import OptimSection, ScheduleSection

# MII, and (mobilenet_v2 backbone) the new layers that make its tokens: none of them is pretrained
MII_PREFIXES = ("short_term.", "long_term.", "cross_modality.", "backbone.reduce.", "backbone.pos_embed")


def param_groups(model: nn.Module, cfg: OptimSection) -> list[dict]:
    """One group per trainable parameter, with its LR and weight decay (names kept for logs)."""
    no_decay = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
    groups = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr, wd = cfg.base_lr, cfg.weight_decay
        if name.endswith("bias"):
            lr, wd = cfg.base_lr * cfg.bias_lr_factor, cfg.weight_decay_bias
        if "classifier" in name:
            lr *= cfg.classifier_lr_factor
        if name.startswith(MII_PREFIXES):
            lr *= cfg.mii_lr_factor
        if name in no_decay:
            wd = 0.0
        groups.append({"params": [p], "lr": lr, "weight_decay": wd, "name": name})
    return groups


def build_optimizer(model: nn.Module, cfg: OptimSection) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    if cfg.name == "SGD":
        return torch.optim.SGD(groups, lr=cfg.base_lr, momentum=cfg.momentum)
    if cfg.name == "AdamW":
        return torch.optim.AdamW(groups, lr=cfg.base_lr)
    return torch.optim.Adam(groups, lr=cfg.base_lr)


def lr_factor(epoch: int, cfg: ScheduleSection, total_epochs: int) -> float:
    """Multiplier of every group's LR during ``epoch`` (0-based)."""
    if epoch < cfg.warmup_epochs:
        alpha = epoch / cfg.warmup_epochs
        warm = cfg.warmup_factor * (1 - alpha) + alpha          # linear from warmup_factor to 1
    else:
        warm = 1.0
    if cfg.kind == "warmup_multistep":
        return warm * cfg.gamma ** sum(1 for s in cfg.steps if s <= epoch)
    if epoch < cfg.warmup_epochs:
        return warm
    span = max(1, total_epochs - cfg.warmup_epochs)
    progress = min(1.0, (epoch - cfg.warmup_epochs) / span)
    return cfg.min_lr_factor + (1 - cfg.min_lr_factor) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleSection,
                    total_epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_factor(e, cfg, total_epochs))
