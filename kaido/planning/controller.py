"""Trajectory tracking: a planned trajectory → ``Control(throttle, steer, brake)`` for CARLA.

The trajectory is ``(T, len(TrajIndex))`` in the world frame, its point ``k`` at ``k · dt``
seconds after the planning time (``ControllerConfig.trajectory_dt``, the planner's
``PlannerConfig.dt``). The ego's reference point is the rear axle, as the trajectory's.

**Longitudinal** (PID on speed with feed-forward, cascaded on the station error):

* the ego is projected on the trajectory's xy polyline (arc length ``s_ego``); the plan's own
  arc length at ``t = time_since_plan`` is ``s_ref(t)``, and the target speed is
  ``v* = max(v_ref(t) + k_station · clip(s_ref(t) - s_ego), 0)``: a slow outer loop that closes
  the position the speed loop alone would let drift (so a stop lands where it was planned);
* ``a = a_ref(t + preview) + kp · e + ki · ∫e + kd · de/dt`` with ``e = v* - v``; the
  feed-forward ``a_ref`` is read ``accel_preview`` seconds ahead to make up for the powertrain's
  lag; the integral is clamped and frozen while the envelope saturates the command
  (anti-windup); ``de/dt`` is a first-order filtered difference quotient;
* the command passes the :class:`~kaido.planning.envelope.SafetyEnvelope`, then becomes throttle
  or brake (never both) through the inverse of the vehicle's longitudinal model (the model of
  the embedded simulator's ``BicycleDynamics``): ``a = throttle · max_accel · (1 - (v /
  max_speed)²) - brake · max_decel - rolling_decel - drag_coefficient · v²``;
* at standstill (``|v| < standstill_speed``) while the plan stays below ``move_off_speed`` for
  the next ``hold_horizon`` seconds, the brake holds the car (``standstill_decel`` as a
  brake-equivalent deceleration, within the envelope) and the PID is reset.

**Lateral** (pure pursuit from the rear axle plus curvature feed-forward): pure pursuit is exact
for the rear-axle kinematic bicycle on a circular arc and needs no front-axle projection, which is
why it is used rather than Stanley. The commanded curvature is

``κ = κ_ref(s_ego + v · steer_preview) + (κ_pp(ego) - κ_pp(path))``

where ``κ_pp(pose) = 2 · y_t / d²`` is the pure-pursuit curvature from ``pose`` to the target point
``lookahead = clip(lookahead_gain · |v|, min_lookahead, max_lookahead)`` metres further along the
path (``(x_t, y_t)`` in the pose's frame, ``d`` its distance), and ``path`` is the ego's foot point
on the path with the path's heading. On the path the feedback term is zero and the feed-forward
(the planner's ``CURVATURE`` column, read ahead by the steering lag and the lateral-jerk
ramp) steers alone; off it, pure
pursuit pulls the ego back. The wheel angle is ``atan(wheelbase · κ)``; after the envelope the
CARLA command is ``steer = -wheel_angle / max_steer`` (CARLA: +1 = full RIGHT; kaido's wheel
angle is positive to the LEFT).

A non-finite ego state or trajectory makes the command NaN, which the envelope turns into a
controlled stop with the wheel held (see :mod:`kaido.planning.envelope`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kaido.planning.envelope import EnvelopeState, SafetyEnvelope
from kaido.planning.types import TrajIndex
from kaido.scene.agents import Control, EgoState
from kaido.scene.vehicle import VehicleProfile

__all__ = ["ControllerConfig", "ControllerDebug", "TrajectoryController", "pedals_for_accel"]

FloatArray = npt.NDArray[np.float64]

_MIN_SEGMENT = 1e-6
"""[m] trajectory segments shorter than this count as a standing point."""


@dataclass(frozen=True)
class ControllerConfig:
    """Gains and settings of :class:`TrajectoryController`."""

    trajectory_dt: float = 0.1
    """[s] time between trajectory points (the planner's ``PlannerConfig.dt``)."""
    speed_kp: float = 1.0
    """[(m/s²)/(m/s)] proportional gain on the speed error."""
    speed_ki: float = 0.4
    """[(m/s²)/m] integral gain on the speed error."""
    speed_kd: float = 0.05
    """[(m/s²)/(m/s²)] = [s] derivative gain on the speed error."""
    derivative_time_constant: float = 0.1
    """[s] low-pass filter of the speed error's difference quotient."""
    integral_limit: float = 2.0
    """[m] bound on the integrated speed error."""
    station_gain: float = 0.5
    """[1/s] target-speed correction per metre the ego lags behind the plan's position."""
    station_error_limit: float = 4.0
    """[m] the station error is clipped to this before it corrects the target speed."""
    accel_preview: float = 0.25
    """[s] the acceleration feed-forward is read this far ahead of ``time_since_plan``."""
    standstill_speed: float = 0.1
    """[m/s] speeds below this count as standing."""
    move_off_speed: float = 0.2
    """[m/s] the plan "stays stopped" while its speed stays below this."""
    hold_horizon: float = 1.0
    """[s] how far ahead the plan must stay stopped for the standstill hold."""
    standstill_decel: float = 3.0
    """[m/s²] brake-equivalent deceleration holding the car at standstill."""
    lookahead_gain: float = 1.2
    """[s] pure-pursuit lookahead per unit speed. Keep it above ~1 s: the envelope's lateral
    jerk limit needs 0.6 s to swing the lateral acceleration from one bound to the other, and a
    shorter lookahead time makes the recovery from a large offset oscillate."""
    min_lookahead: float = 3.0
    """[m] shortest pure-pursuit lookahead."""
    max_lookahead: float = 50.0
    """[m] longest pure-pursuit lookahead (``lookahead_gain`` × 42 m/s)."""
    steer_preview: float = 0.3
    """[s] the curvature feed-forward is read ``speed × steer_preview`` ahead: the steering lag
    plus half the time the lateral-jerk limit takes to build up a curve's lateral acceleration."""
    min_fade: float = 0.05
    """Smallest drive-force fade factor the pedal mapping divides by (near top speed)."""

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"ControllerConfig.{name}: expected a number, got {value!r}")
            if not math.isfinite(value) or value < 0.0:
                raise ValueError(f"ControllerConfig.{name} must be finite and >= 0, got {value}")
        if self.trajectory_dt <= 0.0:
            raise ValueError(
                f"ControllerConfig.trajectory_dt must be > 0, got {self.trajectory_dt}"
            )
        if not 0.0 < self.min_lookahead <= self.max_lookahead:
            raise ValueError(
                "ControllerConfig: 0 < min_lookahead <= max_lookahead must hold, got "
                f"{self.min_lookahead}, {self.max_lookahead}"
            )
        if not 0.0 < self.min_fade <= 1.0:
            raise ValueError(f"ControllerConfig.min_fade must be in (0, 1], got {self.min_fade}")


