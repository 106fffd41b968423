"""Numba kernels behind :mod:`kaido.planning.costs`: pure array-in/array-out functions.

Each kernel has a plain NumPy (or shapely) reference in :mod:`kaido.planning.costs` and a test
that the two agree. Axis vocabulary: ``N`` candidates, ``T`` time points, ``A`` agents, ``K``
modes per agent, ``P`` reference-path points, ``S`` sample points per step, ``G`` grid layers,
``H`` x ``W`` grid rows x columns, ``M`` box pairs.

Inputs are float64 (C order). Boxes move as :class:`BoxState` rows (centre, cos/sin of the
heading, speed): the agents' computed once per scoring call (:func:`mode_box_states_kernel`),
the ego's by :func:`interaction_kernel` for the windows its search visits (or given);
candidates ``(N, T, len(TrajIndex))`` are rear-axle states (see :mod:`kaido.planning.types`).

The per-block functions behind the parallel kernels let the compiler fuse ``a·b + c`` into
one rounding (``fastmath={"contract"}``, nothing else): results match the references to within
rounding, and the same inputs always give the same outputs.

Boxes are closed sets: boxes that touch (within ``eps`` [m] on every separating axis) overlap,
as in :func:`kaido.scene.geometry.box2d_overlap`. Comparisons are written so that NaN never
overlaps anything.

Broad phase of :func:`interaction_kernel` (collisions and time to collision in one pass): time is
cut into windows of :data:`BROAD_PHASE_WINDOW` steps. Every agent mode gets one axis-aligned
bound per window (its boxes over the window, swept ahead by the time-to-collision projection),
binned into a uniform grid of that window (built once per call). Candidates are processed in
blocks of consecutive rows (neighbouring candidates of the planner's lattice run close together);
per window a block looks up the modes whose bound meets the union of its candidates' bounds, and
for each such mode and step a branch-free bounding-circle test (swept over the projection for
time to collision) runs over the block's candidates whose own bound meets the mode's
(vectorised); the separating-axis tests run only for the candidates it passes. A mode whose
outcome is known is not visited again, and a candidate whose measures have reached
``saturation`` is not searched past the window in which they did (its first steps stay exact).
"""

from __future__ import annotations

import math
from enum import IntEnum

import numba
import numpy as np
import numpy.typing as npt

from kaido.planning.candidate_kernels import LANES
from kaido.planning.types import ModeIndex, TrajIndex

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

OVERLAP_EPS = 1e-9
"""[m] boxes apart by at most this along every separating axis overlap (closed boxes)."""

BROAD_PHASE_WINDOW = 4
"""[steps] time window of the interaction broad phase (a speed knob; results do not change)."""

_BLOCK = 16
"""Candidates per block of the interaction broad phase (a speed knob; results do not change)."""

_CIRCLE_SLACK = 1e-6
"""[m] added to bounding-circle radii and bounds so the broad phase never rejects a touching
pair."""

_MAX_CELLS = 4096
"""Most broad-phase grid cells per window (cells grow beyond ``cell_size`` to stay under)."""

_TX = int(TrajIndex.X)
_TY = int(TrajIndex.Y)
_TYAW = int(TrajIndex.YAW)
_TSPEED = int(TrajIndex.SPEED)
_TACCEL = int(TrajIndex.ACCEL)
_TCURV = int(TrajIndex.CURVATURE)
_MX = int(ModeIndex.X)
_MY = int(ModeIndex.Y)
_MYAW = int(ModeIndex.YAW)
_MSPEED = int(ModeIndex.SPEED)


class BoxState(IntEnum):
    """Columns of a box state ``(..., len(BoxState))`` read by the interaction kernels: the box
    centre [m], the heading as its cosine and sine (computed once, vectorised, by the caller),
    and the speed along the heading [m/s]."""

    X = 0
    Y = 1
    COS = 2
    SIN = 3
    SPEED = 4


class CandidateTerm(IntEnum):
    """Columns of :func:`candidate_terms_kernel`'s per-candidate terms ``(N, len(CandidateTerm))``.

    Arc lengths and offsets are the rear axle's (or the front bumper's) projection on the
    reference path (:func:`path_projection_kernel`); averages run over steps ``1..T-1``.
    """

    PROGRESS = 0
    """[m] arc length gained, ``max(0, arc[T-1] - arc[0])``."""
    WRONG_WAY = 1
    """[m] largest distance driven against the path within ``window_steps`` steps."""
    MEAN_OVERSPEED = 2
    """[m/s] mean ``max(0, speed - limit)``, the limit of the path point at or before ``arc``."""
    MEAN_ABS_LATERAL = 3
    """[m] mean |lateral offset|."""
    FRONT_ARC_START = 4
    """[m] the front bumper's arc length at step 0."""
    FRONT_ARC_MAX = 5
    """[m] the front bumper's largest arc length over steps ``1..T-1``."""
    MIN_LON_ACCEL = 6
    """[m/s²] then the extremes of :func:`comfort_kernel`, in its column order."""
    MAX_LON_ACCEL = 7
    """[m/s²]"""
    MAX_ABS_LAT_ACCEL = 8
    """[m/s²]"""
    MAX_ABS_YAW_RATE = 9
    """[rad/s]"""
    MAX_ABS_YAW_ACCEL = 10
    """[rad/s²]"""
    MAX_ABS_LON_JERK = 11
    """[m/s³]"""
    MAX_ABS_JERK = 12
    """[m/s³]"""


_COMFORT_COLUMNS = 7
_TRAJ_COLUMNS = len(TrajIndex)
_TERM_COLUMNS = len(CandidateTerm)
_TERM_COMFORT = int(CandidateTerm.MIN_LON_ACCEL)
_PROGRESS = int(CandidateTerm.PROGRESS)
_WRONG_WAY = int(CandidateTerm.WRONG_WAY)
_MEAN_OVERSPEED = int(CandidateTerm.MEAN_OVERSPEED)
_MEAN_ABS_LATERAL = int(CandidateTerm.MEAN_ABS_LATERAL)
_FRONT_ARC_START = int(CandidateTerm.FRONT_ARC_START)
_FRONT_ARC_MAX = int(CandidateTerm.FRONT_ARC_MAX)

_BX = int(BoxState.X)
_BY = int(BoxState.Y)
_BC = int(BoxState.COS)
_BS = int(BoxState.SIN)
_BV = int(BoxState.SPEED)

_INF = math.inf


# -- narrow phase ----------------------------------------------------------------------------------


@numba.njit(cache=True, inline="always")
def _boxes_overlap(
    ax: float,
    ay: float,
    ac: float,
    as_: float,
    ahl: float,
    ahw: float,
    bx: float,
    by: float,
    bc: float,
    bs: float,
    bhl: float,
    bhw: float,
    eps: float,
) -> bool:
    """SAT for two oriented boxes given by centre, (cos, sin) of the heading and half sizes."""
    dx = bx - ax
    dy = by - ay
    uu = abs(ac * bc + as_ * bs)
    uv = abs(as_ * bc - ac * bs)
    if not abs(ac * dx + as_ * dy) <= ahl + bhl * uu + bhw * uv + eps:
        return False
    if not abs(ac * dy - as_ * dx) <= ahw + bhl * uv + bhw * uu + eps:
        return False
    if not abs(bc * dx + bs * dy) <= ahl * uu + ahw * uv + bhl + eps:
        return False
    return abs(bc * dy - bs * dx) <= ahl * uv + ahw * uu + bhw + eps


@numba.njit(cache=True, inline="always")
def _segment_hits_box(
    p0x: float,
    p0y: float,
    p1x: float,
    p1y: float,
    bx: float,
    by: float,
    bc: float,
    bs: float,
    bhl: float,
    bhw: float,
    eps: float,
) -> bool:
    """SAT for the segment ``p0-p1`` against an oriented box (axes: the box's two, the normal)."""
    # endpoints in the box frame
    ux0 = bc * (p0x - bx) + bs * (p0y - by)
    uy0 = bc * (p0y - by) - bs * (p0x - bx)
    ux1 = bc * (p1x - bx) + bs * (p1y - by)
    uy1 = bc * (p1y - by) - bs * (p1x - bx)
    if not (min(ux0, ux1) <= bhl + eps and max(ux0, ux1) >= -bhl - eps):
        return False
    if not (min(uy0, uy1) <= bhw + eps and max(uy0, uy1) >= -bhw - eps):
        return False
    nx = uy0 - uy1
    ny = ux1 - ux0
    norm = math.sqrt(nx * nx + ny * ny)
    return abs(nx * ux0 + ny * uy0) <= bhl * abs(nx) + bhw * abs(ny) + eps * norm


