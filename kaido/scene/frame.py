"""One timestamped snapshot of everything the stack sees: sensor data, ego state, calibration.

Frames and units follow :mod:`kaido.scene.sensors` and :mod:`kaido.scene.agents`: the ego frame is
ISO 8855 (x forward, y left, z up) with its origin at the rear-axle centre on the ground; lidar
points are in their lidar's body frame; ground truth is in the world frame; times are ``int``
nanoseconds.

Arrays are validated where they enter (``__post_init__``): every shape and dtype is checked and an
error names the field and the sensor. Arrays are kept as read-only views of the caller's buffers
(no copy), so a frame never changes what it was given; callers must not modify those buffers
afterwards either. Non-finite lidar points or depths are accepted at construction (the runtime
degrades on them); :meth:`Frame.check_finite` lists where they are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from kaido.scene.agents import AgentIndex, AgentState, EgoState
from kaido.scene.sensors import SensorRig

__all__ = [
    "CameraImage",
    "Frame",
    "GroundTruth",
    "LidarIndex",
    "LidarSweep",
    "TrafficLightColor",
    "TrafficLightState",
]


class TrafficLightColor(IntEnum):
    """State of a traffic light's signal; ``OFF`` is dark, ``UNKNOWN`` is unobserved."""

    RED = 0
    YELLOW = 1
    GREEN = 2
    OFF = 3
    UNKNOWN = 4


class LidarIndex(IntEnum):
    """Columns of a lidar point ``(N, len(LidarIndex))``: position [m] in the lidar body frame
    (x forward, y left, z up) and return intensity (unitless, sensor-specific scale)."""

    X = 0
    Y = 1
    Z = 2
    INTENSITY = 3


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {value.shape}"
    return f"{type(value).__name__} (not an ndarray)"


