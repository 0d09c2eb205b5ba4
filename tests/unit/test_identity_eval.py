"""Pairwise identity scores of a run against ground truth (pipeline/matcher/identity_eval.py)."""

from __future__ import annotations

from pipeline.matcher.identity_eval import pair_counts, score_partition


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