@numba.njit(cache=True, inline="always")
def _is_behind(
    ex: float, ey: float, ec: float, es: float, x: float, y: float, cos_b: float
) -> bool:
    """Whether point ``(x, y)`` lies behind the pose ``(ex, ey, heading)``: the angle between the
    heading and the direction to the point exceeds the angle whose cosine is ``cos_b`` (< 0)."""
    dx = x - ex
    dy = y - ey
    return ec * dx + es * dy < cos_b * math.sqrt(dx * dx + dy * dy)


@numba.njit(cache=True)
def box_pair_kernel(a: FloatArray, b: FloatArray, eps: float) -> tuple[BoolArray, BoolArray]:
    """Pairwise tests of boxes ``a`` ``(M, 5)`` and ``b`` ``(M, 5)`` (x, y, yaw, length, width).

    Returns ``overlap`` ``(M,)``: the boxes intersect (SAT, closed within ``eps`` [m]); and
    ``front_hits`` ``(M,)``: the front edge of ``a`` (its segment between the front-left and
    front-right corners) intersects box ``b``.
    """
    m = a.shape[0]
    overlap = np.zeros(m, np.bool_)
    front = np.zeros(m, np.bool_)
    for i in range(m):
        ac = math.cos(a[i, 2])
        as_ = math.sin(a[i, 2])
        bc = math.cos(b[i, 2])
        bs = math.sin(b[i, 2])
        ahl = 0.5 * a[i, 3]
        ahw = 0.5 * a[i, 4]
        bhl = 0.5 * b[i, 3]
        bhw = 0.5 * b[i, 4]
        overlap[i] = _boxes_overlap(
            a[i, 0], a[i, 1], ac, as_, ahl, ahw, b[i, 0], b[i, 1], bc, bs, bhl, bhw, eps
        )
        fx = a[i, 0] + ahl * ac
        fy = a[i, 1] + ahl * as_
        front[i] = _segment_hits_box(
            fx - ahw * as_,
            fy + ahw * ac,
            fx + ahw * as_,
            fy - ahw * ac,
            b[i, 0],
            b[i, 1],
            bc,
            bs,
            bhl,
            bhw,
            eps,
        )
    return overlap, front


@numba.njit(cache=True, inline="always")
def _clip_interval(p: float, q: float, r: float, lo: float, hi: float) -> tuple[float, float]:
    """Intersect ``[lo, hi]`` with ``{tau : |p + q·tau| <= r}`` (empty: lo > hi)."""
    if q == 0.0:
        if abs(p) <= r:
            return lo, hi
        return 1.0, 0.0
    a = (-r - p) / q
    b = (r - p) / q
    if a > b:
        a, b = b, a
    return max(lo, a), min(hi, b)


@numba.njit(cache=True, inline="always")
def _overlap_interval(
    dx: float,
    dy: float,
    wx: float,
    wy: float,
    ac: float,
    as_: float,
    ahl: float,
    ahw: float,
    bc: float,
    bs: float,
    bhl: float,
    bhw: float,
    hi: float,
    eps: float,
) -> tuple[float, float]:
    """Times ``tau`` in ``[0, hi]`` at which two boxes of fixed headings overlap, the second's
    centre being at ``(dx, dy) + tau·(wx, wy)`` from the first's (SAT on each axis: an
    interval)."""
    uu = abs(ac * bc + as_ * bs)
    uv = abs(as_ * bc - ac * bs)
    lo, hi = _clip_interval(
        ac * dx + as_ * dy, ac * wx + as_ * wy, ahl + bhl * uu + bhw * uv + eps, 0.0, hi
    )
    if lo > hi:
        return lo, hi
    lo, hi = _clip_interval(
        ac * dy - as_ * dx, ac * wy - as_ * wx, ahw + bhl * uv + bhw * uu + eps, lo, hi
    )
    if lo > hi:
        return lo, hi
    lo, hi = _clip_interval(
        bc * dx + bs * dy, bc * wx + bs * wy, ahl * uu + ahw * uv + bhl + eps, lo, hi
    )
    if lo > hi:
        return lo, hi
    return _clip_interval(
        bc * dy - bs * dx, bc * wy - bs * wx, ahl * uv + ahw * uu + bhw + eps, lo, hi
    )


@numba.njit(cache=True, inline="always")
def _swept_close(dx: float, dy: float, wx: float, wy: float, sweep: float, reach2: float) -> bool:
    """Whether the point ``(dx, dy) + tau·(wx, wy)`` comes within ``sqrt(reach2)`` of the origin
    for some ``tau`` in ``[0, sweep]`` (closest approach of two moving bounding circles)."""
    dd = dx * dx + dy * dy
    dw = dx * wx + dy * wy
    if dw >= 0.0:
        return dd <= reach2
    ww = wx * wx + wy * wy
    if -dw >= sweep * ww:
        ex = dx + sweep * wx
        ey = dy + sweep * wy
        return ex * ex + ey * ey <= reach2
    return dd * ww - dw * dw <= reach2 * ww


@numba.njit(cache=True, inline="always")
def _projection_hit(projection_times: FloatArray, lo: float, hi: float) -> bool:
    """Whether one of the increasing ``projection_times`` lies in ``[lo, hi]``."""
    for j in range(projection_times.shape[0]):
        tau = projection_times[j]
        if tau > hi:
            return False
        if tau >= lo:
            return True
    return False


@numba.njit(cache=True, inline="always")
def _at_fault(
    ex: float,
    ey: float,
    ec: float,
    es: float,
    ev: float,
    hl: float,
    hw: float,
    rear_to_center: float,
    mx: float,
    my: float,
    mc: float,
    ms: float,
    mv: float,
    ahl: float,
    ahw: float,
    stopped_speed: float,
    cos_behind: float,
    lateral_at_fault: bool,
) -> bool:
    """The at-fault rules of :func:`interaction_kernel` for a collision that starts now."""
    if abs(ev) <= stopped_speed:
        return False
    if abs(mv) <= stopped_speed:
        return True
    if _is_behind(ex - rear_to_center * ec, ey - rear_to_center * es, ec, es, mx, my, cos_behind):
        return False
    if lateral_at_fault:
        return True
    fx = ex + hl * ec
    fy = ey + hl * es
    return _segment_hits_box(
        fx - hw * es, fy + hw * ec, fx + hw * es, fy - hw * ec, mx, my, mc, ms, ahl, ahw,
        OVERLAP_EPS,
    )  # fmt: skip


@numba.njit(cache=True, parallel=True)
def mode_box_states_kernel(modes: FloatArray) -> FloatArray:
    """Box states ``(A, K, T, len(BoxState))`` of agent modes ``(A, K, T, len(ModeIndex))``
    (box-centre states: the heading becomes its cosine and sine)."""
    a_count, k_count, t_count = modes.shape[0], modes.shape[1], modes.shape[2]
    out = np.empty((a_count, k_count, t_count, 5))
    for a in numba.prange(a_count):
        for k in range(k_count):
            for t in range(t_count):
                yaw = modes[a, k, t, _MYAW]
                out[a, k, t, _BX] = modes[a, k, t, _MX]
                out[a, k, t, _BY] = modes[a, k, t, _MY]
                out[a, k, t, _BC] = math.cos(yaw)
                out[a, k, t, _BS] = math.sin(yaw)
                out[a, k, t, _BV] = modes[a, k, t, _MSPEED]
    return out


# -- broad phase: per-window bounds, a uniform grid per window -----------------------------------


@numba.njit(cache=True, inline="always")
def _box_bound(
    x: float, y: float, c: float, s: float, hl: float, hw: float, travel: float
) -> tuple[float, float, float, float]:
    """``(xmin, ymin, xmax, ymax)`` of a box and its copy moved ``travel`` [m] along its heading."""
    ex = hl * abs(c) + hw * abs(s)
    ey = hl * abs(s) + hw * abs(c)
    tx = travel * c
    ty = travel * s
    return (
        x - ex + min(tx, 0.0),
        y - ey + min(ty, 0.0),
        x + ex + max(tx, 0.0),
        y + ey + max(ty, 0.0),
    )


