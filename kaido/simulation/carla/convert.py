"""Conversions at the CARLA boundary: CARLA's own classes and sensor payloads ↔ kaido types.

CARLA is left-handed (x forward, y right, z up, angles in degrees); kaido is right-handed ISO 8855
(x forward, y left, z up, radians). The frame algebra lives in :mod:`kaido.scene.carla_frame`
(pure NumPy); this module applies it to ``carla.Transform``/``Location``/``Rotation``/
``Vector3D``/``VehicleControl`` objects, which all construct without a server, and decodes the
payloads a CARLA client (or the Leaderboard's sensor interface) delivers:

* camera ``sensor.camera.rgb``: ``(H, W, 4)`` uint8 BGRA → :class:`CameraImage` (RGB);
* lidar ``sensor.lidar.ray_cast``: ``(N, 4)`` float32 ``x, y, z, intensity`` in the sensor's
  left-handed frame → :class:`LidarSweep` in the sensor's body frame (y negated);
* GNSS ``sensor.other.gnss``: ``[latitude, longitude, altitude]`` [deg, deg, m] ↔ world
  ``(x, y, z)`` through the map's geo-reference (:class:`GeoProjection`);
* IMU ``sensor.other.imu``: ``[ax, ay, az, gx, gy, gz, compass]`` (accelerometer [m/s²] with
  gravity, gyroscope [rad/s], compass [rad], clockwise from north = CARLA's ``-y``) ↔
  :class:`ImuReading`;
* speedometer ``sensor.speedometer``: ``{"speed": v}`` [m/s, forward].

The ego's CARLA actor and kaido's ego frame differ by an offset along x: kaido's ego origin is the
rear-axle centre on the ground, CARLA's vehicle actor origin is the vehicle's box centre on the
ground, ``rear_axle_to_center`` metres further forward (see
:attr:`kaido.scene.vehicle.VehicleProfile.rear_axle_to_center`). :func:`ego_to_actor` and
:func:`actor_to_ego` move poses between the two.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import carla
import numpy as np
import numpy.typing as npt

from kaido.scene.agents import Control
from kaido.scene.carla_frame import (
    carla_transform_to_kaido,
    kaido_to_carla_transform,
)
from kaido.scene.frame import CameraImage, LidarIndex, LidarSweep
from kaido.scene.geometry import SE2, SE3, wrap_angle

__all__ = [
    "GRAVITY",
    "GeoProjection",
    "GeoReference",
    "ImuIndex",
    "ImuReading",
    "actor_to_ego",
    "bgra_to_camera_image",
    "carla_control_to_kaido",
    "compass_to_yaw",
    "ego_to_actor",
    "kaido_control_to_carla",
    "kaido_lidar_to_carla",
    "kaido_to_location",
    "kaido_to_vector",
    "lidar_to_sweep",
    "location_to_kaido",
    "rgb_to_bgra",
    "se2_to_transform",
    "se3_to_transform",
    "speed_from_speedometer",
    "transform_to_se2",
    "transform_to_se3",
    "vector_to_kaido",
    "yaw_to_compass",
]

FloatArray = npt.NDArray[np.float64]

GRAVITY = 9.81
"""[m/s²] the gravity CARLA's accelerometer adds to the z axis."""

_FLIP = np.array([1.0, -1.0, 1.0])


# -- poses and vectors ------------------------------------------------------------------------


def location_to_kaido(location: carla.Location | carla.Vector3D) -> FloatArray:
    """A ``carla.Location`` [m] as a kaido point ``(3,)`` (y negated)."""
    return np.array([float(location.x), -float(location.y), float(location.z)])


def vector_to_kaido(vector: carla.Vector3D) -> FloatArray:
    """A CARLA velocity/acceleration ``carla.Vector3D`` as a kaido vector ``(3,)`` (y negated)."""
    return np.array([float(vector.x), -float(vector.y), float(vector.z)])


def kaido_to_location(point: npt.ArrayLike) -> carla.Location:
    """A kaido point ``(3,)`` [m] as a ``carla.Location``."""
    p = np.asarray(point, dtype=np.float64)
    if p.shape != (3,):
        raise ValueError(f"kaido_to_location: point must have shape (3,), got {p.shape}")
    return carla.Location(x=float(p[0]), y=-float(p[1]), z=float(p[2]))


def kaido_to_vector(vector: npt.ArrayLike) -> carla.Vector3D:
    """A kaido vector ``(3,)`` as a ``carla.Vector3D``."""
    v = np.asarray(vector, dtype=np.float64)
    if v.shape != (3,):
        raise ValueError(f"kaido_to_vector: vector must have shape (3,), got {v.shape}")
    return carla.Vector3D(x=float(v[0]), y=-float(v[1]), z=float(v[2]))


