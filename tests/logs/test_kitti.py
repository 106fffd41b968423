"""Tests of the KITTI object-frame reader against the real frames 000000-000002 in
``shared/data/kitti/object_training`` (velodyne, image_2, calib, label_2).

The checks are geometric: kaido's camera model must reproduce KITTI's own projection matrices,
lidar returns inside a labelled 3D box must land inside that label's 2D box, the converted 3D
boxes must coincide with KITTI's, and the ground must lie at the ego origin's height.
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from kaido.logs.kitti import (
    KITTI_CAMERA,
    KITTI_LIDAR,
    KITTI_LIDAR_HEIGHT,
    KITTI_PIXEL_OFFSET,
    ImageBoxIndex,
    KittiFrame,
    read_kitti_calibration,
    read_kitti_frame,
)
from kaido.scene.agents import AgentClass
from kaido.scene.frame import LidarIndex
from tests.conftest import shared_file

INDICES = (0, 1, 2)
#: Slack on the 2D-box containment [px]: KITTI's 2D boxes are drawn by hand around the object.
BBOX_TOLERANCE_PX = 2.0
#: Fewest returns inside a 3D box for its 2D-box check.
MIN_POINTS = 20


@pytest.fixture(scope="module")
def root() -> Path:
    return shared_file("kitti/object_training")


@pytest.fixture(scope="module")
def frames(root: Path) -> dict[int, KittiFrame]:
    return {i: read_kitti_frame(root, i) for i in INDICES}


def _kitti_projection(kf: KittiFrame, velo: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``(N, 3)`` homogeneous pixels ``P2 · R0_rect · Tr_velo_to_cam · [x; 1]``, straight from
    the calibration matrices (KITTI's devkit formula)."""
    c = kf.calib
    r0 = np.eye(4)
    r0[:3, :3] = c.R0_rect
    tr = np.eye(4)
    tr[:3, :] = c.Tr_velo_to_cam
    hom = np.concatenate([velo, np.ones((velo.shape[0], 1))], axis=1)
    out: npt.NDArray[np.float64] = (c.P2 @ r0 @ tr @ hom.T).T
    return out


@pytest.mark.parametrize("index", INDICES)
def test_camera_model_reproduces_kitti_projection(
    frames: dict[int, KittiFrame], index: int
) -> None:
    kf = frames[index]
    frame = kf.frame
    camera = frame.rig.camera(KITTI_CAMERA)
    uv, depth, valid = camera.project(frame.lidar_points_ego(KITTI_LIDAR))
    velo = np.asarray(frame.lidar[KITTI_LIDAR].xyz, dtype=np.float64)
    q = _kitti_projection(kf, velo)
    in_front = q[:, 2] > 0.5
    assert valid.sum() > 10_000  # thousands of returns fall in the image
    uv_kitti = q[in_front, :2] / q[in_front, 2:3] + KITTI_PIXEL_OFFSET
    err_px = np.abs(uv[in_front] - uv_kitti)
    # Measured: below 3e-11 px over every return in front of the camera.
    assert float(err_px.max()) <= 1e-6
    assert float(np.abs(depth[in_front] - q[in_front, 2]).max()) <= 1e-6


@pytest.mark.parametrize("index", INDICES)
def test_returns_inside_3d_labels_land_inside_2d_labels(
    frames: dict[int, KittiFrame], index: int
) -> None:
    kf = frames[index]
    camera = kf.frame.rig.camera(KITTI_CAMERA)
    points = kf.frame.lidar_points_ego(KITTI_LIDAR)
    uv, _, valid = camera.project(points)
    checked = 0
    for label in kf.labels:
        inside = label.box.contains(points)
        if int(inside.sum()) < MIN_POINTS:
            continue
        assert bool(np.all(valid[inside])), f"{label.kitti_type}: returns outside the image"
        u = uv[inside, 0]
        v = uv[inside, 1]
        b = label.bbox
        tol = BBOX_TOLERANCE_PX
        assert float(u.min()) >= b[ImageBoxIndex.LEFT] - tol, label
        assert float(u.max()) <= b[ImageBoxIndex.RIGHT] + tol, label
        assert float(v.min()) >= b[ImageBoxIndex.TOP] - tol, label
        assert float(v.max()) <= b[ImageBoxIndex.BOTTOM] + tol, label
        checked += 1
    expected = {0: 1, 1: 1, 2: 2}  # Pedestrian; Truck; Misc and Car (Car of 000001 has 9 pts)
    assert checked == expected[index]


