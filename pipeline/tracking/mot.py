"""MOTChallenge track files (read/write) and tracking metrics computed by ``motmetrics``.

Metrics come from py-motmetrics (the maintained evaluator), never from our own formulas. Boxes
match at IoU >= 0.5 (``max_iou_distance=0.5``), the MOTChallenge convention. HOTA is reported
only when TrackEval is installed; motmetrics 1.4 does not compute it.

File format, one box per line, 1-based frame numbers::

    frame, id, left, top, width, height, conf, x, y, z
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from models.errors import ContractError

MOT_COLUMNS = 10
METRICS = ("idf1", "mota", "motp", "num_switches", "recall", "precision", "num_frames", "num_objects",
           "num_predictions", "mostly_tracked", "mostly_lost", "num_false_positives", "num_misses", "idp", "idr")


@dataclass(frozen=True, slots=True)
class MotBox:
    frame: int          # 1-based
    track_id: int
    xyxy: tuple[float, float, float, float]
    conf: float = 1.0


def format_rows(boxes: Iterable[MotBox]) -> str:
    lines = []
    for b in boxes:
        x1, y1, x2, y2 = b.xyxy
        lines.append(f"{b.frame},{b.track_id},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{b.conf:.4f},-1,-1,-1\n")
    return "".join(lines)


class MotWriter:
    """Appends boxes to a MOTChallenge file as frames are processed."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f: IO[str] = self.path.open("w", encoding="utf-8")

    def write(self, boxes: Iterable[MotBox]) -> None:
        self._f.write(format_rows(boxes))

    def close(self) -> None:
        self._f.close()