@dataclass(frozen=True)
class ControllerDebug:
    """What the controller aimed at in one tick."""

    target_speed: float
    """[m/s] speed the PID tracked (plan speed plus station correction)."""
    accel_command: float
    """[m/s²] longitudinal acceleration command after the envelope."""
    wheel_angle_command: float
    """[rad] road-wheel angle command after the envelope, positive to the left."""
    lateral_error: float
    """[m] signed distance of the rear axle from the path, positive = ego LEFT of it."""
    station_error: float = 0.0
    """[m] how far the ego lags behind the plan's position along the path."""
    holding: bool = False
    """Standstill hold engaged."""
    envelope: tuple[str, ...] = ()
    """Limits of the safety envelope that changed the command."""


def pedals_for_accel(
    profile: VehicleProfile, speed: float, accel: float, min_fade: float = 0.05
) -> tuple[float, float]:
    """``(throttle, brake)`` in ``[0, 1]``, never both > 0, giving ``accel`` [m/s²] at ``speed``
    [m/s] in forward gear, by inverting the longitudinal model (see the module docstring).

    A non-finite speed counts as standing; a non-finite ``accel`` gives full brake.
    """
    if not math.isfinite(accel):
        return 0.0, 1.0
    v = max(speed, 0.0) if math.isfinite(speed) else 0.0
    need = accel + profile.rolling_decel + profile.drag_coefficient * v * v
    if need >= 0.0:
        fade = max(1.0 - (v / profile.max_speed) ** 2, min_fade)
        return min(need / (profile.max_accel * fade), 1.0), 0.0
    return 0.0, min(-need / profile.max_decel, 1.0)


