"""Pillarization of lidar points on the BEV grid (PointPillars), NumPy + Numba, no torch.

A pillar is one cell of the BEV grid (:class:`~kaido.scene.raster.RasterSpec`): point
``(x, y)`` in the ego frame falls in the cell ``(row, col) = (floor(origin_row - x / res),
floor(origin_col - y / res))``. Each kept point gets PointPillars' 9 features
(:class:`PillarFeature`): its ``x, y, z, intensity``, its offset from the mean of the pillar's
kept points and its ``x, y`` offset from the pillar's cell centre
``((origin_row - row - 0.5) * res, (origin_col - col - 0.5) * res)``.

Deterministic choice when there is too much: points are read in their row order (the dataset's
points are already a random subsample in random order); pillars are numbered in the order their
first kept point arrives; once ``max_pillars`` pillars exist, points of further cells are
dropped, and a pillar keeps its first ``max_points`` points. Points are dropped when not finite,
outside the grid, or outside ``z_min <= z < z_max``. Unused pillar slots are zeros with
``num_points == 0`` and coordinates ``(0, 0)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from kaido.perception.pillar_kernels import NUM_PILLAR_FEATURES, pillarize_kernel
from kaido.scene.raster import RasterSpec

__all__ = [
    "NUM_PILLAR_FEATURES",
    "PillarBatch",
    "PillarFeature",
    "Pillars",
    "pillarize",
    "pillarize_batch",
    "pillarize_reference",
]


class PillarFeature(IntEnum):
    """Columns of a pillar's point features ``(..., 9)``; metres, intensity as given."""

    X = 0
    Y = 1
    Z = 2
    INTENSITY = 3
    X_MEAN_OFFSET = 4
    Y_MEAN_OFFSET = 5
    Z_MEAN_OFFSET = 6
    X_CENTRE_OFFSET = 7
    Y_CENTRE_OFFSET = 8


@dataclass(frozen=True)
class Pillars:
    """The pillars of one sweep."""

    features: npt.NDArray[np.float32]
    """``(P, M, 9)`` point features (:class:`PillarFeature`); zeros past ``num_points``."""
    coords: npt.NDArray[np.int32]
    """``(P, 2)`` grid (row, col) of each pillar; ``(0, 0)`` for unused slots."""
    num_points: npt.NDArray[np.int32]
    """``(P,)`` kept points per pillar, 0 for unused slots."""
    count: int
    """Pillars in use (the first ``count`` slots)."""


class PillarBatch(NamedTuple):
    """The pillars of a batch of sweeps (stacked :class:`Pillars`); unpacks to the three
    arrays ``features, coords, num_points``."""

    features: npt.NDArray[np.float32]
    """``(B, P, M, 9)``."""
    coords: npt.NDArray[np.int32]
    """``(B, P, 2)`` (row, col)."""
    num_points: npt.NDArray[np.int32]
    """``(B, P)``."""

    @property
    def counts(self) -> npt.NDArray[np.int64]:
        """``(B,)`` pillars in use per sweep (the used slots come first and are non-empty)."""
        out: npt.NDArray[np.int64] = (self.num_points > 0).sum(axis=1).astype(np.int64)
        return out


def _check_args(
    points: npt.ArrayLike,
    count: int,
    grid: RasterSpec,
    z_min: float,
    z_max: float,
    max_pillars: int,
    max_points: int,
) -> npt.NDArray[np.float32]:
    if not isinstance(grid, RasterSpec):
        raise TypeError(f"pillarize: grid must be a RasterSpec, got {type(grid).__name__}")
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] != 4:
        raise ValueError(f"pillarize: points must have shape (N, 4), got {pts.shape}")
    if not (np.issubdtype(pts.dtype, np.floating) or np.issubdtype(pts.dtype, np.integer)):
        raise ValueError(f"pillarize: points must be real numbers, got dtype {pts.dtype}")
    if isinstance(count, bool) or not isinstance(count, int | np.integer):
        raise ValueError(f"pillarize: count must be an integer, got {count!r}")
    if not 0 <= int(count) <= pts.shape[0]:
        raise ValueError(f"pillarize: count must be in [0, {pts.shape[0]}], got {count}")
    for name, value in (("max_pillars", max_pillars), ("max_points", max_points)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"pillarize: {name} must be a positive integer, got {value!r}")
    if not (np.isfinite(z_min) and np.isfinite(z_max) and z_min < z_max):
        raise ValueError(f"pillarize: need finite z_min < z_max, got {z_min}, {z_max}")
    return np.ascontiguousarray(pts, dtype=np.float32)


def pillarize(
    points: npt.ArrayLike,
    count: int,
    grid: RasterSpec,
    z_min: float,
    z_max: float,
    max_pillars: int,
    max_points: int,
) -> Pillars:
    """Pillars of the first ``count`` rows of ``points`` ``(N, 4)`` (x, y, z [m], intensity in
    the ego frame; float16/float32 accepted, computed in float64, stored as float32) on ``grid``,
    with at most ``max_pillars`` (P) pillars of at most ``max_points`` (M) points (see the module
    docstring for what is kept). The Numba kernel :func:`pillarize_kernel`."""
    pts = _check_args(points, count, grid, z_min, z_max, max_pillars, max_points)
    features, coords, num_points, n = pillarize_kernel(
        pts,
        int(count),
        grid.height,
        grid.width,
        float(grid.resolution),
        grid.origin_row,
        grid.origin_col,
        float(z_min),
        float(z_max),
        int(max_pillars),
        int(max_points),
    )
    return Pillars(features, coords, num_points, int(n))


