"""The common replay scenario, format detection and dataset lane graphs as road maps."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from kaido.logs.mcap_log import EpisodeRecorder
from kaido.logs.replay_source import FORMATS, ReplayScenario, detect_format, open_source
from kaido.prediction.baselines import LaneFollowing
from kaido.scene.agents import AgentClass, AgentIndex, AgentState, Control, EgoState, Track
from kaido.scene.frame import Frame, GroundTruth
from kaido.scene.geometry import SE2, Box3D
from kaido.scene.lane_graph import LaneGraphMap, LaneRecord, densify_polyline, midpoint_line
from kaido.scene.road_map import LaneType, MapError
from kaido.scene.sensors import SensorRig
from tests.conftest import shared_file

SOURCES = {
    "av2-motion": "av2/motion_forecasting/0a1e6f0a-1817-4a98-b02e-db8c9327d151",
    "av2-sensor": "av2/sensor/7fab2350-7eaf-3b7e-a39d-6937a4c1bede",
    "womd": "waymo/womd/motion_data_one_scenario.tfrecord",
    "commonroad": "commonroad/USA_US101-3_3_T-1.xml",
}


@pytest.mark.parametrize("fmt", sorted(SOURCES))
def test_every_shared_source_is_detected_and_opens(fmt: str) -> None:
    path = shared_file(SOURCES[fmt])
    assert detect_format(path) == fmt
    scenario = open_source(path)
    assert scenario.source_format == fmt
    assert scenario.road_map is not None and scenario.road_map.num_driving_lanes > 0
    assert len(scenario.tracks) > 0


def test_unknown_format_names_the_expected_ones(tmp_path: Path) -> None:
    bad = tmp_path / "drive.bag"
    bad.write_bytes(b"#ROSBAG V2.0\n")
    with pytest.raises(ValueError, match=r"unknown replay source format.*expected.*tfrecord"):
        open_source(bad)
    with pytest.raises(ValueError, match="unknown replay source folder"):
        open_source(tmp_path)
    with pytest.raises(FileNotFoundError):
        open_source(tmp_path / "absent.mcap")


def test_scenario_rejects_backwards_time_and_bad_format() -> None:
    with pytest.raises(ValueError, match="go backwards or repeat at step 2"):
        ReplayScenario(
            "x", "womd", Path("x"), np.array([0, 5, 3], dtype=np.int64), (), None, None, None
        )
    with pytest.raises(ValueError, match="source_format 'rosbag'"):
        ReplayScenario(
            "x", "rosbag", Path("x"), np.array([0], dtype=np.int64), (), None, None, None
        )
    assert "kaido-mcap" in FORMATS


def test_states_on_grid_marks_missing_samples() -> None:
    grid = np.arange(5, dtype=np.int64) * 100
    states = np.tile(np.arange(7, dtype=np.float64), (2, 1))
    track = Track(3, AgentClass.VEHICLE, np.array([100, 300], dtype=np.int64), states)
    s = ReplayScenario("x", "womd", Path("x"), grid, (track,), None, None, None)
    got, valid = s.states_on_grid([3])
    assert valid.tolist() == [[False, True, False, True, False]]
    assert np.isnan(got[0, 0]).all() and np.array_equal(got[0, 1], states[0])


# -- lane graphs ---------------------------------------------------------------------------------


def _straight(lane_id: int, x0: float, x1: float, y: float, **kw: object) -> LaneRecord:
    xs = np.array([x0, x1])
    return LaneRecord(lane_id, np.stack([xs, np.full(2, y)], axis=-1), **kw)  # type: ignore[arg-type]


def test_densify_and_midpoint() -> None:
    line = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 0.005]])
    dense = densify_polyline(line, 1.0)
    assert len(dense) == 11 and np.allclose(np.diff(dense[:, 0]), 1.0)
    left = np.array([[0.0, 2.0], [10.0, 2.0]])
    right = np.array([[0.0, -1.0], [4.0, -1.0], [10.0, -1.0]])
    mid = midpoint_line(left, right)
    assert np.allclose(mid[:, 1], 0.5) and mid[0, 0] == 0.0 and mid[-1, 0] == 10.0


def test_lane_graph_map_from_records() -> None:
    lanes = [
        _straight(10, 0.0, 50.0, 0.0, successors=(11,), left_neighbor=20, right_neighbor=30),
        _straight(11, 50.0, 100.0, 0.0, predecessors=(10,), successors=(99,)),
        _straight(20, 0.0, 50.0, 3.5),  # same direction, on the left
        _straight(30, 50.0, 0.0, -3.5),  # opposite direction: not a lane-change neighbour
        _straight(40, 0.0, 50.0, 7.0, lane_type=LaneType.SIDEWALK, width=2.0),
    ]
    m = LaneGraphMap("toy", lanes)
    assert m.num_driving_lanes == 4 and m.lanes[-1].lane_type == LaneType.SIDEWALK
    a, b = m.lane_by_source_id(10), m.lane_by_source_id(11)
    assert a.successors == (b.index,) and b.predecessors == (a.index,)
    assert b.successors == ()  # lane 99 is not in the map
    assert a.left_neighbor == m.lane_by_source_id(20).index and a.can_change_left
    assert a.right_neighbor == -1 and not a.can_change_right
    assert np.all(np.diff(a.s) <= 1.0 + 1e-9) and a.length == pytest.approx(50.0)
    assert np.allclose(a.widths, 3.5) and np.allclose(a.left_boundary[:, 1], 1.75)
    proj = m.nearest_lane(25.0, 0.4, heading=0.0)
    assert proj is not None and proj.lane == a.index and proj.lateral == pytest.approx(0.4)
    assert m.on_road(np.array([[25.0, 0.0], [25.0, 7.0]])).tolist() == [True, False]
    assert m.rasterize(SE2(25.0, 0.0, 0.0)).shape[0] == 4


def test_boundaries_give_widths_and_intersections_group_into_junctions() -> None:
    centre = np.array([[0.0, 0.0], [20.0, 0.0]])
    lanes = [
        LaneRecord(
            1,
            centre,
            left_boundary=centre + np.array([0.0, 2.0]),
            right_boundary=centre - np.array([0.0, 1.0]),
            in_intersection=True,
        ),
        LaneRecord(2, np.array([[10.0, -10.0], [10.0, 10.0]]), in_intersection=True),
        LaneRecord(3, np.array([[100.0, 0.0], [120.0, 0.0]]), in_intersection=True),
    ]
    m = LaneGraphMap("x", lanes)
    one = m.lane_by_source_id(1)
    assert np.allclose(one.widths, 3.0) and np.allclose(one.right_boundary[:, 1], -1.0)
    assert one.junction_id == m.lane_by_source_id(2).junction_id >= 0
    assert m.lane_by_source_id(3).junction_id not in (-1, one.junction_id)
    assert len(m.junctions) == 2


def test_lane_graph_errors() -> None:
    with pytest.raises(MapError, match="no usable driving lane"):
        LaneGraphMap("x", [_straight(1, 0.0, 5.0, 0.0, lane_type=LaneType.SIDEWALK)])
    with pytest.raises(MapError, match="duplicate lane id"):
        LaneGraphMap("x", [_straight(1, 0.0, 5.0, 0.0), _straight(1, 5.0, 9.0, 0.0)])
    with pytest.raises(ValueError, match=r"centerline: expected an \(N, 2\|3\) polyline"):
        LaneGraphMap("x", [LaneRecord(1, np.zeros((1, 2)))])


def test_lane_following_turns_with_a_curved_lane_graph() -> None:
    a = np.linspace(0.0, math.pi / 2, 40)
    arc = np.stack([30.0 * np.sin(a), 30.0 - 30.0 * np.cos(a)], axis=-1)
    lanes = [
        LaneRecord(1, np.array([[-50.0, 0.0], [0.0, 0.0]]), successors=(2,)),
        LaneRecord(2, arc, predecessors=(1,)),
    ]
    m = LaneGraphMap("curve", lanes)
    agent = AgentState(
        7, AgentClass.VEHICLE, Box3D(-10.0, 0.0, 0.0, 0.0, 4.5, 1.9, 1.5), (10.0, 0.0), 0
    )
    forecast = LaneFollowing(m).predict([agent], np.linspace(0.0, 4.0, 41))
    end = forecast.modes[0, 0, -1]
    # 40 m along the graph: 10 m straight then 30 m of the quarter circle (47 m long)
    assert np.hypot(end[0] - 30.0 * math.sin(1.0), end[1] - 30.0 * (1 - math.cos(1.0))) < 1.0


# -- kaido logs ------------------------------------------------------------------------------------


def write_small_log(path: Path, ticks: int, times: list[int] | None = None) -> None:
    """A sensor-free log: the ego and two agents driving east."""
    rig = SensorRig()
    with EpisodeRecorder(path, rig=rig, metadata={"seed": "0"}) as rec:
        for i in range(ticks):
            ts = times[i] if times is not None else 1_000_000_000 + i * 100_000_000
            ego = EgoState(ts, SE2(0.5 * i, 0.0, 0.0), velocity=(5.0, 0.0))
            agents = tuple(
                AgentState(
                    100 + k,
                    AgentClass.VEHICLE if k == 0 else AgentClass.PEDESTRIAN,
                    Box3D(10.0 + k + 0.3 * i, 3.0 * k, 0.8, 0.0, 4.5, 1.9, 1.5),
                    (3.0, 0.0),
                    ts,
                )
                for k in range(2)
            )
            frame = Frame(ts, ego, {}, {}, rig, GroundTruth(agents, ()))
            rec.write_tick(
                timestamp_ns=ts,
                frame=frame,
                ego_box=Box3D(0.5 * i + 1.4, 0.0, 0.75, 0.0, 4.6, 1.9, 1.5),
                route_path=None,
                control=Control(throttle=0.3),
            )


def test_kaido_log_opens_as_a_scenario(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    write_small_log(path, 6)
    s = open_source(path)
    assert s.source_format == "kaido-mcap" and s.road_map is None and s.protocol is None
    assert s.timestamps_ns.shape == (6,) and s.track_ids == (100, 101)
    ped = s.track(101)
    assert ped.agent_class == AgentClass.PEDESTRIAN
    assert np.allclose(ped.states[:, AgentIndex.X], 11.0 + 0.3 * np.arange(6))
    assert np.allclose(ped.states[:, AgentIndex.VX], 3.0, atol=1e-3)
    assert s.ego_track is not None
    assert np.allclose(s.ego_track.states[:, AgentIndex.X], 1.4 + 0.5 * np.arange(6))