@numba.njit(cache=True, parallel=True)
def _mode_window_bounds(
    agents: FloatArray,
    half_sizes: FloatArray,
    collision_weights: FloatArray,
    ttc_weights: FloatArray,
    num_steps: int,
    window: int,
    sweep: float,
) -> FloatArray:
    """``(windows, A·K, 4)`` axis-aligned bound ``[xmin, ymin, xmax, ymax]`` of every agent mode
    ``a·K + k`` over each window's steps: its boxes, each also moved ahead by ``speed · sweep``
    when the mode takes part in the time to collision. Empty (``xmin > xmax``) for modes of no
    weight and windows without a finite state; steps with a non-finite state are left out."""
    a_count, k_count = agents.shape[0], agents.shape[1]
    windows = (num_steps + window - 1) // window
    bounds = np.empty((windows, a_count * k_count, 4))
    for a in numba.prange(a_count):
        hl = half_sizes[a, 0]
        hw = half_sizes[a, 1]
        for k in range(k_count):
            item = a * k_count + k
            active = collision_weights[a, k] > 0.0 or ttc_weights[a, k] > 0.0
            mode_sweep = sweep if ttc_weights[a, k] > 0.0 else 0.0
            for w in range(windows):
                x0 = _INF
                y0 = _INF
                x1 = -_INF
                y1 = -_INF
                if active:
                    for t in range(w * window, min((w + 1) * window, num_steps)):
                        lo_x, lo_y, hi_x, hi_y = _box_bound(
                            agents[a, k, t, _BX], agents[a, k, t, _BY], agents[a, k, t, _BC],
                            agents[a, k, t, _BS], hl, hw, agents[a, k, t, _BV] * mode_sweep,
                        )  # fmt: skip
                        if not (
                            math.isfinite(lo_x)
                            and math.isfinite(lo_y)
                            and math.isfinite(hi_x)
                            and math.isfinite(hi_y)
                        ):
                            continue
                        x0 = min(x0, lo_x)
                        y0 = min(y0, lo_y)
                        x1 = max(x1, hi_x)
                        y1 = max(y1, hi_y)
                bounds[w, item, 0] = x0 - _CIRCLE_SLACK
                bounds[w, item, 1] = y0 - _CIRCLE_SLACK
                bounds[w, item, 2] = x1 + _CIRCLE_SLACK
                bounds[w, item, 3] = y1 + _CIRCLE_SLACK
    return bounds


@numba.njit(cache=True)
def _bin_window(
    bounds: FloatArray,
    w: int,
    geometry: FloatArray,
    shape: IntArray,
    base: IntArray,
    slots: IntArray,
    items: IntArray,
    counting: bool,
) -> None:
    """Bin window ``w``'s modes: counting them into ``slots[cell + 1]``, or (not ``counting``)
    writing each to ``items[slots[cell]]`` and advancing ``slots[cell]``."""
    nx = shape[w, 0]
    if nx == 0:
        return
    ny = shape[w, 1]
    x0 = geometry[w, 0]
    y0 = geometry[w, 1]
    cell = geometry[w, 2]
    for item in range(bounds.shape[1]):
        if not bounds[w, item, 0] <= bounds[w, item, 2]:
            continue
        i0 = min(int((bounds[w, item, 0] - x0) / cell), nx - 1)
        i1 = min(int((bounds[w, item, 2] - x0) / cell), nx - 1)
        j0 = min(int((bounds[w, item, 1] - y0) / cell), ny - 1)
        j1 = min(int((bounds[w, item, 3] - y0) / cell), ny - 1)
        for i in range(i0, i1 + 1):
            for j in range(j0, j1 + 1):
                slot = base[w] + i * ny + j
                if counting:
                    slots[slot + 1] += 1
                else:
                    items[slots[slot]] = item
                    slots[slot] += 1


@numba.njit(cache=True, parallel=True)
def _window_grids(
    bounds: FloatArray, cell_size: float, max_cells: int
) -> tuple[FloatArray, IntArray, IntArray, IntArray, IntArray]:
    """Bin the mode bounds ``(windows, I, 4)`` into a uniform grid per window.

    Each window's grid spans its non-empty bounds with square cells of ``cell_size`` [m],
    doubled until it has at most ``max_cells`` cells; a mode lands in every cell its bound
    touches. Returns ``geometry`` ``(windows, 3)`` [x0, y0, cell], ``shape`` ``(windows, 2)``
    [nx, ny] (0 when the window has no mode), ``base`` ``(windows + 1,)`` the first cell of each
    window, ``start`` ``(cells + 1,)`` CSR offsets and ``items`` ``(E,)`` the mode of each entry.
    """
    windows, i_count = bounds.shape[0], bounds.shape[1]
    geometry = np.zeros((windows, 3))
    shape = np.zeros((windows, 2), np.int64)
    base = np.zeros(windows + 1, np.int64)
    for w in range(windows):
        xmin = _INF
        ymin = _INF
        xmax = -_INF
        ymax = -_INF
        for item in range(i_count):
            if bounds[w, item, 0] <= bounds[w, item, 2]:
                xmin = min(xmin, bounds[w, item, 0])
                ymin = min(ymin, bounds[w, item, 1])
                xmax = max(xmax, bounds[w, item, 2])
                ymax = max(ymax, bounds[w, item, 3])
        cells = 0
        if xmin <= xmax:
            cell = cell_size
            nx = int((xmax - xmin) / cell) + 1
            ny = int((ymax - ymin) / cell) + 1
            while nx * ny > max_cells:
                cell *= 2.0
                nx = int((xmax - xmin) / cell) + 1
                ny = int((ymax - ymin) / cell) + 1
            geometry[w, 0] = xmin
            geometry[w, 1] = ymin
            geometry[w, 2] = cell
            shape[w, 0] = nx
            shape[w, 1] = ny
            cells = nx * ny
        base[w + 1] = base[w] + cells
    start = np.zeros(base[windows] + 1, np.int64)
    for w in numba.prange(windows):
        _bin_window(bounds, w, geometry, shape, base, start, start, True)
    for i in range(1, start.shape[0]):
        start[i] += start[i - 1]
    items = np.empty(start[start.shape[0] - 1], np.int64)
    fill = start.copy()
    for w in numba.prange(windows):
        _bin_window(bounds, w, geometry, shape, base, fill, items, False)
    return geometry, shape, base, start, items


@numba.njit(cache=True, inline="always")
def _cell_range(lo: float, hi: float, origin: float, cell: float, count: int) -> tuple[int, int]:
    """Cells ``[first, last]`` of a grid axis that ``[lo, hi]`` touches (first > last: none)."""
    if not (hi >= origin - _CIRCLE_SLACK and lo <= origin + count * cell + _CIRCLE_SLACK):
        return 1, 0
    first = max(0, int(math.floor((lo - origin - _CIRCLE_SLACK) / cell)))
    last = min(count - 1, int(math.floor((hi - origin + _CIRCLE_SLACK) / cell)))
    return first, last


@numba.njit(cache=True)
def _squared_reach(half_sizes: FloatArray, ego_length: float, ego_width: float) -> FloatArray:
    """``(A,)`` squared sum of the ego's and each agent's bounding-circle radii [m²]."""
    ego_radius = 0.5 * math.sqrt(ego_length**2 + ego_width**2)
    out = np.empty(half_sizes.shape[0])
    for a in range(half_sizes.shape[0]):
        r = ego_radius + math.sqrt(half_sizes[a, 0] ** 2 + half_sizes[a, 1] ** 2) + _CIRCLE_SLACK
        out[a] = r * r
    return out


@numba.njit(cache=True)
def _interleaved(count: int, groups: int) -> IntArray:
    """``0, g, 2g, ..., 1, 1 + g, ...``: an order of ``count`` blocks that spreads neighbouring
    blocks over the threads' equal shares of a parallel loop (load balance)."""
    out = np.empty(count, np.int64)
    i = 0
    for r in range(groups):
        for b in range(r, count, groups):
            out[i] = b
            i += 1
    return out


