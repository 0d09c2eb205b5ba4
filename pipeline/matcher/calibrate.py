"""Fit the per-modality-pair thresholds that maximise identity F1 on runs with ground truth.

Ground truth is a global person id per track. It comes from MOT-format files per camera whose
ids are global (``xreid synth --scenes`` writes them; any annotated multi-camera footage works):
``label_tracks`` matches a replay's own MOT output (``--mot-out``) to them by IoU, frame by
frame, and gives each track the id it overlaps most (or none, for false-positive tracks).

``fit_thresholds`` replays the stored tracks through a fresh ``Matcher`` in arrival order (each
track once, with its mean embedding) for candidate thresholds and scores the resulting
partition with pairwise identity F1 over labelled tracks: precision = share of same-identity
track pairs that are truly one person, recall = share of true same-person pairs that were put
together. Coordinate ascent over ``rgb_rgb``, ``ir_ir``, ``rgb_ir`` on a grid; a threshold moves
only to a strictly better F1, and among equally good values the middle of the longest run of
them is taken (the most robust choice).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from models.errors import ConfigError
from pipeline.bus.messages import Embedding, make_clip_id
from pipeline.config.settings import MatcherCfg, PairThresholds
from pipeline.matcher.matcher import Matcher
from pipeline.store.base import Store
from pipeline.store.tracks import load_matched_tracks
from pipeline.tracking.mot import read_mot

log = logging.getLogger(__name__)

PAIRS = ("rgb_rgb", "ir_ir", "rgb_ir")


@dataclass(frozen=True)
class LabelledTrack:
    """One stored track as one observation (its whole-track unit mean) and its ground-truth person.

    ``label`` is None where the track matches no annotated person.
    """

    obs: Embedding
    label: str | None


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of (N,4) and (M,4) boxes in left, top, width, height."""
    ax1, ay1, ax2, ay2 = a[:, 0], a[:, 1], a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1, bx2, by2 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2) - np.maximum(ax1[:, None], bx1), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2) - np.maximum(ay1[:, None], by1), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + b[:, 2] * b[:, 3] - inter
    return inter / np.maximum(union, 1e-9)


def label_tracks(pred_mot: str | Path, gt_mot: str | Path, min_iou: float = 0.4,
                 min_share: float = 0.5) -> dict[int, int]:
    """Tracker id → global gt id, by per-frame optimal IoU assignment and majority vote.

    Args:
        pred_mot: the replay's MOT output of one camera (tracker ids).
        gt_mot: that camera's ground truth, ids global across cameras.
        min_iou: a pair below this IoU is no match.
        min_share: a track is labelled only when its majority id covers this share of its frames.
    """
    pred, gt = read_mot(pred_mot), read_mot(gt_mot)
    votes: dict[int, Counter[int]] = {}
    frames: Counter[int] = Counter()
    gt_by_frame = {int(f): gt[gt[:, 0] == f] for f in np.unique(gt[:, 0])}
    for f in np.unique(pred[:, 0]):
        p = pred[pred[:, 0] == f]
        for tid in p[:, 1].astype(int):
            frames[tid] += 1
        g = gt_by_frame.get(int(f))
        if g is None or not len(g):
            continue
        iou = _iou(p[:, 2:6], g[:, 2:6])
        rows, cols = linear_sum_assignment(-iou)
        for r, c in zip(rows, cols, strict=True):
            if iou[r, c] >= min_iou:
                votes.setdefault(int(p[r, 1]), Counter())[int(g[c, 1])] += 1
    out = {}
    for tid, v in votes.items():
        gid, n = v.most_common(1)[0]
        if n >= min_share * frames[tid]:
            out[tid] = gid
    return out


def load_labelled(store: Store, labels: dict[str, str]) -> list[LabelledTrack]:
    """Every embedded track of ``store`` with its label from ``labels`` (track_uid → person), in the order
    the matcher finished them (by end time)."""
    out = []
    for t in sorted(load_matched_tracks(store), key=lambda t: (t.t_end, t.track_no)):
        v = t.mean / max(float(np.linalg.norm(t.mean)), 1e-12)
        obs = Embedding(make_clip_id(t.camera_id, t.track_uid, 0), t.camera_id, t.modality, t.track_uid, 0,
                        t.t_start, t.t_end, v, t.model_id)
        out.append(LabelledTrack(obs, labels.get(t.track_uid)))
    return out