def test_every_car_with_enough_returns_is_checked(frames: dict[int, KittiFrame]) -> None:
    cars = [
        (i, label)
        for i, kf in frames.items()
        for label in kf.labels
        if label.kitti_type == "Car"
        and int(label.box.contains(kf.frame.lidar_points_ego(KITTI_LIDAR)).sum()) >= MIN_POINTS
    ]
    assert [i for i, _ in cars] == [2]  # the Car of 000002 (67 returns)


@pytest.mark.parametrize("index", INDICES)
def test_label_boxes_coincide_with_kitti_boxes(
    root: Path, frames: dict[int, KittiFrame], index: int
) -> None:
    """KITTI's boxes are upright in the rectified camera frame, kaido's in the ego frame; the two
    verticals differ by the calibration's tilt ``theta`` (0.8-0.9° here), so corners may differ
    by up to ``r · theta`` (``r`` the half-diagonal) and centres not at all."""
    kf = frames[index]
    rect_from_ego = kf.calib.rect_from_ego()
    vertical = rect_from_ego.rotation.T @ np.array([0.0, -1.0, 0.0])
    tilt = math.acos(float(vertical[2]))
    rows = [
        line.split()
        for line in (root / "label_2" / f"{index:06d}.txt").read_text().splitlines()
        if line.split() and line.split()[0] != "DontCare"
    ]
    assert len(rows) == len(kf.labels)
    for row, label in zip(rows, kf.labels, strict=True):
        h, w, length, x, y, z, ry = (float(v) for v in row[8:15])
        signs_l = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * 0.5 * length
        signs_w = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * 0.5 * w
        heights = np.array([0, 0, 0, 0, -h, -h, -h, -h], dtype=np.float64)
        rot_y = np.array(
            [[math.cos(ry), 0, math.sin(ry)], [0, 1, 0], [-math.sin(ry), 0, math.cos(ry)]]
        )
        kitti = (rot_y @ np.stack([signs_l, heights, signs_w])).T + np.array([x, y, z])
        ours = rect_from_ego.transform_points(label.box.corners())
        gap = np.linalg.norm(kitti[:, None, :] - ours[None, :, :], axis=2).min(axis=1)
        half_diagonal = 0.5 * math.sqrt(length**2 + w**2 + h**2)
        assert float(gap.max()) <= 1.05 * half_diagonal * tilt + 1e-9, label
        centre = rect_from_ego.transform_points(np.array([label.box.x, label.box.y, label.box.z]))
        np.testing.assert_allclose(centre, [x, y - 0.5 * h, z], atol=1e-9)
        assert (label.box.length, label.box.width, label.box.height) == (length, w, h)


@pytest.mark.parametrize("index", INDICES)
def test_ground_lies_at_the_ego_origin(frames: dict[int, KittiFrame], index: int) -> None:
    """The 1.73 m lidar height puts the road ahead of the car at ego z = 0 (measured modes of the
    returns 4-15 m ahead: +0.07, +0.05, +0.03 m)."""
    points = frames[index].frame.lidar_points_ego(KITTI_LIDAR)
    ahead = (points[:, 0] > 4.0) & (points[:, 0] < 15.0) & (np.abs(points[:, 1]) < 4.0)
    counts, edges = np.histogram(points[ahead, 2], bins=np.arange(-0.5, 0.5 + 1e-9, 0.02))
    mode = 0.5 * (edges[np.argmax(counts)] + edges[np.argmax(counts) + 1])
    assert abs(mode) < 0.1