# -- collisions and time to collision --------------------------------------------------------------


@numba.njit(cache=True, fastmath={"contract"})
def _interaction_block(
    n0: int,
    lanes: int,
    ego: FloatArray,
    lateral_at_fault: BoolArray,
    modes: FloatArray,
    owner: IntArray,
    half_sizes: FloatArray,
    c_weight: FloatArray,
    t_weight: FloatArray,
    reach: FloatArray,
    hl: float,
    hw: float,
    rear_to_center: float,
    stopped_speed: float,
    cos_behind: float,
    num_steps: int,
    projection_times: FloatArray,
    sweep: float,
    saturation: float,
    bounds: FloatArray,
    geometry: FloatArray,
    shape: IntArray,
    base: IntArray,
    start: IntArray,
    items: IntArray,
    collision_measure: FloatArray,
    collision_first: IntArray,
    ttc_measure: FloatArray,
    ttc_first: IntArray,
) -> None:
    """:func:`interaction_kernel` for candidates ``n0 .. n0 + lanes - 1`` (one block; the
    broad-phase tables come from the kernel), writing their rows of the four outputs. The box
    states of the live candidates are gathered per window into ``egw`` (lanes contiguous): read
    from ``ego`` or, with ``rear_axle``, computed from its rear-axle poses."""
    window = BROAD_PHASE_WINDOW
    rear_axle = ego.shape[2] == _TRAJ_COLUMNS
    windows = bounds.shape[0]
    i_count = modes.shape[0]
    j_count = projection_times.shape[0]
    last = np.full((i_count, _BLOCK), -2, np.int32)  # last step each pair overlapped
    c_done = np.zeros((i_count, _BLOCK), np.bool_)
    t_done = np.zeros((i_count, _BLOCK), np.bool_)
    c_live = np.zeros(_BLOCK, np.bool_)
    t_live = np.zeros(_BLOCK, np.bool_)
    for i in range(lanes):
        c_live[i] = True
        t_live[i] = j_count > 0
    c_total = np.zeros(_BLOCK)
    t_total = np.zeros(_BLOCK)
    c_first = np.full(_BLOCK, num_steps, np.int64)
    t_first = np.full(_BLOCK, num_steps, np.int64)
    lane_bound = np.empty((_BLOCK, 4))
    egw = np.zeros((5, window, _BLOCK))
    c_on = np.zeros(_BLOCK, np.bool_)
    t_on = np.zeros(_BLOCK, np.bool_)
    near = np.zeros(_BLOCK, np.bool_)
    stamp = np.full(i_count, -1, np.int64)
    listed = np.empty(i_count, np.int64)
    for w in range(windows):
        t0 = w * window
        t1 = min(t0 + window, num_steps)
        # bounds of the live candidates over the window, and of the block
        bx0 = _INF
        by0 = _INF
        bx1 = -_INF
        by1 = -_INF
        for i in range(lanes, _BLOCK):
            lane_bound[i, 0] = _INF
            lane_bound[i, 1] = _INF
            lane_bound[i, 2] = -_INF
            lane_bound[i, 3] = -_INF
        for i in range(lanes):
            c_live[i] = c_live[i] and c_total[i] < saturation
            t_live[i] = t_live[i] and t_total[i] < saturation
            x0 = _INF
            y0 = _INF
            x1 = -_INF
            y1 = -_INF
            if c_live[i] or t_live[i]:
                lane_sweep = sweep if t_live[i] else 0.0
                n = n0 + i
                for t in range(t0, t1):
                    tt = t - t0
                    if rear_axle:
                        yaw = ego[n, t, _TYAW]
                        c = math.cos(yaw)
                        s = math.sin(yaw)
                        egw[_BX, tt, i] = ego[n, t, _TX] + rear_to_center * c
                        egw[_BY, tt, i] = ego[n, t, _TY] + rear_to_center * s
                        egw[_BC, tt, i] = c
                        egw[_BS, tt, i] = s
                        egw[_BV, tt, i] = ego[n, t, _TSPEED]
                    else:
                        for f in range(5):
                            egw[f, tt, i] = ego[n, t, f]
                    lo_x, lo_y, hi_x, hi_y = _box_bound(
                        egw[_BX, tt, i], egw[_BY, tt, i], egw[_BC, tt, i], egw[_BS, tt, i],
                        hl, hw, egw[_BV, tt, i] * lane_sweep,
                    )  # fmt: skip
                    x0 = min(x0, lo_x)
                    y0 = min(y0, lo_y)
                    x1 = max(x1, hi_x)
                    y1 = max(y1, hi_y)
            lane_bound[i, 0] = x0
            lane_bound[i, 1] = y0
            lane_bound[i, 2] = x1
            lane_bound[i, 3] = y1
            bx0 = min(bx0, x0)
            by0 = min(by0, y0)
            bx1 = max(bx1, x1)
            by1 = max(by1, y1)
        nx = shape[w, 0]
        if not bx0 <= bx1 or nx == 0:
            continue
        # the modes whose window bound meets the block's
        ny = shape[w, 1]
        cell = geometry[w, 2]
        i0, i1 = _cell_range(bx0, bx1, geometry[w, 0], cell, nx)
        j0, j1 = _cell_range(by0, by1, geometry[w, 1], cell, ny)
        count = 0
        for ci in range(i0, i1 + 1):
            row = base[w] + ci * ny
            for e in range(start[row + j0], start[row + j1 + 1]):
                item = items[e]
                if stamp[item] == w:
                    continue
                stamp[item] = w
                if (
                    bounds[w, item, 0] <= bx1
                    and bounds[w, item, 2] >= bx0
                    and bounds[w, item, 1] <= by1
                    and bounds[w, item, 3] >= by0
                ):
                    listed[count] = item
                    count += 1
        for q in range(count):
            item = listed[q]
            a = owner[item]
            ahl = half_sizes[a, 0]
            ahw = half_sizes[a, 1]
            reach2 = reach[a]
            c_weighted = c_weight[item] > 0.0
            t_weighted = t_weight[item] > 0.0
            active = False
            for i in range(_BLOCK):
                inside = (
                    (bounds[w, item, 0] <= lane_bound[i, 2])
                    & (bounds[w, item, 2] >= lane_bound[i, 0])
                    & (bounds[w, item, 1] <= lane_bound[i, 3])
                    & (bounds[w, item, 3] >= lane_bound[i, 1])
                )
                c_on[i] = inside & c_live[i] & (not c_done[item, i]) & c_weighted
                t_on[i] = inside & t_live[i] & (not t_done[item, i]) & t_weighted
                active |= c_on[i] | t_on[i]
            if not active:
                continue
            for t in range(t0, t1):
                tt = t - t0
                mx = modes[item, t, _BX]
                my = modes[item, t, _BY]
                mc = modes[item, t, _BC]
                ms = modes[item, t, _BS]
                mv = modes[item, t, _BV]
                mvx = mv * mc
                mvy = mv * ms
                any_near = False
                for i in range(_BLOCK):
                    dx = mx - egw[0, tt, i]
                    dy = my - egw[1, tt, i]
                    ev = egw[4, tt, i]
                    wx = mvx - ev * egw[2, tt, i]
                    wy = mvy - ev * egw[3, tt, i]
                    dd = dx * dx + dy * dy
                    dw = dx * wx + dy * wy
                    ww = wx * wx + wy * wy
                    fx = dx + sweep * wx
                    fy = dy + sweep * wy
                    now = dd <= reach2
                    swept = (
                        now
                        | (fx * fx + fy * fy <= reach2)
                        | ((dw < 0.0) & (-dw < sweep * ww) & (dd * ww - dw * dw <= reach2 * ww))
                    )
                    flag = (c_on[i] & now) | (t_on[i] & (abs(ev) > stopped_speed) & swept)
                    near[i] = flag
                    any_near |= flag
                if not any_near:
                    continue
                for i in range(lanes):
                    if not near[i]:
                        continue
                    n = n0 + i
                    ex = egw[0, tt, i]
                    ey = egw[1, tt, i]
                    ec = egw[2, tt, i]
                    es = egw[3, tt, i]
                    ev = egw[4, tt, i]
                    dx = mx - ex
                    dy = my - ey
                    overlapping = False
                    if (
                        c_on[i]
                        and dx * dx + dy * dy <= reach2
                        and _boxes_overlap(
                            ex, ey, ec, es, hl, hw, mx, my, mc, ms, ahl, ahw, OVERLAP_EPS
                        )
                    ):
                        overlapping = True
                        new = last[item, i] != t - 1
                        last[item, i] = t
                        if new and _at_fault(
                            ex, ey, ec, es, ev, hl, hw, rear_to_center, mx, my, mc, ms, mv,
                            ahl, ahw, stopped_speed, cos_behind, lateral_at_fault[n, t],
                        ):  # fmt: skip
                            c_done[item, i] = True
                            c_on[i] = False
                            c_total[i] += c_weight[item]
                            c_first[i] = min(c_first[i], t)
                    if t_on[i] and not overlapping and abs(ev) > stopped_speed:
                        wx = mv * mc - ev * ec
                        wy = mv * ms - ev * es
                        if _swept_close(dx, dy, wx, wy, sweep, reach2) and not _is_behind(
                            ex - rear_to_center * ec, ey - rear_to_center * es, ec, es,
                            mx, my, cos_behind,
                        ):  # fmt: skip
                            lo, hi = _overlap_interval(
                                dx, dy, wx, wy,
                                ec, es, hl, hw, mc, ms, ahl, ahw, sweep, OVERLAP_EPS,
                            )  # fmt: skip
                            if lo <= hi and lo > 0.0 and _projection_hit(projection_times, lo, hi):
                                t_done[item, i] = True
                                t_on[i] = False
                                t_total[i] += t_weight[item]
                                t_first[i] = min(t_first[i], t)
    for i in range(lanes):
        n = n0 + i
        collision_measure[n] = min(c_total[i], saturation)
        ttc_measure[n] = min(t_total[i], saturation)
        collision_first[n] = c_first[i] if c_first[i] < num_steps else -1
        ttc_first[n] = t_first[i] if t_first[i] < num_steps else -1


