"""The safety envelope: the last check every physical command passes before it becomes a pedal.

The envelope works on the controller's physical command, a longitudinal acceleration ``accel``
[m/s²] and a road-wheel angle ``wheel_angle`` [rad] (kaido's convention: positive to the LEFT),
given the current speed [m/s], the previous output (:class:`EnvelopeState`) and the time since it
``dt`` [s]. It bounds them by the vehicle profile's envelope (ISO 11270 for the lateral limits):

* **Longitudinal.** ``accel`` is clipped to ``[envelope_accel_min, envelope_accel_max]``.
* **Lateral.** The lateral acceleration of the kinematic bicycle at the rear axle is
  ``a_y = v² · tan(δ) / L`` (``L`` the wheelbase). The wheel angle is bounded, in priority order:

  1. hard bounds, which always hold: ``|δ| <= max_steer`` and ``|a_y| <= envelope_lateral_accel``
     (at speed the second is the tighter one: ``|δ| <= atan(a_max · L / v²)``);
  2. the steering rate: ``|δ - δ_prev| <= max_steer_rate · dt``;
  3. the lateral jerk: ``|a_y - a_y,prev| <= envelope_lateral_jerk · dt``.

  Each level is applied within what the levels above it leave. When a level cannot be met at
  all together with those above it (the previous output lies outside the present envelope,
  e.g. after the speed rose, or the previous state is a stale estimate) the output is the point
  of the remaining set nearest to it, so the command moves towards it as fast as allowed. With
  ``dt = 0`` the wheel angle is held (within the hard bounds).

* **Faults.** If any input is NaN or infinite (the command, the speed, ``dt`` or the previous
  state) or ``dt`` is negative, the command is not trusted: the output is a controlled stop,
  ``accel = envelope_accel_min``, with the wheel angle held at its previous value (0 when that is
  not finite either), still within the hard bounds and the rate/jerk limits wherever the speed,
  ``dt`` and the previous state are known. With an unknown speed the lateral acceleration cannot
  be evaluated; the previous estimate (clipped to the bound) is carried in the new state. The
  reason is reported in :attr:`EnvelopeResult.fault` and in ``clamped``.

:class:`SafetyEnvelope` is the scalar API the controller calls every tick;
:func:`apply_envelope_batch` is the same law vectorised over ``(N,)`` NumPy arrays (used for
fuzzing and for batched checks). The two are implemented independently and tested to agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kaido.scene.vehicle import VehicleProfile

__all__ = [
    "EnvelopeResult",
    "EnvelopeState",
    "SafetyEnvelope",
    "apply_envelope_batch",
    "lateral_accel",
]

FloatArray = npt.NDArray[np.float64]

ACCEL_MAX = "accel_max"
ACCEL_MIN = "accel_min"
STEER_MAX = "steer_max"
LATERAL_ACCEL = "lateral_accel"
STEER_RATE = "steer_rate"
LATERAL_JERK = "lateral_jerk"
FAULT = "fault"
"""Tags of :attr:`EnvelopeResult.clamped` (a fault adds ``"fault:<input>"`` per bad input)."""


@dataclass(frozen=True)
class EnvelopeState:
    """The envelope's previous output, against which rates are limited."""

    wheel_angle: float
    """[rad] previous road-wheel angle output, positive to the left."""
    lateral_accel: float
    """[m/s²] lateral acceleration of the previous output, positive to the left."""


@dataclass(frozen=True)
class EnvelopeResult:
    """A command inside the envelope, what was changed, and the state for the next call."""

    accel: float
    """[m/s²] longitudinal acceleration command."""
    wheel_angle: float
    """[rad] road-wheel angle command, positive to the left."""
    clamped: tuple[str, ...]
    """Tags of the limits that changed the command (``accel_max``, ``accel_min``,
    ``steer_max``, ``lateral_accel``, ``steer_rate``, ``lateral_jerk``, ``fault:<input>``)."""
    state: EnvelopeState
    """Pass to the next :meth:`SafetyEnvelope.apply`."""
    fault: str | None = None
    """Why the command was replaced by a controlled stop (None: it was not)."""


def lateral_accel(speed: float, wheel_angle: float, wheelbase: float) -> float:
    """``v² · tan(δ) / L`` [m/s²], 0 for a straight wheel at any speed (no ``inf · 0``)."""
    if wheel_angle == 0.0:
        return 0.0
    return speed * speed * math.tan(wheel_angle) / wheelbase


def _clip(value: float, lo: float, hi: float) -> float:
    return lo if value < lo else hi if value > hi else value


