"""Trajectory tracking in closed loop with the embedded simulator's bicycle dynamics."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from kaido.planning.controller import (
    ControllerConfig,
    ControllerDebug,
    TrajectoryController,
    pedals_for_accel,
)
from kaido.planning.types import TrajIndex
from kaido.scene.agents import Control, EgoState
from kaido.scene.geometry import SE2
from kaido.scene.vehicle import VehicleProfile
from kaido.simulation.embedded.dynamics import BicycleDynamics

PROFILE = VehicleProfile()
PLAN_DT = 0.1
T = 81
CONTROL_DT = 0.02
TIMES = np.arange(T) * PLAN_DT
ORIGIN = SE2(0.0, 0.0, 0.0)


@dataclass
class Run:
    """Per control tick: time, state after the step, command, debug."""

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray
    speed: np.ndarray
    controls: list[Control]
    debug: list[ControllerDebug]

    @property
    def lateral_error(self) -> np.ndarray:
        return np.array([d.lateral_error for d in self.debug])


Planner = Callable[[EgoState, float], np.ndarray]
"""(ego, time) → trajectory (T, 6), called at 10 Hz."""


def drive(
    planner: Planner,
    seconds: float,
    pose: SE2 = ORIGIN,
    speed: float = 0.0,
    controller: TrajectoryController | None = None,
    replan: bool = True,
) -> Run:
    dynamics = BicycleDynamics(PROFILE)
    dynamics.reset(pose, speed)
    controller = controller or TrajectoryController(PROFILE)
    per_plan = round(PLAN_DT / CONTROL_DT)
    rows, controls, debug = [], [], []
    trajectory = np.empty((T, 6))
    since = 0.0
    for k in range(round(seconds / CONTROL_DT)):
        now = k * CONTROL_DT
        ego = dynamics.ego_state(round(now * 1e9))
        if k == 0 or (replan and k % per_plan == 0):
            trajectory, since = planner(ego, now), 0.0
        control, info = controller.command(ego, trajectory, since, CONTROL_DT)
        state = dynamics.step(control, CONTROL_DT)
        since += CONTROL_DT
        rows.append((now + CONTROL_DT, state.x, state.y, state.yaw, state.speed))
        controls.append(control)
        debug.append(info)
    t, x, y, yaw, v = np.array(rows).T
    return Run(t, x, y, yaw, v, controls, debug)


def assert_well_formed(run: Run) -> None:
    """Never throttle and brake together; every command inside the envelope."""
    for control, info in zip(run.controls, run.debug, strict=True):
        assert not (control.throttle > 0.0 and control.brake > 0.0), control
        assert PROFILE.envelope_accel_min <= info.accel_command <= PROFILE.envelope_accel_max
        assert abs(info.wheel_angle_command) <= PROFILE.max_steer


def trajectory_along(x, y, yaw, speed, accel, curvature) -> np.ndarray:
    out = np.empty((T, len(TrajIndex)))
    out[:, TrajIndex.X], out[:, TrajIndex.Y], out[:, TrajIndex.YAW] = x, y, yaw
    out[:, TrajIndex.SPEED], out[:, TrajIndex.ACCEL] = speed, accel
    out[:, TrajIndex.CURVATURE] = curvature
    return out


# -- straight, constant speed ----------------------------------------------------------------


def straight_planner(speed: float) -> Planner:
    """Constant ``speed`` along the x axis from the ego's projection on it."""

    def plan(ego: EgoState, _now: float) -> np.ndarray:
        x = ego.pose.x + speed * TIMES
        return trajectory_along(x, 0.0, 0.0, speed, 0.0, 0.0)

    return plan


def test_tracks_a_straight_constant_speed_trajectory():
    run = drive(straight_planner(10.0), 30.0)
    assert_well_formed(run)
    steady = run.t > 15.0
    assert np.max(np.abs(run.speed[steady] - 10.0)) < 0.2
    assert np.max(np.abs(run.y)) < 1e-6
    assert run.speed.max() < 11.0  # no large overshoot from rest


