"""Argoverse 2 sensor-dataset logs (lidar sweeps, ego poses, calibration, 3D cuboids) as kaido
:class:`~kaido.scene.frame.Frame` objects.

Layout read (one log of the AV2 sensor dataset)::

    <log>/sensors/lidar/<timestamp_ns>.feather     x, y, z [m] (egovehicle frame), intensity,
                                                   laser_number (0-31 up, 32-63 down lidar),
                                                   offset_ns
    <log>/city_SE3_egovehicle.feather              timestamp_ns, qw qx qy qz, tx_m ty_m tz_m
    <log>/calibration/egovehicle_SE3_sensor.feather  sensor_name, qw qx qy qz, tx_m ty_m tz_m
    <log>/calibration/intrinsics.feather           sensor_name, fx_px fy_px cx_px cy_px,
                                                   k1 k2 k3, height_px width_px
    <log>/annotations.feather                      timestamp_ns, track_uuid, category,
                                                   length_m width_m height_m, qw qx qy qz,
                                                   tx_m ty_m tz_m (egovehicle frame),
                                                   num_interior_pts

Frames
------
* AV2's egovehicle frame is x forward, y left, z up with its origin at the centre of the rear
  axle, at axle height. kaido's ego frame has the same axes with its origin on the ground under
  the rear axle, so ``p_kaido = p_av2 + (0, 0, rear_axle_height)``; every ego-frame quantity read
  here (lidar extrinsics, camera extrinsics, cuboids) is shifted so. The default
  :data:`AV2_REAR_AXLE_HEIGHT` of 0.33 m is the loaded radius of the vehicle's 235/45 R18 tyres
  (nominal radius 0.334 m), and agrees with the recorded data: in the sample log the ground-height
  map lies 0.32 m under the egovehicle origin, road returns within 8 m of the car at a median
  -0.36 m, and the bottoms of nearby vehicle cuboids at -0.28 to -0.41 m (tests check that the
  ground lies near kaido's ``z = 0``).
* The world frame is AV2's city frame (metres, x east, y north, z up). :attr:`Frame.ego` is the
  planar pose of kaido's ego origin in it (:meth:`SE3.to_se2` of ``city_SE3_egovehicle`` composed
  with the shift above). Velocity (in the ego frame), acceleration and yaw rate are central
  differences of the poses :data:`EGO_DIFFERENCE_NS` before and after; the steering angle is not
  recorded (NaN).
* Lidar: the two stacked Velodyne VLP-32C of the rig are separate sweeps, ``up_lidar`` (laser
  numbers 0-31) and ``down_lidar`` (32-63), each in its own body frame (AV2's ``egovehicle_SE3``
  poses of ``up_lidar`` and ``down_lidar``). AV2 has motion-compensated every return to the
  sweep's reference timestamp (the file name), which is the sweeps' ``timestamp_ns``; per-point
  ``offset_ns`` is not kept. Intensity is AV2's 0-255 value as float32.
* Cameras: the rig holds the nine calibrated cameras (seven ring, two stereo) as distortion-free
  pinholes: the model of the *undistorted* image; AV2's radial distortion (``k1, k2, k3``) is in
  :attr:`Av2SensorLog.camera_distortion`. Frames carry no images (camera files are not read).
  AV2's pinhole puts pixel centres at integer coordinates; kaido's puts them at ``+0.5``, so the
  principal point is shifted by ``+0.5`` px.
* Ground truth: the cuboids annotated at the frame's timestamp, in the world frame (yaw-only boxes:
  the yaw of the cuboid's rotation in the city frame), with ``track_id`` the index of the
  cuboid's ``track_uuid`` in :attr:`Av2SensorLog.track_uuids` (sorted uuids of the whole log) and
  the velocity of the box centre from the track's neighbouring annotations (NaN for a track
  annotated once). Categories map to kaido classes by :data:`AV2_CATEGORIES`.

Errors: a missing file, or a missing or null column, raises ``ValueError`` naming the file and the
column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.feather as feather

from kaido.scene.agents import AgentClass, AgentState, EgoState
from kaido.scene.frame import Frame, GroundTruth, LidarIndex, LidarSweep
from kaido.scene.geometry import (
    SE3,
    Box3D,
    Box3DIndex,
    EulerIndex,
    quaternions_to_rotation_matrices,
    rotation_matrices_to_euler,
    wrap_angle,
)
from kaido.scene.sensors import CameraSpec, LidarSpec, SensorRig

__all__ = [
    "AV2_CATEGORIES",
    "AV2_PIXEL_OFFSET",
    "AV2_REAR_AXLE_HEIGHT",
    "DOWN_LIDAR",
    "EGO_DIFFERENCE_NS",
    "LASERS_PER_LIDAR",
    "UP_LIDAR",
    "Av2Cuboids",
    "Av2SensorLog",
    "vlp32c_spec",
]

#: Height of AV2's egovehicle origin (the rear-axle centre) above the ground [m].
AV2_REAR_AXLE_HEIGHT = 0.33
#: kaido pixel coordinate minus AV2 pixel coordinate [px] (pixel centres at +0.5 in kaido).
AV2_PIXEL_OFFSET = 0.5
#: Name of the upper lidar (laser numbers 0-31).
UP_LIDAR = "up_lidar"
#: Name of the lower, upside-down lidar (laser numbers 32-63).
DOWN_LIDAR = "down_lidar"
#: Beams per lidar: laser numbers ``[0, 32)`` are the up lidar's, ``[32, 64)`` the down lidar's.
LASERS_PER_LIDAR = 32
#: Time between the poses differenced for the ego's velocity and acceleration [ns].
EGO_DIFFERENCE_NS = 100_000_000

_V = AgentClass.VEHICLE
_P = AgentClass.PEDESTRIAN
_C = AgentClass.CYCLIST
_S = AgentClass.STATIC
_U = AgentClass.UNKNOWN
#: AV2 annotation category → kaido class. Riderless bicycles and wheeled devices are ``STATIC``
#: (their riders are ``BICYCLIST`` / ``WHEELED_RIDER``); motorcycles are vehicles, as in
#: :class:`AgentClass`; people pushing strollers or in wheelchairs are pedestrians; animals are
#: ``UNKNOWN``. A category not listed here reads as ``UNKNOWN``.
AV2_CATEGORIES: Mapping[str, AgentClass] = MappingProxyType(
    {
        "REGULAR_VEHICLE": _V,
        "LARGE_VEHICLE": _V,
        "BUS": _V,
        "SCHOOL_BUS": _V,
        "ARTICULATED_BUS": _V,
        "BOX_TRUCK": _V,
        "TRUCK": _V,
        "TRUCK_CAB": _V,
        "VEHICULAR_TRAILER": _V,
        "RAILED_VEHICLE": _V,
        "MOTORCYCLE": _V,
        "PEDESTRIAN": _P,
        "OFFICIAL_SIGNALER": _P,
        "WHEELCHAIR": _P,
        "STROLLER": _P,
        "BICYCLIST": _C,
        "MOTORCYCLIST": _C,
        "WHEELED_RIDER": _C,
        "BICYCLE": _S,
        "WHEELED_DEVICE": _S,
        "BOLLARD": _S,
        "CONSTRUCTION_CONE": _S,
        "CONSTRUCTION_BARREL": _S,
        "STOP_SIGN": _S,
        "SIGN": _S,
        "MOBILE_PEDESTRIAN_CROSSING_SIGN": _S,
        "MESSAGE_BOARD_TRAILER": _S,
        "TRAFFIC_LIGHT_TRAILER": _S,
        "DOG": _U,
        "ANIMAL": _U,
    }
)

_CAMERA_NAMES = (
    "ring_front_center",
    "ring_front_left",
    "ring_front_right",
    "ring_side_left",
    "ring_side_right",
    "ring_rear_left",
    "ring_rear_right",
    "stereo_front_left",
    "stereo_front_right",
)
_QUATERNION = ("qw", "qx", "qy", "qz")
_TRANSLATION = ("tx_m", "ty_m", "tz_m")

# Pose of the camera body frame (x forward, y left, z up) in the optical frame (x right, y down,
# z forward): the inverse of the permutation kaido.scene.sensors applies.
_OPTICAL_FROM_BODY = SE3(
    np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]), np.zeros(3)
)


def vlp32c_spec(name: str, extrinsics: SE3) -> LidarSpec:
    """A Velodyne VLP-32C at ``extrinsics`` (datasheet values: 32 beams, +15° to -25°, 200 m,
    about 600 000 points per second in single-return mode; AV2 spins it at 10 Hz)."""
    return LidarSpec(
        name=name,
        extrinsics=extrinsics,
        channels=LASERS_PER_LIDAR,
        upper_fov=math.radians(15.0),
        lower_fov=math.radians(-25.0),
        range_min=0.0,
        range_max=200.0,
        rotation_frequency=10.0,
        points_per_second=600_000,
    )


def _read_table(path: Path, columns: Sequence[str]) -> dict[str, npt.NDArray[Any]]:
    """The named columns of a feather file as NumPy arrays; errors name the file and column."""
    if not path.is_file():
        raise ValueError(f"{path}: missing AV2 file")
    try:
        table = feather.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"{path}: not a readable feather file: {exc}") from exc
    out: dict[str, npt.NDArray[Any]] = {}
    for name in columns:
        if name not in table.column_names:
            raise ValueError(f"{path}: column {name!r} missing; columns are {table.column_names}")
        column = table.column(name)
        if column.null_count:
            raise ValueError(f"{path}: column {name!r} has {column.null_count} null values")
        out[name] = column.to_numpy()
    return out


def _poses(
    table: Mapping[str, npt.NDArray[Any]],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``(R (N, 3, 3), t (N, 3))`` of the quaternion and translation columns of a pose table."""
    q = np.stack([np.asarray(table[k], dtype=np.float64) for k in _QUATERNION], axis=-1)
    t = np.stack([np.asarray(table[k], dtype=np.float64) for k in _TRANSLATION], axis=-1)
    return quaternions_to_rotation_matrices(q), t


