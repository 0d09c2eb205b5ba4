"""TrainCfg: one frozen dataclass tree for ``xreid train`` / ``xreid eval`` (YAML in configs/train-*.yaml).

Defaults are the reference recipe (AsuradaYuci/X-ReID ``configs/vit_clipreid_vcm.yml`` stage 2,
``loss/make_loss.py``, ``solver/make_optimizer_prompt.py``, ``train_vcm.py``): Adam at 5e-6
(bias ×2, classifiers ×10, MII ×10), weight decay 1e-4, linear warm-up over 10 epochs from 0.1×,
×0.1 at epochs 30/50/70, 30 epochs of 300 iterations, 4 identities × 2 tracklets per modality,
T = 10, ID weight 0.25, triplet margin 0.3 weight 1.0, frame ID loss / T, both CPC memories.
The workers load YAML into this tree with ``pipeline.config.loader.load_config``; nothing here reads files.
"""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator

from models.config_base import Section, config_dataclass

NonNeg = Annotated[float, Field(ge=0)]
AtLeastOne = Annotated[int, Field(ge=1)]
Fraction = Annotated[float, Field(gt=0, le=1)]


@config_dataclass
class ModelSection(Section):
    name: str = "xreid_vitb16"
    pretrained: str | None = None            # open_clip tag (local cache only) or a file
    overrides: dict[str, Any] = field(default_factory=dict)   # XReIDCfg fields


@config_dataclass
class DataSection(Section):
    kind: Literal["vcm", "bupt"] = "vcm"     # synthetic data is written in the VCM layout
    root: str = ""                           # --data overrides
    min_seq_len: AtLeastOne = 12
    num_cameras: AtLeastOne = 12             # VCM only; BUPTCampus has 6
    cache_frames: bool = False               # keep decoded, resized frames in memory
    num_workers: Annotated[int, Field(ge=0)] = 0
    rgb_grayscale_p: Annotated[float, Field(ge=0, le=1)] = 0.0  # not in the reference: greys a visible sequence
    rgb_gray_mode: Literal["luminance", "random_mix"] = "luminance"   # how (models/data/gray.py)


@config_dataclass
class SamplerSection(Section):
    num_pids: AtLeastOne = 4                 # P identities per batch
    num_instances: AtLeastOne = 2            # K tracklets per identity per modality


@config_dataclass
class LossSection(Section):
    branches: Literal["all", "clip"] = "all"   # "clip": train/embed only the CLIP branch (no MII)
    id_weight: NonNeg = 0.25
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.1  # reference flag IF_LABELSMOOTH on; its code path
                                                                  # uses plain CE (0.0)
    triplet: Literal["batch_hard", "soft_margin", "cross_modality"] = "batch_hard"
    triplet_margin: NonNeg = 0.3
    triplet_weight: NonNeg = 1.0
    frame_id_weight: NonNeg = 1.0            # applied as weight / T, like the reference
    cpc_weight: NonNeg = 1.0                 # 0 disables CPC (ablation)
    cpc_start_epoch: Annotated[int, Field(ge=0)] = 0  # 0-based epoch CPC (and its memories) starts at; 0 = reference
    cross_modal_weight: NonNeg = 1.0         # paper's cross-modality constraint on MII's CII output


@config_dataclass
class OptimSection(Section):
    name: Literal["Adam", "AdamW", "SGD"] = "Adam"
    base_lr: Annotated[float, Field(gt=0)] = 5e-6
    weight_decay: NonNeg = 1e-4
    weight_decay_bias: NonNeg = 1e-4
    bias_lr_factor: float = 2.0
    classifier_lr_factor: float = 10.0       # reference LARGE_FC_LR
    mii_lr_factor: float = 10.0              # reference LARGE_Prompt_LR (its SAT/TSM modules = our MII)
    momentum: float = 0.9                    # SGD only


@config_dataclass
class ScheduleSection(Section):
    kind: Literal["warmup_multistep", "warmup_cosine"] = "warmup_multistep"
    warmup_epochs: Annotated[int, Field(ge=0)] = 10
    warmup_factor: Fraction = 0.1
    steps: tuple[int, ...] = (30, 50, 70)
    gamma: Fraction = 0.1
    min_lr_factor: float = 0.01              # cosine floor, fraction of base_lr

    @model_validator(mode="after")
    def _steps_increase(self) -> Self:
        if list(self.steps) != sorted(self.steps):
            raise ValueError(f"steps must increase, got {list(self.steps)}")
        return self


@config_dataclass
class TrainCfg(Section):
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    sampler: SamplerSection = field(default_factory=SamplerSection)
    loss: LossSection = field(default_factory=LossSection)
    optim: OptimSection = field(default_factory=OptimSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    epochs: AtLeastOne = 30
    iters_per_epoch: Annotated[int, Field(ge=0)] = 300  # 0: one pass of the sampler (min(#rgb,#ir) // (P*K) batches)
    eval_period: Annotated[int, Field(ge=0)] = 2        # epochs; 0 = only at the end
    checkpoint_period: AtLeastOne = 1        # epochs between resumable checkpoints
    eval_batch_size: AtLeastOne = 32
    seed: int = 1234
    device: str = "auto"                     # auto | cpu | cuda | cuda:N
    amp: bool = True                         # autocast (bf16/fp16) on CUDA; ignored on CPU
    threads: Annotated[int, Field(ge=0)] = 0  # torch CPU threads; 0 = leave torch's default

    @model_validator(mode="after")
    def _cpc_starts(self) -> Self:
        if self.loss.cpc_weight > 0 and self.loss.cpc_start_epoch >= self.epochs:
            raise ValueError(f"loss.cpc_start_epoch {self.loss.cpc_start_epoch} >= epochs {self.epochs}: CPC would "
                             "never run; set loss.cpc_weight 0 to disable it")
        return self
