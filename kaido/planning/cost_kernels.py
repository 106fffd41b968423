"""Numba kernels behind :mod:`kaido.planning.costs`: pure array-in/array-out functions.

Each kernel has a plain NumPy (or shapely) reference in :mod:`kaido.planning.costs` and a test
that the two agree. Axis vocabulary: ``N`` candidates, ``T`` time points, ``A`` agents, ``K``
modes per agent, ``P`` reference-path points, ``S`` sample points per step, ``G`` grid layers,
``H`` x ``W`` grid rows x columns, ``M`` box pairs.

Inputs are float64 (C order). Boxes move as :class:`BoxState` rows (centre, cos/sin of the
heading, speed), computed once per scoring call with vectorised NumPy so the kernels need no
trigonometry; candidates ``(N, T, len(TrajIndex))`` are rear-axle states (see
:mod:`kaido.planning.types`).

Boxes are closed sets: boxes that touch (within ``eps`` [m] on every separating axis) overlap,
as in :func:`kaido.scene.geometry.box2d_overlap`. Comparisons are written so that NaN never
overlaps anything.

Broad phase of the interaction kernels (:func:`collision_kernel`, :func:`ttc_kernel`): at each
time step the agent modes are binned into a uniform grid (:func:`_step_grids`, built once per
call); a candidate's box at that step visits only the modes in the cells its axis-aligned bound
touches, and a bounding-circle test precedes the separating-axis test (SAT). A mode whose outcome
is known is not visited again (early exit).
"""

from __future__ import annotations

import math
from enum import IntEnum

import numba
import numpy as np
import numpy.typing as npt

from kaido.planning.types import TrajIndex

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

OVERLAP_EPS = 1e-9
"""[m] boxes apart by at most this along every separating axis overlap (closed boxes)."""

_CIRCLE_SLACK = 1e-6
"""[m] added to bounding-circle radii so the broad phase never rejects a touching pair."""

_MAX_CELLS = 4096
"""Most broad-phase grid cells per time step (cells grow beyond ``cell_size`` to stay under)."""

_TX = int(TrajIndex.X)
_TY = int(TrajIndex.Y)
_TYAW = int(TrajIndex.YAW)
_TSPEED = int(TrajIndex.SPEED)
_TACCEL = int(TrajIndex.ACCEL)
_TCURV = int(TrajIndex.CURVATURE)


class BoxState(IntEnum):
    """Columns of a box state ``(..., len(BoxState))`` read by the interaction kernels: the box
    centre [m], the heading as its cosine and sine (computed once, vectorised, by the caller),
    and the speed along the heading [m/s]."""

    X = 0
    Y = 1
    COS = 2
    SIN = 3
    SPEED = 4


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


# -- broad phase: a uniform grid per time step --------------------------------------------------


@numba.njit(cache=True, inline="always")
def _grow(box: FloatArray, x: float, y: float, ex: float, ey: float) -> None:
    """Grow the AABB ``box`` ``[xmin, ymin, xmax, ymax]`` to hold ``[x ± ex] × [y ± ey]``."""
    box[0] = min(box[0], x - ex)
    box[1] = min(box[1], y - ey)
    box[2] = max(box[2], x + ex)
    box[3] = max(box[3], y + ey)


