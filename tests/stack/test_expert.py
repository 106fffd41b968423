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
from kaido.scene.route_planner import RoadOption, RoutePlan, plan_route
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


def _two_lane_route(road_map: RoadMap) -> tuple[Lane, RoutePlan]:
    """A straight route along the longest lane that has a left neighbour one may change into."""
    for lane in sorted(road_map.driving_lanes, key=lambda ln: -ln.length):
        if lane.in_junction or lane.length < 60.0:
            continue
        if not (lane.can_change_left and lane.left_neighbor >= 0):
            continue
        start, end = lane.interpolate(2.0), lane.interpolate(lane.length - 2.0)
        if abs(math.remainder(float(end[2] - start[2]), math.tau)) > 0.05:
            continue
        route = plan_route(
            road_map, np.array([start[:2], end[:2]]), yaws=np.array([start[2], end[2]])
        )
        return lane, route
    raise AssertionError("the generated town has no straight two-lane road")


def _car(
    track_id: int, lane: Lane, s: float, left: float, speed: float, v_left: float = 0.0
) -> AgentState:
    """A car ``left`` metres left of ``lane``'s centreline at arc length ``s``, driving along it
    at ``speed`` [m/s] and moving ``v_left`` [m/s] to the left."""
    x, y, yaw = (float(v) for v in lane.interpolate(s))
    c, sn = math.cos(yaw), math.sin(yaw)
    box = Box3D(x - left * sn, y + left * c, 0.75, yaw, 4.6, 1.9, 1.5)
    velocity = (speed * c - v_left * sn, speed * sn + v_left * c)
    return AgentState(track_id, AgentClass.VEHICLE, box, velocity, 0)


@pytest.fixture(scope="module")
def two_lane_map() -> RoadMap:
    spec = TownSpec(rows=3, cols=3, lanes_per_direction=2, seed=4, name="two")
    return RoadMap.from_opendrive(generate_town(spec), "two")


def test_no_lane_change_into_a_neighbouring_lane_that_is_not_clear(two_lane_map: RoadMap) -> None:
    lane, route = _two_lane_route(two_lane_map)
    expert = PrivilegedExpert(two_lane_map, VehicleProfile())
    expert.reset(route)
    x, y, yaw = (float(v) for v in lane.interpolate(20.0))
    ego = EgoState(0, SE2(x, y, yaw), velocity=(10.0, 0.0))
    width = float(np.mean(two_lane_map.lanes[lane.left_neighbor].widths))
    centre = 20.0 + VehicleProfile().rear_axle_to_center
    cases = (
        ((), True),
        # beside the ego in the left lane
        ((_car(1, lane, centre, width, 10.0),), False),
        # far ahead in the left lane at the ego's speed
        ((_car(2, lane, centre + 35.0, width, 10.0),), True),
        # behind in the left lane, closing in fast
        ((_car(3, lane, centre - 15.0, width, 20.0),), False),
        # behind in the left lane at the ego's speed, well clear
        ((_car(4, lane, centre - 15.0, width, 10.0),), True),
        # two lanes over (beyond the neighbouring lane): not in the way
        ((_car(5, lane, centre, 2.2 * width, 10.0),), True),
    )
    for agents, clear in cases:
        truth = GroundTruth(agents=agents)
        reference, _, _ = expert.reference(ego, truth)
        assert bool(np.isfinite(reference.left_offsets).any()) is clear, agents
    # without ground truth the map alone decides
    reference, _, _ = expert.reference(ego)
    assert np.isfinite(reference.left_offsets).any()


