"""CommonRoad reader on the five shared scenarios (2018b and 2020a), checked against the XML."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import shapely

from kaido.logs.commonroad import load_commonroad_scenario
from kaido.scene.agents import AgentIndex
from kaido.scene.lane_graph import LaneGraphMap
from tests.conftest import SHARED_DATA, shared_file

NAMES = sorted(p.name for p in (SHARED_DATA / "commonroad").glob("*.xml"))


@pytest.mark.parametrize("name", NAMES)
def test_every_scenario_loads_with_all_its_lanelets_and_obstacles(name: str) -> None:
    path = shared_file(f"commonroad/{name}")
    root = ET.parse(path).getroot()
    s = load_commonroad_scenario(path)
    lanelets = [e for e in root.iter("lanelet") if e.find("leftBound") is not None]
    obstacles = [e for e in root if e.tag in ("obstacle", "dynamicObstacle", "staticObstacle")]
    assert isinstance(s.road_map, LaneGraphMap)
    assert len(s.road_map.lanes) == len(lanelets)
    assert len(s.tracks) == len(obstacles)
    assert len(s.planning_problems) == len(list(root.iter("planningProblem")))
    dt_ns = round(float(root.get("timeStepSize", "")) * 1e9)
    assert np.all(np.diff(s.timestamps_ns) == dt_ns)
    # each obstacle's recorded states are its track samples, in order
    for e in obstacles[:3]:
        track = s.track(int(e.get("id", "")))
        states = [e.find("initialState"), *e.findall("trajectory/state")]
        assert len(track) == len(states)
        last = states[-1]
        assert last is not None
        # an exact point, or the centre of an uncertain position's shape (DEU_A9)
        text = last.findtext("position/point/x") or last.findtext("position/*/center/x")
        assert text is not None
        x = float(text)
        assert track.states[-1, AgentIndex.X] == pytest.approx(x)
    # recorded vehicles drive on the lanelets: most samples project onto a lane
    pts = np.concatenate([t.states[:, :2] for t in s.tracks])
    inside = s.road_map.on_road(pts)
    assert inside.mean() > 0.8


def test_us101_planning_problem() -> None:
    s = load_commonroad_scenario(shared_file("commonroad/USA_US101-3_3_T-1.xml"))
    (pp,) = s.planning_problems
    assert pp.problem_id == 396 and pp.initial_time_step == 0
    assert pp.initial_state[AgentIndex.X] == 0.0 and pp.initial_state[AgentIndex.Y] == 0.0
    assert pp.initial_state[AgentIndex.YAW] == pytest.approx(-0.72)
    speed = math.hypot(pp.initial_state[AgentIndex.VX], pp.initial_state[AgentIndex.VY])
    assert speed == pytest.approx(9.65)
    (goal,) = pp.goals
    assert goal.time_steps == (30, 31)
    assert goal.lanelet_ids == (31,)
    assert goal.velocity == pytest.approx((0.0, 8.6007))
    assert s.road_map is not None
    s.road_map.lane_by_source_id(31)  # type: ignore[attr-defined]


def test_goal_shapes_rectangle_and_polygon() -> None:
    aachen = load_commonroad_scenario(
        shared_file("commonroad/C-DEU_AachenBendplatz-1_14160_T-239.xml")
    )
    goal = aachen.planning_problems[0].goals[0]
    (rect,) = goal.polygons
    poly = shapely.Polygon(rect)
    assert poly.area == pytest.approx(6.52895 * 3.5)
    assert poly.centroid.x == pytest.approx(74.8670) and poly.centroid.y == pytest.approx(-58.5839)
    assert goal.orientation == pytest.approx((-1.0348, -0.6348))
    mona = load_commonroad_scenario(shared_file("commonroad/C-DEU_MONAMerge-2_640_T-719.xml"))
    first = mona.planning_problems[0].goals[0]
    assert first.time_steps == (0, 32)
    assert first.polygons[0][0] == pytest.approx([69.7230, -64.1344])


def test_not_commonroad_xml(tmp_path: Path) -> None:
    bad = tmp_path / "x.xml"
    bad.write_text("<OpenDRIVE/>")
    with pytest.raises(ValueError, match="expected <commonRoad>"):
        load_commonroad_scenario(bad)
