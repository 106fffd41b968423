"""The privileged expert's planner input, built from ground truth on a real RoadMap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kaido.planning.types import StopKind
from kaido.scene.agents import AgentClass, AgentState, EgoState
from kaido.scene.frame import GroundTruth
from kaido.scene.geometry import SE2, Box3D
from kaido.scene.road_map import Lane, RoadMap
from kaido.scene.route_planner import RoutePlan, plan_route
from kaido.scene.town_generator import TownSpec, generate_town
from kaido.scene.vehicle import VehicleProfile
from kaido.stack.expert import PrivilegedExpert

pytest.importorskip("carla")


def test_reference_runs_on_along_the_road_past_the_route_end() -> None:
    road_map = RoadMap.from_opendrive(
        generate_town(TownSpec(rows=3, cols=3, seed=2, name="x")), "x"
    )
    # a lane that leads into a bend outside any junction (a grid corner): straight on would
    # leave the road there
    for lane in road_map.driving_lanes:
        if lane.in_junction or lane.length < 50 or not lane.successors:
            continue
        succ = road_map.lanes[lane.successors[0]]
        turn = abs(math.remainder(float(succ.headings[-1] - succ.headings[0]), math.tau))
        if not succ.in_junction and turn > math.radians(60):
            break
    else:
        pytest.fail("the generated town has no corner bend")
    start, end = lane.interpolate(lane.length - 45.0), lane.interpolate(lane.length - 3.0)
    route = plan_route(road_map, np.array([start[:2], end[:2]]), yaws=np.array([start[2], end[2]]))
    expert = PrivilegedExpert(road_map, VehicleProfile())
    expert.reset(route)
    tail = expert._extension()
    assert len(tail) >= 25
    assert np.all(road_map.on_road(tail[:, :2]))
    # it follows the bend: the heading turns by most of the corner's angle
    assert abs(math.remainder(float(tail[-1, 2] - end[2]), math.tau)) > math.radians(30)
    steps = np.linalg.norm(np.diff(tail[:, :2], axis=0), axis=1)
    assert steps.max() < 1.5


def _straight_route(road_map: RoadMap) -> tuple[Lane, RoutePlan]:
    """The longest one-lane-road lane outside junctions whose right side is the road's edge."""
    for lane in sorted(road_map.driving_lanes, key=lambda ln: -ln.length):
        if lane.in_junction or lane.length < 60.0:
            continue
        start, end = lane.interpolate(2.0), lane.interpolate(lane.length - 2.0)
        if abs(math.remainder(float(end[2] - start[2]), math.tau)) > 0.05:
            continue
        route = plan_route(
            road_map, np.array([start[:2], end[:2]]), yaws=np.array([start[2], end[2]])
        )
        return lane, route
    raise AssertionError("the generated town has no straight lane")


def _walker(track_id: int, lane: Lane, s: float, right: float, vx: float, vy: float) -> AgentState:
    """A pedestrian ``right`` metres right of ``lane``'s centreline at arc length ``s``."""
    x, y, yaw = lane.interpolate(s)
    px, py = x + right * math.sin(yaw), y - right * math.cos(yaw)
    box = Box3D(px, py, 0.9, float(yaw), 0.4, 0.6, 1.75)
    return AgentState(track_id, AgentClass.PEDESTRIAN, box, (vx, vy), 0)


def test_yields_to_people_crossing_not_to_people_walking_along_the_sidewalk() -> None:
    road_map = RoadMap.from_opendrive(
        generate_town(TownSpec(rows=3, cols=3, seed=2, name="y")), "y"
    )
    lane, route = _straight_route(road_map)
    profile = VehicleProfile()
    expert = PrivilegedExpert(road_map, profile)
    expert.reset(route)
    x, y, yaw = route.path[0]
    ego = EgoState(0, SE2(float(x), float(y), float(yaw)), velocity=(5.0, 0.0))
    reference, i0, i1 = expert.reference(ego)
    c, s = math.cos(float(yaw)), math.sin(float(yaw))
    # beside the lane, just past its right edge, on the sidewalk (off the road), well within
    # the corridor the ego keeps clear of people on the road
    side = 0.5 * float(np.mean(lane.widths)) + 0.3
    along = _walker(1, lane, 30.0, side, 1.3 * c, 1.3 * s)
    assert not road_map.on_road(np.array([[along.box.x, along.box.y]]))[0]
    # the same person stepping out across the lane (towards its left)
    crossing = _walker(2, lane, 30.0, side, -1.3 * s, 1.3 * c)
    # and one standing on the lane
    standing = _walker(3, lane, 30.0, 0.0, 0.0, 0.0)
    for agents, expected in (((along,), 0), ((crossing,), 1), ((standing,), 1)):
        truth = GroundTruth(agents=agents)
        stops = expert.yields(ego, truth, i0, i1)
        assert len(stops) == expected, agents
        for stop in stops:
            assert stop.kind is StopKind.YIELD
            # a couple of metres before the person, who is 28 m ahead of the route's start
            assert 20.0 < stop.s - route.s[0] < 29.0
    assert reference.length > 50.0