@numba.njit(cache=True)
def _step_grids(
    states: FloatArray,
    half_sizes: FloatArray,
    weights: FloatArray,
    num_steps: int,
    sweep: float,
    cell_size: float,
    max_cells: int,
) -> tuple[FloatArray, IntArray, IntArray, IntArray, IntArray, IntArray, FloatArray]:
    """Bin every agent mode with positive weight into a uniform grid of its own step.

    An item ``a * K + k`` lands in every cell its AABB touches at step ``t``: the box swept along
    its heading by ``speed · [0, sweep]`` (``sweep`` [s]; 0 = the box itself). Each step's grid
    spans that step's items with square cells of ``cell_size`` [m], doubled until it has at most
    ``max_cells`` cells. Items with non-finite boxes are left out (they overlap nothing).

    Returns ``geometry`` ``(T, 3)`` [x0, y0, cell] per step, ``shape`` ``(T, 2)`` [nx, ny]
    (0 when the step has no item), ``base`` ``(T + 1,)`` the first cell of each step, ``start``
    ``(cells + 1,)`` CSR offsets into the entries, ``items`` ``(E,)`` the item of each entry,
    ``owners`` ``(E,)`` its agent and ``data`` ``(E, 5)`` its state at that step [x, y, cos yaw,
    sin yaw, speed], stored in entry order so that a cell's entries are read contiguously.
    """
    a_count, k_count = states.shape[0], states.shape[1]
    i_count = a_count * k_count
    boxes = np.empty((num_steps, i_count, 4))
    geometry = np.zeros((num_steps, 3))
    shape = np.zeros((num_steps, 2), np.int64)
    base = np.zeros(num_steps + 1, np.int64)
    for t in range(num_steps):
        xmin = _INF
        ymin = _INF
        xmax = -_INF
        ymax = -_INF
        for a in range(a_count):
            hl = half_sizes[a, 0]
            hw = half_sizes[a, 1]
            for k in range(k_count):
                box = boxes[t, a * k_count + k]
                box[0] = _INF
                box[1] = _INF
                box[2] = -_INF
                box[3] = -_INF
                if not weights[a, k] > 0.0:
                    continue
                c = states[a, k, t, _BC]
                s = states[a, k, t, _BS]
                ex = hl * abs(c) + hw * abs(s)
                ey = hl * abs(s) + hw * abs(c)
                x = states[a, k, t, _BX]
                y = states[a, k, t, _BY]
                _grow(box, x, y, ex, ey)
                if sweep > 0.0:
                    travel = states[a, k, t, _BV] * sweep
                    _grow(box, x + travel * c, y + travel * s, ex, ey)
                finite = (
                    math.isfinite(box[0])
                    and math.isfinite(box[1])
                    and math.isfinite(box[2])
                    and math.isfinite(box[3])
                    and math.isfinite(states[a, k, t, _BV])
                )
                if not finite:
                    box[0] = _INF
                    box[2] = -_INF
                    continue
                xmin = min(xmin, box[0])
                ymin = min(ymin, box[1])
                xmax = max(xmax, box[2])
                ymax = max(ymax, box[3])
        cells = 0
        if xmin <= xmax:
            cell = cell_size
            nx = int((xmax - xmin) / cell) + 1
            ny = int((ymax - ymin) / cell) + 1
            while nx * ny > max_cells:
                cell *= 2.0
                nx = int((xmax - xmin) / cell) + 1
                ny = int((ymax - ymin) / cell) + 1
            geometry[t, 0] = xmin
            geometry[t, 1] = ymin
            geometry[t, 2] = cell
            shape[t, 0] = nx
            shape[t, 1] = ny
            cells = nx * ny
        base[t + 1] = base[t] + cells
    start = np.zeros(base[num_steps] + 1, np.int64)
    items = np.empty(0, np.int64)
    owners = np.empty(0, np.int64)
    data = np.empty((0, 5))
    fill = np.empty(0, np.int64)
    for pass_ in range(2):
        if pass_ == 1:
            for i in range(1, start.shape[0]):
                start[i] += start[i - 1]
            entries = start[start.shape[0] - 1]
            items = np.empty(entries, np.int64)
            owners = np.empty(entries, np.int64)
            data = np.empty((entries, 5))
            fill = start.copy()
        for t in range(num_steps):
            nx = shape[t, 0]
            if nx == 0:
                continue
            x0 = geometry[t, 0]
            y0 = geometry[t, 1]
            cell = geometry[t, 2]
            ny = shape[t, 1]
            for item in range(i_count):
                box = boxes[t, item]
                if not box[0] <= box[2]:
                    continue
                i0 = min(int((box[0] - x0) / cell), nx - 1)
                i1 = min(int((box[2] - x0) / cell), nx - 1)
                j0 = min(int((box[1] - y0) / cell), ny - 1)
                j1 = min(int((box[3] - y0) / cell), ny - 1)
                a = item // k_count
                k = item - a * k_count
                for i in range(i0, i1 + 1):
                    for j in range(j0, j1 + 1):
                        slot = base[t] + i * ny + j
                        if pass_ == 0:
                            start[slot + 1] += 1
                        else:
                            e = fill[slot]
                            fill[slot] += 1
                            items[e] = item
                            owners[e] = a
                            for col in range(5):
                                data[e, col] = states[a, k, t, col]
    return geometry, shape, base, start, items, owners, data


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


