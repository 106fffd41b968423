"""Tests of the CARLA <-> kaido frame conversion against the real ``carla`` package (no server)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaido.scene.carla_frame import (
    REFLECT_Y,
    REFLECT_Y4,
    carla_location_to_kaido,
    carla_points_to_kaido,
    carla_pose_to_se2,
    carla_rotation_to_kaido,
    carla_transform_to_kaido,
    kaido_location_to_carla,
    kaido_points_to_carla,
    kaido_rotation_to_carla,
    kaido_to_carla_transform,
    se2_to_carla_pose,
)
from kaido.scene.geometry import SE2, SE3, rotation_matrix_from_euler, wrap_angle

carla = pytest.importorskip("carla")

SETTINGS = settings(max_examples=200, deadline=None)

locations = st.floats(-500.0, 500.0, allow_nan=False)
any_angle_deg = st.floats(-720.0, 720.0, allow_nan=False)
pitch_deg = st.floats(-89.0, 89.0, allow_nan=False)


def degrees_close(a: float, b: float, atol: float) -> bool:
    """Equal modulo 360 degrees."""
    return abs(math.degrees(wrap_angle(math.radians(a - b)))) <= atol


def carla_transform(x: float, y: float, z: float, pitch: float, yaw: float, roll: float):
    return carla.Transform(
        carla.Location(x=x, y=y, z=z), carla.Rotation(pitch=pitch, yaw=yaw, roll=roll)
    )


def float32_inputs(t) -> tuple[float, float, float, float, float, float]:
    """The values CARLA actually stores (float32), so only CARLA's arithmetic error remains."""
    loc, rot = t.location, t.rotation
    return loc.x, loc.y, loc.z, rot.pitch, rot.yaw, rot.roll


@SETTINGS
@given(locations, locations, locations, pitch_deg, any_angle_deg, any_angle_deg)
def test_round_trip_carla_kaido_carla(
    x: float, y: float, z: float, pitch: float, yaw: float, roll: float
) -> None:
    pose = carla_transform_to_kaido(x, y, z, pitch, yaw, roll)
    x2, y2, z2, pitch2, yaw2, roll2 = kaido_to_carla_transform(pose)
    assert (x2, y2, z2) == pytest.approx((x, y, z), abs=1e-9, rel=0)
    assert abs(pitch2 - pitch) <= 1e-9
    assert degrees_close(yaw2, yaw, 1e-9)
    assert degrees_close(roll2, roll, 1e-9)
    assert -180.0 <= yaw2 < 180.0 and -180.0 <= roll2 < 180.0
    # And kaido -> CARLA -> kaido returns the same SE3.
    assert carla_transform_to_kaido(x2, y2, z2, pitch2, yaw2, roll2).allclose(pose, atol=1e-9)


@SETTINGS
@given(pitch_deg, any_angle_deg, any_angle_deg)
def test_rotation_round_trip(pitch: float, yaw: float, roll: float) -> None:
    pitch2, yaw2, roll2 = kaido_rotation_to_carla(*carla_rotation_to_kaido(pitch, yaw, roll))
    assert degrees_close(pitch2, pitch, 1e-9)
    assert degrees_close(yaw2, yaw, 1e-9)
    assert degrees_close(roll2, roll, 1e-9)


@SETTINGS
@given(locations, locations, locations, any_angle_deg, any_angle_deg, any_angle_deg)
def test_matrix_matches_carla_get_matrix(
    x: float, y: float, z: float, pitch: float, yaw: float, roll: float
) -> None:
    t = carla_transform(x, y, z, pitch, yaw, roll)
    expected = REFLECT_Y4 @ np.array(t.get_matrix()) @ REFLECT_Y4
    pose = carla_transform_to_kaido(*float32_inputs(t))
    np.testing.assert_allclose(pose.as_matrix()[:3, :3], expected[:3, :3], rtol=0, atol=1e-5)
    np.testing.assert_allclose(pose.as_matrix()[:3, 3], expected[:3, 3], rtol=0, atol=1e-9)
    inverse = REFLECT_Y4 @ np.array(t.get_inverse_matrix()) @ REFLECT_Y4
    inverse_ours = pose.inverse().as_matrix()
    np.testing.assert_allclose(inverse_ours[:3, :3], inverse[:3, :3], rtol=0, atol=1e-5)
    np.testing.assert_allclose(inverse_ours[:3, 3], inverse[:3, 3], rtol=0, atol=1e-3)
    # The rotation alone: R_kaido = M R_carla M.
    r = rotation_matrix_from_euler(*carla_rotation_to_kaido(*float32_inputs(t)[3:]))
    np.testing.assert_allclose(
        r, REFLECT_Y @ np.array(t.get_matrix())[:3, :3] @ REFLECT_Y, rtol=0, atol=1e-5
    )


@SETTINGS
@given(
    locations,
    locations,
    locations,
    pitch_deg,
    any_angle_deg,
    any_angle_deg,
    st.tuples(st.floats(-50, 50), st.floats(-50, 50), st.floats(-50, 50)),
)
def test_carla_transform_of_a_point_agrees(
    x: float,
    y: float,
    z: float,
    pitch: float,
    yaw: float,
    roll: float,
    local: tuple[float, float, float],
) -> None:
    t = carla_transform(x, y, z, pitch, yaw, roll)
    world_carla = t.transform(carla.Location(x=local[0], y=local[1], z=local[2]))
    world_kaido = carla_location_to_kaido(world_carla.x, world_carla.y, world_carla.z)
    pose = carla_transform_to_kaido(*float32_inputs(t))
    local32 = np.array(local, dtype=np.float32).astype(np.float64)
    predicted = pose.transform_points(carla_points_to_kaido(local32))
    # CARLA computes in float32 with coordinates up to ~600 m.
    np.testing.assert_allclose(predicted, world_kaido, rtol=0, atol=2e-4)
    np.testing.assert_allclose(
        kaido_points_to_carla(pose.inverse_transform_points(world_kaido)), local32, atol=2e-4
    )


