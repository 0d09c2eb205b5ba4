"""How right a run's identities are: pairwise identity precision, recall and F1 against ground truth.

Every track of the run that the ground truth labels (``calibrate.label_tracks``: IoU against the
annotated boxes, majority vote) takes part. A pair of labelled tracks is a true positive when the
matcher put both in one identity and they are one person, a false positive (a wrong merge: one
person's timeline shows someone else) when it put two people together, and a false negative (a
missed link) when it kept one person apart. The same counts restricted to pairs on two different
cameras answer the question re-identification exists for.

Ground-truth ids must be global across cameras over the stretch scored. PETS09 ids are per
trajectory (a person who leaves and returns gets a new id), so only cameras that show the same
stretch of time can be compared; scoring a run past its annotated frames is the caller's error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from pipeline.matcher.calibrate import label_tracks
from pipeline.matcher.gallery import l2_normalise
from pipeline.store.base import Store
from pipeline.store.tracks import list_tracks


@dataclass(frozen=True)
class PairCounts:
    """Pairwise identity counts of one partition; ``precision`` is 1.0 when nothing was linked."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "precision": self.precision, "recall": self.recall, "f1": self.f1}


def pair_counts(pred: Sequence[int], truth: Sequence[str | None], cameras: Sequence[str] | None = None,
                cross_camera: bool = False) -> PairCounts:
    """Counts over pairs of labelled items (``truth`` None: not scored); ``cross_camera``: pairs on two cameras."""
    if cross_camera and cameras is None:
        raise ValueError("cross_camera needs cameras")
    idx = [i for i, t in enumerate(truth) if t is not None]
    tp = fp = fn = 0
    for i, j in combinations(idx, 2):
        if cross_camera and cameras[i] == cameras[j]:  # type: ignore[index]
            continue
        same_pred, same_true = pred[i] == pred[j], truth[i] == truth[j]
        tp += same_pred and same_true
        fp += same_pred and not same_true
        fn += same_true and not same_pred
    return PairCounts(tp, fp, fn)


@dataclass(frozen=True)
class IdentityScore:
    """A run's identity quality: all labelled pairs, and pairs across cameras."""

    all_pairs: PairCounts
    cross_camera: PairCounts
    tracks: int
    labelled: int
    people: int

    def to_dict(self) -> dict[str, object]:
        return {"all_pairs": self.all_pairs.to_dict(), "cross_camera": self.cross_camera.to_dict(),
                "tracks": self.tracks, "labelled": self.labelled, "people": self.people}


def score_partition(pred: Sequence[int], truth: Sequence[str | None], cameras: Sequence[str]) -> IdentityScore:
    """Pairwise scores of a partition of tracks (one entry per track in each sequence)."""
    labelled = [t for t in truth if t is not None]
    return IdentityScore(pair_counts(pred, truth), pair_counts(pred, truth, cameras, cross_camera=True),
                         len(pred), len(labelled), len(set(labelled)))


def run_labels(run_id: str, mot: Mapping[str, Path], gt: Mapping[str, Path], min_iou: float = 0.4) -> dict[str, str]:
    """``track_uid`` → person for the cameras of one run: its MOT output (``mot_out``) against ground truth."""
    out = {}
    for cam, gt_path in gt.items():
        for tid, person in label_tracks(mot[cam], gt_path, min_iou=min_iou).items():
            out[f"{cam}-{run_id}-{tid}"] = str(person)
    return out


def score_run(store: Store, run_id: str, labels: Mapping[str, str]) -> IdentityScore:
    """Score the identities of ``run_id``'s embedded tracks in ``store`` (merges resolved)."""
    tracks = [t for t in list_tracks(store) if t.identity is not None
              and t.track_uid.startswith(f"{t.camera_id}-{run_id}-")]
    return score_partition([int(t.identity) for t in tracks], [labels.get(t.track_uid) for t in tracks],  # type: ignore[arg-type]
                           [t.camera_id for t in tracks])


@dataclass(frozen=True)
class ClipVector:
    """One embedded clip of a track, in the order the matcher consumed it."""

    track_uid: str
    camera_id: str
    t_start: float
    t_end: float
    vector: np.ndarray


