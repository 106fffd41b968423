"""Ego dynamics of the embedded simulator: a kinematic bicycle with actuator lags and limits.

The vehicle is driven by a :class:`~kaido.scene.agents.Control` exactly as a CARLA vehicle is:

* **Steering.** ``steer`` in ``[-1, 1]`` with +1 = full RIGHT (CARLA). The road-wheel angle target
  in kaido's left-positive convention is ``-steer * profile.max_steer``. The wheel angle follows
  it through a first-order lag (``profile.steer_time_constant``) whose rate is limited to
  ``profile.max_steer_rate``.
* **Drive.** The drive acceleration target is
  ``throttle * max_accel * (1 - (v / max_speed)²)`` (clipped at 0): full torque from rest,
  fading quadratically to nothing at top speed, as a fixed-gear powertrain with a power limit
  roughly does. It acts forwards, or backwards with ``reverse`` engaged (then the fade uses
  ``DynamicsConfig.reverse_max_speed``). It follows its target through a first-order lag
  (``profile.throttle_time_constant``); the lagged value is signed (positive forwards), so a
  gear change makes it pass smoothly through zero.
* **Brakes.** The brake deceleration target is ``brake * max_decel``, lagged by
  ``profile.brake_time_constant``; ``hand_brake`` adds ``DynamicsConfig.hand_brake_decel``
  at once.
* **Resistance.** Rolling resistance ``profile.rolling_decel`` plus quadratic drag
  ``profile.drag_coefficient * v²``, both opposing the motion.

Resistive forces (brakes, hand brake, rolling, drag) never reverse the direction of travel: when
they would carry the speed through zero it is clamped at zero, and a standing vehicle only moves
when the drive force beats them. The speed becomes negative only under the drive force in reverse
gear.

Integration is deterministic: each step of ``dt`` is split into equal substeps no longer than
``DynamicsConfig.max_substep``. In each substep the lags are advanced by their exact exponential
discretisation (``x += (target - x) * (1 - exp(-h / tau))``, stable for any ``h``), the speed by
semi-implicit Euler, and the pose along the exact arc of constant curvature driven at the
substep's mean speed. The reference point is the rear-axle centre, where the kinematic bicycle
has no side slip: ``yaw_rate = v * tan(wheel_angle) / wheelbase``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from kaido.scene.agents import Control, EgoState
from kaido.scene.geometry import SE2, Box3D, wrap_angle
from kaido.scene.vehicle import VehicleProfile

__all__ = ["BicycleDynamics", "DynamicsConfig", "DynamicsState"]

_STANDSTILL = 1e-9
"""[m/s] speeds at or below this magnitude count as standing still."""


@dataclass(frozen=True)
class DynamicsConfig:
    """Integration and the actuator numbers a :class:`VehicleProfile` does not carry."""

    max_substep: float = 0.01
    """[s] longest integration substep; a step of ``dt`` uses ``ceil(dt / max_substep)``."""
    max_dt: float = 1.0
    """[s] longest step :meth:`BicycleDynamics.step` accepts."""
    hand_brake_decel: float = 6.0
    """[m/s²] deceleration of the engaged hand brake (locked rear wheels on dry asphalt)."""
    reverse_max_speed: float = 8.0
    """[m/s] top speed in reverse; the reverse drive force fades to zero there."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"DynamicsConfig.{f.name} must be finite and > 0, got {value!r}")
        if self.max_substep > self.max_dt:
            raise ValueError(
                f"DynamicsConfig.max_substep ({self.max_substep}) must be <= max_dt ({self.max_dt})"
            )


