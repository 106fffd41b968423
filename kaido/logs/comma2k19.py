"""Reader for one segment of comma.ai's comma2k19 dataset (real driving, a Toyota RAV4).

A segment is a folder (``<route>/<segment>/``, one minute of driving) of NumPy ``.npy`` files
written without the extension, each a plain array (read with ``allow_pickle=False``):

* ``processed_log/<GROUP>/<signal>/t`` ``(N,)`` and ``.../value`` ``(N, ...)``: a logged signal
  on the device's monotonic clock [s]. Read here: ``CAN/speed`` ``(N, 1)`` vehicle speed [m/s],
  ``CAN/steering_angle`` ``(N,)`` the STEERING-WHEEL angle [deg], positive to the LEFT (divide
  by the steering ratio for the road-wheel angle), ``CAN/wheel_speed`` ``(N, 4)`` [m/s],
  ``IMU/gyro`` ``(N, 3)`` [rad/s] and ``IMU/accelerometer`` ``(N, 3)`` [m/s²] in the device
  frame. Any other signal (``CAN/radar``, ``GNSS/...``) through :meth:`Comma2k19Segment.signal`.
* ``global_pose/frame_*``: the fused pose at every camera frame (20 Hz): ``frame_times`` ``(F,)``
  [s] (same clock), ``frame_gps_times`` ``(F, 2)`` (GPS week, seconds of week),
  ``frame_positions`` ``(F, 3)`` ECEF [m], ``frame_velocities`` ``(F, 3)`` ECEF [m/s] and
  ``frame_orientations`` ``(F, 4)`` quaternions ``(w, x, y, z)`` rotating device-frame vectors
  into ECEF.

The **device frame** (comma's convention) is x forward, y right, z down. kaido's local frame of a
segment (:meth:`Comma2k19Segment.local_poses`) is east-north-up (ENU) about the first pose, so x
east, y north, z up, yaw counter-clockwise from east: the same ISO 8855 convention as every
other kaido world frame. Geodesy is WGS84.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = [
    "Comma2k19Segment",
    "GlobalPose",
    "Signal",
    "ecef_to_enu_rotation",
    "ecef_to_geodetic",
    "load_comma2k19_segment",
    "quaternion_to_matrix",
]

FloatArray = npt.NDArray[np.float64]

WGS84_A = 6378137.0
"""[m] WGS84 semi-major axis."""
WGS84_F = 1.0 / 298.257223563
"""WGS84 flattening."""
_E2 = WGS84_F * (2.0 - WGS84_F)


@dataclass(frozen=True)
class Signal:
    """A logged signal: ``t (N,)`` [s] non-decreasing (device clock; several messages may share a
    time), ``value (N, ...)``."""

    name: str
    t: FloatArray
    value: FloatArray

    def __post_init__(self) -> None:
        if self.t.ndim != 1 or len(self.t) < 2:
            raise ValueError(f"{self.name}: t must be (N,) with N >= 2, got {self.t.shape}")
        if self.value.shape[:1] != self.t.shape:
            raise ValueError(
                f"{self.name}: value {self.value.shape} must have t's length {len(self.t)}"
            )
        if not np.all(np.isfinite(self.t)):
            raise ValueError(f"{self.name}: t has non-finite entries")
        if not np.all(np.diff(self.t) >= 0):
            raise ValueError(f"{self.name}: t is not increasing")

    def at(self, times: npt.ArrayLike) -> FloatArray:
        """Linear interpolation at ``times (M,)`` [s] (held at the ends): ``(M, ...)``."""
        query = np.asarray(times, dtype=np.float64)
        flat = self.value.reshape(len(self.t), -1)
        out = np.stack([np.interp(query, self.t, flat[:, j]) for j in range(flat.shape[1])], -1)
        return out.reshape(query.shape + self.value.shape[1:])


@dataclass(frozen=True)
class GlobalPose:
    """The fused global pose at each camera frame (F frames)."""

    times: FloatArray
    """``(F,)`` [s] on the device clock."""
    gps_times: FloatArray
    """``(F, 2)`` GPS week and seconds of week."""
    positions: FloatArray
    """``(F, 3)`` ECEF [m] of the device."""
    velocities: FloatArray
    """``(F, 3)`` ECEF [m/s]."""
    orientations: FloatArray
    """``(F, 4)`` quaternions ``(w, x, y, z)``, device frame → ECEF."""

    def __post_init__(self) -> None:
        f = len(self.times)
        shapes = {
            "times": (self.times, (f,)),
            "gps_times": (self.gps_times, (f, 2)),
            "positions": (self.positions, (f, 3)),
            "velocities": (self.velocities, (f, 3)),
            "orientations": (self.orientations, (f, 4)),
        }
        for name, (array, shape) in shapes.items():
            if array.shape != shape:
                raise ValueError(f"global_pose/frame_{name}: expected {shape}, got {array.shape}")
        if f < 2 or not np.all(np.diff(self.times) > 0):
            raise ValueError("global_pose/frame_times: need >= 2 strictly increasing times")


def ecef_to_geodetic(ecef: npt.ArrayLike) -> FloatArray:
    """WGS84 ``(latitude [rad], longitude [rad], height [m])`` of ``ecef (..., 3)`` [m]
    (Bowring's closed form with one refinement: sub-millimetre on the Earth's surface)."""
    p = np.asarray(ecef, dtype=np.float64)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    lon = np.arctan2(y, x)
    r = np.hypot(x, y)
    b = WGS84_A * (1.0 - WGS84_F)
    ep2 = (WGS84_A**2 - b**2) / b**2
    theta = np.arctan2(z * WGS84_A, r * b)
    lat = np.arctan2(z + ep2 * b * np.sin(theta) ** 3, r - _E2 * WGS84_A * np.cos(theta) ** 3)
    for _ in range(2):
        n = WGS84_A / np.sqrt(1.0 - _E2 * np.sin(lat) ** 2)
        h = r / np.cos(lat) - n
        lat = np.arctan2(z, r * (1.0 - _E2 * n / (n + h)))
    n = WGS84_A / np.sqrt(1.0 - _E2 * np.sin(lat) ** 2)
    h = r / np.cos(lat) - n
    return np.stack([lat, lon, h], axis=-1)


def ecef_to_enu_rotation(latitude: float, longitude: float) -> FloatArray:
    """``(3, 3)``: rows are the east, north and up unit vectors (ECEF) at a WGS84 point [rad]."""
    sl, cl = math.sin(latitude), math.cos(latitude)
    so, co = math.sin(longitude), math.cos(longitude)
    return np.array(
        [
            [-so, co, 0.0],
            [-sl * co, -sl * so, cl],
            [cl * co, cl * so, sl],
        ]
    )


def quaternion_to_matrix(quaternions: npt.ArrayLike) -> FloatArray:
    """Rotation matrices ``(..., 3, 3)`` of unit quaternions ``(..., 4)`` as ``(w, x, y, z)``
    (normalised first; a zero quaternion is an error)."""
    q = np.asarray(quaternions, dtype=np.float64)
    if q.shape[-1:] != (4,):
        raise ValueError(f"quaternions must be (..., 4), got {q.shape}")
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(~(norm > 0)):
        raise ValueError("quaternions: zero or non-finite quaternion")
    w, x, y, z = np.moveaxis(q / norm, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


@dataclass(frozen=True)
class Comma2k19Segment:
    """One comma2k19 segment (see the module docstring for the files and frames)."""

    path: Path
    speed: Signal
    """CAN vehicle speed ``(N,)`` [m/s]."""
    steering_angle: Signal
    """CAN steering-wheel angle ``(N,)`` [deg], positive to the left."""
    wheel_speed: Signal
    """CAN wheel speeds ``(N, 4)`` [m/s]."""
    gyro: Signal
    """IMU angular rate ``(N, 3)`` [rad/s], device frame."""
    accelerometer: Signal
    """IMU specific force ``(N, 3)`` [m/s²], device frame."""
    pose: GlobalPose

    @property
    def duration(self) -> float:
        """[s] covered by the global pose."""
        return float(self.pose.times[-1] - self.pose.times[0])

    def signal(self, name: str) -> Signal:
        """Any ``processed_log`` signal by its relative folder, e.g. ``"CAN/radar"``."""
        return _read_signal(self.path / "processed_log" / name, name)

    def origin(self) -> FloatArray:
        """``(3,)`` WGS84 latitude, longitude [rad] and height [m] of the first pose."""
        out: FloatArray = ecef_to_geodetic(self.pose.positions[0])
        return out

    def _enu(self) -> FloatArray:
        lat, lon, _ = self.origin()
        return ecef_to_enu_rotation(float(lat), float(lon))

    def local_positions(self) -> FloatArray:
        """``(F, 3)`` device positions [m] in the local ENU frame about the first pose."""
        out: FloatArray = (self.pose.positions - self.pose.positions[0]) @ self._enu().T
        return out

    def local_velocities(self) -> FloatArray:
        """``(F, 3)`` velocities [m/s] in the local ENU frame."""
        out: FloatArray = self.pose.velocities @ self._enu().T
        return out

    def device_yaw(self) -> FloatArray:
        """``(F,)`` [rad] heading of the device's forward axis, counter-clockwise from east
        (includes the device's mounting yaw relative to the car)."""
        rotations = quaternion_to_matrix(self.pose.orientations)  # device → ECEF
        forward = rotations[:, :, 0] @ self._enu().T
        out: FloatArray = np.arctan2(forward[:, 1], forward[:, 0])
        return out

    def course(self) -> FloatArray:
        """``(F,)`` [rad] direction of travel (of the horizontal velocity), from east."""
        v = self.local_velocities()
        out: FloatArray = np.arctan2(v[:, 1], v[:, 0])
        return out

    def local_poses(self) -> FloatArray:
        """``(F, 3)`` x east, y north [m] and the direction of travel [rad] (:meth:`course`):
        the car's planar pose at the device's position."""
        xy = self.local_positions()[:, :2]
        out: FloatArray = np.concatenate([xy, self.course()[:, None]], axis=1)
        return out

    def yaw_rate(self, times: npt.ArrayLike) -> FloatArray:
        """``(M,)`` [rad/s] yaw rate about the local vertical (counter-clockwise positive) from
        the gyro at ``times`` [s]: the device-frame rate rotated by the nearest pose's
        orientation and projected on the up axis."""
        query = np.asarray(times, dtype=np.float64)
        rate = self.gyro.at(query)  # (M, 3) device frame
        index = np.clip(np.searchsorted(self.pose.times, query), 0, len(self.pose.times) - 1)
        rotations = quaternion_to_matrix(self.pose.orientations[index])  # (M, 3, 3)
        up = self._enu()[2]
        out: FloatArray = np.einsum("mij,mj,i->m", rotations, rate, up)
        return out


def _load(path: Path, ndim: tuple[int, ...]) -> FloatArray:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing comma2k19 file")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a NumPy array file ({err})") from None
    if not isinstance(array, np.ndarray) or array.ndim not in ndim:
        shape = getattr(array, "shape", None)
        raise ValueError(f"{path}: expected an array of {ndim} dimensions, got shape {shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{path}: expected numbers, got dtype {array.dtype}")
    return array.astype(np.float64, copy=False)


