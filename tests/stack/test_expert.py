"""The privileged expert's planner input, built from ground truth on a real RoadMap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kaido.scene.road_map import RoadMap
from kaido.scene.route_planner import plan_route
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
