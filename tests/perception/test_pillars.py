"""Pillarization: the Numba kernel against the NumPy reference, and the documented choices."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaido.perception.pillars import (
    PillarFeature,
    Pillars,
    pillarize,
    pillarize_batch,
    pillarize_reference,
)
from kaido.scene.raster import RasterSpec

GRID = RasterSpec(height=16, width=12, resolution=1.0, ego_row=12, ego_col=6)
# x in (-4, 12], y in (-6, 6]


def assert_same(a: Pillars, b: Pillars) -> None:
    assert a.count == b.count
    np.testing.assert_array_equal(a.coords, b.coords)
    np.testing.assert_array_equal(a.num_points, b.num_points)
    np.testing.assert_allclose(a.features, b.features, rtol=0, atol=1e-5)


def random_cloud(rng: np.random.Generator, n: int, spread: float = 1.3) -> np.ndarray:
    pts = np.empty((n, 4), np.float32)
    pts[:, 0] = rng.uniform(-4 * spread, 12 * spread, n)
    pts[:, 1] = rng.uniform(-6 * spread, 6 * spread, n)
    pts[:, 2] = rng.uniform(-2.0, 5.0, n)
    pts[:, 3] = rng.uniform(0.0, 1.0, n)
    return pts


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(0, 400),
    max_pillars=st.integers(1, 200),
    max_points=st.integers(1, 12),
    clustered=st.booleans(),
)
def test_kernel_agrees_with_reference(
    seed: int, n: int, max_pillars: int, max_points: int, clustered: bool
) -> None:
    rng = np.random.default_rng(seed)
    pts = random_cloud(rng, n, spread=0.3 if clustered else 1.3)
    count = int(rng.integers(0, n + 1))
    args = (GRID, -1.0, 3.0, max_pillars, max_points)
    assert_same(pillarize(pts, count, *args), pillarize_reference(pts, count, *args))


def test_empty_cloud_gives_empty_pillars() -> None:
    for pts, count in ((np.zeros((0, 4), np.float32), 0), (np.ones((5, 4), np.float32), 0)):
        p = pillarize(pts, count, GRID, -1.0, 3.0, 4, 3)
        assert p.count == 0
        assert p.features.shape == (4, 3, 9) and not p.features.any()
        assert not p.coords.any() and not p.num_points.any()
        assert_same(p, pillarize_reference(pts, count, GRID, -1.0, 3.0, 4, 3))


def test_points_outside_grid_or_z_range_are_dropped() -> None:
    pts = np.array(
        [
            [12.0, 0.0, 0.0, 1.0],  # x = 12: row floor(12 - 12) = 0, inside
            [12.01, 0.0, 0.0, 1.0],  # beyond the front edge
            [-4.0, 0.0, 0.0, 1.0],  # x = -4: row 16, just outside
            [0.0, 6.01, 0.0, 1.0],  # beyond the left edge
            [0.0, -6.0, 0.0, 1.0],  # y = -6: col 12, just outside
            [0.0, 0.0, 3.0, 1.0],  # z == z_max: dropped
            [0.0, 0.0, -1.0, 1.0],  # z == z_min: kept
            [np.nan, 0.0, 0.0, 1.0],  # not finite
            [0.0, 0.0, 0.0, np.inf],  # not finite
        ],
        np.float32,
    )
    p = pillarize(pts, len(pts), GRID, -1.0, 3.0, 10, 4)
    assert p.count == 2
    np.testing.assert_array_equal(p.coords[:2], [[0, 6], [12, 6]])
    np.testing.assert_array_equal(p.num_points[:3], [1, 1, 0])
    assert_same(p, pillarize_reference(pts, len(pts), GRID, -1.0, 3.0, 10, 4))


def test_features_are_pointpillars_nine() -> None:
    # two points in cell (row 10, col 4): x in [1, 2], y in [1, 2]; centre (1.5, 1.5)
    pts = np.array([[1.2, 1.1, 0.5, 0.25], [1.6, 1.9, 1.5, 0.75]], np.float32)
    p = pillarize(pts, 2, GRID, -1.0, 3.0, 3, 4)
    assert p.count == 1 and p.num_points[0] == 2
    np.testing.assert_array_equal(p.coords[0], [10, 4])
    f = p.features[0, :2]
    np.testing.assert_allclose(f[:, PillarFeature.X : PillarFeature.INTENSITY + 1], pts, atol=0)
    mean = pts[:, :3].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(f[:, 4:7], pts[:, :3] - mean, atol=1e-6)
    np.testing.assert_allclose(f[:, PillarFeature.X_CENTRE_OFFSET], pts[:, 0] - 1.5, atol=1e-6)
    np.testing.assert_allclose(f[:, PillarFeature.Y_CENTRE_OFFSET], pts[:, 1] - 1.5, atol=1e-6)
    assert not p.features[0, 2:].any() and not p.features[1:].any()


def test_overflow_keeps_first_points_and_first_pillars_in_point_order() -> None:
    # cells by x: x = 0.5 -> row 11, x = 1.5 -> row 10, x = 2.5 -> row 9 (y = 0.5 -> col 5)
    xs = [1.5, 0.5, 1.5, 1.5, 2.5, 0.5, 1.5]
    pts = np.array([[x, 0.5, 0.0, i] for i, x in enumerate(xs)], np.float32)
    p = pillarize(pts, len(pts), GRID, -1.0, 3.0, 2, 2)
    assert p.count == 2  # the cell of x = 2.5 arrives third: dropped
    np.testing.assert_array_equal(p.coords, [[10, 5], [11, 5]])
    np.testing.assert_array_equal(p.num_points, [2, 2])
    # pillar 0 keeps points 0 and 2 (not 3, 6); pillar 1 keeps points 1 and 5
    np.testing.assert_array_equal(p.features[:, :, PillarFeature.INTENSITY], [[0, 2], [1, 5]])
    assert_same(p, pillarize_reference(pts, len(pts), GRID, -1.0, 3.0, 2, 2))
    # the same cloud again: the same answer
    assert_same(p, pillarize(pts.copy(), len(pts), GRID, -1.0, 3.0, 2, 2))


def test_float16_input_is_accepted() -> None:
    rng = np.random.default_rng(3)
    pts = random_cloud(rng, 200).astype(np.float16)
    assert_same(
        pillarize(pts, 150, GRID, -1.0, 3.0, 64, 8),
        pillarize_reference(pts.astype(np.float32), 150, GRID, -1.0, 3.0, 64, 8),
    )


def test_batch_stacks_single_sweeps() -> None:
    rng = np.random.default_rng(7)
    pts = np.stack([random_cloud(rng, 300) for _ in range(3)])
    counts = np.array([300, 0, 120], np.int32)
    batch = pillarize_batch(pts, counts, GRID, -1.0, 3.0, 50, 6)
    assert batch.features.shape == (3, 50, 6, 9)
    assert batch.coords.shape == (3, 50, 2) and batch.num_points.shape == (3, 50)
    for i in range(3):
        single = pillarize(pts[i], int(counts[i]), GRID, -1.0, 3.0, 50, 6)
        assert batch.counts[i] == single.count
        np.testing.assert_array_equal(batch.features[i], single.features)
        np.testing.assert_array_equal(batch.coords[i], single.coords)
        np.testing.assert_array_equal(batch.num_points[i], single.num_points)


def test_bad_input_raises_clear_errors() -> None:
    pts = np.zeros((5, 4), np.float32)
    with pytest.raises(ValueError, match="points must have shape \\(N, 4\\)"):
        pillarize(np.zeros((5, 3)), 5, GRID, -1.0, 3.0, 4, 4)
    with pytest.raises(ValueError, match="count must be in \\[0, 5\\]"):
        pillarize(pts, 6, GRID, -1.0, 3.0, 4, 4)
    with pytest.raises(ValueError, match="max_points must be a positive integer"):
        pillarize(pts, 5, GRID, -1.0, 3.0, 4, 0)
    with pytest.raises(ValueError, match="z_min < z_max"):
        pillarize(pts, 5, GRID, 3.0, 3.0, 4, 4)
    with pytest.raises(ValueError, match="counts must be integers of shape \\(2,\\)"):
        pillarize_batch(np.zeros((2, 5, 4)), np.array([1.0, 2.0]), GRID, -1.0, 3.0, 4, 4)