def test_lateral_offset_is_corrected_and_the_steer_sign_is_carla():
    # 1 m LEFT of the path: the car must steer RIGHT, which is steer > 0 in CARLA
    run = drive(straight_planner(8.0), 10.0, pose=SE2(0.0, 1.0, 0.0), speed=8.0)
    assert_well_formed(run)
    assert run.debug[0].lateral_error == pytest.approx(1.0)
    assert run.controls[1].steer > 0.0
    assert run.debug[1].wheel_angle_command < 0.0
    assert np.max(np.abs(run.y[run.t > 5.0])) < 0.05
    assert np.max(np.abs(run.y)) <= 1.0 + 1e-6  # no overshoot beyond where it started


@pytest.mark.parametrize("speed", [3.0, 15.0, 30.0])
def test_large_offsets_converge_without_oscillation(speed):
    # 2 m off the path: the envelope saturates the lateral response on the way back
    run = drive(straight_planner(speed), 12.0, pose=SE2(0.0, 2.0, 0.0), speed=speed)
    assert_well_formed(run)
    assert -run.y.min() < 0.2  # overshoot on the other side
    assert np.max(np.abs(run.y[run.t > 8.0])) < 0.02


# -- curve -----------------------------------------------------------------------------------

RADIUS = 30.0
ENTRY = 20.0


def curve_pose(s: np.ndarray, side: float) -> tuple[np.ndarray, ...]:
    """A straight of ``ENTRY`` m then an arc of ``RADIUS`` to the left (side=+1) or right."""
    angle = np.maximum(s - ENTRY, 0.0) / RADIUS
    x = np.where(s < ENTRY, s, ENTRY + RADIUS * np.sin(angle))
    y = np.where(s < ENTRY, 0.0, RADIUS * (1.0 - np.cos(angle)))
    curvature = np.where(s < ENTRY, 0.0, 1.0 / RADIUS)
    return x, side * y, side * angle, side * curvature


def curve_project(x: float, y: float, side: float) -> tuple[float, float]:
    """(s, signed distance LEFT of the path) of a point."""
    y = side * y
    if x < ENTRY:
        return x, side * y
    s = ENTRY + RADIUS * math.atan2(x - ENTRY, RADIUS - y)
    return s, side * (RADIUS - math.hypot(x - ENTRY, RADIUS - y))


def curve_planner(speed: float, side: float) -> Planner:
    def plan(ego: EgoState, _now: float) -> np.ndarray:
        s0, _ = curve_project(ego.pose.x, ego.pose.y, side)
        x, y, yaw, curvature = curve_pose(s0 + speed * TIMES, side)
        return trajectory_along(x, y, yaw, speed, 0.0, curvature)

    return plan


@pytest.mark.parametrize("side", [1.0, -1.0], ids=["left", "right"])
def test_tracks_a_30m_arc_within_0_3m(side):
    speed = 8.0  # 2.1 m/s² lateral, inside the envelope's 3 m/s²
    run = drive(curve_planner(speed, side), 14.0, speed=speed)
    assert_well_formed(run)
    errors = np.array([curve_project(x, y, side)[1] for x, y in zip(run.x, run.y, strict=True)])
    assert np.max(np.abs(errors)) < 0.3
    np.testing.assert_allclose(run.lateral_error[1:], errors[:-1], atol=0.02)
    in_arc = run.t > 6.0
    assert np.max(np.abs(errors[in_arc])) < 0.05  # steady state on the arc
    # CARLA's sign: a left turn is steer < 0, a right turn steer > 0
    steers = np.array([c.steer for c in run.controls])[in_arc]
    assert np.all(np.sign(steers) == -side)
    wheel = math.atan(PROFILE.wheelbase / RADIUS)
    assert np.median(steers) == pytest.approx(-side * wheel / PROFILE.max_steer, rel=0.05)


# -- stopping --------------------------------------------------------------------------------


def stop_trajectory(decel: float, v0: float) -> np.ndarray:
    t_stop = v0 / decel
    tc = np.minimum(TIMES, t_stop)
    s = v0 * tc - 0.5 * decel * tc**2
    speed = v0 - decel * tc
    accel = np.where(TIMES < t_stop, -decel, 0.0)
    return trajectory_along(s, 0.0, 0.0, speed, accel, 0.0)


