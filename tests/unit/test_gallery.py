from __future__ import annotations

import numpy as np
import pytest

from models.errors import ContractError
from pipeline.config.settings import GalleryCfg
from pipeline.matcher.gallery import Gallery, l2_normalise


def _clustered(n_ids: int, views: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = l2_normalise(rng.standard_normal((n_ids, dim)))
    ids = np.repeat(np.arange(n_ids), views)
    return l2_normalise(centres[ids] + 0.3 * l2_normalise(rng.standard_normal((len(ids), dim)))), ids


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_search_returns_same_identity_views_first(kind):
    x, ids = _clustered(60, 5, 32)
    g = Gallery(32, GalleryCfg(kind=kind, ivf_nprobe=8))
    g.upsert(np.arange(len(x)), x)
    scores, keys = g.search(x[:20], 5)
    assert keys.shape == (20, 5) and scores.dtype == np.float32
    assert np.all(np.diff(scores, axis=1) <= 1e-6), "best first"
    for i in range(20):
        assert keys[i, 0] == i and scores[i, 0] == pytest.approx(1.0, abs=1e-5)
        assert set(ids[keys[i]]) == {ids[i]}


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_upsert_replaces_and_compact_keeps_answers(kind):
    x, _ = _clustered(50, 4, 16, seed=1)
    g = Gallery(16, GalleryCfg(kind=kind))
    g.upsert(np.arange(len(x)), x)
    g.upsert([3], x[150])                        # track 3 now looks like track 150
    assert len(g) == len(x) and g.tombstones == 1
    _, keys = g.search(x[150], 2)
    assert set(keys[0].tolist()) == {3, 150}
    before = g.search(x[:30], 4)
    g.compact()
    assert g.tombstones == 0 and len(g) == len(x)
    after = g.search(x[:30], 4)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_allclose(g.vector(3), x[150], atol=1e-6)


def test_tombstones_never_come_back_and_rows_stay_full():
    x, _ = _clustered(10, 10, 8, seed=2)
    g = Gallery(8)
    g.upsert(np.arange(100), x)
    assert g.remove(np.arange(0, 100, 2)) == 50
    scores, keys = g.search(x[:10], 10)
    assert np.all(keys >= 0) and np.all(keys % 2 == 1)  # only live (odd) keys, and still k of them
    assert np.isfinite(scores).all()


def test_small_gallery_pads_and_bad_shapes_raise():
    g = Gallery(4)
    scores, keys = g.search(np.eye(4, dtype=np.float32)[0], 3)
    assert keys.tolist() == [[-1, -1, -1]] and np.isneginf(scores).all()
    g.upsert([7], np.eye(4, dtype=np.float32)[1])
    _, keys = g.search(np.eye(4, dtype=np.float32)[1], 3)
    assert keys.tolist() == [[7, -1, -1]]
    with pytest.raises(ContractError, match=r"\(N, 4\)"):
        g.upsert([1], np.ones(5, dtype=np.float32))
    with pytest.raises(ContractError, match="distinct"):
        g.upsert([1, 1], np.eye(4, dtype=np.float32)[:2])


def test_ivf_gallery_grown_one_track_at_a_time_retrains_its_cells():
    import faiss

    x, ids = _clustered(220, 5, 16, seed=3)
    g = Gallery(16, GalleryCfg(kind="ivf", ivf_nprobe=4))
    for i, v in enumerate(x):
        g.upsert([i], v)
    nlist = faiss.downcast_index(g._index.index).nlist  # noqa: SLF001
    assert nlist > 1, "trained on one vector at first, retrained once the gallery grew"
    _, keys = g.search(x[:50], 5)
    assert np.mean([set(ids[k]) == {ids[i]} for i, k in enumerate(keys)]) >= 0.95


def test_l2_normalise_gives_unit_float32_rows_and_keeps_zero_rows():
    rows = np.array([[3.0, 4.0], [0.0, 0.0]])
    out = l2_normalise(rows)
    assert out.dtype == np.float32 and np.allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    one = l2_normalise(np.array([0.0, 2.0], np.float32))
    assert one.shape == (2,) and np.array_equal(one, [0.0, 1.0])
