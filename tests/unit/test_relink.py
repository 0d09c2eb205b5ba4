"""Fragment relinking: a person lost and found again keeps one id (pipeline/tracking/relink.py)."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import ConfigError
from pipeline.config.loader import from_dict
from pipeline.config.settings import RelinkCfg, XreidCfg
from pipeline.tracking.relink import Relinker, appearance_features
from pipeline.tracking.tracker import TrackedBoxes

H, W = 240, 400
RED_BLUE = ((40, 40, 200), (200, 60, 40))     # BGR shirt, trousers
GREEN_GRAY = ((40, 180, 40), (128, 128, 128))


def _frame(people: list[tuple[np.ndarray, tuple]]) -> np.ndarray:
    img = np.full((H, W, 3), 90, np.uint8)
    for box, (top, bottom) in people:
        x1, y1, x2, y2 = np.rint(box).astype(int)
        mid = (y1 + y2) // 2
        img[y1:mid, x1:x2] = top
        img[mid:y2, x1:x2] = bottom
    return img


def _box(x: float) -> np.ndarray:
    return np.array([x, 80, x + 24, 160], np.float32)


def _tracked(ids: list[int], boxes: list[np.ndarray]) -> TrackedBoxes:
    n = len(ids)
    xyxy = np.stack(boxes).astype(np.float32) if n else np.zeros((0, 4), np.float32)
    return TrackedBoxes(np.asarray(ids, np.int64).reshape(n), xyxy, np.arange(n, dtype=np.int64))


def _walk(relinker: Relinker, tracker_id_after: int, colours_after: tuple, x_after_gap: float | None = None,
          gap: int = 6) -> list[int]:
    """A person walks right 3 px/frame as tracker id 1, vanishes ``gap`` frames, returns as a new id."""
    out = []
    x = 20.0
    for _ in range(10):
        box = _box(x)
        r = relinker.update(_tracked([1], [box]), _frame([(box, RED_BLUE)]), tracker_alive={1})
        out.extend(r.track_ids.tolist())
        x += 3
    for _ in range(gap):
        relinker.update(_tracked([], []), _frame([]), tracker_alive={1})
        x += 3
    box = _box(x if x_after_gap is None else x_after_gap)
    r = relinker.update(_tracked([tracker_id_after], [box]), _frame([(box, colours_after)]),
                        tracker_alive={1, tracker_id_after})
    out.extend(r.track_ids.tolist())
    return out


def test_person_found_again_where_expected_keeps_the_id_and_is_counted():
    relinker = Relinker(RelinkCfg())
    ids = _walk(relinker, tracker_id_after=7, colours_after=RED_BLUE)
    assert len(set(ids)) == 1 and relinker.relinks == 1


def test_someone_who_looks_different_gets_a_new_id():
    relinker = Relinker(RelinkCfg())
    ids = _walk(relinker, tracker_id_after=7, colours_after=GREEN_GRAY)
    assert ids[-1] != ids[0] and relinker.relinks == 0


def test_same_colours_far_from_the_predicted_place_get_a_new_id():
    relinker = Relinker(RelinkCfg())
    ids = _walk(relinker, tracker_id_after=7, colours_after=RED_BLUE, x_after_gap=330.0)
    assert ids[-1] != ids[0] and relinker.relinks == 0


def test_gap_longer_than_max_gap_is_not_bridged_and_the_old_id_ends():
    relinker = Relinker(RelinkCfg(max_gap_frames=4))
    ended: list[int] = []
    box = _box(20)
    first = relinker.update(_tracked([1], [box]), _frame([(box, RED_BLUE)]), tracker_alive={1}).track_ids[0]
    for _ in range(6):
        ended += relinker.update(_tracked([], []), _frame([]), tracker_alive=set()).ended
    assert ended == [first] and first not in relinker.active_ids()
    box = _box(20)
    again = relinker.update(_tracked([2], [box]), _frame([(box, RED_BLUE)]), tracker_alive={2}).track_ids[0]
    assert again != first and relinker.relinks == 0


def test_an_id_the_tracker_still_holds_does_not_end():
    relinker = Relinker(RelinkCfg(max_gap_frames=2))
    box = _box(20)
    relinker.update(_tracked([1], [box]), _frame([(box, RED_BLUE)]), tracker_alive={1})
    for _ in range(5):
        assert relinker.update(_tracked([], []), _frame([]), tracker_alive={1}).ended == ()


def test_two_people_present_together_are_never_merged():
    relinker = Relinker(RelinkCfg())
    a, b = _box(20), _box(60)
    r = relinker.update(_tracked([1, 2], [a, b]), _frame([(a, RED_BLUE), (b, RED_BLUE)]), tracker_alive={1, 2})
    assert len(set(r.track_ids.tolist())) == 2


def test_appearance_features_are_unit_vectors_that_tell_colours_apart():
    a, b = _box(20), _box(100)
    f = appearance_features(_frame([(a, RED_BLUE), (b, GREEN_GRAY)]), np.stack([a, b, np.array([0, 0, 1, 1])]))
    np.testing.assert_allclose(np.linalg.norm(f[:2], axis=1), 1.0, atol=1e-5)
    assert not np.any(f[2])             # a degenerate box has no descriptor
    assert float(f[0] @ f[1]) < 0.5     # different clothes, low similarity
    gray = appearance_features(_frame([(a, RED_BLUE)])[:, :, 0], a[None])
    assert gray.shape == f[:1].shape


@pytest.mark.parametrize(("key", "value"), [
    ("max_gap_frames", 0), ("gate", 0.0), ("gate_per_frame", -0.1), ("min_similarity", 1.2),
    ("size_tolerance", -0.1), ("appearance_momentum", 1.5), ("velocity_frames", 1),
])
def test_relink_config_errors_name_the_key(key, value):
    with pytest.raises(ConfigError, match=f"tracker.relink.{key}"):
        from_dict(XreidCfg, {"tracker": {"relink": {key: value}}})
