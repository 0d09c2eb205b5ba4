"""Evaluation protocol: hand-computed CMC/mAP/mINP, the reference's exclusions, both directions."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import ContractError
from models.eval import eval_func, evaluate_vvi, k_reciprocal_rerank, squared_euclidean
from models.eval.plot import save_cmc_png


def _oracle(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=50):
    """The reference protocol restated with plain loops (no ragged rows in the inputs used)."""
    max_rank = min(max_rank, distmat.shape[1])
    cmcs, aps = [], []
    for i in range(distmat.shape[0]):
        kept = [j for j in sorted(range(distmat.shape[1]), key=lambda j: distmat[i, j])
                if not (g_pids[j] == q_pids[i] and g_cams[j] == q_cams[i])]
        rel = [1 if g_pids[j] == q_pids[i] else 0 for j in kept]
        if sum(rel) == 0:
            continue
        first = rel.index(1)
        cmcs.append([1.0 if r >= first else 0.0 for r in range(max_rank)])
        hits, prec = 0, 0.0
        for r, x in enumerate(rel):
            if x:
                hits += 1
                prec += hits / (r + 1)
        aps.append(prec / sum(rel))
    return np.mean(cmcs, axis=0), float(np.mean(aps))


def test_same_identity_same_camera_is_dropped_and_short_rows_are_padded():
    dist = np.array([[0.1, 0.2, 0.3, 0.05]])
    cmc, m_ap, m_inp, valid = eval_func(dist, np.array([1]), np.array([2, 1, 3, 1]),
                                        np.array([0]), np.array([1, 1, 1, 0]))
    # the nearest entry (pid 1, cam 0) shares the query's camera: dropped; the match is then 2nd of 3
    assert valid == 1
    np.testing.assert_allclose(cmc, [0, 1, 1, 1])       # 3 kept entries, padded to G=4
    assert m_ap == pytest.approx(0.5)
    assert m_inp == pytest.approx(0.5)


def test_same_identity_other_camera_and_other_identity_same_camera_are_kept():
    dist = np.array([[0.1, 0.2]])
    cmc, m_ap, _, _ = eval_func(dist, np.array([1]), np.array([5, 1]), np.array([0]), np.array([0, 3]))
    np.testing.assert_allclose(cmc, [0, 1])              # pid 5 in the query's camera still counts as a miss
    assert m_ap == pytest.approx(0.5)


def test_two_matches_hand_computed_ap_and_inp():
    # ranked: match, miss, match, miss
    dist = np.array([[0.1, 0.2, 0.3, 0.4]])
    cmc, m_ap, m_inp, _ = eval_func(dist, np.array([7]), np.array([7, 2, 7, 3]), np.array([0]),
                                    np.array([1, 1, 2, 2]))
    np.testing.assert_allclose(cmc, [1, 1, 1, 1])
    assert m_ap == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert m_inp == pytest.approx(2 / 3)


def test_ties_are_broken_by_gallery_order():
    dist = np.array([[0.5, 0.5, 0.5]])
    cmc, m_ap, _, _ = eval_func(dist, np.array([1]), np.array([2, 1, 3]), np.array([0]), np.array([1, 1, 1]))
    np.testing.assert_allclose(cmc, [0, 1, 1])
    assert m_ap == pytest.approx(0.5)


def test_queries_without_a_remaining_match_are_skipped():
    dist = np.array([[0.1, 0.9], [0.2, 0.3], [0.4, 0.1]])
    q_pids, q_cams = np.array([1, 9, 2]), np.array([0, 0, 0])
    g_pids, g_cams = np.array([1, 2]), np.array([1, 0])
    # query 2 (pid 9) is not in the gallery; query 3's only match shares its camera
    cmc, m_ap, m_inp, valid = eval_func(dist, q_pids, g_pids, q_cams, g_cams)
    assert valid == 1
    np.testing.assert_allclose(cmc, [1, 1])
    assert m_ap == pytest.approx(1.0) and m_inp == pytest.approx(1.0)


def test_no_valid_query_is_a_clear_error():
    with pytest.raises(ContractError, match="no query"):
        eval_func(np.array([[0.1]]), np.array([1]), np.array([2]), np.array([0]), np.array([1]))


def test_shape_mismatch_is_a_contract_error():
    with pytest.raises(ContractError, match="g_pids"):
        eval_func(np.zeros((1, 3)), np.array([1]), np.array([1, 2]), np.array([0]), np.array([1, 2, 3]))


def test_matches_reference_protocol_on_random_matrices():
    rng = np.random.default_rng(0)
    for _ in range(5):
        nq, ng = 30, 80
        dist = rng.random((nq, ng))
        q_pids, g_pids = rng.integers(0, 12, nq), rng.integers(0, 12, ng)
        q_cams, g_cams = rng.integers(0, 4, nq), rng.integers(0, 4, ng)
        # a match in every other camera keeps every row full length (the reference's working case)
        g_pids[:48] = np.repeat(np.arange(12), 4)
        g_cams[:48] = np.tile(np.arange(4), 12)
        want_cmc, want_map = _oracle(dist, q_pids, g_pids, q_cams, g_cams)
        cmc, m_ap, _, _ = eval_func(dist, q_pids, g_pids, q_cams, g_cams)
        np.testing.assert_allclose(cmc, want_cmc, atol=1e-6)
        assert abs(m_ap - want_map) < 1e-6


def test_squared_euclidean_is_two_minus_two_cosine_on_normalised_features():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 8)), rng.normal(size=(5, 8))
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    np.testing.assert_allclose(squared_euclidean(a, b), 2 - 2 * an @ bn.T, atol=1e-9)


def _clustered(rng, pids, noise=0.05, dim=16):
    centres = np.random.default_rng(99).normal(size=(max(pids) + 1, dim))   # shared by both modalities
    return centres[pids] + noise * rng.normal(size=(len(pids), dim))


def test_both_directions_swap_roles():
    rng = np.random.default_rng(2)
    ir_pids, rgb_pids = np.array([0, 1, 2]), np.array([0, 0, 1, 1, 2, 2, 3])
    ir = _clustered(rng, ir_pids)
    rgb = _clustered(rng, rgb_pids)
    res = evaluate_vvi(ir, ir_pids, np.zeros(3), rgb, rgb_pids, np.ones(7))
    assert res.ir_to_rgb.num_queries == 3 and res.ir_to_rgb.num_gallery == 7
    assert res.rgb_to_ir.num_queries == 7 and res.rgb_to_ir.num_valid_queries == 6   # pid 3 has no IR
    assert res.ir_to_rgb.rank(1) == 1.0 and res.rgb_to_ir.rank(1) == 1.0
    assert "ir_to_rgb" in res.table() and set(res.to_dict()) == {"ir_to_rgb", "rgb_to_ir"}


def test_well_separated_identities_score_perfectly_with_and_without_rerank():
    rng = np.random.default_rng(3)
    pids = np.repeat(np.arange(8), 3)
    ir, rgb = _clustered(rng, pids), _clustered(rng, pids)
    for rerank in (False, True):
        res = evaluate_vvi(ir, pids, np.zeros(24), rgb, pids, np.ones(24), rerank=rerank)
        for d in res.directions():
            assert d.rank(1) == 1.0 and d.mAP == pytest.approx(1.0)


def test_rerank_output_shape_and_it_changes_distances():
    rng = np.random.default_rng(4)
    q, g = rng.normal(size=(5, 8)), rng.normal(size=(9, 8))
    d = k_reciprocal_rerank(squared_euclidean(q, g), squared_euclidean(q, q), squared_euclidean(g, g), k1=4, k2=2)
    assert d.shape == (5, 9)
    assert not np.allclose(d, squared_euclidean(q, g))


def test_cmc_png_is_written(tmp_path):
    rng = np.random.default_rng(5)
    pids = np.repeat(np.arange(4), 2)
    res = evaluate_vvi(_clustered(rng, pids), pids, np.zeros(8), _clustered(rng, pids), pids, np.ones(8))
    out = save_cmc_png(res, tmp_path / "cmc.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