class SafetyEnvelope:
    """Scalar safety envelope of one vehicle (see the module docstring for the law)."""

    def __init__(self, profile: VehicleProfile) -> None:
        if not isinstance(profile, VehicleProfile):
            raise TypeError(
                f"SafetyEnvelope.profile: expected VehicleProfile, got {type(profile).__name__}"
            )
        self.profile = profile

    def initial_state(self, wheel_angle: float, speed: float) -> EnvelopeState:
        """A previous state consistent with a measured wheel angle [rad] at ``speed`` [m/s].

        Non-finite measurements give a straight wheel / zero lateral acceleration estimate.
        """
        wheel = float(wheel_angle) if math.isfinite(wheel_angle) else 0.0
        lat = (
            lateral_accel(float(speed), wheel, self.profile.wheelbase)
            if math.isfinite(speed)
            else 0.0
        )
        return EnvelopeState(wheel_angle=wheel, lateral_accel=lat if math.isfinite(lat) else 0.0)

    def apply(
        self, accel: float, wheel_angle: float, speed: float, state: EnvelopeState, dt: float
    ) -> EnvelopeResult:
        """Bound ``accel`` [m/s²] and ``wheel_angle`` [rad] at ``speed`` [m/s], ``dt`` [s] after
        the output that left ``state``."""
        if not isinstance(state, EnvelopeState):
            raise TypeError(
                f"SafetyEnvelope.apply: state must be EnvelopeState, got {type(state).__name__}"
            )
        p = self.profile
        accel, wheel_angle, speed, dt = float(accel), float(wheel_angle), float(speed), float(dt)
        prev_wheel, prev_lat = float(state.wheel_angle), float(state.lateral_accel)
        inputs = {
            "accel": accel,
            "wheel_angle": wheel_angle,
            "speed": speed,
            "dt": dt,
            "state.wheel_angle": prev_wheel,
            "state.lateral_accel": prev_lat,
        }
        bad = [name for name, value in inputs.items() if not math.isfinite(value)]
        if math.isfinite(dt) and dt < 0.0:
            bad.append("dt")
        if not bad:
            a = _clip(accel, p.envelope_accel_min, p.envelope_accel_max)
            tags: list[str] = []
            if a > accel:
                tags.append(ACCEL_MIN)
            elif a < accel:
                tags.append(ACCEL_MAX)
            wheel, lat, lateral_tag = self._lateral(wheel_angle, speed, prev_wheel, prev_lat, dt)
            if lateral_tag:
                tags.append(lateral_tag)
            return EnvelopeResult(a, wheel, tuple(tags), EnvelopeState(wheel, lat))

        reason = "non-finite or invalid input: " + ", ".join(
            f"{name}={inputs[name]!r}" for name in bad
        )
        held = prev_wheel if math.isfinite(prev_wheel) else 0.0
        if math.isfinite(speed):
            step = dt if math.isfinite(dt) and dt >= 0.0 else 0.0
            known_lat = prev_lat if math.isfinite(prev_lat) else math.nan
            wheel, lat, _ = self._lateral(held, speed, held, known_lat, step)
        else:
            wheel = _clip(held, -p.max_steer, p.max_steer)
            limit = p.envelope_lateral_accel
            lat = _clip(prev_lat, -limit, limit) if math.isfinite(prev_lat) else 0.0
        tags = [f"{FAULT}:{name}" for name in bad]
        return EnvelopeResult(
            p.envelope_accel_min, wheel, tuple(tags), EnvelopeState(wheel, lat), fault=reason
        )

    def _lateral(
        self, wheel: float, speed: float, prev_wheel: float, prev_lat: float, dt: float
    ) -> tuple[float, float, str]:
        """(wheel angle, its lateral accel, tag of the binding limit or ""); finite inputs,
        except ``prev_lat`` NaN meaning "unknown" (no jerk limit)."""
        p = self.profile
        base = p.wheelbase
        v2 = speed * speed
        # 1. hard bounds: steering lock and lateral acceleration
        lat_bound = math.atan(p.envelope_lateral_accel * base / v2) if v2 > 0.0 else math.inf
        if lat_bound < p.max_steer:
            hard, hard_tag = lat_bound, LATERAL_ACCEL
        else:
            hard, hard_tag = p.max_steer, STEER_MAX
        # 2. steering rate, within the hard bounds (nearest hard bound when out of reach)
        rate_lo = prev_wheel - p.max_steer_rate * dt
        rate_hi = prev_wheel + p.max_steer_rate * dt
        lo, lo_tag = (rate_lo, STEER_RATE) if rate_lo > -hard else (-hard, hard_tag)
        hi, hi_tag = (rate_hi, STEER_RATE) if rate_hi < hard else (hard, hard_tag)
        if lo > hi:
            if rate_hi < -hard:
                lo, hi, lo_tag, hi_tag = -hard, -hard, hard_tag, hard_tag
            else:
                lo, hi, lo_tag, hi_tag = hard, hard, hard_tag, hard_tag
        # 3. lateral jerk, within what is left
        out = wheel
        tag = ""
        if 0.0 < v2 < math.inf and math.isfinite(prev_lat):  # (at v² = inf, δ = 0 already)
            step = p.envelope_lateral_jerk * dt
            jerk_lo = math.atan((prev_lat - step) * base / v2)
            jerk_hi = math.atan((prev_lat + step) * base / v2)
            if out < jerk_lo:
                out, tag = jerk_lo, LATERAL_JERK
            elif out > jerk_hi:
                out, tag = jerk_hi, LATERAL_JERK
        if out < lo:
            out, tag = lo, lo_tag
        elif out > hi:
            out, tag = hi, hi_tag
        return out, lateral_accel(speed, out, base), tag


