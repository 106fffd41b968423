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


# -- shared helpers ------------------------------------------------------------------------------


@numba.njit(cache=True, inline="always", error_model="numpy")
def advance(v: float, a: float, dt: float) -> tuple[float, float, float]:
    """``(reported accel, distance, new speed)`` of one step holding ``a`` from speed ``v >= 0``."""
    vn = v + a * dt
    if vn <= 0.0:
        ds = v * v / (-2.0 * a) if a < 0.0 else 0.0
        return -v / dt, ds, 0.0
    return a, v * dt + 0.5 * a * dt * dt, vn


@numba.njit(cache=True, inline="always", error_model="numpy")
def _segment_param(grid_xy: FloatArray, seg: int, px: float, py: float) -> float:
    ex = grid_xy[seg + 1, 0] - grid_xy[seg, 0]
    ey = grid_xy[seg + 1, 1] - grid_xy[seg, 1]
    den = max(ex * ex + ey * ey, SEGMENT_EPS)
    return ((px - grid_xy[seg, 0]) * ex + (py - grid_xy[seg, 1]) * ey) / den


@numba.njit(cache=True, inline="always", error_model="numpy")
def walk_projection(grid_xy: FloatArray, seg: int, px: float, py: float) -> tuple[int, float]:
    """``(segment, clamped parameter)`` of ``(px, py)`` walking from segment ``seg``."""
    last = grid_xy.shape[0] - 2
    seg = min(max(seg, 0), last)
    u = _segment_param(grid_xy, seg, px, py)
    moved = False
    while u > 1.0 and seg < last:
        seg += 1
        u = _segment_param(grid_xy, seg, px, py)
        moved = True
    if not moved:
        while u < 0.0 and seg > 0:
            seg -= 1
            u = _segment_param(grid_xy, seg, px, py)
    if seg > 0:
        u = max(u, 0.0)
    if seg < last:
        u = min(u, 1.0)
    return seg, u


@numba.njit(cache=True, inline="always", error_model="numpy")
def centre_at(
    grid_xy: FloatArray, grid_normal: FloatArray, grid_s0: float, grid_ds: float, s: float
) -> tuple[float, float, float, float]:
    """``(x, y, nx, ny)``: centreline point and unit left normal at arc length ``s``."""
    last = grid_xy.shape[0] - 2
    f = (s - grid_s0) / grid_ds
    i = min(max(int(math.floor(f)), 0), last)
    u = f - i
    x = grid_xy[i, 0] + u * (grid_xy[i + 1, 0] - grid_xy[i, 0])
    y = grid_xy[i, 1] + u * (grid_xy[i + 1, 1] - grid_xy[i, 1])
    nx = grid_normal[i, 0] + u * (grid_normal[i + 1, 0] - grid_normal[i, 0])
    ny = grid_normal[i, 1] + u * (grid_normal[i + 1, 1] - grid_normal[i, 1])
    norm = math.sqrt(nx * nx + ny * ny)
    return x, y, nx / norm, ny / norm


@numba.njit(cache=True, inline="always", error_model="numpy")
def value_at(values: FloatArray, grid_s0: float, grid_ds: float, s: float) -> float:
    """Linear interpolation of per-grid-point ``values`` ``(G,)``, constant beyond the ends."""
    last = values.shape[0] - 2
    f = (s - grid_s0) / grid_ds
    i = min(max(int(math.floor(f)), 0), last)
    u = min(max(f - i, 0.0), 1.0)
    return values[i] + u * (values[i + 1] - values[i])


@numba.njit(cache=True, inline="always", error_model="numpy")
def lateral_offset(
    d_start: float, slope: float, d_target: float, s_start: float, length: float, s: float
) -> float:
    """The quintic transition of :class:`LateralIndex` at arc length ``s``."""
    u = min(max((s - s_start) / length, 0.0), 1.0)
    u3 = u * u * u
    rise = u3 * (10.0 - 15.0 * u + 6.0 * u * u)
    h1 = u - u3 * (6.0 - 8.0 * u + 3.0 * u * u)
    return d_start * (1.0 - rise) + slope * length * h1 + d_target * rise


# -- kernels -------------------------------------------------------------------------------------