@numba.njit(cache=True, parallel=True)
def interaction_kernel(
    ego: FloatArray,
    lateral_at_fault: BoolArray,
    agents: FloatArray,
    half_sizes: FloatArray,
    collision_weights: FloatArray,
    ttc_weights: FloatArray,
    ego_length: float,
    ego_width: float,
    rear_to_center: float,
    stopped_speed: float,
    cos_behind: float,
    num_steps: int,
    projection_times: FloatArray,
    cell_size: float,
    saturation: float,
) -> tuple[FloatArray, IntArray, FloatArray, IntArray]:
    """At-fault collisions and time to collision of each candidate with every agent mode.

    ``ego`` ``(N, T, len(BoxState))`` the ego box's states along each candidate, or the
    candidates themselves ``(N, T, len(TrajIndex))`` (rear-axle states: the box states are then
    computed where the search needs them), ``ego_length`` x ``ego_width`` [m], its rear axle
    ``rear_to_center`` [m] behind the centre;
    ``agents`` ``(A, K, T, len(BoxState))`` every agent mode's box states, ``half_sizes``
    ``(A, 2)`` half length/width [m]; ``collision_weights`` and ``ttc_weights`` ``(A, K)`` (e.g.
    mode probability × class weight, and the probability; a mode of weight <= 0 takes no part in
    that measure). ``lateral_at_fault`` ``(N, T)``: whether a lateral collision at that step is
    the ego's fault. Only steps ``t < num_steps`` are checked. ``cell_size`` [m]: broad-phase
    grid cell (a speed knob; results do not depend on it).

    Collisions (nuPlan's at-fault rules): a collision with a mode starts at a step where the
    boxes overlap and did not at the step before (or at step 0). It is the ego's fault unless,
    at that step, the ego is stopped (``|speed| <= stopped_speed`` [m/s]); otherwise it is at
    fault when the agent is stopped (``|speed| <= stopped_speed``); otherwise not when the
    agent's centre is behind the ego's rear axle (the angle from the ego's heading exceeds
    ``acos(cos_behind)``: it hit the ego from behind); otherwise at fault when the ego's front
    edge touches the agent's box; otherwise (a lateral collision) as ``lateral_at_fault`` says.
    Once a collision with a mode was at fault, that mode is not looked at again.

    Time to collision (``projection_times`` ``(J,)`` [s] > 0, increasing): at each step where the
    ego moves (``|speed| > stopped_speed``), the ego box and each agent mode's box are projected
    ahead with constant velocity (each along its own heading at its own speed) by every ``tau``
    in ``projection_times``; a mode is flagged when a projected pair overlaps, unless the boxes
    already overlap at ``tau = 0`` (a collision) or the agent's centre is behind the ego's rear
    axle at that step. Headings stay fixed, so on each separating axis the overlap is an
    interval of ``tau``; a mode is flagged when a projection time falls in the intersection of
    the four. A flagged mode is not looked at again.

    Returns ``collision_measure`` ``(N,)``: the sum of the collision weights of the modes hit at
    fault; ``collision_first`` ``(N,)``: the first step of an at-fault collision, -1 if none;
    ``ttc_measure`` ``(N,)``: the sum of the TTC weights of the flagged modes; ``ttc_first``
    ``(N,)``: the first step at which a mode was flagged, -1 if none. A measure that reaches
    ``saturation`` reads ``saturation`` (``inf``: never): the search for it stops after the
    :data:`BROAD_PHASE_WINDOW`-step window in which it got there, so its first step is exact.
    """
    if ego.shape[2] != 5 and ego.shape[2] != _TRAJ_COLUMNS:
        raise ValueError("interaction_kernel: ego must be (N, T, 5) box states or (N, T, 6) poses")
    n_count = ego.shape[0]
    a_count, k_count = agents.shape[0], agents.shape[1]
    num_steps = min(num_steps, ego.shape[1], agents.shape[2])
    collision_measure = np.zeros(n_count)
    collision_first = np.full(n_count, -1, np.int64)
    ttc_measure = np.zeros(n_count)
    ttc_first = np.full(n_count, -1, np.int64)
    if a_count == 0 or k_count == 0 or num_steps <= 0:
        return collision_measure, collision_first, ttc_measure, ttc_first
    j_count = projection_times.shape[0]
    sweep = projection_times[j_count - 1] if j_count > 0 else 0.0
    window = BROAD_PHASE_WINDOW
    bounds = _mode_window_bounds(
        agents, half_sizes, collision_weights, ttc_weights, num_steps, window, sweep
    )
    geometry, shape, base, start, items = _window_grids(bounds, cell_size, _MAX_CELLS)
    i_count = a_count * k_count
    reach = _squared_reach(half_sizes, ego_length, ego_width)
    hl = 0.5 * ego_length
    hw = 0.5 * ego_width
    # per mode a·K + k: its states, owner and weights without index arithmetic in the loops
    modes = agents.reshape((i_count, agents.shape[2], agents.shape[3]))
    owner = np.empty(i_count, np.int64)
    for item in range(i_count):
        owner[item] = item // k_count
    c_weight = collision_weights.reshape(i_count)
    t_weight = ttc_weights.reshape(i_count)
    n_blocks = (n_count + _BLOCK - 1) // _BLOCK
    order = _interleaved(n_blocks, 8)
    for ordinal in numba.prange(n_blocks):
        n0 = order[ordinal] * _BLOCK
        _interaction_block(
            n0, min(_BLOCK, n_count - n0), ego, lateral_at_fault, modes, owner, half_sizes,
            c_weight, t_weight, reach, hl, hw, rear_to_center, stopped_speed, cos_behind,
            num_steps, projection_times, sweep, saturation, bounds, geometry, shape, base, start,
            items, collision_measure, collision_first, ttc_measure, ttc_first,
        )  # fmt: skip
    return collision_measure, collision_first, ttc_measure, ttc_first


_NO_TIMES = np.zeros(0)


