"""A* route planning over real towns and leaderboard routes."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from kaido.scene.geometry import wrap_angle
from kaido.scene.road_map import RoadMap
from kaido.scene.route_planner import (
    RoadOption,
    RoutePlan,
    RoutePlannerConfig,
    RoutePlanningError,
    plan_leaderboard_route,
    plan_route,
)
from kaido.scene.routes import load_routes
from tests.conftest import shared_file
from tests.scene.test_road_map import ALL_MAPS, load

pytest.importorskip("carla")


def assert_continuous(plan: RoutePlan, spacing: float = 1.0) -> None:
    steps = np.linalg.norm(np.diff(plan.path[:, :2], axis=0), axis=1)
    assert plan.max_gap() <= 1.0 + 1e-9
    assert steps.max() <= spacing + 1e-6
    np.testing.assert_allclose(np.diff(plan.s), steps, atol=0.05)
    # the heading follows the path (checked where the path turns less than 45 deg per step)
    along = np.arctan2(np.diff(plan.path[:, 1]), np.diff(plan.path[:, 0]))
    err = np.abs(wrap_angle(along - plan.path[:-1, 2]))
    assert np.quantile(err, 0.98) < math.radians(15)
    assert plan.options.shape == plan.lanes.shape == plan.s.shape == (len(plan.path),)
    assert np.all(plan.speed_limits > 0)


def snapped_polyline_length(road_map: RoadMap, waypoints: np.ndarray) -> float:
    """Length of the polyline through the waypoints, sampled every metre and snapped to lanes.

    An oracle independent of the planner: each sample moves to the nearest driving lane heading
    the way the polyline goes, so corners cut by the raw polyline follow the junction's lanes.
    """
    points = []
    for a, b in itertools.pairwise(waypoints):
        n = max(int(np.linalg.norm(b - a)), 1)
        heading = math.atan2(b[1] - a[1], b[0] - a[0])
        for t in np.linspace(0.0, 1.0, n, endpoint=False):
            p = a + (b - a) * t
            proj = road_map.nearest_lane(
                float(p[0]), float(p[1]), max_distance=10.0, heading=heading
            )
            points.append(road_map.lanes[proj.lane].interpolate(proj.s)[:2] if proj else p)
    points.append(waypoints[-1])
    return float(np.linalg.norm(np.diff(np.array(points), axis=0), axis=1).sum())


def test_leaderboard1_town01_routes_plan_to_continuous_paths() -> None:
    path = shared_file("routes/lb1_routes_training.xml")
    road_map = load("Town01")
    routes = load_routes(path, town="Town01")
    assert routes
    for route in routes:
        plan = plan_leaderboard_route(road_map, route)
        assert_continuous(plan)
        polyline = snapped_polyline_length(road_map, route.waypoints[:, :2])
        assert abs(plan.length - polyline) <= 0.05 * polyline, (
            route.route_id,
            plan.length,
            polyline,
        )
        # the path passes by every waypoint, in order
        for k, wp in enumerate(route.waypoints):
            d = np.linalg.norm(plan.path[:, :2] - wp[:2], axis=1)
            assert d.min() < 3.0, (route.route_id, k)
        assert np.all(np.diff(plan.waypoint_s) >= -1e-9)
        assert {RoadOption.LEFT, RoadOption.RIGHT, RoadOption.STRAIGHT} & set(plan.options.tolist())


@pytest.mark.parametrize("name", ALL_MAPS)
def test_random_spawn_pairs_plan_or_say_why(name: str) -> None:
    road_map = load(name)
    spawns = road_map.spawn_points(spacing=20.0)
    rng = np.random.default_rng(7)
    planned = 0
    for _ in range(6):
        a, b = rng.choice(len(spawns), size=2, replace=False)
        try:
            plan = plan_route(road_map, spawns[[a, b], :2], yaws=spawns[[a, b], 2])
        except RoutePlanningError as err:
            assert "no lane path from waypoint 0" in str(err)
            continue
        planned += 1
        assert_continuous(plan)
        assert np.linalg.norm(plan.path[0, :2] - spawns[a, :2]) < 0.5
        assert np.linalg.norm(plan.path[-1, :2] - spawns[b, :2]) < 0.5
        # a path is at least as long as the straight line
        assert plan.length >= np.linalg.norm(spawns[a, :2] - spawns[b, :2]) - 1e-6
    # real towns are connected road networks: most random pairs have a route
    assert planned >= 4


def test_lane_change_on_a_multilane_road() -> None:
    road_map = load("Town06")
    for lane in road_map.driving_lanes:
        if lane.can_change_left and lane.length > 150 and not lane.in_junction:
            break
    else:
        pytest.fail("Town06 has no long lane with a permitted left change")
    target = road_map.lanes[lane.left_neighbor]
    start = lane.interpolate(10.0)
    goal = target.interpolate(target.length - 10.0)
    plan = plan_route(road_map, np.array([start[:2], goal[:2]]), yaws=np.array([start[2], goal[2]]))
    assert RoadOption.CHANGELANELEFT in plan.options.tolist()
    assert_continuous(plan)
    assert plan.length < lane.length + 5.0


def test_goal_behind_start_on_the_same_lane_loops_around() -> None:
    road_map = load("grid1")
    lane = next(ln for ln in road_map.driving_lanes if not ln.in_junction and ln.length > 40)
    start, goal = lane.interpolate(30.0), lane.interpolate(10.0)
    plan = plan_route(road_map, np.array([start[:2], goal[:2]]), yaws=np.array([start[2], goal[2]]))
    assert plan.length > lane.length
    assert_continuous(plan)


def test_errors_name_the_waypoint_and_route() -> None:
    road_map = load("Town01")
    spawn = road_map.spawn_points()[0]
    far = np.array([spawn[:2], spawn[:2] + 1000.0])
    with pytest.raises(RoutePlanningError, match=r"waypoint 1 .* off every driving lane"):
        plan_route(road_map, far)
    with pytest.raises(RoutePlanningError, match="shape"):
        plan_route(road_map, spawn[:2][None])
    with pytest.raises(RoutePlanningError, match="not finite"):
        plan_route(road_map, np.array([spawn[:2], [np.nan, 0.0]]))
    routes = load_routes(shared_file("routes/lb1_routes_training.xml"), town="Town06")
    with pytest.raises(RoutePlanningError, match=rf"route {routes[0].route_id}\b.*Town06.*Town01"):
        plan_leaderboard_route(road_map, routes[0])
    with pytest.raises(ValueError, match="lane_change_cost"):
        RoutePlannerConfig(lane_change_cost=1.0)
