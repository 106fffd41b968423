"""The minimum-risk trajectory: a controlled stop in lane, when the planner has nothing better.

:func:`minimum_risk_trajectory` brakes at a comfortable but firm constant deceleration
(``FallbackConfig.decel``, never beyond the envelope's ``-envelope_accel_min``) from the ego's
current speed to a standstill, and stays stopped until the end of the horizon:

``v(t) = max(v0 - a·t, 0)``, ``s(t) = v0·t_c - a·t_c²/2`` with ``t_c = min(t, v0/a)``,
``accel = -a`` while moving and 0 once stopped.

**Geometry.** With a reference path the stop follows the lane: the ego is projected onto the
reference (the nearest segment heading within ``max_heading_error`` of the ego's heading) and the
trajectory runs along the reference from there, its lateral offset ``d(s)`` decaying from the
ego's offset (and with the ego's heading error as initial slope) to the centreline by a cubic
Hermite blend over ``max(blend_distance, v0 · blend_time)`` metres. Beyond the reference's end it
continues straight along the last heading. Without a reference, or when the ego is farther than
``max_offset`` from it, the stop runs straight along the ego's current heading. Curvature is the
Frenet-to-Cartesian curvature of the offset curve (the reference's curvature taken piecewise
constant between its points).

**Degraded input.** Only the ego's pose and longitudinal speed are used. A non-finite pose raises
``ValueError`` (there is no place to stop at; the runtime handles it). A non-finite speed is taken
as 0: the trajectory is then a stop at the current position, which a tracking controller turns
into braking as firm as the envelope allows. A negative speed (rolling backwards) also gives a
stop where the ego is.

The first point is the ego's current pose, as for every trajectory of the planner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kaido.planning.types import PlannerConfig, ReferencePath, TrajIndex
from kaido.scene.agents import EgoState
from kaido.scene.geometry import wrap_angle
from kaido.scene.vehicle import VehicleProfile

__all__ = ["FallbackConfig", "minimum_risk_trajectory"]

FloatArray = npt.NDArray[np.float64]

_DENSE = 2001
"""Samples of the table that maps distance along an offset curve to reference distance."""


@dataclass(frozen=True)
class FallbackConfig:
    """Tuning of :func:`minimum_risk_trajectory`."""

    decel: float = 3.0
    """[m/s²] braking deceleration (> 0); limited to the profile's ``-envelope_accel_min``."""
    blend_distance: float = 15.0
    """[m] shortest distance over which a lateral offset from the reference decays."""
    blend_time: float = 2.0
    """[s] the blend distance is at least the initial speed × this."""
    max_offset: float = 4.0
    """[m] farther from the reference than this, the stop ignores it and runs straight."""
    max_heading_error: float = math.pi / 4
    """[rad] reference segments whose heading differs more from the ego's are not followed."""

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"FallbackConfig.{name}: expected a number, got {value!r}")
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"FallbackConfig.{name} must be finite and > 0, got {value}")
        if self.max_heading_error >= math.pi / 2:
            raise ValueError(
                f"FallbackConfig.max_heading_error must be < pi/2, got {self.max_heading_error}"
            )


def _project(
    reference: ReferencePath, x: float, y: float, yaw: float, config: FallbackConfig
) -> tuple[float, float, float] | None:
    """``(s, lateral, heading_error)`` of (x, y, yaw) on the reference, or None when it is too
    far or heads elsewhere. ``lateral`` is positive LEFT of the reference."""
    path = reference.path
    a = path[:-1, :2]
    seg = np.diff(path[:, :2], axis=0)
    length2 = np.sum(seg * seg, axis=1)
    valid = length2 > 1e-12
    heading = np.arctan2(seg[:, 1], seg[:, 0])
    agree = valid & (np.abs(wrap_angle(yaw - heading)) <= config.max_heading_error)
    if not np.any(agree):
        return None
    rel = np.array([x, y]) - a
    t = np.clip(np.einsum("ij,ij->i", rel, seg) / np.where(valid, length2, 1.0), 0.0, 1.0)
    foot = a + t[:, None] * seg
    dist2 = np.where(agree, np.sum((np.array([x, y]) - foot) ** 2, axis=1), np.inf)
    i = int(np.argmin(dist2))
    if dist2[i] > config.max_offset**2:
        return None
    h = float(heading[i])
    lateral = -math.sin(h) * (x - float(foot[i, 0])) + math.cos(h) * (y - float(foot[i, 1]))
    s = float(reference.s[i] + t[i] * (reference.s[i + 1] - reference.s[i]))
    # the heading error is taken against the reference's own heading there (its tangent), not
    # the segment's chord, so an ego on a curved reference with its heading has none
    tangent = float(np.interp(s, reference.s, np.unwrap(path[:, 2])))
    return s, lateral, float(wrap_angle(yaw - tangent))