def pillarize_reference(
    points: npt.ArrayLike,
    count: int,
    grid: RasterSpec,
    z_min: float,
    z_max: float,
    max_pillars: int,
    max_points: int,
) -> Pillars:
    """The plain NumPy oracle of :func:`pillarize` (same arguments, same result)."""
    pts = _check_args(points, count, grid, z_min, z_max, max_pillars, max_points)
    p64 = pts[: int(count)].astype(np.float64)
    res = float(grid.resolution)
    with np.errstate(invalid="ignore"):
        rows = np.floor(grid.origin_row - p64[:, 0] / res)
        cols = np.floor(grid.origin_col - p64[:, 1] / res)
        keep = (
            np.isfinite(p64).all(axis=1)
            & (p64[:, 2] >= z_min)
            & (p64[:, 2] < z_max)
            & (rows >= 0)
            & (rows < grid.height)
            & (cols >= 0)
            & (cols < grid.width)
        )
    idx = np.flatnonzero(keep)
    cells = rows[idx].astype(np.int64) * grid.width + cols[idx].astype(np.int64)
    # pillars in order of their first point; rank of each point within its cell
    uniq, first, inverse = np.unique(cells, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # pillar number -> index into uniq
    pillar_of_uniq = np.empty(len(uniq), np.int64)
    pillar_of_uniq[order] = np.arange(len(uniq))
    pillar = pillar_of_uniq[inverse]  # (K,) pillar number of each kept point
    by_pillar = np.argsort(pillar, kind="stable")
    counts_all = np.bincount(pillar, minlength=len(uniq))
    starts = np.cumsum(counts_all) - counts_all  # first sorted position of each pillar
    rank = np.empty(len(pillar), np.int64)
    rank[by_pillar] = np.arange(len(pillar)) - np.repeat(starts, counts_all)
    sel = (pillar < max_pillars) & (rank < max_points)
    pillar, rank, src = pillar[sel], rank[sel], idx[sel]

    n = min(len(uniq), int(max_pillars))
    features = np.zeros((max_pillars, max_points, NUM_PILLAR_FEATURES), np.float32)
    coords = np.zeros((max_pillars, 2), np.int32)
    num_points = np.zeros(max_pillars, np.int32)
    cells_of_pillar = uniq[order[:n]]
    coords[:n, 0] = cells_of_pillar // grid.width
    coords[:n, 1] = cells_of_pillar % grid.width
    num_points[:n] = np.minimum(counts_all[:n], max_points)
    xyz = p64[src, :3]
    sums = np.zeros((max_pillars, 3))
    np.add.at(sums, pillar, xyz)
    means = sums / np.maximum(num_points, 1)[:, None]
    centre_x = (grid.origin_row - coords[:, 0] - 0.5) * res
    centre_y = (grid.origin_col - coords[:, 1] - 0.5) * res
    features[pillar, rank, PillarFeature.X : PillarFeature.INTENSITY + 1] = pts[src]
    features[pillar, rank, PillarFeature.X_MEAN_OFFSET : PillarFeature.Z_MEAN_OFFSET + 1] = (
        xyz - means[pillar]
    )
    features[pillar, rank, PillarFeature.X_CENTRE_OFFSET] = xyz[:, 0] - centre_x[pillar]
    features[pillar, rank, PillarFeature.Y_CENTRE_OFFSET] = xyz[:, 1] - centre_y[pillar]
    return Pillars(features, coords, num_points, n)


def pillarize_batch(
    points: npt.ArrayLike,
    counts: npt.ArrayLike,
    grid: RasterSpec,
    z_min: float,
    z_max: float,
    max_pillars: int,
    max_points: int,
) -> PillarBatch:
    """:func:`pillarize` of each sweep of ``points`` ``(B, N, 4)`` with valid rows ``counts``
    ``(B,)``; arrays stacked along a leading B axis."""
    pts = np.asarray(points)
    cnt = np.asarray(counts)
    if pts.ndim != 3 or pts.shape[2] != 4:
        raise ValueError(f"pillarize_batch: points must have shape (B, N, 4), got {pts.shape}")
    if cnt.shape != (pts.shape[0],) or not np.issubdtype(cnt.dtype, np.integer):
        raise ValueError(
            f"pillarize_batch: counts must be integers of shape ({pts.shape[0]},), "
            f"got {cnt.dtype} {cnt.shape}"
        )
    b = pts.shape[0]
    features = np.zeros((b, max_pillars, max_points, NUM_PILLAR_FEATURES), np.float32)
    coords = np.zeros((b, max_pillars, 2), np.int32)
    num_points = np.zeros((b, max_pillars), np.int32)
    for i in range(b):
        p = pillarize(pts[i], int(cnt[i]), grid, z_min, z_max, max_pillars, max_points)
        features[i] = p.features
        coords[i] = p.coords
        num_points[i] = p.num_points
    return PillarBatch(features, coords, num_points)