# -- collision ------------------------------------------------------------------------------------


@numba.njit(cache=True, parallel=True)
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
    """At-fault collisions of each candidate with every agent mode, nuPlan style.

    ``ego`` ``(N, T, len(BoxState))`` the ego box's states along each candidate (``ego_length``
    x ``ego_width`` [m]; its rear axle is ``rear_to_center`` [m] behind the centre);
    ``agents`` ``(A, K, T, len(BoxState))`` every agent mode's box states, ``half_sizes``
    ``(A, 2)`` half length/width [m], ``weights`` ``(A, K)`` (e.g. mode probability × class
    weight; modes with weight <= 0 are skipped). ``lateral_at_fault`` ``(N, T)``: whether a
    lateral collision at that step is the ego's fault. Only steps ``t < num_steps`` are checked.
    ``cell_size`` [m]: broad-phase grid cell (a speed knob; results do not depend on it).

    A collision with a mode starts at a step where the boxes overlap and did not at the step
    before (or at step 0). It is the ego's fault unless, at that step, the ego is stopped
    (``|speed| <= stopped_speed`` [m/s]); otherwise it is at fault when the agent is stopped
    (``|speed| <= stopped_speed``); otherwise not when the agent's centre is behind the ego's rear
    axle (the angle from the ego's heading exceeds ``acos(cos_behind)``: it hit the ego from
    behind); otherwise at fault when the ego's front edge touches the agent's box; otherwise (a
    lateral collision) as ``lateral_at_fault`` says. Once a collision with a mode was at fault,
    that mode is not looked at again.

    Returns ``measure`` ``(N,)``: the sum of the weights of the modes hit at fault, and ``first``
    ``(N,)``: the first step of an at-fault collision, -1 if none.
    """
    n_count = ego.shape[0]
    a_count, k_count = agents.shape[0], agents.shape[1]
    num_steps = min(num_steps, ego.shape[1], agents.shape[2])
    measure = np.zeros(n_count)
    first = np.full(n_count, -1, np.int64)
    if a_count == 0 or num_steps <= 0:
        return measure, first
    geometry, shape, base, start, items, owners, data = _step_grids(
        agents, half_sizes, weights, num_steps, 0.0, cell_size, _MAX_CELLS
    )
    i_count = a_count * k_count
    reach = _squared_reach(half_sizes, ego_length, ego_width)
    hl = 0.5 * ego_length
    hw = 0.5 * ego_width
    for n in numba.prange(n_count):
        seen = np.full(i_count, -1, np.int64)
        last = np.full(i_count, -2, np.int64)
        done = np.zeros(i_count, np.bool_)
        total = 0.0
        first_n = -1
        for t in range(num_steps):
            nx = shape[t, 0]
            if nx == 0:
                continue
            ny = shape[t, 1]
            ex = ego[n, t, _BX]
            ey = ego[n, t, _BY]
            ec = ego[n, t, _BC]
            es = ego[n, t, _BS]
            ev = ego[n, t, _BV]
            rx = hl * abs(ec) + hw * abs(es)
            ry = hl * abs(es) + hw * abs(ec)
            cell = geometry[t, 2]
            i0, i1 = _cell_range(ex - rx, ex + rx, geometry[t, 0], cell, nx)
            j0, j1 = _cell_range(ey - ry, ey + ry, geometry[t, 1], cell, ny)
            for i in range(i0, i1 + 1):
                row = base[t] + i * ny
                for e in range(start[row + j0], start[row + j1 + 1]):
                    item = items[e]
                    if seen[item] == t or done[item]:
                        continue
                    seen[item] = t
                    mx = data[e, 0]
                    my = data[e, 1]
                    dx = mx - ex
                    dy = my - ey
                    a = owners[e]
                    if not dx * dx + dy * dy <= reach[a]:
                        continue
                    mc = data[e, 2]
                    ms = data[e, 3]
                    ahl = half_sizes[a, 0]
                    ahw = half_sizes[a, 1]
                    if not _boxes_overlap(
                        ex, ey, ec, es, hl, hw, mx, my, mc, ms, ahl, ahw, OVERLAP_EPS
                    ):
                        continue
                    new = last[item] != t - 1
                    last[item] = t
                    if not new:
                        continue
                    if abs(ev) <= stopped_speed:
                        at_fault = False
                    elif abs(data[e, 4]) <= stopped_speed:
                        at_fault = True
                    elif _is_behind(
                        ex - rear_to_center * ec,
                        ey - rear_to_center * es,
                        ec,
                        es,
                        mx,
                        my,
                        cos_behind,
                    ):
                        at_fault = False
                    else:
                        fx = ex + hl * ec
                        fy = ey + hl * es
                        at_fault = lateral_at_fault[n, t] or _segment_hits_box(
                            fx - hw * es, fy + hw * ec, fx + hw * es, fy - hw * ec,
                            mx, my, mc, ms, ahl, ahw, OVERLAP_EPS,
                        )  # fmt: skip
                    if at_fault:
                        done[item] = True
                        total += weights[a, item - a * k_count]
                        if first_n < 0:
                            first_n = t
        measure[n] = total
        first[n] = first_n
    return measure, first


