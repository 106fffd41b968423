"""Vehicle profiles: geometry, actuator dynamics and the safety envelope of one vehicle.

A profile is shared vocabulary: the embedded simulator's ego dynamics, the planner's rollouts and
the runtime's safety envelope read the same numbers. Profiles live as YAML in
``configs/vehicles/``; :func:`load_vehicle_profile` reads one (unknown keys and bad values are
errors that name the file, the key and the value; keys left out keep the defaults, a mid-size
sedan). :func:`vehicle_profiles` lists the shipped profiles.

What a profile holds:

* **Geometry**: length, width, height, wheelbase, track width, rear overhang (the front overhang
  is derived), mass and the centre of gravity's distance ahead of the rear axle.
* **Steering**: the road-wheel angle at full lock and its rate, the steering ratio (steering-wheel
  angle / road-wheel angle) and, derived from them, the steering-wheel angle and rate limits.
* **Longitudinal**: what the powertrain and brakes can do, their lags, top speed and resistance.
* **Safety envelope** (what the stack may command, :mod:`kaido.planning.envelope`): acceleration
  bounds and the ISO 11270 lateral acceleration and jerk limits.

Plausibility rules checked on construction (each error names the field and the value): every
number finite and non-negative (except ``envelope_accel_min``), ``0 < wheelbase < length``,
``rear_overhang <= length - wheelbase``, ``0 < track_width < width``, ``mass > 0``,
``0 < cg_to_rear_axle < wheelbase``, ``0 < max_steer < 60°``, steering ratio within
``[STEERING_RATIO_MIN, STEERING_RATIO_MAX]``, the envelope within what the vehicle can do.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"
VEHICLES_DIR = REPO_CONFIGS / "vehicles"
DEFAULT_VEHICLE = VEHICLES_DIR / "sedan.yaml"

STEERING_RATIO_MIN = 5.0
"""Smallest steering ratio a profile may have (racing karts are ~5)."""
STEERING_RATIO_MAX = 30.0
"""Largest steering ratio a profile may have (heavy trucks reach ~25-30)."""


DEFAULT_TRACK_SHARE = 0.865
"""Track width / body width of a profile that gives no track width (rounded to the mm: 1.60 m
of 1.85 m)."""
DEFAULT_CG_SHARE = 0.5895
"""Centre of gravity ahead of the rear axle / wheelbase of a profile that gives none (rounded
to the mm: 59 % of the weight on the front axle, as a front-engined car; 1.68 m of 2.85 m)."""


@dataclass(frozen=True)
class VehicleProfile:
    """One vehicle. Lengths [m], angles [rad], times [s], accelerations [m/s²]."""

    name: str = "sedan"
    length: float = 4.85
    """[m] bumper to bumper."""
    width: float = 1.85
    """[m] body width without mirrors."""
    height: float = 1.45
    """[m]"""
    wheelbase: float = 2.85
    """[m] rear axle to front axle."""
    rear_overhang: float = 1.0
    """[m] rear bumper to rear axle (the ego frame's origin is the rear axle)."""
    track_width: float = math.nan
    """[m] distance between the left and right wheel centres (mean of front and rear); NaN
    (the default) is :data:`DEFAULT_TRACK_SHARE` of the width (1.60 m on the default sedan)."""
    mass: float = 1600.0
    """[kg] kerb mass with a driver."""
    cg_to_rear_axle: float = math.nan
    """[m] centre of gravity ahead of the rear axle; NaN (the default) is
    :data:`DEFAULT_CG_SHARE` of the wheelbase (59 % of the weight on the front axle, 1.68 m on
    the default sedan)."""
    steering_ratio: float = 15.0
    """[-] steering-wheel angle / road-wheel angle."""
    max_steer: float = math.radians(35.0)
    """[rad] largest road-wheel angle, reached at ``Control.steer`` = ±1."""
    max_steer_rate: float = math.radians(60.0)
    """[rad/s] road-wheel angle rate the steering actuator can achieve."""
    steer_time_constant: float = 0.10
    """[s] first-order lag of the road-wheel angle behind its command."""
    max_accel: float = 3.5
    """[m/s²] acceleration at full throttle from rest (what the powertrain can do)."""
    max_decel: float = 8.0
    """[m/s²] deceleration at full brake (what the brakes can do)."""
    throttle_time_constant: float = 0.30
    """[s] first-order lag of the traction force behind the throttle."""
    brake_time_constant: float = 0.15
    """[s] first-order lag of the braking force behind the brake pedal."""
    max_speed: float = 50.0
    """[m/s] top speed; drive force fades to zero there."""
    rolling_decel: float = 0.15
    """[m/s²] rolling resistance and drag at low speed when coasting."""
    drag_coefficient: float = 0.0004
    """[1/m] quadratic drag: decel = drag_coefficient * v²."""
    envelope_accel_min: float = -3.5
    """[m/s²] safety envelope: strongest deceleration the stack may command (ISO-style comfort)."""
    envelope_accel_max: float = 2.0
    """[m/s²] safety envelope: strongest acceleration the stack may command."""
    envelope_lateral_accel: float = 3.0
    """[m/s²] safety envelope: |lateral acceleration| (ISO 11270)."""
    envelope_lateral_jerk: float = 5.0
    """[m/s³] safety envelope: |lateral jerk| (ISO 11270)."""

    def __post_init__(self) -> None:
        if isinstance(self.track_width, float) and math.isnan(self.track_width):
            object.__setattr__(self, "track_width", round(DEFAULT_TRACK_SHARE * self.width, 3))
        if isinstance(self.cg_to_rear_axle, float) and math.isnan(self.cg_to_rear_axle):
            object.__setattr__(self, "cg_to_rear_axle", round(DEFAULT_CG_SHARE * self.wheelbase, 3))
        for f in dataclasses.fields(self):
            if f.name == "name":
                continue
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"VehicleProfile.{f.name} must be a finite number, got {value!r}")
            if f.name != "envelope_accel_min" and value < 0:
                raise ValueError(f"VehicleProfile.{f.name} must be >= 0, got {value}")
        if not 0 < self.wheelbase < self.length:
            raise ValueError(
                f"VehicleProfile.wheelbase must be in (0, length={self.length}), "
                f"got {self.wheelbase}"
            )
        if not 0 <= self.rear_overhang < self.length - self.wheelbase + 1e-9:
            raise ValueError(
                f"VehicleProfile.rear_overhang must be in [0, length - wheelbase], got "
                f"{self.rear_overhang}"
            )
        if not 0 < self.max_steer < math.radians(60.0):
            raise ValueError(f"VehicleProfile.max_steer must be in (0, 60°), got {self.max_steer}")
        if not 0 < self.track_width < self.width:
            raise ValueError(
                f"VehicleProfile.track_width must be in (0, width={self.width}), "
                f"got {self.track_width}"
            )
        if not self.mass > 0:
            raise ValueError(f"VehicleProfile.mass must be > 0, got {self.mass}")
        if not 0 < self.cg_to_rear_axle < self.wheelbase:
            raise ValueError(
                f"VehicleProfile.cg_to_rear_axle must lie between the axles, in (0, "
                f"wheelbase={self.wheelbase}), got {self.cg_to_rear_axle}"
            )
        if not STEERING_RATIO_MIN <= self.steering_ratio <= STEERING_RATIO_MAX:
            raise ValueError(
                f"VehicleProfile.steering_ratio must be in [{STEERING_RATIO_MIN}, "
                f"{STEERING_RATIO_MAX}], got {self.steering_ratio}"
            )
        if not self.max_steer_rate > 0:
            raise ValueError(
                f"VehicleProfile.max_steer_rate must be > 0, got {self.max_steer_rate}"
            )
        if not self.envelope_accel_min < 0 < self.envelope_accel_max:
            raise ValueError(
                "VehicleProfile.envelope_accel_min < 0 < envelope_accel_max must hold, got "
                f"{self.envelope_accel_min}, {self.envelope_accel_max}"
            )
        if self.envelope_accel_max > self.max_accel or -self.envelope_accel_min > self.max_decel:
            raise ValueError(
                "VehicleProfile envelope must lie within what the vehicle can do: "
                f"accel {self.envelope_accel_max} <= {self.max_accel}, decel "
                f"{-self.envelope_accel_min} <= {self.max_decel}"
            )

    @property
    def rear_axle_to_center(self) -> float:
        """[m] from the rear axle (ego origin) forward to the box centre."""
        return 0.5 * self.length - self.rear_overhang

    @property
    def front_overhang(self) -> float:
        """[m] from the front axle forward to the front bumper."""
        return self.length - self.wheelbase - self.rear_overhang

    @property
    def cg_to_front_axle(self) -> float:
        """[m] from the centre of gravity forward to the front axle."""
        return self.wheelbase - self.cg_to_rear_axle

    @property
    def front_axle_load_fraction(self) -> float:
        """[-] share of the static weight on the front axle."""
        return self.cg_to_rear_axle / self.wheelbase

    @property
    def max_steering_wheel_angle(self) -> float:
        """[rad] steering-wheel angle at full lock (``max_steer * steering_ratio``)."""
        return self.max_steer * self.steering_ratio

    @property
    def max_steering_wheel_rate(self) -> float:
        """[rad/s] steering-wheel rate (``max_steer_rate * steering_ratio``)."""
        return self.max_steer_rate * self.steering_ratio

    def road_wheel_angle(self, steering_wheel_angle: float) -> float:
        """[rad] road-wheel angle of a steering-wheel angle [rad] (same sign convention)."""
        return steering_wheel_angle / self.steering_ratio

    @property
    def min_turn_radius(self) -> float:
        """[m] of the rear axle at full lock."""
        return self.wheelbase / math.tan(self.max_steer)


