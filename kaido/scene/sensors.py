"""Sensor calibration: pinhole cameras, spinning lidars and the rig that carries them.

Frames
------
* Ego frame (ISO 8855, right-handed): x forward, y left, z up; origin at the centre of the rear
  axle projected onto the ground plane. Every extrinsic transform maps a sensor frame into it.
* Sensor body frame (cameras and lidars): x forward, y left, z up, origin at the sensor, like the
  ego frame. ``extrinsics`` is the pose of the body frame in the ego frame
  (``p_ego = extrinsics.transform_points(p_body)``). A lidar sweep's points are in this frame.
* Camera optical frame (OpenCV): x right, y down, z forward along the optical axis.
* Pixel coordinates ``(u, v)`` are continuous: ``u`` grows to the right, ``v`` downwards, and the
  image covers ``[0, width) x [0, height)``, so pixel ``(col, row)`` spans ``[col, col + 1)`` and
  its centre is at ``col + 0.5`` (the convention under which CARLA's ``cx = width / 2`` is the
  image centre).

Units: metres, radians, seconds, hertz. In the YAML form of a rig (:func:`load_sensor_rig`)
angles are in degrees and every key holding one ends in ``_deg``.

YAML layout::

    cameras:
      - name: front
        width: 256            # [px]
        height: 160           # [px]
        fov_deg: 90.0         # horizontal field of view [deg]; or fx, fy, cx, cy [px]
        extrinsics: {x: 1.5, y: 0.0, z: 1.6, roll_deg: 0.0, pitch_deg: 0.0, yaw_deg: 0.0}
    lidars:
      - name: top
        channels: 32
        upper_fov_deg: 10.0
        lower_fov_deg: -30.0
        range_min: 0.0        # [m]
        range_max: 80.0       # [m]
        rotation_frequency: 10.0   # [Hz]
        points_per_second: 288000
        extrinsics: {x: 0.0, y: 0.0, z: 2.0}

Omitted extrinsic keys default to 0; unknown keys are errors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from kaido.scene.geometry import SE3

__all__ = [
    "CameraSpec",
    "LidarSpec",
    "SensorRig",
    "dump_sensor_rig",
    "load_sensor_rig",
    "se3_from_dict",
    "se3_to_dict",
]

# Pose of the optical frame (x right, y down, z forward) in the camera body frame
# (x forward, y left, z up): same origin, axes permuted.
_BODY_FROM_OPTICAL = SE3(
    np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]), np.zeros(3)
)


def _check_name(owner: str, name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{owner}.name: expected a non-empty string, got {name!r}")
    return name


def _check_positive_int(owner: str, field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) <= 0:
        raise ValueError(f"{owner}.{field}: expected a positive integer, got {value!r}")
    return int(value)


def _check_finite(owner: str, field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{owner}.{field}: expected a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{owner}.{field}: must be finite, got {out}")
    return out


def _check_extrinsics(owner: str, value: object) -> SE3:
    if not isinstance(value, SE3):
        raise TypeError(f"{owner}.extrinsics: expected SE3, got {type(value).__name__}")
    return value


_SE3_KEYS = ("x", "y", "z", "roll_deg", "pitch_deg", "yaw_deg")


def se3_to_dict(pose: SE3) -> dict[str, float]:
    """``{x, y, z [m], roll_deg, pitch_deg, yaw_deg [deg]}`` of a pose (Z-Y-X Euler angles)."""
    roll, pitch, yaw = pose.euler
    t = np.asarray(pose.translation, dtype=np.float64)
    return {
        "x": float(t[0]),
        "y": float(t[1]),
        "z": float(t[2]),
        "roll_deg": math.degrees(roll),
        "pitch_deg": math.degrees(pitch),
        "yaw_deg": math.degrees(yaw),
    }


def se3_from_dict(d: Mapping[str, Any], where: str = "extrinsics") -> SE3:
    """Inverse of :func:`se3_to_dict`; omitted keys are 0, unknown keys raise ``ValueError``."""
    if not isinstance(d, Mapping):
        raise ValueError(f"{where}: expected a mapping with keys {list(_SE3_KEYS)}, got {d!r}")
    unknown = sorted(set(d) - set(_SE3_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; expected some of {list(_SE3_KEYS)}")
    v = {k: _check_finite(where, k, d.get(k, 0.0)) for k in _SE3_KEYS}
    return SE3.from_euler(
        v["x"],
        v["y"],
        v["z"],
        math.radians(v["roll_deg"]),
        math.radians(v["pitch_deg"]),
        math.radians(v["yaw_deg"]),
    )


@dataclass(frozen=True)
class CameraSpec:
    """A distortion-free pinhole camera (see the module docstring for frames and pixels)."""

    name: str
    """Unique name in the rig, e.g. ``"front"``."""
    width: int
    """Image width [px]."""
    height: int
    """Image height [px]."""
    fx: float
    """Focal length along u [px]."""
    fy: float
    """Focal length along v [px]."""
    cx: float
    """Principal point u [px], inside ``(0, width)``."""
    cy: float
    """Principal point v [px], inside ``(0, height)``."""
    extrinsics: SE3
    """Pose of the camera body frame (x forward, y left, z up) in the ego frame."""

    def __post_init__(self) -> None:
        owner = f"CameraSpec({self.name!r})"
        _check_name("CameraSpec", self.name)
        object.__setattr__(self, "width", _check_positive_int(owner, "width", self.width))
        object.__setattr__(self, "height", _check_positive_int(owner, "height", self.height))
        for field in ("fx", "fy"):
            value = _check_finite(owner, field, getattr(self, field))
            if value <= 0.0:
                raise ValueError(f"{owner}.{field}: must be positive, got {value}")
            object.__setattr__(self, field, value)
        for field, size in (("cx", self.width), ("cy", self.height)):
            value = _check_finite(owner, field, getattr(self, field))
            if not 0.0 < value < size:
                raise ValueError(
                    f"{owner}.{field}: principal point must be inside the image (0, {size}), "
                    f"got {value}"
                )
            object.__setattr__(self, field, value)
        _check_extrinsics(owner, self.extrinsics)

    @classmethod
    def from_fov(
        cls, name: str, width: int, height: int, fov_deg: float, extrinsics: SE3
    ) -> CameraSpec:
        """A camera with CARLA's intrinsics: horizontal field of view ``fov_deg`` [deg], square
        pixels (``fy = fx = width / (2 tan(fov / 2))``), principal point at the image centre."""
        fov = _check_finite(f"CameraSpec({name!r})", "fov_deg", fov_deg)
        if not 0.0 < fov < 180.0:
            raise ValueError(f"CameraSpec({name!r}).fov_deg: must be in (0, 180), got {fov}")
        w = _check_positive_int(f"CameraSpec({name!r})", "width", width)
        h = _check_positive_int(f"CameraSpec({name!r})", "height", height)
        f = w / (2.0 * math.tan(math.radians(fov) / 2.0))
        return cls(name, w, h, f, f, w / 2.0, h / 2.0, extrinsics)

    @property
    def horizontal_fov(self) -> float:
        """Horizontal field of view between the left and right image edges [rad]."""
        return math.atan(self.cx / self.fx) + math.atan((self.width - self.cx) / self.fx)

    @property
    def vertical_fov(self) -> float:
        """Vertical field of view between the top and bottom image edges [rad]."""
        return math.atan(self.cy / self.fy) + math.atan((self.height - self.cy) / self.fy)

    @property
    def image_shape(self) -> tuple[int, int]:
        """``(height, width)`` [px], the leading axes of the camera's image arrays."""
        return (self.height, self.width)

    def intrinsic_matrix(self) -> npt.NDArray[np.float64]:
        """The ``(3, 3)`` matrix K mapping optical-frame points to homogeneous pixels."""
        return np.array(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]],
            dtype=np.float64,
        )

    @cached_property
    def _optical_to_ego(self) -> SE3:
        return self.extrinsics @ _BODY_FROM_OPTICAL

    @cached_property
    def _ego_to_optical(self) -> SE3:
        return self._optical_to_ego.inverse()

    def optical_to_ego(self) -> SE3:
        """The transform from the optical frame (x right, y down, z forward) to the ego frame."""
        return self._optical_to_ego

    def ego_to_optical(self) -> SE3:
        """The transform from the ego frame to the optical frame (x right, y down, z forward)."""
        return self._ego_to_optical

    def project(
        self, points_ego: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Project ego-frame points ``(N, 3)`` [m] into the image.

        Returns ``uv (N, 2)`` [px], ``depth (N,)`` [m] (the optical-frame z, not the range) and
        ``valid (N,)``: the point is finite, in front of the camera (``depth > 0``) and lands
        inside ``[0, width) x [0, height)``. ``uv`` is NaN where ``depth <= 0`` and may lie outside
        the image elsewhere.
        """
        p = np.asarray(points_ego, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != 3:
            raise ValueError(f"CameraSpec.project: points_ego must be (N, 3), got {p.shape}")
        # Non-finite points are expected (sensor dropouts); they come out invalid, silently.
        with np.errstate(invalid="ignore", over="ignore"):
            p_opt = self.ego_to_optical().transform_points(p)
            depth = p_opt[:, 2].copy()
            in_front = depth > 0.0
            safe = np.where(in_front, depth, 1.0)
            uv = np.empty((p.shape[0], 2), dtype=np.float64)
            uv[:, 0] = np.where(in_front, self.fx * p_opt[:, 0] / safe + self.cx, np.nan)
            uv[:, 1] = np.where(in_front, self.fy * p_opt[:, 1] / safe + self.cy, np.nan)
            valid = (
                in_front
                & (uv[:, 0] >= 0.0)
                & (uv[:, 0] < self.width)
                & (uv[:, 1] >= 0.0)
                & (uv[:, 1] < self.height)
            )
        return uv, depth, valid

    def unproject(self, uv: npt.ArrayLike, depth: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Ego-frame points ``(N, 3)`` [m] from pixels ``uv (N, 2)`` and optical-frame
        ``depth (N,)`` [m]; the inverse of :meth:`project` for points in front of the camera."""
        q = np.asarray(uv, dtype=np.float64)
        d = np.asarray(depth, dtype=np.float64)
        if q.ndim != 2 or q.shape[1] != 2:
            raise ValueError(f"CameraSpec.unproject: uv must be (N, 2), got {q.shape}")
        if d.shape != (q.shape[0],):
            raise ValueError(f"CameraSpec.unproject: depth must be ({q.shape[0]},), got {d.shape}")
        p_opt = np.empty((q.shape[0], 3), dtype=np.float64)
        p_opt[:, 0] = (q[:, 0] - self.cx) / self.fx * d
        p_opt[:, 1] = (q[:, 1] - self.cy) / self.fy * d
        p_opt[:, 2] = d
        out: npt.NDArray[np.float64] = self.optical_to_ego().transform_points(p_opt)
        return out

    def allclose(self, other: CameraSpec, atol: float = 1e-9) -> bool:
        """Same name and size, and intrinsics and extrinsics equal within ``atol``."""
        return (
            self.name == other.name
            and self.width == other.width
            and self.height == other.height
            and bool(
                np.allclose(
                    [self.fx, self.fy, self.cx, self.cy],
                    [other.fx, other.fy, other.cx, other.cy],
                    rtol=0.0,
                    atol=atol,
                )
            )
            and self.extrinsics.allclose(other.extrinsics, atol=atol)
        )


@dataclass(frozen=True)
class LidarSpec:
    """A spinning multi-beam lidar in CARLA's ``sensor.lidar.ray_cast`` parametrisation.

    Beams are evenly spaced in elevation from ``lower_fov`` to ``upper_fov``; each turn fires
    :attr:`azimuth_count` times per beam, evenly spaced in azimuth. Points of a sweep are in the
    lidar body frame (x forward, y left, z up).
    """

    name: str
    """Unique name in the rig, e.g. ``"top"``."""
    extrinsics: SE3
    """Pose of the lidar body frame in the ego frame."""
    channels: int
    """Number of beams (lasers)."""
    upper_fov: float
    """Elevation of the highest beam above the horizontal [rad], in ``[-pi/2, pi/2]``."""
    lower_fov: float
    """Elevation of the lowest beam [rad], ``<= upper_fov`` (``<`` if more than one channel)."""
    range_min: float
    """Closest measured distance [m], ``>= 0``."""
    range_max: float
    """Farthest measured distance [m], ``> range_min``."""
    rotation_frequency: float
    """Turns per second [Hz]; one sweep is one turn."""
    points_per_second: int
    """Points fired per second by all beams together [1/s]."""

    def __post_init__(self) -> None:
        owner = f"LidarSpec({self.name!r})"
        _check_name("LidarSpec", self.name)
        _check_extrinsics(owner, self.extrinsics)
        object.__setattr__(self, "channels", _check_positive_int(owner, "channels", self.channels))
        for field in ("upper_fov", "lower_fov"):
            value = _check_finite(owner, field, getattr(self, field))
            if abs(value) > math.pi / 2.0 + 1e-12:
                raise ValueError(f"{owner}.{field}: must be in [-pi/2, pi/2] rad, got {value}")
            object.__setattr__(self, field, value)
        if self.upper_fov < self.lower_fov or (
            self.channels > 1 and self.upper_fov == self.lower_fov
        ):
            raise ValueError(
                f"{owner}.upper_fov: must be above lower_fov={self.lower_fov} rad "
                f"with {self.channels} channels, got {self.upper_fov}"
            )
        rmin = _check_finite(owner, "range_min", self.range_min)
        rmax = _check_finite(owner, "range_max", self.range_max)
        if rmin < 0.0:
            raise ValueError(f"{owner}.range_min: must be >= 0 m, got {rmin}")
        if rmax <= rmin:
            raise ValueError(f"{owner}.range_max: must exceed range_min={rmin} m, got {rmax}")
        object.__setattr__(self, "range_min", rmin)
        object.__setattr__(self, "range_max", rmax)
        freq = _check_finite(owner, "rotation_frequency", self.rotation_frequency)
        if freq <= 0.0:
            raise ValueError(f"{owner}.rotation_frequency: must be positive, got {freq}")
        object.__setattr__(self, "rotation_frequency", freq)
        pps = _check_positive_int(owner, "points_per_second", self.points_per_second)
        object.__setattr__(self, "points_per_second", pps)
        if self.azimuth_count < 1:
            raise ValueError(
                f"{owner}.points_per_second: {pps} is fewer than one point per channel per turn "
                f"({self.channels} channels at {freq} Hz)"
            )

    @property
    def azimuth_count(self) -> int:
        """Firings per beam per turn, ``floor(points_per_second / (frequency * channels))``."""
        return int(self.points_per_second // (self.rotation_frequency * self.channels))

    @property
    def horizontal_resolution(self) -> float:
        """Azimuth step between firings of one beam [rad]."""
        return 2.0 * math.pi / self.azimuth_count

    @property
    def vertical_resolution(self) -> float:
        """Elevation step between adjacent beams [rad] (0 for one channel)."""
        if self.channels == 1:
            return 0.0
        return (self.upper_fov - self.lower_fov) / (self.channels - 1)

    @property
    def points_per_sweep(self) -> int:
        """Rays in one full turn: ``channels * azimuth_count``."""
        return self.channels * self.azimuth_count

    def elevation_angles(self) -> npt.NDArray[np.float64]:
        """``(channels,)`` beam elevations [rad], ascending: channel 0 is the lowest beam.

        One channel points at the middle of ``[lower_fov, upper_fov]``.
        """
        if self.channels == 1:
            return np.array([(self.upper_fov + self.lower_fov) / 2.0], dtype=np.float64)
        return np.linspace(self.lower_fov, self.upper_fov, self.channels, dtype=np.float64)

    def azimuth_angles(self) -> npt.NDArray[np.float64]:
        """``(azimuth_count,)`` firing azimuths [rad] in ``[-pi, pi)``, counter-clockwise
        from +x."""
        k = np.arange(self.azimuth_count, dtype=np.float64)
        return -math.pi + k * self.horizontal_resolution

    def allclose(self, other: LidarSpec, atol: float = 1e-9) -> bool:
        """Same name and integer parameters, float parameters and extrinsics within ``atol``."""
        floats = ("upper_fov", "lower_fov", "range_min", "range_max", "rotation_frequency")
        return (
            self.name == other.name
            and self.channels == other.channels
            and self.points_per_second == other.points_per_second
            and all(abs(getattr(self, f) - getattr(other, f)) <= atol for f in floats)
            and self.extrinsics.allclose(other.extrinsics, atol=atol)
        )


_CAMERA_KEYS = ("name", "width", "height", "fov_deg", "fx", "fy", "cx", "cy", "extrinsics")
_LIDAR_KEYS = (
    "name",
    "channels",
    "upper_fov_deg",
    "lower_fov_deg",
    "range_min",
    "range_max",
    "rotation_frequency",
    "points_per_second",
    "extrinsics",
)


def _check_keys(where: str, d: object, allowed: tuple[str, ...], required: tuple[str, ...]) -> None:
    if not isinstance(d, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(d).__name__} {d!r}")
    unknown = sorted(str(k) for k in set(d) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; allowed keys are {list(allowed)}")
    for key in required:
        if key not in d:
            raise ValueError(f"{where}.{key}: missing")


def _camera_from_dict(d: Mapping[str, Any], where: str) -> CameraSpec:
    _check_keys(where, d, _CAMERA_KEYS, ("name", "width", "height"))
    extrinsics = se3_from_dict(d.get("extrinsics", {}), f"{where}.extrinsics")
    pinhole = [k for k in ("fx", "fy", "cx", "cy") if k in d]
    try:
        if "fov_deg" in d:
            if pinhole:
                raise ValueError(f"give either fov_deg or fx, fy, cx, cy, not both ({pinhole})")
            return CameraSpec.from_fov(d["name"], d["width"], d["height"], d["fov_deg"], extrinsics)
        missing = [k for k in ("fx", "fy", "cx", "cy") if k not in d]
        if missing:
            raise ValueError(f"missing {missing} (give fov_deg or all of fx, fy, cx, cy)")
        return CameraSpec(
            d["name"], d["width"], d["height"], d["fx"], d["fy"], d["cx"], d["cy"], extrinsics
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from exc


def _camera_to_dict(c: CameraSpec) -> dict[str, Any]:
    return {
        "name": c.name,
        "width": c.width,
        "height": c.height,
        "fx": c.fx,
        "fy": c.fy,
        "cx": c.cx,
        "cy": c.cy,
        "extrinsics": se3_to_dict(c.extrinsics),
    }


def _lidar_from_dict(d: Mapping[str, Any], where: str) -> LidarSpec:
    _check_keys(where, d, _LIDAR_KEYS, tuple(k for k in _LIDAR_KEYS if k != "extrinsics"))
    extrinsics = se3_from_dict(d.get("extrinsics", {}), f"{where}.extrinsics")
    upper = _check_finite(where, "upper_fov_deg", d["upper_fov_deg"])
    lower = _check_finite(where, "lower_fov_deg", d["lower_fov_deg"])
    try:
        return LidarSpec(
            name=d["name"],
            extrinsics=extrinsics,
            channels=d["channels"],
            upper_fov=math.radians(upper),
            lower_fov=math.radians(lower),
            range_min=d["range_min"],
            range_max=d["range_max"],
            rotation_frequency=d["rotation_frequency"],
            points_per_second=d["points_per_second"],
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from exc


def _lidar_to_dict(lidar: LidarSpec) -> dict[str, Any]:
    return {
        "name": lidar.name,
        "channels": lidar.channels,
        "upper_fov_deg": math.degrees(lidar.upper_fov),
        "lower_fov_deg": math.degrees(lidar.lower_fov),
        "range_min": lidar.range_min,
        "range_max": lidar.range_max,
        "rotation_frequency": lidar.rotation_frequency,
        "points_per_second": lidar.points_per_second,
        "extrinsics": se3_to_dict(lidar.extrinsics),
    }


@dataclass(frozen=True)
class SensorRig:
    """The calibrated sensors of a vehicle. Names are unique across cameras and lidars."""

    cameras: tuple[CameraSpec, ...] = ()
    """Cameras, in a fixed order (the order of the encoders' camera axis)."""
    lidars: tuple[LidarSpec, ...] = ()
    """Lidars, in a fixed order."""

    def __post_init__(self) -> None:
        cameras = tuple(self.cameras)
        lidars = tuple(self.lidars)
        for i, c in enumerate(cameras):
            if not isinstance(c, CameraSpec):
                raise TypeError(
                    f"SensorRig.cameras[{i}]: expected CameraSpec, got {type(c).__name__}"
                )
        for i, lidar in enumerate(lidars):
            if not isinstance(lidar, LidarSpec):
                raise TypeError(
                    f"SensorRig.lidars[{i}]: expected LidarSpec, got {type(lidar).__name__}"
                )
        seen: set[str] = set()
        for name in (*(c.name for c in cameras), *(x.name for x in lidars)):
            if name in seen:
                raise ValueError(f"SensorRig: duplicate sensor name {name!r}")
            seen.add(name)
        object.__setattr__(self, "cameras", cameras)
        object.__setattr__(self, "lidars", lidars)

    @property
    def camera_names(self) -> tuple[str, ...]:
        """Names of the cameras, in order."""
        return tuple(c.name for c in self.cameras)

    @property
    def lidar_names(self) -> tuple[str, ...]:
        """Names of the lidars, in order."""
        return tuple(lidar.name for lidar in self.lidars)

    def camera(self, name: str) -> CameraSpec:
        """The camera called ``name``; ``KeyError`` naming the available cameras otherwise."""
        for c in self.cameras:
            if c.name == name:
                return c
        raise KeyError(f"no camera {name!r} in the rig; cameras are {list(self.camera_names)}")

    def lidar(self, name: str) -> LidarSpec:
        """The lidar called ``name``; ``KeyError`` naming the available lidars otherwise."""
        for lidar in self.lidars:
            if lidar.name == name:
                return lidar
        raise KeyError(f"no lidar {name!r} in the rig; lidars are {list(self.lidar_names)}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SensorRig:
        """A rig from its plain-data form (see the module docstring); errors name the field."""
        _check_keys("sensor rig", d, ("cameras", "lidars"), ())
        cams = d.get("cameras") or []
        lids = d.get("lidars") or []
        if not isinstance(cams, list):
            raise ValueError(f"cameras: expected a list, got {type(cams).__name__}")
        if not isinstance(lids, list):
            raise ValueError(f"lidars: expected a list, got {type(lids).__name__}")
        return cls(
            cameras=tuple(_camera_from_dict(c, f"cameras[{i}]") for i, c in enumerate(cams)),
            lidars=tuple(_lidar_from_dict(x, f"lidars[{i}]") for i, x in enumerate(lids)),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (lists, dicts, numbers, strings): intrinsics as fx, fy, cx, cy, angles
        in degrees; :meth:`from_dict` reads it back."""
        return {
            "cameras": [_camera_to_dict(c) for c in self.cameras],
            "lidars": [_lidar_to_dict(x) for x in self.lidars],
        }

    def allclose(self, other: SensorRig, atol: float = 1e-9) -> bool:
        """Same sensors in the same order, parameters within ``atol``."""
        return (
            len(self.cameras) == len(other.cameras)
            and len(self.lidars) == len(other.lidars)
            and all(a.allclose(b, atol) for a, b in zip(self.cameras, other.cameras, strict=True))
            and all(a.allclose(b, atol) for a, b in zip(self.lidars, other.lidars, strict=True))
        )


def load_sensor_rig(path: str | Path) -> SensorRig:
    """Read a rig from a YAML file; errors name the file and the field."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise FileNotFoundError(f"{p}: cannot read sensor rig: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{p}: invalid YAML: {exc}") from exc
    if data is None:
        raise ValueError(f"{p}: empty sensor rig file")
    try:
        return SensorRig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{p}: {exc}") from exc


def dump_sensor_rig(rig: SensorRig, path: str | Path) -> None:
    """Write a rig as YAML in the form :func:`load_sensor_rig` reads."""
    Path(path).write_text(yaml.safe_dump(rig.to_dict(), sort_keys=False), encoding="utf-8")
