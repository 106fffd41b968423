"""Numba kernels behind :mod:`kaido.planning.candidates`: pure array-in/array-out functions.

Every kernel works on a *reference grid*: the reference path resampled every ``grid_ds`` metres
of its arc length ``s``, starting at ``grid_s0`` [m]: ``grid_xy`` ``(G, 2)`` centreline points
[m] and ``grid_normal`` ``(G, 2)`` unit left normals. Between grid points positions and normals
are interpolated linearly (normals re-normalised); before the first and past the last point the
first and last grid segments are extended straight.

Axis vocabulary: ``G`` grid points, ``M`` longitudinal profiles, ``N`` candidates, ``A`` agents,
``S`` stops, ``T`` time points ``dt`` apart.

Shared conventions (the NumPy references in :mod:`kaido.planning.candidates` follow them
operation by operation):

* **Projection** of a point on the grid polyline walks from a starting segment: forward while the
  point projects past the segment's end, else backward while it projects before its start. The
  arc length is ``grid_s0 + (segment + u) * grid_ds`` with the segment parameter ``u`` clamped to
  ``[0, 1]`` except before the first and past the last segment.
* **Longitudinal integration** holds the acceleration ``a`` over a step: ``v' = v + a dt`` and
  ``ds = v dt + a dt² / 2``; when ``v'`` would drop to zero or below the vehicle stops within the
  step, after ``ds = v² / (2 |a|)``, and the step's acceleration is reported as ``-v / dt``, so a
  profile's acceleration column is always the exact finite difference of its speed.
* **Lateral profiles** are quintic Hermite transitions in ``s`` (see :class:`LateralIndex`).
* **Rollout arithmetic.** :func:`rollout_kernel` advances a block of :data:`LANES` candidates
  together, so that the compiler vectorises the step over them: the branches are selects and
  ``sin``, ``cos``, ``tan`` and ``atan`` are the branch-free Cephes polynomials of
  :func:`sincos` and :func:`arctan` (within a few units in the last place of the C library's);
  segment parameters multiply by precomputed reciprocals of the grid segments' squared lengths,
  and the compiler may fuse ``a·b + c`` into one rounding (``fastmath={"contract"}`` only).
"""

from __future__ import annotations

import math
from enum import IntEnum

import numba
import numpy as np
import numpy.typing as npt

from kaido.planning.types import TrajIndex
from kaido.scene.forecast import ModeIndex

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

GAP_EPS = 1e-3
"""[m] a stop target closer than this counts as reached: the profile brakes to a standstill."""

MIN_DESIRED_SPEED = 0.1
"""[m/s] floor of an IDM desired speed (the free-road term divides by it)."""

MIN_IDM_GAP = 0.1
"""[m] floor of an IDM gap (the interaction term divides by it)."""

SEGMENT_EPS = 1e-12
"""[m²] floor of a grid segment's squared length."""


class ProfileIndex(IntEnum):
    """Columns of a longitudinal profile ``(M, T, len(ProfileIndex))``."""

    S = 0
    """[m] rear-axle arc length along the reference."""
    SPEED = 1
    """[m/s]"""
    ACCEL = 2
    """[m/s²] held over the step that starts at this point."""


class LateralIndex(IntEnum):
    """Columns of a lateral profile ``(N, len(LateralIndex))``.

    The offset [m] (left positive) at arc length ``s`` is, with ``u = clip((s - S_START) /
    LENGTH, 0, 1)``::

        d(s) = D_START·(1 - 10u³ + 15u⁴ - 6u⁵) + SLOPE_START·LENGTH·(u - 6u³ + 8u⁴ - 3u⁵)
               + D_TARGET·(10u³ - 15u⁴ + 6u⁵)

    the quintic with ``d = D_START``, ``d' = SLOPE_START``, ``d'' = 0`` at ``S_START`` and
    ``d = D_TARGET``, ``d' = d'' = 0`` from ``S_START + LENGTH`` on.
    """

    D_START = 0
    """[m]"""
    SLOPE_START = 1
    """[m/m] dd/ds at the start."""
    D_TARGET = 2
    """[m]"""
    S_START = 3
    """[m]"""
    LENGTH = 4
    """[m] > 0."""


class AgentPathIndex(IntEnum):
    """Columns of agents projected on the reference grid ``(A, T, len(AgentPathIndex))``."""

    S = 0
    """[m] arc length of the box centre's projection."""
    D = 1
    """[m] signed lateral offset of the box centre (left positive)."""
    SPEED = 2
    """[m/s] speed along the reference (negative when driving against it)."""
    HALF_EXTENT = 3
    """[m] half the box's extent along the reference."""


class StartIndex(IntEnum):
    """Entries of the rollout's start state ``(len(StartIndex),)``."""

    X = 0
    """[m] rear axle."""
    Y = 1
    """[m] rear axle."""
    YAW = 2
    """[rad]"""
    SPEED = 3
    """[m/s] >= 0."""
    STEER = 4
    """[rad] road-wheel angle, left positive, within the steering limit."""


class SpeedProfileParam(IntEnum):
    """Entries of :func:`speed_profiles_kernel`'s ``params``."""

    DT = 0
    """[s] time step."""
    ACCEL_MIN = 1
    """[m/s²] strongest deceleration (negative)."""
    ACCEL_MAX = 2
    """[m/s²] strongest acceleration."""
    TIME_CONSTANT = 3
    """[s] the profile accelerates by (target speed - speed) / TIME_CONSTANT, clipped."""
    STOP_DECEL = 4
    """[m/s²] a stop profile brakes along the constant-deceleration curve to its target once
    that takes at least this deceleration."""
    SETTLE_ACCEL = 5
    """[m/s²] the profile changes speed at least this fast (but without overshooting in a
    step) until it reaches its target speed, so it settles in finite time."""


class IdmParam(IntEnum):
    """Entries of :func:`idm_profiles_kernel`'s ``params``."""

    DT = 0
    """[s] time step."""
    ACCEL_MIN = 1
    """[m/s²] strongest deceleration (negative)."""
    ACCEL_MAX = 2
    """[m/s²] strongest acceleration."""
    IDM_ACCEL = 3
    """[m/s²] IDM maximum acceleration ``a``."""
    IDM_DECEL = 4
    """[m/s²] IDM comfortable deceleration ``b`` (positive)."""
    TIME_HEADWAY = 5
    """[s] IDM desired time headway ``T``."""
    MIN_GAP = 6
    """[m] IDM standstill gap ``s0``."""
    LANE_HALF_WIDTH = 7
    """[m] an agent leads when |its offset| < LANE_HALF_WIDTH + its half width."""
    FRONT_DISTANCE = 8
    """[m] ego rear axle to front bumper."""
    CENTER_DISTANCE = 9
    """[m] ego rear axle to box centre: an agent leads when its centre is farther ahead."""