@dataclass(frozen=True)
class Separability:
    """Can an embedding tell a scene's people apart at all, whatever rule links them?

    F1 mixes the embedding with the matcher's rules and thresholds; these numbers isolate the
    embedding, so a low F1 can be traced to one or the other.

    Attributes:
        queries: labelled query-camera tracks that have a same-person gallery-camera track.
        rank1: share of them whose nearest gallery-camera track (track means) is that person.
        cross_auc: chance that a same-person cross-camera track pair scores above a different-person one.
        evidence_auc: the matcher's free evidence (docs/matcher.md "Site calibration"): chance that a
            later clip of a track scores against the track so far above two tracks one camera saw at the
            same time. Label-free: 0.5 means the site's own evidence cannot place any threshold.
        bar: the 99th percentile of those same-camera simultaneous pairs, roughly where a 1 % false-match
            bar lands (None: fewer than 2 such pairs). Same-modality pairs only: across modalities the
            matcher places its bar from a cohort instead, so there it is a rough guide.
        cross_pass: share of same-person cross-camera pairs that reach ``bar``: the recall such a bar
            leaves the matcher before any other rule.
    """

    queries: int
    rank1: float
    cross_auc: float
    evidence_auc: float
    bar: float | None
    cross_pass: float

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def _auc(high: Sequence[float], low: Sequence[float]) -> float:
    """P(a score of ``high`` > one of ``low``), ties half (the Mann-Whitney statistic); nan if either is empty."""
    if not len(high) or not len(low):
        return float("nan")
    h, lo = np.asarray(high, np.float64)[:, None], np.asarray(low, np.float64)[None, :]
    return float((h > lo).mean() + 0.5 * (h == lo).mean())


def separability(clips: Sequence[ClipVector], labels: Mapping[str, str], query_camera: str, gallery_camera: str,
                 overlap_slack_s: float = 0.2) -> Separability:
    """How well the clip vectors of a two-camera run separate its people (see ``Separability``).

    Tracks are compared by the normalised mean of their clips' unit vectors (the matcher's running
    mean at the end of the run). Evidence pairs follow the matcher's geometry: each later clip against
    the mean of its track's earlier clips; two tracks of one camera whose spans overlap by more than
    ``overlap_slack_s`` are the impostor side.
    """
    by_track: dict[str, list[ClipVector]] = {}
    for c in clips:
        by_track.setdefault(c.track_uid, []).append(c)
    uids = list(by_track)
    units = {u: l2_normalise(np.stack([c.vector for c in cs])) for u, cs in by_track.items()}   # (clips, D) each
    means = {u: l2_normalise(v.mean(axis=0)) for u, v in units.items()}
    camera = {u: cs[0].camera_id for u, cs in by_track.items()}
    span = {u: (min(c.t_start for c in cs), max(c.t_end for c in cs)) for u, cs in by_track.items()}

    genuine = [float(v[k] @ l2_normalise(v[:k].mean(axis=0))) for v in units.values() for k in range(1, len(v))]
    impostor = [float(means[a] @ means[b]) for a, b in combinations(uids, 2)
                if camera[a] == camera[b] and min(span[a][1], span[b][1]) - max(span[a][0], span[b][0]) > overlap_slack_s]
    bar = float(np.quantile(impostor, 0.99)) if len(impostor) >= 2 else None

    gallery = [u for u in uids if camera[u] == gallery_camera and u in labels]
    same, other, hits, queries = [], [], 0, 0
    for q in (u for u in uids if camera[u] == query_camera and u in labels):
        scores = {g: float(means[q] @ means[g]) for g in gallery}
        if not any(labels[g] == labels[q] for g in gallery):
            continue
        queries += 1
        hits += labels[max(scores, key=scores.__getitem__)] == labels[q]
        for g, s in scores.items():
            (same if labels[g] == labels[q] else other).append(s)
    return Separability(queries, hits / queries if queries else float("nan"), _auc(same, other),
                        _auc(genuine, impostor), bar,
                        float(np.mean(np.asarray(same) >= bar)) if same and bar is not None else float("nan"))