class _Path:
    """A trajectory's xy polyline with arc length, extended straight beyond both ends."""

    EXTENSION = 1000.0
    """[m] length of the straight extensions before the first and after the last point."""

    def __init__(self, trajectory: FloatArray) -> None:
        xy = trajectory[:, [TrajIndex.X, TrajIndex.Y]]
        yaw = trajectory[:, TrajIndex.YAW]
        first = np.array([math.cos(yaw[0]), math.sin(yaw[0])])
        last = np.array([math.cos(yaw[-1]), math.sin(yaw[-1])])
        ext = self.EXTENSION
        self.points = np.vstack([xy[0] - ext * first, xy, xy[-1] + ext * last])
        seg = np.diff(self.points, axis=0)
        self.seg_len = np.hypot(seg[:, 0], seg[:, 1])
        self.seg = seg
        cum = np.concatenate([[0.0], np.cumsum(self.seg_len)])
        self.s_points = cum - ext
        """``(T + 2,)`` [m] arc length of the points, 0 at the trajectory's first point."""
        self.s_traj = self.s_points[1:-1]
        """``(T,)`` [m] arc length of the trajectory's points."""
        self.yaw = np.unwrap(yaw)

    def project(self, x: float, y: float) -> tuple[float, float, float, float, float]:
        """``(s, lateral, foot_x, foot_y, heading)`` of the nearest point of the path to (x, y);
        ``lateral`` is positive when (x, y) is LEFT of the path."""
        a = self.points[:-1]
        rel = np.array([x, y]) - a
        length2 = self.seg_len**2
        safe = np.where(length2 > _MIN_SEGMENT**2, length2, 1.0)
        t = np.clip(np.einsum("ij,ij->i", rel, self.seg) / safe, 0.0, 1.0)
        t = np.where(length2 > _MIN_SEGMENT**2, t, 0.0)
        foot = a + t[:, None] * self.seg
        dist2 = np.sum((np.array([x, y]) - foot) ** 2, axis=1)
        i = int(np.argmin(dist2))
        fx, fy = float(foot[i, 0]), float(foot[i, 1])
        if self.seg_len[i] > _MIN_SEGMENT:
            heading = math.atan2(float(self.seg[i, 1]), float(self.seg[i, 0]))
        else:
            k = min(max(i - 1, 0), len(self.yaw) - 1)
            heading = float(self.yaw[k])
        s = float(self.s_points[i] + t[i] * self.seg_len[i])
        lateral = -math.sin(heading) * (x - fx) + math.cos(heading) * (y - fy)
        return s, lateral, fx, fy, heading

    def point_at(self, s: float) -> tuple[float, float]:
        """The xy point at arc length ``s`` [m]."""
        return (
            float(np.interp(s, self.s_points, self.points[:, 0])),
            float(np.interp(s, self.s_points, self.points[:, 1])),
        )


def _pursuit_curvature(x: float, y: float, yaw: float, tx: float, ty: float) -> float:
    """Pure-pursuit curvature [1/m] from pose (x, y, yaw) to the target (tx, ty)."""
    dx, dy = tx - x, ty - y
    c, s = math.cos(yaw), math.sin(yaw)
    local_x, local_y = c * dx + s * dy, -s * dx + c * dy
    d2 = local_x * local_x + local_y * local_y
    if d2 < 1e-9:
        return 0.0
    return 2.0 * local_y / d2