class RolloutParam(IntEnum):
    """Entries of :func:`rollout_kernel`'s ``params``."""

    DT = 0
    """[s] time step."""
    WHEELBASE = 1
    """[m]"""
    MAX_STEER = 2
    """[rad] road-wheel angle limit."""
    MAX_STEER_RATE = 3
    """[rad/s] road-wheel angle rate limit."""
    ACCEL_MIN = 4
    """[m/s²] strongest deceleration (negative)."""
    ACCEL_MAX = 5
    """[m/s²] strongest acceleration."""
    LOOKAHEAD_GAIN = 6
    """[s] pure-pursuit lookahead = max(MIN_LOOKAHEAD, LOOKAHEAD_GAIN · speed)."""
    MIN_LOOKAHEAD = 7
    """[m]"""
    SPEED_GAIN = 8
    """[1/s] acceleration per m/s of speed error."""
    POSITION_GAIN = 9
    """[1/s²] acceleration per metre of arc-length error."""
    STOP_DECEL = 10
    """[m/s²] a candidate with an arc-length limit brakes at least along the constant-deceleration
    curve to it once that takes at least this deceleration."""
    STANDSTILL_SPEED = 11
    """[m/s] once its profile is at rest (speed 0, acceleration <= 0) a candidate slower than
    this brakes to a standstill (instead of creeping up to the profile's position)."""


_PROFILEINDEX_LEN = len(ProfileIndex)
_AGENTPATHINDEX_LEN = len(AgentPathIndex)
_TRAJINDEX_LEN = len(TrajIndex)

LANES = 32
"""Candidates advanced together by :func:`rollout_kernel` (a speed knob; results do not change)."""


# -- branch-free elementary functions (Cephes), so that loops over candidates vectorise ----------

_FOUR_OVER_PI = 1.27323954473516268615
_DP1 = 7.85398125648498535156e-1  # pi / 4 in three parts (Cephes sin.c)
_DP2 = 3.77489470793079817668e-8
_DP3 = 2.69515142907905952645e-15
_TAN_3PI_8 = 2.41421356237309504880
_MOREBITS = 6.123233995736765886130e-17
_HALF_PI = 0.5 * math.pi
_QUARTER_PI = 0.25 * math.pi


@numba.njit(cache=True, inline="always", error_model="numpy")
def _sin_series(z: float, zz: float) -> float:
    """sin(z) for |z| <= pi/4 (``zz = z²``)."""
    p = 1.58962301576546568060e-10 * zz - 2.50507477628578072866e-8
    p = p * zz + 2.75573136213857245213e-6
    p = p * zz - 1.98412698295895385996e-4
    p = p * zz + 8.33333333332211858878e-3
    p = p * zz - 1.66666666666666307295e-1
    return z + z * zz * p


@numba.njit(cache=True, inline="always", error_model="numpy")
def _cos_series(zz: float) -> float:
    """cos(z) for |z| <= pi/4 (``zz = z²``)."""
    p = -1.13585365213876817300e-11 * zz + 2.08757008419747316778e-9
    p = p * zz - 2.75573141792967388112e-7
    p = p * zz + 2.48015872888517045348e-5
    p = p * zz - 1.38888888888730564116e-3
    p = p * zz + 4.16666666666665929218e-2
    return 1.0 - 0.5 * zz + zz * zz * p


@numba.njit(cache=True, inline="always", error_model="numpy")
def sincos(x: float) -> tuple[float, float]:
    """``(sin x, cos x)`` without branches (Cephes: reduction by pi/4 in three parts, then a
    polynomial); within a few ulp of ``math.sin``/``math.cos`` for ``|x| < 1e6``."""
    ax = abs(x)
    y = float(np.floor(ax * _FOUR_OVER_PI))
    y += y - 2.0 * float(np.floor(0.5 * y))  # odd octants round up: y in {0, 2, 4, 6, ...}
    octant = y - 8.0 * float(np.floor(0.125 * y))
    z = ((ax - y * _DP1) - y * _DP2) - y * _DP3
    zz = z * z
    sz = _sin_series(z, zz)
    cz = _cos_series(zz)
    swap = (octant == 2.0) | (octant == 6.0)
    s = cz if swap else sz
    c = sz if swap else cz
    s = -s if (octant >= 4.0) ^ (x < 0.0) else s
    c = -c if (octant == 2.0) | (octant == 4.0) else c
    return s, c


@numba.njit(cache=True, inline="always", error_model="numpy")
def arctan(x: float) -> float:
    """``atan x`` without branches (Cephes atan.c); within a few ulp of ``math.atan``."""
    ax = abs(x)
    big = ax > _TAN_3PI_8
    mid = (ax > 0.66) & (ax <= _TAN_3PI_8)
    num = -1.0 if big else (ax - 1.0 if mid else ax)
    den = ax if big else (ax + 1.0 if mid else 1.0)
    r = num / den
    base = _HALF_PI if big else (_QUARTER_PI if mid else 0.0)
    extra = _MOREBITS if big else (0.5 * _MOREBITS if mid else 0.0)
    zz = r * r
    p = -8.750608600031904122785e-1 * zz - 1.615753718733365076637e1
    p = p * zz - 7.500855792314704667340e1
    p = p * zz - 1.228866684490136173410e2
    p = p * zz - 6.485021904942025371773e1
    q = zz + 2.485846490142306297962e1
    q = q * zz + 1.650270098316988542046e2
    q = q * zz + 4.328810604912902668951e2
    q = q * zz + 4.853903996359136964868e2
    q = q * zz + 1.945506571482613964425e2
    out = base + (r * (zz * p / q) + r + extra)
    return -out if x < 0.0 else out


@numba.njit(cache=True, inline="always", error_model="numpy")
def sincos_small(x: float) -> tuple[float, float]:
    """``(sin x, cos x)`` for ``|x| <= pi/4`` (no reduction)."""
    zz = x * x
    return _sin_series(x, zz), _cos_series(zz)


