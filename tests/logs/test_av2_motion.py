"""AV2 motion-forecasting and sensor-log readers, checked against the dataset's own files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from kaido.logs.av2_motion import (
    AV2_CURRENT_INDEX,
    AV2_PREDICTED_STEPS,
    NON_NUMERIC_ID_BASE,
    load_av2_map,
    load_av2_motion_scenario,
    load_av2_sensor_scenario,
)
from kaido.logs.replay_source import ReplayScenario
from kaido.prediction.baselines import LaneFollowing
from kaido.scene.agents import AgentClass, AgentIndex
from kaido.scene.lane_graph import LaneGraphMap
from kaido.scene.road_map import LaneType
from tests.conftest import shared_file

SCENARIO = "av2/motion_forecasting/0a1e6f0a-1817-4a98-b02e-db8c9327d151"
SENSOR = "av2/sensor/7fab2350-7eaf-3b7e-a39d-6937a4c1bede"


@pytest.fixture(scope="module")
def folder() -> Path:
    return shared_file(SCENARIO)


@pytest.fixture(scope="module")
def scenario(folder: Path) -> ReplayScenario:
    return load_av2_motion_scenario(folder)


def test_facts_of_the_sample(scenario: ReplayScenario) -> None:
    # README: 110 steps at 10 Hz, 58 tracks (one is the AV), focal track 138951, 71 lanes
    assert scenario.timestamps_ns.shape == (110,)
    assert np.all(np.diff(scenario.timestamps_ns) == 100_000_000)
    assert len(scenario.tracks) + 1 == 58
    assert scenario.ego_track is not None
    assert scenario.source_ids[scenario.ego_track.track_id] == "AV"
    assert scenario.ego_track.track_id >= NON_NUMERIC_ID_BASE
    proto = scenario.protocol
    assert proto is not None
    assert proto.focal_track_ids == (138951,)
    assert 138951 in proto.scored_track_ids
    assert proto.current_index == AV2_CURRENT_INDEX and proto.predicted_steps == AV2_PREDICTED_STEPS
    assert math.isclose(proto.observed_seconds, 5.0) and math.isclose(proto.predicted_seconds, 6.0)
    assert (proto.k, proto.miss_threshold) == (6, 2.0)
    assert scenario.road_map is not None and len(scenario.road_map.lanes) == 71


def test_track_states_equal_the_parquet_rows(folder: Path, scenario: ReplayScenario) -> None:
    table = pq.read_table(next(folder.glob("scenario_*.parquet"))).to_pylist()
    rows = [r for r in table if r["track_id"] == "138951"]
    track = scenario.track(138951)
    assert len(track) == len(rows)
    assert track.agent_class == AgentClass.VEHICLE
    for r in rows[::17]:
        i = int(np.searchsorted(track.timestamps_ns, scenario.timestamps_ns[r["timestep"]]))
        s = track.states[i]
        assert s[AgentIndex.X] == r["position_x"] and s[AgentIndex.Y] == r["position_y"]
        assert s[AgentIndex.YAW] == r["heading"] and s[AgentIndex.VX] == r["velocity_x"]
    assert scenario.protocol is not None
    scored = {r["track_id"] for r in table if r["object_category"] in (2, 3)}
    assert set(scenario.protocol.scored_track_ids) == {int(t) for t in scored}


def test_lane_graph_matches_the_map_json(folder: Path, scenario: ReplayScenario) -> None:
    data = json.loads(next(folder.glob("log_map_archive_*.json")).read_text())
    road_map = scenario.road_map
    assert isinstance(road_map, LaneGraphMap)
    ids = {int(k) for k in data["lane_segments"]}
    for seg in data["lane_segments"].values():
        lane = road_map.lane_by_source_id(seg["id"])
        got = {road_map.lanes[j].key.road_id for j in lane.successors}
        assert got == {s for s in seg["successors"] if s in ids and s != seg["id"]}
        want_type = LaneType.BIKING if seg["lane_type"] == "BIKE" else LaneType.DRIVING
        assert lane.lane_type == want_type
        assert lane.in_junction == seg["is_intersection"]
        # the centreline's ends are the JSON's
        c = np.array([[p["x"], p["y"]] for p in seg["centerline"]])
        assert np.allclose(lane.centerline[[0, -1], :2], c[[0, -1]], atol=1e-9)
    widths = np.concatenate([ln.widths for ln in road_map.driving_lanes])
    assert 2.0 < np.median(widths) < 5.0


def test_map_serves_projection_rasters_and_lane_following(scenario: ReplayScenario) -> None:
    assert scenario.road_map is not None
    focal = scenario.track(138951)
    x, y, yaw = focal.states[49, [AgentIndex.X, AgentIndex.Y, AgentIndex.YAW]]
    proj = scenario.road_map.nearest_lane(float(x), float(y), heading=float(yaw))
    assert proj is not None and proj.distance < 1.0
    raster = scenario.road_map.rasterize(np.array([x, y, yaw]))
    assert raster.shape[0] == 4 and raster[0].sum() > 0
    LaneFollowing(scenario.road_map)  # builds its lane index on the lane graph


def test_sensor_log_as_a_scenario() -> None:
    root = shared_file(SENSOR)
    s = load_av2_sensor_scenario(root)
    assert s.timestamps_ns.shape == (2,)
    assert s.protocol is None
    ann = feather.read_table(root / "annotations.feather").to_pydict()
    for t in s.timestamps_ns:
        # every cuboid annotated at the sweep is a track sample there
        want = sum(1 for a in ann["timestamp_ns"] if a == t)
        assert sum(1 for tr in s.tracks if t in tr.timestamps_ns) == want == 81
    # the map archive has no centrelines: they are midpoints of the boundaries
    assert s.road_map is not None and len(s.road_map.lanes) > 0
    ego = s.ego_track
    assert ego is not None
    proj = s.road_map.nearest_lane(float(ego.states[0, 0]), float(ego.states[0, 1]))
    assert proj is not None and proj.distance < 2.0


def test_missing_column_is_named(tmp_path: Path, folder: Path) -> None:
    table = pq.read_table(next(folder.glob("scenario_*.parquet")))
    pq.write_table(table.drop(["heading"]), tmp_path / "scenario_x.parquet")
    (tmp_path / "log_map_archive_x.json").write_text(
        next(folder.glob("log_map_archive_*.json")).read_text()
    )
    with pytest.raises(ValueError, match="heading"):
        load_av2_motion_scenario(tmp_path)


def test_map_without_lane_segments_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "log_map_archive_bad.json"
    bad.write_text(json.dumps({"drivable_areas": {}}))
    with pytest.raises(ValueError, match="lane_segments"):
        load_av2_map(bad)