def transform_to_se3(transform: carla.Transform) -> SE3:
    """A ``carla.Transform`` as a kaido :class:`SE3` (``M4 @ get_matrix() @ M4``)."""
    loc, rot = transform.location, transform.rotation
    return carla_transform_to_kaido(loc.x, loc.y, loc.z, rot.pitch, rot.yaw, rot.roll)


def se3_to_transform(pose: SE3) -> carla.Transform:
    """A kaido :class:`SE3` as a ``carla.Transform``."""
    x, y, z, pitch, yaw, roll = kaido_to_carla_transform(pose)
    return carla.Transform(
        carla.Location(x=x, y=y, z=z), carla.Rotation(pitch=pitch, yaw=yaw, roll=roll)
    )


def transform_to_se2(transform: carla.Transform) -> SE2:
    """The planar pose (x, y, heading of the local x axis) of a ``carla.Transform``."""
    return transform_to_se3(transform).to_se2()


def se2_to_transform(pose: SE2, z: float = 0.0) -> carla.Transform:
    """A kaido :class:`SE2` at height ``z`` [m] as a level ``carla.Transform``."""
    return se3_to_transform(SE3.from_se2(pose, z))


def ego_to_actor(pose: SE3, rear_axle_to_center: float) -> SE3:
    """The CARLA vehicle actor's pose from kaido's ego (rear-axle) pose, both in one frame."""
    return pose @ SE3.from_euler(rear_axle_to_center, 0.0, 0.0, 0.0, 0.0, 0.0)


def actor_to_ego(pose: SE3, rear_axle_to_center: float) -> SE3:
    """kaido's ego (rear-axle) pose from the CARLA vehicle actor's pose; inverse of
    :func:`ego_to_actor`."""
    return pose @ SE3.from_euler(-rear_axle_to_center, 0.0, 0.0, 0.0, 0.0, 0.0)


# -- controls ---------------------------------------------------------------------------------


def kaido_control_to_carla(control: Control) -> carla.VehicleControl:
    """A kaido :class:`Control` as ``carla.VehicleControl`` (same convention, field for field)."""
    return carla.VehicleControl(
        throttle=float(control.throttle),
        steer=float(control.steer),
        brake=float(control.brake),
        hand_brake=bool(control.hand_brake),
        reverse=bool(control.reverse),
        manual_gear_shift=False,
    )


def carla_control_to_kaido(control: carla.VehicleControl) -> tuple[Control, list[str]]:
    """A ``carla.VehicleControl`` as a kaido :class:`Control`, clipped into range.

    CARLA stores the fields as float32, so a value that was in range stays in range. Returns the
    control and the names of the fields that had to be clipped or replaced (see
    :meth:`Control.clipped`).
    """
    if not isinstance(control, carla.VehicleControl):
        raise TypeError(f"expected a carla.VehicleControl, got {type(control).__name__}")
    return Control.clipped(
        float(control.throttle),
        float(control.steer),
        float(control.brake),
        reverse=bool(control.reverse),
        hand_brake=bool(control.hand_brake),
    )


# -- cameras and lidar ------------------------------------------------------------------------


def bgra_to_camera_image(
    bgra: npt.NDArray[np.uint8], camera: str, timestamp_ns: int
) -> CameraImage:
    """A CARLA BGRA image ``(H, W, 4)`` uint8 as a kaido :class:`CameraImage` (RGB, copied)."""
    if not isinstance(bgra, np.ndarray) or bgra.dtype != np.uint8 or bgra.ndim != 3:
        raise ValueError(
            f"camera {camera!r}: expected a uint8 (H, W, 4) BGRA array, got {_describe(bgra)}"
        )
    if bgra.shape[2] != 4:
        raise ValueError(f"camera {camera!r}: expected 4 channels (BGRA), got {bgra.shape}")
    rgb = np.ascontiguousarray(bgra[:, :, 2::-1])
    return CameraImage(camera=camera, timestamp_ns=int(timestamp_ns), rgb=rgb)