# -- time to collision ----------------------------------------------------------------------------


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


@numba.njit(cache=True, parallel=True)
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
    """Time-to-collision below a bound, nuPlan style, for each candidate and agent mode.

    Inputs as :func:`collision_kernel`; ``projection_times`` ``(J,)`` [s] > 0, increasing. At each
    step ``t < num_steps`` where the ego moves (``|speed| > stopped_speed``), the ego box and
    each agent mode's box are projected ahead with constant velocity (each along its own heading
    at its own speed) by every ``tau`` in ``projection_times``; a mode is flagged when a projected
    pair overlaps, unless the boxes already overlap at ``tau = 0`` (a collision, scored by
    :func:`collision_kernel`) or the agent's centre is behind the ego's rear axle at that step.
    Headings stay fixed, so on each separating axis the overlap is an interval of ``tau``; a mode
    is flagged when a projection time falls in the intersection of the four.

    Returns ``measure`` ``(N,)``: the sum of the weights of the flagged modes, and ``first``
    ``(N,)``: the first step at which a mode was flagged, -1 if none.
    """
    n_count = ego.shape[0]
    a_count, k_count = agents.shape[0], agents.shape[1]
    num_steps = min(num_steps, ego.shape[1], agents.shape[2])
    measure = np.zeros(n_count)
    first = np.full(n_count, -1, np.int64)
    j_count = projection_times.shape[0]
    if a_count == 0 or num_steps <= 0 or j_count == 0:
        return measure, first
    sweep = projection_times[j_count - 1]
    geometry, shape, base, start, items, owners, data = _step_grids(
        agents, half_sizes, weights, num_steps, sweep, cell_size, _MAX_CELLS
    )
    i_count = a_count * k_count
    reach = _squared_reach(half_sizes, ego_length, ego_width)
    hl = 0.5 * ego_length
    hw = 0.5 * ego_width
    for n in numba.prange(n_count):
        seen = np.full(i_count, -1, np.int64)
        done = np.zeros(i_count, np.bool_)
        total = 0.0
        first_n = -1
        for t in range(num_steps):
            nx = shape[t, 0]
            if nx == 0:
                continue
            ny = shape[t, 1]
            ex = ego[n, t, _BX]
            ey = ego[n, t, _BY]
            ec = ego[n, t, _BC]
            es = ego[n, t, _BS]
            ev = ego[n, t, _BV]
            if abs(ev) <= stopped_speed:
                continue
            rx = hl * abs(ec) + hw * abs(es)
            ry = hl * abs(es) + hw * abs(ec)
            travel = ev * sweep
            tx = travel * ec
            ty = travel * es
            cell = geometry[t, 2]
            i0, i1 = _cell_range(min(0.0, tx) + ex - rx, max(0.0, tx) + ex + rx,
                                 geometry[t, 0], cell, nx)  # fmt: skip
            j0, j1 = _cell_range(min(0.0, ty) + ey - ry, max(0.0, ty) + ey + ry,
                                 geometry[t, 1], cell, ny)  # fmt: skip
            for i in range(i0, i1 + 1):
                row = base[t] + i * ny
                for e in range(start[row + j0], start[row + j1 + 1]):
                    item = items[e]
                    if seen[item] == t or done[item]:
                        continue
                    seen[item] = t
                    a = owners[e]
                    mx = data[e, 0]
                    my = data[e, 1]
                    mc = data[e, 2]
                    ms = data[e, 3]
                    mv = data[e, 4]
                    # closest approach of the bounding circles over tau in [0, sweep]
                    dx = mx - ex
                    dy = my - ey
                    wx = mv * mc - ev * ec
                    wy = mv * ms - ev * es
                    ww = wx * wx + wy * wy
                    tau = 0.0
                    if ww > 0.0:
                        tau = min(max(-(dx * wx + dy * wy) / ww, 0.0), sweep)
                    cx = dx + tau * wx
                    cy = dy + tau * wy
                    if not cx * cx + cy * cy <= reach[a]:
                        continue
                    ahl = half_sizes[a, 0]
                    ahw = half_sizes[a, 1]
                    lo, hi = _overlap_interval(
                        dx, dy, wx, wy,
                        ec, es, hl, hw, mc, ms, ahl, ahw, sweep, OVERLAP_EPS,
                    )  # fmt: skip
                    # never within the sweep, or overlapping now (a collision, not a TTC)
                    if lo > hi or lo <= 0.0:
                        continue
                    hit = False
                    for jj in range(j_count):
                        tau = projection_times[jj]
                        if tau > hi:
                            break
                        if tau >= lo:
                            hit = True
                            break
                    if not hit or _is_behind(
                        ex - rear_to_center * ec,
                        ey - rear_to_center * es,
                        ec,
                        es,
                        mx,
                        my,
                        cos_behind,
                    ):
                        continue
                    done[item] = True
                    total += weights[a, item - a * k_count]
                    if first_n < 0:
                        first_n = t
        measure[n] = total
        first[n] = first_n
    return measure, first