def collision_kernel(
    ego: FloatArray,
    lateral_at_fault: BoolArray,
    agents: FloatArray,
    half_sizes: FloatArray,
    weights: FloatArray,
    ego_length: float,
    ego_width: float,
    rear_to_center: float,
    stopped_speed: float,
    cos_behind: float,
    num_steps: int,
    cell_size: float,
) -> tuple[FloatArray, IntArray]:
    """The collision half of :func:`interaction_kernel` (same arguments; ``weights`` are the
    collision weights): ``(measure (N,), first step (N,))``, never saturated."""
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    measure, first, _, _ = interaction_kernel(
        np.ascontiguousarray(ego, dtype=np.float64),
        np.ascontiguousarray(lateral_at_fault, dtype=np.bool_),
        np.ascontiguousarray(agents, dtype=np.float64),
        np.ascontiguousarray(half_sizes, dtype=np.float64),
        weights, np.zeros_like(weights), float(ego_length), float(ego_width),
        float(rear_to_center), float(stopped_speed), float(cos_behind), int(num_steps),
        _NO_TIMES, float(cell_size), _INF,
    )  # fmt: skip
    return measure, first


def ttc_kernel(
    ego: FloatArray,
    agents: FloatArray,
    half_sizes: FloatArray,
    weights: FloatArray,
    ego_length: float,
    ego_width: float,
    rear_to_center: float,
    stopped_speed: float,
    cos_behind: float,
    num_steps: int,
    projection_times: FloatArray,
    cell_size: float,
) -> tuple[FloatArray, IntArray]:
    """The time-to-collision half of :func:`interaction_kernel` (same arguments; ``weights`` are
    the TTC weights): ``(measure (N,), first step (N,))``, never saturated."""
    ego = np.ascontiguousarray(ego, dtype=np.float64)
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    _, _, measure, first = interaction_kernel(
        ego, np.zeros(ego.shape[:2], np.bool_),
        np.ascontiguousarray(agents, dtype=np.float64),
        np.ascontiguousarray(half_sizes, dtype=np.float64),
        np.zeros_like(weights), weights, float(ego_length), float(ego_width),
        float(rear_to_center), float(stopped_speed), float(cos_behind), int(num_steps),
        np.ascontiguousarray(projection_times, dtype=np.float64), float(cell_size), _INF,
    )  # fmt: skip
    return measure, first


# -- reference path --------------------------------------------------------------------------------


class _Seg(IntEnum):
    """Columns of a path's segment table ``(P - 1, len(_Seg))`` (:func:`_segment_table`)."""

    X0 = 0
    Y0 = 1
    DX = 2
    DY = 3
    INV_LENGTH2 = 4  # 1 / squared length (0 for a segment of no length)
    LENGTH = 5
    INV_LENGTH = 6  # 1 / length (0 for a segment of no length)
    ARC_PER_LENGTH = 7  # arc length per metre along the segment


_X0 = int(_Seg.X0)
_Y0 = int(_Seg.Y0)
_DX = int(_Seg.DX)
_DY = int(_Seg.DY)
_INV_LENGTH2 = int(_Seg.INV_LENGTH2)
_LENGTH = int(_Seg.LENGTH)
_INV_LENGTH = int(_Seg.INV_LENGTH)
_ARC_PER_LENGTH = int(_Seg.ARC_PER_LENGTH)
_SEG_COLUMNS = len(_Seg)


@numba.njit(cache=True)
def _segment_table(path: FloatArray, s: FloatArray) -> FloatArray:
    """The segments of the polyline ``path`` ``(P, >=2)`` with arc lengths ``s`` ``(P,)``."""
    out = np.zeros((max(path.shape[0] - 1, 0), _SEG_COLUMNS))
    for j in range(out.shape[0]):
        dx = path[j + 1, 0] - path[j, 0]
        dy = path[j + 1, 1] - path[j, 1]
        length2 = dx * dx + dy * dy
        length = math.sqrt(length2)
        out[j, _X0] = path[j, 0]
        out[j, _Y0] = path[j, 1]
        out[j, _DX] = dx
        out[j, _DY] = dy
        out[j, _LENGTH] = length
        if length2 > 0.0:
            out[j, _INV_LENGTH2] = 1.0 / length2
        if length > 0.0:
            out[j, _INV_LENGTH] = 1.0 / length
            out[j, _ARC_PER_LENGTH] = (s[j + 1] - s[j]) / length
    return out


@numba.njit(cache=True, inline="always")
def _segment_distance2(px: float, py: float, seg: FloatArray, j: int) -> float:
    """Squared distance from ``(px, py)`` to segment ``j`` of the table ``seg`` (clamped to
    the segment)."""
    x0 = seg[j, _X0]
    y0 = seg[j, _Y0]
    dx = seg[j, _DX]
    dy = seg[j, _DY]
    u = min(1.0, max(0.0, ((px - x0) * dx + (py - y0) * dy) * seg[j, _INV_LENGTH2]))
    ex = px - (x0 + u * dx)
    ey = py - (y0 + u * dy)
    return ex * ex + ey * ey


@numba.njit(cache=True, inline="always")
def _project_on_segment(
    px: float, py: float, seg: FloatArray, s: FloatArray, j: int
) -> tuple[float, float]:
    """Arc length of the foot of ``(px, py)`` on segment ``j`` (clamped to the segment, except
    that the first and last segments extend beyond the path's ends) and its signed offset from
    the segment's line (left +)."""
    x0 = seg[j, _X0]
    y0 = seg[j, _Y0]
    rx = px - x0
    ry = py - y0
    length = seg[j, _LENGTH]
    if length <= 0.0:
        return s[j], math.sqrt(rx * rx + ry * ry)
    dx = seg[j, _DX]
    dy = seg[j, _DY]
    inv = seg[j, _INV_LENGTH]
    u = (rx * dx + ry * dy) * inv
    if j > 0:
        u = max(u, 0.0)
    if j < seg.shape[0] - 1:
        u = min(u, length)
    return s[j] + u * seg[j, _ARC_PER_LENGTH], (dx * ry - dy * rx) * inv


@numba.njit(cache=True, inline="always")
def _nearest_segment(px: float, py: float, seg: FloatArray) -> int:
    """Index of the segment nearest to ``(px, py)`` (the first one on ties)."""
    best = _INF
    j = 0
    for i in range(seg.shape[0]):
        d = _segment_distance2(px, py, seg, i)
        if d < best:
            best = d
            j = i
    return j


@numba.njit(cache=True, inline="always")
def _walk_segment(px: float, py: float, seg: FloatArray, j: int) -> int:
    """From segment ``j``, walk to a neighbouring segment while that one is nearer to
    ``(px, py)``: forwards only when strictly nearer, backwards also when as near (two segments
    sharing the nearest vertex), so ties go to the lower index, as in a global search, and the
    walk never turns back (the segment it came from is never nearer)."""
    last = seg.shape[0] - 1
    d = _segment_distance2(px, py, seg, j)
    if j < last:
        dn = _segment_distance2(px, py, seg, j + 1)
        if dn < d:
            j += 1
            while j < last:
                dn2 = _segment_distance2(px, py, seg, j + 1)
                if not dn2 < dn:
                    break
                dn = dn2
                j += 1
            return j
    while j > 0:
        dp = _segment_distance2(px, py, seg, j - 1)
        if not dp <= d:
            break
        d = dp
        j -= 1
    return j


@numba.njit(cache=True)
def _row_starts(points: FloatArray, seg: FloatArray) -> IntArray:
    """``(N,)`` the segment nearest to the first point of each row of ``points`` ``(N, T, 2)``;
    a row that starts where the row before it starts reuses its match."""
    n_count = points.shape[0]
    start = np.empty(n_count, np.int64)
    for n in range(n_count):
        if (
            n > 0
            and points[n, 0, 0] == points[n - 1, 0, 0]
            and points[n, 0, 1] == points[n - 1, 0, 1]
        ):
            start[n] = start[n - 1]
        else:
            start[n] = _nearest_segment(points[n, 0, 0], points[n, 0, 1], seg)
    return start