@numba.njit(cache=True, error_model="numpy")
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
    for a in range(num_agents):
        px = states[a, 0, ModeIndex.X]
        py = states[a, 0, ModeIndex.Y]
        best = math.inf
        seg = 0
        for i in range(num_segments):
            u = min(max(_segment_param(grid_xy, i, px, py), 0.0), 1.0)
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
            seg, u = walk_projection(grid_xy, seg, px, py)
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


@numba.njit(cache=True, error_model="numpy")
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
    for m in range(num_profiles):
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
    """
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
    num_candidates = lateral.shape[0]
    num_points = profiles.shape[1]
    out = np.empty((num_candidates, num_points, _TRAJINDEX_LEN))
    for n in numba.prange(num_candidates):
        d_start = lateral[n, LateralIndex.D_START]
        slope = lateral[n, LateralIndex.SLOPE_START]
        d_target = lateral[n, LateralIndex.D_TARGET]
        s_start = lateral[n, LateralIndex.S_START]
        length = lateral[n, LateralIndex.LENGTH]
        m = profile_index[n]
        s_limit = s_limits[n]
        x = start[StartIndex.X]
        y = start[StartIndex.Y]
        yaw = (start[StartIndex.YAW] + math.pi) % (2.0 * math.pi) - math.pi
        v = start[StartIndex.SPEED]
        steer = start[StartIndex.STEER]
        c = math.cos(yaw)
        sn = math.sin(yaw)
        seg = start_segment
        for k in range(num_points):
            seg, u = walk_projection(grid_xy, seg, x, y)
            s = grid_s0 + (seg + u) * grid_ds
            # lateral: pure pursuit on the offset path, wheel angle rate and range limited
            s_ahead = s + max(min_lookahead, gain * v)
            cx, cy, nx, ny = centre_at(grid_xy, grid_normal, grid_s0, grid_ds, s_ahead)
            d = lateral_offset(d_start, slope, d_target, s_start, length, s_ahead)
            dx = cx + d * nx - x
            dy = cy + d * ny - y
            local_x = c * dx + sn * dy
            local_y = -sn * dx + c * dy
            pursuit = 2.0 * local_y / max(local_x * local_x + local_y * local_y, 1e-6)
            command = math.atan(wheelbase * pursuit)
            if abs(command - steer) <= max_step and abs(command) <= max_steer:
                steer = command
                curvature = pursuit
            else:
                steer = steer + min(max(command - steer, -max_step), max_step)
                steer = min(max(steer, -max_steer), max_steer)
                curvature = math.tan(steer) / wheelbase
            # longitudinal: profile tracking, arc-length limit, envelope
            a_ref = profiles[m, k, ProfileIndex.ACCEL]
            v_ref = profiles[m, k, ProfileIndex.SPEED]
            a = (
                a_ref
                + speed_gain * (v_ref - v)
                + position_gain * (profiles[m, k, ProfileIndex.S] - s)
            )
            if v_ref == 0.0 and a_ref <= 0.0 and v <= standstill:
                a = accel_min
            elif math.isfinite(s_limit):
                gap = s_limit - s
                if gap <= 0.0:
                    a = accel_min
                else:
                    need = -v * v / (2.0 * gap)
                    if need <= -stop_decel:
                        a = min(a, need)
            a = min(max(a, accel_min), accel_max)
            a, ds, vn = advance(v, a, dt)
            out[n, k, TrajIndex.X] = x
            out[n, k, TrajIndex.Y] = y
            out[n, k, TrajIndex.YAW] = yaw
            out[n, k, TrajIndex.SPEED] = v
            out[n, k, TrajIndex.ACCEL] = a
            out[n, k, TrajIndex.CURVATURE] = curvature
            # exact arc of constant curvature
            half = 0.5 * curvature * ds
            ch = math.cos(half)
            sh = math.sin(half)
            chord = ds * sh / half if abs(half) > 1e-12 else ds
            mid_c = c * ch - sn * sh
            mid_s = sn * ch + c * sh
            x += chord * mid_c
            y += chord * mid_s
            yaw += 2.0 * half
            if yaw >= math.pi:
                yaw -= 2.0 * math.pi
            elif yaw < -math.pi:
                yaw += 2.0 * math.pi
            c = mid_c * ch - mid_s * sh
            sn = mid_s * ch + mid_c * sh
            v = vn
    return out