def apply_envelope_batch(
    profile: VehicleProfile,
    accel: npt.ArrayLike,
    wheel_angle: npt.ArrayLike,
    speed: npt.ArrayLike,
    prev_wheel: npt.ArrayLike,
    prev_lat: npt.ArrayLike,
    dt: npt.ArrayLike,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """:meth:`SafetyEnvelope.apply` over ``(N,)`` arrays.

    ``accel`` [m/s²], ``wheel_angle`` [rad], ``speed`` [m/s], ``prev_wheel`` [rad] and
    ``prev_lat`` [m/s²] are ``(N,)``; ``dt`` [s] is a scalar or ``(N,)``. Returns ``(accel,
    wheel_angle, lateral_accel)``, each ``(N,)`` float64 and finite.
    """
    if not isinstance(profile, VehicleProfile):
        raise TypeError(
            f"apply_envelope_batch: profile must be VehicleProfile, got {type(profile).__name__}"
        )
    named = {
        "accel": accel,
        "wheel_angle": wheel_angle,
        "speed": speed,
        "prev_wheel": prev_wheel,
        "prev_lat": prev_lat,
    }
    arrays = {name: np.asarray(value, dtype=np.float64) for name, value in named.items()}
    n = arrays["accel"].shape
    if len(n) != 1:
        raise ValueError(f"apply_envelope_batch: accel must be (N,), got shape {n}")
    for name, array in arrays.items():
        if array.shape != n:
            raise ValueError(f"apply_envelope_batch: {name} must have shape {n}, got {array.shape}")
    step = np.asarray(dt, dtype=np.float64)
    if step.ndim > 1 or (step.ndim == 1 and step.shape != n):
        raise ValueError(
            f"apply_envelope_batch: dt must be a scalar or of shape {n}, got {step.shape}"
        )
    step = np.broadcast_to(step, n)
    a_in, w_in, v, pw, pl = (arrays[name] for name in named)
    p = profile
    base = p.wheelbase

    with np.errstate(all="ignore"):
        finite = (
            np.isfinite(a_in)
            & np.isfinite(w_in)
            & np.isfinite(v)
            & np.isfinite(pw)
            & np.isfinite(pl)
            & np.isfinite(step)
        )
        ok = finite & (step >= 0.0)
        fault = ~ok
        speed_known = np.isfinite(v)

        accel_out = np.where(ok, np.clip(a_in, p.envelope_accel_min, p.envelope_accel_max), 0.0)
        accel_out[fault] = p.envelope_accel_min

        held = np.where(np.isfinite(pw), pw, 0.0)
        target = np.where(ok, w_in, held)
        prev = held
        h = np.where(np.isfinite(step) & (step >= 0.0), step, 0.0)
        lat_prev = np.where(np.isfinite(pl), pl, np.nan)
        v_safe = np.where(speed_known, v, 0.0)
        v2 = v_safe * v_safe

        # 1. hard bounds
        lat_bound = np.where(v2 > 0.0, np.arctan(p.envelope_lateral_accel * base / v2), np.inf)
        hard = np.minimum(lat_bound, p.max_steer)
        # 2. steering rate within them
        rate_lo = prev - p.max_steer_rate * h
        rate_hi = prev + p.max_steer_rate * h
        lo = np.maximum(rate_lo, -hard)
        hi = np.minimum(rate_hi, hard)
        empty = lo > hi
        below = empty & (rate_hi < -hard)
        above = empty & ~below
        lo = np.where(below, -hard, np.where(above, hard, lo))
        hi = np.where(below, -hard, np.where(above, hard, hi))
        # 3. lateral jerk within what is left
        jerk = p.envelope_lateral_jerk * h
        use_jerk = (v2 > 0.0) & np.isfinite(v2) & np.isfinite(lat_prev)
        jerk_lo = np.where(use_jerk, np.arctan((lat_prev - jerk) * base / v2), -np.inf)
        jerk_hi = np.where(use_jerk, np.arctan((lat_prev + jerk) * base / v2), np.inf)
        wheel = np.clip(np.clip(target, jerk_lo, jerk_hi), lo, hi)
        lat = np.where(wheel == 0.0, 0.0, v2 * np.tan(wheel) / base)

        # unknown speed: hold the wheel within the lock, carry the lateral estimate
        unknown = ~speed_known
        wheel = np.where(unknown, np.clip(held, -p.max_steer, p.max_steer), wheel)
        carried = np.where(
            np.isfinite(pl), np.clip(pl, -p.envelope_lateral_accel, p.envelope_lateral_accel), 0.0
        )
        lat = np.where(unknown, carried, lat)
    return accel_out, wheel, lat