@numba.njit(cache=True, parallel=True)
def path_projection_kernel(
    points: FloatArray, path: FloatArray, s: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Project points ``(N, T, 2)`` onto the polyline ``path`` ``(P, >=2)`` with arc lengths
    ``s`` ``(P,)``.

    The first point of each row is matched to its nearest segment over the whole path (rows
    that start where the row before them starts reuse its match); each following point starts
    from the previous point's segment and walks to a neighbouring segment while that one is
    nearer (backwards also when as near, so ties go to the lower index). The local search
    follows the row along the path, so a path that comes back near itself does not capture it.
    Returns ``(N, T)`` arc length [m] of the foot on the segment (extrapolated beyond the path's
    ends along the end segments) and ``(N, T)`` signed offset [m] from the matched segment's
    line (left of the path positive).
    """
    n_count, t_count = points.shape[0], points.shape[1]
    arc = np.empty((n_count, t_count))
    lateral = np.empty((n_count, t_count))
    if t_count == 0:
        return arc, lateral
    seg = _segment_table(path, s)
    start = _row_starts(points, seg)
    for n in numba.prange(n_count):
        j = start[n]
        for t in range(t_count):
            px = points[n, t, 0]
            py = points[n, t, 1]
            if t > 0:
                j = _walk_segment(px, py, seg, j)
            arc[n, t], lateral[n, t] = _project_on_segment(px, py, seg, s, j)
    return arc, lateral


@numba.njit(cache=True, inline="always")
def _limit_index(arc: float, s: FloatArray, i: int) -> int:
    """The last index ``i`` with ``s[i] <= arc`` (0 when none), searched from ``i``."""
    count = s.shape[0]
    while i + 1 < count and s[i + 1] <= arc:
        i += 1
    while i > 0 and s[i] > arc:
        i -= 1
    return i


# -- rasters --------------------------------------------------------------------------------------


@numba.njit(cache=True, inline="always")
def _bilinear(grid: FloatArray, layer: int, u: float, v: float) -> float:
    """Bilinear value of ``grid[layer]`` at continuous pixel ``(u, v)`` (pixel centres at
    integers); within half a pixel of the border the border values extend; NaN beyond."""
    h = grid.shape[1]
    w = grid.shape[2]
    if not (-0.5 <= u <= h - 0.5 and -0.5 <= v <= w - 0.5):
        return math.nan
    u = min(max(u, 0.0), h - 1.0)
    v = min(max(v, 0.0), w - 1.0)
    r0 = min(int(u), h - 2) if h > 1 else 0
    c0 = min(int(v), w - 2) if w > 1 else 0
    fu = u - r0
    fv = v - c0
    r1 = min(r0 + 1, h - 1)
    c1 = min(c0 + 1, w - 1)
    top = (1.0 - fv) * grid[layer, r0, c0] + fv * grid[layer, r0, c1]
    bottom = (1.0 - fv) * grid[layer, r1, c0] + fv * grid[layer, r1, c1]
    return (1.0 - fu) * top + fu * bottom


@numba.njit(cache=True, parallel=True)
def footprint_sample_kernel(
    ego: FloatArray,
    local: FloatArray,
    grid: FloatArray,
    layer_of_step: IntArray,
    pose: FloatArray,
    resolution: float,
    origin_row: float,
    origin_col: float,
) -> FloatArray:
    """Bilinear samples of raster layers at points fixed to the ego box along each candidate.

    ``ego`` ``(N, T, len(BoxState))`` box states, ``local`` ``(S, 2)`` points in the box frame
    [m] (x forward, y left, from the box centre), ``grid`` ``(G, H, W)``, ``layer_of_step``
    ``(T,)`` which layer step ``t`` reads. The raster frame is ``pose`` [x, y, yaw] in the world;
    the centre of pixel ``(r, c)`` is at raster-frame ``x = (origin_row - r - 0.5) · resolution``,
    ``y = (origin_col - c - 0.5) · resolution``. Values between pixel centres are bilinear,
    within half a pixel of the border the border pixels' values extend, and points outside the
    raster give NaN. Returns ``(N, T, S)``.
    """
    n_count, t_count, s_count = ego.shape[0], ego.shape[1], local.shape[0]
    # world (x, y) -> continuous pixel (u, v): u = u0 + ux·x + uy·y, v = v0 + vx·x + vy·y
    gc = math.cos(pose[2]) / resolution
    gs = math.sin(pose[2]) / resolution
    ux, uy = -gc, -gs
    vx, vy = gs, -gc
    u0 = origin_row - 0.5 - ux * pose[0] - uy * pose[1]
    v0 = origin_col - 0.5 - vx * pose[0] - vy * pose[1]
    out = np.empty((n_count, t_count, s_count))
    for n in numba.prange(n_count):
        for t in range(t_count):
            layer = layer_of_step[t]
            c = ego[n, t, _BC]
            s = ego[n, t, _BS]
            cu = u0 + ux * ego[n, t, _BX] + uy * ego[n, t, _BY]
            cv = v0 + vx * ego[n, t, _BX] + vy * ego[n, t, _BY]
            # the box axes in pixels
            au = ux * c + uy * s
            av = vx * c + vy * s
            bu = -ux * s + uy * c
            bv = -vx * s + vy * c
            for i in range(s_count):
                u = cu + au * local[i, 0] + bu * local[i, 1]
                v = cv + av * local[i, 0] + bv * local[i, 1]
                out[n, t, i] = _bilinear(grid, layer, u, v)
    return out


# -- comfort --------------------------------------------------------------------------------------


@numba.njit(cache=True, inline="always")
def _comfort_block(
    candidates: FloatArray,
    n0: int,
    count: int,
    band_index: IntArray,
    band_coef: FloatArray,
    history: FloatArray,
    acc: FloatArray,
    out: FloatArray,
    col: int,
) -> None:
    """Write the comfort extremes of candidates ``n0 .. n0 + count - 1`` (``count <= LANES``)
    to ``out[n, col:col + 7]``. Scratch: ``history`` ``(3, T, LANES)``, ``acc``
    ``(10, LANES)``. Every step runs over the block at once (vectorised)."""
    t_count = candidates.shape[1]
    width = band_index.shape[1]
    for i in range(LANES):
        acc[0, i] = _INF  # min longitudinal acceleration
        acc[1, i] = -_INF  # max longitudinal acceleration
        acc[2, i] = 0.0  # max |lateral acceleration|
        acc[3, i] = 0.0  # max |yaw rate|
        acc[4, i] = 0.0  # max |yaw acceleration|
        acc[5, i] = 0.0  # max |longitudinal jerk|
        acc[6, i] = 0.0  # max |rate of change of the acceleration magnitude|
    last = n0 + count - 1
    for t in range(t_count):
        for i in range(LANES):
            n = min(n0 + i, last)  # lanes past the end repeat the last candidate
            v = candidates[n, t, _TSPEED]
            kappa = candidates[n, t, _TCURV]
            a = candidates[n, t, _TACCEL]
            lat = v * v * kappa
            history[0, t, i] = a
            history[1, t, i] = v * kappa
            history[2, t, i] = math.sqrt(a * a + lat * lat)
            acc[0, i] = min(acc[0, i], a)
            acc[1, i] = max(acc[1, i], a)
            acc[2, i] = max(acc[2, i], abs(lat))
            acc[3, i] = max(acc[3, i], abs(v * kappa))
    for t in range(t_count):
        for i in range(LANES):
            acc[7, i] = 0.0
            acc[8, i] = 0.0
            acc[9, i] = 0.0
        for q in range(width):
            j = band_index[t, q]
            w = band_coef[t, q]
            for i in range(LANES):
                acc[7, i] += w * history[1, j, i]
                acc[8, i] += w * history[0, j, i]
                acc[9, i] += w * history[2, j, i]
        for i in range(LANES):
            acc[4, i] = max(acc[4, i], abs(acc[7, i]))
            acc[5, i] = max(acc[5, i], abs(acc[8, i]))
            acc[6, i] = max(acc[6, i], abs(acc[9, i]))
    for i in range(count):
        for c in range(_COMFORT_COLUMNS):
            out[n0 + i, col + c] = acc[c, i]


@numba.njit(cache=True, parallel=True)
def comfort_kernel(
    candidates: FloatArray, band_index: IntArray, band_coef: FloatArray
) -> FloatArray:
    """Extremes of the comfort signals of each candidate ``(N, T, 6)`` → ``(N, 7)``.

    Columns (``kaido.planning.costs.ComfortIndex``): min and max longitudinal acceleration
    (``ACCEL``), max |lateral acceleration ``v²κ``|, max |yaw rate ``vκ``|, max |yaw
    acceleration|, max |longitudinal jerk|, max |rate of change of ``hypot(a_lon, a_lat)``|.
    Derivatives are ``dy[t] = sum_i band_coef[t, i] * y[band_index[t, i]]`` (a Savitzky-Golay
    band, ``(T, w)`` each).
    """
    n_count, t_count = candidates.shape[0], candidates.shape[1]
    out = np.empty((n_count, _COMFORT_COLUMNS))
    for block in numba.prange((n_count + LANES - 1) // LANES):
        history = np.empty((3, t_count, LANES))
        acc = np.empty((10, LANES))
        n0 = block * LANES
        _comfort_block(
            candidates, n0, min(LANES, n_count - n0), band_index, band_coef, history, acc, out, 0
        )
    return out


# -- everything per candidate in one pass ----------------------------------------------------------


@numba.njit(cache=True)
def _start_segments(
    candidates: FloatArray, seg: FloatArray, front_offset: float
) -> tuple[IntArray, IntArray]:
    """``(N,)`` segments nearest to the rear axle and to the front bumper at step 0 (rows that
    start at the pose of the row before them reuse its match)."""
    n_count = candidates.shape[0]
    rear = np.empty(n_count, np.int64)
    front = np.empty(n_count, np.int64)
    for n in range(n_count):
        x = candidates[n, 0, _TX]
        y = candidates[n, 0, _TY]
        yaw = candidates[n, 0, _TYAW]
        if (
            n > 0
            and x == candidates[n - 1, 0, _TX]
            and y == candidates[n - 1, 0, _TY]
            and yaw == candidates[n - 1, 0, _TYAW]
        ):
            rear[n] = rear[n - 1]
            front[n] = front[n - 1]
        else:
            rear[n] = _nearest_segment(x, y, seg)
            front[n] = _nearest_segment(
                x + front_offset * math.cos(yaw), y + front_offset * math.sin(yaw), seg
            )
    return rear, front


@numba.njit(cache=True, fastmath={"contract"})
def _terms_block(
    n0: int,
    count: int,
    candidates: FloatArray,
    seg: FloatArray,
    path_s: FloatArray,
    speed_limits: FloatArray,
    rear_start: IntArray,
    front_start: IntArray,
    rear_to_center: float,
    front_offset: float,
    half_width: float,
    lane_half_width: float,
    window_steps: int,
    band_index: IntArray,
    band_coef: FloatArray,
    box_states: bool,
    ego: FloatArray,
    straddle: BoolArray,
    terms: FloatArray,
    finite: BoolArray,
) -> None:
    """:func:`candidate_terms_kernel` for candidates ``n0 .. n0 + count - 1`` (one block of at
    most ``LANES``), writing their rows of the outputs."""
    t_count = candidates.shape[1]
    steps = max(t_count - 1, 1)
    arc = np.empty(t_count)
    history = np.empty((3, t_count, LANES))
    acc = np.empty((10, LANES))
    for n in range(n0, n0 + count):
        j_rear = rear_start[n]
        j_front = front_start[n]
        i_limit = j_rear
        ok = True
        overspeed = 0.0
        lateral_sum = 0.0
        wrong_way = 0.0
        front_start_arc = 0.0
        front_max = -_INF
        for t in range(t_count):
            x = candidates[n, t, _TX]
            y = candidates[n, t, _TY]
            yaw = candidates[n, t, _TYAW]
            v = candidates[n, t, _TSPEED]
            ok = (
                ok
                and math.isfinite(x)
                and math.isfinite(y)
                and math.isfinite(yaw)
                and math.isfinite(v)
                and math.isfinite(candidates[n, t, _TACCEL])
                and math.isfinite(candidates[n, t, _TCURV])
            )
            c = math.cos(yaw)
            s = math.sin(yaw)
            if box_states:
                ego[n, t, _BX] = x + rear_to_center * c
                ego[n, t, _BY] = y + rear_to_center * s
                ego[n, t, _BC] = c
                ego[n, t, _BS] = s
                ego[n, t, _BV] = v
            fx = x + front_offset * c
            fy = y + front_offset * s
            if t > 0:
                j_rear = _walk_segment(x, y, seg, j_rear)
                j_front = _walk_segment(fx, fy, seg, j_front)
            rear_arc, rear_lateral = _project_on_segment(x, y, seg, path_s, j_rear)
            front_arc, front_lateral = _project_on_segment(fx, fy, seg, path_s, j_front)
            straddle[n, t] = (
                max(abs(rear_lateral), abs(front_lateral)) + half_width > lane_half_width
            )
            arc[t] = rear_arc
            if t == 0:
                front_start_arc = front_arc
                continue
            i_limit = _limit_index(rear_arc, path_s, i_limit)
            overspeed += max(v - speed_limits[i_limit], 0.0)
            lateral_sum += abs(rear_lateral)
            front_max = max(front_max, front_arc)
            wrong_way = max(wrong_way, -(rear_arc - arc[max(t - window_steps, 0)]))
        finite[n] = ok
        terms[n, _PROGRESS] = max(arc[t_count - 1] - arc[0], 0.0)
        terms[n, _WRONG_WAY] = wrong_way + 0.0  # no -0.0
        terms[n, _MEAN_OVERSPEED] = overspeed / steps
        terms[n, _MEAN_ABS_LATERAL] = lateral_sum / steps
        terms[n, _FRONT_ARC_START] = front_start_arc
        terms[n, _FRONT_ARC_MAX] = front_max
    _comfort_block(candidates, n0, count, band_index, band_coef, history, acc, terms, _TERM_COMFORT)


@numba.njit(cache=True, parallel=True)
def candidate_terms_kernel(
    candidates: FloatArray,
    path: FloatArray,
    path_s: FloatArray,
    speed_limits: FloatArray,
    rear_to_center: float,
    front_offset: float,
    half_width: float,
    lane_half_width: float,
    window_steps: int,
    band_index: IntArray,
    band_coef: FloatArray,
    box_states: bool,
) -> tuple[FloatArray, BoolArray, FloatArray, BoolArray]:
    """Everything the score needs of each candidate alone, in one pass over candidates
    ``(N, T, len(TrajIndex))`` (rear-axle states).

    ``path`` ``(P, 2)`` and ``path_s`` ``(P,)`` the reference path (see
    :func:`path_projection_kernel`, which projects the rear axle and the front bumper,
    ``front_offset`` [m] ahead of it), ``speed_limits`` ``(P,)`` [m/s] the limit from each path
    point on (``inf``: none), ``rear_to_center`` [m] rear axle to box centre, ``half_width`` [m]
    half the ego's width, ``lane_half_width`` [m], ``window_steps`` the driving-direction window,
    ``band_index`` / ``band_coef`` the comfort derivative band (:func:`comfort_kernel`).

    Returns ``ego`` ``(N, T, len(BoxState))`` the ego box states (centre ``rear_to_center`` ahead
    of the rear axle) when ``box_states`` is true, else ``(0, T, len(BoxState))``; ``straddle``
    ``(N, T)``: the rear axle or the front bumper is more than ``lane_half_width - half_width``
    from the path (the ego straddles lanes); ``terms`` ``(N, len(CandidateTerm))``; ``finite``
    ``(N,)``: every value of the candidate is finite (the other outputs of a row with a
    non-finite value are meaningless).
    """
    n_count, t_count = candidates.shape[0], candidates.shape[1]
    ego = np.empty((n_count if box_states else 0, t_count, 5))
    straddle = np.empty((n_count, t_count), np.bool_)
    terms = np.empty((n_count, _TERM_COLUMNS))
    finite = np.empty(n_count, np.bool_)
    if n_count == 0 or t_count == 0:
        return ego, straddle, terms, finite
    seg = _segment_table(path, path_s)
    rear_start, front_start = _start_segments(candidates, seg, front_offset)
    for block in numba.prange((n_count + LANES - 1) // LANES):
        n0 = block * LANES
        _terms_block(
            n0, min(LANES, n_count - n0), candidates, seg, path_s, speed_limits, rear_start,
            front_start, rear_to_center, front_offset, half_width, lane_half_width, window_steps,
            band_index, band_coef, box_states, ego, straddle, terms, finite,
        )  # fmt: skip
    return ego, straddle, terms, finite