def _read_signal(folder: Path, name: str, squeeze: bool = False) -> Signal:
    t = _load(folder / "t", (1,))
    value = _load(folder / "value", (1, 2))
    if squeeze and value.ndim == 2:
        if value.shape[1] != 1:
            raise ValueError(f"{folder / 'value'}: expected (N,) or (N, 1), got {value.shape}")
        value = value[:, 0]
    try:
        return Signal(name, t, value)
    except ValueError as err:
        raise ValueError(f"{folder}: {err}") from None


def load_comma2k19_segment(path: Path | str) -> Comma2k19Segment:
    """Read the segment folder ``path`` (the one holding ``processed_log`` and ``global_pose``).

    Missing files raise FileNotFoundError naming the file; bad shapes ValueError naming it."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such comma2k19 segment folder")
    log = path / "processed_log"
    gp = path / "global_pose"
    pose = GlobalPose(
        times=_load(gp / "frame_times", (1,)),
        gps_times=_load(gp / "frame_gps_times", (2,)),
        positions=_load(gp / "frame_positions", (2,)),
        velocities=_load(gp / "frame_velocities", (2,)),
        orientations=_load(gp / "frame_orientations", (2,)),
    )
    return Comma2k19Segment(
        path=path,
        speed=_read_signal(log / "CAN" / "speed", "CAN/speed", squeeze=True),
        steering_angle=_read_signal(
            log / "CAN" / "steering_angle", "CAN/steering_angle", squeeze=True
        ),
        wheel_speed=_read_signal(log / "CAN" / "wheel_speed", "CAN/wheel_speed"),
        gyro=_read_signal(log / "IMU" / "gyro", "IMU/gyro"),
        accelerometer=_read_signal(log / "IMU" / "accelerometer", "IMU/accelerometer"),
        pose=pose,
    )
