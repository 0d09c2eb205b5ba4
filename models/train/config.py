"""TrainCfg: one frozen dataclass tree for ``xreid train`` / ``xreid eval`` (YAML in configs/train-*.yaml).

Defaults are the reference recipe (AsuradaYuci/X-ReID ``configs/vit_clipreid_vcm.yml`` stage 2,
``loss/make_loss.py``, ``solver/make_optimizer_prompt.py``, ``train_vcm.py``): Adam at 5e-6
(bias ×2, classifiers ×10, MII ×10), weight decay 1e-4, linear warm-up over 10 epochs from 0.1×,
×0.1 at epochs 30/50/70, 30 epochs of 300 iterations, 4 identities × 2 tracklets per modality,
T = 10, ID weight 0.25, triplet margin 0.3 weight 1.0, frame ID loss / T, both CPC memories.
The workers load YAML into this tree with ``pipeline.config.loader.load_config``; nothing here reads files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from models.errors import ConfigError


@dataclass(frozen=True)
class ModelSection:
    name: str = "xreid_vitb16"
    pretrained: str | None = None            # open_clip tag (local cache only) or a file
    overrides: dict[str, Any] = field(default_factory=dict)   # XReIDCfg fields


@dataclass(frozen=True)
class DataSection:
    kind: Literal["vcm", "bupt"] = "vcm"     # synthetic data is written in the VCM layout
    root: str = ""                           # --data overrides
    min_seq_len: int = 12
    num_cameras: int = 12                    # VCM only; BUPTCampus has 6
    cache_frames: bool = False               # keep decoded, resized frames in memory
    num_workers: int = 0
    rgb_grayscale_p: float = 0.0             # not in the reference: greys a visible training sequence
    rgb_gray_mode: Literal["luminance", "random_mix"] = "luminance"   # how (models/data/gray.py)

    def __post_init__(self) -> None:
        if self.min_seq_len < 1 or self.num_cameras < 1 or self.num_workers < 0:
            raise ConfigError("data.min_seq_len and data.num_cameras must be >= 1, data.num_workers >= 0")
        if not 0.0 <= self.rgb_grayscale_p <= 1.0:
            raise ConfigError(f"data.rgb_grayscale_p must be in [0, 1], got {self.rgb_grayscale_p}")
        if self.rgb_gray_mode not in ("luminance", "random_mix"):
            raise ConfigError(f"data.rgb_gray_mode must be luminance|random_mix, got {self.rgb_gray_mode!r}")


@dataclass(frozen=True)
class SamplerSection:
    num_pids: int = 4                        # P identities per batch
    num_instances: int = 2                   # K tracklets per identity per modality

    def __post_init__(self) -> None:
        if self.num_pids < 1 or self.num_instances < 1:
            raise ConfigError("sampler.num_pids and sampler.num_instances must be >= 1")


@dataclass(frozen=True)
class LossSection:
    branches: Literal["all", "clip"] = "all"   # "clip": train/embed only the CLIP branch (no MII)
    id_weight: float = 0.25
    label_smoothing: float = 0.1             # reference flag IF_LABELSMOOTH on; its code path uses plain CE (0.0)
    triplet: Literal["batch_hard", "soft_margin", "cross_modality"] = "batch_hard"
    triplet_margin: float = 0.3
    triplet_weight: float = 1.0
    frame_id_weight: float = 1.0             # applied as weight / T, like the reference
    cpc_weight: float = 1.0                  # 0 disables CPC (ablation)
    cpc_start_epoch: int = 0                 # 0-based epoch CPC (and its memories) starts at; 0 = reference
    cross_modal_weight: float = 1.0          # paper's cross-modality constraint on MII's CII output

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"loss.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if min(self.id_weight, self.triplet_weight, self.frame_id_weight, self.cpc_weight,
               self.cross_modal_weight, self.triplet_margin) < 0:
            raise ConfigError("loss weights and triplet_margin must be >= 0")
        if isinstance(self.cpc_start_epoch, bool) or not isinstance(self.cpc_start_epoch, int) \
                or self.cpc_start_epoch < 0:
            raise ConfigError(f"loss.cpc_start_epoch must be an integer >= 0, got {self.cpc_start_epoch!r}")


@dataclass(frozen=True)
class OptimSection:
    name: Literal["Adam", "AdamW", "SGD"] = "Adam"
    base_lr: float = 5e-6
    weight_decay: float = 1e-4
    weight_decay_bias: float = 1e-4
    bias_lr_factor: float = 2.0
    classifier_lr_factor: float = 10.0       # reference LARGE_FC_LR
    mii_lr_factor: float = 10.0              # reference LARGE_Prompt_LR (its SAT/TSM modules = our MII)
    momentum: float = 0.9                    # SGD only

    def __post_init__(self) -> None:
        if self.base_lr <= 0 or self.weight_decay < 0 or self.weight_decay_bias < 0:
            raise ConfigError("optim.base_lr must be > 0 and weight decays >= 0")


@dataclass(frozen=True)
class ScheduleSection:
    kind: Literal["warmup_multistep", "warmup_cosine"] = "warmup_multistep"
    warmup_epochs: int = 10
    warmup_factor: float = 0.1
    steps: tuple[int, ...] = (30, 50, 70)
    gamma: float = 0.1
    min_lr_factor: float = 0.01              # cosine floor, fraction of base_lr

    def __post_init__(self) -> None:
        if self.warmup_epochs < 0 or not 0.0 < self.warmup_factor <= 1.0 or not 0.0 < self.gamma <= 1.0:
            raise ConfigError("schedule.warmup_epochs >= 0, warmup_factor and gamma in (0, 1]")
        if list(self.steps) != sorted(self.steps):
            raise ConfigError(f"schedule.steps must increase, got {list(self.steps)}")


@dataclass(frozen=True)
class TrainCfg:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    sampler: SamplerSection = field(default_factory=SamplerSection)
    loss: LossSection = field(default_factory=LossSection)
    optim: OptimSection = field(default_factory=OptimSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    epochs: int = 30
    iters_per_epoch: int = 300               # 0: one pass of the sampler (min(#rgb,#ir) // (P*K) batches)
    eval_period: int = 2                     # epochs; 0 = only at the end
    checkpoint_period: int = 1               # epochs between resumable checkpoints
    eval_batch_size: int = 32
    seed: int = 1234
    device: str = "auto"                     # auto | cpu | cuda | cuda:N
    amp: bool = True                         # autocast (bf16/fp16) on CUDA; ignored on CPU
    threads: int = 0                         # torch CPU threads; 0 = leave torch's default

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.iters_per_epoch < 0 or self.eval_period < 0 or self.checkpoint_period < 1:
            raise ConfigError("epochs >= 1, iters_per_epoch >= 0, eval_period >= 0, checkpoint_period >= 1")
        if self.eval_batch_size < 1 or self.threads < 0:
            raise ConfigError("eval_batch_size >= 1 and threads >= 0")
        if self.loss.cpc_weight > 0 and self.loss.cpc_start_epoch >= self.epochs:
            raise ConfigError(f"loss.cpc_start_epoch {self.loss.cpc_start_epoch} >= epochs {self.epochs}: CPC would "
                              "never run; set loss.cpc_weight 0 to disable it")
