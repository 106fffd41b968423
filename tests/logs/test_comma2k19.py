"""The comma2k19 reader on the real segment in the shared data folder, and its geodesy."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from kaido.logs.comma2k19 import (
    ecef_to_enu_rotation,
    ecef_to_geodetic,
    load_comma2k19_segment,
    quaternion_to_matrix,
)
from tests.conftest import shared_file

SEGMENT = "comma2k19/b0c9d2329ad1606b_2018-08-02--08-34-47/40"


def test_geodetic_round_trip_against_the_forward_formula() -> None:
    rng = np.random.default_rng(0)
    lat = rng.uniform(-1.5, 1.5, 200)
    lon = rng.uniform(-math.pi, math.pi, 200)
    h = rng.uniform(-100.0, 9000.0, 200)
    a, f = 6378137.0, 1.0 / 298.257223563
    e2 = f * (2 - f)
    n = a / np.sqrt(1 - e2 * np.sin(lat) ** 2)
    ecef = np.stack(
        [
            (n + h) * np.cos(lat) * np.cos(lon),
            (n + h) * np.cos(lat) * np.sin(lon),
            (n * (1 - e2) + h) * np.sin(lat),
        ],
        axis=1,
    )
    back = ecef_to_geodetic(ecef)
    np.testing.assert_allclose(back[:, 0], lat, atol=1e-11)
    np.testing.assert_allclose(back[:, 1], lon, atol=1e-12)
    np.testing.assert_allclose(back[:, 2], h, atol=1e-4)


def test_enu_rotation_is_orthonormal_and_up_is_the_ellipsoid_normal() -> None:
    r = ecef_to_enu_rotation(0.6, -2.1)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    # at the equator and Greenwich: east = +y, north = +z, up = +x
    np.testing.assert_allclose(ecef_to_enu_rotation(0.0, 0.0), [[0, 1, 0], [0, 0, 1], [1, 0, 0]])


def test_quaternion_matrices_are_rotations_and_match_axis_angle() -> None:
    angle = 0.7
    q = np.array([math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)])  # about +z
    m = quaternion_to_matrix(q)
    c, s = math.cos(angle), math.sin(angle)
    want = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(m, want, atol=1e-12)
    batch = quaternion_to_matrix(np.random.default_rng(1).normal(size=(50, 4)))
    np.testing.assert_allclose(
        batch @ np.swapaxes(batch, 1, 2), np.tile(np.eye(3), (50, 1, 1)), atol=1e-12
    )
    with pytest.raises(ValueError, match="zero or non-finite"):
        quaternion_to_matrix(np.zeros(4))


def test_the_real_segment_reads_with_consistent_shapes_and_units() -> None:
    seg = load_comma2k19_segment(shared_file(SEGMENT))
    assert seg.pose.positions.shape == (1200, 3)  # one minute at 20 Hz
    assert seg.duration == pytest.approx(60.0, abs=0.1)
    assert seg.speed.value.ndim == 1 and seg.steering_angle.value.ndim == 1
    assert seg.wheel_speed.value.shape[1] == 4
    # CAN speed [m/s] agrees with the fused global velocity and the mean wheel speed
    v_pose = np.linalg.norm(seg.pose.velocities, axis=1)
    v_can = seg.speed.at(seg.pose.times)
    assert np.median(np.abs(v_pose - v_can)) < 0.3
    assert np.median(np.abs(seg.wheel_speed.at(seg.pose.times).mean(axis=1) - v_can)) < 0.3
    # the segment is on the San Francisco peninsula, near sea level
    lat, lon, height = seg.origin()
    assert 37.0 < math.degrees(lat) < 38.5 and -123.0 < math.degrees(lon) < -121.5
    assert -50.0 < height < 500.0
    # the device frame is x forward, z down: gravity reads about -9.8 on z
    assert np.median(seg.accelerometer.value[:, 2]) == pytest.approx(-9.8, abs=0.6)


def test_local_poses_integrate_the_logged_velocity() -> None:
    seg = load_comma2k19_segment(shared_file(SEGMENT))
    poses = seg.local_poses()
    np.testing.assert_allclose(poses[0, :2], 0.0, atol=1e-9)
    # the position difference over the segment is the integral of the velocity (x east, y north)
    v = seg.local_velocities()
    t = seg.pose.times
    integral = np.array([np.trapezoid(v[:, 0], t), np.trapezoid(v[:, 1], t)])
    assert np.linalg.norm(poses[-1, :2] - integral) < 0.01 * np.linalg.norm(integral)
    # heading: the device points along the direction of travel (within its mounting yaw)
    offset = np.angle(np.exp(1j * (seg.device_yaw() - seg.course())))
    assert abs(np.median(offset)) < math.radians(3.0)
    assert np.percentile(np.abs(offset - np.median(offset)), 95) < math.radians(1.0)


def test_steering_angle_is_left_positive() -> None:
    seg = load_comma2k19_segment(shared_file(SEGMENT))
    t = seg.pose.times
    yaw_rate = np.gradient(np.unwrap(seg.device_yaw()), t)
    steer = seg.steering_angle.at(t)
    # positive steering-wheel angle turns the car counter-clockwise (left)
    assert np.corrcoef(steer, yaw_rate)[0, 1] > 0.6
    # and so does the gyro (device z down, projected on the local up axis)
    assert np.corrcoef(seg.yaw_rate(t), yaw_rate)[0, 1] > 0.6


def test_missing_or_malformed_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such comma2k19 segment"):
        load_comma2k19_segment(tmp_path / "absent")
    (tmp_path / "global_pose").mkdir()
    with pytest.raises(FileNotFoundError, match="frame_times: missing comma2k19 file"):
        load_comma2k19_segment(tmp_path)
    with (tmp_path / "global_pose" / "frame_times").open("wb") as fh:
        np.save(fh, np.zeros((3, 3, 3)))
    with pytest.raises(ValueError, match=r"frame_times: expected an array of \(1,\) dimensions"):
        load_comma2k19_segment(tmp_path)
    with (tmp_path / "global_pose" / "frame_times").open("wb") as fh:
        fh.write(b"not numpy")
    with pytest.raises(ValueError, match="frame_times: not a NumPy array file"):
        load_comma2k19_segment(tmp_path)
