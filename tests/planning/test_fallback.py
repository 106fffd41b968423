"""The minimum-risk trajectory: stops in lane within the envelope, with or without a reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kaido.planning.controller import TrajectoryController
from kaido.planning.fallback import FallbackConfig, minimum_risk_trajectory
from kaido.planning.types import PlannerConfig, ReferencePath, TrajIndex
from kaido.scene.agents import EgoState
from kaido.scene.geometry import SE2, wrap_angle
from kaido.scene.road_map import RoadMap
from kaido.scene.town_generator import TownSpec, generate_town
from kaido.scene.vehicle import VehicleProfile
from kaido.simulation.embedded.dynamics import BicycleDynamics

PROFILE = VehicleProfile()
PLANNER = PlannerConfig()
DECEL = 3.0


def ego_at(x: float, y: float, yaw: float, speed: float, **kwargs: object) -> EgoState:
    return EgoState(0, SE2(x, y, yaw), velocity=(speed, 0.0), **kwargs)  # type: ignore[arg-type]


def reference_from(path: np.ndarray) -> ReferencePath:
    step = np.hypot(*np.diff(path[:, :2], axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(step)])
    nan = np.full(len(path), np.nan)
    return ReferencePath(path, s, np.full(len(path), 13.9), nan, nan)


def arc_reference(radius: float, length: float, side: float = 1.0) -> ReferencePath:
    """A 20 m straight along +x from (-20, 0), then an arc of ``radius`` to the left/right."""
    s = np.arange(0.0, length, 0.5)
    straight = s < 20.0
    angle = np.maximum(s - 20.0, 0.0) / radius
    x = np.where(straight, s - 20.0, radius * np.sin(angle))
    y = np.where(straight, 0.0, side * radius * (1.0 - np.cos(angle)))
    return reference_from(np.stack([x, y, side * angle], axis=1))


def distance_to(reference: ReferencePath, points: np.ndarray) -> np.ndarray:
    """Distance of each point ``(N, 2)`` to the reference polyline."""
    a = reference.path[:-1, :2]
    seg = np.diff(reference.path[:, :2], axis=0)
    rel = points[:, None, :] - a[None]
    t = np.clip(np.einsum("nij,ij->ni", rel, seg) / np.sum(seg * seg, axis=1), 0.0, 1.0)
    foot = a[None] + t[..., None] * seg[None]
    return np.min(np.linalg.norm(points[:, None, :] - foot, axis=2), axis=1)


def check_kinematics(traj: np.ndarray, v0: float, decel: float) -> None:
    """Shape, finiteness, speed/accel profile within the envelope, positions consistent."""
    assert traj.shape == (PLANNER.num_points, len(TrajIndex))
    assert np.all(np.isfinite(traj))
    speed, accel = traj[:, TrajIndex.SPEED], traj[:, TrajIndex.ACCEL]
    assert speed[0] == pytest.approx(v0)
    assert np.all(speed >= 0.0) and np.all(np.diff(speed) <= 1e-12)
    assert np.all(accel >= PROFILE.envelope_accel_min) and np.all(accel <= 0.0)
    assert np.all((accel == -decel) | ((accel == 0.0) & (speed == 0.0)))
    steps = np.hypot(*np.diff(traj[:, :2], axis=0).T)
    mean_speed = 0.5 * (speed[1:] + speed[:-1])
    # exact distance of a constant deceleration step (the stop may fall inside a step)
    assert np.all(steps <= mean_speed * PLANNER.dt + 1e-3)
    travelled = float(np.sum(steps))
    assert travelled <= v0 * v0 / (2.0 * decel) + 1e-6


@pytest.mark.parametrize("v0", [0.0, 5.0, 12.0, 15.0])
def test_without_reference_stops_straight_along_the_heading(v0):
    yaw = 0.7
    traj = minimum_risk_trajectory(ego_at(3.0, -2.0, yaw, v0), None, PROFILE, PLANNER, "test")
    check_kinematics(traj, v0, DECEL)
    distance = v0 * v0 / (2.0 * DECEL)
    end = traj[-1, :2]
    np.testing.assert_allclose(
        end, [3.0 + distance * math.cos(yaw), -2.0 + distance * math.sin(yaw)]
    )
    assert np.all(traj[:, TrajIndex.YAW] == yaw)
    assert np.all(traj[:, TrajIndex.CURVATURE] == 0.0)
    stop_index = math.ceil(v0 / DECEL / PLANNER.dt)
    assert np.all(traj[stop_index:, TrajIndex.SPEED] == 0.0)
    assert np.all(traj[stop_index:, :2] == end)  # stays stopped


def test_a_stop_longer_than_the_horizon_brakes_throughout():
    v0 = 30.0  # 10 s to stop, the horizon is 8 s
    traj = minimum_risk_trajectory(ego_at(0.0, 0.0, 0.0, v0), None, PROFILE, PLANNER, "test")
    check_kinematics(traj, v0, DECEL)
    assert traj[-1, TrajIndex.SPEED] == pytest.approx(v0 - DECEL * PLANNER.times[-1])
    assert np.all(traj[:-1, TrajIndex.ACCEL] == -DECEL)


def test_deceleration_is_limited_to_the_envelope():
    gentle = VehicleProfile(envelope_accel_min=-2.5)
    traj = minimum_risk_trajectory(ego_at(0.0, 0.0, 0.0, 10.0), None, gentle, PLANNER, "test")
    assert np.min(traj[:, TrajIndex.ACCEL]) == -2.5
    assert traj[-1, TrajIndex.X] == pytest.approx(100.0 / 5.0)
    firm = minimum_risk_trajectory(
        ego_at(0.0, 0.0, 0.0, 10.0), None, PROFILE, PLANNER, "test", FallbackConfig(decel=2.0)
    )
    assert np.min(firm[:, TrajIndex.ACCEL]) == -2.0


@pytest.mark.parametrize("side", [1.0, -1.0], ids=["left", "right"])
def test_on_the_reference_the_stop_stays_on_it(side):
    reference = arc_reference(25.0, 120.0, side)
    v0 = 12.0
    traj = minimum_risk_trajectory(ego_at(-10.0, 0.0, 0.0, v0), reference, PROFILE, PLANNER, "t")
    check_kinematics(traj, v0, DECEL)
    assert np.max(distance_to(reference, traj[:, :2])) < 1e-6
    # the stop reaches into the arc and curves with it
    assert traj[-1, TrajIndex.X] > 0.0
    assert np.sign(traj[-1, TrajIndex.YAW]) == side
    arc = traj[:, TrajIndex.X] > 0.5
    # (the reference polyline's chords make its curvature 2e-5 higher than the arc's)
    np.testing.assert_allclose(traj[arc, TrajIndex.CURVATURE], side / 25.0, rtol=1e-4)
    # the along-path distance (arc length) matches v²/(2a)
    assert np.sum(np.hypot(*np.diff(traj[:, :2], axis=0).T)) == pytest.approx(
        v0 * v0 / (2.0 * DECEL), rel=1e-3
    )


def test_an_offset_ego_is_led_back_to_the_lane_centre():
    reference = arc_reference(40.0, 200.0)
    ego = ego_at(-15.0, 0.8, 0.05, 14.0)
    traj = minimum_risk_trajectory(ego, reference, PROFILE, PLANNER, "test")
    check_kinematics(traj, 14.0, DECEL)
    np.testing.assert_allclose(traj[0, :3], [-15.0, 0.8, 0.05], rtol=0, atol=1e-12)
    offset = distance_to(reference, traj[:, :2])
    assert offset[0] == pytest.approx(0.8)
    assert offset[-1] < 0.05
    # the heading error carries it out a little first: the Hermite slope term peaks at 4/27
    assert np.all(offset <= 0.8 + math.tan(0.05) * 28.0 * 4.0 / 27.0)
    # the trajectory's headings agree with its own geometry
    moving = np.hypot(*np.diff(traj[:, :2], axis=0).T) > 0.05
    chord = np.arctan2(*np.diff(traj[:, :2], axis=0).T[::-1])
    mid = 0.5 * (traj[:-1, TrajIndex.YAW] + traj[1:, TrajIndex.YAW])
    assert np.max(np.abs(wrap_angle(chord - mid))[moving]) < 0.01


def test_a_reference_that_is_too_far_or_the_wrong_way_is_ignored():
    reference = arc_reference(40.0, 200.0)
    far = minimum_risk_trajectory(ego_at(-10.0, 6.0, 0.0, 10.0), reference, PROFILE, PLANNER, "x")
    assert np.all(far[:, TrajIndex.Y] == 6.0)
    wrong = minimum_risk_trajectory(
        ego_at(-10.0, 0.0, math.pi, 10.0), reference, PROFILE, PLANNER, "x"
    )
    assert wrong[-1, TrajIndex.X] == pytest.approx(-10.0 - 100.0 / 6.0)


def test_past_the_reference_end_the_stop_continues_straight():
    path = np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0], [10.0, 0.0, 0.0]])
    traj = minimum_risk_trajectory(
        ego_at(8.0, 0.0, 0.0, 10.0), reference_from(path), PROFILE, PLANNER, "x"
    )
    assert traj[-1, TrajIndex.X] == pytest.approx(8.0 + 100.0 / 6.0)
    assert np.all(traj[:, TrajIndex.Y] == 0.0)


def test_non_finite_fields_use_what_is_finite():
    base = minimum_risk_trajectory(ego_at(1.0, 2.0, 0.3, 9.0), None, PROFILE, PLANNER, "x")
    noisy = ego_at(
        1.0,
        2.0,
        0.3,
        9.0,
        acceleration=(math.nan, math.inf),
        yaw_rate=math.nan,
        steering_angle=math.nan,
    )
    np.testing.assert_array_equal(minimum_risk_trajectory(noisy, None, PROFILE, PLANNER, "x"), base)
    # unknown speed: a stop where the ego is
    blind = EgoState(0, SE2(1.0, 2.0, 0.3), velocity=(math.nan, 0.0))
    traj = minimum_risk_trajectory(blind, None, PROFILE, PLANNER, "x")
    assert np.all(traj[:, TrajIndex.SPEED] == 0.0)
    np.testing.assert_allclose(traj[:, :2], np.tile([1.0, 2.0], (PLANNER.num_points, 1)))


def test_a_non_finite_pose_is_a_clear_error():
    # SE2 refuses NaN on construction; the check guards against a state corrupted after it
    pose = SE2(0.0, 0.0, 0.0)
    object.__setattr__(pose, "x", math.nan)
    ego = EgoState(0, pose, velocity=(5.0, 0.0))
    with pytest.raises(ValueError, match=r"sensor timeout.*pose is not finite"):
        minimum_risk_trajectory(ego, None, PROFILE, PLANNER, "sensor timeout")


def test_tracked_in_closed_loop_on_a_town_route_it_stops_in_lane():
    """The controller follows the fallback on a real lane through a junction turn."""
    town = RoadMap.from_opendrive(generate_town(TownSpec(rows=3, cols=3, seed=0, name="t")), "t")
    spawns = town.spawn_points()
    route = town.plan_route(spawns[[0, len(spawns) // 2], :2])
    nan = np.full(len(route.s), np.nan)
    reference = ReferencePath(route.path, route.s, route.speed_limits, nan, nan)
    # start 2 m before the first sharp turn (R ≈ 10 m) at a speed it can be taken at
    heading = np.unwrap(route.path[:, 2])
    curvature = np.abs(np.gradient(heading, route.s))
    entry = route.s[int(np.argmax((curvature > 0.05) & (route.s > 20.0)))]
    k = int(np.searchsorted(route.s, entry - 2.0))
    x, y, yaw = route.path[k]
    v0 = 5.0
    ego = ego_at(float(x), float(y), float(yaw), v0)

    dynamics = BicycleDynamics(PROFILE)
    dynamics.reset(ego.pose, v0)
    controller = TrajectoryController(PROFILE)
    plan = minimum_risk_trajectory(ego, reference, PROFILE, PLANNER, "test")
    points = []
    for step in range(int(8.0 / 0.02)):
        state = dynamics.ego_state(step)
        control, _ = controller.command(state, plan, step * 0.02, 0.02)
        dynamics.step(control, 0.02)
        points.append((dynamics.state.x, dynamics.state.y))
    points_array = np.array(points)
    assert dynamics.state.speed == 0.0
    travelled = float(np.sum(np.hypot(*np.diff(points_array, axis=0).T)))
    assert travelled <= v0 * v0 / (2.0 * DECEL) + 1.0
    assert np.max(distance_to(reference, points_array)) < 0.3