def partition(tracks: Sequence[LabelledTrack], cfg: MatcherCfg) -> list[int]:
    """The identity the matcher gives each track (tracks fed in their order).

    Each track arrives as one observation, its stored mean: already the whole track's evidence, so
    ``min_clips`` does not hold it back.
    """
    m = Matcher(dataclasses.replace(cfg, min_clips=1))
    out = []
    for i, t in enumerate(tracks):
        uid = f"{t.obs.track_uid}#{i}"   # a fresh track per observation: runs may repeat a uid
        res = m.observe(dataclasses.replace(t.obs, track_uid=uid, clip_id=make_clip_id(t.obs.camera_id, uid, 0)))
        out.append(res.track.key)
    return [m.identity_of(k) for k in out]


def pairwise_f1(pred: Sequence[int], truth: Sequence[str | None]) -> tuple[float, float, float]:
    """Pairwise precision, recall and F1 of a partition over the labelled items."""
    idx = [i for i, t in enumerate(truth) if t is not None]
    tp = fp = fn = 0
    for i, j in combinations(idx, 2):
        same_pred, same_true = pred[i] == pred[j], truth[i] == truth[j]
        tp += same_pred and same_true
        fp += same_pred and not same_true
        fn += same_true and not same_pred
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def static_thresholds(cfg: MatcherCfg) -> PairThresholds:
    """The manual thresholds, with the calibration fallback for pairs left to site calibration.

    The fit starts here: it replays each track once, so no genuine evidence arises and an automatic pair
    would sit at its fallback anyway.
    """
    return PairThresholds(**{p: cfg.calibration.fallback.get(p) if cfg.thresholds.get(p) is None
                             else cfg.thresholds.get(p) for p in PAIRS})


@dataclass(frozen=True)
class Fit:
    thresholds: PairThresholds
    precision: float
    recall: float
    f1: float
    baseline_f1: float
    n_tracks: int
    n_labelled: int
    n_people: int


def fit_thresholds(runs: Iterable[Sequence[LabelledTrack]], cfg: MatcherCfg | None = None,
                   grid: Sequence[float] | None = None, rounds: int = 2) -> Fit:
    """Thresholds maximising the summed pairwise F1 over ``runs`` (each run matched on its own)."""
    cfg = cfg or MatcherCfg()
    runs = [list(r) for r in runs]
    labelled = sum(1 for r in runs for t in r if t.label is not None)
    if labelled < 2:
        raise ConfigError("calibration needs at least two tracks with a ground-truth identity")
    grid = list(grid) if grid is not None else [round(float(x), 3) for x in np.arange(0.0, 0.98, 0.025)]

    def score(th: PairThresholds) -> tuple[float, float, float]:
        c = dataclasses.replace(cfg, thresholds=th)
        ps = [pairwise_f1(partition(r, c), [t.label for t in r]) for r in runs]
        return tuple(float(np.mean([p[k] for p in ps])) for k in range(3))  # type: ignore[return-value]

    best = static_thresholds(cfg)
    baseline = score(best)[2]
    for _ in range(rounds):
        for pair in PAIRS:
            current = score(best)[2]
            f1s = [score(dataclasses.replace(best, **{pair: v}))[2] for v in grid]
            top = max(f1s)
            if top <= current + 1e-9:
                continue  # no value does better: keep the one we have
            run = _best_run([i for i, f in enumerate(f1s) if f >= top - 1e-9])
            best = dataclasses.replace(best, **{pair: grid[run[len(run) // 2]]})
            log.info("calibrate %s -> %.3f (F1 %.4f)", pair, getattr(best, pair), top)
    p, r, f = score(best)
    people = {t.label for run in runs for t in run if t.label is not None}
    return Fit(best, p, r, f, baseline, sum(len(r) for r in runs), labelled, len(people))


def _best_run(indices: list[int]) -> list[int]:
    """The longest run of consecutive grid indices."""
    runs, cur = [], [indices[0]]
    for i in indices[1:]:
        if i == cur[-1] + 1:
            cur.append(i)
        else:
            runs.append(cur)
            cur = [i]
    runs.append(cur)
    return max(runs, key=len)