@dataclass(frozen=True, eq=False)
class Av2Cuboids:
    """The ``B`` cuboids annotated at one timestamp, in kaido's ego frame."""

    timestamp_ns: int
    """Annotation time [ns] (a lidar sweep's timestamp)."""
    track_ids: npt.NDArray[np.int64]
    """``(B,)`` int64 index of each cuboid's uuid in :attr:`Av2SensorLog.track_uuids`."""
    track_uuids: tuple[str, ...]
    """``B`` AV2 track uuids."""
    categories: tuple[str, ...]
    """``B`` AV2 category names, e.g. ``"REGULAR_VEHICLE"``."""
    boxes: npt.NDArray[np.float64]
    """``(B, len(Box3DIndex))`` float64 yaw-only boxes in the ego frame [m, rad]."""
    num_interior_pts: npt.NDArray[np.int64]
    """``(B,)`` int64 lidar returns AV2 counted inside each cuboid."""

    def __len__(self) -> int:
        return len(self.track_uuids)

    @property
    def agent_classes(self) -> tuple[AgentClass, ...]:
        """``B`` kaido classes (:data:`AV2_CATEGORIES`; unknown categories are ``UNKNOWN``)."""
        return tuple(AV2_CATEGORIES.get(c, AgentClass.UNKNOWN) for c in self.categories)