@dataclass(frozen=True)
class DynamicsState:
    """State of the bicycle after a reset or step. Pose at the rear-axle centre, world frame."""

    x: float
    """[m] rear-axle centre, world x."""
    y: float
    """[m] rear-axle centre, world y."""
    yaw: float
    """[rad] heading, counter-clockwise from +x, wrapped to ``[-pi, pi)``."""
    speed: float
    """[m/s] signed longitudinal speed; negative only when driven backwards in reverse gear."""
    wheel_angle: float
    """[rad] road-wheel angle, positive to the left (ISO 8855)."""
    accel: float = 0.0
    """[m/s²] actual longitudinal acceleration over the last step (speed change / dt)."""
    drive_accel: float = 0.0
    """[m/s²] lagged drive acceleration, signed along the vehicle's x axis."""
    brake_decel: float = 0.0
    """[m/s²] lagged service-brake deceleration, >= 0."""
    yaw_rate: float = 0.0
    """[rad/s] ``speed * tan(wheel_angle) / wheelbase``."""
    lateral_accel: float = 0.0
    """[m/s²] centripetal acceleration ``speed * yaw_rate``, positive to the left."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not math.isfinite(value):
                raise ValueError(f"DynamicsState.{f.name} is not finite: {value!r}")

    @property
    def pose(self) -> SE2:
        """Rear-axle pose in the world frame."""
        return SE2(self.x, self.y, self.yaw)


def _lag_gain(h: float, tau: float) -> float:
    """Fraction of the gap to its target a first-order lag closes in ``h`` [s]."""
    return 1.0 if tau <= 0.0 else -math.expm1(-h / tau)


def _arc_chord(angle: float) -> float:
    """``sin(angle/2) / (angle/2)``: chord length of an arc of unit length turning ``angle``."""
    half = 0.5 * angle
    if abs(half) < 1e-4:
        return 1.0 - half * half / 6.0
    return math.sin(half) / half


class BicycleDynamics:
    """Kinematic bicycle ego model (see the module docstring for the equations).

    Starts standing at the world origin facing +x; :meth:`reset` places it.
    """

    def __init__(self, profile: VehicleProfile, config: DynamicsConfig | None = None) -> None:
        if not isinstance(profile, VehicleProfile):
            raise TypeError(
                f"BicycleDynamics.profile: expected VehicleProfile, got {type(profile).__name__}"
            )
        self.profile = profile
        self.config = config or DynamicsConfig()
        self._state = DynamicsState(0.0, 0.0, 0.0, 0.0, 0.0)

    @property
    def state(self) -> DynamicsState:
        """The current state."""
        return self._state

    def reset(self, pose: SE2, speed: float = 0.0) -> DynamicsState:
        """Place the vehicle at ``pose`` (rear axle, world) moving at ``speed`` [m/s].

        Wheels straight, actuators released.
        """
        if not isinstance(pose, SE2):
            raise TypeError(f"BicycleDynamics.reset: pose must be SE2, got {type(pose).__name__}")
        if isinstance(speed, bool) or not isinstance(speed, int | float):
            raise TypeError(f"BicycleDynamics.reset: speed must be a number, got {speed!r}")
        if not math.isfinite(speed):
            raise ValueError(f"BicycleDynamics.reset: speed must be finite, got {speed}")
        self._state = DynamicsState(
            x=pose.x, y=pose.y, yaw=wrap_angle(pose.yaw), speed=float(speed), wheel_angle=0.0
        )
        return self._state

    def step(self, control: Control, dt: float) -> DynamicsState:
        """Advance ``dt`` [s] under ``control`` and return the new state."""
        if not isinstance(control, Control):
            raise TypeError(
                f"BicycleDynamics.step: control must be a Control, got {type(control).__name__}"
            )
        if isinstance(dt, bool) or not isinstance(dt, int | float):
            raise TypeError(f"BicycleDynamics.step: dt must be a number, got {dt!r}")
        if not (math.isfinite(dt) and 0.0 < dt <= self.config.max_dt):
            raise ValueError(
                f"BicycleDynamics.step: dt must be finite and in (0, {self.config.max_dt}] s, "
                f"got dt={dt}"
            )
        p = self.profile
        cfg = self.config
        s = self._state
        x, y, yaw, v = s.x, s.y, s.yaw, s.speed
        delta, drive, brake = s.wheel_angle, s.drive_accel, s.brake_decel

        n = max(math.ceil(dt / cfg.max_substep - 1e-9), 1)
        h = dt / n
        steer_gain = _lag_gain(h, p.steer_time_constant)
        drive_gain = _lag_gain(h, p.throttle_time_constant)
        brake_gain = _lag_gain(h, p.brake_time_constant)
        max_dstep = p.max_steer_rate * h
        delta_target = -control.steer * p.max_steer
        brake_target = control.brake * p.max_decel
        direction = -1.0 if control.reverse else 1.0
        top_speed = cfg.reverse_max_speed if control.reverse else p.max_speed
        hand_brake = cfg.hand_brake_decel if control.hand_brake else 0.0

        for _ in range(n):
            # actuators: exact first-order lags, the wheel angle also rate limited
            step = (delta_target - delta) * steer_gain
            delta += min(max(step, -max_dstep), max_dstep)
            forward = max(direction * v, 0.0)
            fade = max(1.0 - (forward / top_speed) ** 2, 0.0)
            drive_target = direction * control.throttle * p.max_accel * fade
            drive += (drive_target - drive) * drive_gain
            brake += (brake_target - brake) * brake_gain

            # speed: resistive forces oppose the motion and never reverse it
            resist = brake + hand_brake + p.rolling_decel + p.drag_coefficient * v * v
            if abs(v) > _STANDSTILL:
                sign = 1.0 if v > 0.0 else -1.0
                v_new = v + h * (drive - sign * resist)
                if v_new * sign < 0.0:
                    v_new = 0.0
            else:
                # standing: only a drive force in the gear's direction that beats the
                # resistive forces moves the vehicle
                push = direction * drive - resist
                v_new = direction * h * push if push > 0.0 else 0.0

            # pose: exact arc at the substep's mean speed and the new wheel angle
            distance = 0.5 * (v + v_new) * h
            turn = distance * math.tan(delta) / p.wheelbase
            chord = distance * _arc_chord(turn)
            heading = yaw + 0.5 * turn
            x += chord * math.cos(heading)
            y += chord * math.sin(heading)
            yaw += turn
            v = v_new

        yaw_rate = v * math.tan(delta) / p.wheelbase
        values = {
            "x": x,
            "y": y,
            "yaw": yaw,
            "speed": v,
            "wheel_angle": delta,
            "drive_accel": drive,
            "brake_decel": brake,
        }
        bad = [name for name, value in values.items() if not math.isfinite(value)]
        if bad:
            raise ValueError(
                f"BicycleDynamics.step: state became non-finite in {bad} "
                f"(control={control}, dt={dt})"
            )
        self._state = DynamicsState(
            x=x,
            y=y,
            yaw=wrap_angle(yaw),
            speed=v,
            wheel_angle=delta,
            accel=(v - s.speed) / dt,
            drive_accel=drive,
            brake_decel=brake,
            yaw_rate=yaw_rate,
            lateral_accel=v * yaw_rate,
        )
        return self._state

    def ego_state(self, timestamp_ns: int) -> EgoState:
        """The state as an :class:`EgoState` at ``timestamp_ns`` [ns].

        Velocity and acceleration are in the ego frame: ``vx = speed``, ``vy = 0`` (no side
        slip at the rear axle), ``(ax, ay) = (accel, lateral_accel)``; ``steering_angle`` is the
        road-wheel angle.
        """
        s = self._state
        return EgoState(
            timestamp_ns=timestamp_ns,
            pose=s.pose,
            velocity=(s.speed, 0.0),
            acceleration=(s.accel, s.lateral_accel),
            yaw_rate=s.yaw_rate,
            steering_angle=s.wheel_angle,
        )

    def ego_box(self) -> Box3D:
        """The vehicle's box in the world frame.

        Centre ``profile.rear_axle_to_center`` ahead of the rear axle, ``z = height / 2``.
        """
        s = self._state
        p = self.profile
        ahead = p.rear_axle_to_center
        return Box3D(
            x=s.x + ahead * math.cos(s.yaw),
            y=s.y + ahead * math.sin(s.yaw),
            z=0.5 * p.height,
            yaw=s.yaw,
            length=p.length,
            width=p.width,
            height=p.height,
        )
