"""Tests of the Argoverse 2 sensor-log reader against the real log ``shared/data/av2/sensor/
7fab2350-…`` (2 lidar sweeps, 81 annotated cuboids at each, ego poses, calibration)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pyarrow.feather as feather
import pytest

from kaido.logs.av2_sensor import (
    AV2_CATEGORIES,
    AV2_REAR_AXLE_HEIGHT,
    DOWN_LIDAR,
    LASERS_PER_LIDAR,
    UP_LIDAR,
    Av2SensorLog,
)
from kaido.scene.agents import AgentClass
from kaido.scene.frame import Frame
from kaido.scene.geometry import SE3, Box3DIndex, box3d_contains
from tests.conftest import shared_file

LOG = "av2/sensor/7fab2350-7eaf-3b7e-a39d-6937a4c1bede"

#: The 30 categories of the AV2 sensor-dataset taxonomy (av2-api AnnotationCategories).
AV2_TAXONOMY = frozenset(
    "ANIMAL ARTICULATED_BUS BICYCLE BICYCLIST BOLLARD BOX_TRUCK BUS CONSTRUCTION_BARREL "
    "CONSTRUCTION_CONE DOG LARGE_VEHICLE MESSAGE_BOARD_TRAILER MOBILE_PEDESTRIAN_CROSSING_SIGN "
    "MOTORCYCLE MOTORCYCLIST OFFICIAL_SIGNALER PEDESTRIAN RAILED_VEHICLE REGULAR_VEHICLE "
    "SCHOOL_BUS SIGN STOP_SIGN STROLLER TRAFFIC_LIGHT_TRAILER TRUCK TRUCK_CAB VEHICULAR_TRAILER "
    "WHEELCHAIR WHEELED_DEVICE WHEELED_RIDER".split()
)


@pytest.fixture(scope="module")
def root() -> Path:
    return shared_file(LOG)


@pytest.fixture(scope="module")
def log(root: Path) -> Av2SensorLog:
    return Av2SensorLog(root)


@pytest.fixture(scope="module")
def frames(log: Av2SensorLog) -> list[Frame]:
    return [log.frame(i) for i in range(len(log))]


def _ego_points(frame: Frame) -> np.ndarray:
    return np.concatenate([frame.lidar_points_ego(name) for name in (UP_LIDAR, DOWN_LIDAR)])


def test_log_layout(log: Av2SensorLog) -> None:
    assert log.log_id == "7fab2350-7eaf-3b7e-a39d-6937a4c1bede"
    assert log.timestamps_ns.tolist() == [315966265259836000, 315966265360032000]
    assert len(log) == 2
    assert log.rig.lidar_names == (UP_LIDAR, DOWN_LIDAR)
    assert len(log.rig.cameras) == 9
    assert set(log.camera_distortion) == set(log.rig.camera_names)


@pytest.mark.parametrize("index", [0, 1])
def test_interior_point_counts_match_annotations(
    log: Av2SensorLog, frames: list[Frame], index: int
) -> None:
    """AV2's ``num_interior_pts`` equals the returns of the sweep inside each cuboid, both in
    kaido's ego frame: measured exact for all 71 cuboids with returns (and 0 for the other 10)."""
    points = _ego_points(frames[index])
    cuboids = log.cuboids(index)
    assert len(cuboids) == 81
    counts = box3d_contains(cuboids.boxes, points).sum(axis=1)
    has_points = cuboids.num_interior_pts > 0
    assert int(has_points.sum()) == 71
    diff = counts[has_points] - cuboids.num_interior_pts[has_points]
    assert int(np.abs(diff).max()) == 0
    assert int(counts[~has_points].max()) == 0


@pytest.mark.parametrize("index", [0, 1])
def test_ego_pose_is_a_proper_rotation(log: Av2SensorLog, index: int) -> None:
    t = int(log.timestamps_ns[index])
    pose = log.ego_pose(t)
    r = pose.rotation
    assert float(np.abs(r.T @ r - np.eye(3)).max()) < 1e-12
    assert abs(float(np.linalg.det(r)) - 1.0) < 1e-12
    state = log.ego_state(index)
    assert state.timestamp_ns == t
    planar = pose.to_se2()
    assert (state.pose.x, state.pose.y, state.pose.yaw) == (planar.x, planar.y, planar.yaw)
    # kaido's origin is the AV2 origin moved down the vehicle's z axis by the axle height.
    row = feather.read_table(log.root / "city_SE3_egovehicle.feather").to_pydict()
    k = row["timestamp_ns"].index(t)
    av2_origin = np.array([row["tx_m"][k], row["ty_m"][k], row["tz_m"][k]])
    np.testing.assert_allclose(
        pose.translation + AV2_REAR_AXLE_HEIGHT * r[:, 2], av2_origin, rtol=0, atol=1e-9
    )