def test_frame_contents(root: Path, frames: dict[int, KittiFrame]) -> None:
    kf = frames[1]
    frame = kf.frame
    assert kf.index == "000001"
    assert frame.rig.camera_names == (KITTI_CAMERA,)
    assert frame.rig.lidar_names == (KITTI_LIDAR,)
    assert frame.rig.lidar(KITTI_LIDAR).extrinsics.translation.tolist() == [
        0.0,
        0.0,
        KITTI_LIDAR_HEIGHT,
    ]
    assert frame.images[KITTI_CAMERA].shape == (375, 1242)
    camera = frame.rig.camera(KITTI_CAMERA)
    assert camera.image_shape == (375, 1242)
    assert camera.cx == pytest.approx(609.5593 + 0.5) and camera.cy == pytest.approx(172.854 + 0.5)
    # The camera looks forward, along the ego x axis, from 1.65 m above the ground.
    axis = camera.extrinsics.rotation[:, 0]
    assert axis[0] > 0.999
    assert camera.extrinsics.translation[2] == pytest.approx(1.65, abs=0.02)
    raw = np.fromfile(root / "velodyne" / "000001.bin", dtype=np.float32).reshape(-1, 4)
    assert np.array_equal(frame.lidar[KITTI_LIDAR].points, raw)
    assert raw.shape[1] == len(LidarIndex)
    # 4 DontCare lines dropped; the others map to kaido classes.
    assert [label.kitti_type for label in kf.labels] == ["Truck", "Car", "Cyclist"]
    assert [label.agent_class for label in kf.labels] == [
        AgentClass.VEHICLE,
        AgentClass.VEHICLE,
        AgentClass.CYCLIST,
    ]
    assert kf.labels[1].bbox == pytest.approx((388.13, 182.04, 424.31, 203.62))
    assert frame.ground_truth is not None
    agents = frame.ground_truth.agents
    assert [a.track_id for a in agents] == [0, 1, 2]
    assert all(a.box == label.box for a, label in zip(agents, kf.labels, strict=True))
    assert frames[2].labels[0].agent_class is AgentClass.UNKNOWN  # Misc
    assert frames[0].labels[0].agent_class is AgentClass.PEDESTRIAN
    # No odometry in a KITTI object frame: identity pose, unknown motion.
    assert frame.ego.pose.as_array().tolist() == [0.0, 0.0, 0.0]
    assert math.isnan(frame.ego.velocity[0]) and math.isnan(frame.ego.steering_angle)


def test_reading_without_labels(root: Path) -> None:
    kf = read_kitti_frame(root, "000002", labels=False)
    assert kf.labels == () and kf.frame.ground_truth is None


def _copy_frame(root: Path, dest: Path, index: str = "000001") -> Path:
    for folder, ext in (("calib", "txt"), ("label_2", "txt"), ("velodyne", "bin")):
        (dest / folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / folder / f"{index}.{ext}", dest / folder / f"{index}.{ext}")
    (dest / "image_2").mkdir(exist_ok=True)
    (dest / "image_2" / f"{index}.png").symlink_to(root / "image_2" / f"{index}.png")
    return dest


def test_missing_file_names_the_file(root: Path, tmp_path: Path) -> None:
    data = _copy_frame(root, tmp_path)
    (data / "velodyne" / "000001.bin").unlink()
    with pytest.raises(ValueError, match=r"velodyne/000001\.bin: missing KITTI velodyne file"):
        read_kitti_frame(data, 1)
    with pytest.raises(ValueError, match=r"calib/000007\.txt: missing KITTI calibration file"):
        read_kitti_frame(data, 7)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("P2: 7.215377000000e+02 ", "P2: ", r"key 'P2' \(line 3\): expected 12 numbers, got 11"),
        ("R0_rect: 9.999239000000e-01", "R0_rect: x", r"key 'R0_rect' \(line 5\): not a number"),
        ("Tr_velo_to_cam:", "Tr_velo_to_camera:", r"key 'Tr_velo_to_cam' missing"),
        ("P0:", "P0", r"line 1: expected 'KEY: numbers'"),
    ],
)
def test_malformed_calibration_names_file_and_key(
    root: Path, tmp_path: Path, old: str, new: str, message: str
) -> None:
    text = (root / "calib" / "000001.txt").read_text()
    assert old in text
    path = tmp_path / "000001.txt"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": " + message):
        read_kitti_calibration(path)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Car 0.00 0 1.85 387.63 181.54", r"line 2 \('Car'\): expected 14 numbers"),
        ("Bus 0 0 0 1 1 2 2 1 1 1 0 0 5 0", r"line 2 \('Bus'\): unknown object type"),
        ("Car 0 0 0 1 1 2 2 1 1 1 0 zero 5 0", r"line 2 \('Car'\): not a number"),
    ],
)
def test_malformed_label_names_file_and_line(
    root: Path, tmp_path: Path, line: str, message: str
) -> None:
    data = _copy_frame(root, tmp_path)
    label = data / "label_2" / "000001.txt"
    lines = label.read_text().splitlines()
    lines[1] = line
    label.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"label_2/000001\.txt: " + message):
        read_kitti_frame(data, 1)
