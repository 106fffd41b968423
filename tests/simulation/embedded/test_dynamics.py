"""Behaviour of the embedded simulator's kinematic bicycle with actuator lags."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaido.scene.agents import Control
from kaido.scene.geometry import SE2
from kaido.scene.vehicle import VehicleProfile, load_vehicle_profile
from kaido.simulation.embedded.dynamics import (
    BicycleDynamics,
    DynamicsConfig,
    DynamicsState,
)

PROFILE = load_vehicle_profile()


def make(speed: float = 0.0, pose: SE2 | None = None) -> BicycleDynamics:
    dyn = BicycleDynamics(PROFILE)
    dyn.reset(pose or SE2(0.0, 0.0, 0.0), speed)
    return dyn


def run(dyn: BicycleDynamics, control: Control, seconds: float, dt: float) -> list[DynamicsState]:
    return [dyn.step(control, dt) for _ in range(round(seconds / dt))]


def fade(v: float) -> float:
    return max(1.0 - (v / PROFILE.max_speed) ** 2, 0.0)


def resistance(v: float) -> float:
    return PROFILE.rolling_decel + PROFILE.drag_coefficient * v * v


def test_full_throttle_approaches_profile_accel_then_fades_near_top_speed() -> None:
    dyn = make()
    dt = 0.05
    states = run(dyn, Control(throttle=1.0), 120.0, dt)
    speeds = np.array([s.speed for s in states])
    assert np.all(np.diff(speeds) >= -1e-12), "full throttle must never slow the car"
    # after five throttle time constants the acceleration is what the powertrain gives
    i = round(5 * PROFILE.throttle_time_constant / dt)
    s = states[i]
    expected = PROFILE.max_accel * fade(s.speed) - resistance(s.speed)
    assert s.accel == pytest.approx(expected, rel=0.03)
    assert s.accel > 0.9 * PROFILE.max_accel
    # near top speed the drive force has faded: the car settles below max_speed
    final = states[-1]
    assert final.speed < PROFILE.max_speed
    assert final.speed > 0.8 * PROFILE.max_speed
    assert final.accel < 0.05 * PROFILE.max_accel
    # terminal speed where drive equals resistance
    terminal = math.sqrt(
        (PROFILE.max_accel - PROFILE.rolling_decel)
        / (PROFILE.max_accel / PROFILE.max_speed**2 + PROFILE.drag_coefficient)
    )
    assert final.speed == pytest.approx(terminal, rel=0.02)


@pytest.mark.parametrize("dt", [0.01, 0.05, 0.1])
def test_full_brake_from_20_stops_in_braking_plus_lag_distance(dt: float) -> None:
    v0 = 20.0
    dyn = make(v0)
    x0 = dyn.state.x
    states = run(dyn, Control(brake=1.0), 6.0, dt)
    assert states[-1].speed == 0.0
    distance = states[-1].x - x0
    expected = v0**2 / (2 * PROFILE.max_decel) + v0 * PROFILE.brake_time_constant
    assert distance == pytest.approx(expected, rel=0.10)
    speeds = np.array([s.speed for s in states])
    assert np.all(np.diff(speeds) <= 1e-12)
    assert np.all(speeds >= 0.0)


def fit_circle(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares (Kåsa) circle through points (N, 2): centre and radius."""
    a = np.column_stack([2 * points[:, 0], 2 * points[:, 1], np.ones(len(points))])
    b = (points**2).sum(axis=1)
    (cx, cy, c), *_ = np.linalg.lstsq(a, b, rcond=None)
    return np.array([cx, cy]), math.sqrt(c + cx * cx + cy * cy)


@pytest.mark.parametrize("steer", [-0.2, 0.2, -0.6, 0.9])
def test_constant_steer_drives_a_circle_of_the_kinematic_radius(steer: float) -> None:
    dyn = make(3.0)
    control = Control(throttle=0.05, steer=steer)
    run(dyn, control, 2.0, 0.05)  # let the wheel angle settle
    states = run(dyn, control, 25.0, 0.05)
    wheel = -steer * PROFILE.max_steer
    assert states[-1].wheel_angle == pytest.approx(wheel, abs=1e-9)
    points = np.array([[s.x, s.y] for s in states])
    centre, radius = fit_circle(points)
    expected = PROFILE.wheelbase / math.tan(abs(wheel))
    assert radius == pytest.approx(expected, rel=0.02)
    # negative CARLA steer turns left (counter-clockwise, centre on the left), positive right
    last = states[-1]
    heading = np.array([math.cos(last.yaw), math.sin(last.yaw)])
    to_centre = centre - np.array([last.x, last.y])
    left = heading[0] * to_centre[1] - heading[1] * to_centre[0]
    if steer < 0:
        assert left > 0 and last.yaw_rate > 0 and last.lateral_accel > 0
    else:
        assert left < 0 and last.yaw_rate < 0 and last.lateral_accel < 0
    assert last.yaw_rate == pytest.approx(last.speed / expected * np.sign(-steer), rel=1e-9)


