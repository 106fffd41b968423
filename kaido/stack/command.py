"""The vehicle interface: the timestamped command message that leaves the stack.

The stack proposes, the vehicle disposes: what the runtime hands to a car (or a simulator) is one
:class:`VehicleCommand` per control tick, built by :class:`CommandBuilder` from the controller's
physical command (longitudinal acceleration and road-wheel angle) AFTER the safety envelope of
the vehicle profile (:class:`kaido.planning.envelope.SafetyEnvelope`) and a rate limiter:

1. **Envelope** (:mod:`kaido.planning.envelope`): acceleration within
   ``[envelope_accel_min, envelope_accel_max]``; road-wheel angle within the lock and the ISO 11270
   lateral acceleration bound, then the steering-rate and lateral-jerk limits. Non-finite inputs
   or a timestamp that does not advance are a fault: the envelope's controlled stop.
2. **Rate limiter** (:class:`RateLimits`): the acceleration changes by at most ``max_jerk · dt``
   per tick, except towards a controlled stop after a fault (a stop is never delayed); the
   road-wheel angle by at most ``max_steering_wheel_rate / steering_ratio · dt`` (when set; the
   envelope's rate limit always holds). The result is clipped once more to the hard bounds (lock,
   lateral acceleration at the present speed), which always hold.
3. **Actuation**: the same command as CARLA-style pedals and a normalised steer
   (:class:`kaido.scene.agents.Control`, steer +1 = full RIGHT), for simulators and for cars
   that take pedal positions.

Message schema (``VehicleCommand.to_dict()``, JSON-ready; ``from_dict`` checks it)
-----------------------------------------------------------------------------------
=========================  ========  =========  ====================================================
field                      type      unit       range / meaning
=========================  ========  =========  ====================================================
``schema``                 str       --         ``"kaido.VehicleCommand"``
``version``                int       --         ``1`` (:data:`SCHEMA_VERSION`)
``timestamp_ns``           int       ns         >= 0, increasing per stream (a repeated or
                                                earlier time makes a fault: controlled stop)
``sequence``               int       --         >= 0, +1 per message (a gap = a lost message)
``vehicle``                str       --         name of the vehicle profile the command is for
``mode``                   str       --         the runtime's mode when it was made (``nominal``,
                                                or a degraded mode's name)
``accel``                  float     m/s²       ``[envelope_accel_min, envelope_accel_max]``
                                                (sedan: -3.5 .. +2.0); target longitudinal accel
``curvature``              float     1/m        ``tan(wheel_angle) / wheelbase``, left positive;
                                                path curvature of the rear axle
``wheel_angle``            float     rad        ``|.| <= max_steer`` and ``v² tan(.)/L <= 3 m/s²``;
                                                road-wheel angle, positive LEFT (ISO 8855)
``steering_wheel_angle``   float     rad        ``wheel_angle * steering_ratio``, positive LEFT
``speed``                  float     m/s        the measured speed the command was bounded at
                                                (0 when unknown; ``fault`` then names it)
``lateral_accel``          float     m/s²       ``speed² * curvature``, ``|.| <= 3`` (ISO 11270)
``control.throttle``       float     --         ``[0, 1]`` (never > 0 together with ``brake``)
``control.steer``          float     --         ``[-1, 1]``, positive RIGHT (CARLA):
                                                ``-wheel_angle / max_steer``
``control.brake``          float     --         ``[0, 1]``
``control.reverse``        bool      --         reverse gear (always false from this builder)
``control.hand_brake``     bool      --         hand brake (always false from this builder)
``limited``                [str]     --         limits that changed the command: the envelope's
                                                tags (``accel_max``, ``accel_min``, ``steer_max``,
                                                ``lateral_accel``, ``steer_rate``,
                                                ``lateral_jerk``, ``fault:<input>``) and
                                                ``jerk``, ``wheel_rate`` of the rate limiter
``fault``                  str|null  --         why the command is a controlled stop (null: it is
                                                not)
=========================  ========  =========  ====================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from kaido.planning.controller import pedals_for_accel
from kaido.planning.envelope import EnvelopeState, SafetyEnvelope, lateral_accel
from kaido.scene.agents import Control
from kaido.scene.vehicle import VehicleProfile

__all__ = [
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "CommandBuilder",
    "RateLimits",
    "VehicleCommand",
]

SCHEMA_NAME = "kaido.VehicleCommand"
SCHEMA_VERSION = 1
JERK = "jerk"
WHEEL_RATE = "wheel_rate"
"""Tags the rate limiter adds to :attr:`VehicleCommand.limited`."""

_FLOAT_FIELDS = (
    "accel",
    "curvature",
    "wheel_angle",
    "steering_wheel_angle",
    "speed",
    "lateral_accel",
)
_CONTROL_KEYS = ("throttle", "steer", "brake", "reverse", "hand_brake")


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


@dataclass(frozen=True)
class VehicleCommand:
    """One command to the vehicle (see the module docstring for the schema and ranges)."""

    timestamp_ns: int
    """[ns] when the command is valid from."""
    sequence: int
    """Message counter, +1 per command."""
    vehicle: str
    """Name of the vehicle profile."""
    accel: float
    """[m/s²] target longitudinal acceleration."""
    curvature: float
    """[1/m] target path curvature of the rear axle, positive left."""
    wheel_angle: float
    """[rad] target road-wheel angle, positive left."""
    steering_wheel_angle: float
    """[rad] target steering-wheel angle, positive left."""
    speed: float
    """[m/s] measured speed the command was bounded at."""
    lateral_accel: float
    """[m/s²] lateral acceleration of the command at ``speed``."""
    control: Control
    """The same command as CARLA-style pedals and steer (steer +1 = full right)."""
    mode: str = "nominal"
    """Runtime mode the command was made in."""
    limited: tuple[str, ...] = ()
    """Limits that changed the command."""
    fault: str | None = None
    """Why the command is a controlled stop (None: it is not)."""

    def __post_init__(self) -> None:
        for name in ("timestamp_ns", "sequence"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"VehicleCommand.{name}: expected an int >= 0, got {value!r}")
        for name in ("vehicle", "mode"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"VehicleCommand.{name}: expected a non-empty str, got {value!r}")
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value):
                raise ValueError(f"VehicleCommand.{name}: expected a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not abs(self.wheel_angle) < 0.5 * math.pi:
            raise ValueError(
                f"VehicleCommand.wheel_angle: must be in (-pi/2, pi/2), got {self.wheel_angle}"
            )
        if not isinstance(self.control, Control):
            raise ValueError(
                f"VehicleCommand.control: expected Control, got {type(self.control).__name__}"
            )
        if not isinstance(self.limited, tuple) or not all(
            isinstance(tag, str) for tag in self.limited
        ):
            raise ValueError(
                f"VehicleCommand.limited: expected a tuple of str, got {self.limited!r}"
            )
        if self.fault is not None and not isinstance(self.fault, str):
            raise ValueError(f"VehicleCommand.fault: expected str or None, got {self.fault!r}")

    def within_envelope(self, profile: VehicleProfile, tolerance: float = 1e-9) -> bool:
        """Whether the command respects the profile's hard bounds (acceleration, lock, lateral
        acceleration at its ``speed``) and its fields agree with each other."""
        p = profile
        tol = tolerance
        curvature = math.tan(self.wheel_angle) / p.wheelbase
        return (
            p.envelope_accel_min - tol <= self.accel <= p.envelope_accel_max + tol
            and abs(self.wheel_angle) <= p.max_steer + tol
            and abs(self.speed**2 * curvature) <= p.envelope_lateral_accel + 1e-6
            and abs(self.curvature - curvature) <= tol * (1.0 + abs(curvature))
            and abs(self.steering_wheel_angle - self.wheel_angle * p.steering_ratio) <= 1e-9
        )

    def to_dict(self) -> dict[str, Any]:
        """The message as plain JSON-ready data (the documented schema)."""
        c = self.control
        return {
            "schema": SCHEMA_NAME,
            "version": SCHEMA_VERSION,
            "timestamp_ns": self.timestamp_ns,
            "sequence": self.sequence,
            "vehicle": self.vehicle,
            "mode": self.mode,
            **{name: getattr(self, name) for name in _FLOAT_FIELDS},
            "control": {
                "throttle": c.throttle,
                "steer": c.steer,
                "brake": c.brake,
                "reverse": c.reverse,
                "hand_brake": c.hand_brake,
            },
            "limited": list(self.limited),
            "fault": self.fault,
        }

    @classmethod
    def from_dict(cls, data: Any) -> VehicleCommand:
        """The message from :meth:`to_dict` data; ValueError naming a missing, unknown or bad
        key, or a schema/version mismatch."""
        if not isinstance(data, dict):
            raise ValueError(f"VehicleCommand: expected a mapping, got {type(data).__name__}")
        expected = {
            "schema",
            "version",
            "timestamp_ns",
            "sequence",
            "vehicle",
            "mode",
            *_FLOAT_FIELDS,
            "control",
            "limited",
            "fault",
        }
        missing = sorted(expected - set(data))
        unknown = sorted(str(k) for k in set(data) - expected)
        if missing or unknown:
            raise ValueError(f"VehicleCommand: missing keys {missing}, unknown keys {unknown}")
        if data["schema"] != SCHEMA_NAME:
            raise ValueError(
                f"VehicleCommand.schema: expected {SCHEMA_NAME!r}, got {data['schema']!r}"
            )
        if data["version"] != SCHEMA_VERSION:
            raise ValueError(
                f"VehicleCommand.version: this reader knows {SCHEMA_VERSION}, got "
                f"{data['version']!r}"
            )
        control = data["control"]
        if not isinstance(control, dict) or set(control) != set(_CONTROL_KEYS):
            raise ValueError(
                f"VehicleCommand.control: expected a mapping with keys {list(_CONTROL_KEYS)}, "
                f"got {control!r}"
            )
        limited = data["limited"]
        if not isinstance(limited, list):
            raise ValueError(f"VehicleCommand.limited: expected a list, got {limited!r}")
        try:
            ctrl = Control(**control)
        except (TypeError, ValueError) as err:
            raise ValueError(f"VehicleCommand.control: {err}") from None
        return cls(
            timestamp_ns=data["timestamp_ns"],
            sequence=data["sequence"],
            vehicle=data["vehicle"],
            mode=data["mode"],
            control=ctrl,
            limited=tuple(limited),
            fault=data["fault"],
            **{name: data[name] for name in _FLOAT_FIELDS},
        )


@dataclass(frozen=True)
class RateLimits:
    """Rate limits applied after the envelope."""

    max_jerk: float = 5.0
    """[m/s³] largest change of the commanded acceleration per second (a controlled stop after
    a fault is not delayed by it)."""
    max_steering_wheel_rate: float | None = None
    """[rad/s] largest steering-wheel rate (None: only the profile's road-wheel rate limit,
    which the envelope applies)."""

    def __post_init__(self) -> None:
        if not _is_number(self.max_jerk) or not (
            math.isfinite(self.max_jerk) and self.max_jerk > 0
        ):
            raise ValueError(f"RateLimits.max_jerk must be finite and > 0, got {self.max_jerk!r}")
        rate = self.max_steering_wheel_rate
        if rate is not None and (not _is_number(rate) or not (math.isfinite(rate) and rate > 0)):
            raise ValueError(
                f"RateLimits.max_steering_wheel_rate must be None or finite and > 0, got {rate!r}"
            )


@dataclass
class _Previous:
    timestamp_ns: int
    accel: float
    envelope: EnvelopeState
    sequence: int = -1


class CommandBuilder:
    """Envelope + rate limiter → :class:`VehicleCommand` for one vehicle (module docstring).

    Call :meth:`reset` with the measured state before the first :meth:`build`.
    """

    def __init__(self, profile: VehicleProfile, limits: RateLimits | None = None) -> None:
        if not isinstance(profile, VehicleProfile):
            raise TypeError(
                f"CommandBuilder.profile: expected VehicleProfile, got {type(profile).__name__}"
            )
        self.profile = profile
        self.limits = limits or RateLimits()
        self.envelope = SafetyEnvelope(profile)
        self._previous: _Previous | None = None

    def reset(
        self, timestamp_ns: int, wheel_angle: float = 0.0, speed: float = 0.0, accel: float = 0.0
    ) -> None:
        """Start a command stream at ``timestamp_ns`` [ns] from the measured road-wheel angle
        [rad], speed [m/s] and acceleration [m/s²] (non-finite values count as 0)."""
        if isinstance(timestamp_ns, bool) or not isinstance(timestamp_ns, int):
            raise ValueError(
                f"CommandBuilder.reset: timestamp_ns must be an int, got {timestamp_ns!r}"
            )
        p = self.profile
        a = float(accel) if math.isfinite(accel) else 0.0
        self._previous = _Previous(
            timestamp_ns=timestamp_ns,
            accel=min(max(a, p.envelope_accel_min), p.envelope_accel_max),
            envelope=self.envelope.initial_state(float(wheel_angle), float(speed)),
        )

    def build(
        self,
        timestamp_ns: int,
        accel: float,
        wheel_angle: float,
        speed: float,
        mode: str = "nominal",
    ) -> VehicleCommand:
        """The command at ``timestamp_ns`` [ns] for the controller's ``accel`` [m/s²] and road-
        wheel angle ``wheel_angle`` [rad, left +] at the measured ``speed`` [m/s]."""
        prev = self._previous
        if prev is None:
            raise RuntimeError("CommandBuilder.build: call reset() first")
        if isinstance(timestamp_ns, bool) or not isinstance(timestamp_ns, int) or timestamp_ns < 0:
            raise ValueError(
                f"CommandBuilder.build: timestamp_ns must be an int >= 0, got {timestamp_ns!r}"
            )
        p = self.profile
        step = timestamp_ns - prev.timestamp_ns
        # a timestamp that does not advance is a fault (dt = NaN → the envelope's stop)
        dt = step * 1e-9 if step > 0 else math.nan
        result = self.envelope.apply(accel, wheel_angle, speed, prev.envelope, dt)
        tags = list(result.clamped)
        h = dt if math.isfinite(dt) else 0.0

        a = result.accel
        if result.fault is None:
            reach = self.limits.max_jerk * h
            limited = min(max(a, prev.accel - reach), prev.accel + reach)
            if limited != a:
                tags.append(JERK)
                a = limited

        wheel = result.wheel_angle
        if self.limits.max_steering_wheel_rate is not None:
            reach = self.limits.max_steering_wheel_rate / p.steering_ratio * h
            old = prev.envelope.wheel_angle
            limited = min(max(wheel, old - reach), old + reach)
            if limited != wheel:
                tags.append(WHEEL_RATE)
                wheel = limited
        v = float(speed) if math.isfinite(speed) else math.nan
        hard = p.max_steer
        if math.isfinite(v) and v * v > 0.0:
            hard = min(hard, math.atan(p.envelope_lateral_accel * p.wheelbase / (v * v)))
        wheel = min(max(wheel, -hard), hard)

        if math.isfinite(v):
            lat = lateral_accel(v, wheel, p.wheelbase)
            measured = v
        else:
            lat = result.state.lateral_accel
            measured = 0.0
        throttle, brake = pedals_for_accel(p, measured, a)
        steer = min(max(-wheel / p.max_steer, -1.0), 1.0)
        sequence = prev.sequence + 1
        command = VehicleCommand(
            timestamp_ns=timestamp_ns,
            sequence=sequence,
            vehicle=p.name,
            accel=a,
            curvature=math.tan(wheel) / p.wheelbase,
            wheel_angle=wheel,
            steering_wheel_angle=wheel * p.steering_ratio,
            speed=measured,
            lateral_accel=lat if math.isfinite(v) else measured,
            control=Control(throttle=throttle, steer=steer, brake=brake),
            mode=mode,
            limited=tuple(dict.fromkeys(tags)),
            fault=result.fault,
        )
        self._previous = _Previous(
            timestamp_ns=max(timestamp_ns, prev.timestamp_ns),
            accel=a,
            envelope=EnvelopeState(wheel, lat),
            sequence=sequence,
        )
        return command
