"""Every shipped vehicle profile is physically plausible (in the spirit of opendbc's car tests),
and the profile's validation names the field and the value it rejects."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from kaido.planning.envelope import SafetyEnvelope
from kaido.scene.vehicle import (
    DEFAULT_TRACK_SHARE,
    DEFAULT_VEHICLE,
    VEHICLES_DIR,
    VehicleProfile,
    load_vehicle_profile,
    vehicle_profiles,
)

PROFILES = vehicle_profiles()
NAMES = sorted(PROFILES)


def test_the_default_sedan_and_at_least_two_real_cars_ship() -> None:
    assert DEFAULT_VEHICLE.stem in PROFILES
    assert len(PROFILES) >= 3
    assert {"sedan", "hatchback", "rav4"} <= set(PROFILES)
    # the default sedan's file and the dataclass defaults agree (code without YAML = the default)
    assert load_vehicle_profile() == VehicleProfile()


@pytest.mark.parametrize("name", NAMES)
def test_geometry_is_plausible(name: str) -> None:
    p = PROFILES[name]
    assert p.name == name, "the profile's name is its file stem"
    assert 2.5 < p.length < 6.5 and 1.4 < p.width < 2.3 and 1.0 < p.height < 2.5
    assert 0.5 * p.length < p.wheelbase < p.length
    assert 0.5 < p.front_overhang < 1.3 and 0.5 < p.rear_overhang < 1.3
    assert p.front_overhang + p.wheelbase + p.rear_overhang == pytest.approx(p.length)
    assert 0.7 * p.width < p.track_width < p.width
    assert 800.0 < p.mass < 3500.0
    # centre of gravity between the axles, front-biased like every front-engined car
    assert 0.0 < p.cg_to_rear_axle < p.wheelbase
    assert 0.45 < p.front_axle_load_fraction < 0.70
    assert p.cg_to_front_axle + p.cg_to_rear_axle == pytest.approx(p.wheelbase)
    # the box centre lies between the axles too
    assert 0.0 < p.rear_axle_to_center < p.wheelbase


@pytest.mark.parametrize("name", NAMES)
def test_steering_is_plausible(name: str) -> None:
    p = PROFILES[name]
    assert 10.0 <= p.steering_ratio <= 25.0
    assert math.radians(25.0) < p.max_steer < math.radians(45.0)
    # 1.8 .. 4 turns lock to lock
    assert 1.8 <= 2.0 * math.degrees(p.max_steering_wheel_angle) / 360.0 <= 4.0
    assert math.radians(200.0) < p.max_steering_wheel_rate < math.radians(1500.0)
    assert p.max_steering_wheel_angle == pytest.approx(p.max_steer * p.steering_ratio)
    assert p.road_wheel_angle(p.max_steering_wheel_angle) == pytest.approx(p.max_steer)
    # kerb-to-kerb turning circle 9..13 m: rear-axle radius + half the track, out to the corner
    outer = math.hypot(p.min_turn_radius + 0.5 * p.track_width, p.wheelbase)
    assert 4.5 < outer < 6.5
    assert 0.02 < p.steer_time_constant < 0.5


@pytest.mark.parametrize("name", NAMES)
def test_longitudinal_limits_are_ordered(name: str) -> None:
    p = PROFILES[name]
    assert p.envelope_accel_min < 0.0 < p.envelope_accel_max
    assert p.envelope_accel_max <= p.max_accel < 6.0
    assert -p.envelope_accel_min <= p.max_decel <= 11.0  # ~1.1 g with good tyres
    assert 25.0 < p.max_speed < 80.0
    assert p.throttle_time_constant > p.brake_time_constant > 0.0
    assert 0.0 < p.rolling_decel < 0.5
    # the drag alone at top speed stays below what the powertrain can do
    assert p.drag_coefficient * p.max_speed**2 < p.max_accel


@pytest.mark.parametrize("name", NAMES)
def test_envelope_is_the_iso_11270_and_comfort_default(name: str) -> None:
    p = PROFILES[name]
    assert p.envelope_accel_min == -3.5 and p.envelope_accel_max == 2.0
    assert p.envelope_lateral_accel == 3.0 and p.envelope_lateral_jerk == 5.0
    # the envelope reads the same profile: at 20 m/s its lateral bound is v^2 tan(d) / L = 3
    env = SafetyEnvelope(p)
    out = env.apply(5.0, p.max_steer, 20.0, env.initial_state(p.max_steer, 20.0), 0.02)
    assert abs(out.state.lateral_accel) == pytest.approx(p.envelope_lateral_accel)
    assert out.accel == p.envelope_accel_max


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cg_to_rear_axle", 3.0, "cg_to_rear_axle must lie between the axles"),
        ("cg_to_rear_axle", 0.0, "cg_to_rear_axle must lie between the axles"),
        ("track_width", 1.9, "track_width must be in (0, width=1.85), got 1.9"),
        ("steering_ratio", 3.0, "steering_ratio must be in [5.0, 30.0], got 3.0"),
        ("mass", 0.0, "mass must be > 0, got 0.0"),
        ("mass", math.nan, "mass must be a finite number"),
        ("max_steer_rate", 0.0, "max_steer_rate must be > 0"),
        ("wheelbase", 5.0, "wheelbase must be in (0, length=4.85), got 5.0"),
    ],
)
def test_implausible_values_are_refused_naming_field_and_value(
    field: str, value: float, message: str
) -> None:
    changes: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=r"VehicleProfile\." + field) as err:
        dataclasses.replace(VehicleProfile(), **changes)
    assert message in str(err.value)


def test_yaml_errors_name_the_file_and_key(tmp_path: Path) -> None:
    data = yaml.safe_load((VEHICLES_DIR / "rav4.yaml").read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**data, "steering_ratio": 40.0}))
    with pytest.raises(ValueError, match=r"bad\.yaml: VehicleProfile\.steering_ratio .* 40\.0"):
        load_vehicle_profile(bad)
    bad.write_text(yaml.safe_dump({**data, "track": 1.5}))
    with pytest.raises(ValueError, match=r"bad\.yaml: unknown key 'track'"):
        load_vehicle_profile(bad)
    # keys left out keep the defaults (old files without the new keys still load)
    old = {k: v for k, v in data.items() if k not in ("track_width", "mass", "steering_ratio")}
    bad.write_text(yaml.safe_dump(old))
    profile = load_vehicle_profile(bad)
    assert profile.track_width == round(DEFAULT_TRACK_SHARE * data["width"], 3)
    assert profile.steering_ratio == VehicleProfile().steering_ratio
    assert profile.wheelbase == data["wheelbase"]


def test_an_empty_folder_has_no_profiles(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no vehicle profiles"):
        vehicle_profiles(tmp_path)


def test_profiles_without_track_or_cg_derive_them_from_the_body() -> None:
    # a small car (wheelbase shorter than the default CG distance): derived, so still valid
    small = VehicleProfile(length=2.5, width=1.4, wheelbase=1.2, rear_overhang=0.6)
    assert 0.0 < small.cg_to_rear_axle < small.wheelbase
    assert 0.0 < small.track_width < small.width
    assert VehicleProfile().track_width == 1.6 and VehicleProfile().cg_to_rear_axle == 1.68
