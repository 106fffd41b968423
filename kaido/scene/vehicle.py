"""Vehicle profiles: geometry, actuator dynamics and the safety envelope of one vehicle.

A profile is shared vocabulary: the embedded simulator's ego dynamics, the planner's rollouts and
the runtime's safety envelope read the same numbers. Profiles live as YAML in
``configs/vehicles/``; :func:`load_vehicle_profile` reads one (unknown or missing keys are errors
that name the file and the key).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DEFAULT_VEHICLE = REPO_CONFIGS / "vehicles" / "sedan.yaml"


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
