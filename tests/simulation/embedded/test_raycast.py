"""The embedded simulator's ray-cast sensors: kernels vs oracles, sensor geometry, the world."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numba
import numpy as np
import pytest
import shapely

from benchmarks.bench_raycast import run as run_benchmark
from kaido.scene.agents import AgentClass, AgentState
from kaido.scene.frame import TrafficLightColor, TrafficLightState
from kaido.scene.geometry import SE2, SE3, Box3D, box3d_contains, box3d_corners
from kaido.scene.road_map import LaneType, RoadMap
from kaido.scene.sensors import CameraSpec, LidarSpec
from kaido.scene.town_generator import TownSpec, generate_town
from kaido.simulation.embedded import raycast_kernels
from kaido.simulation.embedded.raycast import (
    Actors,
    CameraShading,
    LidarNoise,
    actor_color,
    ego_actor,
    render_camera,
    render_lidar,
    traffic_light_actors,
)
from kaido.simulation.embedded.raycast_reference import (
    render_camera_reference,
    render_lidar_reference,
    trace_rays_reference,
)
from kaido.simulation.embedded.world import (
    CLASS_COLORS,
    RenderWorld,
    SemanticClass,
    WorldConfig,
    build_render_world,
    colorize_semantic,
)
from tests.conftest import shared_file

S = SemanticClass
NO_NOISE = LidarNoise(range_std=0.0, dropout=0.0)
FRONT = CameraSpec.from_fov("front", 640, 360, 90.0, SE3.from_euler(1.5, 0.0, 1.6, 0.0, 0.0, 0.0))
ROOF = LidarSpec(
    "top",
    SE3.from_euler(1.3, 0.0, 2.0, 0.0, 0.0, 0.0),
    32,
    math.radians(10.0),
    math.radians(-30.0),
    0.5,
    80.0,
    10.0,
    32 * 1024 * 10,
)


def flat_world(ground: SemanticClass = S.TERRAIN, half: float = 100.0) -> RenderWorld:
    cells = int(2 * half / 0.5)
    return RenderWorld(
        np.full((cells, cells), int(ground), np.uint8), np.array([-half, -half]), 0.5
    )


def one_box(box: list[float], cls: SemanticClass = S.VEHICLE) -> Actors:
    return Actors(np.array([box]), np.array([cls], np.uint8), np.array([[200, 30, 30]], np.uint8))


def single_beam_lidar(azimuths: int = 720, range_max: float = 80.0) -> LidarSpec:
    """One horizontal beam at 1 m height, ``azimuths`` firings per turn."""
    return LidarSpec(
        "beam", SE3.from_euler(0, 0, 1.0, 0, 0, 0), 1, 0.0, 0.0, 0.0, range_max, 10.0, azimuths * 10
    )


@pytest.fixture(scope="module")
def town() -> RoadMap:
    return RoadMap.from_opendrive(generate_town(TownSpec(rows=3, cols=3, seed=0, name="t")), "t")


@pytest.fixture(scope="module")
def town_world(town: RoadMap) -> RenderWorld:
    return build_render_world(town)


def random_scene(seed: int) -> tuple[RenderWorld, Actors]:
    """A random ground grid and random boxes, some of them beyond the grid."""
    rng = np.random.default_rng(seed)
    ground = rng.integers(1, 5, (120, 160)).astype(np.uint8)
    world = RenderWorld(ground, np.array([-20.0, -15.0]), 0.25, box_cell_size=3.0)
    n = 40
    boxes = np.column_stack(
        [
            rng.uniform(-40.0, 60.0, n),
            rng.uniform(-40.0, 40.0, n),
            rng.uniform(0.2, 2.5, n),
            rng.uniform(-math.pi, math.pi, n),
            rng.uniform(0.3, 6.0, n),
            rng.uniform(0.3, 3.0, n),
            rng.uniform(0.5, 4.0, n),
        ]
    )
    classes = rng.integers(int(S.BUILDING), len(S), n).astype(np.uint8)
    colors = rng.integers(0, 256, (n, 3)).astype(np.uint8)
    return world, Actors(boxes, classes, colors)


def ego_pose_on_lane(road_map: RoadMap, index: int = 5) -> SE2:
    x, y, yaw = road_map.spawn_points()[index]
    return SE2(float(x), float(y), float(yaw))


# -- kernels vs the NumPy oracles ------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trace_ray_matches_reference(seed: int) -> None:
    world, actors = random_scene(seed)
    from kaido.simulation.embedded.raycast import scene_boxes

    scene = scene_boxes(world, actors)
    assert len(scene.outside) > 0  # boxes beyond the grid are traced too
    rng = np.random.default_rng(100 + seed)
    n_cols, n_rows = world.box_grid_shape
    for _ in range(4):
        origin = rng.uniform([-30.0, -30.0, 0.2], [50.0, 30.0, 5.0])
        dirs = rng.normal(size=(300, 3)) * np.array([1.0, 1.0, 0.4])
        dirs[:5, 0] = 0.0  # rays parallel to the box grid's axes
        dirs[5:10, 1] = 0.0
        dirs[10:15, 2] = 0.0
        t_ref, item_ref, face_ref = trace_rays_reference(origin, dirs, 0.01, 120.0, scene.params)
        for k, d in enumerate(dirs):
            t, item, face = raycast_kernels.trace_ray(  # type: ignore[call-arg]
                *origin, *d, 0.01, 120.0, scene.params, scene.cell_start, scene.cell_items,
                scene.outside, *world.box_grid_origin, world.box_cell_size, n_cols, n_rows,
                scene.z_top,
            )  # fmt: skip
            assert (item, face) == (item_ref[k], face_ref[k]), f"ray {k}"
            assert t == pytest.approx(t_ref[k], abs=1e-9)
    assert (item_ref >= 0).any() and (item_ref == raycast_kernels.GROUND_HIT).any()


@pytest.mark.parametrize("seed", [0, 1])
def test_camera_kernel_matches_reference(seed: int) -> None:
    world, actors = random_scene(seed)
    camera = CameraSpec.from_fov("c", 96, 64, 100.0, SE3.from_euler(1.5, 0.0, 1.6, 0, 0, 0))
    rng = np.random.default_rng(seed)
    x, y, pitch = rng.uniform([-5.0, -5.0, -0.1], [5.0, 5.0, 0.1])
    pose = SE3.from_euler(x, y, 0.0, 0.0, pitch, float(seed))
    rgb, depth, semantic = render_camera(world, actors, camera, pose @ camera.extrinsics)
    rgb_r, depth_r, semantic_r = render_camera_reference(
        world, actors, camera, pose @ camera.extrinsics
    )
    np.testing.assert_array_equal(semantic, semantic_r)
    np.testing.assert_array_equal(np.isinf(depth), np.isinf(depth_r))
    finite = np.isfinite(depth)
    np.testing.assert_allclose(depth[finite], depth_r[finite], rtol=0.0, atol=1e-6)
    assert np.abs(rgb.astype(int) - rgb_r).max() <= 1
    seen = set(np.unique(semantic).tolist())
    assert S.NONE in seen and len(seen) >= 5  # sky, ground classes and boxes all on screen


@pytest.mark.parametrize("seed", [0, 1])
def test_lidar_kernel_matches_reference(seed: int) -> None:
    world, actors = random_scene(seed)
    lidar = LidarSpec(
        "l", SE3.from_euler(1.3, 0, 2.0, 0, 0, 0), 16, 0.2, -0.5, 0.5, 50.0, 10.0, 16 * 300 * 10
    )
    pose = SE3.from_euler(2.0, -1.0, 0.0, 0.0, 0.0, 0.4 * seed) @ lidar.extrinsics
    noise = LidarNoise(range_std=0.05, dropout=0.1)
    points, semantic = render_lidar(world, actors, lidar, pose, np.random.default_rng(seed), noise)
    points_r, semantic_r = render_lidar_reference(
        world, actors, lidar, pose, np.random.default_rng(seed), noise
    )
    np.testing.assert_array_equal(semantic, semantic_r)
    np.testing.assert_allclose(points, points_r, rtol=0.0, atol=1e-6)
    assert len(points) > 1000
    assert (semantic >= S.BUILDING).any()


# -- lidar geometry --------------------------------------------------------------------------------


def test_beam_at_box_face_returns_its_distance() -> None:
    # A wall whose face is the plane x = 10 m, lidar at the origin 1 m up, one horizontal beam.
    wall = one_box([11.0, 0.0, 2.0, 0.0, 2.0, 6.0, 4.0])
    lidar = single_beam_lidar()
    pose = lidar.extrinsics
    points, semantic = render_lidar(
        flat_world(), wall, lidar, pose, np.random.default_rng(0), NO_NOISE
    )
    assert set(semantic.tolist()) == {S.VEHICLE}
    # every return lies on the face, and the beam straight ahead at exactly 10 m
    np.testing.assert_allclose(points[:, 0], 10.0, atol=1e-4)
    assert np.abs(points[:, 1]).max() <= 3.0 + 1e-4
    ahead = np.argmin(np.abs(points[:, 1]))
    np.testing.assert_allclose(points[ahead, :3], [10.0, 0.0, 0.0], atol=1e-4)
    # the face covers azimuths |az| <= atan(3 / 10): one return per firing there
    expected = np.abs(lidar.azimuth_angles()) <= math.atan(0.3)
    assert len(points) == int(expected.sum())
    # intensity: reflectivity x cos(incidence) x atmospheric attenuation
    refl = NO_NOISE.reflectivity[S.VEHICLE]
    assert points[ahead, 3] == pytest.approx(refl * math.exp(-NO_NOISE.attenuation * 10.0), 1e-5)


def test_range_noise_stays_within_four_sigma() -> None:
    wall = one_box([21.0, 0.0, 2.0, 0.0, 2.0, 30.0, 4.0])  # face at x = 20 m
    lidar = single_beam_lidar(azimuths=2000)
    sigma = 0.05
    points, _ = render_lidar(
        flat_world(), wall, lidar, lidar.extrinsics, np.random.default_rng(1),
        LidarNoise(range_std=sigma, dropout=0.0),
    )  # fmt: skip
    az = np.arctan2(points[:, 1], points[:, 0])
    true_range = 20.0 / np.cos(az)
    error = np.linalg.norm(points[:, :3], axis=1) - true_range
    assert len(error) > 300
    assert np.abs(error).max() <= 4.0 * sigma
    assert np.std(error) == pytest.approx(sigma, rel=0.15)
    # the noise moves points along their beam only
    np.testing.assert_allclose(points[:, 2], 0.0, atol=1e-6)


def test_nothing_beyond_range() -> None:
    lidar = single_beam_lidar(range_max=80.0)
    far_wall = one_box([86.0, 0.0, 2.0, 0.0, 2.0, 20.0, 4.0])  # face at 85 m
    points, semantic = render_lidar(
        flat_world(half=200.0), far_wall, lidar, lidar.extrinsics, np.random.default_rng(0),
        NO_NOISE,
    )  # fmt: skip
    assert points.shape == (0, 4) and semantic.shape == (0,)
    near_wall = one_box([80.0, 0.0, 2.0, 0.0, 2.0, 20.0, 4.0])  # face at 79 m
    points, _ = render_lidar(
        flat_world(half=200.0), near_wall, lidar, lidar.extrinsics, np.random.default_rng(0),
        NO_NOISE,
    )  # fmt: skip
    assert len(points) > 0
    assert np.linalg.norm(points[:, :3], axis=1).max() <= 80.0
    # returns closer than range_min are dropped too
    close = LidarSpec("c", lidar.extrinsics, 1, 0.0, 0.0, 5.0, 80.0, 10.0, 7200)
    wall = one_box([4.0, 0.0, 2.0, 0.0, 2.0, 1.0, 4.0])  # face at 3 m
    points, _ = render_lidar(
        flat_world(), wall, close, close.extrinsics, np.random.default_rng(0), NO_NOISE
    )
    assert len(points) == 0


def test_dropout_rate() -> None:
    dropout = 0.3
    n_rays = ROOF.points_per_sweep
    pose = SE3.from_euler(0, 0, 0, 0, 0, 0) @ ROOF.extrinsics
    all_points, _ = render_lidar(
        flat_world(), Actors.empty(), ROOF, pose, np.random.default_rng(3), NO_NOISE
    )
    kept, _ = render_lidar(
        flat_world(), Actors.empty(), ROOF, pose, np.random.default_rng(4),
        LidarNoise(range_std=0.0, dropout=dropout),
    )  # fmt: skip
    hits = len(all_points)
    assert hits > 0.6 * n_rays  # every downward beam hits the ground
    rate = len(kept) / hits
    sigma = math.sqrt(dropout * (1 - dropout) / hits)
    assert abs(rate - (1 - dropout)) < 5 * sigma


def test_lidar_points_are_in_the_sensor_frame() -> None:
    # a tilted, turned lidar sees the flat ground: every point maps to z = 0 in the world
    lidar = LidarSpec(
        "t",
        SE3.from_euler(0.5, 0.2, 1.8, 0.05, 0.1, 0.3),
        8,
        0.0,
        -0.6,
        0.5,
        60.0,
        10.0,
        8 * 90 * 10,
    )
    ego = SE3.from_euler(5.0, -3.0, 0.0, 0.0, 0.0, 1.0)
    points, semantic = render_lidar(
        flat_world(S.ROAD), Actors.empty(), lidar, ego @ lidar.extrinsics,
        np.random.default_rng(0), NO_NOISE,
    )  # fmt: skip
    world = (ego @ lidar.extrinsics).transform_points(points[:, :3].astype(np.float64))
    np.testing.assert_allclose(world[:, 2], 0.0, atol=1e-4)
    assert (semantic == S.ROAD).all()


def test_lidar_vehicle_points_project_onto_vehicle_pixels(
    town: RoadMap, town_world: RenderWorld
) -> None:
    ego = ego_pose_on_lane(town)
    ego_to_world = SE3.from_se2(ego, 0.0)
    c, s = math.cos(ego.yaw), math.sin(ego.yaw)
    cars = []
    for k, (ahead, left) in enumerate([(9.0, 0.0), (16.0, 3.2), (24.0, -3.0), (30.0, 0.5)]):
        x = ego.x + c * ahead - s * left
        y = ego.y + s * ahead + c * left
        cars.append(
            AgentState(k, AgentClass.VEHICLE, Box3D(x, y, 0.75, ego.yaw, 4.5, 1.9, 1.5), (0, 0), 0)
        )
    actors = Actors.from_agents(cars)
    _, _, semantic = render_camera(town_world, actors, FRONT, ego_to_world @ FRONT.extrinsics)
    points, labels = render_lidar(
        town_world, actors, ROOF, ego_to_world @ ROOF.extrinsics, np.random.default_rng(0)
    )
    on_cars = points[labels == S.VEHICLE, :3].astype(np.float64)
    uv, _, valid = FRONT.project(ROOF.extrinsics.transform_points(on_cars))
    assert valid.sum() > 200
    cols = np.floor(uv[valid, 0]).astype(int)
    rows = np.floor(uv[valid, 1]).astype(int)
    padded = np.pad(semantic == S.VEHICLE, 1)
    near_vehicle = np.zeros(len(cols), dtype=bool)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            near_vehicle |= padded[rows + 1 + dr, cols + 1 + dc]
    assert near_vehicle.mean() >= 0.95
    exact = (semantic[rows, cols] == S.VEHICLE).mean()
    assert exact >= 0.8


# -- camera geometry -------------------------------------------------------------------------------


def test_box_straight_ahead_is_centred_at_its_depth() -> None:
    # a 2 m cube whose near face is 20 m ahead of the camera, centred on its optical axis
    distance = 20.0
    box = one_box([1.5 + distance + 1.0, 0.0, 1.6, 0.0, 2.0, 2.0, 2.0])
    rgb, depth, semantic = render_camera(flat_world(), box, FRONT, FRONT.extrinsics)
    mask = semantic == S.VEHICLE
    rows, cols = np.nonzero(mask)
    assert cols.mean() + 0.5 == pytest.approx(FRONT.cx, abs=0.5)
    assert rows.mean() + 0.5 == pytest.approx(FRONT.cy, abs=0.5)
    np.testing.assert_allclose(depth[mask], distance, rtol=0.0, atol=1e-4)
    # its image spans f * size / distance pixels each way
    assert cols.max() - cols.min() + 1 == pytest.approx(FRONT.fx * 2.0 / distance, abs=1.0)
    assert rows.max() - rows.min() + 1 == pytest.approx(FRONT.fy * 2.0 / distance, abs=1.0)
    # the face seen head-on is lit by the sun's share along +x only: a uniform colour
    assert len(np.unique(rgb[mask].reshape(-1, 3), axis=0)) == 1


def test_camera_depth_is_optical_z() -> None:
    world = flat_world(S.ROAD)
    _, depth, semantic = render_camera(world, Actors.empty(), FRONT, FRONT.extrinsics)
    ground = semantic == S.ROAD
    rows, cols = np.nonzero(ground)
    pts = FRONT.unproject(np.column_stack([cols + 0.5, rows + 0.5]), depth[ground])
    np.testing.assert_allclose(pts[:, 2], 0.0, atol=1e-3)  # unprojected depth lies on the ground
    # above the horizon is sky: infinite depth, class NONE; below it the ground: the grid's
    # road within 54 m (10 rows below the horizon), terrain beyond it, sky past `far` (300 m)
    assert (semantic[: int(FRONT.cy)] == S.NONE).all()
    assert np.isinf(depth[semantic == S.NONE]).all()
    assert (semantic[int(FRONT.cy) + 10 :] == S.ROAD).all()
    horizon_band = semantic[int(FRONT.cy) : int(FRONT.cy) + 10]
    assert {S.NONE, S.TERRAIN, S.ROAD} == set(np.unique(horizon_band).tolist())


def test_far_clips_the_ground() -> None:
    _, depth, semantic = render_camera(
        flat_world(S.ROAD), Actors.empty(), FRONT, FRONT.extrinsics,
        shading=CameraShading(far=30.0),
    )  # fmt: skip
    assert depth[np.isfinite(depth)].max() < 30.0
    assert (semantic[int(FRONT.cy) + 1] == S.NONE).all()  # just below the horizon: beyond 30 m


def test_ground_below_horizon_is_road_where_the_ego_stands(
    town: RoadMap, town_world: RenderWorld
) -> None:
    ego = ego_pose_on_lane(town)
    ego_to_world = SE3.from_se2(ego, 0.0)
    rgb, depth, semantic = render_camera(
        town_world, Actors.empty(), FRONT, ego_to_world @ FRONT.extrinsics
    )
    centre = int(FRONT.cx)
    bottom = semantic[-40:, centre - 30 : centre + 30]
    assert np.isin(bottom, [S.ROAD, S.LANE_MARKING]).all()
    assert (semantic[int(FRONT.cy) + 2 :] != S.NONE).all()  # no sky below the horizon
    # the bottom-centre pixel's ground point lies on the map's drivable area
    p = FRONT.unproject(np.array([[FRONT.cx, FRONT.height - 0.5]]), depth[-1:, centre])
    world_p = ego_to_world.transform_points(p)
    assert town.on_road(world_p[:, :2]).all()
    assert rgb.shape == (360, 640, 3) and rgb.dtype == np.uint8
    assert depth.dtype == np.float32 and semantic.dtype == np.uint8


def test_box_faces_are_lambert_shaded() -> None:
    # a wide flat box seen from straight above: its top face fills the image
    box = one_box([10.0, 0.0, 1.0, 0.3, 20.0, 20.0, 2.0])
    above = SE3.from_euler(10.0, 0.0, 30.0, 0.0, math.pi / 2, 0.0)
    camera = CameraSpec.from_fov("c", 32, 32, 30.0, SE3.identity())
    ambient = 0.4
    for light, shade in (((0.0, 0.0, 1.0), 1.0), ((1.0, 0.0, 0.0), ambient)):
        rgb, _, semantic = render_camera(
            flat_world(),
            box,
            camera,
            above,
            light_dir=light,
            shading=CameraShading(ambient=ambient),
        )
        assert (semantic == S.VEHICLE).all()
        expected = np.floor(np.array([200.0, 30.0, 30.0]) * shade + 0.5)
        np.testing.assert_array_equal(rgb.reshape(-1, 3), np.broadcast_to(expected, (32 * 32, 3)))


def test_sensor_inside_a_box_does_not_see_it() -> None:
    ego_box = Box3D(1.4, 0.0, 0.8, 0.0, 4.6, 1.9, 1.6)
    actors = ego_actor(ego_box)
    assert actors.classes.tolist() == [S.EGO]
    inside = CameraSpec.from_fov("i", 64, 36, 90.0, SE3.from_euler(1.5, 0.0, 1.2, 0, 0, 0))
    _, _, semantic = render_camera(flat_world(), actors, inside, inside.extrinsics)
    assert not (semantic == S.EGO).any()
    # a roof lidar above it sees the roof with its steep beams
    _, labels = render_lidar(
        flat_world(), actors, ROOF, ROOF.extrinsics, np.random.default_rng(0), NO_NOISE
    )
    assert (labels == S.EGO).any()


# -- the world -------------------------------------------------------------------------------------


def test_ground_classes_follow_the_lanes(town: RoadMap, town_world: RenderWorld) -> None:
    for lane in town.lanes:
        cls = town_world.ground_class_at(lane.centerline[:, :2])
        if lane.lane_type == LaneType.DRIVING:
            assert np.isin(cls, [S.ROAD, S.LANE_MARKING]).mean() > 0.97
        elif lane.lane_type == LaneType.SIDEWALK:
            assert (cls == S.SIDEWALK).mean() > 0.9
    counts = np.bincount(town_world.ground_classes.ravel(), minlength=len(S))
    assert counts[S.LANE_MARKING] > 0 and counts[S.SIDEWALK] > 0 and counts[S.TERRAIN] > 0
    # far from the map, and beyond the grid, the ground is terrain
    x0, y0, x1, y1 = town_world.ground_extent
    far = np.array([[x0 + 1.0, y0 + 1.0], [x1 + 50.0, y1 + 50.0]])
    assert (town_world.ground_class_at(far) == S.TERRAIN).all()


def _check_buildings_off_the_road(road_map: RoadMap, world: RenderWorld) -> None:
    boxes = world.static_boxes
    assert len(boxes) > 20
    assert (world.static_classes == S.BUILDING).all()
    footprints = shapely.polygons(box3d_corners(boxes)[:, :4, :2])
    clearance = WorldConfig().building_clearance
    distance = shapely.distance(footprints, road_map.drivable_area)
    assert distance.min() >= clearance - 1e-6
    # and no road, marking or sidewalk cell of the ground grid lies under a building
    res = world.ground_resolution
    for box in boxes:
        lo = box3d_corners(box)[:4, :2].min(axis=0)
        hi = box3d_corners(box)[:4, :2].max(axis=0)
        xs = np.arange(lo[0], hi[0], res)
        ys = np.arange(lo[1], hi[1], res)
        grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
        inside = box3d_contains(box, np.column_stack([grid, np.full(len(grid), box[2])]))
        cls = world.ground_class_at(grid[inside])
        assert not np.isin(cls, [S.ROAD, S.LANE_MARKING, S.SIDEWALK]).any()
    assert (boxes[:, 2] == 0.5 * boxes[:, 6]).all()  # standing on the ground


def test_buildings_never_overlap_the_road(town: RoadMap, town_world: RenderWorld) -> None:
    _check_buildings_off_the_road(town, town_world)


def test_buildings_never_overlap_the_road_town01() -> None:
    road_map = RoadMap.from_file(shared_file("maps/Town01.xodr"))
    _check_buildings_off_the_road(road_map, build_render_world(road_map))


def test_world_is_deterministic(town: RoadMap, town_world: RenderWorld) -> None:
    again = build_render_world(town)
    np.testing.assert_array_equal(again.ground_classes, town_world.ground_classes)
    np.testing.assert_array_equal(again.static_boxes, town_world.static_boxes)
    np.testing.assert_array_equal(again.static_colors, town_world.static_colors)
    other = build_render_world(town, WorldConfig(seed=1))
    np.testing.assert_array_equal(other.ground_classes, town_world.ground_classes)
    assert not np.array_equal(other.static_boxes, town_world.static_boxes)
    none = build_render_world(town, WorldConfig(buildings=False))
    assert len(none.static_boxes) == 0


def test_rendering_is_deterministic(town: RoadMap, town_world: RenderWorld) -> None:
    ego_to_world = SE3.from_se2(ego_pose_on_lane(town, 9), 0.0)
    spawn = town.spawn_points()[::7][:30]
    agents = [
        AgentState(100 + i, AgentClass.VEHICLE, Box3D(x, y, 0.75, yaw, 4.5, 1.9, 1.5), (0, 0), 0)
        for i, (x, y, yaw) in enumerate(spawn)
    ]
    actors = Actors.from_agents(agents)

    def render() -> tuple[bytes, ...]:
        cam = render_camera(town_world, actors, FRONT, ego_to_world @ FRONT.extrinsics)
        pts, sem = render_lidar(
            town_world, actors, ROOF, ego_to_world @ ROOF.extrinsics, np.random.default_rng(42)
        )
        return (*(a.tobytes() for a in cam), pts.tobytes(), sem.tobytes())

    first = render()
    assert first == render()
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert first == render()  # the thread count does not change a single byte
    finally:
        numba.set_num_threads(threads)
    _, sem_other = render_lidar(
        town_world, actors, ROOF, ego_to_world @ ROOF.extrinsics, np.random.default_rng(43)
    )
    assert sem_other.tobytes() != first[4]


# -- actors ----------------------------------------------------------------------------------------


def test_actors_from_agents() -> None:
    def agent(track_id: int, cls: AgentClass) -> AgentState:
        return AgentState(track_id, cls, Box3D(track_id, 0.0, 0.8, 0.1, 4.0, 1.8, 1.6), (0, 0), 0)

    agents = [agent(7, AgentClass.VEHICLE), agent(3, AgentClass.PEDESTRIAN),
              agent(5, AgentClass.CYCLIST), agent(9, AgentClass.STATIC)]  # fmt: skip
    actors = Actors.from_agents(agents)
    assert actors.classes.tolist() == [S.VEHICLE, S.PEDESTRIAN, S.CYCLIST, S.OBSTACLE]
    np.testing.assert_array_equal(actors.boxes[0], agents[0].box.as_array())
    # colours depend on the id only
    reordered = Actors.from_agents(agents[::-1])
    np.testing.assert_array_equal(reordered.colors[::-1], actors.colors)
    assert actor_color(7, S.VEHICLE) == tuple(actors.colors[0])
    palette = {actor_color(i, S.VEHICLE) for i in range(200)}
    assert len(palette) >= 5
    both = Actors.concatenate([actors, Actors.empty(), reordered])
    assert len(both) == 8
    assert len(Actors.from_agents([])) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"boxes": np.zeros((2, 6))}, r"Actors.boxes: expected shape \(A, 7\)"),
        ({"classes": np.zeros(3, np.uint8)}, r"Actors.classes: expected shape \(2,\)"),
        ({"colors": np.zeros((2, 3), np.float64)}, "Actors.colors: expected uint8"),
        ({"colors": np.full((2, 3), 300)}, "Actors.colors: expected uint8"),
        ({"classes": np.array([1, 200], np.uint8)}, "not a SemanticClass"),
        ({"boxes": np.full((2, 7), np.nan)}, "Actors.boxes: row 0 is not finite"),
    ],
)
def test_actors_validation(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "boxes": np.ones((2, 7)),
        "classes": np.array([6, 7], np.uint8),
        "colors": np.zeros((2, 3), np.uint8),
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Actors(**args)  # type: ignore[arg-type]
    # integer arrays in range are accepted and converted
    ok = Actors(np.ones((1, 7), np.int64), np.array([6]), np.array([[1, 2, 3]]))
    assert ok.boxes.dtype == np.float64 and ok.classes.dtype == ok.colors.dtype == np.uint8


def test_traffic_lights_stand_off_the_road(town: RoadMap, town_world: RenderWorld) -> None:
    lights = []
    colors = list(TrafficLightColor)
    for i, lane in enumerate(ln for ln in town.driving_lanes if not ln.in_junction):
        # the stop line across the lane's end, from its right boundary to its left boundary
        line = np.array([lane.right_boundary[-1], lane.left_boundary[-1]], dtype=np.float64)
        lights.append(TrafficLightState(i, colors[i % len(colors)], (0.0, 0.0, 0.0), line))
    actors = traffic_light_actors(lights, town_world)
    assert len(actors) == 2 * len(lights)
    poles = actors.boxes[0::2]
    heads = actors.boxes[1::2]
    assert (actors.classes[0::2] == S.POLE).all() and (
        actors.classes[1::2] == S.TRAFFIC_LIGHT
    ).all()
    cls = town_world.ground_class_at(poles[:, :2])
    assert not np.isin(cls, [S.ROAD, S.LANE_MARKING]).any()
    # right of the traffic: a pole lies on the right of its lane's heading
    for lane, pole in zip(
        (ln for ln in town.driving_lanes if not ln.in_junction), poles, strict=False
    ):
        end, heading = lane.centerline[-1], lane.headings[-1]
        rel = pole[:2] - end[:2]
        assert -math.sin(heading) * rel[0] + math.cos(heading) * rel[1] < 0.0
    # heads sit on the poles, coloured by the light state
    np.testing.assert_allclose(heads[:, :2], poles[:, :2])
    assert (heads[:, 2] - 0.5 * heads[:, 6] >= poles[:, 2] + 0.5 * poles[:, 6] - 1e-9).all()
    red = [i for i, light in enumerate(lights) if light.color == TrafficLightColor.RED]
    green = [i for i, light in enumerate(lights) if light.color == TrafficLightColor.GREEN]
    assert actors.colors[1 + 2 * red[0], 0] > 200 and actors.colors[1 + 2 * green[0], 1] > 200
    # without a stop line the pole stands at the light's position
    bare = traffic_light_actors([TrafficLightState("x", TrafficLightColor.RED, (3.0, 4.0, 5.0))])
    np.testing.assert_allclose(bare.boxes[0, :2], [3.0, 4.0])


def test_semantic_palette() -> None:
    assert CLASS_COLORS.shape == (len(S), 3)
    assert len({tuple(c) for c in CLASS_COLORS.tolist()}) == len(S)
    rgb = colorize_semantic(np.array([[S.ROAD, S.VEHICLE]], np.uint8))
    np.testing.assert_array_equal(rgb[0], CLASS_COLORS[[S.ROAD, S.VEHICLE]])
    with pytest.raises(ValueError, match="uint8"):
        colorize_semantic(np.zeros(3, np.int64))


def test_render_world_validation() -> None:
    with pytest.raises(ValueError, match="ground_classes"):
        RenderWorld(np.zeros((4, 4), np.int32), np.zeros(2), 0.5)
    with pytest.raises(ValueError, match="ground_resolution"):
        RenderWorld(np.zeros((4, 4), np.uint8), np.zeros(2), 0.0)
    with pytest.raises(ValueError, match="static_classes"):
        RenderWorld(np.zeros((4, 4), np.uint8), np.zeros(2), 0.5, np.ones((2, 7)))
    with pytest.raises(ValueError, match="building_clearance"):
        WorldConfig(building_setback=1.0, building_clearance=2.0)
    with pytest.raises(ValueError, match="range_std"):
        LidarNoise(range_std=-1.0)
    with pytest.raises(ValueError, match="dropout"):
        LidarNoise(dropout=1.5)
    with pytest.raises(ValueError, match="light_dir"):
        render_camera(flat_world(), Actors.empty(), FRONT, SE3.identity(), light_dir=(0, 0, 0))
    with pytest.raises(TypeError, match="rng"):
        render_lidar(flat_world(), Actors.empty(), ROOF, SE3.identity(), 0)  # type: ignore[arg-type]


# -- the benchmark's contract ----------------------------------------------------------------------


def test_benchmark_writes_its_report(town: RoadMap, tmp_path: Path) -> None:
    report = run_benchmark(
        tmp_path, repeats=1, maps={"town": town}, camera_scale=0.25, reference_scale=0.1,
        lidar_azimuths=128, n_actors=10,
    )  # fmt: skip
    saved = json.loads((tmp_path / "raycast.json").read_text())
    assert saved["benchmark"] == "raycast"
    for sensor in ("camera", "lidar"):
        row = saved["maps"]["town"][sensor]
        assert row["kernel"]["median_ms"] > 0.0
        assert row["kernel"]["rays_per_s"] > 0.0
        assert row["ratio_vs_reference"] == pytest.approx(
            row["kernel"]["rays_per_s"] / row["reference"]["rays_per_s"]
        )
    assert report["maps"]["town"]["camera"]["kernel"] == saved["maps"]["town"]["camera"]["kernel"]
