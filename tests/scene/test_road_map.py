"""RoadMap on real CARLA towns and on kaido's generated towns, through the real carla.Map."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import shapely

from kaido.scene.geometry import wrap_angle
from kaido.scene.raster import RasterSpec, rasterize_bev_reference
from kaido.scene.road_map import (
    RASTER_LAYER_NAMES,
    LaneType,
    MapError,
    MapLayer,
    RoadMap,
    RoadMapConfig,
)
from kaido.scene.town_generator import TownSpec, generate_town
from tests.conftest import shared_file

carla = pytest.importorskip("carla")

REAL_TOWNS = ("Town01", "Town06", "Town07")
GENERATED = {
    "grid1": TownSpec(layout="grid", rows=3, cols=3, lanes_per_direction=1, seed=1, name="grid1"),
    "grid2t": TownSpec(
        layout="grid",
        rows=3,
        cols=4,
        lanes_per_direction=2,
        t_junction_fraction=0.3,
        seed=2,
        name="grid2t",
    ),
    "ring": TownSpec(layout="ring", seed=3, name="ring"),
}
ALL_MAPS = (*REAL_TOWNS, *GENERATED)


def _xodr_text(name: str) -> str:
    if name in GENERATED:
        return generate_town(GENERATED[name])
    return shared_file(f"maps/{name}.xodr").read_text()


_CACHE: dict[str, RoadMap] = {}


def load(name: str) -> RoadMap:
    if name not in _CACHE:
        _CACHE[name] = RoadMap.from_opendrive(_xodr_text(name), name=name)
    return _CACHE[name]


@pytest.fixture(params=ALL_MAPS)
def road_map(request: pytest.FixtureRequest) -> RoadMap:
    return load(request.param)


def test_lanes_are_consistent_arrays(road_map: RoadMap) -> None:
    assert road_map.num_driving_lanes > 0
    for i, lane in enumerate(road_map.lanes):
        n = len(lane.s)
        assert lane.index == i
        assert n >= 2
        assert lane.centerline.shape == (n, 3)
        assert lane.left_boundary.shape == lane.right_boundary.shape == (n, 2)
        assert np.all(np.diff(lane.s) > 0)
        # boundaries sit half a width either side, left being to the left of the heading
        gap = np.linalg.norm(lane.left_boundary - lane.right_boundary, axis=1)
        np.testing.assert_allclose(gap, lane.widths, rtol=1e-9, atol=1e-9)
        left = lane.left_boundary - lane.centerline[:, :2]
        normal = np.stack([-np.sin(lane.headings), np.cos(lane.headings)], axis=1)
        # (lanes that open or close have zero width at one end)
        dot = (left * normal).sum(axis=1)
        np.testing.assert_allclose(dot, 0.5 * lane.widths, atol=1e-6)
        if lane.is_driving:
            # headings follow the sampled polyline's direction
            seg = np.diff(lane.centerline[:, :2], axis=0)
            along = np.arctan2(seg[:, 1], seg[:, 0])
            mean_heading = lane.headings[:-1] + 0.5 * wrap_angle(
                lane.headings[1:] - lane.headings[:-1]
            )
            err = np.abs(wrap_angle(along - mean_heading))
            assert np.median(err) < math.radians(5)
    assert all(ln.lane_type == LaneType.DRIVING for ln in road_map.driving_lanes)


def test_carla_frame_is_converted_once() -> None:
    text = shared_file("maps/Town01.xodr").read_text()
    cmap = carla.Map("Town01", text)
    road_map = load("Town01")
    for entry, _ in cmap.get_topology()[:40]:
        lane = road_map.lane((entry.road_id, entry.section_id, entry.lane_id))
        loc = entry.transform.location
        np.testing.assert_allclose(lane.centerline[0], [loc.x, -loc.y, loc.z], atol=1e-6)
        expected_yaw = -math.radians(entry.transform.rotation.yaw)
        assert abs(float(wrap_angle(lane.headings[0] - expected_yaw))) < 1e-6


def test_lane_graph_connects_lane_ends(road_map: RoadMap) -> None:
    lanes = road_map.lanes
    successor_count = 0
    for lane in road_map.driving_lanes:
        for succ in lane.successors:
            successor_count += 1
            gap = np.linalg.norm(lanes[succ].centerline[0, :2] - lane.centerline[-1, :2])
            assert gap < 0.5, (lane.key, lanes[succ].key, gap)
            assert lane.index in lanes[succ].predecessors
        for neighbour, sign in ((lane.left_neighbor, 1.0), (lane.right_neighbor, -1.0)):
            if neighbour < 0:
                continue
            other = lanes[neighbour]
            assert other.is_driving
            mid = lane.centerline[len(lane.s) // 2, :2]
            proj = road_map.project(float(mid[0]), float(mid[1]), max_distance=10.0)
            offsets = {p.lane: p for p in proj}
            # the neighbour lies on the stated side, about one lane width away
            heading = lane.headings[len(lane.s) // 2]
            side = np.array([-math.sin(heading), math.cos(heading)]) * sign
            nearest_other = other.centerline[
                np.argmin(np.linalg.norm(other.centerline[:, :2] - mid, axis=1)), :2
            ]
            assert float((nearest_other - mid) @ side) > 0.5 * lane.widths[0]
            assert lane.index in offsets
    assert successor_count >= road_map.num_driving_lanes * 0.9


def test_no_dead_ends_on_generated_towns() -> None:
    for name in GENERATED:
        road_map = load(name)
        for lane in road_map.driving_lanes:
            assert lane.successors, f"{name}: lane {lane.key} has no successor"
            assert lane.predecessors, f"{name}: lane {lane.key} has no predecessor"


def test_nearest_lane_recovers_samples(road_map: RoadMap) -> None:
    rng = np.random.default_rng(0)
    lanes = [ln for ln in road_map.driving_lanes if not ln.in_junction]
    for lane in rng.choice(np.array(lanes, dtype=object), size=min(30, len(lanes)), replace=False):
        s = float(rng.uniform(0.2, 0.8) * lane.length)
        x, y, yaw = lane.interpolate(s)
        offset = 0.4
        px, py = x - offset * math.sin(yaw), y + offset * math.cos(yaw)
        found = road_map.nearest_lane(px, py, heading=yaw)
        assert found is not None
        assert found.lane == lane.index
        assert found.s == pytest.approx(s, abs=0.15)
        assert found.lateral == pytest.approx(offset, abs=0.1)
        assert found.distance == pytest.approx(offset, abs=0.1)
    bx0, by0, _, _ = road_map.bounds
    assert road_map.nearest_lane(bx0 - 500.0, by0 - 500.0) is None
    with pytest.raises(ValueError, match="finite"):
        road_map.project(float("nan"), 0.0)


def test_spawn_points_are_on_driving_lanes_outside_junctions(road_map: RoadMap) -> None:
    spawns = road_map.spawn_points(spacing=15.0)
    assert spawns.shape[1] == 3 and len(spawns) >= 5
    assert np.all(road_map.on_road(spawns[:, :2]))
    for x, y, yaw in spawns[:: max(len(spawns) // 40, 1)]:
        proj = road_map.project(float(x), float(y), max_distance=0.3, heading=float(yaw))
        assert proj and not road_map.lanes[proj[0].lane].in_junction
    np.testing.assert_array_equal(spawns, road_map.spawn_points(spacing=15.0))
    with pytest.raises(ValueError, match="spacing"):
        road_map.spawn_points(spacing=0.0)


def test_drivable_area_covers_lanes(road_map: RoadMap) -> None:
    area = road_map.drivable_area
    assert area.is_valid and area.area > 0
    pts = np.concatenate([ln.centerline[:, :2] for ln in road_map.driving_lanes])
    inside = shapely.contains_xy(area.buffer(0.05), pts[:, 0], pts[:, 1])
    assert inside.mean() > 0.999
    lane_area = sum(float(np.sum(ln.widths[:-1] * np.diff(ln.s))) for ln in road_map.driving_lanes)
    # junction lanes overlap each other, so the union is smaller than the sum, never larger
    assert 0.4 * lane_area < area.area < 1.05 * lane_area


def test_raster_matches_oracle_and_polygon(road_map: RoadMap) -> None:
    import cv2

    spec = RasterSpec(height=200, width=200, resolution=0.5)
    spawns = road_map.spawn_points(spacing=25.0)
    rng = np.random.default_rng(1)
    layers = list(RASTER_LAYER_NAMES.values())
    quads, segs = road_map.lane_quads(), road_map.segment_layers()
    for pose in spawns[rng.choice(len(spawns), size=min(5, len(spawns)), replace=False)]:
        raster = road_map.rasterize(pose, spec)
        assert raster.shape == (len(MapLayer), 200, 200) and raster.dtype == np.uint8
        # the ego stands on the road, on its lane's centreline region
        assert raster[MapLayer.DRIVABLE, 99:101, 99:101].all()
        oracle = rasterize_bev_reference(quads, segs, pose, spec, layers)
        drivable_diff = np.mean(raster[MapLayer.DRIVABLE] != oracle[MapLayer.DRIVABLE])
        assert drivable_diff <= 0.005
        # independent check against the shapely union polygon, filled with cv2
        x, y, yaw = pose
        c, s = math.cos(yaw), math.sin(yaw)
        mask = np.zeros((200, 200), dtype=np.uint8)
        window = shapely.box(x - 150, y - 150, x + 150, y + 150)
        clipped = road_map.drivable_area.intersection(window)
        for poly in getattr(clipped, "geoms", [clipped]):
            if poly.geom_type != "Polygon" or poly.is_empty:
                continue
            rings = [np.asarray(poly.exterior.coords)] + [
                np.asarray(r.coords) for r in poly.interiors
            ]
            pix = []
            for ring in rings:
                dx, dy = ring[:, 0] - x, ring[:, 1] - y
                ex, ey = c * dx + s * dy, -s * dx + c * dy
                row, col = 100 - ex / 0.5, 100 - ey / 0.5
                pix.append(np.round(np.stack([col - 0.5, row - 0.5], axis=1) * 16).astype(np.int32))
            cv2.fillPoly(mask, pix, 1, shift=4)
        assert np.mean(mask != raster[MapLayer.DRIVABLE]) <= 0.02


def test_summary(road_map: RoadMap) -> None:
    summary = road_map.summary()
    assert summary.driving_lanes == road_map.num_driving_lanes
    assert summary.lanes == len(road_map.lanes)
    assert summary.lane_km > 0.3
    assert summary.junctions == len(
        {ln.junction_id for ln in road_map.driving_lanes if ln.in_junction}
    )
    assert summary.bounds[0] < summary.bounds[2] and summary.bounds[1] < summary.bounds[3]


def test_real_towns_have_sidewalks_and_speed_limits() -> None:
    town01 = load("Town01")
    assert any(ln.lane_type == LaneType.SIDEWALK for ln in town01.lanes)
    # Town01's roads say 25 mph in their OpenDRIVE <type><speed>
    limits = {round(ln.speed_limit, 3) for ln in town01.driving_lanes}
    assert round(25 * 0.44704, 3) in limits


def test_bad_files_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(MapError, match="no such OpenDRIVE file"):
        RoadMap.from_file(tmp_path / "missing.xodr")
    bad = tmp_path / "bad.xodr"
    bad.write_text("<OpenDRIVE><road id='1'></OpenDRIVE>")
    with pytest.raises(MapError, match=r"bad\.xodr.*malformed"):
        RoadMap.from_file(bad)
    empty = tmp_path / "empty.xodr"
    empty.write_text("<?xml version='1.0'?><OpenDRIVE><header/></OpenDRIVE>")
    with pytest.raises(MapError, match="no driving lanes"):
        RoadMap.from_file(empty)
    with pytest.raises(MapError, match="not OpenDRIVE"):
        RoadMap.from_opendrive("hello")
    with pytest.raises(ValueError, match="sample_step"):
        RoadMapConfig(sample_step=0.0)