class Av2SensorLog:
    """One AV2 sensor-dataset log, read once at construction; one :class:`Frame` per sweep.

    ``rear_axle_height`` [m] is the height of AV2's egovehicle origin above the ground (see the
    module docstring). Frame ``i`` is the lidar sweep ``timestamps_ns[i]`` with its ego state,
    calibration and annotations.
    """

    def __init__(self, root: str | Path, *, rear_axle_height: float = AV2_REAR_AXLE_HEIGHT) -> None:
        if not math.isfinite(rear_axle_height) or rear_axle_height < 0.0:
            raise ValueError(
                f"rear_axle_height: expected a finite height >= 0 m, got {rear_axle_height}"
            )
        self.root = Path(root)
        """The log folder."""
        self.log_id = self.root.name
        """The log's uuid (its folder name)."""
        self.rear_axle_height = float(rear_axle_height)
        """Height of AV2's egovehicle origin above kaido's ego origin [m]."""
        # kaido ego frame -> AV2 egovehicle frame, and back.
        self._av2_from_ego = SE3(np.eye(3), np.array([0.0, 0.0, -self.rear_axle_height]))
        self._ego_from_av2 = self._av2_from_ego.inverse()

        lidar_dir = self.root / "sensors" / "lidar"
        if not lidar_dir.is_dir():
            raise ValueError(f"{lidar_dir}: missing AV2 lidar folder")
        sweeps: dict[int, Path] = {}
        for path in lidar_dir.glob("*.feather"):
            if not path.stem.isdigit():
                raise ValueError(f"{path}: a lidar sweep's name must be its timestamp [ns]")
            sweeps[int(path.stem)] = path
        if not sweeps:
            raise ValueError(f"{lidar_dir}: no lidar sweeps (*.feather)")
        self.timestamps_ns: npt.NDArray[np.int64] = np.array(sorted(sweeps), dtype=np.int64)
        """``(S,)`` int64 sweep timestamps [ns], increasing; frame ``i`` is at ``[i]``."""
        self.timestamps_ns.flags.writeable = False
        self._sweep_paths = tuple(sweeps[int(t)] for t in self.timestamps_ns)

        self._read_poses()
        self._read_calibration()
        self._read_annotations()

    # -- reading -------------------------------------------------------------------------------

    def _read_poses(self) -> None:
        path = self.root / "city_SE3_egovehicle.feather"
        table = _read_table(path, ("timestamp_ns", *_QUATERNION, *_TRANSLATION))
        t = np.asarray(table["timestamp_ns"], dtype=np.int64)
        order = np.argsort(t, kind="stable")
        rotations, translations = _poses(table)
        self._pose_path = path
        self._pose_times = t[order]
        self._pose_rotations = rotations[order]
        self._pose_translations = translations[order]

    def _read_calibration(self) -> None:
        ext_path = self.root / "calibration" / "egovehicle_SE3_sensor.feather"
        ext = _read_table(ext_path, ("sensor_name", *_QUATERNION, *_TRANSLATION))
        rotations, translations = _poses(ext)
        extrinsics: dict[str, SE3] = {}
        for i, name in enumerate(ext["sensor_name"]):
            try:
                pose = SE3(rotations[i], translations[i])
            except ValueError as exc:
                raise ValueError(f"{ext_path}: sensor {name!r}: {exc}") from exc
            extrinsics[str(name)] = self._ego_from_av2 @ pose
        for name in (UP_LIDAR, DOWN_LIDAR, *_CAMERA_NAMES):
            if name not in extrinsics:
                raise ValueError(f"{ext_path}: sensor_name {name!r} missing")

        int_path = self.root / "calibration" / "intrinsics.feather"
        columns = ("fx_px", "fy_px", "cx_px", "cy_px", "k1", "k2", "k3", "height_px", "width_px")
        intr = _read_table(int_path, ("sensor_name", *columns))
        rows = {str(name): i for i, name in enumerate(intr["sensor_name"])}
        cameras: list[CameraSpec] = []
        distortion: dict[str, tuple[float, float, float]] = {}
        for name in _CAMERA_NAMES:
            if name not in rows:
                raise ValueError(f"{int_path}: sensor_name {name!r} missing")
            i = rows[name]
            try:
                cameras.append(
                    CameraSpec(
                        name,
                        int(intr["width_px"][i]),
                        int(intr["height_px"][i]),
                        float(intr["fx_px"][i]),
                        float(intr["fy_px"][i]),
                        float(intr["cx_px"][i]) + AV2_PIXEL_OFFSET,
                        float(intr["cy_px"][i]) + AV2_PIXEL_OFFSET,
                        extrinsics[name] @ _OPTICAL_FROM_BODY,
                    )
                )
            except ValueError as exc:
                raise ValueError(f"{int_path}: sensor {name!r}: {exc}") from exc
            distortion[name] = (
                float(intr["k1"][i]),
                float(intr["k2"][i]),
                float(intr["k3"][i]),
            )
        self.rig = SensorRig(
            cameras=tuple(cameras),
            lidars=(
                vlp32c_spec(UP_LIDAR, extrinsics[UP_LIDAR]),
                vlp32c_spec(DOWN_LIDAR, extrinsics[DOWN_LIDAR]),
            ),
        )
        """Nine pinhole cameras (the undistorted images) and the two lidars, in kaido's ego
        frame."""
        self.camera_distortion: Mapping[str, tuple[float, float, float]] = MappingProxyType(
            distortion
        )
        """Camera name → AV2's radial distortion ``(k1, k2, k3)`` of the raw image (AV2 pixel
        convention: ``r`` in normalised image coordinates)."""

    def _read_annotations(self) -> None:
        path = self.root / "annotations.feather"
        columns = (
            "timestamp_ns",
            "track_uuid",
            "category",
            "length_m",
            "width_m",
            "height_m",
            *_QUATERNION,
            *_TRANSLATION,
            "num_interior_pts",
        )
        table = _read_table(path, columns)
        t = np.asarray(table["timestamp_ns"], dtype=np.int64)
        order = np.lexsort((table["track_uuid"], t))
        rotations, translations = _poses(table)
        uuids = np.asarray(table["track_uuid"], dtype=object)[order]
        self.track_uuids: tuple[str, ...] = tuple(sorted({str(u) for u in uuids}))
        """Sorted track uuids of the whole log; ``track_id`` ``k`` is ``track_uuids[k]``."""
        index = {u: k for k, u in enumerate(self.track_uuids)}
        yaw = rotation_matrices_to_euler(rotations[order])[:, EulerIndex.YAW]
        boxes = np.empty((order.size, len(Box3DIndex)), dtype=np.float64)
        centres = translations[order] + np.array([0.0, 0.0, self.rear_axle_height])
        boxes[:, Box3DIndex.X] = centres[:, 0]
        boxes[:, Box3DIndex.Y] = centres[:, 1]
        boxes[:, Box3DIndex.Z] = centres[:, 2]
        boxes[:, Box3DIndex.YAW] = yaw
        boxes[:, Box3DIndex.LENGTH] = np.asarray(table["length_m"], dtype=np.float64)[order]
        boxes[:, Box3DIndex.WIDTH] = np.asarray(table["width_m"], dtype=np.float64)[order]
        boxes[:, Box3DIndex.HEIGHT] = np.asarray(table["height_m"], dtype=np.float64)[order]
        if not np.all(np.isfinite(boxes)):
            raise ValueError(f"{path}: non-finite cuboid pose or size")
        self._ann_path = path
        self._ann_times = t[order]
        self._ann_uuids = tuple(str(u) for u in uuids)
        self._ann_ids = np.array([index[u] for u in self._ann_uuids], dtype=np.int64)
        self._ann_categories = tuple(str(c) for c in np.asarray(table["category"])[order])
        self._ann_boxes = boxes
        self._ann_points = np.asarray(table["num_interior_pts"], dtype=np.int64)[order]

    # -- access --------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.timestamps_ns.shape[0])

    def _check_index(self, i: int) -> int:
        if isinstance(i, bool) or not isinstance(i, int | np.integer):
            raise TypeError(f"frame index: expected an int, got {i!r}")
        n = len(self)
        if not -n <= int(i) < n:
            raise IndexError(f"frame index {i} out of range for {n} sweeps")
        return int(i) % n

    def _pose_row(self, timestamp_ns: int) -> int:
        k = int(np.searchsorted(self._pose_times, timestamp_ns))
        if k >= self._pose_times.size or int(self._pose_times[k]) != timestamp_ns:
            raise ValueError(f"{self._pose_path}: no pose at timestamp_ns {timestamp_ns}")
        return k

    def _city_from_ego_row(self, k: int) -> SE3:
        try:
            city_from_av2 = SE3(self._pose_rotations[k], self._pose_translations[k])
        except ValueError as exc:
            raise ValueError(
                f"{self._pose_path}: timestamp_ns {int(self._pose_times[k])}: {exc}"
            ) from exc
        return city_from_av2 @ self._av2_from_ego

    def ego_pose(self, timestamp_ns: int) -> SE3:
        """Pose of kaido's ego frame in the city frame at a pose timestamp [ns]."""
        return self._city_from_ego_row(self._pose_row(int(timestamp_ns)))

    def ego_state(self, i: int) -> EgoState:
        """Ego state at sweep ``i`` (see the module docstring for the differenced quantities)."""
        t = int(self.timestamps_ns[self._check_index(i)])
        k = self._pose_row(t)
        pose = self._city_from_ego_row(k).to_se2()
        times = self._pose_times
        lo = int(np.searchsorted(times, t - EGO_DIFFERENCE_NS))
        hi = min(int(np.searchsorted(times, t + EGO_DIFFERENCE_NS)), times.size - 1)
        nan = math.nan
        velocity: tuple[float, float] = (nan, nan)
        acceleration: tuple[float, float] = (nan, nan)
        yaw_rate = nan
        if lo < k < hi:
            before = self._city_from_ego_row(lo).to_se2()
            after = self._city_from_ego_row(hi).to_se2()
            dt_b = (t - int(times[lo])) * 1e-9
            dt_a = (int(times[hi]) - t) * 1e-9
            p0 = np.array([pose.x, pose.y])
            v_b = (p0 - np.array([before.x, before.y])) / dt_b
            v_a = (np.array([after.x, after.y]) - p0) / dt_a
            v_world = (v_b * dt_a + v_a * dt_b) / (dt_a + dt_b)
            a_world = (v_a - v_b) / (0.5 * (dt_a + dt_b))
            c, s = math.cos(pose.yaw), math.sin(pose.yaw)
            to_ego = np.array([[c, s], [-s, c]])
            v_ego = to_ego @ v_world
            a_ego = to_ego @ a_world
            velocity = (float(v_ego[0]), float(v_ego[1]))
            acceleration = (float(a_ego[0]), float(a_ego[1]))
            yaw_rate = wrap_angle(after.yaw - before.yaw) / (dt_a + dt_b)
        return EgoState(t, pose, velocity, acceleration, yaw_rate, nan)

    def lidar(self, i: int) -> dict[str, LidarSweep]:
        """The two sweeps of frame ``i`` (``up_lidar``, ``down_lidar``), each in its body
        frame."""
        j = self._check_index(i)
        t = int(self.timestamps_ns[j])
        path = self._sweep_paths[j]
        table = _read_table(path, ("x", "y", "z", "intensity", "laser_number"))
        xyz_av2 = np.stack([np.asarray(table[k], dtype=np.float64) for k in "xyz"], axis=-1)
        xyz_ego = self._ego_from_av2.transform_points(xyz_av2)
        laser = np.asarray(table["laser_number"], dtype=np.int64)
        if laser.size and (laser.min() < 0 or laser.max() >= 2 * LASERS_PER_LIDAR):
            raise ValueError(
                f"{path}: column 'laser_number' outside [0, {2 * LASERS_PER_LIDAR}): "
                f"{int(laser.min())}..{int(laser.max())}"
            )
        intensity = np.asarray(table["intensity"], dtype=np.float32)
        out: dict[str, LidarSweep] = {}
        for name, mask in (
            (UP_LIDAR, laser < LASERS_PER_LIDAR),
            (DOWN_LIDAR, laser >= LASERS_PER_LIDAR),
        ):
            body = self.rig.lidar(name).extrinsics.inverse_transform_points(xyz_ego[mask])
            points = np.empty((body.shape[0], len(LidarIndex)), dtype=np.float32)
            points[:, LidarIndex.X : LidarIndex.Z + 1] = body
            points[:, LidarIndex.INTENSITY] = intensity[mask]
            out[name] = LidarSweep(name, t, points)
        return out

    def cuboids(self, i: int) -> Av2Cuboids:
        """The cuboids annotated at sweep ``i``'s timestamp, in kaido's ego frame."""
        t = int(self.timestamps_ns[self._check_index(i)])
        lo = int(np.searchsorted(self._ann_times, t, side="left"))
        hi = int(np.searchsorted(self._ann_times, t, side="right"))
        boxes = self._ann_boxes[lo:hi].copy()
        ids = self._ann_ids[lo:hi].copy()
        points = self._ann_points[lo:hi].copy()
        for arr in (boxes, ids, points):
            arr.flags.writeable = False
        return Av2Cuboids(
            timestamp_ns=t,
            track_ids=ids,
            track_uuids=self._ann_uuids[lo:hi],
            categories=self._ann_categories[lo:hi],
            boxes=boxes,
            num_interior_pts=points,
        )

    def _track_velocity(self, track_id: int, row: int) -> tuple[float, float]:
        """World velocity [m/s] of an annotation's centre from the track's neighbouring
        annotations (central where both exist); NaN for a track annotated once."""
        rows = np.flatnonzero(self._ann_ids == track_id)
        k = int(np.searchsorted(rows, row))
        before = int(rows[k - 1]) if k > 0 else row
        after = int(rows[k + 1]) if k + 1 < rows.size else row
        if before == after:
            return (math.nan, math.nan)
        centres = []
        for r in (before, after):
            pose = self._city_from_ego_row(self._pose_row(int(self._ann_times[r])))
            centres.append(pose.transform_points(self._ann_boxes[r, : Box3DIndex.Z + 1]))
        dt = (int(self._ann_times[after]) - int(self._ann_times[before])) * 1e-9
        v = (centres[1] - centres[0]) / dt
        return (float(v[0]), float(v[1]))

    def ground_truth(self, i: int) -> GroundTruth:
        """The agents annotated at sweep ``i``, in the city frame."""
        j = self._check_index(i)
        t = int(self.timestamps_ns[j])
        city_from_ego = self.ego_pose(t)
        lo = int(np.searchsorted(self._ann_times, t, side="left"))
        hi = int(np.searchsorted(self._ann_times, t, side="right"))
        agents: list[AgentState] = []
        for row in range(lo, hi):
            b = self._ann_boxes[row]
            box_pose = city_from_ego @ SE3.from_euler(
                b[Box3DIndex.X], b[Box3DIndex.Y], b[Box3DIndex.Z], 0.0, 0.0, b[Box3DIndex.YAW]
            )
            planar = box_pose.to_se2()
            box = Box3D(
                planar.x,
                planar.y,
                float(box_pose.translation[2]),
                planar.yaw,
                float(b[Box3DIndex.LENGTH]),
                float(b[Box3DIndex.WIDTH]),
                float(b[Box3DIndex.HEIGHT]),
            )
            track_id = int(self._ann_ids[row])
            agents.append(
                AgentState(
                    track_id,
                    AV2_CATEGORIES.get(self._ann_categories[row], AgentClass.UNKNOWN),
                    box,
                    self._track_velocity(track_id, row),
                    t,
                )
            )
        return GroundTruth(agents=tuple(agents))

    def frame(self, i: int) -> Frame:
        """Frame ``i``: both lidar sweeps, the ego state, the rig and the annotated agents."""
        j = self._check_index(i)
        return Frame(
            timestamp_ns=int(self.timestamps_ns[j]),
            ego=self.ego_state(j),
            images={},
            lidar=self.lidar(j),
            rig=self.rig,
            ground_truth=self.ground_truth(j),
        )
