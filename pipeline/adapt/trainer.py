"""Self-supervised fine-tuning of an X-ReID model on one site's tracks, within a CPU time budget.

Each step takes P tracks (an anchor track, the tracks its camera saw at the same time, and random
others) and two views of each: a few of the track's crops, lightly augmented; for an RGB track the
second view is often bridged into gray, near-infrared or pseudo-thermal (``site.bridge``). The loss is
SupCon (``models/train/supcon.py``) with the pseudo-identity of each track as its label and
same-camera simultaneous tracks as weighted hard negatives.

Pseudo-identities are re-estimated every ``relabel_every_s`` seconds with the current model
(cluster-contrast style): two tracks join when they are mutual nearest neighbours, were never seen
together by one camera, and score above what simultaneous same-camera tracks (certainly two people)
score at the ``impostor_quantile``. At first each track is its own identity.

Only the last blocks of the backbone and everything after it learn; the rest stays frozen and the
model stays in eval mode (batch norm keeps its running statistics), which keeps a few hundred CPU
steps from wrecking what pretraining learned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from models.train.supcon import supcon_loss
from models.xreid.preprocess import normalize_frames, sample_indices
from pipeline.adapt.site import BRIDGE_MODALITY, BRIDGES, SiteData, SiteTrack, bridge, hard_negatives

log = logging.getLogger(__name__)

_MODALITY_CODE = {"rgb": 0, "ir": 1}


@dataclass(frozen=True)
class AdaptOptions:
    """Budget and recipe.

    Attributes:
        minutes: wall-clock training budget (pseudo-labelling included; loading and saving not).
        tracks_per_step: P tracks per batch (two views each).
        crops_per_view: frames per view (a short clip).
        bridge_prob: chance that an RGB track's second view is rendered in another modality.
        train_fraction: share of the backbone's parameter tensors (the last ones) that learn.
        max_steps: stop earlier than the budget (tests); None: the budget decides.
    """

    minutes: float = 20.0
    seed: int = 0
    tracks_per_step: int = 16
    crops_per_view: int = 2
    lr: float = 1e-4
    weight_decay: float = 1e-4
    temperature: float = 0.1
    bridge_prob: float = 0.6
    train_fraction: float = 0.3
    relabel_every_s: float = 90.0
    impostor_quantile: float = 0.95
    max_steps: int | None = None

    def __post_init__(self) -> None:
        if not self.minutes > 0:
            raise ValueError(f"--minutes must be > 0, got {self.minutes}")


@dataclass
class AdaptResult:
    steps: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    relabels: list[dict[str, float]] = field(default_factory=list)
    trainable_params: int = 0


def select_trainable(model: torch.nn.Module, train_fraction: float) -> int:
    """Freeze the model but the last ``train_fraction`` of backbone tensors and all non-backbone parts."""
    backbone = [p for n, p in model.named_parameters() if n.startswith("backbone.")]
    cut = int(round(len(backbone) * (1.0 - train_fraction)))
    keep = {id(p) for p in backbone[cut:]}
    n = 0
    for name, p in model.named_parameters():
        p.requires_grad_(not name.startswith("backbone.") or id(p) in keep)
        n += p.numel() if p.requires_grad else 0
    return n


def embed(model: torch.nn.Module, frames_u8: np.ndarray, modality: list[str]) -> Tensor:
    """(B, T, H, W, 3) uint8 -> (B, D) embeddings (not normalised), through the inference path."""
    cfg = model.cfg
    x = normalize_frames(torch.from_numpy(frames_u8), cfg.pixel_mean, cfg.pixel_std)
    codes = torch.tensor([_MODALITY_CODE[m] for m in modality], dtype=torch.long)
    return model.forward_head(model.forward_features(x, codes, None), pre_logits=True)


@torch.no_grad()
def track_vectors(model: torch.nn.Module, tracks: list[SiteTrack], seq_len: int) -> np.ndarray:
    """(N, D) unit vectors: one clip of up to ``seq_len`` crops per track, as the re-ID stage would embed it."""
    out = []
    for t in tracks:
        idx = np.linspace(0, len(t.crops) - 1, seq_len).round().astype(int)
        v = embed(model, np.stack([t.crops[i] for i in idx])[None], [t.modality])[0]
        out.append((v / v.norm().clamp_min(1e-12)).numpy())
    return np.asarray(out, np.float32)


@torch.no_grad()
def site_centre(model: torch.nn.Module, tracks: list[SiteTrack], seq_len: int) -> tuple[Tensor, dict[str, int]]:
    """(2, D) mean unit clip embedding of the site per modality (rows rgb, ir), and the clips behind each.

    Each kept clip (a track's crops of one segment) is sampled as the re-ID stage samples a clip
    (``sample_indices``) and embedded without any centre the model already has. A modality the site never showed takes the other's row, so a camera
    that switches to it later is centred by what the site does share.
    """
    sums = torch.zeros(2, int(model.embed_dim))
    counts = [0, 0]
    for t in tracks:
        by_segment: dict[int, list[np.ndarray]] = {}
        for seg, crop in zip(t.segments or [0] * len(t.crops), t.crops, strict=True):
            by_segment.setdefault(seg, []).append(crop)
        for crops in by_segment.values():
            idx = sample_indices(len(crops), seq_len)
            v = embed(model, np.stack([crops[i] for i in idx])[None], [t.modality])[0].float()
            row = _MODALITY_CODE[t.modality]
            sums[row] += v / v.norm().clamp_min(1e-12)
            counts[row] += 1
    if not any(counts):
        raise ValueError("site_centre needs at least one track with crops")
    centre = sums / torch.tensor(counts, dtype=torch.float32).clamp_min(1.0)[:, None]
    shared = sums.sum(0) / sum(counts)
    for row in (0, 1):
        if counts[row] == 0:
            centre[row] = shared
    return centre, {"rgb": counts[0], "ir": counts[1]}


def pseudo_identities(vectors: np.ndarray, forbidden: np.ndarray, quantile: float) -> tuple[np.ndarray, dict[str, float]]:
    """Cluster labels from mutual nearest neighbours above the impostor score quantile.

    Two clusters never join when one of their members was seen with the other's at once.
    """
    n = len(vectors)
    sim = vectors @ vectors.T
    impostor = sim[forbidden]
    threshold = float(np.quantile(impostor, quantile)) if impostor.size else 0.9
    allowed = ~forbidden & ~np.eye(n, dtype=bool)
    masked = np.where(allowed, sim, -np.inf)
    nn = masked.argmax(1)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs = sorted(((float(sim[i, j]), i, int(j)) for i, j in enumerate(nn)
                    if np.isfinite(masked[i, j]) and nn[j] == i and i < j and sim[i, j] > threshold), reverse=True)
    members = {i: {i} for i in range(n)}
    links = 0
    for _, i, j in pairs:
        a, b = find(i), find(j)
        if a == b or forbidden[np.ix_(sorted(members[a]), sorted(members[b]))].any():
            continue
        parent[b] = a
        members[a] |= members.pop(b)
        links += 1
    labels = np.asarray([find(i) for i in range(n)])
    return labels, {"threshold": threshold, "links": float(links), "identities": float(len(set(labels.tolist())))}


class SiteAdapter:
    """Runs the adaptation loop on one model and one site (the model is changed in place)."""

    def __init__(self, model: torch.nn.Module, site: SiteData, options: AdaptOptions) -> None:
        self.model, self.site, self.opt = model, site, options
        self.tracks = site.tracks
        self.forbidden = hard_negatives(self.tracks)
        self.rng = np.random.default_rng(options.seed)
        self.labels = np.arange(len(self.tracks))
        self.seq_len = int(model.cfg.seq_len)

    def run(self, progress: Callable[[float, float], None] | None = None) -> AdaptResult:
        """Train until the budget (or ``max_steps``) is spent; ``progress(elapsed_s, loss)`` after each step."""
        torch.manual_seed(self.opt.seed)
        model = self.model.eval()   # eval mode throughout: frozen BN statistics, no dropout
        result = AdaptResult(trainable_params=select_trainable(model, self.opt.train_fraction))
        params = [p for p in model.parameters() if p.requires_grad]
        optim = torch.optim.AdamW(params, lr=self.opt.lr, weight_decay=self.opt.weight_decay)
        budget = self.opt.minutes * 60.0
        t0 = time.monotonic()
        last_relabel = t0
        while True:
            elapsed = time.monotonic() - t0
            if result.steps and (elapsed >= budget or (self.opt.max_steps is not None and result.steps >= self.opt.max_steps)):
                break
            if time.monotonic() - last_relabel >= self.opt.relabel_every_s and elapsed < 0.85 * budget:
                self._relabel(result, elapsed)
                last_relabel = time.monotonic()
            loss = self._step(optim)
            result.steps += 1
            result.losses.append(loss)
            if progress is not None:
                progress(time.monotonic() - t0, loss)
        result.seconds = time.monotonic() - t0
        for p in model.parameters():
            p.requires_grad_(True)
        return result

    def _relabel(self, result: AdaptResult, elapsed: float) -> None:
        vectors = track_vectors(self.model, self.tracks, self.seq_len)
        self.labels, stats = pseudo_identities(vectors, self.forbidden, self.opt.impostor_quantile)
        result.relabels.append({"at_s": round(elapsed, 1), **stats})
        log.info("adapt: pseudo-identities at %.0fs: %d tracks -> %d identities (%d links, threshold %.3f)",
                 elapsed, len(self.tracks), stats["identities"], stats["links"], stats["threshold"])

    def _batch_tracks(self) -> np.ndarray:
        n = len(self.tracks)
        p = min(self.opt.tracks_per_step, n)
        anchor = int(self.rng.integers(n))
        hard = np.flatnonzero(self.forbidden[anchor])
        hard = self.rng.permutation(hard)[: max(p // 2 - 1, 0)]
        rest = self.rng.permutation(np.setdiff1d(np.arange(n), np.concatenate([[anchor], hard])))
        return np.concatenate([[anchor], hard, rest])[:p].astype(int)

    def _view(self, track: SiteTrack, bridged: str | None) -> tuple[np.ndarray, str]:
        k = self.opt.crops_per_view
        frames = []
        flip = bool(self.rng.random() < 0.5)
        for i in self.rng.integers(len(track.crops), size=k):
            img = track.crops[int(i)]
            if bridged is not None:
                img = bridge(img, bridged, self.rng)
            elif track.modality == "rgb":   # mild colour jitter: other cameras' white balance and exposure
                gain = self.rng.uniform(0.8, 1.2, 3) * self.rng.uniform(0.8, 1.2)
                img = np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)
            frames.append(img[:, ::-1] if flip else img)
        modality = BRIDGE_MODALITY[bridged] if bridged is not None else track.modality
        return np.ascontiguousarray(np.stack(frames)), modality

    def _step(self, optim: torch.optim.Optimizer) -> float:
        picked = self._batch_tracks()
        views, modalities, labels = [], [], []
        for idx in picked:
            t = self.tracks[idx]
            for v in range(2):
                bridged = None
                if v == 1 and t.modality == "rgb" and self.rng.random() < self.opt.bridge_prob:
                    bridged = BRIDGES[int(self.rng.integers(len(BRIDGES)))]
                frames, m = self._view(t, bridged)
                views.append(frames)
                modalities.append(m)
                labels.append(self.labels[idx])
        order = np.repeat(picked, 2)
        hard = torch.from_numpy(self.forbidden[np.ix_(order, order)])
        feats = embed(self.model, np.stack(views), modalities)
        loss = supcon_loss(feats, torch.as_tensor(np.asarray(labels)), self.opt.temperature, hard)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        return float(loss.detach())
