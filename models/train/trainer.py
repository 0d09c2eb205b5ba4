"""The X-ReID training loop: P×K visible-infrared batches, CPC memories rebuilt each epoch,
AMP on CUDA, resumable checkpoints, a progress bar and a per-epoch metrics log.

Reference: ``processor/processor_clipreid_stage2.py`` ``do_train_stage2``. Determinism: every
epoch reseeds torch, the sampler and the frame sampler from ``(seed, epoch)``, so a run resumed
from its checkpoint continues exactly as if it had never stopped (on the same device).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from models.data.sampler import VVIBatchSampler
from models.data.tracklet import IR, RGB, VVIDataset
from models.data.transforms import SequenceTransform
from models.data.video import FrameReader, PairedTrainDataset, TestDataset, collate_pairs, collate_test
from models.errors import ContractError
from models.train.config import TrainCfg
from models.train.losses import xreid_loss
from models.train.optim import build_optimizer, build_scheduler

log = logging.getLogger(__name__)

STATE_FILE = "last.pt"
MODEL_FILE = "model.pt"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_model(cfg: TrainCfg, dataset: VVIDataset):
    """An ``XReID`` sized for ``dataset`` (identities, cameras), cameras' modalities recorded."""
    from models.xreid import create_model

    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.model.overrides.items()}
    overrides.setdefault("camera_num", dataset.num_cameras)
    model = create_model(cfg.model.name, pretrained=cfg.model.pretrained, num_classes=dataset.num_train_pids,
                         **overrides)
    seen = torch.zeros(model.cfg.camera_num, 2, dtype=torch.bool)
    for t in dataset.train:
        if t.camid >= model.cfg.camera_num:
            raise ContractError(f"training camera {t.camid} >= model camera_num {model.cfg.camera_num}")
        seen[t.camid, t.modality] = True
    model.set_camera_modalities(seen)
    return model


def embed_dims_for(model, cfg: TrainCfg) -> int | None:
    """Columns of the embedding an ablation uses: the CLIP branch only when ``loss.branches: clip``."""
    if cfg.loss.branches == "clip":
        return model.backbone.width + model.backbone.proj_dim
    return None


