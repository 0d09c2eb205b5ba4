"""Pairwise identity scores of a run against ground truth (pipeline/matcher/identity_eval.py)."""

from __future__ import annotations

import numpy as np

from pipeline.matcher.identity_eval import ClipVector, pair_counts, score_partition, separability


def test_cross_camera_pair_counts_ignore_pairs_on_one_camera():
    pred, truth, cams = [1, 1, 1, 2], ["a", "a", "b", "b"], ["c1", "c2", "c1", "c2"]
    all_pairs = pair_counts(pred, truth)
    assert (all_pairs.tp, all_pairs.fp, all_pairs.fn) == (1, 2, 1)
    cross = pair_counts(pred, truth, cams, cross_camera=True)   # pairs (0,1) (0,3) (1,2) (2,3)
    assert (cross.tp, cross.fp, cross.fn) == (1, 1, 1)
    assert cross.precision == 0.5 and cross.recall == 0.5
    assert pair_counts([1, 2], ["a", None]).precision == 1.0, "nothing linked: nothing wrong"


def test_score_partition_counts_tracks_labelled_and_people():
    s = score_partition([1, 1, 2, 3], ["a", "a", None, "b"], ["c1", "c2", "c1", "c2"])
    assert (s.tracks, s.labelled, s.people) == (4, 3, 2)
    assert s.cross_camera.to_dict()["f1"] == 1.0 and s.all_pairs.tp == 1


def _scene(spread: float, seed: int = 0) -> tuple[list[ClipVector], dict[str, str]]:
    """Six people walking side by side on camera A, the same six later on camera B; three clips per
    track, each the person's own direction plus noise of size ``spread`` (large: a blind embedding)."""
    rng = np.random.default_rng(seed)
    people = rng.normal(size=(6, 32))
    clips, labels = [], {}
    for cam, t0 in (("camA", 0.0), ("camB", 100.0)):
        for p in range(6):
            uid = f"{cam}-{p}"
            labels[uid] = str(p)
            clips += [ClipVector(uid, cam, t0 + k, t0 + k + 1, people[p] + spread * rng.normal(size=32)) for k in range(3)]
    return clips, labels


def test_separability_tells_a_seeing_embedding_from_a_blind_one():
    seeing = separability(*_scene(0.3), "camB", "camA")
    assert seeing.queries == 6 and seeing.rank1 == 1.0
    assert seeing.cross_auc > 0.95 and seeing.evidence_auc > 0.95
    assert seeing.bar is not None and seeing.cross_pass > 0.9, "one person scores above every pair of two people"
    blind = separability(*_scene(50.0), "camB", "camA")
    assert 0.2 < blind.cross_auc < 0.8 and blind.evidence_auc < 0.8
    assert blind.rank1 < 1.0


def test_separability_counts_only_queries_the_gallery_can_answer():
    clips, labels = _scene(0.3)
    labels["camB-5"] = "stranger"          # nobody on camera A: not a query
    del labels["camA-4"]                   # unlabelled gallery track: not scored, so camB-4 has no answer
    s = separability(clips, labels, "camB", "camA")
    assert s.queries == 4 and s.rank1 == 1.0
