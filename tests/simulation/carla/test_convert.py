"""The CARLA boundary with CARLA's own classes (no server): poses, handedness, sensor payloads."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

carla = pytest.importorskip("carla")

from kaido.scene.agents import Control  # noqa: E402
from kaido.scene.geometry import SE2, SE3  # noqa: E402
from kaido.scene.sensors import LidarSpec  # noqa: E402
from kaido.scene.town_generator import TownSpec, generate_town  # noqa: E402
from kaido.simulation.carla.convert import (  # noqa: E402
    GRAVITY,
    GeoProjection,
    GeoReference,
    ImuReading,
    actor_to_ego,
    bgra_to_camera_image,
    carla_control_to_kaido,
    compass_to_yaw,
    ego_to_actor,
    kaido_control_to_carla,
    kaido_lidar_to_carla,
    kaido_to_location,
    lidar_to_sweep,
    location_to_kaido,
    rgb_to_bgra,
    se2_to_transform,
    se3_to_transform,
    speed_from_speedometer,
    transform_to_se2,
    transform_to_se3,
    yaw_to_compass,
)
from tests.conftest import shared_file  # noqa: E402

M4 = np.diag([1.0, -1.0, 1.0, 1.0])

coord = st.floats(-500.0, 500.0, allow_nan=False, allow_subnormal=False, width=32)
# angles on a 0.001 deg grid: CARLA keeps float32 degrees, kaido wraps radians in float64
angle = st.integers(-179_000, 179_000).map(lambda k: k / 1000.0)
pitch = st.integers(-85_000, 85_000).map(lambda k: k / 1000.0)


def carla_transform(x: float, y: float, z: float, p: float, yw: float, r: float) -> Any:
    return carla.Transform(carla.Location(x=x, y=y, z=z), carla.Rotation(pitch=p, yaw=yw, roll=r))


@settings(max_examples=150, deadline=None)
@given(coord, coord, coord, pitch, angle, angle)
def test_carla_transform_round_trip_is_exact(
    x: float, y: float, z: float, p: float, yw: float, r: float
) -> None:
    t = carla_transform(x, y, z, p, yw, r)
    back = se3_to_transform(transform_to_se3(t))
    # CARLA stores float32: the float64 round trip must land on the very same float32 values
    assert (back.location.x, back.location.y, back.location.z) == (
        t.location.x,
        t.location.y,
        t.location.z,
    )
    assert (back.rotation.pitch, back.rotation.yaw, back.rotation.roll) == (
        t.rotation.pitch,
        t.rotation.yaw,
        t.rotation.roll,
    )


@settings(max_examples=150, deadline=None)
@given(coord, coord, coord, pitch, angle, angle)
def test_kaido_pose_is_the_reflected_carla_matrix(
    x: float, y: float, z: float, p: float, yw: float, r: float
) -> None:
    t = carla_transform(x, y, z, p, yw, r)
    pose = transform_to_se3(t)
    np.testing.assert_allclose(
        pose.as_matrix(), M4 @ np.array(t.get_matrix()) @ M4, atol=2e-5 * max(1.0, abs(x) + abs(y))
    )
    # a point moved by CARLA's own transform lands where kaido's pose puts it
    local = np.array([1.5, 0.7, 2.0])
    world = t.transform(kaido_to_location(local))  # (CARLA moves the Location it is given)
    np.testing.assert_allclose(pose.transform_points(local), location_to_kaido(world), atol=1e-3)


def test_handedness_of_the_axes() -> None:
    # CARLA yaw +90 deg turns x towards CARLA +y (right): that is kaido -y, yaw -pi/2
    t = carla_transform(0, 0, 0, 0, 90.0, 0)
    fwd = location_to_kaido(t.rotation.get_forward_vector())
    np.testing.assert_allclose(fwd, [0.0, -1.0, 0.0], atol=1e-6)
    assert transform_to_se2(t).yaw == pytest.approx(-math.pi / 2)
    # CARLA pitch +30 deg is nose up: kaido pitch is -30 deg (ISO: positive nose down)
    up = transform_to_se3(carla_transform(0, 0, 0, 30.0, 0, 0))
    assert up.euler[1] == pytest.approx(-math.radians(30.0))
    assert location_to_kaido(carla.Rotation(pitch=30.0).get_forward_vector())[2] > 0.4
    # CARLA roll +20 deg lowers the right side (its right vector points down), which lifts the
    # left side: kaido roll is +20 deg
    roll = carla.Rotation(roll=20.0)
    assert roll.get_right_vector().z < -0.3
    assert transform_to_se3(carla_transform(0, 0, 0, 0, 0, 20.0)).euler[0] == pytest.approx(
        math.radians(20.0)
    )
    left = transform_to_se3(carla_transform(0, 0, 0, 0, 0, 20.0)).rotation[:, 1]
    assert left[2] > 0.3  # kaido's left (+y) axis goes up


def test_kaido_pose_to_carla_and_back() -> None:
    pose = SE3.from_euler(12.0, -3.5, 0.7, 0.05, -0.1, 2.5)
    assert transform_to_se3(se3_to_transform(pose)).allclose(pose, atol=1e-5)
    planar = SE2(4.0, -2.0, -1.2)
    back = transform_to_se2(se2_to_transform(planar, z=0.3))
    np.testing.assert_allclose(back.as_array(), planar.as_array(), atol=1e-6)
    np.testing.assert_array_equal(
        location_to_kaido(kaido_to_location([1.0, 2.0, 3.0])), [1.0, 2.0, 3.0]
    )
    with pytest.raises(ValueError, match="shape"):
        kaido_to_location([1.0, 2.0])


def test_actor_and_ego_origins_differ_by_the_axle_offset() -> None:
    ego = SE3.from_euler(10.0, 5.0, 0.0, 0.0, 0.0, math.pi / 2)
    actor = ego_to_actor(ego, 1.4)
    np.testing.assert_allclose(actor.translation, [10.0, 6.4, 0.0], atol=1e-12)
    assert actor_to_ego(actor, 1.4).allclose(ego, atol=1e-12)


def test_lidar_point_lands_where_the_embedded_simulator_puts_it() -> None:
    """A world point seen by a CARLA lidar on a CARLA vehicle decodes to the body-frame point
    the embedded simulator's lidar (pose ``ego_to_world @ extrinsics``) sees."""
    spec = LidarSpec(
        name="top",
        extrinsics=SE3.from_euler(1.3, 0.2, 2.0, 0.02, -0.05, 0.3),
        channels=8,
        upper_fov=0.1,
        lower_fov=-0.4,
        range_min=0.5,
        range_max=80.0,
        rotation_frequency=10.0,
        points_per_second=20480,
    )
    rear_axle_to_center = 1.425
    ego_to_world = SE3.from_se2(SE2(30.0, -12.0, 0.8), 0.0)
    world_points = np.array([[40.0, -5.0, 1.0], [25.0, -20.0, 0.2], [31.0, -11.0, 3.5]])
    # the embedded simulator: body-frame points of the lidar at ego_to_world @ extrinsics
    embedded = (ego_to_world @ spec.extrinsics).inverse_transform_points(world_points)
    # CARLA: the actor at the box centre, the sensor attached relative to the actor
    actor = se3_to_transform(ego_to_actor(ego_to_world, rear_axle_to_center))
    actor_from_ego = SE3.from_euler(-rear_axle_to_center, 0, 0, 0, 0, 0)
    sensor_rel = se3_to_transform(actor_from_ego @ spec.extrinsics)
    sensor_world = np.array(actor.get_matrix()) @ np.array(sensor_rel.get_matrix())
    carla_world = np.c_[world_points * [1.0, -1.0, 1.0], np.ones(len(world_points))]
    in_sensor = (np.linalg.inv(sensor_world) @ carla_world.T).T[:, :3]
    payload = np.c_[in_sensor, np.full(len(in_sensor), 0.5)].astype(np.float32)
    sweep = lidar_to_sweep(payload, "top", 7)
    np.testing.assert_allclose(sweep.xyz, embedded, atol=1e-3)
    np.testing.assert_array_equal(kaido_lidar_to_carla(sweep.points), payload)
    assert sweep.timestamp_ns == 7
    with pytest.raises(ValueError, match="lidar 'top'"):
        lidar_to_sweep(np.zeros((4, 3), np.float32), "top", 0)