def test_front_right_point_has_negative_kaido_y() -> None:
    t = carla_transform(120.0, -35.0, 0.5, 2.0, 137.0, -1.5)
    front_right = carla.Location(x=2.0, y=1.0, z=0.0)  # CARLA local: y > 0 is right
    world = t.transform(front_right)
    pose = carla_transform_to_kaido(*float32_inputs(t))
    local = pose.inverse_transform_points(carla_location_to_kaido(world.x, world.y, world.z))
    assert local[0] == pytest.approx(2.0, abs=1e-4)
    assert local[1] == pytest.approx(-1.0, abs=1e-4)
    assert carla_points_to_kaido([2.0, 1.0, 0.0])[1] < 0.0


def test_heading_and_pitch_signs() -> None:
    # CARLA yaw +90 deg faces CARLA +y (right of east, i.e. south): kaido -y, yaw -pi/2.
    pose = carla_transform_to_kaido(0, 0, 0, 0.0, 90.0, 0.0)
    np.testing.assert_allclose(pose.rotation[:, 0], [0.0, -1.0, 0.0], atol=1e-12)
    assert pose.euler[2] == pytest.approx(-math.pi / 2)
    # CARLA pitch +10 deg is nose up: forward axis has z > 0; in ISO 8855 that is pitch < 0.
    nose_up = carla_transform_to_kaido(0, 0, 0, 10.0, 0.0, 0.0)
    assert nose_up.rotation[2, 0] > 0.0
    assert nose_up.euler[1] == pytest.approx(-math.radians(10.0))
    forward = carla_transform(0, 0, 0, 10.0, 0.0, 0.0).get_forward_vector()
    np.testing.assert_allclose(
        nose_up.rotation[:, 0], carla_location_to_kaido(forward.x, forward.y, forward.z), atol=1e-6
    )
    # CARLA roll +10 deg lowers the right side (its right axis gets z < 0); kaido roll is +10 deg
    # and kaido's left axis is the reflected right axis, negated.
    roll = carla_transform_to_kaido(0, 0, 0, 0.0, 0.0, 10.0)
    right = carla_transform(0, 0, 0, 0.0, 0.0, 10.0).get_right_vector()
    assert roll.euler[0] == pytest.approx(math.radians(10.0))
    np.testing.assert_allclose(
        roll.rotation[:, 1], -carla_location_to_kaido(right.x, right.y, right.z), atol=1e-6
    )


@SETTINGS
@given(locations, locations, any_angle_deg)
def test_planar_helpers(x: float, y: float, yaw: float) -> None:
    se2 = carla_pose_to_se2(x, y, yaw)
    assert se2.x == x and se2.y == -y
    assert -math.pi <= se2.yaw < math.pi
    full = carla_transform_to_kaido(x, y, 0.0, 0.0, yaw, 0.0).to_se2()
    assert abs(full.x - se2.x) <= 1e-9 and abs(full.y - se2.y) <= 1e-9
    assert abs(wrap_angle(full.yaw - se2.yaw)) <= 1e-9
    x2, y2, yaw2 = se2_to_carla_pose(se2)
    assert (x2, y2) == (x, y)
    assert degrees_close(yaw2, yaw, 1e-9)
    assert -180.0 <= yaw2 < 180.0
    # The SE2 heading is CARLA's forward vector reflected.
    forward = carla_transform(x, y, 0.0, 0.0, yaw, 0.0).get_forward_vector()
    np.testing.assert_allclose(
        [math.cos(se2.yaw), math.sin(se2.yaw)], [forward.x, -forward.y], atol=1e-5
    )


def test_points_helpers() -> None:
    pts = np.arange(24.0).reshape(2, 4, 3)
    kaido = carla_points_to_kaido(pts)
    assert kaido.shape == pts.shape
    np.testing.assert_array_equal(kaido[..., 1], -pts[..., 1])
    np.testing.assert_array_equal(kaido_points_to_carla(kaido), pts)
    np.testing.assert_array_equal(carla_location_to_kaido(1.0, 2.0, 3.0), [1.0, -2.0, 3.0])
    assert kaido_location_to_carla(np.array([1.0, -2.0, 3.0])) == (1.0, 2.0, 3.0)
    assert se2_to_carla_pose(SE2(1.0, 2.0, 0.0)) == (1.0, -2.0, 0.0)
    assert kaido_to_carla_transform(SE3.identity()) == (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"points must have shape \(\.\.\., 3\)"):
        carla_points_to_kaido(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"point must have shape \(3,\)"):
        kaido_location_to_carla(np.zeros((2, 3)))


def test_yaw_helpers_match_pose_conversion_and_invert() -> None:
    from kaido.scene.carla_frame import carla_yaw_to_kaido, kaido_yaw_to_carla

    yaws_deg = np.array([-270.0, -180.0, -90.0, -0.5, 0.0, 45.0, 179.9, 269.97, 360.0])
    kaido = carla_yaw_to_kaido(yaws_deg)
    for deg, rad in zip(yaws_deg, kaido, strict=True):
        assert rad == pytest.approx(carla_pose_to_se2(0.0, 0.0, float(deg)).yaw, abs=1e-12)
    back = kaido_yaw_to_carla(kaido)
    np.testing.assert_allclose(np.cos(np.radians(back - yaws_deg)), 1.0, atol=1e-12)
    assert np.all((back > -180.0) & (back <= 180.0))