class TrajectoryController:
    """Tracks planned trajectories (see the module docstring for the control law).

    Stateful (PID integral, derivative filter, the envelope's previous output): call
    :meth:`reset` when the vehicle is placed anew.
    """

    def __init__(
        self, profile: VehicleProfile, config: ControllerConfig = ControllerConfig()
    ) -> None:
        if not isinstance(profile, VehicleProfile):
            raise TypeError(
                f"TrajectoryController.profile: expected VehicleProfile, got "
                f"{type(profile).__name__}"
            )
        if not isinstance(config, ControllerConfig):
            raise TypeError(
                f"TrajectoryController.config: expected ControllerConfig, got "
                f"{type(config).__name__}"
            )
        self.profile = profile
        self.config = config
        self.envelope = SafetyEnvelope(profile)
        self.reset()

    def reset(self) -> None:
        """Forget the PID state and the envelope's previous output."""
        self._integral = 0.0
        self._previous_error: float | None = None
        self._derivative = 0.0
        self._envelope_state: EnvelopeState | None = None

    def _reset_pid(self) -> None:
        self._integral = 0.0
        self._previous_error = None
        self._derivative = 0.0

    def command(
        self, ego: EgoState, trajectory: FloatArray, time_since_plan: float, dt: float
    ) -> tuple[Control, ControllerDebug]:
        """The command for the next ``dt`` [s], ``time_since_plan`` [s] after ``trajectory``
        ``(T, len(TrajIndex))`` was planned, for the ego in state ``ego``."""
        if not isinstance(ego, EgoState):
            raise TypeError(
                f"TrajectoryController.command: ego must be EgoState, got {type(ego).__name__}"
            )
        traj = np.asarray(trajectory, dtype=np.float64)
        if traj.ndim != 2 or traj.shape[1] != len(TrajIndex) or traj.shape[0] < 2:
            raise ValueError(
                "TrajectoryController.command: trajectory must be (T, "
                f"{len(TrajIndex)}) with T >= 2, got shape {traj.shape}"
            )
        if isinstance(dt, bool) or not (math.isfinite(dt) and dt > 0.0):
            raise ValueError(f"TrajectoryController.command: dt must be finite and > 0, got {dt}")
        if not math.isfinite(time_since_plan):
            raise ValueError(
                "TrajectoryController.command: time_since_plan must be finite, got "
                f"{time_since_plan}"
            )
        t = max(float(time_since_plan), 0.0)
        p = self.profile
        cfg = self.config
        v = float(ego.velocity[0])
        if self._envelope_state is None:
            self._envelope_state = self.envelope.initial_state(ego.steering_angle, v)

        if not (ego.is_finite() and bool(np.all(np.isfinite(traj)))):
            # untrusted inputs: the envelope turns the NaN command into a controlled stop
            self._reset_pid()
            return self._finish(math.nan, math.nan, v, dt, math.nan, math.nan, math.nan, False)

        path = _Path(traj)
        x, y, yaw = ego.pose.x, ego.pose.y, ego.pose.yaw
        s_ego, lateral, fx, fy, heading = path.project(x, y)

        # lateral: curvature feed-forward + pure-pursuit correction
        lookahead = min(max(cfg.lookahead_gain * abs(v), cfg.min_lookahead), cfg.max_lookahead)
        tx, ty = path.point_at(s_ego + lookahead)
        feedback = _pursuit_curvature(x, y, yaw, tx, ty) - _pursuit_curvature(
            fx, fy, heading, tx, ty
        )
        s_preview = s_ego + abs(v) * cfg.steer_preview
        feedforward = float(np.interp(s_preview, path.s_traj, traj[:, TrajIndex.CURVATURE]))
        wheel = math.atan(p.wheelbase * (feedforward + feedback))

        # longitudinal: station-corrected target speed, PID + feed-forward
        times = np.arange(len(traj), dtype=np.float64) * cfg.trajectory_dt
        speeds = np.maximum(traj[:, TrajIndex.SPEED], 0.0)
        v_ref = float(np.interp(t, times, speeds))
        t_ff = t + cfg.accel_preview
        a_ref = (
            float(np.interp(t_ff, times, traj[:, TrajIndex.ACCEL])) if t_ff <= times[-1] else 0.0
        )
        s_ref = float(np.interp(t, times, path.s_traj))
        if t > times[-1]:
            s_ref += float(speeds[-1]) * (t - float(times[-1]))
        station_error = s_ref - s_ego
        correction = cfg.station_gain * min(
            max(station_error, -cfg.station_error_limit), cfg.station_error_limit
        )
        target = max(v_ref + correction, 0.0)

        window = (times > t) & (times < t + cfg.hold_horizon)
        ahead = max(
            v_ref,
            float(np.interp(t + cfg.hold_horizon, times, speeds)),
            float(np.max(speeds[window], initial=0.0)),
        )
        if abs(v) < cfg.standstill_speed and ahead < cfg.move_off_speed:
            self._reset_pid()
            return self._finish(
                -cfg.standstill_decel, wheel, v, dt, target, lateral, station_error, True
            )

        error = target - v
        if self._previous_error is not None:
            raw = (error - self._previous_error) / dt
            tau = cfg.derivative_time_constant
            gain = -math.expm1(-dt / tau) if tau > 0.0 else 1.0
            self._derivative += (raw - self._derivative) * gain
        self._previous_error = error
        integral = min(max(self._integral + error * dt, -cfg.integral_limit), cfg.integral_limit)
        accel = (
            a_ref + cfg.speed_kp * error + cfg.speed_ki * integral + cfg.speed_kd * self._derivative
        )
        saturated_high = accel > p.envelope_accel_max and error > 0.0
        saturated_low = accel < p.envelope_accel_min and error < 0.0
        if not (saturated_high or saturated_low):
            self._integral = integral
        return self._finish(accel, wheel, v, dt, target, lateral, station_error, False)

    def _finish(
        self,
        accel: float,
        wheel: float,
        speed: float,
        dt: float,
        target: float,
        lateral: float,
        station_error: float,
        holding: bool,
    ) -> tuple[Control, ControllerDebug]:
        """Pass the physical command through the envelope and map it to a :class:`Control`."""
        p = self.profile
        assert self._envelope_state is not None
        result = self.envelope.apply(accel, wheel, speed, self._envelope_state, dt)
        self._envelope_state = result.state
        if holding:
            # standing: the brake holds with the (enveloped) deceleration it would give moving
            throttle, brake = 0.0, min(max(-result.accel, 0.0) / p.max_decel, 1.0)
        else:
            throttle, brake = pedals_for_accel(p, speed, result.accel, self.config.min_fade)
        steer = min(max(-result.wheel_angle / p.max_steer, -1.0), 1.0)
        control = Control(throttle=throttle, steer=steer, brake=brake)
        debug = ControllerDebug(
            target_speed=target,
            accel_command=result.accel,
            wheel_angle_command=result.wheel_angle,
            lateral_error=lateral,
            station_error=station_error,
            holding=holding,
            envelope=result.clamped,
        )
        return control, debug