def _atomic_save(obj: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class Trainer:
    """Train an X-ReID model on a ``VVIDataset``.

    Args:
        cfg: the training config.
        dataset: training data (its ``train`` split) and, for periodic evaluation, its test split.
        out_dir: where ``last.pt`` (resumable state), ``model.pt`` (final checkpoint),
            ``metrics.csv`` and ``metrics.jsonl`` go.
        progress: show a tqdm bar (loss, LR) on stderr.
    """

    def __init__(self, cfg: TrainCfg, dataset: VVIDataset, out_dir: str | Path, progress: bool = False) -> None:
        self.cfg, self.dataset, self.out_dir, self.progress = cfg, dataset, Path(out_dir), progress
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg, dataset).to(self.device)
        mcfg = self.model.cfg
        self.seq_len = mcfg.seq_len
        self.reader = FrameReader(cache=cfg.data.cache_frames, size_hw=mcfg.input_hw)
        rgb, ir = dataset.train_by_modality(RGB), dataset.train_by_modality(IR)
        self.rgb, self.ir = rgb, ir
        self.sampler = VVIBatchSampler([t.pid for t in rgb], [t.pid for t in ir], cfg.sampler.num_pids,
                                       cfg.sampler.num_instances, seed=cfg.seed)
        train_tf = SequenceTransform(mcfg.input_hw, mcfg.pixel_mean, mcfg.pixel_std, train=True)
        self.train_set = PairedTrainDataset(rgb, ir, self.seq_len, train_tf, self.reader, seed=cfg.seed,
                                            rgb_grayscale_p=cfg.data.rgb_grayscale_p,
                                            rgb_gray_mode=cfg.data.rgb_gray_mode)
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule, cfg.epochs)
        self.amp_dtype = None
        if cfg.amp and self.device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.use_cpc = cfg.loss.cpc_weight > 0 and self.model.cpc is not None
        # set per epoch in fit (use_cpc and epoch >= loss.cpc_start_epoch); this is its value at epoch 0
        self.cpc_active = self.use_cpc and cfg.loss.cpc_start_epoch == 0
        self.start_epoch = 0
        self.last_eval = None

    # ------------------------------------------------------------------ state
    def save_state(self, epoch: int) -> Path:
        """Resumable state after ``epoch`` (0-based) completed."""
        path = self.out_dir / STATE_FILE
        _atomic_save({"epoch": epoch, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                      "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                      "model_config": self.model.cfg.to_dict()}, path)
        return path

    def resume(self) -> bool:
        """Load ``last.pt`` if present; training then continues after its epoch."""
        path = self.out_dir / STATE_FILE
        if not path.is_file():
            return False
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as e:  # any unpickling failure means the file is not our state
            raise ContractError(f"{path} is not a resumable training state: {type(e).__name__}: {e}") from e
        if state.get("model_config") != self.model.cfg.to_dict():
            raise ContractError(f"{path} was written for a different model config; use another output directory")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.start_epoch = int(state["epoch"]) + 1
        log.info("resumed from %s after epoch %d", path, self.start_epoch)
        return True

    # ------------------------------------------------------------------ steps
    @torch.no_grad()
    def init_prototypes(self) -> None:
        """CPC: rebuild both memories from every training tracklet (reference: start of each epoch)."""
        mcfg = self.model.cfg
        tf = SequenceTransform(mcfg.input_hw, mcfg.pixel_mean, mcfg.pixel_std, train=False)
        tracklets = list(self.rgb) + list(self.ir)
        loader = DataLoader(TestDataset(tracklets, self.seq_len, tf, self.reader), batch_size=self.cfg.eval_batch_size,
                            collate_fn=collate_test)
        self.model.eval()
        feats, labels, mods = [], [], []
        for batch in loader:
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                feats.append(self.model.prototype_features(batch["frames"].to(self.device)).float())
            labels.append(batch["pids"])
            mods.append(batch["modality"])
        self.model.train()
        self.model.cpc.initialise(torch.cat(feats), torch.cat(labels).to(self.device), torch.cat(mods).to(self.device))

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One optimiser step on a collated batch; returns the loss terms and ID accuracy."""
        self.model.train()
        frames = batch["frames"].to(self.device, non_blocking=True)
        pids = batch["pids"].to(self.device)
        modality = batch["modality"].to(self.device)
        cams = batch["camids"].to(self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            out = self.model(frames, modality, cams)
        terms = xreid_loss(out, pids, modality, self.seq_len, self.cfg.loss,
                           self.model.cpc if self.cpc_active else None)
        self.scaler.scale(terms["total"]).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        acc = (out["id_logits"][0].argmax(1) == pids).float().mean()
        return {**{k: float(v.detach()) for k, v in terms.items()}, "acc": float(acc)}

    def _batches(self, epoch: int):
        """``iters_per_epoch`` batches (the sampler re-drawn as often as needed), seeded by epoch."""
        n = self.cfg.iters_per_epoch or len(self.sampler)
        done, rnd = 0, 0
        while done < n:
            self.sampler.set_epoch(epoch * 1000 + rnd)
            loader = DataLoader(self.train_set, batch_sampler=self.sampler, collate_fn=collate_pairs,
                                num_workers=self.cfg.data.num_workers)
            for batch in loader:
                yield batch
                done += 1
                if done >= n:
                    return
            rnd += 1

    # ------------------------------------------------------------------ loop
    def fit(self, evaluate: bool = True) -> dict[str, Any]:
        """Train from ``start_epoch`` to ``cfg.epochs``; returns a summary (final metrics, paths)."""
        from tqdm import tqdm

        cfg = self.cfg
        summary: dict[str, Any] = {"epochs": cfg.epochs, "seed": cfg.seed, "resumed_at": self.start_epoch}
        last_eval = None
        for epoch in range(self.start_epoch, cfg.epochs):
            t0 = time.monotonic()
            torch.manual_seed(cfg.seed * 100003 + epoch)
            self.train_set.reseed(cfg.seed * 100003 + epoch)
            # CPC pulls sequences toward prototypes built from the current model; with loss.cpc_start_epoch
            # it (and the memory rebuild) waits until a randomly initialised model has formed features.
            self.cpc_active = self.use_cpc and epoch >= cfg.loss.cpc_start_epoch
            if self.cpc_active:
                self.init_prototypes()
            lr = self.optimizer.param_groups[0]["lr"]
            sums: dict[str, float] = {}
            n = cfg.iters_per_epoch or len(self.sampler)
            bar = tqdm(total=n, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not self.progress, leave=False,
                       dynamic_ncols=True)
            for i, batch in enumerate(self._batches(epoch), 1):
                terms = self.train_step(batch)
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + v
                bar.set_postfix(loss=f"{sums['total'] / i:.3f}", lr=f"{lr:.2e}")
                bar.update(1)
            bar.close()
            self.scheduler.step()
            row: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, "iters": n,
                                   **{f"loss_{k}" if k != "acc" else k: v / n for k, v in sums.items()},
                                   "seconds": round(time.monotonic() - t0, 2)}
            final = epoch + 1 == cfg.epochs
            if evaluate and ((cfg.eval_period and (epoch + 1) % cfg.eval_period == 0) or final):
                last_eval = self.last_eval = self.evaluate()
                for d in last_eval.directions():
                    row[f"{d.name}_rank1"], row[f"{d.name}_mAP"] = d.rank(1), d.mAP
            self._log_row(row)
            log.info("epoch %d/%d loss %.4f acc %.3f lr %.2e", epoch + 1, cfg.epochs, row.get("loss_total", 0.0),
                     row.get("acc", 0.0), lr)
            if (epoch + 1) % cfg.checkpoint_period == 0 or final:
                self.save_state(epoch)
        model_id = self.save_model()
        summary.update(model_id=model_id, model=str(self.out_dir / MODEL_FILE),
                       metrics=str(self.out_dir / "metrics.csv"))
        if last_eval is not None:
            summary["eval"] = last_eval.to_dict()
        return summary

    def evaluate(self):
        from models.eval.runner import evaluate_model

        return evaluate_model(self.model, self.dataset, self.reader, self.cfg.eval_batch_size, self.device,
                              embed_dims_for(self.model, self.cfg), amp=self.amp_dtype is not None)

    def save_model(self) -> str:
        from models.xreid import save_checkpoint

        extra = {"dataset": self.dataset.name, "num_train_pids": self.dataset.num_train_pids, "seed": self.cfg.seed,
                 "epochs": self.cfg.epochs, "embed_dims": embed_dims_for(self.model, self.cfg) or 0,
                 "loss": {k: v for k, v in vars(self.cfg.loss).items()}}
        return save_checkpoint(self.model, self.out_dir / MODEL_FILE, extra=extra)

    def _log_row(self, row: dict[str, Any]) -> None:
        with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        path = self.out_dir / "metrics.csv"
        rows = []
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        rows = [r for r in rows if int(r["epoch"]) < row["epoch"]] + [row]  # a resumed epoch replaces its row
        fields = list(dict.fromkeys(k for r in rows for k in r))
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