# -- reference path --------------------------------------------------------------------------------


@numba.njit(cache=True, inline="always")
def _segment_distance2(px: float, py: float, path: FloatArray, j: int) -> float:
    """Squared distance from ``(px, py)`` to path segment ``j`` (clamped to the segment)."""
    x0 = path[j, 0]
    y0 = path[j, 1]
    dx = path[j + 1, 0] - x0
    dy = path[j + 1, 1] - y0
    length2 = dx * dx + dy * dy
    u = 0.0
    if length2 > 0.0:
        u = min(1.0, max(0.0, ((px - x0) * dx + (py - y0) * dy) / length2))
    ex = px - (x0 + u * dx)
    ey = py - (y0 + u * dy)
    return ex * ex + ey * ey


@numba.njit(cache=True, inline="always")
def _project_on_segment(
    px: float, py: float, path: FloatArray, s: FloatArray, j: int
) -> tuple[float, float]:
    """Arc length of the foot of ``(px, py)`` on segment ``j`` (clamped to the segment, except
    that the first and last segments extend beyond the path's ends) and its signed offset from
    the segment's line (left +)."""
    x0 = path[j, 0]
    y0 = path[j, 1]
    dx = path[j + 1, 0] - x0
    dy = path[j + 1, 1] - y0
    length = math.sqrt(dx * dx + dy * dy)
    if length <= 0.0:
        return s[j], math.sqrt((px - x0) ** 2 + (py - y0) ** 2)
    u = ((px - x0) * dx + (py - y0) * dy) / length
    if j > 0:
        u = max(u, 0.0)
    if j < path.shape[0] - 2:
        u = min(u, length)
    lateral = (dx * (py - y0) - dy * (px - x0)) / length
    return s[j] + u * (s[j + 1] - s[j]) / length, lateral