def rgb_to_bgra(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """A kaido RGB image ``(H, W, 3)`` uint8 as CARLA's BGRA ``(H, W, 4)`` (alpha 255)."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3:
        raise ValueError(f"rgb_to_bgra: expected a uint8 (H, W, 3) array, got {_describe(rgb)}")
    if rgb.shape[2] != 3:
        raise ValueError(f"rgb_to_bgra: expected 3 channels (RGB), got {rgb.shape}")
    out = np.empty((*rgb.shape[:2], 4), dtype=np.uint8)
    out[:, :, :3] = rgb[:, :, ::-1]
    out[:, :, 3] = 255
    return out


def lidar_to_sweep(points: npt.NDArray[np.float32], lidar: str, timestamp_ns: int) -> LidarSweep:
    """CARLA lidar points ``(N, 4)`` float32 (x, y, z, intensity; sensor frame, left-handed) as a
    kaido :class:`LidarSweep` in the sensor's body frame (x forward, y left, z up)."""
    if not isinstance(points, np.ndarray) or points.ndim != 2 or points.shape[1] != 4:
        raise ValueError(
            f"lidar {lidar!r}: expected (N, 4) x, y, z, intensity points, got {_describe(points)}"
        )
    out = np.array(points, dtype=np.float32, copy=True)
    out[:, LidarIndex.Y] = -out[:, LidarIndex.Y]
    return LidarSweep(lidar=lidar, timestamp_ns=int(timestamp_ns), points=out)


def kaido_lidar_to_carla(points: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """kaido lidar points ``(N, len(LidarIndex))`` (body frame) as CARLA's ``(N, 4)`` float32
    payload in the sensor's left-handed frame; inverse of :func:`lidar_to_sweep`."""
    if not isinstance(points, np.ndarray) or points.ndim != 2 or points.shape[1] != 4:
        raise ValueError(f"kaido_lidar_to_carla: expected (N, 4) points, got {_describe(points)}")
    out = np.array(points, dtype=np.float32, copy=True)
    out[:, LidarIndex.Y] = -out[:, LidarIndex.Y]
    return out


# -- IMU and speedometer -----------------------------------------------------------------------


class ImuIndex(IntEnum):
    """Entries of the Leaderboard's IMU payload ``(7,)``: CARLA frame, left-handed."""

    ACCEL_X = 0
    ACCEL_Y = 1
    ACCEL_Z = 2
    GYRO_X = 3
    GYRO_Y = 4
    GYRO_Z = 5
    COMPASS = 6


def compass_to_yaw(compass: float) -> float:
    """kaido world yaw [rad] from CARLA's compass [rad, clockwise from north = CARLA ``-y``].

    CARLA's compass is ``yaw_carla + 90°`` wrapped to ``[0, 2π)``; kaido's yaw is
    ``-yaw_carla``, so ``yaw = π/2 - compass``.
    """
    return wrap_angle(math.pi / 2.0 - float(compass))


def yaw_to_compass(yaw: float) -> float:
    """CARLA's compass [rad, in ``[0, 2π)``] for a kaido world yaw [rad]."""
    return (math.pi / 2.0 - float(yaw)) % (2.0 * math.pi)


@dataclass(frozen=True)
class ImuReading:
    """An IMU sample in kaido's frame (sensor body frame: x forward, y left, z up)."""

    acceleration: tuple[float, float, float]
    """Accelerometer [m/s²], gravity included (``+GRAVITY`` on z when level and at rest)."""
    angular_velocity: tuple[float, float, float]
    """Gyroscope [rad/s], right-hand rule about kaido's axes (z: counter-clockwise yaw rate)."""
    yaw: float
    """World heading of the sensor's x axis [rad] from the compass."""

    @staticmethod
    def from_carla(payload: npt.ArrayLike) -> ImuReading:
        """Decode the Leaderboard's IMU payload ``(7,)`` (see :class:`ImuIndex`).

        Accelerations are a polar vector (y negated); angular velocities an axial one, so under
        the reflection they become ``(-gx, gy, -gz)``.
        """
        a = np.asarray(payload, dtype=np.float64).reshape(-1)
        if a.shape != (len(ImuIndex),):
            raise ValueError(f"IMU payload: expected {len(ImuIndex)} values, got {a.shape}")
        return ImuReading(
            acceleration=(
                float(a[ImuIndex.ACCEL_X]),
                -float(a[ImuIndex.ACCEL_Y]),
                float(a[ImuIndex.ACCEL_Z]),
            ),
            angular_velocity=(
                -float(a[ImuIndex.GYRO_X]),
                float(a[ImuIndex.GYRO_Y]),
                -float(a[ImuIndex.GYRO_Z]),
            ),
            yaw=compass_to_yaw(float(a[ImuIndex.COMPASS])),
        )

    def to_carla(self) -> FloatArray:
        """The Leaderboard's IMU payload ``(7,)`` float64; inverse of :meth:`from_carla`."""
        out = np.empty(len(ImuIndex), dtype=np.float64)
        out[ImuIndex.ACCEL_X] = self.acceleration[0]
        out[ImuIndex.ACCEL_Y] = -self.acceleration[1]
        out[ImuIndex.ACCEL_Z] = self.acceleration[2]
        out[ImuIndex.GYRO_X] = -self.angular_velocity[0]
        out[ImuIndex.GYRO_Y] = self.angular_velocity[1]
        out[ImuIndex.GYRO_Z] = -self.angular_velocity[2]
        out[ImuIndex.COMPASS] = yaw_to_compass(self.yaw)
        return out


def speed_from_speedometer(payload: object) -> float:
    """Forward speed [m/s] from the Leaderboard's speedometer payload ``{"speed": v}``."""
    if not isinstance(payload, Mapping) or "speed" not in payload:
        raise ValueError(f"speedometer payload: expected {{'speed': float}}, got {payload!r}")
    speed = float(payload["speed"])
    if not math.isfinite(speed):
        raise ValueError(f"speedometer payload: speed must be finite, got {speed}")
    return speed


# -- GNSS -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeoReference:
    """The geo-reference of an OpenDRIVE map: the PROJ string of its ``<header><geoReference>``
    and the projection origin it names (``+lat_0``, ``+lon_0`` [deg]), as CARLA reads them."""

    proj: str
    """The PROJ definition, e.g. ``+proj=tmerc +lat_0=0 +lon_0=0 ...``."""
    latitude: float
    """[deg] ``+lat_0`` (0 when absent, as in CARLA)."""
    longitude: float
    """[deg] ``+lon_0`` (0 when absent, as in CARLA)."""

    @staticmethod
    def from_xodr(xodr_text: str) -> GeoReference:
        """Parse the ``<geoReference>`` of an OpenDRIVE header; ValueError if there is none."""
        try:
            root = ET.fromstring(xodr_text)
        except ET.ParseError as err:
            raise ValueError(f"OpenDRIVE: malformed XML: {err}") from err
        node = root.find("header/geoReference")
        if node is None or not (node.text or "").strip():
            raise ValueError("OpenDRIVE: the header has no <geoReference>")
        proj = " ".join((node.text or "").split())
        values: dict[str, float] = {}
        for key in ("lat_0", "lon_0"):
            match = re.search(rf"\+{key}=(\S+)", proj)
            if match is None:
                values[key] = 0.0
                continue
            try:
                values[key] = float(match.group(1))
            except ValueError:
                raise ValueError(
                    f"OpenDRIVE <geoReference>: +{key}={match.group(1)!r} is not a number"
                ) from None
        return GeoReference(proj=proj, latitude=values["lat_0"], longitude=values["lon_0"])


class GeoProjection:
    """GNSS ↔ kaido world coordinates with CARLA's own projection of a map.

    CARLA's GNSS sensor and ``carla.Map.transform_to_geolocation`` project a location with the
    map's geo-reference (the PROJ definition of the OpenDRIVE header); this class delegates to
    that very code (``carla.Map`` builds offline from the OpenDRIVE text), so a position decoded
    here is where the CARLA server put the sensor.
    """

    def __init__(self, xodr_text: str, name: str = "map") -> None:
        self.reference = GeoReference.from_xodr(xodr_text)
        self._map = carla.Map(name, xodr_text)

    def to_geo(self, point: npt.ArrayLike) -> FloatArray:
        """``[latitude, longitude, altitude]`` [deg, deg, m] of a kaido world point ``(3,)``."""
        geo = self._map.transform_to_geolocation(kaido_to_location(point))
        return np.array([geo.latitude, geo.longitude, geo.altitude], dtype=np.float64)

    def to_world(self, gnss: npt.ArrayLike) -> FloatArray:
        """kaido world point ``(3,)`` [m] of a GNSS payload ``[latitude, longitude, altitude]``."""
        g = np.asarray(gnss, dtype=np.float64).reshape(-1)
        if g.shape != (3,) or not np.all(np.isfinite(g)):
            raise ValueError(
                f"GNSS payload: expected 3 finite values [lat, lon, alt], got {g.tolist()}"
            )
        location = self._map.geolocation_to_transform(
            carla.GeoLocation(latitude=float(g[0]), longitude=float(g[1]), altitude=float(g[2]))
        )  # a carla.Location, despite the name
        return location_to_kaido(getattr(location, "location", location))

    def to_world_many(self, gnss: Sequence[Mapping[str, float]]) -> FloatArray:
        """World points ``(N, 3)`` of the Leaderboard's GPS route entries ``{lat, lon, z}``."""
        out = np.empty((len(gnss), 3), dtype=np.float64)
        for i, entry in enumerate(gnss):
            try:
                out[i] = self.to_world([entry["lat"], entry["lon"], entry.get("z", 0.0)])
            except (KeyError, TypeError) as err:
                raise ValueError(
                    f"GPS route entry {i}: expected {{'lat', 'lon', 'z'}}, got {entry!r}"
                ) from err
        return out


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {value.shape}"
    return type(value).__name__