@pytest.mark.parametrize("dt", [0.01, 0.05, 0.1])
def test_steering_rate_limit_is_respected(dt: float) -> None:
    dyn = make(5.0)
    wheel = [dyn.state.wheel_angle]
    for k in range(round(4.0 / dt)):
        steer = 1.0 if (k * dt) % 2.0 < 1.0 else -1.0
        wheel.append(dyn.step(Control(steer=steer), dt).wheel_angle)
    rates = np.abs(np.diff(wheel)) / dt
    assert rates.max() <= PROFILE.max_steer_rate * (1 + 1e-9)
    assert rates.max() > 0.95 * PROFILE.max_steer_rate  # the limit is what binds here
    assert max(abs(w) for w in wheel) <= PROFILE.max_steer + 1e-12


@pytest.mark.parametrize("dt", [0.01, 0.05])
def test_lag_step_responses_reach_63_percent_at_one_time_constant(dt: float) -> None:
    target_fraction = 1.0 - math.exp(-1.0)
    # throttle from rest
    dyn = make()
    states = run(dyn, Control(throttle=1.0), PROFILE.throttle_time_constant, dt)
    fraction = states[-1].drive_accel / (PROFILE.max_accel * fade(states[-1].speed))
    assert fraction == pytest.approx(target_fraction, rel=0.10)
    # brake at speed
    dyn = make(20.0)
    states = run(dyn, Control(brake=1.0), PROFILE.brake_time_constant, dt)
    assert states[-1].brake_decel / PROFILE.max_decel == pytest.approx(target_fraction, rel=0.10)
    # a small steering step, so the rate limit does not bind
    steer = -0.05
    assert 0.05 * PROFILE.max_steer / PROFILE.steer_time_constant < PROFILE.max_steer_rate
    dyn = make(5.0)
    states = run(dyn, Control(steer=steer), PROFILE.steer_time_constant, dt)
    fraction = states[-1].wheel_angle / (-steer * PROFILE.max_steer)
    assert fraction == pytest.approx(target_fraction, rel=0.10)


@pytest.mark.parametrize(
    "control",
    [Control(brake=1.0), Control(brake=0.3), Control(hand_brake=True), Control(brake=0.2, steer=1)],
)
def test_braking_never_reverses_direction(control: Control) -> None:
    for v0, reverse in ((12.0, False), (-5.0, True)):
        dyn = make(v0)
        c = Control(control.throttle, control.steer, control.brake, reverse, control.hand_brake)
        speeds = np.array([s.speed for s in run(dyn, c, 15.0, 0.05)])
        assert speeds[-1] == 0.0
        assert np.all(np.sign(speeds) * np.sign(v0) >= 0), "braking carried the speed past zero"
        assert np.all(np.diff(np.abs(speeds)) <= 1e-12)


def test_hand_brake_decelerates_strongly() -> None:
    dyn = make(10.0)
    states = run(dyn, Control(hand_brake=True), 0.5, 0.05)
    assert states[-1].accel < -0.7 * DynamicsConfig().hand_brake_decel
    # the hand brake holds a car against full throttle
    dyn = make()
    states = run(dyn, Control(throttle=1.0, hand_brake=True), 3.0, 0.05)
    assert states[-1].speed == 0.0 and states[-1].x == 0.0


def test_reverse_gear_drives_backwards_and_forward_gear_never_does() -> None:
    dyn = make(pose=SE2(10.0, -3.0, math.pi / 2))
    states = run(dyn, Control(throttle=0.5, reverse=True), 4.0, 0.05)
    assert states[-1].speed < -1.0
    assert states[-1].y < -3.0 - 1.0  # facing +y, it moved towards -y
    assert states[-1].x == pytest.approx(10.0, abs=1e-9)
    assert states[-1].drive_accel < 0
    # top speed in reverse is bounded
    states = run(dyn, Control(throttle=1.0, reverse=True), 60.0, 0.1)
    assert -DynamicsConfig().reverse_max_speed < states[-1].speed < 0
    # shifting to drive while rolling backwards: brakes stop it at zero, throttle then moves
    # it forwards
    states = run(dyn, Control(brake=1.0), 5.0, 0.05)
    assert states[-1].speed == 0.0
    states = run(dyn, Control(throttle=0.5), 3.0, 0.05)
    assert all(s.speed >= 0 for s in states) and states[-1].speed > 1.0