@numba.njit(cache=True, inline="always", error_model="numpy")
def sinc_small(x: float) -> float:
    """``sin(x) / x`` (1 at 0) for ``|x| <= pi/4``."""
    zz = x * x
    p = 1.58962301576546568060e-10 * zz - 2.50507477628578072866e-8
    p = p * zz + 2.75573136213857245213e-6
    p = p * zz - 1.98412698295895385996e-4
    p = p * zz + 8.33333333332211858878e-3
    p = p * zz - 1.66666666666666307295e-1
    return 1.0 + zz * p


class _Lane(IntEnum):
    """Rows of :func:`rollout_kernel`'s per-block state ``(len(_Lane), LANES)``."""

    X = 0
    Y = 1
    YAW = 2
    SPEED = 3
    STEER = 4
    COS = 5
    SIN = 6
    S = 7
    S_AHEAD = 8
    CENTRE_X = 9
    CENTRE_Y = 10
    NORMAL_X = 11
    NORMAL_Y = 12
    S_REF = 13
    V_REF = 14
    A_REF = 15
    D_START = 16
    SLOPE = 17
    D_TARGET = 18
    S_START = 19
    LENGTH = 20
    INV_LENGTH = 21
    S_LIMIT = 22
    ACCEL = 23
    CURVATURE = 24
    PREV_X = 25
    PREV_Y = 26
    PREV_YAW = 27
    PREV_COS = 28
    PREV_SIN = 29
    LIMITED = 30
    FREE = 31
    DISTANCE = 32
    WIDE_TURN = 33


_L_X = int(_Lane.X)
_L_Y = int(_Lane.Y)
_L_YAW = int(_Lane.YAW)
_L_V = int(_Lane.SPEED)
_L_STEER = int(_Lane.STEER)
_L_C = int(_Lane.COS)
_L_SN = int(_Lane.SIN)
_L_S = int(_Lane.S)
_L_S_AHEAD = int(_Lane.S_AHEAD)
_L_CX = int(_Lane.CENTRE_X)
_L_CY = int(_Lane.CENTRE_Y)
_L_NX = int(_Lane.NORMAL_X)
_L_NY = int(_Lane.NORMAL_Y)
_L_S_REF = int(_Lane.S_REF)
_L_V_REF = int(_Lane.V_REF)
_L_A_REF = int(_Lane.A_REF)
_L_D_START = int(_Lane.D_START)
_L_SLOPE = int(_Lane.SLOPE)
_L_D_TARGET = int(_Lane.D_TARGET)
_L_S_START = int(_Lane.S_START)
_L_LENGTH = int(_Lane.LENGTH)
_L_INV_LENGTH = int(_Lane.INV_LENGTH)
_L_S_LIMIT = int(_Lane.S_LIMIT)
_L_ACCEL = int(_Lane.ACCEL)
_L_CURV = int(_Lane.CURVATURE)
_L_PX = int(_Lane.PREV_X)
_L_PY = int(_Lane.PREV_Y)
_L_PYAW = int(_Lane.PREV_YAW)
_L_PC = int(_Lane.PREV_COS)
_L_PSN = int(_Lane.PREV_SIN)
_L_LIMITED = int(_Lane.LIMITED)
_L_FREE = int(_Lane.FREE)
_L_DS = int(_Lane.DISTANCE)
_L_WIDE = int(_Lane.WIDE_TURN)
_LANE_ROWS = len(_Lane)


# -- shared helpers ------------------------------------------------------------------------------


@numba.njit(cache=True, inline="always", error_model="numpy")
def advance(v: float, a: float, dt: float) -> tuple[float, float, float]:
    """``(reported accel, distance, new speed)`` of one step holding ``a`` from speed ``v >= 0``."""
    vn = v + a * dt
    if vn <= 0.0:
        ds = v * v / (-2.0 * a) if a < 0.0 else 0.0
        return -v / dt, ds, 0.0
    return a, v * dt + 0.5 * a * dt * dt, vn


@numba.njit(cache=True, error_model="numpy")
def segment_table(grid_xy: FloatArray) -> FloatArray:
    """``(G - 1, 4)`` per grid segment: its start ``x0, y0`` and its direction divided by its
    squared length (at least :data:`SEGMENT_EPS`), so that a point's segment parameter is
    ``(px - x0)·a + (py - y0)·b``."""
    out = np.empty((grid_xy.shape[0] - 1, 4))
    for j in range(out.shape[0]):
        ex = grid_xy[j + 1, 0] - grid_xy[j, 0]
        ey = grid_xy[j + 1, 1] - grid_xy[j, 1]
        den = max(ex * ex + ey * ey, SEGMENT_EPS)
        out[j, 0] = grid_xy[j, 0]
        out[j, 1] = grid_xy[j, 1]
        out[j, 2] = ex / den
        out[j, 3] = ey / den
    return out


@numba.njit(cache=True, inline="always", error_model="numpy")
def _segment_param(table: FloatArray, seg: int, px: float, py: float) -> float:
    return (px - table[seg, 0]) * table[seg, 2] + (py - table[seg, 1]) * table[seg, 3]


@numba.njit(cache=True, inline="always", error_model="numpy")
def walk_projection(table: FloatArray, seg: int, px: float, py: float) -> tuple[int, float]:
    """``(segment, clamped parameter)`` of ``(px, py)`` walking from segment ``seg`` of the
    grid's :func:`segment_table`."""
    last = table.shape[0] - 1
    seg = min(max(seg, 0), last)
    u = _segment_param(table, seg, px, py)
    moved = False
    while u > 1.0 and seg < last:
        seg += 1
        u = _segment_param(table, seg, px, py)
        moved = True
    if not moved:
        while u < 0.0 and seg > 0:
            seg -= 1
            u = _segment_param(table, seg, px, py)
    if seg > 0:
        u = max(u, 0.0)
    if seg < last:
        u = min(u, 1.0)
    return seg, u


@numba.njit(cache=True, inline="always", error_model="numpy")
def value_at(values: FloatArray, grid_s0: float, grid_ds: float, s: float) -> float:
    """Linear interpolation of per-grid-point ``values`` ``(G,)``, constant beyond the ends."""
    last = values.shape[0] - 2
    f = (s - grid_s0) / grid_ds
    i = min(max(int(math.floor(f)), 0), last)
    u = min(max(f - i, 0.0), 1.0)
    return values[i] + u * (values[i + 1] - values[i])