@numba.njit(cache=True, inline="always")
def _nearest_segment(px: float, py: float, path: FloatArray) -> int:
    """Index of the segment of ``path`` nearest to ``(px, py)`` (the first one on ties)."""
    best = _INF
    j = 0
    for i in range(path.shape[0] - 1):
        d = _segment_distance2(px, py, path, i)
        if d < best:
            best = d
            j = i
    return j


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
    seg_count = path.shape[0] - 1
    arc = np.empty((n_count, t_count))
    lateral = np.empty((n_count, t_count))
    if t_count == 0:
        return arc, lateral
    start = np.empty(n_count, np.int64)
    for n in range(n_count):
        if (
            n > 0
            and points[n, 0, 0] == points[n - 1, 0, 0]
            and points[n, 0, 1] == points[n - 1, 0, 1]
        ):
            start[n] = start[n - 1]
        else:
            start[n] = _nearest_segment(points[n, 0, 0], points[n, 0, 1], path)
    for n in numba.prange(n_count):
        j = start[n]
        for t in range(t_count):
            px = points[n, t, 0]
            py = points[n, t, 1]
            if t > 0:
                d = _segment_distance2(px, py, path, j)
                for _ in range(seg_count):
                    # forward only when strictly nearer, backward also on a tie (two segments
                    # sharing the nearest vertex): the lower index wins ties, as in a global
                    # search, and the walk never oscillates
                    if j + 1 < seg_count:
                        dn = _segment_distance2(px, py, path, j + 1)
                        if dn < d:
                            d = dn
                            j += 1
                            continue
                    if j > 0:
                        dp = _segment_distance2(px, py, path, j - 1)
                        if dp <= d:
                            d = dp
                            j -= 1
                            continue
                    break
            arc[n, t], lateral[n, t] = _project_on_segment(px, py, path, s, j)
    return arc, lateral


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
    width = band_index.shape[1]
    out = np.empty((n_count, 7))
    for n in numba.prange(n_count):
        lon = np.empty(t_count)
        yaw_rate = np.empty(t_count)
        magnitude = np.empty(t_count)
        lo = _INF
        hi = -_INF
        lat_max = 0.0
        rate_max = 0.0
        for t in range(t_count):
            v = candidates[n, t, _TSPEED]
            kappa = candidates[n, t, _TCURV]
            a = candidates[n, t, _TACCEL]
            lat = v * v * kappa
            lon[t] = a
            yaw_rate[t] = v * kappa
            magnitude[t] = math.sqrt(a * a + lat * lat)
            lo = min(lo, a)
            hi = max(hi, a)
            lat_max = max(lat_max, abs(lat))
            rate_max = max(rate_max, abs(v * kappa))
        yaw_acc = 0.0
        jerk = 0.0
        jerk_mag = 0.0
        for t in range(t_count):
            d_rate = 0.0
            d_lon = 0.0
            d_mag = 0.0
            for i in range(width):
                j = band_index[t, i]
                w = band_coef[t, i]
                d_rate += w * yaw_rate[j]
                d_lon += w * lon[j]
                d_mag += w * magnitude[j]
            yaw_acc = max(yaw_acc, abs(d_rate))
            jerk = max(jerk, abs(d_lon))
            jerk_mag = max(jerk_mag, abs(d_mag))
        out[n, 0] = lo
        out[n, 1] = hi
        out[n, 2] = lat_max
        out[n, 3] = rate_max
        out[n, 4] = yaw_acc
        out[n, 5] = jerk
        out[n, 6] = jerk_mag
    return out
