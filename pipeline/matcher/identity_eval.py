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

from pipeline.matcher.calibrate import label_tracks
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