def _along_reference(
    reference: ReferencePath, q: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Reference ``(x, y, yaw, curvature)`` at arc lengths ``q`` ``(T,)``; straight beyond the
    end."""
    s = reference.s
    path = reference.path
    yaw = np.unwrap(path[:, 2])
    inside = np.minimum(q, s[-1])
    x = np.interp(inside, s, path[:, 0])
    y = np.interp(inside, s, path[:, 1])
    heading = np.interp(inside, s, yaw)
    beyond = np.maximum(q - s[-1], 0.0)
    x = x + beyond * math.cos(float(yaw[-1]))
    y = y + beyond * math.sin(float(yaw[-1]))
    seg_curv = np.diff(yaw) / np.diff(s)
    index = np.clip(np.searchsorted(s, q, side="right") - 1, 0, len(seg_curv) - 1)
    curvature = np.where(q < s[-1], seg_curv[index], 0.0)
    return x, y, heading, curvature


def _offset_curve(
    reference: ReferencePath,
    s0: float,
    q: FloatArray,
    d0: float,
    slope: float,
    blend: float,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """``(x, y, yaw, curvature, ds/dq)`` at reference distances ``q`` ``(M,)`` from ``s0``.

    The lateral offset is a cubic Hermite from ``(d0, slope)`` at ``q = 0`` to ``(0, 0)`` at
    ``q = blend`` (and 0 beyond); ``ds/dq`` is the curve's length per reference length.
    """
    rx, ry, ryaw, rk = _along_reference(reference, s0 + q)
    u = np.clip(q / blend, 0.0, 1.0)
    done = q >= blend
    d = d0 * (2 * u**3 - 3 * u**2 + 1) + slope * blend * (u**3 - 2 * u**2 + u)
    dd = (d0 * (6 * u**2 - 6 * u) + slope * blend * (3 * u**2 - 4 * u + 1)) / blend
    d2 = (d0 * (12 * u - 6) + slope * blend * (6 * u - 4)) / blend**2
    d, dd, d2 = (np.where(done, 0.0, v) for v in (d, dd, d2))
    # Frenet → Cartesian (Werling et al. 2010) with the reference curvature piecewise constant
    # (the offset stays inside the reference's radius of curvature; clamped for sharp corners)
    scale = np.maximum(1.0 - rk * d, 0.1)
    delta = np.arctan2(dd, scale)
    cos_delta = np.cos(delta)
    curvature = ((d2 + rk * dd * np.tan(delta)) * cos_delta**2 / scale + rk) * cos_delta / scale
    x = rx - d * np.sin(ryaw)
    y = ry + d * np.cos(ryaw)
    return x, y, ryaw + delta, curvature, np.hypot(scale, dd)


def minimum_risk_trajectory(
    ego: EgoState,
    reference: ReferencePath | None,
    profile: VehicleProfile,
    planner: PlannerConfig,
    reason: str,
    config: FallbackConfig = FallbackConfig(),
) -> FloatArray:
    """A controlled stop in lane ``(T, len(TrajIndex))`` (see the module docstring).

    ``reason`` is why the fallback is taken; it is named in the error for a non-finite pose.
    """
    if not isinstance(ego, EgoState):
        raise TypeError(f"minimum_risk_trajectory: ego must be EgoState, got {type(ego).__name__}")
    x0, y0, yaw0 = ego.pose.x, ego.pose.y, ego.pose.yaw
    if not all(math.isfinite(v) for v in (x0, y0, yaw0)):
        raise ValueError(
            f"minimum_risk_trajectory ({reason}): ego pose is not finite: "
            f"x={x0}, y={y0}, yaw={yaw0}"
        )
    v0 = float(ego.velocity[0])
    v0 = max(v0, 0.0) if math.isfinite(v0) else 0.0
    decel = min(config.decel, -profile.envelope_accel_min)

    t = planner.times
    t_stop = v0 / decel
    tc = np.minimum(t, t_stop)
    dist = v0 * tc - 0.5 * decel * tc * tc
    speed = np.maximum(v0 - decel * tc, 0.0)
    accel = np.where(t < t_stop, -decel, 0.0)

    out = np.empty((len(t), len(TrajIndex)), dtype=np.float64)
    out[:, TrajIndex.SPEED] = speed
    out[:, TrajIndex.ACCEL] = accel
    projection = None if reference is None else _project(reference, x0, y0, yaw0, config)
    if projection is None or reference is None:
        out[:, TrajIndex.X] = x0 + dist * math.cos(yaw0)
        out[:, TrajIndex.Y] = y0 + dist * math.sin(yaw0)
        out[:, TrajIndex.YAW] = yaw0
        out[:, TrajIndex.CURVATURE] = 0.0
        return out

    s0, d0, heading_error = projection
    blend = max(config.blend_distance, v0 * config.blend_time)
    slope = math.tan(heading_error)
    # the offset curve is parametrised by the reference's arc length q; the trajectory's
    # distances are along the curve itself, so q is found on a dense table of the curve's length
    span = max(2.0 * float(dist[-1]), 1.0)
    while True:
        q_dense = np.linspace(0.0, span, _DENSE)
        *_, speed_factor = _offset_curve(reference, s0, q_dense, d0, slope, blend)
        length = np.concatenate(
            [[0.0], np.cumsum(0.5 * (speed_factor[1:] + speed_factor[:-1]) * np.diff(q_dense))]
        )
        if length[-1] >= dist[-1]:
            break
        span *= 2.0
    q = np.interp(dist, length, q_dense)
    x, y, heading, curvature, _ = _offset_curve(reference, s0, q, d0, slope, blend)
    out[:, TrajIndex.X] = x
    out[:, TrajIndex.Y] = y
    out[:, TrajIndex.YAW] = wrap_angle(heading)
    out[:, TrajIndex.CURVATURE] = curvature
    out[0, TrajIndex.X] = x0
    out[0, TrajIndex.Y] = y0
    out[0, TrajIndex.YAW] = wrap_angle(yaw0)
    return out
