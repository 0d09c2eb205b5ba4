"""Embed a dataset's test tracklets with a model and score both VVI protocols.

Test sampling is the reference's: T evenly spaced frames per tracklet (``models.data.sampler``),
each tracklet tagged with its camera and modality, features L2-normalised before ranking.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from models.data.tracklet import Tracklet, VVIDataset
from models.data.transforms import SequenceTransform
from models.data.video import FrameReader, TestDataset, collate_test
from models.eval.metrics import DEFAULT_MAX_RANK, RetrievalResult, evaluate_direction

log = logging.getLogger(__name__)


@torch.no_grad()
def encode_tracklets(model: torch.nn.Module, tracklets: Sequence[Tracklet], reader: FrameReader,
                     batch_size: int = 32, device: torch.device | str = "cpu", embed_dims: int | None = None,
                     amp: bool = False, use_camera: bool = True) -> np.ndarray:
    """(N, D) float32 sequence embeddings of ``tracklets`` (not normalised).

    Args:
        model: an ``XReID`` (switched to eval mode here, restored afterwards).
        reader: frame decoder (shared cache between calls).
        embed_dims: keep only the first ``embed_dims`` columns (the CLIP branch of an ablation).
        amp: autocast on CUDA.
        use_camera: pass each tracklet's camera to the model (training cameras); False = unseen.
    """
    cfg = model.cfg
    transform = SequenceTransform(cfg.input_hw, cfg.pixel_mean, cfg.pixel_std, train=False)
    loader = DataLoader(TestDataset(tracklets, cfg.seq_len, transform, reader), batch_size=batch_size,
                        shuffle=False, collate_fn=collate_test)
    was_training = model.training
    model.eval()
    device = torch.device(device)
    out = []
    try:
        for batch in loader:
            frames = batch["frames"].to(device)
            cams = batch["camids"].to(device) if use_camera else None
            with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
                emb = model(frames, batch["modality"].to(device), cams)
            out.append(emb.float().cpu())
    finally:
        model.train(was_training)
    feats = torch.cat(out).numpy() if out else np.zeros((0, getattr(model, "embed_dim", 0)), np.float32)
    return feats[:, :embed_dims] if embed_dims else feats


def evaluate_model(model: torch.nn.Module, dataset: VVIDataset, reader: FrameReader | None = None,
                   batch_size: int = 32, device: torch.device | str = "cpu", embed_dims: int | None = None,
                   amp: bool = False, rerank: bool = False, max_rank: int = DEFAULT_MAX_RANK) -> RetrievalResult:
    """Both protocols of ``dataset`` (each distinct tracklet list is embedded once)."""
    reader = reader or FrameReader(size_hw=model.cfg.input_hw)
    cache: dict[int, np.ndarray] = {}

    def feats(ts: tuple[Tracklet, ...]) -> np.ndarray:
        if id(ts) not in cache:
            cache[id(ts)] = encode_tracklets(model, ts, reader, batch_size, device, embed_dims, amp)
        return cache[id(ts)]

    def labels(ts: tuple[Tracklet, ...]) -> tuple[np.ndarray, np.ndarray]:
        return np.array([t.pid for t in ts]), np.array([t.camid for t in ts])

    def direction(name: str, q: tuple[Tracklet, ...], g: tuple[Tracklet, ...]):
        (qp, qc), (gp, gc) = labels(q), labels(g)
        return evaluate_direction(name, feats(q), qp, qc, feats(g), gp, gc, max_rank, rerank)

    return RetrievalResult(ir_to_rgb=direction("ir_to_rgb", dataset.ir_query, dataset.rgb_gallery),
                           rgb_to_ir=direction("rgb_to_ir", dataset.rgb_query, dataset.ir_gallery))