@pytest.mark.parametrize("decel", [2.0, 3.0])
def test_follows_a_decelerate_to_stop_trajectory_and_stops_within_1m_of_its_end(decel):
    plan = stop_trajectory(decel, 10.0)
    end = plan[-1, TrajIndex.X]
    run = drive(lambda _e, _t: plan, 12.0, speed=10.0, replan=False)
    assert_well_formed(run)
    assert abs(run.x[-1] - end) < 1.0
    assert run.speed[-1] == 0.0
    assert run.debug[-1].holding
    assert run.controls[-1].brake > 0.0 and run.controls[-1].throttle == 0.0
    # it stayed stopped: the last 3 s without motion
    assert np.all(run.speed[run.t > run.t[-1] - 3.0] == 0.0)
    # the speed followed the plan on the way
    planned = np.interp(run.t, TIMES, plan[:, TrajIndex.SPEED])
    assert np.max(np.abs(run.speed - planned)) < 0.6


def test_holds_at_standstill_and_moves_off_when_the_plan_does():
    def plan(ego: EgoState, now: float) -> np.ndarray:
        if now < 2.0:
            return trajectory_along(ego.pose.x, 0.0, 0.0, 0.0, 0.0, 0.0)
        speed = np.minimum(max(ego.velocity[0], 0.0) + 1.0 * TIMES, 5.0)
        return trajectory_along(ego.pose.x + np.cumsum(speed) * PLAN_DT, 0.0, 0.0, speed, 1.0, 0.0)

    run = drive(plan, 5.0)
    assert_well_formed(run)
    waiting = run.t <= 2.0
    assert all(d.holding for d, w in zip(run.debug, waiting, strict=True) if w)
    assert all(
        c.brake > 0 and c.throttle == 0 for c, w in zip(run.controls, waiting, strict=True) if w
    )
    assert np.all(run.speed[waiting] == 0.0)
    assert run.speed[-1] > 1.0
    assert not run.debug[-1].holding


# -- car following ---------------------------------------------------------------------------

IDM_V0, IDM_S0, IDM_T, IDM_A, IDM_B = 15.0, 2.0, 1.5, 1.5, 2.0
LEAD_LENGTH = 4.5
FRONT = PROFILE.length - PROFILE.rear_overhang
"""[m] rear axle → front bumper."""


def idm_accel(v: float, gap: float, closing: float) -> float:
    desired = IDM_S0 + max(v * IDM_T + v * closing / (2.0 * math.sqrt(IDM_A * IDM_B)), 0.0)
    return IDM_A * (1.0 - (v / IDM_V0) ** 4 - (desired / max(gap, 0.1)) ** 2)


def idm_planner(lead_x0: float, lead_speed: float) -> Planner:
    """IDM rollout behind a lead car predicted at constant speed."""

    def plan(ego: EgoState, now: float) -> np.ndarray:
        out = np.zeros((T, len(TrajIndex)))
        x, v = ego.pose.x, max(ego.velocity[0], 0.0)
        for k in range(T):
            lead_rear = lead_x0 + lead_speed * (now + k * PLAN_DT) - 0.5 * LEAD_LENGTH
            a = max(idm_accel(v, lead_rear - (x + FRONT), v - lead_speed), -PROFILE.max_decel)
            out[k, TrajIndex.X], out[k, TrajIndex.SPEED], out[k, TrajIndex.ACCEL] = x, v, a
            v_next = max(v + a * PLAN_DT, 0.0)
            x += 0.5 * (v + v_next) * PLAN_DT
            v = v_next
        return out

    return plan


def test_steady_state_following_distance_behind_a_lead_car():
    lead_speed, lead_x0 = 10.0, 50.0
    run = drive(idm_planner(lead_x0, lead_speed), 60.0, speed=12.0)
    assert_well_formed(run)
    gap = lead_x0 + lead_speed * run.t - 0.5 * LEAD_LENGTH - (run.x + FRONT)
    equilibrium = (IDM_S0 + lead_speed * IDM_T) / math.sqrt(1.0 - (lead_speed / IDM_V0) ** 4)
    steady = run.t > 45.0
    # tolerance: 0.3 m on the IDM equilibrium gap (18.98 m), 0.1 m/s on the speed
    assert np.max(np.abs(gap[steady] - equilibrium)) < 0.3
    assert np.max(np.abs(run.speed[steady] - lead_speed)) < 0.1
    assert gap.min() > IDM_S0