control_strategy = st.builds(
    Control,
    throttle=st.floats(0, 1),
    steer=st.floats(-1, 1),
    brake=st.floats(0, 1),
    reverse=st.just(False),
    hand_brake=st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(
    controls=st.lists(st.tuples(control_strategy, st.integers(1, 20)), min_size=1, max_size=12),
    dt=st.sampled_from([0.01, 0.05, 0.1]),
    v0=st.floats(0.0, 30.0),
)
def test_forward_gear_speed_never_negative_and_limits_hold(
    controls: list[tuple[Control, int]], dt: float, v0: float
) -> None:
    dyn = make(v0)
    for control, repeat in controls:
        for _ in range(repeat):
            previous = dyn.state
            s = dyn.step(control, dt)
            assert s.speed >= 0.0
            assert s.speed <= max(v0, PROFILE.max_speed)
            assert abs(s.wheel_angle) <= PROFILE.max_steer + 1e-12
            assert abs(s.wheel_angle - previous.wheel_angle) <= PROFILE.max_steer_rate * dt + 1e-12
            assert 0.0 <= s.brake_decel <= PROFILE.max_decel
            assert 0.0 <= s.drive_accel <= PROFILE.max_accel
            moved = math.hypot(s.x - previous.x, s.y - previous.y)
            # the speed within a step exceeds its end values by at most max_accel * dt
            assert moved <= (max(previous.speed, s.speed) + PROFILE.max_accel * dt) * dt + 1e-9


def test_same_controls_give_identical_states_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    controls = [
        Control(
            throttle=float(rng.uniform()),
            steer=float(rng.uniform(-1, 1)),
            brake=float(rng.uniform() * (rng.uniform() < 0.3)),
            reverse=bool(rng.uniform() < 0.1),
            hand_brake=bool(rng.uniform() < 0.05),
        )
        for _ in range(400)
    ]
    runs = []
    for _ in range(2):
        dyn = make(4.0, SE2(1.0, 2.0, 0.3))
        runs.append([dyn.step(c, 0.05) for c in controls])
    assert runs[0] == runs[1]


def test_step_size_does_not_change_the_trajectory_much() -> None:
    """A 0.1 s step and a 0.01 s step under the same piecewise-constant controls agree."""
    schedule = [(Control(throttle=0.8, steer=-0.3), 3.0), (Control(brake=0.4, steer=0.5), 2.0)]
    ends = []
    for dt in (0.01, 0.1):
        dyn = make(2.0)
        for control, seconds in schedule:
            run(dyn, control, seconds, dt)
        ends.append(dyn.state)
    a, b = ends
    assert math.hypot(a.x - b.x, a.y - b.y) < 0.05
    assert a.speed == pytest.approx(b.speed, abs=0.02)
    assert a.yaw == pytest.approx(b.yaw, abs=0.005)


def test_coasting_decelerates_by_rolling_resistance_and_drag() -> None:
    dyn = make(25.0)
    states = run(dyn, Control(), 10.0, 0.05)
    speeds = np.array([s.speed for s in states])
    assert np.all(np.diff(speeds) < 0)
    s = states[-1]
    assert s.accel == pytest.approx(-resistance(s.speed), rel=0.02)
    # coasting to a stop ends at rest, not rolling backwards
    states = run(dyn, Control(), 200.0, 0.1)
    assert states[-1].speed == 0.0


@pytest.mark.parametrize("dt", [0.0, -0.05, math.nan, math.inf, 2.0])
def test_bad_dt_is_rejected_naming_dt(dt: float) -> None:
    dyn = make()
    with pytest.raises(ValueError, match="dt"):
        dyn.step(Control(), dt)


def test_bad_inputs_are_rejected() -> None:
    dyn = make()
    with pytest.raises(ValueError, match="speed"):
        dyn.reset(SE2(0.0, 0.0, 0.0), math.nan)
    with pytest.raises(TypeError, match="Control"):
        dyn.step((0.0, 0.0, 0.0), 0.05)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="VehicleProfile"):
        BicycleDynamics("sedan")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not finite"):
        DynamicsState(0.0, math.inf, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="max_substep"):
        DynamicsConfig(max_substep=0.0)


def test_ego_state_and_box_follow_the_state() -> None:
    profile = VehicleProfile()
    dyn = BicycleDynamics(profile)
    dyn.reset(SE2(5.0, -2.0, 0.7), 6.0)
    run(dyn, Control(throttle=0.4, steer=-0.3), 1.0, 0.05)
    s = dyn.state
    ego = dyn.ego_state(1_000_000_000)
    assert ego.timestamp_ns == 1_000_000_000
    assert ego.pose == SE2(s.x, s.y, s.yaw)
    assert ego.velocity == (s.speed, 0.0)
    assert ego.acceleration == (s.accel, s.lateral_accel)
    assert ego.yaw_rate == s.yaw_rate and ego.steering_angle == s.wheel_angle
    assert ego.steering_angle > 0  # negative CARLA steer is a left (positive) wheel angle
    box = dyn.ego_box()
    d = profile.rear_axle_to_center
    assert box.x == pytest.approx(s.x + d * math.cos(s.yaw))
    assert box.y == pytest.approx(s.y + d * math.sin(s.yaw))
    assert box.yaw == s.yaw and box.z == profile.height / 2
    assert (box.length, box.width, box.height) == (profile.length, profile.width, profile.height)
    # the rear bumper is rear_overhang behind the rear axle
    rear = np.array([box.x, box.y]) - 0.5 * profile.length * np.array(
        [math.cos(s.yaw), math.sin(s.yaw)]
    )
    assert np.hypot(*(rear - [s.x, s.y])) == pytest.approx(profile.rear_overhang)
