"""Numba kernels behind :mod:`kaido.scene.raster`: pure array-in/array-out functions.

The pixel convention (ego frame, forward is up, left is left) is documented in
:mod:`kaido.scene.raster`; these kernels work in *continuous pixel coordinates* ``(u, v)`` where
the centre of pixel ``(r, c)`` sits at ``(u, v) = (r, c)``::

    u = ego_row - x / resolution - 0.5        (row axis, grows backwards)
    v = ego_col - y / resolution - 0.5        (column axis, grows to the right)

for an ego-frame point ``(x, y)`` in metres. Axis vocabulary: ``Q`` quads, ``S`` segments,
``K`` culled item ids, ``H`` x ``W`` raster rows x columns, ``G`` grid cells.

Coverage rules (both inclusive, up to ``SPAN_EPS_PX``):

* a quad ``(p0, p1, p2, p3)`` (either winding) is split into two triangles along the diagonal
  ``p0-p2``, unless ``(p0, p1, p2)`` and ``(p0, p2, p3)`` have opposite orientations while
  ``(p1, p2, p3)`` and ``(p1, p3, p0)`` do not, then along ``p1-p3``: for a simple quad, convex
  or not, a diagonal inside it, so it covers exactly its own area; a self-intersecting quad (a
  "bow tie" at a sharp turn) covers ``(p0, p1, p2)`` and ``(p0, p2, p3)``. Degenerate triangles
  (twice the area at most ``DEGENERATE_AREA2_PX2``) cover nothing;
* a segment covers the pixels whose centre lies within ``radius_px`` of it (a capsule).

Both are filled row by row: for each pixel row the covered columns form one interval per convex
piece, computed from the piece's half-planes, so the cost grows with the rows a piece spans, not
with its area.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

SPAN_EPS_PX = 1e-9
"""Tolerance [px] that keeps pixel centres lying exactly on an edge inside the shape."""

DEGENERATE_AREA2_PX2 = 1e-9
"""Triangles with twice their area at most this [px^2] are degenerate and cover nothing."""

_EMPTY_LO = 1e300
_EMPTY_HI = -1e300


@numba.njit(cache=True, inline="always")
def _clip(a: float, b: float, lo: float, hi: float) -> tuple[float, float]:
    """Intersect ``[lo, hi]`` with ``{v : a + b * v >= 0}`` (an empty result has lo > hi)."""
    if b > 0.0:
        lo = max(lo, -a / b)
    elif b < 0.0:
        hi = min(hi, -a / b)
    elif a < 0.0:
        return _EMPTY_LO, _EMPTY_HI
    return lo, hi


@numba.njit(cache=True, inline="always")
def _triangle_span(
    u: float,
    u0: float,
    v0: float,
    u1: float,
    v1: float,
    u2: float,
    v2: float,
) -> tuple[float, float]:
    """Columns ``[lo, hi]`` of row ``u`` inside the counter-clockwise (in ``(u, v)``) triangle."""
    lo = -1e300
    hi = 1e300
    # edge p -> q keeps points with (q - p) x (x - p) >= 0, i.e. du * (v - pv) - dv * (u - pu) >= 0
    du = u1 - u0
    dv = v1 - v0
    lo, hi = _clip(-du * v0 - dv * (u - u0), du, lo, hi)
    du = u2 - u1
    dv = v2 - v1
    lo, hi = _clip(-du * v1 - dv * (u - u1), du, lo, hi)
    du = u0 - u2
    dv = v0 - v2
    lo, hi = _clip(-du * v2 - dv * (u - u2), du, lo, hi)
    return lo, hi


@numba.njit(cache=True, inline="always")
def _area2(
    pu: npt.NDArray[np.float64], pv: npt.NDArray[np.float64], i: int, j: int, k: int
) -> float:
    """Twice the signed area of the triangle of points ``i, j, k`` (positive: counter-clockwise)."""
    return (pu[j] - pu[i]) * (pv[k] - pv[i]) - (pv[j] - pv[i]) * (pu[k] - pu[i])


@numba.njit(cache=True, inline="always")
def _fill_span(out: npt.NDArray[np.uint8], row: int, lo: float, hi: float) -> None:
    """Set the pixels of ``row`` whose centre column lies in ``[lo, hi]`` (clipped to the image)."""
    if lo > hi:
        return
    width = out.shape[1]
    c0 = max(0.0, math.ceil(lo - SPAN_EPS_PX))
    c1 = min(width - 1.0, math.floor(hi + SPAN_EPS_PX))
    for c in range(int(c0), int(c1) + 1):
        out[row, c] = 1


@numba.njit(cache=True, inline="always")
def _cell_index(offset: float, inv_cell: float, n_cells: int) -> int:
    """Grid index of a world offset [m] from the grid origin, clamped to ``[-1, n_cells]``."""
    return math.floor(min(max(offset * inv_cell, -1.0), float(n_cells)))


@numba.njit(cache=True)
def build_grid(
    lo: npt.NDArray[np.float64],
    hi: npt.NDArray[np.float64],
    origin_x: float,
    origin_y: float,
    cell_size: float,
    n_cols: int,
    n_rows: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """CSR uniform grid of items given their world bounding boxes ``lo``/``hi`` ``(N, 2)`` [m].

    Cell ``g = iy * n_cols + ix`` covers world ``[origin + i * cell_size, origin + (i+1) *
    cell_size)`` on each axis. Returns ``(cell_start (G + 1,), cell_items (M,))``: the items of
    cell ``g`` are ``cell_items[cell_start[g]:cell_start[g + 1]]``, in increasing id order. An
    item is listed in every cell its bounding box touches.
    """
    n_cells = n_cols * n_rows
    n = lo.shape[0]
    ix0 = np.empty(n, np.int64)
    ix1 = np.empty(n, np.int64)
    iy0 = np.empty(n, np.int64)
    iy1 = np.empty(n, np.int64)
    inv = 1.0 / cell_size
    counts = np.zeros(n_cells + 1, np.int64)
    for i in range(n):
        ix0[i] = min(max(_cell_index(lo[i, 0] - origin_x, inv, n_cols), 0), n_cols - 1)
        ix1[i] = min(max(_cell_index(hi[i, 0] - origin_x, inv, n_cols), 0), n_cols - 1)
        iy0[i] = min(max(_cell_index(lo[i, 1] - origin_y, inv, n_rows), 0), n_rows - 1)
        iy1[i] = min(max(_cell_index(hi[i, 1] - origin_y, inv, n_rows), 0), n_rows - 1)
        for iy in range(iy0[i], iy1[i] + 1):
            for ix in range(ix0[i], ix1[i] + 1):
                counts[iy * n_cols + ix + 1] += 1
    cell_start = np.cumsum(counts)
    fill = cell_start[:-1].copy()
    cell_items = np.empty(cell_start[-1], np.int64)
    for i in range(n):
        for iy in range(iy0[i], iy1[i] + 1):
            for ix in range(ix0[i], ix1[i] + 1):
                g = iy * n_cols + ix
                cell_items[fill[g]] = i
                fill[g] += 1
    return cell_start, cell_items


@numba.njit(cache=True)
def cull_items(
    cell_start: npt.NDArray[np.int64],
    cell_items: npt.NDArray[np.int64],
    n_items: int,
    origin_x: float,
    origin_y: float,
    cell_size: float,
    n_cols: int,
    n_rows: int,
    corners: npt.NDArray[np.float64],
) -> npt.NDArray[np.int64]:
    """Ids ``(K,)`` of the items in the grid cells that overlap a convex polygon, each once.

    ``corners`` ``(4, 2)`` [m] is the world footprint of the raster (a rectangle, in order
    around it). A cell is visited when its square overlaps the rectangle (separating-axis test
    on the rectangle's two edge directions, after the bounding-box range of cells), so the result
    is a superset of the items whose bounding box meets the footprint, provided the grid covers
    every item's bounding box.
    """
    xmin = min(corners[0, 0], corners[1, 0], corners[2, 0], corners[3, 0])
    xmax = max(corners[0, 0], corners[1, 0], corners[2, 0], corners[3, 0])
    ymin = min(corners[0, 1], corners[1, 1], corners[2, 1], corners[3, 1])
    ymax = max(corners[0, 1], corners[1, 1], corners[2, 1], corners[3, 1])
    inv = 1.0 / cell_size
    ix0 = _cell_index(xmin - origin_x, inv, n_cols)
    ix1 = _cell_index(xmax - origin_x, inv, n_cols)
    iy0 = _cell_index(ymin - origin_y, inv, n_rows)
    iy1 = _cell_index(ymax - origin_y, inv, n_rows)
    if ix1 < 0 or iy1 < 0 or ix0 > n_cols - 1 or iy0 > n_rows - 1:
        return np.empty(0, np.int64)
    ix0 = max(ix0, 0)
    iy0 = max(iy0, 0)
    ix1 = min(ix1, n_cols - 1)
    iy1 = min(iy1, n_rows - 1)
    # the rectangle's edge directions and its extent along each
    ax0 = corners[1, 0] - corners[0, 0]
    ay0 = corners[1, 1] - corners[0, 1]
    ax1 = corners[3, 0] - corners[0, 0]
    ay1 = corners[3, 1] - corners[0, 1]
    seen = np.zeros(n_items, np.bool_)
    ids = np.empty(n_items, np.int64)
    k = 0
    half = 0.5 * cell_size
    for iy in range(iy0, iy1 + 1):
        for ix in range(ix0, ix1 + 1):
            cx = origin_x + (ix + 0.5) * cell_size
            cy = origin_y + (iy + 0.5) * cell_size
            separated = False
            for axis in range(2):
                nx = ax0 if axis == 0 else ax1
                ny = ay0 if axis == 0 else ay1
                # the rectangle projects onto [0, |a|^2] relative to corner 0
                centre = (cx - corners[0, 0]) * nx + (cy - corners[0, 1]) * ny
                radius = half * (abs(nx) + abs(ny))
                if centre + radius < 0.0 or centre - radius > nx * nx + ny * ny:
                    separated = True
                    break
            if separated:
                continue
            g = iy * n_cols + ix
            for j in range(cell_start[g], cell_start[g + 1]):
                item = cell_items[j]
                if not seen[item]:
                    seen[item] = True
                    ids[k] = item
                    k += 1
    return ids[:k]


@numba.njit(cache=True)
def raster_quads(
    quads: npt.NDArray[np.float64],
    ids: npt.NDArray[np.int64],
    pose: npt.NDArray[np.float64],
    height: int,
    width: int,
    resolution: float,
    ego_row: float,
    ego_col: float,
) -> npt.NDArray[np.uint8]:
    """``(H, W)`` 0/1 mask of the pixel centres covered by the quads ``quads[ids]``.

    ``quads`` ``(Q, 4, 2)`` world corners [m]; ``ids`` ``(K,)`` which of them to draw.
    """
    out = np.zeros((height, width), np.uint8)
    c = math.cos(pose[2])
    s = math.sin(pose[2])
    inv = 1.0 / resolution
    pu = np.empty(4)
    pv = np.empty(4)
    for k in range(ids.shape[0]):
        q = ids[k]
        umin = 1e300
        umax = -1e300
        vmin = 1e300
        vmax = -1e300
        for j in range(4):
            dx = quads[q, j, 0] - pose[0]
            dy = quads[q, j, 1] - pose[1]
            pu[j] = ego_row - (c * dx + s * dy) * inv - 0.5
            pv[j] = ego_col - (-s * dx + c * dy) * inv - 0.5
            umin = min(umin, pu[j])
            umax = max(umax, pu[j])
            vmin = min(vmin, pv[j])
            vmax = max(vmax, pv[j])
        r0 = max(0.0, math.ceil(umin - SPAN_EPS_PX))
        r1 = min(height - 1.0, math.floor(umax + SPAN_EPS_PX))
        if r0 > r1 or vmax < -SPAN_EPS_PX or vmin > width - 1.0 + SPAN_EPS_PX:
            continue
        # split along the diagonal inside the quad (0-2 or 1-3); both triangles then share one
        # orientation. A convex quad allows either; a self-intersecting one neither (use 0-2).
        first = 0
        if _area2(pu, pv, 0, 1, 2) * _area2(pu, pv, 0, 2, 3) < 0.0:
            if _area2(pu, pv, 1, 2, 3) * _area2(pu, pv, 1, 3, 0) >= 0.0:
                first = 1
        for tri in range(2):
            a = first
            b = (first + 1 + tri) % 4
            d = (first + 2 + tri) % 4
            area2 = _area2(pu, pv, a, b, d)
            if abs(area2) <= DEGENERATE_AREA2_PX2:
                continue
            if area2 < 0.0:  # make it counter-clockwise in (u, v)
                b, d = d, b
            tu0 = max(r0, math.ceil(min(pu[a], pu[b], pu[d]) - SPAN_EPS_PX))
            tu1 = min(r1, math.floor(max(pu[a], pu[b], pu[d]) + SPAN_EPS_PX))
            for row in range(int(tu0), int(tu1) + 1):
                lo, hi = _triangle_span(row, pu[a], pv[a], pu[b], pv[b], pu[d], pv[d])
                _fill_span(out, row, lo, hi)
    return out


@numba.njit(cache=True)
def raster_segments(
    segments: npt.NDArray[np.float64],
    ids: npt.NDArray[np.int64],
    pose: npt.NDArray[np.float64],
    height: int,
    width: int,
    resolution: float,
    ego_row: float,
    ego_col: float,
    radius_px: float,
) -> npt.NDArray[np.uint8]:
    """``(H, W)`` 0/1 mask of the pixel centres within ``radius_px`` of ``segments[ids]``.

    ``segments`` ``(S, 2, 2)`` world end points [m]; ``ids`` ``(K,)`` which of them to draw.
    """
    out = np.zeros((height, width), np.uint8)
    c = math.cos(pose[2])
    s = math.sin(pose[2])
    inv = 1.0 / resolution
    rad = radius_px
    rad2 = rad * rad
    for k in range(ids.shape[0]):
        q = ids[k]
        dx = segments[q, 0, 0] - pose[0]
        dy = segments[q, 0, 1] - pose[1]
        u0 = ego_row - (c * dx + s * dy) * inv - 0.5
        v0 = ego_col - (-s * dx + c * dy) * inv - 0.5
        dx = segments[q, 1, 0] - pose[0]
        dy = segments[q, 1, 1] - pose[1]
        u1 = ego_row - (c * dx + s * dy) * inv - 0.5
        v1 = ego_col - (-s * dx + c * dy) * inv - 0.5
        r0 = max(0.0, math.ceil(min(u0, u1) - rad - SPAN_EPS_PX))
        r1 = min(height - 1.0, math.floor(max(u0, u1) + rad + SPAN_EPS_PX))
        if r0 > r1:
            continue
        if max(v0, v1) + rad < -SPAN_EPS_PX or min(v0, v1) - rad > width - 1.0 + SPAN_EPS_PX:
            continue
        du = u1 - u0
        dv = v1 - v0
        length = math.sqrt(du * du + dv * dv)
        if length > 0.0:
            tu = du / length
            tv = dv / length
        else:
            tu = 0.0
            tv = 0.0
        for row in range(int(r0), int(r1) + 1):
            lo = _EMPTY_LO
            hi = _EMPTY_HI
            # end discs
            e = row - u0
            if e * e <= rad2:
                h = math.sqrt(rad2 - e * e)
                lo = min(lo, v0 - h)
                hi = max(hi, v0 + h)
            e = row - u1
            if e * e <= rad2:
                h = math.sqrt(rad2 - e * e)
                lo = min(lo, v1 - h)
                hi = max(hi, v1 + h)
            if length > 0.0:
                # body: 0 <= t . (x - p0) <= length and |n . (x - p0)| <= rad, n = (-tv, tu)
                blo = -1e300
                bhi = 1e300
                along = tu * (row - u0) - tv * v0
                blo, bhi = _clip(along, tv, blo, bhi)
                blo, bhi = _clip(length - along, -tv, blo, bhi)
                across = -tv * (row - u0) - tu * v0
                blo, bhi = _clip(rad - across, -tu, blo, bhi)
                blo, bhi = _clip(rad + across, tu, blo, bhi)
                if blo <= bhi:
                    lo = min(lo, blo)
                    hi = max(hi, bhi)
            _fill_span(out, row, lo, hi)
    return out
