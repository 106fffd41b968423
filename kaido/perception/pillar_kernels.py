"""Numba kernel of the pillarization (see :mod:`kaido.perception.pillars` for the contract).

Pure array-in/array-out: the reference :func:`kaido.perception.pillars.pillarize_reference`
computes the same arrays with plain NumPy and a test checks that they agree.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

__all__ = ["NUM_PILLAR_FEATURES", "pillarize_kernel"]

NUM_PILLAR_FEATURES = 9
"""x, y, z, intensity, x - x_mean, y - y_mean, z - z_mean, x - x_centre, y - y_centre."""


@numba.njit(cache=True)
def pillarize_kernel(
    points: npt.NDArray[np.float32],
    count: int,
    height: int,
    width: int,
    resolution: float,
    origin_row: float,
    origin_col: float,
    z_min: float,
    z_max: float,
    max_pillars: int,
    max_points: int,
) -> tuple[
    npt.NDArray[np.float32], npt.NDArray[np.int32], npt.NDArray[np.int32], int
]:  # pragma: no cover - compiled
    """Pillars of ``points[:count]`` ``(N, 4)`` (x, y, z, intensity in the ego frame).

    Returns ``features (P, M, 9)`` float32, ``coords (P, 2)`` int32 (row, col), ``num_points
    (P,)`` int32 and the number of pillars used. Points are taken in row order; a point is
    kept when it is finite, ``z_min <= z < z_max`` and its cell ``(floor(origin_row - x /
    resolution), floor(origin_col - y / resolution))`` lies in the grid. Pillars are numbered by
    their first kept point; points of new cells after ``max_pillars`` pillars exist and points
    beyond ``max_points`` in a pillar are dropped. Unused slots are zeros.
    """
    n_feat = 9
    features = np.zeros((max_pillars, max_points, n_feat), np.float32)
    coords = np.zeros((max_pillars, 2), np.int32)
    num_points = np.zeros(max_pillars, np.int32)
    # per pillar: raw float64 coordinates of its kept points, for the means and offsets
    raw = np.zeros((max_pillars, max_points, 3), np.float64)
    cell_pillar = np.full(height * width, -1, np.int64)
    n_pillars = 0
    for i in range(count):
        x = float(points[i, 0])
        y = float(points[i, 1])
        z = float(points[i, 2])
        inten = float(points[i, 3])
        if not (
            math.isfinite(x) and math.isfinite(y) and math.isfinite(z) and math.isfinite(inten)
        ):
            continue
        if z < z_min or z >= z_max:
            continue
        rf = math.floor(origin_row - x / resolution)
        cf = math.floor(origin_col - y / resolution)
        if rf < 0.0 or rf >= height or cf < 0.0 or cf >= width:
            continue
        r = int(rf)
        c = int(cf)
        cell = r * width + c
        p = cell_pillar[cell]
        if p < 0:
            if n_pillars >= max_pillars:
                continue
            p = n_pillars
            cell_pillar[cell] = p
            coords[p, 0] = r
            coords[p, 1] = c
            n_pillars += 1
        k = num_points[p]
        if k >= max_points:
            continue
        raw[p, k, 0] = x
        raw[p, k, 1] = y
        raw[p, k, 2] = z
        features[p, k, 0] = x
        features[p, k, 1] = y
        features[p, k, 2] = z
        features[p, k, 3] = inten
        num_points[p] = k + 1
    for p in range(n_pillars):
        n = num_points[p]
        sx = 0.0
        sy = 0.0
        sz = 0.0
        for k in range(n):
            sx += raw[p, k, 0]
            sy += raw[p, k, 1]
            sz += raw[p, k, 2]
        mx = sx / n
        my = sy / n
        mz = sz / n
        xc = (origin_row - coords[p, 0] - 0.5) * resolution
        yc = (origin_col - coords[p, 1] - 0.5) * resolution
        for k in range(n):
            features[p, k, 4] = raw[p, k, 0] - mx
            features[p, k, 5] = raw[p, k, 1] - my
            features[p, k, 6] = raw[p, k, 2] - mz
            features[p, k, 7] = raw[p, k, 0] - xc
            features[p, k, 8] = raw[p, k, 1] - yc
    return features, coords, num_points, n_pillars