def test_camera_bgra_round_trip() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    bgra = rgb_to_bgra(rgb)
    assert bgra.shape == (6, 8, 4)
    np.testing.assert_array_equal(bgra[..., 0], rgb[..., 2])
    np.testing.assert_array_equal(bgra[..., 3], 255)
    image = bgra_to_camera_image(bgra, "front", 5)
    np.testing.assert_array_equal(image.rgb, rgb)
    assert image.camera == "front"
    with pytest.raises(ValueError, match="camera 'front'"):
        bgra_to_camera_image(rgb, "front", 0)


def carla_compass(yaw_deg: float) -> float:
    """CARLA's IMU compass (ImuSensor::ComputeCompass): angle from north (0, -1, 0) to the
    forward vector, clockwise, in [0, 2 pi)."""
    fwd = carla.Rotation(yaw=yaw_deg).get_forward_vector()
    north = np.array([0.0, -1.0])
    f = np.array([fwd.x, fwd.y]) / math.hypot(fwd.x, fwd.y)
    compass = math.acos(float(np.clip(north @ f, -1.0, 1.0)))
    if north[0] * f[1] - north[1] * f[0] < 0.0:
        compass = 2.0 * math.pi - compass
    return compass


@pytest.mark.parametrize("yaw_deg", [0.0, 30.0, 90.0, 135.0, -45.0, -120.0, 179.0])
def test_compass_matches_carlas_definition(yaw_deg: float) -> None:
    yaw = transform_to_se2(carla_transform(0, 0, 0, 0, yaw_deg, 0)).yaw
    assert yaw_to_compass(yaw) == pytest.approx(carla_compass(yaw_deg), abs=1e-5)
    assert compass_to_yaw(carla_compass(yaw_deg)) == pytest.approx(yaw, abs=1e-5)