def test_ego_motion_from_poses(log: Av2SensorLog, frames: list[Frame]) -> None:
    """The differenced velocity agrees with the displacement between the two sweeps (measured
    0.553 and 0.775 m/s at the sweeps, 0.668 m/s mean over the 0.1 s between them)."""
    a, b = (f.ego for f in frames)
    dt = (b.timestamp_ns - a.timestamp_ns) * 1e-9
    mean_speed = math.hypot(b.pose.x - a.pose.x, b.pose.y - a.pose.y) / dt
    assert 0.5 * (a.speed + b.speed) == pytest.approx(mean_speed, abs=0.05)
    assert (b.speed - a.speed) / dt == pytest.approx(
        0.5 * (a.acceleration[0] + b.acceleration[0]), abs=0.3
    )
    assert abs(a.velocity[1]) < 0.1 * a.velocity[0]  # driving forwards, not sideways
    assert math.isnan(a.steering_angle)  # not recorded


@pytest.mark.parametrize("index", [0, 1])
def test_lidar_split_matches_beam_geometry(
    log: Av2SensorLog, frames: list[Frame], index: int
) -> None:
    """Laser numbers 0-31 are the up lidar's, 32-63 the down lidar's: in its own body frame each
    sweep spans the VLP-32C's elevations (+15° to -25°; measured -25.4° to +15.1°, the excess
    from the float16 coordinates of the sample), which the other split would not."""
    frame = frames[index]
    sweep_path = log.root / "sensors" / "lidar" / f"{frame.timestamp_ns}.feather"
    table = feather.read_table(sweep_path).to_pydict()
    laser = np.asarray(table["laser_number"])
    for name, count in (
        (UP_LIDAR, int((laser < LASERS_PER_LIDAR).sum())),
        (DOWN_LIDAR, int((laser >= LASERS_PER_LIDAR).sum())),
    ):
        sweep = frame.lidar[name]
        spec = frame.rig.lidar(name)
        assert len(sweep) == count > 40_000
        assert sweep.timestamp_ns == frame.timestamp_ns
        xyz = np.asarray(sweep.xyz, dtype=np.float64)
        elevation = np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1]))
        slack = math.radians(0.5)
        assert float(elevation.min()) >= spec.lower_fov - slack
        assert float(elevation.max()) <= spec.upper_fov + slack
    # The ego-frame points are the file's, shifted up by the axle height (float32 round trip).
    xyz_file = np.stack([np.asarray(table[k], dtype=np.float64) for k in "xyz"], axis=1)
    expected = np.concatenate(
        [
            xyz_file[laser < LASERS_PER_LIDAR],
            xyz_file[laser >= LASERS_PER_LIDAR],
        ]
    ) + np.array([0.0, 0.0, AV2_REAR_AXLE_HEIGHT])
    np.testing.assert_allclose(_ego_points(frame), expected, rtol=0, atol=5e-5)


@pytest.mark.parametrize("index", [0, 1])
def test_ground_lies_at_the_ego_origin(frames: list[Frame], index: int) -> None:
    """With the 0.33 m axle height the road around the car is at kaido's z = 0 (measured mode of
    the returns within 8 m: -0.05 m)."""
    points = _ego_points(frames[index])
    near = np.hypot(points[:, 0], points[:, 1]) < 8.0
    counts, edges = np.histogram(points[near, 2], bins=np.arange(-0.5, 0.5 + 1e-9, 0.02))
    mode = 0.5 * (edges[np.argmax(counts)] + edges[np.argmax(counts) + 1])
    assert abs(mode) < 0.1


def test_ground_truth_agents(log: Av2SensorLog, frames: list[Frame]) -> None:
    frame = frames[0]
    gt = frame.ground_truth
    assert gt is not None
    cuboids = log.cuboids(0)
    assert len(gt.agents) == len(cuboids) == 81
    assert [a.track_id for a in gt.agents] == cuboids.track_ids.tolist()
    for agent, uuid in zip(gt.agents, cuboids.track_uuids, strict=True):
        assert log.track_uuids[agent.track_id] == uuid
    assert tuple(a.agent_class for a in gt.agents) == cuboids.agent_classes
    classes = dict(zip(cuboids.categories, cuboids.agent_classes, strict=True))
    assert classes["REGULAR_VEHICLE"] is AgentClass.VEHICLE
    assert classes["PEDESTRIAN"] is AgentClass.PEDESTRIAN
    assert classes["BOLLARD"] is AgentClass.STATIC
    # World boxes are the ego-frame cuboids carried by the ego pose.
    city_from_ego = log.ego_pose(frame.timestamp_ns)
    centres = city_from_ego.transform_points(cuboids.boxes[:, : Box3DIndex.Z + 1])
    world = np.array([[a.box.x, a.box.y, a.box.z] for a in gt.agents])
    np.testing.assert_allclose(world, centres, rtol=0, atol=1e-9)
    # Every track here is annotated at neighbouring sweeps: velocities are known and plausible.
    speeds = np.array([a.speed for a in gt.agents])
    assert np.all(np.isfinite(speeds)) and float(speeds.max()) < 20.0
    # The same track keeps its id across frames.
    later = frames[1].ground_truth
    assert later is not None
    assert {a.track_id for a in later.agents} == {a.track_id for a in gt.agents}