# -- degraded inputs, pedals, API ------------------------------------------------------------


def test_non_finite_input_gives_a_controlled_stop_with_the_wheel_held():
    controller = TrajectoryController(PROFILE)
    plan = straight_planner(10.0)(EgoState(0, SE2(0.0, 0.0, 0.0), velocity=(10.0, 0.0)), 0.0)
    ego = EgoState(0, SE2(0.0, 0.0, 0.0), velocity=(10.0, 0.0), steering_angle=0.05)
    controller.command(ego, plan, 0.0, CONTROL_DT)
    bad = EgoState(0, SE2(0.2, 0.0, 0.0), velocity=(math.nan, 0.0), steering_angle=0.05)
    control, info = controller.command(bad, plan, CONTROL_DT, CONTROL_DT)
    assert control.throttle == 0.0 and control.brake > 0.0
    assert info.accel_command == PROFILE.envelope_accel_min
    assert any(tag.startswith("fault:") for tag in info.envelope)
    broken = plan.copy()
    broken[5, TrajIndex.Y] = math.nan
    control, info = controller.command(ego, broken, 2 * CONTROL_DT, CONTROL_DT)
    assert control.throttle == 0.0 and control.brake > 0.0
    assert info.accel_command == PROFILE.envelope_accel_min


def test_pedals_invert_the_longitudinal_model():
    p = PROFILE
    for v in (0.0, 3.0, 15.0, 35.0):
        for a in (-6.0, -2.0, -0.1, 0.0, 0.5, 2.0):
            throttle, brake = pedals_for_accel(p, v, a)
            assert throttle == 0.0 or brake == 0.0
            fade = 1.0 - (v / p.max_speed) ** 2
            model = (
                throttle * p.max_accel * fade
                - brake * p.max_decel
                - p.rolling_decel
                - p.drag_coefficient * v * v
            )
            if throttle < 1.0 and brake < 1.0:  # reachable
                assert model == pytest.approx(a, abs=1e-12)
            else:  # beyond the vehicle: the pedal saturates on the right side
                assert (throttle == 1.0 and model < a) or (brake == 1.0 and model > a)
    assert pedals_for_accel(p, 10.0, math.nan) == (0.0, 1.0)


def test_cruise_pedals_hold_the_speed_in_the_simulator():
    dynamics = BicycleDynamics(PROFILE)
    dynamics.reset(SE2(0.0, 0.0, 0.0), 20.0)
    throttle, brake = pedals_for_accel(PROFILE, 20.0, 0.0)
    control = Control(throttle=throttle, brake=brake)
    dynamics.step(control, 1.0)  # let the powertrain lag settle
    before = dynamics.state.speed
    dynamics.step(control, 2.0 * 0.5)
    assert abs(dynamics.state.speed - before) < 0.02


def test_reset_makes_runs_reproducible():
    controller = TrajectoryController(PROFILE)
    first = drive(straight_planner(6.0), 3.0, controller=controller)
    controller.reset()
    second = drive(straight_planner(6.0), 3.0, controller=controller)
    assert first.controls == second.controls


def test_bad_arguments_are_rejected_with_a_clear_message():
    controller = TrajectoryController(PROFILE)
    ego = EgoState(0, SE2(0.0, 0.0, 0.0))
    plan = straight_planner(5.0)(ego, 0.0)
    with pytest.raises(ValueError, match="trajectory"):
        controller.command(ego, plan[:, :5], 0.0, CONTROL_DT)
    with pytest.raises(ValueError, match="dt"):
        controller.command(ego, plan, 0.0, 0.0)
    with pytest.raises(ValueError, match="time_since_plan"):
        controller.command(ego, plan, math.inf, CONTROL_DT)
    with pytest.raises(TypeError, match="VehicleProfile"):
        TrajectoryController("sedan")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_lookahead"):
        ControllerConfig(min_lookahead=30.0, max_lookahead=20.0)
    with pytest.raises(ValueError, match="speed_kp"):
        ControllerConfig(speed_kp=-1.0)