def _readonly(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    view = arr.view()
    view.flags.writeable = False
    return view


def _check_int(where: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{where}: expected an int, got {type(value).__name__} {value!r}")
    return int(value)


def _check_array(
    where: str, value: object, dtype: type[np.generic], shape: tuple[int | str, ...]
) -> npt.NDArray[Any]:
    """``value`` as a read-only view, if it is an ndarray of ``dtype`` matching ``shape``
    (an axis given by name, e.g. ``"N"``, matches any length)."""
    ok = (
        isinstance(value, np.ndarray)
        and value.dtype == dtype
        and value.ndim == len(shape)
        and all(isinstance(s, str) or s == n for s, n in zip(shape, value.shape, strict=False))
    )
    if not ok:
        want = "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise ValueError(f"{where}: expected {np.dtype(dtype)} {want}, got {_describe(value)}")
    assert isinstance(value, np.ndarray)
    return _readonly(value)


@dataclass(frozen=True, eq=False)
class TrafficLightState:
    """One traffic light (signal head group) and what it shows, in the world frame."""

    light_id: str | int
    """Identity of the light, stable over a scene (e.g. OpenDRIVE signal id)."""
    color: TrafficLightColor
    """What the light shows."""
    position: tuple[float, float, float]
    """(x, y, z) of the light in the world frame [m]."""
    stop_line: npt.NDArray[np.float64] | None = None
    """``(2, 2)`` float64 end points ``[[x0, y0], [x1, y1]]`` of its stop line, world [m]."""
    affected_lane_ids: tuple[str | int, ...] = ()
    """Lanes the light controls (road-map lane ids)."""

    def __post_init__(self) -> None:
        where = f"TrafficLightState({self.light_id!r})"
        if isinstance(self.light_id, bool) or not isinstance(self.light_id, str | int):
            raise TypeError(
                f"TrafficLightState.light_id: expected str or int, got {self.light_id!r}"
            )
        try:
            object.__setattr__(self, "color", TrafficLightColor(self.color))
        except ValueError as exc:
            raise ValueError(f"{where}.color: {self.color!r} is not a TrafficLightColor") from exc
        pos = tuple(self.position)
        if len(pos) != 3 or not all(
            isinstance(v, int | float | np.integer | np.floating) and math.isfinite(v) for v in pos
        ):
            raise ValueError(f"{where}.position: expected 3 finite numbers, got {self.position!r}")
        object.__setattr__(self, "position", tuple(float(v) for v in pos))
        if self.stop_line is not None:
            line = _check_array(f"{where}.stop_line", self.stop_line, np.float64, (2, 2))
            if not np.all(np.isfinite(line)):
                raise ValueError(f"{where}.stop_line: must be finite, got {line.tolist()}")
            object.__setattr__(self, "stop_line", line)
        lanes = tuple(self.affected_lane_ids)
        for i, lane in enumerate(lanes):
            if isinstance(lane, bool) or not isinstance(lane, str | int):
                raise TypeError(
                    f"{where}.affected_lane_ids[{i}]: expected str or int, got {lane!r}"
                )
        object.__setattr__(self, "affected_lane_ids", lanes)


@dataclass(frozen=True, eq=False)
class CameraImage:
    """One camera exposure. ``H, W`` are the camera's image height and width [px]."""

    camera: str
    """Name of the camera in the rig."""
    timestamp_ns: int
    """Exposure time [ns]."""
    rgb: npt.NDArray[np.uint8]
    """``(H, W, 3)`` uint8, RGB channel order."""
    depth: npt.NDArray[np.float32] | None = None
    """``(H, W)`` float32 optical-frame depth (z, not range) per pixel [m]."""
    semantic: npt.NDArray[np.uint8] | None = None
    """``(H, W)`` uint8 semantic class per pixel."""

    def __post_init__(self) -> None:
        if not isinstance(self.camera, str) or not self.camera:
            raise ValueError(
                f"CameraImage.camera: expected a non-empty string, got {self.camera!r}"
            )
        where = f"CameraImage[{self.camera!r}]"
        object.__setattr__(
            self, "timestamp_ns", _check_int(f"{where}.timestamp_ns", self.timestamp_ns)
        )
        rgb = _check_array(f"{where}.rgb", self.rgb, np.uint8, ("H", "W", 3))
        object.__setattr__(self, "rgb", rgb)
        hw = (rgb.shape[0], rgb.shape[1])
        if self.depth is not None:
            object.__setattr__(
                self, "depth", _check_array(f"{where}.depth", self.depth, np.float32, hw)
            )
        if self.semantic is not None:
            object.__setattr__(
                self, "semantic", _check_array(f"{where}.semantic", self.semantic, np.uint8, hw)
            )

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` [px]."""
        return (int(self.rgb.shape[0]), int(self.rgb.shape[1]))


@dataclass(frozen=True, eq=False)
class LidarSweep:
    """One lidar sweep: ``N`` returns in the lidar's body frame (x forward, y left, z up)."""

    lidar: str
    """Name of the lidar in the rig."""
    timestamp_ns: int
    """Time of the sweep [ns] (end of the turn)."""
    points: npt.NDArray[np.float32]
    """``(N, len(LidarIndex))`` float32, columns per :class:`LidarIndex`; may hold NaN/inf."""
    semantic: npt.NDArray[np.uint8] | None = None
    """``(N,)`` uint8 semantic class per point."""

    def __post_init__(self) -> None:
        if not isinstance(self.lidar, str) or not self.lidar:
            raise ValueError(f"LidarSweep.lidar: expected a non-empty string, got {self.lidar!r}")
        where = f"LidarSweep[{self.lidar!r}]"
        object.__setattr__(
            self, "timestamp_ns", _check_int(f"{where}.timestamp_ns", self.timestamp_ns)
        )
        points = _check_array(f"{where}.points", self.points, np.float32, ("N", len(LidarIndex)))
        object.__setattr__(self, "points", points)
        if self.semantic is not None:
            object.__setattr__(
                self,
                "semantic",
                _check_array(f"{where}.semantic", self.semantic, np.uint8, (points.shape[0],)),
            )

    def __len__(self) -> int:
        return int(self.points.shape[0])

    @property
    def xyz(self) -> npt.NDArray[np.float32]:
        """``(N, 3)`` float32 positions in the lidar body frame [m] (a read-only view)."""
        return self.points[:, LidarIndex.X : LidarIndex.Z + 1]


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """Privileged world state, in the world frame: agents and traffic lights."""

    agents: tuple[AgentState, ...] = ()
    """Agents other than the ego; track ids unique."""
    traffic_lights: tuple[TrafficLightState, ...] = ()
    """Traffic lights; light ids unique."""

    def __post_init__(self) -> None:
        agents = tuple(self.agents)
        ids: set[int] = set()
        for i, a in enumerate(agents):
            if not isinstance(a, AgentState):
                raise TypeError(
                    f"GroundTruth.agents[{i}]: expected AgentState, got {type(a).__name__}"
                )
            if a.track_id in ids:
                raise ValueError(f"GroundTruth.agents[{i}]: duplicate track_id {a.track_id}")
            ids.add(a.track_id)
        lights = tuple(self.traffic_lights)
        light_ids: set[str | int] = set()
        for i, light in enumerate(lights):
            if not isinstance(light, TrafficLightState):
                raise TypeError(
                    f"GroundTruth.traffic_lights[{i}]: expected TrafficLightState, "
                    f"got {type(light).__name__}"
                )
            if light.light_id in light_ids:
                raise ValueError(
                    f"GroundTruth.traffic_lights[{i}]: duplicate light_id {light.light_id!r}"
                )
            light_ids.add(light.light_id)
        object.__setattr__(self, "agents", agents)
        object.__setattr__(self, "traffic_lights", lights)

    def agents_array(self) -> npt.NDArray[np.float64]:
        """``(A, len(AgentIndex))`` float64 packed agent states, in ``agents`` order."""
        if not self.agents:
            return np.zeros((0, len(AgentIndex)), dtype=np.float64)
        return np.stack([a.as_array() for a in self.agents])


@dataclass(frozen=True, eq=False)
class Frame:
    """Everything observed at one tick.

    ``images`` and ``lidar`` hold at most one entry per sensor of ``rig``, keyed by the sensor's
    name; a sensor may be absent from a frame (dropped or disabled), never unknown to the rig.
    Sensor timestamps may differ from the frame's (exposure and sweep times).
    """

    timestamp_ns: int
    """Time of the tick [ns]; ``ego`` is the ego state at this time."""
    ego: EgoState
    """Ego state."""
    images: Mapping[str, CameraImage]
    """Camera name → image; each image matches its camera's size in ``rig``."""
    lidar: Mapping[str, LidarSweep]
    """Lidar name → sweep."""
    rig: SensorRig
    """Calibration of the sensors."""
    ground_truth: GroundTruth | None = field(default=None)
    """Privileged world state where the source has it (simulators, labelled logs)."""

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "timestamp_ns", _check_int("Frame.timestamp_ns", self.timestamp_ns)
        )
        if not isinstance(self.ego, EgoState):
            raise TypeError(f"Frame.ego: expected EgoState, got {type(self.ego).__name__}")
        if not isinstance(self.rig, SensorRig):
            raise TypeError(f"Frame.rig: expected SensorRig, got {type(self.rig).__name__}")
        if self.ground_truth is not None and not isinstance(self.ground_truth, GroundTruth):
            raise TypeError(
                f"Frame.ground_truth: expected GroundTruth or None, "
                f"got {type(self.ground_truth).__name__}"
            )
        object.__setattr__(self, "images", MappingProxyType(self._checked_images()))
        object.__setattr__(self, "lidar", MappingProxyType(self._checked_lidar()))

    def _checked_images(self) -> dict[str, CameraImage]:
        if not isinstance(self.images, Mapping):
            raise TypeError(f"Frame.images: expected a mapping, got {type(self.images).__name__}")
        out: dict[str, CameraImage] = {}
        for name, image in self.images.items():
            where = f"Frame.images[{name!r}]"
            if not isinstance(image, CameraImage):
                raise TypeError(f"{where}: expected CameraImage, got {type(image).__name__}")
            if image.camera != name:
                raise ValueError(f"{where}.camera: {image.camera!r} does not match its key")
            if name not in self.rig.camera_names:
                raise ValueError(
                    f"{where}: no camera {name!r} in the rig; "
                    f"cameras are {list(self.rig.camera_names)}"
                )
            spec = self.rig.camera(name)
            hw = spec.image_shape
            _check_rig_array(f"{where}.rgb", image.rgb, np.uint8, (*hw, 3))
            if image.depth is not None:
                _check_rig_array(f"{where}.depth", image.depth, np.float32, hw)
            if image.semantic is not None:
                _check_rig_array(f"{where}.semantic", image.semantic, np.uint8, hw)
            out[name] = image
        return out

    def _checked_lidar(self) -> dict[str, LidarSweep]:
        if not isinstance(self.lidar, Mapping):
            raise TypeError(f"Frame.lidar: expected a mapping, got {type(self.lidar).__name__}")
        out: dict[str, LidarSweep] = {}
        for name, sweep in self.lidar.items():
            where = f"Frame.lidar[{name!r}]"
            if not isinstance(sweep, LidarSweep):
                raise TypeError(f"{where}: expected LidarSweep, got {type(sweep).__name__}")
            if sweep.lidar != name:
                raise ValueError(f"{where}.lidar: {sweep.lidar!r} does not match its key")
            if name not in self.rig.lidar_names:
                raise ValueError(
                    f"{where}: no lidar {name!r} in the rig; "
                    f"lidars are {list(self.rig.lidar_names)}"
                )
            out[name] = sweep
        return out

    def lidar_points_ego(self, name: str) -> npt.NDArray[np.float64]:
        """``(N, 3)`` float64 positions of lidar ``name``'s sweep in the ego frame [m]."""
        if name not in self.lidar:
            raise KeyError(f"no sweep from lidar {name!r} in this frame; have {list(self.lidar)}")
        xyz = np.asarray(self.lidar[name].xyz, dtype=np.float64)
        out: npt.NDArray[np.float64] = self.rig.lidar(name).extrinsics.transform_points(xyz)
        return out

    def check_finite(self) -> list[str]:
        """Names of the fields holding NaN or inf, e.g. ``["Frame.lidar['top'].points"]``.

        Poses and boxes are finite by construction; this covers ego velocity, acceleration,
        yaw rate and steering angle, camera depth, lidar points and ground-truth velocities.
        """
        bad: list[str] = []
        ego = self.ego
        ego_fields: dict[str, tuple[float, ...]] = {
            "velocity": ego.velocity,
            "acceleration": ego.acceleration,
            "yaw_rate": (ego.yaw_rate,),
            "steering_angle": (ego.steering_angle,),
        }
        for name, values in ego_fields.items():
            if not all(math.isfinite(v) for v in values):
                bad.append(f"Frame.ego.{name}")
        for name, image in self.images.items():
            if image.depth is not None and not bool(np.all(np.isfinite(image.depth))):
                bad.append(f"Frame.images[{name!r}].depth")
        for name, sweep in self.lidar.items():
            if not bool(np.all(np.isfinite(sweep.points))):
                bad.append(f"Frame.lidar[{name!r}].points")
        if self.ground_truth is not None:
            for i, agent in enumerate(self.ground_truth.agents):
                if not all(math.isfinite(v) for v in agent.velocity):
                    bad.append(f"Frame.ground_truth.agents[{i}].velocity")
        return bad


def _check_rig_array(
    where: str, value: npt.NDArray[Any], dtype: type[np.generic], shape: tuple[int, ...]
) -> None:
    if value.dtype != dtype or value.shape != shape:
        raise ValueError(
            f"{where}: expected {np.dtype(dtype)} {shape} per the rig, "
            f"got {value.dtype} {value.shape}"
        )