_ANGLE_FIELDS = {"max_steer": "max_steer_deg", "max_steer_rate": "max_steer_rate_deg_s"}


def vehicle_profile_from_dict(
    data: dict[str, Any], where: str = "vehicle profile"
) -> VehicleProfile:
    """A profile from a mapping; angles are given in degrees under the ``*_deg`` keys."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(VehicleProfile)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        field = next((f for f, k in _ANGLE_FIELDS.items() if k == key), key)
        if field not in names or (field in _ANGLE_FIELDS and key == field):
            raise ValueError(f"{where}: unknown key {key!r}")
        if field in _ANGLE_FIELDS:
            if not isinstance(value, int | float):
                raise ValueError(f"{where}: {key} must be a number, got {value!r}")
            value = math.radians(value)
        kwargs[field] = value
    try:
        return VehicleProfile(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None


def load_vehicle_profile(path: Path | str = DEFAULT_VEHICLE) -> VehicleProfile:
    """Read a vehicle profile YAML file; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such vehicle profile")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: malformed YAML: {err}") from None
    return vehicle_profile_from_dict(data, str(path))


def vehicle_profiles(folder: Path | str = VEHICLES_DIR) -> dict[str, VehicleProfile]:
    """Every ``*.yaml`` profile in ``folder`` by file stem, sorted; an empty folder is an error."""
    folder = Path(folder)
    paths = sorted(folder.glob("*.yaml"))
    if not paths:
        raise FileNotFoundError(f"{folder}: no vehicle profiles (*.yaml)")
    return {path.stem: load_vehicle_profile(path) for path in paths}