def test_imu_reading_round_trip_and_signs() -> None:
    reading = ImuReading(
        acceleration=(1.0, 0.5, GRAVITY), angular_velocity=(0.1, 0.2, 0.3), yaw=1.0
    )
    payload = reading.to_carla()
    assert payload[1] == -0.5 and payload[5] == -0.3 and payload[3] == -0.1 and payload[4] == 0.2
    back = ImuReading.from_carla(payload)
    assert back.acceleration == reading.acceleration
    assert back.angular_velocity == reading.angular_velocity
    assert back.yaw == pytest.approx(1.0, abs=1e-15)
    with pytest.raises(ValueError, match="IMU payload"):
        ImuReading.from_carla([1.0, 2.0])


def test_speedometer_and_controls() -> None:
    assert speed_from_speedometer({"speed": 3.5}) == 3.5
    with pytest.raises(ValueError, match="speedometer"):
        speed_from_speedometer(3.5)
    control = Control(throttle=0.25, steer=-0.5, brake=0.0, hand_brake=True)
    vc = kaido_control_to_carla(control)
    assert isinstance(vc, carla.VehicleControl)
    assert (vc.throttle, vc.steer, vc.brake, vc.hand_brake) == (0.25, -0.5, 0.0, True)
    back, problems = carla_control_to_kaido(vc)
    assert back == control and problems == []
    clipped, problems = carla_control_to_kaido(carla.VehicleControl(throttle=1.0, steer=-1.0))
    assert clipped.steer == -1.0 and problems == []


def test_geo_reference_of_town01() -> None:
    text = shared_file("maps/Town01.xodr").read_text()
    ref = GeoReference.from_xodr(text)
    assert ref.proj.startswith("+proj=tmerc") and (ref.latitude, ref.longitude) == (0.0, 0.0)
    projection = GeoProjection(text, "Town01")
    point = np.array([120.0, -80.0, 1.5])
    geo = projection.to_geo(point)
    carla_geo = carla.Map("Town01", text).transform_to_geolocation(kaido_to_location(point))
    expected = [carla_geo.latitude, carla_geo.longitude, carla_geo.altitude]
    np.testing.assert_array_equal(geo, expected)
    np.testing.assert_allclose(projection.to_world(geo), point, atol=1e-6)
    many = projection.to_world_many([{"lat": geo[0], "lon": geo[1], "z": geo[2]}])
    np.testing.assert_allclose(many[0], point, atol=1e-6)


def test_geo_reference_with_an_origin_and_errors() -> None:
    text = generate_town(TownSpec(rows=3, cols=3, seed=0, name="g"))
    shifted = text.replace("+lat_0=0", "+lat_0=48.5").replace("+lon_0=0", "+lon_0=9.25")
    ref = GeoReference.from_xodr(shifted)
    assert (ref.latitude, ref.longitude) == (48.5, 9.25)
    projection = GeoProjection(shifted, "g")
    geo = projection.to_geo([10.0, 20.0, 0.0])
    assert geo[0] == pytest.approx(48.5, abs=0.01) and geo[1] == pytest.approx(9.25, abs=0.01)
    np.testing.assert_allclose(projection.to_world(geo), [10.0, 20.0, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match="geoReference"):
        GeoReference.from_xodr("<OpenDRIVE><header/></OpenDRIVE>")
    with pytest.raises(ValueError, match="GNSS payload"):
        projection.to_world([1.0, float("nan"), 0.0])