@numba.njit(cache=True, inline="always", error_model="numpy")
def _arc_step(
    x: float,
    y: float,
    yaw: float,
    c: float,
    sn: float,
    half: float,
    sh: float,
    ch: float,
    chord: float,
) -> tuple[float, float, float, float, float]:
    """The pose after an arc turning by ``2·half`` [rad] with chord ``chord`` [m] from
    ``(x, y, yaw)`` (heading ``(c, sn)``); ``sh, ch = sin, cos(half)``. Yaw wraps to [-π, π)."""
    mid_c = c * ch - sn * sh
    mid_s = sn * ch + c * sh
    yaw = yaw + 2.0 * half
    yaw = yaw - 2.0 * math.pi if yaw >= math.pi else yaw
    yaw = yaw + 2.0 * math.pi if yaw < -math.pi else yaw
    return (
        x + chord * mid_c,
        y + chord * mid_s,
        yaw,
        mid_c * ch - mid_s * sh,
        mid_s * ch + mid_c * sh,
    )  # fmt: skip


# -- kernels -------------------------------------------------------------------------------------


@numba.njit(cache=True, error_model="numpy")
def unwrap_kernel(angles: FloatArray) -> FloatArray:
    """``numpy.unwrap`` of ``angles`` ``(P,)`` [rad] (period 2π): jumps beyond π become their
    2π complements (a jump of exactly π keeps its sign), accumulated along the array."""
    out = np.empty_like(angles)
    if angles.shape[0] == 0:
        return out
    out[0] = angles[0]
    correction = 0.0
    for i in range(1, angles.shape[0]):
        jump = angles[i] - angles[i - 1]
        wrapped = (jump + math.pi) % (2.0 * math.pi) - math.pi
        if wrapped == -math.pi and jump > 0.0:
            wrapped = math.pi
        if not abs(jump) < math.pi:
            correction += wrapped - jump
        out[i] = angles[i] + correction
    return out


@numba.njit(cache=True, inline="always", error_model="numpy")
def _interp_at(x: float, xp: FloatArray, fp: FloatArray, j: int) -> float:
    """``numpy.interp(x, xp, fp)`` given ``j`` = the number of ``xp`` at or below ``x`` minus 1
    (-1 before ``xp[0]``), with NumPy's rules at the ends and for non-finite values."""
    last = xp.shape[0] - 1
    if j < 0:
        return fp[0]
    if j >= last:
        return fp[last]
    if xp[j] == x:
        return fp[j]
    slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
    out = slope * (x - xp[j]) + fp[j]
    if math.isnan(out):
        out = slope * (x - xp[j + 1]) + fp[j + 1]
        if math.isnan(out) and fp[j] == fp[j + 1]:
            out = fp[j]
    return out