def read_mot(path: str | Path) -> np.ndarray:
    """Rows of a MOTChallenge file as an (N, >= 6) float64 array (frame, id, left, top, w, h, ...).

    Raises:
        ContractError: the file is missing or a line is not numeric MOT format (the line is named).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractError(f"MOT file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ContractError(f"cannot read MOT file {p}: {e}") from None
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = line.replace(" ", "").split(",")
        try:
            values = [float(v) for v in parts]
        except ValueError:
            raise ContractError(f"{p}:{n}: not a MOTChallenge line (expected numbers): {line[:60]!r}") from None
        if len(values) < 6 or not all(math.isfinite(v) for v in values[:6]):
            raise ContractError(f"{p}:{n}: a MOTChallenge line needs frame,id,left,top,width,height")
        if values[4] <= 0 or values[5] <= 0 or values[0] < 1:
            raise ContractError(f"{p}:{n}: frame must be >= 1 and width/height > 0")
        rows.append(values[:MOT_COLUMNS] + [-1.0] * (MOT_COLUMNS - len(values[:MOT_COLUMNS])))
    return np.asarray(rows, np.float64).reshape(-1, MOT_COLUMNS)


def parse_frame_range(text: str) -> tuple[int, int]:
    """``"1-400"`` -> (1, 400); raises ``ContractError`` on anything else."""
    try:
        lo, hi = (int(v) for v in text.split("-", 1))
    except ValueError:
        raise ContractError(f"frame range must look like FIRST-LAST (e.g. 1-400), got {text!r}") from None
    if lo < 1 or hi < lo:
        raise ContractError(f"frame range must have 1 <= FIRST <= LAST, got {text!r}")
    return lo, hi


def _motmetrics() -> Any:
    import motmetrics as mm

    if not hasattr(np, "asfarray"):  # motmetrics 1.4 still calls np.asfarray, removed in NumPy 2
        np.asfarray = lambda a, dtype=float: np.asarray(a, dtype=dtype)  # type: ignore[attr-defined]
    return mm


def evaluate(gt: np.ndarray, pred: np.ndarray, frames: tuple[int, int] | None = None,
             iou: float = 0.5, keep_zero_marked: bool = False) -> dict[str, float]:
    """MOT metrics of ``pred`` against ``gt`` (rows as ``read_mot`` returns), by motmetrics.

    Args:
        frames: inclusive 1-based frame range to score; default: every frame of the ground truth.
        iou: minimum IoU for a prediction to match a ground-truth box.
        keep_zero_marked: score ground-truth rows whose flag (7th column) is 0 like any other. By
            default they are "ignore" regions, as in the MOTChallenge devkits: not counted as misses,
            and a prediction that matches one (better than any scored box) is not a false positive.

    Returns:
        metric name -> value (``METRICS``, plus ``hota`` when TrackEval is installed).
    """
    mm = _motmetrics()
    ignored = gt[gt[:, 6] == 0] if not keep_zero_marked else gt[:0]
    if not keep_zero_marked:
        gt = gt[gt[:, 6] != 0]
    if frames is None:
        if len(gt) == 0:
            raise ContractError("ground truth is empty: nothing to score")
        frames = (int(gt[:, 0].min()), int(gt[:, 0].max()))
    lo, hi = frames
    acc = mm.MOTAccumulator(auto_id=False)
    gt_by = _by_frame(gt)
    pr_by = _by_frame(pred)
    ig_by = _by_frame(ignored)
    for f in range(lo, hi + 1):
        g = gt_by.get(f, np.zeros((0, MOT_COLUMNS)))
        p = pr_by.get(f, np.zeros((0, MOT_COLUMNS)))
        if f in ig_by and len(p):
            p = p[~_on_ignored(mm, g, ig_by[f], p, iou)]
        dist = mm.distances.iou_matrix(g[:, 2:6], p[:, 2:6], max_iou=1.0 - iou)
        acc.update(g[:, 1].astype(int).tolist(), p[:, 1].astype(int).tolist(), dist, frameid=f)
    summary = mm.metrics.create().compute(acc, metrics=list(METRICS), name="all")
    out = {k: float(summary[k].iloc[0]) for k in METRICS}
    hota = _trackeval_hota(gt, pred, lo, hi)
    if hota is not None:
        out["hota"] = hota
    return out


def _on_ignored(mm: Any, g: np.ndarray, ig: np.ndarray, p: np.ndarray, iou: float) -> np.ndarray:
    """Mask of predictions covering an ignored box (IoU >= ``iou``) better than any scored box."""
    to_ig = 1.0 - np.nan_to_num(mm.distances.iou_matrix(ig[:, 2:6], p[:, 2:6], max_iou=1.0), nan=1.0)
    best_ig = to_ig.max(axis=0)
    if len(g):
        to_gt = 1.0 - np.nan_to_num(mm.distances.iou_matrix(g[:, 2:6], p[:, 2:6], max_iou=1.0), nan=1.0)
        best_gt = to_gt.max(axis=0)
    else:
        best_gt = np.zeros(len(p))
    return (best_ig >= iou) & (best_ig > best_gt)


def _by_frame(rows: np.ndarray) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    if len(rows) == 0:
        return out
    order = np.argsort(rows[:, 0], kind="stable")
    rows = rows[order]
    frames, starts = np.unique(rows[:, 0].astype(int), return_index=True)
    for f, a, b in zip(frames.tolist(), starts.tolist(), [*starts[1:].tolist(), len(rows)], strict=True):
        out[f] = rows[a:b]
    return out


def _trackeval_hota(gt: np.ndarray, pred: np.ndarray, lo: int, hi: int) -> float | None:
    """HOTA by TrackEval when it is installed (it is not a dependency); else ``None``."""
    if importlib.util.find_spec("trackeval") is None:
        return None
    from trackeval.metrics import HOTA  # pragma: no cover - only with the optional package

    gt_by, pr_by = _by_frame(gt), _by_frame(pred)
    gt_ids = {int(i): n for n, i in enumerate(np.unique(gt[:, 1]))} if len(gt) else {}
    pr_ids = {int(i): n for n, i in enumerate(np.unique(pred[:, 1]))} if len(pred) else {}
    mm = _motmetrics()
    data: dict[str, Any] = {"num_gt_ids": len(gt_ids), "num_tracker_ids": len(pr_ids), "gt_ids": [],
                            "tracker_ids": [], "similarity_scores": [], "num_gt_dets": 0, "num_tracker_dets": 0,
                            "num_timesteps": hi - lo + 1}
    for f in range(lo, hi + 1):
        g = gt_by.get(f, np.zeros((0, MOT_COLUMNS)))
        p = pr_by.get(f, np.zeros((0, MOT_COLUMNS)))
        data["gt_ids"].append(np.asarray([gt_ids[int(i)] for i in g[:, 1]], int))
        data["tracker_ids"].append(np.asarray([pr_ids[int(i)] for i in p[:, 1]], int))
        sim = 1.0 - np.nan_to_num(mm.distances.iou_matrix(g[:, 2:6], p[:, 2:6], max_iou=1.0), nan=1.0)
        data["similarity_scores"].append(sim)
        data["num_gt_dets"] += len(g)
        data["num_tracker_dets"] += len(p)
    return float(np.mean(HOTA().eval_sequence(data)["HOTA"]))
