"""Gray renderings of visible training sequences (models/data/gray.py)."""

from __future__ import annotations

import numpy as np

from models.data.gray import luminance, random_mix, to_gray


def frames(n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (16, 8, 3), dtype=np.uint8) for _ in range(n)]


def test_random_mix_gives_gray_uint8_frames_of_the_same_shape() -> None:
    out = random_mix(frames(), np.random.default_rng(1))
    for f, g in zip(frames(), out, strict=True):
        assert g.shape == f.shape and g.dtype == np.uint8
        assert (g[..., 0] == g[..., 1]).all() and (g[..., 1] == g[..., 2]).all()


def test_random_mix_is_seeded_and_one_sensor_per_sequence() -> None:
    a = random_mix(frames(), np.random.default_rng(3))
    b = random_mix(frames(), np.random.default_rng(3))
    c = random_mix(frames(), np.random.default_rng(4))
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    assert any((x != y).any() for x, y in zip(a, c, strict=True))
    # the same pixels in two frames of one sequence map to the same gray (noise aside): one sensor per sequence
    same = [np.full((16, 8, 3), (200, 40, 90), np.uint8)] * 2
    g = random_mix(same, np.random.default_rng(5))
    assert abs(float(g[0].mean()) - float(g[1].mean())) < 4.0


def test_luminance_mode_matches_plain_gray() -> None:
    f = frames(1)
    np.testing.assert_array_equal(to_gray(f, "luminance", np.random.default_rng(0))[0], luminance(f)[0])


def test_unknown_gray_mode_is_a_config_error() -> None:
    import pytest

    from models.errors import ConfigError
    from models.train.config import DataSection

    with pytest.raises(ConfigError, match="rgb_gray_mode"):
        DataSection(rgb_gray_mode="sepia")  # type: ignore[arg-type]