def test_yields_to_a_vehicle_cutting_in(two_lane_map: RoadMap) -> None:
    lane, route = _two_lane_route(two_lane_map)
    profile = VehicleProfile()
    expert = PrivilegedExpert(two_lane_map, profile)
    expert.reset(route)
    x, y, yaw = (float(v) for v in lane.interpolate(10.0))
    ego = EgoState(0, SE2(x, y, yaw), velocity=(10.0, 0.0))
    _, i0, i1 = expert.reference(ego)
    width = float(np.mean(two_lane_map.lanes[lane.left_neighbor].widths))
    front = 10.0 + profile.length - profile.rear_overhang
    cutting = _car(1, lane, 40.0, width, 6.0, v_left=-1.2)
    parallel = _car(2, lane, 40.0, width, 6.0)
    leaving = _car(3, lane, 40.0, 0.6 * width, 6.0, v_left=1.2)
    slow_drift = _car(4, lane, 40.0, width, 6.0, v_left=-0.1)
    beside = _car(5, lane, 10.0 + profile.rear_axle_to_center, width, 10.0, v_left=-1.2)
    (stop,) = expert.cut_ins(ego, GroundTruth(agents=(cutting,)), i0, i1)
    assert stop.kind is StopKind.YIELD
    # behind the car's rear (40 m - half its length), ahead of the ego's front
    lane_s0 = float(route.s[0]) - 2.0
    assert front < stop.s - lane_s0 < 40.0 - 2.3
    for agent in (parallel, leaving, slow_drift, beside):
        assert expert.cut_ins(ego, GroundTruth(agents=(agent,)), i0, i1) == (), agent
    # sliding in with its rear 1.5 m ahead of the ego's front: the 2 m yield gap does not fit,
    # the ego still brakes for it, keeping the short gap
    close = _car(6, lane, front + 1.5 + 2.3, width, 6.0, v_left=-1.2)
    (stop,) = expert.cut_ins(ego, GroundTruth(agents=(close,)), i0, i1)
    gap = front + 1.5 - (stop.s - lane_s0)
    assert gap == pytest.approx(expert.config.cut_in_min_gap, abs=0.3)
    # its rear level with the ego's front, its centre ahead of the ego's: brake now
    corner = _car(7, lane, front + 2.0, width, 6.0, v_left=-1.2)
    (stop,) = expert.cut_ins(ego, GroundTruth(agents=(corner,)), i0, i1)
    assert stop.s - lane_s0 == pytest.approx(front, abs=0.3)


def test_holds_a_route_lane_change_until_the_target_lane_is_clear(
    two_lane_map: RoadMap,
) -> None:
    lane, _ = _two_lane_route(two_lane_map)
    left = two_lane_map.lanes[lane.left_neighbor]
    # stay in the right lane to 30 m, then change into the left one
    points = [lane.interpolate(5.0), lane.interpolate(30.0), left.interpolate(left.length - 3.0)]
    route = plan_route(
        two_lane_map,
        np.array([p[:2] for p in points]),
        yaws=np.array([p[2] for p in points]),
    )
    changes = np.flatnonzero(route.options == RoadOption.CHANGELANELEFT)
    assert len(changes), "the route has no lane change"
    change_s = float(route.s[changes[0]])
    profile = VehicleProfile()
    expert = PrivilegedExpert(two_lane_map, profile)
    expert.reset(route)
    # the ego 10 m before the change at 6 m/s
    rear_s = change_s - 10.0 - (profile.length - profile.rear_overhang)
    x = float(np.interp(rear_s, route.s, route.path[:, 0]))
    y = float(np.interp(rear_s, route.s, route.path[:, 1]))
    ego = EgoState(0, SE2(x, y, float(route.path[changes[0], 2])), velocity=(6.0, 0.0))
    _, i0, i1 = expert.reference(ego)
    width = 0.5 * float(np.mean(lane.widths) + np.mean(left.widths))
    lane_s = 5.0 + rear_s + profile.rear_axle_to_center  # the ego's box centre on the lane
    beside = _car(1, lane, lane_s + 4.0, width, 6.0)
    far = _car(2, lane, lane_s + 38.0, width, 6.0)
    (stop,) = expert.lane_change_stops(ego, GroundTruth(agents=(beside,)), i0, i1)
    assert stop.kind is StopKind.YIELD
    assert stop.s == pytest.approx(change_s)
    assert expert.lane_change_stops(ego, GroundTruth(agents=(far,)), i0, i1) == ()
    assert expert.lane_change_stops(ego, GroundTruth(), i0, i1) == ()


def test_a_vehicle_sliding_sideways_with_no_reported_velocity_is_a_cut_in(
    two_lane_map: RoadMap,
) -> None:
    lane, route = _two_lane_route(two_lane_map)
    expert = PrivilegedExpert(two_lane_map, VehicleProfile())
    expert.reset(route)
    x, y, yaw = (float(v) for v in lane.interpolate(10.0))
    ego = EgoState(0, SE2(x, y, yaw), velocity=(8.0, 0.0))
    _, i0, i1 = expert.reference(ego)
    width = float(np.mean(two_lane_map.lanes[lane.left_neighbor].widths))
    # the simulator reports it standing while it slides 0.15 m towards the ego per 0.1 s
    before = GroundTruth(agents=(_car(7, lane, 40.0, width, 0.0),))
    now = GroundTruth(agents=(_car(7, lane, 40.0, width - 0.15, 0.0),))
    assert expert.cut_ins(ego, now, i0, i1) == ()
    expert.track(before, 1.0)
    expert.track(now, 1.1)
    vx, vy = expert.velocity(now.agents[0])
    assert math.hypot(vx, vy) == pytest.approx(1.5, rel=1e-6)
    assert len(expert.cut_ins(ego, now, i0, i1)) == 1
    # a track seen long ago gives no velocity: the reported one counts
    expert.track(now, 5.0)
    assert expert.velocity(now.agents[0]) == (0.0, 0.0)