@numba.njit(cache=True, error_model="numpy")
def reference_grid_kernel(
    path: FloatArray,
    path_s: FloatArray,
    speed_limits: FloatArray,
    left_offsets: FloatArray,
    right_offsets: FloatArray,
    s_from: float,
    ds: float,
    count: int,
    smoothing_window: int,
    curve_lateral_accel: float,
    comfort_decel: float,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """The reference grid of ``kaido.planning.candidates.build_reference_grid`` (its NumPy
    reference): ``count`` points ``ds`` [m] apart from arc length ``s_from`` along the path
    ``(P, 3)`` [x, y, yaw] with arc lengths ``path_s`` ``(P,)``.

    Positions and (unwrapped) yaws are interpolated linearly in ``s`` and continue straight
    along the end yaws beyond the path; normals come from the yaws. The speed cap is the
    interpolated limit, lowered to ``sqrt(curve_lateral_accel / |curvature|)`` (the yaw's
    gradient, smoothed by a centred moving average of ``smoothing_window`` points, odd, the
    ends repeated) and ahead of slower stretches (braking at ``comfort_decel`` [m/s²]).
    Returns ``xy`` ``(G, 2)``, ``normal`` ``(G, 2)``, ``speed_limit``, ``speed_cap``,
    ``left_offsets``, ``right_offsets`` ``(G,)``.
    """
    yaw_ref = unwrap_kernel(path[:, 2])
    last = path_s.shape[0] - 1
    xy = np.empty((count, 2))
    normal = np.empty((count, 2))
    limit = np.empty(count)
    left = np.empty(count)
    right = np.empty(count)
    yaw = np.empty(count)
    j = -1
    for i in range(count):
        s = s_from + ds * i
        while j < last and path_s[j + 1] <= s:
            j += 1
        if s < path_s[0]:
            along = s - path_s[0]
            xy[i, 0] = path[0, 0] + along * math.cos(yaw_ref[0])
            xy[i, 1] = path[0, 1] + along * math.sin(yaw_ref[0])
        elif s > path_s[last]:
            along = s - path_s[last]
            xy[i, 0] = path[last, 0] + along * math.cos(yaw_ref[last])
            xy[i, 1] = path[last, 1] + along * math.sin(yaw_ref[last])
        else:
            xy[i, 0] = _interp_at(s, path_s, path[:, 0], j)
            xy[i, 1] = _interp_at(s, path_s, path[:, 1], j)
        yaw[i] = _interp_at(s, path_s, yaw_ref, j)
        normal[i, 0] = -math.sin(yaw[i])
        normal[i, 1] = math.cos(yaw[i])
        limit[i] = _interp_at(s, path_s, speed_limits, j)
        left[i] = _interp_at(s, path_s, left_offsets, j)
        right[i] = _interp_at(s, path_s, right_offsets, j)
    # curvature: the yaw's gradient, then the moving average
    curvature = np.empty(count)
    curvature[0] = (yaw[1] - yaw[0]) / ds
    curvature[count - 1] = (yaw[count - 1] - yaw[count - 2]) / ds
    for i in range(1, count - 1):
        curvature[i] = (yaw[i + 1] - yaw[i - 1]) / (2.0 * ds)
    if smoothing_window > 1:
        half = smoothing_window // 2
        weight = 1.0 / smoothing_window
        smooth = np.empty(count)
        for i in range(count):
            total = 0.0
            for k in range(smoothing_window):
                total += curvature[min(max(i + k - half, 0), count - 1)] * weight
            smooth[i] = total
        curvature = smooth
    # the cap: curve limit, then anticipating slower stretches (backwards running minimum)
    brake = 2.0 * comfort_decel
    cap = np.empty(count)
    lowest = math.inf
    for i in range(count - 1, -1, -1):
        a = abs(curvature[i])
        curve_limit = math.sqrt(curve_lateral_accel / a) if a > 0.0 else math.inf
        local = min(limit[i], curve_limit)
        along = (s_from + ds * i) - s_from
        lowest = min(lowest, local * local + brake * along)
        cap[i] = math.sqrt(max(lowest - brake * along, 0.0))
    return xy, normal, limit, cap, left, right


@numba.njit(cache=True, error_model="numpy")
def project_pose_kernel(
    path: FloatArray, path_s: FloatArray, x: float, y: float, yaw: float
) -> tuple[float, float, float, int]:
    """The pose ``(x, y, yaw)`` projected on the path ``(P, 3)`` (arc lengths ``path_s``), as
    ``kaido.planning.candidates.project_on_path`` (its NumPy reference): the nearest segment
    among those heading within 90° of ``yaw`` (any when none does); returns ``(s, d,
    heading_error, segment)``."""
    seg_count = path.shape[0] - 1
    best = math.inf
    best_aligned = math.inf
    i_any = 0
    i_aligned = -1
    for j in range(seg_count):
        ex = path[j + 1, 0] - path[j, 0]
        ey = path[j + 1, 1] - path[j, 1]
        den = max(ex * ex + ey * ey, SEGMENT_EPS)
        rx = x - path[j, 0]
        ry = y - path[j, 1]
        u = min(max((rx * ex + ry * ey) / den, 0.0), 1.0)
        qx = path[j, 0] + u * ex - x
        qy = path[j, 1] + u * ey - y
        dist2 = qx * qx + qy * qy
        if dist2 < best:
            best = dist2
            i_any = j
        diff = yaw - math.atan2(ey, ex)
        if abs((diff + math.pi) % (2.0 * math.pi) - math.pi) < 0.5 * math.pi and (
            dist2 < best_aligned
        ):
            best_aligned = dist2
            i_aligned = j
    i = i_aligned if i_aligned >= 0 else i_any
    ex = path[i + 1, 0] - path[i, 0]
    ey = path[i + 1, 1] - path[i, 1]
    den = max(ex * ex + ey * ey, SEGMENT_EPS)
    rx = x - path[i, 0]
    ry = y - path[i, 1]
    t = (rx * ex + ry * ey) / den
    if i > 0:
        t = max(t, 0.0)
    if i < seg_count - 1:
        t = min(t, 1.0)
    s = path_s[i] + t * (path_s[i + 1] - path_s[i])
    d = (ex * ry - ey * rx) / math.sqrt(den)
    yaw_ref = unwrap_kernel(path[:, 2])
    j = -1
    while j < seg_count and path_s[j + 1] <= s:
        j += 1
    error = yaw - _interp_at(s, path_s, yaw_ref, j)
    return s, d, (error + math.pi) % (2.0 * math.pi) - math.pi, i


@numba.njit(cache=True, parallel=True, error_model="numpy")
def project_agents_kernel(
    grid_xy: FloatArray,
    grid_s0: float,
    grid_ds: float,
    states: FloatArray,
    sizes: FloatArray,
) -> FloatArray:
    """Agents' box-centre states ``states`` ``(A, T, len(ModeIndex))`` with box ``sizes``
    ``(A, 2)`` [length, width] projected on the grid: ``(A, T, len(AgentPathIndex))``.

    Each agent starts from the segment nearest its first state (first on ties) and walks.
    """
    num_agents, num_points = states.shape[0], states.shape[1]
    out = np.empty((num_agents, num_points, _AGENTPATHINDEX_LEN))
    num_segments = grid_xy.shape[0] - 1
    table = segment_table(grid_xy)
    for a in numba.prange(num_agents):
        px = states[a, 0, ModeIndex.X]
        py = states[a, 0, ModeIndex.Y]
        best = math.inf
        seg = 0
        for i in range(num_segments):
            u = min(max(_segment_param(table, i, px, py), 0.0), 1.0)
            qx = grid_xy[i, 0] + u * (grid_xy[i + 1, 0] - grid_xy[i, 0])
            qy = grid_xy[i, 1] + u * (grid_xy[i + 1, 1] - grid_xy[i, 1])
            dist2 = (px - qx) * (px - qx) + (py - qy) * (py - qy)
            if dist2 < best:
                best = dist2
                seg = i
        half_length = 0.5 * sizes[a, 0]
        half_width = 0.5 * sizes[a, 1]
        for k in range(num_points):
            px = states[a, k, ModeIndex.X]
            py = states[a, k, ModeIndex.Y]
            seg, u = walk_projection(table, seg, px, py)
            ex = grid_xy[seg + 1, 0] - grid_xy[seg, 0]
            ey = grid_xy[seg + 1, 1] - grid_xy[seg, 1]
            length = math.sqrt(max(ex * ex + ey * ey, SEGMENT_EPS))
            tx = ex / length
            ty = ey / length
            rx = px - grid_xy[seg, 0]
            ry = py - grid_xy[seg, 1]
            c = math.cos(states[a, k, ModeIndex.YAW])
            s = math.sin(states[a, k, ModeIndex.YAW])
            cos_rel = tx * c + ty * s
            sin_rel = tx * s - ty * c
            out[a, k, AgentPathIndex.S] = grid_s0 + (seg + u) * grid_ds
            out[a, k, AgentPathIndex.D] = tx * ry - ty * rx
            out[a, k, AgentPathIndex.SPEED] = states[a, k, ModeIndex.SPEED] * cos_rel
            out[a, k, AgentPathIndex.HALF_EXTENT] = (
                abs(cos_rel) * half_length + abs(sin_rel) * half_width
            )
    return out


@numba.njit(cache=True, parallel=True, error_model="numpy")
def speed_profiles_kernel(
    speed_cap: FloatArray,
    grid_s0: float,
    grid_ds: float,
    s0: float,
    v0: float,
    fractions: FloatArray,
    s_targets: FloatArray,
    params: FloatArray,
    num_points: int,
) -> FloatArray:
    """Longitudinal profiles ``(M, T, len(ProfileIndex))`` from ``(s0, v0)``.

    Profile ``m`` heads for ``fractions[m]`` × the speed cap ``speed_cap`` ``(G,)`` [m/s] at its
    current arc length, accelerating by the speed error over
    :attr:`SpeedProfileParam.TIME_CONSTANT` (at least :attr:`SpeedProfileParam.SETTLE_ACCEL`
    without overshooting the target within the step; clipped to the acceleration limits). Where
    ``s_targets[m]`` [m] is finite it is a stop profile: once stopping at the target takes at
    least :attr:`SpeedProfileParam.STOP_DECEL` it brakes along the constant-deceleration curve
    that ends exactly there (clipped to the limits: a target too close is overshot), and within
    :data:`GAP_EPS` of the target it brakes to a standstill.
    """
    dt = params[SpeedProfileParam.DT]
    accel_min = params[SpeedProfileParam.ACCEL_MIN]
    accel_max = params[SpeedProfileParam.ACCEL_MAX]
    tau = params[SpeedProfileParam.TIME_CONSTANT]
    stop_decel = params[SpeedProfileParam.STOP_DECEL]
    settle = params[SpeedProfileParam.SETTLE_ACCEL]
    num_profiles = fractions.shape[0]
    out = np.empty((num_profiles, num_points, _PROFILEINDEX_LEN))
    for m in numba.prange(num_profiles):
        s = s0
        v = v0
        target = s_targets[m]
        for k in range(num_points):
            error = fractions[m] * value_at(speed_cap, grid_s0, grid_ds, s) - v
            a = error / tau
            if abs(a) < settle:
                a = min(settle, abs(error) / dt)
                if error < 0.0:
                    a = -a
            if math.isfinite(target):
                gap = target - s
                if gap <= GAP_EPS:
                    a = accel_min
                else:
                    need = -v * v / (2.0 * gap)
                    if need <= -stop_decel:
                        a = min(a, need)
            a = min(max(a, accel_min), accel_max)
            a, ds, vn = advance(v, a, dt)
            out[m, k, ProfileIndex.S] = s
            out[m, k, ProfileIndex.SPEED] = v
            out[m, k, ProfileIndex.ACCEL] = a
            s += ds
            v = vn
    return out


@numba.njit(cache=True, error_model="numpy")
def idm_profiles_kernel(
    speed_cap: FloatArray,
    grid_s0: float,
    grid_ds: float,
    s0: float,
    v0: float,
    fractions: FloatArray,
    agents: FloatArray,
    agent_half_widths: FloatArray,
    stop_fronts: FloatArray,
    params: FloatArray,
    num_points: int,
) -> FloatArray:
    """Intelligent-driver-model profiles ``(M, T, len(ProfileIndex))`` from ``(s0, v0)``.

    Profile ``m`` desires ``fractions[m]`` × the speed cap at its arc length (at least
    :data:`MIN_DESIRED_SPEED`) and follows, at every step ``k``, the nearest leader: an agent of
    ``agents`` ``(A, T, len(AgentPathIndex))`` (projected states at step ``k``) whose |offset| is
    below the lane half width plus its half width ``agent_half_widths`` ``(A,)`` and whose centre
    is ahead of the ego's box centre (gap: its rear to the ego's front bumper; its speed along the
    reference, at least 0), or a standing obstacle at each of ``stop_fronts`` ``(S,)`` [m] (gap:
    ``stop_front - front bumper + MIN_GAP``, so the IDM's standstill puts the front bumper on the
    stop front). IDM: ``a = A (1 - (v/v0)⁴ - (s*/gap)²)``, ``s* = s0 + max(0, v T + v Δv /
    (2 √(A B)))``, clipped to the acceleration limits.
    """
    dt = params[IdmParam.DT]
    accel_min = params[IdmParam.ACCEL_MIN]
    accel_max = params[IdmParam.ACCEL_MAX]
    idm_accel = params[IdmParam.IDM_ACCEL]
    idm_decel = params[IdmParam.IDM_DECEL]
    headway = params[IdmParam.TIME_HEADWAY]
    min_gap = params[IdmParam.MIN_GAP]
    lane_half_width = params[IdmParam.LANE_HALF_WIDTH]
    front_distance = params[IdmParam.FRONT_DISTANCE]
    center_distance = params[IdmParam.CENTER_DISTANCE]
    brake_term = 2.0 * math.sqrt(idm_accel * idm_decel)
    num_profiles = fractions.shape[0]
    num_agents = agents.shape[0]
    out = np.empty((num_profiles, num_points, _PROFILEINDEX_LEN))
    for m in range(num_profiles):
        s = s0
        v = v0
        for k in range(num_points):
            desired = max(
                fractions[m] * value_at(speed_cap, grid_s0, grid_ds, s), MIN_DESIRED_SPEED
            )
            front = s + front_distance
            centre = s + center_distance
            gap = math.inf
            lead_speed = 0.0
            for j in range(num_agents):
                sa = agents[j, k, AgentPathIndex.S]
                if (
                    abs(agents[j, k, AgentPathIndex.D]) < lane_half_width + agent_half_widths[j]
                    and sa > centre
                ):
                    g = sa - agents[j, k, AgentPathIndex.HALF_EXTENT] - front
                    if g < gap:
                        gap = g
                        lead_speed = max(agents[j, k, AgentPathIndex.SPEED], 0.0)
            for j in range(stop_fronts.shape[0]):
                g = stop_fronts[j] - front + min_gap
                if g < gap:
                    gap = g
                    lead_speed = 0.0
            ratio = v / desired
            a = 1.0 - ratio * ratio * ratio * ratio
            if math.isfinite(gap):
                wanted = min_gap + max(0.0, v * headway + v * (v - lead_speed) / brake_term)
                q = wanted / max(gap, MIN_IDM_GAP)
                a -= q * q
            a = min(max(idm_accel * a, accel_min), accel_max)
            a, ds, vn = advance(v, a, dt)
            out[m, k, ProfileIndex.S] = s
            out[m, k, ProfileIndex.SPEED] = v
            out[m, k, ProfileIndex.ACCEL] = a
            s += ds
            v = vn
    return out


@numba.njit(cache=True, error_model="numpy", fastmath={"contract"})
def _rollout_block(
    n0: int,
    count: int,
    grid_xy: FloatArray,
    grid_normal: FloatArray,
    grid_s0: float,
    grid_ds: float,
    table: FloatArray,
    start_segment: int,
    start: FloatArray,
    yaw0: float,
    lateral: FloatArray,
    profile_index: IntArray,
    profiles: FloatArray,
    s_limits: FloatArray,
    params: FloatArray,
    out: FloatArray,
) -> None:
    """:func:`rollout_kernel` for candidates ``n0 .. n0 + count - 1`` (one block of at most
    :data:`LANES`; ``yaw0`` the start yaw wrapped), writing their rows of ``out``."""
    dt = params[RolloutParam.DT]
    wheelbase = params[RolloutParam.WHEELBASE]
    max_steer = params[RolloutParam.MAX_STEER]
    max_step = params[RolloutParam.MAX_STEER_RATE] * dt
    accel_min = params[RolloutParam.ACCEL_MIN]
    accel_max = params[RolloutParam.ACCEL_MAX]
    gain = params[RolloutParam.LOOKAHEAD_GAIN]
    min_lookahead = params[RolloutParam.MIN_LOOKAHEAD]
    speed_gain = params[RolloutParam.SPEED_GAIN]
    position_gain = params[RolloutParam.POSITION_GAIN]
    stop_decel = params[RolloutParam.STOP_DECEL]
    standstill = params[RolloutParam.STANDSTILL_SPEED]
    num_points = profiles.shape[1]
    last = grid_xy.shape[0] - 2
    sin0, cos0 = sincos(yaw0)
    st = np.empty((_LANE_ROWS, LANES))
    segment = np.empty(LANES, np.int64)
    profile = np.empty(LANES, np.int64)
    for i in range(LANES):
        n = n0 + min(i, count - 1)  # lanes past the end repeat the last candidate
        st[_L_X, i] = start[StartIndex.X]
        st[_L_Y, i] = start[StartIndex.Y]
        st[_L_YAW, i] = yaw0
        st[_L_V, i] = start[StartIndex.SPEED]
        st[_L_STEER, i] = start[StartIndex.STEER]
        st[_L_C, i] = cos0
        st[_L_SN, i] = sin0
        st[_L_D_START, i] = lateral[n, LateralIndex.D_START]
        st[_L_SLOPE, i] = lateral[n, LateralIndex.SLOPE_START]
        st[_L_D_TARGET, i] = lateral[n, LateralIndex.D_TARGET]
        st[_L_S_START, i] = lateral[n, LateralIndex.S_START]
        st[_L_LENGTH, i] = lateral[n, LateralIndex.LENGTH]
        st[_L_INV_LENGTH, i] = 1.0 / lateral[n, LateralIndex.LENGTH]
        st[_L_S_LIMIT, i] = s_limits[n]
        segment[i] = start_segment
        profile[i] = profile_index[n]
    for k in range(num_points):
        # scalar pass: projection, lookahead point, profile references, state output
        for i in range(LANES):
            x = st[_L_X, i]
            y = st[_L_Y, i]
            seg, u = walk_projection(table, segment[i], x, y)
            segment[i] = seg
            s = grid_s0 + (seg + u) * grid_ds
            s_ahead = s + max(min_lookahead, gain * st[_L_V, i])
            f = (s_ahead - grid_s0) / grid_ds
            g = min(max(int(math.floor(f)), 0), last)
            w = f - g
            st[_L_S, i] = s
            st[_L_S_AHEAD, i] = s_ahead
            st[_L_CX, i] = grid_xy[g, 0] + w * (grid_xy[g + 1, 0] - grid_xy[g, 0])
            st[_L_CY, i] = grid_xy[g, 1] + w * (grid_xy[g + 1, 1] - grid_xy[g, 1])
            st[_L_NX, i] = grid_normal[g, 0] + w * (grid_normal[g + 1, 0] - grid_normal[g, 0])
            st[_L_NY, i] = grid_normal[g, 1] + w * (grid_normal[g + 1, 1] - grid_normal[g, 1])
            m = profile[i]
            st[_L_S_REF, i] = profiles[m, k, ProfileIndex.S]
            st[_L_V_REF, i] = profiles[m, k, ProfileIndex.SPEED]
            st[_L_A_REF, i] = profiles[m, k, ProfileIndex.ACCEL]
            if i < count:
                n = n0 + i
                out[n, k, TrajIndex.X] = x
                out[n, k, TrajIndex.Y] = y
                out[n, k, TrajIndex.YAW] = st[_L_YAW, i]
                out[n, k, TrajIndex.SPEED] = st[_L_V, i]
        # branch-free pass over the block
        for i in range(LANES):
            x = st[_L_X, i]
            y = st[_L_Y, i]
            v = st[_L_V, i]
            steer = st[_L_STEER, i]
            c = st[_L_C, i]
            sn = st[_L_SN, i]
            s = st[_L_S, i]
            # lateral: pure pursuit on the offset path, wheel angle rate and range limited
            nx = st[_L_NX, i]
            ny = st[_L_NY, i]
            norm = math.sqrt(nx * nx + ny * ny)
            length = st[_L_LENGTH, i]
            u = min(max((st[_L_S_AHEAD, i] - st[_L_S_START, i]) * st[_L_INV_LENGTH, i], 0.0), 1.0)
            u3 = u * u * u
            rise = u3 * (10.0 - 15.0 * u + 6.0 * u * u)
            h1 = u - u3 * (6.0 - 8.0 * u + 3.0 * u * u)
            d = (
                st[_L_D_START, i] * (1.0 - rise)
                + st[_L_SLOPE, i] * length * h1
                + st[_L_D_TARGET, i] * rise
            )
            inv_norm = 1.0 / norm
            dx = st[_L_CX, i] + d * (nx * inv_norm) - x
            dy = st[_L_CY, i] + d * (ny * inv_norm) - y
            local_x = c * dx + sn * dy
            local_y = -sn * dx + c * dy
            pursuit = 2.0 * local_y / max(local_x * local_x + local_y * local_y, 1e-6)
            command = arctan(wheelbase * pursuit)
            free = (abs(command - steer) <= max_step) & (abs(command) <= max_steer)
            limited = steer + min(max(command - steer, -max_step), max_step)
            limited = min(max(limited, -max_steer), max_steer)
            sin_l, cos_l = sincos_small(limited)
            curvature = pursuit if free else sin_l / (cos_l * wheelbase)
            # longitudinal: profile tracking, arc-length limit, envelope
            a_ref = st[_L_A_REF, i]
            v_ref = st[_L_V_REF, i]
            a = a_ref + speed_gain * (v_ref - v) + position_gain * (st[_L_S_REF, i] - s)
            rest = (v_ref == 0.0) & (a_ref <= 0.0) & (v <= standstill)
            s_limit = st[_L_S_LIMIT, i]
            bounded = math.isfinite(s_limit)
            gap = s_limit - s
            need = -v * v / (2.0 * gap)
            passed = bounded & (gap <= 0.0)
            braking = bounded & (gap > 0.0) & (need <= -stop_decel)
            a = accel_min if rest | passed else (min(a, need) if braking else a)
            a = min(max(a, accel_min), accel_max)
            # advance (see the module docstring)
            vn = v + a * dt
            stopped = vn <= 0.0
            ds_stop = v * v / (-2.0 * a) if a < 0.0 else 0.0
            ds = ds_stop if stopped else v * dt + 0.5 * a * dt * dt
            st[_L_ACCEL, i] = -v / dt if stopped else a
            st[_L_CURV, i] = curvature
            st[_L_V, i] = 0.0 if stopped else vn
            st[_L_STEER, i] = command if free else limited
            # exact arc of constant curvature (turns beyond pi/2 are redone below)
            half = 0.5 * curvature * ds
            sh, ch = sincos_small(half)
            yaw = st[_L_YAW, i]
            st[_L_PX, i] = x
            st[_L_PY, i] = y
            st[_L_PYAW, i] = yaw
            st[_L_PC, i] = c
            st[_L_PSN, i] = sn
            st[_L_LIMITED, i] = limited
            st[_L_FREE, i] = 1.0 if free else 0.0
            st[_L_DS, i] = ds
            wide = (abs(half) > _QUARTER_PI) | ((not free) & (abs(limited) > _QUARTER_PI))
            st[_L_WIDE, i] = 1.0 if wide else 0.0
            x, y, yaw, c, sn = _arc_step(x, y, yaw, c, sn, half, sh, ch, ds * sinc_small(half))
            st[_L_X, i] = x
            st[_L_Y, i] = y
            st[_L_YAW, i] = yaw
            st[_L_C, i] = c
            st[_L_SN, i] = sn
        # the rare wide turn or wheel angle, with the library's functions
        for i in range(LANES):
            if st[_L_WIDE, i] == 0.0:
                continue
            curvature = st[_L_CURV, i]
            if st[_L_FREE, i] == 0.0:
                curvature = math.tan(st[_L_LIMITED, i]) / wheelbase
                st[_L_CURV, i] = curvature
            ds = st[_L_DS, i]
            half = 0.5 * curvature * ds
            sh = math.sin(half)
            chord = ds * sh / half if abs(half) > 1e-12 else ds
            x, y, yaw, c, sn = _arc_step(
                st[_L_PX, i], st[_L_PY, i], st[_L_PYAW, i], st[_L_PC, i], st[_L_PSN, i],
                half, sh, math.cos(half), chord,
            )  # fmt: skip
            st[_L_X, i] = x
            st[_L_Y, i] = y
            st[_L_YAW, i] = yaw
            st[_L_C, i] = c
            st[_L_SN, i] = sn
        for i in range(count):
            n = n0 + i
            out[n, k, TrajIndex.ACCEL] = st[_L_ACCEL, i]
            out[n, k, TrajIndex.CURVATURE] = st[_L_CURV, i]


@numba.njit(cache=True, parallel=True, error_model="numpy")
def rollout_kernel(
    grid_xy: FloatArray,
    grid_normal: FloatArray,
    grid_s0: float,
    grid_ds: float,
    start_segment: int,
    start: FloatArray,
    lateral: FloatArray,
    profile_index: IntArray,
    profiles: FloatArray,
    s_limits: FloatArray,
    params: FloatArray,
) -> FloatArray:
    """Roll every candidate out through a kinematic bicycle: ``(N, T, len(TrajIndex))``.

    Candidate ``n`` follows the offset path ``centre(s) + d(s)·normal(s)`` (``d`` from
    ``lateral[n]``, :class:`LateralIndex`) with pure pursuit from the rear axle (lookahead point
    at the rear axle's projected arc length plus the lookahead), and tracks the longitudinal
    profile ``profiles[profile_index[n]]`` with ``a = a_ref + SPEED_GAIN (v_ref - v) +
    POSITION_GAIN (s_ref - s)`` (see :attr:`RolloutParam.STANDSTILL_SPEED` for a profile at
    rest); where ``s_limits[n]`` [m] is finite the rear axle's arc length must not pass it (see
    :attr:`RolloutParam.STOP_DECEL`; at or past it the bicycle brakes fully). At every point
    the road-wheel angle moves towards the pure-pursuit command by at most ``MAX_STEER_RATE ·
    dt`` (from ``start[STEER]`` before the first point) within ``±MAX_STEER``, and the
    acceleration is clipped to ``[ACCEL_MIN, ACCEL_MAX]``; both are held over the step to the
    next point, integrated exactly (an arc of constant curvature: the pure-pursuit curvature
    when the command is within the limits, else ``tan(angle) / WHEELBASE``).
    Point ``k`` holds the state at ``k·dt`` and the acceleration and curvature held from it (the
    last point's are computed but not integrated). Yaw is wrapped to ``[-π, π)``.

    Blocks of :data:`LANES` candidates advance together: per step, a scalar pass finds each
    one's projection and lookahead point on the grid, then a branch-free pass over the block
    (vectorised) does the rest (see the module docstring for its arithmetic).
    """
    num_candidates = lateral.shape[0]
    num_points = profiles.shape[1]
    out = np.empty((num_candidates, num_points, _TRAJINDEX_LEN))
    if num_candidates == 0:
        return out
    table = segment_table(grid_xy)
    yaw0 = (start[StartIndex.YAW] + math.pi) % (2.0 * math.pi) - math.pi
    for block in numba.prange((num_candidates + LANES - 1) // LANES):
        n0 = block * LANES
        _rollout_block(
            n0, min(LANES, num_candidates - n0), grid_xy, grid_normal, grid_s0, grid_ds, table,
            start_segment, start, yaw0, lateral, profile_index, profiles, s_limits, params, out,
        )  # fmt: skip
    return out