def test_category_mapping_covers_the_taxonomy() -> None:
    assert set(AV2_CATEGORIES) == AV2_TAXONOMY
    riders = [c for c, k in AV2_CATEGORIES.items() if k is AgentClass.CYCLIST]
    assert sorted(riders) == ["BICYCLIST", "MOTORCYCLIST", "WHEELED_RIDER"]
    for name in ("REGULAR_VEHICLE", "LARGE_VEHICLE", "BUS", "TRUCK", "BOX_TRUCK"):
        assert AV2_CATEGORIES[name] is AgentClass.VEHICLE


def test_camera_rig(log: Av2SensorLog) -> None:
    rig = log.rig
    table = feather.read_table(log.root / "calibration" / "intrinsics.feather").to_pydict()
    k = table["sensor_name"].index("ring_front_center")
    front = rig.camera("ring_front_center")
    assert (front.width, front.height) == (1550, 2048)
    assert front.cx == table["cx_px"][k] + 0.5 and front.cy == table["cy_px"][k] + 0.5
    # Optical axes: the front camera looks along +x, the side cameras sideways.
    assert front.extrinsics.rotation[0, 0] > 0.999
    assert rig.camera("ring_side_left").extrinsics.rotation[1, 0] > 0.9
    assert rig.camera("ring_side_right").extrinsics.rotation[1, 0] < -0.9
    # A point 20 m straight ahead at camera height lands near the front image's centre column.
    p = front.extrinsics.translation + np.array([20.0, 0.0, 0.0])
    uv, depth, valid = front.project(p[None, :])
    assert bool(valid[0]) and depth[0] == pytest.approx(20.0, abs=0.05)
    assert abs(uv[0, 0] - front.cx) < 0.01 * front.fx
    assert isinstance(rig.lidar(UP_LIDAR).extrinsics, SE3)
    assert rig.lidar(UP_LIDAR).extrinsics.translation[2] == pytest.approx(
        1.64042 + AV2_REAR_AXLE_HEIGHT, abs=1e-4
    )


def _log_copy(root: Path, dest: Path, skip: str = "") -> Path:
    """A log folder of symlinks to ``root``'s files, without ``skip``."""
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if path.is_dir() or str(rel) == skip:
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).symlink_to(path)
    return dest


@pytest.mark.parametrize(
    "missing",
    [
        "city_SE3_egovehicle.feather",
        "annotations.feather",
        "calibration/intrinsics.feather",
        "calibration/egovehicle_SE3_sensor.feather",
    ],
)
def test_missing_file_names_the_file(root: Path, tmp_path: Path, missing: str) -> None:
    data = _log_copy(root, tmp_path / "log", skip=missing)
    with pytest.raises(ValueError, match=re.escape(f"{data / missing}: missing AV2 file")):
        Av2SensorLog(data)


def test_missing_column_names_file_and_column(root: Path, tmp_path: Path) -> None:
    data = _log_copy(root, tmp_path / "log", skip="annotations.feather")
    table = feather.read_table(root / "annotations.feather").drop_columns(["num_interior_pts"])
    feather.write_feather(table, data / "annotations.feather")
    with pytest.raises(
        ValueError,
        match=re.escape(f"{data / 'annotations.feather'}: column 'num_interior_pts' missing"),
    ):
        Av2SensorLog(data)


def test_missing_sensor_and_bad_index(root: Path, tmp_path: Path, log: Av2SensorLog) -> None:
    data = _log_copy(root, tmp_path / "log", skip="calibration/egovehicle_SE3_sensor.feather")
    path = data / "calibration" / "egovehicle_SE3_sensor.feather"
    table = feather.read_table(root / "calibration" / "egovehicle_SE3_sensor.feather")
    keep = [n != "down_lidar" for n in table.column("sensor_name").to_pylist()]
    feather.write_feather(table.filter(keep), path)
    with pytest.raises(ValueError, match=re.escape(f"{path}: sensor_name 'down_lidar' missing")):
        Av2SensorLog(data)
    with pytest.raises(IndexError, match="frame index 2 out of range for 2 sweeps"):
        log.frame(2)
