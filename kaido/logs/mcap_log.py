"""Episode logs: MCAP files with Foxglove schemas, written tick by tick and read back robustly.

An :class:`EpisodeRecorder` writes one closed-loop episode to an `MCAP <https://mcap.dev>`_ file
that opens directly in Foxglove (3D, Image, Plot, Raw Messages panels); :func:`read_log` streams
it back, and a truncated file (a run killed mid-write) reads up to its last whole message and says
where it broke (:func:`read_log_with_report`). Reading never unpickles anything: messages are
protobuf (decoded from the schema stored in the file) or JSON.

Topics
------
Sensor data and scene markers use the Foxglove protobuf schemas (message encoding ``protobuf``):

* ``/tf`` (foxglove.FrameTransforms), every tick: ``world`` → ``ego`` (``frame.ego.pose``),
  ``ego`` → ``camera_<name>`` and ``ego`` → ``lidar_<name>`` (the rig's extrinsics).
* ``/camera/<name>/image`` (foxglove.CompressedImage): JPEG, ``frame_id`` ``camera_<name>``.
* ``/camera/<name>/calibration`` (foxglove.CameraCalibration): with every image; K, R, P of the
  pinhole, no distortion.
* ``/lidar/<name>`` (foxglove.PointCloud): fields ``x``, ``y``, ``z``, ``intensity`` float32
  (+ ``semantic`` uint8 when the sweep has it), packed little-endian; ``frame_id``
  ``lidar_<name>``.
* ``/scene/agents`` (foxglove.SceneUpdate), every tick: one entity per ground-truth agent (id
  ``agent/<track_id>``, a cube coloured by class, metadata class/track_id/speed) and the ego box
  (id ``ego``); the entities of earlier ticks are deleted.
* ``/scene/traffic_lights`` (foxglove.SceneUpdate), every tick that has ground truth: a sphere per
  light (id ``traffic_light/<id>``) and its stop line, coloured by state.
* ``/scene/route`` (foxglove.SceneUpdate): the route as a line strip (id ``route``), written when
  given and different from the last one written.
* ``/scene/plan`` (foxglove.SceneUpdate): the planned path as a line strip (id ``plan``).

kaido's own messages are JSON (message encoding ``json``, schema encoding ``jsonschema``; Foxglove
plots them). Times are ``{"sec", "nsec"}`` objects (Foxglove's time type); non-finite numbers are
written as ``null`` (JSON has no NaN):

* ``/kaido/ego_state`` (kaido.EgoState): ``timestamp``, ``x``, ``y`` [m], ``yaw`` [rad] of the
  rear axle in the world frame, ``vx``, ``vy`` [m/s], ``ax``, ``ay`` [m/s²] in the ego frame,
  ``yaw_rate`` [rad/s], ``steering_angle`` [rad] (positive left), ``speed`` [m/s].
* ``/kaido/control`` (kaido.Control): ``timestamp``, ``throttle``, ``steer`` (CARLA: +1 = full
  right), ``brake``, ``reverse``, ``hand_brake``.
* ``/kaido/plan`` (kaido.Plan): ``timestamp``, ``frame_id`` (``world``), ``points``: list of
  ``{x, y [m], yaw [rad]}``.
* ``/kaido/metrics`` (kaido.Metrics): ``timestamp`` and the tick's ``extra`` numbers, flat.
* ``/kaido/events`` (kaido.Event): ``timestamp``, ``kind``, ``message``, ``data`` (an object).

Frames: ``world`` is kaido's world frame (x east, y north, z up); ``ego`` the ego frame (x
forward, y left, z up, origin at the rear axle on the ground); ``camera_<name>`` a camera's
OpenCV optical frame (x right, y down, z forward), as Foxglove expects for images;
``lidar_<name>`` a lidar's body frame. Every scene entity is in ``world``.

Each message's ``log_time`` and ``publish_time`` are the simulation time of its tick [ns], and so
are the protobuf ``timestamp`` fields, except those of images, calibrations and point clouds,
which carry the sensor's own time (exposure, end of sweep). The file also holds one metadata record
``kaido``: the caller's provenance strings plus ``log_format`` and ``sensor_rig`` (the rig as JSON,
in :meth:`~kaido.scene.sensors.SensorRig.to_dict` form).

Reading: :func:`read_log` yields :class:`LogMessage` in file order (protobuf messages decoded with
the descriptors stored in the file, JSON as dicts); :func:`decode_point_cloud` and
:func:`decode_image` turn sensor messages back into arrays; :func:`log_summary` counts messages per
topic without decoding them.

Crash safety: every tick (and every event) is written as its own MCAP chunk (zstd-compressed, with
message indexes) and the file is flushed before :meth:`EpisodeRecorder.write_tick` returns, so a
process killed with SIGKILL leaves a file whose complete ticks all read back. (The operating
system still holds the data in its page cache; a power loss may lose the last ticks.) A file
closed normally also has the summary section (chunk indexes, statistics) Foxglove uses to seek.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt
from foxglove_schemas_protobuf.CameraCalibration_pb2 import CameraCalibration
from foxglove_schemas_protobuf.Color_pb2 import Color
from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage
from foxglove_schemas_protobuf.CubePrimitive_pb2 import CubePrimitive
from foxglove_schemas_protobuf.FrameTransform_pb2 import FrameTransform
from foxglove_schemas_protobuf.FrameTransforms_pb2 import FrameTransforms
from foxglove_schemas_protobuf.KeyValuePair_pb2 import KeyValuePair
from foxglove_schemas_protobuf.LinePrimitive_pb2 import LinePrimitive
from foxglove_schemas_protobuf.PackedElementField_pb2 import PackedElementField
from foxglove_schemas_protobuf.Point3_pb2 import Point3
from foxglove_schemas_protobuf.PointCloud_pb2 import PointCloud
from foxglove_schemas_protobuf.Pose_pb2 import Pose
from foxglove_schemas_protobuf.Quaternion_pb2 import Quaternion as PbQuaternion
from foxglove_schemas_protobuf.SceneEntity_pb2 import SceneEntity
from foxglove_schemas_protobuf.SceneEntityDeletion_pb2 import SceneEntityDeletion
from foxglove_schemas_protobuf.SceneUpdate_pb2 import SceneUpdate
from foxglove_schemas_protobuf.SpherePrimitive_pb2 import SpherePrimitive
from foxglove_schemas_protobuf.Vector3_pb2 import Vector3
from google.protobuf.message import Message as PbMessage
from google.protobuf.timestamp_pb2 import Timestamp
from mcap.data_stream import ReadDataStream
from mcap.opcode import Opcode
from mcap.records import Channel, Chunk, Footer, Message, Metadata, Schema
from mcap.stream_reader import breakup_chunk
from mcap.writer import LIBRARY_IDENTIFIER, CompressionType
from mcap.writer import Writer as McapWriter
from mcap_protobuf.decoder import DecoderFactory
from mcap_protobuf.schema import build_file_descriptor_set

from kaido import __version__
from kaido.scene.agents import AgentClass, Control
from kaido.scene.frame import (
    CameraImage,
    Frame,
    LidarIndex,
    LidarSweep,
    TrafficLightColor,
    TrafficLightState,
)
from kaido.scene.geometry import SE3, Box3D
from kaido.scene.sensors import CameraSpec, SensorRig

__all__ = [
    "AGENT_CLASS_RGB",
    "EGO_RGB",
    "LOG_FORMAT",
    "METADATA_NAME",
    "TOPIC_AGENTS",
    "TOPIC_CONTROL",
    "TOPIC_EGO_STATE",
    "TOPIC_EVENTS",
    "TOPIC_METRICS",
    "TOPIC_PLAN",
    "TOPIC_ROUTE",
    "TOPIC_SCENE_PLAN",
    "TOPIC_TF",
    "TOPIC_TRAFFIC_LIGHTS",
    "TRAFFIC_LIGHT_RGB",
    "EpisodeRecorder",
    "LogMessage",
    "LogReadReport",
    "PlanIndex",
    "camera_calibration_topic",
    "camera_frame_id",
    "camera_image_topic",
    "decode_image",
    "decode_point_cloud",
    "lidar_frame_id",
    "lidar_topic",
    "log_summary",
    "read_log",
    "read_log_with_report",
]

LOG_FORMAT: Final = "kaido-episode/1"
"""Value of the ``log_format`` metadata key; changes when the topics change incompatibly."""
METADATA_NAME: Final = "kaido"
"""Name of the metadata record holding provenance, ``log_format`` and ``sensor_rig``."""
WORLD_FRAME: Final = "world"
EGO_FRAME: Final = "ego"

TOPIC_TF: Final = "/tf"
TOPIC_AGENTS: Final = "/scene/agents"
TOPIC_TRAFFIC_LIGHTS: Final = "/scene/traffic_lights"
TOPIC_ROUTE: Final = "/scene/route"
TOPIC_SCENE_PLAN: Final = "/scene/plan"
TOPIC_EGO_STATE: Final = "/kaido/ego_state"
TOPIC_CONTROL: Final = "/kaido/control"
TOPIC_PLAN: Final = "/kaido/plan"
TOPIC_METRICS: Final = "/kaido/metrics"
TOPIC_EVENTS: Final = "/kaido/events"

AGENT_CLASS_RGB: Final[Mapping[AgentClass, tuple[int, int, int]]] = {
    AgentClass.VEHICLE: (70, 130, 255),
    AgentClass.PEDESTRIAN: (255, 120, 40),
    AgentClass.CYCLIST: (230, 60, 230),
    AgentClass.STATIC: (150, 150, 150),
    AgentClass.UNKNOWN: (200, 200, 80),
}
"""Display colour (R, G, B in 0..255) of each agent class, shared by the log and the BEV video."""
EGO_RGB: Final = (40, 220, 90)
"""Display colour of the ego vehicle."""
TRAFFIC_LIGHT_RGB: Final[Mapping[TrafficLightColor, tuple[int, int, int]]] = {
    TrafficLightColor.RED: (255, 0, 0),
    TrafficLightColor.YELLOW: (255, 200, 0),
    TrafficLightColor.GREEN: (0, 230, 0),
    TrafficLightColor.OFF: (60, 60, 60),
    TrafficLightColor.UNKNOWN: (170, 170, 170),
}
"""Display colour of each traffic-light state."""
_ROUTE_RGB: Final = (60, 200, 255)
_PLAN_RGB: Final = (255, 60, 200)


class PlanIndex(IntEnum):
    """Columns of a plan or route path ``(T, len(PlanIndex))``: world-frame x, y [m], yaw [rad]."""

    X = 0
    Y = 1
    YAW = 2


def camera_image_topic(name: str) -> str:
    """Topic of camera ``name``'s images."""
    return f"/camera/{name}/image"


def camera_calibration_topic(name: str) -> str:
    """Topic of camera ``name``'s calibration."""
    return f"/camera/{name}/calibration"


def lidar_topic(name: str) -> str:
    """Topic of lidar ``name``'s sweeps."""
    return f"/lidar/{name}"


def camera_frame_id(name: str) -> str:
    """Transform-tree frame of camera ``name``'s optical frame (x right, y down, z forward)."""
    return f"camera_{name}"


def lidar_frame_id(name: str) -> str:
    """Transform-tree frame of lidar ``name``'s body frame (x forward, y left, z up)."""
    return f"lidar_{name}"


# -- JSON schemas ------------------------------------------------------------------------------

_TIME_SCHEMA: Final = {
    "type": "object",
    "properties": {"sec": {"type": "integer"}, "nsec": {"type": "integer"}},
    "required": ["sec", "nsec"],
}
_NUMBER: Final = {"type": ["number", "null"]}


def _object_schema(title: str, properties: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "type": "object",
        "properties": {"timestamp": _TIME_SCHEMA, **properties},
        "required": ["timestamp", *properties],
        **extra,
    }


_EGO_FIELDS: Final = (
    "x",
    "y",
    "yaw",
    "vx",
    "vy",
    "ax",
    "ay",
    "yaw_rate",
    "steering_angle",
    "speed",
)
_JSON_SCHEMAS: Final[Mapping[str, dict[str, Any]]] = {
    "kaido.EgoState": _object_schema("kaido.EgoState", {k: _NUMBER for k in _EGO_FIELDS}),
    "kaido.Control": _object_schema(
        "kaido.Control",
        {
            "throttle": _NUMBER,
            "steer": _NUMBER,
            "brake": _NUMBER,
            "reverse": {"type": "boolean"},
            "hand_brake": {"type": "boolean"},
        },
    ),
    "kaido.Plan": _object_schema(
        "kaido.Plan",
        {
            "frame_id": {"type": "string"},
            "points": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"x": _NUMBER, "y": _NUMBER, "yaw": _NUMBER},
                },
            },
        },
    ),
    "kaido.Metrics": _object_schema("kaido.Metrics", {}, additionalProperties=_NUMBER),
    "kaido.Event": _object_schema(
        "kaido.Event",
        {"kind": {"type": "string"}, "message": {"type": "string"}, "data": {"type": "object"}},
    ),
}
_TOPIC_JSON_SCHEMA: Final[Mapping[str, str]] = {
    TOPIC_EGO_STATE: "kaido.EgoState",
    TOPIC_CONTROL: "kaido.Control",
    TOPIC_PLAN: "kaido.Plan",
    TOPIC_METRICS: "kaido.Metrics",
    TOPIC_EVENTS: "kaido.Event",
}


def _json_time(ns: int) -> dict[str, int]:
    sec, nsec = divmod(ns, 1_000_000_000)
    return {"sec": sec, "nsec": nsec}


def _json_number(value: float) -> float | None:
    v = float(value)
    return v if math.isfinite(v) else None


def _json_value(where: str, value: Any) -> Any:
    """``value`` as plain JSON data (non-finite floats → None); ``TypeError`` naming ``where``."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return _json_number(float(value))
    if isinstance(value, np.ndarray):
        return _json_value(where, value.tolist())
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be strings, got {k!r}")
            out[k] = _json_value(f"{where}[{k!r}]", v)
        return out
    if isinstance(value, list | tuple):
        return [_json_value(f"{where}[{i}]", v) for i, v in enumerate(value)]
    raise TypeError(f"{where}: cannot be written as JSON: {type(value).__name__} {value!r}")


# -- protobuf helpers --------------------------------------------------------------------------


def _stamp(ns: int) -> Timestamp:
    t = Timestamp()
    t.FromNanoseconds(ns)
    return t


def _color(rgb: tuple[int, int, int], alpha: float = 1.0) -> Color:
    return Color(r=rgb[0] / 255.0, g=rgb[1] / 255.0, b=rgb[2] / 255.0, a=alpha)


def _yaw_quaternion(yaw: float) -> PbQuaternion:
    return PbQuaternion(x=0.0, y=0.0, z=math.sin(0.5 * yaw), w=math.cos(0.5 * yaw))


def _se3_transform(parent: str, child: str, pose: SE3) -> tuple[str, str, Vector3, PbQuaternion]:
    q = pose.quaternion.normalized()
    t = pose.translation
    return (
        parent,
        child,
        Vector3(x=float(t[0]), y=float(t[1]), z=float(t[2])),
        PbQuaternion(x=q.x, y=q.y, z=q.z, w=q.w),
    )


def _calibration(spec: CameraSpec, timestamp_ns: int) -> CameraCalibration:
    k = spec.intrinsic_matrix()
    p = np.zeros((3, 4))
    p[:, :3] = k
    return CameraCalibration(
        timestamp=_stamp(timestamp_ns),
        frame_id=camera_frame_id(spec.name),
        width=spec.width,
        height=spec.height,
        distortion_model="plumb_bob",
        D=[0.0] * 5,
        K=k.ravel().tolist(),
        R=np.eye(3).ravel().tolist(),
        P=p.ravel().tolist(),
    )


_NUMERIC_TYPES: Final[Mapping[int, np.dtype[Any]]] = {
    PackedElementField.UINT8: np.dtype("u1"),
    PackedElementField.INT8: np.dtype("i1"),
    PackedElementField.UINT16: np.dtype("<u2"),
    PackedElementField.INT16: np.dtype("<i2"),
    PackedElementField.UINT32: np.dtype("<u4"),
    PackedElementField.INT32: np.dtype("<i4"),
    PackedElementField.FLOAT32: np.dtype("<f4"),
    PackedElementField.FLOAT64: np.dtype("<f8"),
}
_POINT_FIELDS: Final = tuple(f.name.lower() for f in LidarIndex)  # x, y, z, intensity
_XYZI_BYTES: Final = 4 * len(LidarIndex)


def _point_cloud(sweep: LidarSweep) -> PointCloud:
    n = len(sweep)
    xyzi = np.ascontiguousarray(sweep.points, dtype="<f4")
    fields = [
        PackedElementField(name=name, offset=4 * i, type=PackedElementField.FLOAT32)
        for i, name in enumerate(_POINT_FIELDS)
    ]
    if sweep.semantic is None:
        stride = _XYZI_BYTES
        data = xyzi.tobytes()
    else:
        stride = _XYZI_BYTES + 1
        buf = np.empty((n, stride), dtype=np.uint8)
        buf[:, :_XYZI_BYTES] = xyzi.view(np.uint8).reshape(n, _XYZI_BYTES)
        buf[:, _XYZI_BYTES] = sweep.semantic
        data = buf.tobytes()
        fields.append(
            PackedElementField(name="semantic", offset=_XYZI_BYTES, type=PackedElementField.UINT8)
        )
    return PointCloud(
        timestamp=_stamp(sweep.timestamp_ns),
        frame_id=lidar_frame_id(sweep.lidar),
        pose=Pose(position=Vector3(x=0.0, y=0.0, z=0.0), orientation=PbQuaternion(w=1.0)),
        point_stride=stride,
        fields=fields,
        data=data,
    )


def decode_point_cloud(message: Any) -> dict[str, npt.NDArray[Any]]:
    """The fields of a foxglove.PointCloud as arrays ``{name: (N,)}`` (copies, native order).

    Works on any PointCloud (from :func:`read_log` or elsewhere); ``ValueError`` if the data
    length is not a whole number of points or a field lies outside the stride.
    """
    stride = int(message.point_stride)
    data = bytes(message.data)
    if stride <= 0 or len(data) % stride:
        raise ValueError(
            f"PointCloud: {len(data)} bytes of data is not a whole number of {stride}-byte points"
        )
    n = len(data) // stride
    raw = np.frombuffer(data, dtype=np.uint8)
    out: dict[str, npt.NDArray[Any]] = {}
    for f in message.fields:
        dtype = _NUMERIC_TYPES.get(int(f.type))
        if dtype is None:
            raise ValueError(f"PointCloud.fields[{f.name!r}]: unsupported numeric type {f.type}")
        if f.offset + dtype.itemsize > stride:
            raise ValueError(
                f"PointCloud.fields[{f.name!r}]: offset {f.offset} + {dtype.itemsize} bytes "
                f"exceeds the point stride {stride}"
            )
        view = np.ndarray((n,), dtype=dtype, buffer=raw, offset=int(f.offset), strides=(stride,))
        out[str(f.name)] = view.astype(dtype.newbyteorder("="))
    return out


def decode_image(message: Any) -> npt.NDArray[np.uint8]:
    """The ``(H, W, 3)`` uint8 RGB image of a foxglove.CompressedImage (JPEG or PNG)."""
    encoded = np.frombuffer(bytes(message.data), dtype=np.uint8)
    bgr = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if encoded.size else None
    if bgr is None:
        raise ValueError(
            f"CompressedImage ({message.frame_id!r}): cannot decode {encoded.size} bytes "
            f"of format {message.format!r}"
        )
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return np.asarray(rgb, dtype=np.uint8)


# -- input checks ------------------------------------------------------------------------------


def _check_timestamp(where: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{where}: expected an int [ns], got {type(value).__name__} {value!r}")
    ns = int(value)
    if not 0 <= ns < 1 << 64:
        raise ValueError(f"{where}: must be in [0, 2**64) ns, got {ns}")
    return ns


def _check_path_array(where: str, value: object, min_rows: int) -> npt.NDArray[np.float64]:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{where}: expected an ndarray (N, 3), got {type(value).__name__}")
    if value.ndim != 2 or value.shape[1] != len(PlanIndex) or value.shape[0] < min_rows:
        raise ValueError(
            f"{where}: expected shape (N, {len(PlanIndex)}) with N >= {min_rows}, got {value.shape}"
        )
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        row = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise ValueError(f"{where}: row {row} is not finite: {arr[row].tolist()}")
    return arr


# -- the recorder ------------------------------------------------------------------------------


@dataclass
class _Pending:
    """One tick's messages, built fully before any is written."""

    items: list[tuple[str, int, PbMessage | dict[str, Any]]] = field(default_factory=list)

    def add(self, topic: str, log_time: int, message: PbMessage | dict[str, Any]) -> None:
        self.items.append((topic, log_time, message))


class EpisodeRecorder:
    """Writes one episode to an MCAP file (topics and frames in the module docstring).

    ``metadata`` holds provenance strings (commit, scenario, seed, ...) written as the metadata
    record ``kaido``; the keys ``log_format`` and ``sensor_rig`` are the recorder's own. Schemas
    and channels are registered on first use, so a log has exactly the topics that were written.
    ``jpeg_quality`` in ``[1, 100]`` sets the camera JPEG quality. Use as a context manager or
    call :meth:`close`; a closed recorder refuses further writes.
    """

    def __init__(
        self,
        path: Path,
        *,
        rig: SensorRig,
        metadata: Mapping[str, str],
        jpeg_quality: int = 90,
    ) -> None:
        self.path = Path(path)
        if not isinstance(rig, SensorRig):
            raise TypeError(f"EpisodeRecorder.rig: expected SensorRig, got {type(rig).__name__}")
        if isinstance(jpeg_quality, bool) or not isinstance(jpeg_quality, int):
            raise TypeError(f"EpisodeRecorder.jpeg_quality: expected an int, got {jpeg_quality!r}")
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(
                f"EpisodeRecorder.jpeg_quality: must be in [1, 100], got {jpeg_quality}"
            )
        if not isinstance(metadata, Mapping):
            raise TypeError(
                f"EpisodeRecorder.metadata: expected a mapping of str to str, "
                f"got {type(metadata).__name__}"
            )
        record: dict[str, str] = {}
        for key, value in metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(
                    f"EpisodeRecorder.metadata[{key!r}]: keys and values must be str, "
                    f"got {type(key).__name__} -> {type(value).__name__}"
                )
            if key in ("log_format", "sensor_rig"):
                raise ValueError(f"EpisodeRecorder.metadata[{key!r}]: key is reserved")
            record[key] = value
        record["log_format"] = LOG_FORMAT
        record["sensor_rig"] = json.dumps(rig.to_dict())
        self.rig = rig
        self._jpeg_params = [int(cv2.IMWRITE_JPEG_QUALITY), jpeg_quality]
        self._static_tf = [
            _se3_transform(EGO_FRAME, camera_frame_id(c.name), c.optical_to_ego())
            for c in rig.cameras
        ] + [_se3_transform(EGO_FRAME, lidar_frame_id(x.name), x.extrinsics) for x in rig.lidars]
        self._channels: dict[str, int] = {}
        self._schemas: dict[str, int] = {}
        self._sequence: Counter[str] = Counter()
        self._last_route: npt.NDArray[np.float64] | None = None
        self._plan_shown = False
        self._closed = False
        self._ticks = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")
        try:
            self._writer = McapWriter(
                self._file,
                chunk_size=1 << 62,  # chunks end where write_tick / write_event flush
                compression=CompressionType.ZSTD,
            )
            self._writer.start(profile="", library=f"kaido/{__version__} {LIBRARY_IDENTIFIER}")
            self._writer.add_metadata(METADATA_NAME, record)
            self._writer.flush()
        except BaseException:
            self._file.close()
            raise

    # -- public API ----------------------------------------------------------------------------

    @property
    def ticks(self) -> int:
        """Number of ticks written so far."""
        return self._ticks

    def write_tick(
        self,
        *,
        timestamp_ns: int,
        frame: Frame,
        ego_box: Box3D,
        route_path: npt.NDArray[np.float64] | None,
        control: Control,
        plan: npt.NDArray[np.float64] | None = None,
        extra: Mapping[str, float] | None = None,
    ) -> None:
        """Write one tick; every message is on disk (OS page cache) when this returns.

        ``frame``: sensors, ego state and (optional) ground truth; its sensors must be in the
        recorder's rig. ``ego_box``: the ego's box in the world frame. ``route_path``: ``(P, 3)``
        world-frame route (columns :class:`PlanIndex`), written when it differs from the last one
        written; None keeps the last. ``plan``: ``(T, 3)`` planned path in the world frame.
        ``extra``: named numbers for ``/kaido/metrics``. Inputs are checked before anything is
        written, so a rejected tick leaves the file unchanged.
        """
        self._check_open("write_tick")
        ts = _check_timestamp("write_tick.timestamp_ns", timestamp_ns)
        if not isinstance(frame, Frame):
            raise TypeError(f"write_tick.frame: expected Frame, got {type(frame).__name__}")
        if not isinstance(ego_box, Box3D):
            raise TypeError(f"write_tick.ego_box: expected Box3D, got {type(ego_box).__name__}")
        if not isinstance(control, Control):
            raise TypeError(f"write_tick.control: expected Control, got {type(control).__name__}")
        route = (
            None
            if route_path is None
            else _check_path_array("write_tick.route_path", route_path, 2)
        )
        plan_arr = None if plan is None else _check_path_array("write_tick.plan", plan, 1)
        metrics = self._metrics(extra)
        for name in frame.images:
            if name not in self.rig.camera_names:
                raise ValueError(
                    f"write_tick.frame.images[{name!r}]: no such camera in the recorder's rig "
                    f"{list(self.rig.camera_names)}"
                )
        for name in frame.lidar:
            if name not in self.rig.lidar_names:
                raise ValueError(
                    f"write_tick.frame.lidar[{name!r}]: no such lidar in the recorder's rig "
                    f"{list(self.rig.lidar_names)}"
                )

        out = _Pending()
        out.add(TOPIC_TF, ts, self._transforms(ts, frame))
        for name, image in frame.images.items():
            spec = self.rig.camera(name)
            out.add(camera_calibration_topic(name), ts, _calibration(spec, image.timestamp_ns))
            out.add(camera_image_topic(name), ts, self._jpeg(image))
        for name, sweep in frame.lidar.items():
            out.add(lidar_topic(name), ts, _point_cloud(sweep))
        out.add(TOPIC_AGENTS, ts, self._agents(ts, frame, ego_box))
        if frame.ground_truth is not None:
            out.add(
                TOPIC_TRAFFIC_LIGHTS, ts, _traffic_lights(ts, frame.ground_truth.traffic_lights)
            )
        if route is not None and (
            self._last_route is None
            or route.shape != self._last_route.shape
            or not np.array_equal(route, self._last_route)
        ):
            out.add(TOPIC_ROUTE, ts, _path_update(ts, "route", route, _ROUTE_RGB, 0.4, 0.05))
            self._last_route = route.copy()
        if plan_arr is not None:
            out.add(TOPIC_SCENE_PLAN, ts, _path_update(ts, "plan", plan_arr, _PLAN_RGB, 0.2, 0.15))
            out.add(TOPIC_PLAN, ts, _plan_json(ts, plan_arr))
        elif self._plan_shown:
            out.add(TOPIC_SCENE_PLAN, ts, _delete_all(ts))
        self._plan_shown = plan_arr is not None
        out.add(TOPIC_EGO_STATE, ts, _ego_json(ts, frame))
        out.add(
            TOPIC_CONTROL,
            ts,
            {
                "timestamp": _json_time(ts),
                "throttle": control.throttle,
                "steer": control.steer,
                "brake": control.brake,
                "reverse": control.reverse,
                "hand_brake": control.hand_brake,
            },
        )
        if metrics is not None:
            out.add(TOPIC_METRICS, ts, {"timestamp": _json_time(ts), **metrics})
        self._write(out)
        self._ticks += 1

    def write_event(
        self,
        timestamp_ns: int,
        kind: str,
        message: str,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Write one event on ``/kaido/events`` (mode change, infraction, scenario event) and
        flush. ``data`` must be JSON-like (str, numbers, bools, None, lists, str-keyed maps)."""
        self._check_open("write_event")
        ts = _check_timestamp("write_event.timestamp_ns", timestamp_ns)
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"write_event.kind: expected a non-empty string, got {kind!r}")
        if not isinstance(message, str):
            raise TypeError(f"write_event.message: expected a str, got {type(message).__name__}")
        if data is not None and not isinstance(data, Mapping):
            raise TypeError(f"write_event.data: expected a mapping, got {type(data).__name__}")
        payload = _json_value("write_event.data", dict(data or {}))
        out = _Pending()
        out.add(
            TOPIC_EVENTS,
            ts,
            {"timestamp": _json_time(ts), "kind": kind, "message": message, "data": payload},
        )
        self._write(out)

    def close(self) -> None:
        """Write the summary section (indexes, statistics) and close the file; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.finish()
            self._file.flush()
        finally:
            self._file.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> EpisodeRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"EpisodeRecorder({str(self.path)!r}, {self._ticks} ticks, {state})"

    # -- internals -----------------------------------------------------------------------------

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise RuntimeError(f"EpisodeRecorder({str(self.path)!r}).{what}: recorder is closed")

    @staticmethod
    def _metrics(extra: Mapping[str, float] | None) -> dict[str, float | None] | None:
        if extra is None:
            return None
        if not isinstance(extra, Mapping):
            raise TypeError(f"write_tick.extra: expected a mapping, got {type(extra).__name__}")
        out: dict[str, float | None] = {}
        for key, value in extra.items():
            if not isinstance(key, str) or not key or key == "timestamp":
                raise ValueError(
                    f"write_tick.extra: keys must be non-empty strings other than 'timestamp', "
                    f"got {key!r}"
                )
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise TypeError(
                    f"write_tick.extra[{key!r}]: expected a number, got {type(value).__name__}"
                )
            out[key] = _json_number(float(value))
        return out

    def _transforms(self, ts: int, frame: Frame) -> FrameTransforms:
        stamp = _stamp(ts)
        pose = frame.ego.pose
        transforms = [
            FrameTransform(
                timestamp=stamp,
                parent_frame_id=WORLD_FRAME,
                child_frame_id=EGO_FRAME,
                translation=Vector3(x=pose.x, y=pose.y, z=0.0),
                rotation=_yaw_quaternion(pose.yaw),
            )
        ]
        transforms += [
            FrameTransform(
                timestamp=stamp,
                parent_frame_id=parent,
                child_frame_id=child,
                translation=translation,
                rotation=rotation,
            )
            for parent, child, translation, rotation in self._static_tf
        ]
        return FrameTransforms(transforms=transforms)

    def _jpeg(self, image: CameraImage) -> CompressedImage:
        bgr = cv2.cvtColor(np.ascontiguousarray(image.rgb), cv2.COLOR_RGB2BGR)
        ok, encoded = cv2.imencode(".jpg", bgr, self._jpeg_params)
        if not ok:
            raise ValueError(f"camera {image.camera!r}: JPEG encoding failed")
        return CompressedImage(
            timestamp=_stamp(image.timestamp_ns),
            frame_id=camera_frame_id(image.camera),
            data=encoded.tobytes(),
            format="jpeg",
        )

    @staticmethod
    def _agents(ts: int, frame: Frame, ego_box: Box3D) -> SceneUpdate:
        stamp = _stamp(ts)
        entities = [
            _box_entity(stamp, "ego", ego_box, EGO_RGB, {"class": "ego", "speed": frame.ego.speed})
        ]
        if frame.ground_truth is not None:
            for agent in frame.ground_truth.agents:
                entities.append(
                    _box_entity(
                        stamp,
                        f"agent/{agent.track_id}",
                        agent.box,
                        AGENT_CLASS_RGB[agent.agent_class],
                        {
                            "class": agent.agent_class.name.lower(),
                            "track_id": agent.track_id,
                            "speed": agent.speed,
                        },
                    )
                )
        return SceneUpdate(
            deletions=[SceneEntityDeletion(timestamp=stamp, type=SceneEntityDeletion.ALL)],
            entities=entities,
        )

    def _channel(self, topic: str, message: PbMessage | dict[str, Any]) -> int:
        channel = self._channels.get(topic)
        if channel is not None:
            return channel
        if isinstance(message, PbMessage):
            name = message.DESCRIPTOR.full_name
            schema = self._schemas.get(name)
            if schema is None:
                data = build_file_descriptor_set(type(message)).SerializeToString()
                schema = self._writer.register_schema(name=name, encoding="protobuf", data=data)
                self._schemas[name] = schema
            encoding = "protobuf"
        else:
            name = _TOPIC_JSON_SCHEMA[topic]
            schema = self._schemas.get(name)
            if schema is None:
                data = json.dumps(_JSON_SCHEMAS[name]).encode()
                schema = self._writer.register_schema(name=name, encoding="jsonschema", data=data)
                self._schemas[name] = schema
            encoding = "json"
        channel = self._writer.register_channel(
            topic=topic, message_encoding=encoding, schema_id=schema
        )
        self._channels[topic] = channel
        return channel

    def _write(self, pending: _Pending) -> None:
        encoded: list[tuple[int, int, bytes, str]] = []
        for topic, log_time, message in pending.items:
            if isinstance(message, PbMessage):
                data = message.SerializeToString()
            else:
                data = json.dumps(message, allow_nan=False, separators=(",", ":")).encode()
            encoded.append((self._channel(topic, message), log_time, data, topic))
        for channel, log_time, data, topic in encoded:
            self._writer.add_message(
                channel_id=channel,
                log_time=log_time,
                publish_time=log_time,
                data=data,
                sequence=self._sequence[topic],
            )
            self._sequence[topic] += 1
        self._writer.flush()


def _box_entity(
    stamp: Timestamp,
    entity_id: str,
    box: Box3D,
    rgb: tuple[int, int, int],
    info: Mapping[str, Any],
) -> SceneEntity:
    metadata = [
        KeyValuePair(key=k, value=f"{v:.3f}" if isinstance(v, float) else str(v))
        for k, v in info.items()
    ]
    return SceneEntity(
        timestamp=stamp,
        frame_id=WORLD_FRAME,
        id=entity_id,
        metadata=metadata,
        cubes=[
            CubePrimitive(
                pose=Pose(
                    position=Vector3(x=box.x, y=box.y, z=box.z),
                    orientation=_yaw_quaternion(box.yaw),
                ),
                size=Vector3(x=box.length, y=box.width, z=box.height),
                color=_color(rgb, 0.8),
            )
        ],
    )


def _delete_all(ts: int) -> SceneUpdate:
    return SceneUpdate(
        deletions=[SceneEntityDeletion(timestamp=_stamp(ts), type=SceneEntityDeletion.ALL)]
    )


def _traffic_lights(ts: int, lights: Sequence[TrafficLightState]) -> SceneUpdate:
    stamp = _stamp(ts)
    entities = []
    for light in lights:
        color = _color(TRAFFIC_LIGHT_RGB[light.color])
        x, y, z = light.position
        lines = []
        if light.stop_line is not None:
            lines.append(
                LinePrimitive(
                    type=LinePrimitive.LINE_STRIP,
                    pose=Pose(orientation=PbQuaternion(w=1.0)),
                    thickness=0.4,
                    points=[Point3(x=float(px), y=float(py), z=0.1) for px, py in light.stop_line],
                    color=color,
                )
            )
        entities.append(
            SceneEntity(
                timestamp=stamp,
                frame_id=WORLD_FRAME,
                id=f"traffic_light/{light.light_id}",
                metadata=[KeyValuePair(key="state", value=light.color.name.lower())],
                spheres=[
                    SpherePrimitive(
                        pose=Pose(position=Vector3(x=x, y=y, z=z), orientation=PbQuaternion(w=1.0)),
                        size=Vector3(x=1.0, y=1.0, z=1.0),
                        color=color,
                    )
                ],
                lines=lines,
            )
        )
    return SceneUpdate(
        deletions=[SceneEntityDeletion(timestamp=stamp, type=SceneEntityDeletion.ALL)],
        entities=entities,
    )


def _path_update(
    ts: int,
    entity_id: str,
    path: npt.NDArray[np.float64],
    rgb: tuple[int, int, int],
    thickness: float,
    z: float,
) -> SceneUpdate:
    points = [Point3(x=float(px), y=float(py), z=z) for px, py in path[:, : PlanIndex.Y + 1]]
    return SceneUpdate(
        entities=[
            SceneEntity(
                timestamp=_stamp(ts),
                frame_id=WORLD_FRAME,
                id=entity_id,
                lines=[
                    LinePrimitive(
                        type=LinePrimitive.LINE_STRIP,
                        pose=Pose(orientation=PbQuaternion(w=1.0)),
                        thickness=thickness,
                        points=points,
                        color=_color(rgb, 0.9),
                    )
                ],
            )
        ]
    )


def _plan_json(ts: int, plan: npt.NDArray[np.float64]) -> dict[str, Any]:
    return {
        "timestamp": _json_time(ts),
        "frame_id": WORLD_FRAME,
        "points": [
            {"x": float(p[PlanIndex.X]), "y": float(p[PlanIndex.Y]), "yaw": float(p[PlanIndex.YAW])}
            for p in plan
        ],
    }


def _ego_json(ts: int, frame: Frame) -> dict[str, Any]:
    ego = frame.ego
    values = {
        "x": ego.pose.x,
        "y": ego.pose.y,
        "yaw": ego.pose.yaw,
        "vx": ego.velocity[0],
        "vy": ego.velocity[1],
        "ax": ego.acceleration[0],
        "ay": ego.acceleration[1],
        "yaw_rate": ego.yaw_rate,
        "steering_angle": ego.steering_angle,
        "speed": ego.speed,
    }
    return {"timestamp": _json_time(ts), **{k: _json_number(v) for k, v in values.items()}}


# -- the reader --------------------------------------------------------------------------------

_MAGIC: Final = b"\x89MCAP0\r\n"
_RECORD_HEADER: Final = struct.Struct("<BQ")


@dataclass(frozen=True)
class LogMessage:
    """One message read from a log."""

    topic: str
    """Channel topic, e.g. ``/kaido/ego_state``."""
    log_time_ns: int
    """MCAP log time: the simulation time of the tick [ns]."""
    schema_name: str
    """Schema name, e.g. ``foxglove.PointCloud`` or ``kaido.EgoState`` (empty if none)."""
    message: Any
    """Decoded message: a protobuf message, a ``dict`` for JSON, ``bytes`` otherwise."""


@dataclass(frozen=True)
class LogReadReport:
    """How reading a log went."""

    messages: int
    """Messages yielded (after the topic filter)."""
    complete: bool
    """The file ended with its footer and closing magic (it was closed normally)."""
    error: str | None
    """None when complete; else where and why reading stopped (byte offset, record)."""
    time_reversals: tuple[str, ...] = ()
    """One line per message whose log time is earlier than the message before it in the file:
    its position (message number from 0, over every topic), topic and both times [ns]."""


def _opcode_name(opcode: int) -> str:
    try:
        return Opcode(opcode).name
    except ValueError:
        return f"opcode 0x{opcode:02x}"


class _Scan:
    """Streams the message records of an MCAP file in file order, tolerating truncation.

    Records are read one at a time; a record whose declared length runs past the end of the file
    (or a record that does not parse, or a chunk whose CRC does not match) ends the scan, and
    :attr:`error` says where. Chunks are decompressed and checked whole, so a torn chunk yields
    none of its messages.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.complete = False
        self.error: str | None = None
        self.metadata: dict[str, dict[str, str]] = {}
        self.schemas: dict[int, Schema] = {}
        self.channels: dict[int, Channel] = {}
        self.time_reversals: list[str] = []
        with open(path, "rb") as f:
            head = f.read(len(_MAGIC))
        if head != _MAGIC and not _MAGIC.startswith(head):
            raise ValueError(
                f"{path}: not an MCAP file (starts with {head!r}, expected the MCAP magic "
                f"{_MAGIC!r})"
            )

    def fail(self, error: str) -> None:
        """End the scan with ``error`` (prefixed with the path)."""
        self.error = f"{self.path}: {error}"

    def messages(self) -> Iterator[tuple[Channel, Message]]:
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if f.read(len(_MAGIC)) != _MAGIC:
                self.fail(f"truncated at byte {size}, inside the leading MCAP magic")
                return
            offset = len(_MAGIC)
            in_summary = False
            while True:
                left = size - offset
                where = (
                    "in the summary section (every message was read)"
                    if in_summary
                    else "in the data section"
                )
                if left < _RECORD_HEADER.size:
                    what = f"{left} bytes of a record header" if left else "no footer follows"
                    self.fail(f"truncated at byte {size} {where}: {what}")
                    return
                opcode, length = _RECORD_HEADER.unpack(f.read(_RECORD_HEADER.size))
                name = _opcode_name(opcode)
                if opcode == 0:
                    self.fail(f"invalid record opcode 0x00 at byte {offset} {where}")
                    return
                if length > left - _RECORD_HEADER.size:
                    self.fail(
                        f"truncated at byte {size} {where}: {name} record at byte {offset} "
                        f"declares {length} bytes but only {left - _RECORD_HEADER.size} remain"
                    )
                    return
                if in_summary and opcode != Opcode.FOOTER:
                    f.seek(length, io.SEEK_CUR)
                else:
                    body = f.read(length)
                    try:
                        yield from self._record(opcode, body)
                    except _CorruptRecord as exc:
                        self.fail(f"corrupt {name} record at byte {offset}: {exc}")
                        return
                    if opcode == Opcode.DATA_END:
                        in_summary = True
                    elif opcode == Opcode.FOOTER:
                        end = f.read(len(_MAGIC))
                        if end != _MAGIC:
                            self.fail(
                                f"no closing MCAP magic after the footer at byte {offset} "
                                f"(found {end!r})"
                            )
                            return
                        self.complete = True
                        return
                offset += _RECORD_HEADER.size + length

    def _record(self, opcode: int, body: bytes) -> Iterator[tuple[Channel, Message]]:
        try:
            stream = ReadDataStream(io.BytesIO(body))
            if opcode == Opcode.MESSAGE:
                records: list[Any] = [Message.read(stream, len(body))]
            elif opcode == Opcode.CHUNK:
                records = breakup_chunk(Chunk.read(stream), validate_crc=True)
            elif opcode == Opcode.SCHEMA:
                records = [Schema.read(stream)]
            elif opcode == Opcode.CHANNEL:
                records = [Channel.read(stream)]
            elif opcode == Opcode.METADATA:
                records = [Metadata.read(stream)]
            elif opcode == Opcode.FOOTER:
                records = [Footer.read(stream)]
            else:
                records = []
        except Exception as exc:  # any parse failure of a whole record is corruption
            raise _CorruptRecord(f"{type(exc).__name__}: {exc}") from exc
        for record in records:
            if isinstance(record, Schema):
                self.schemas[record.id] = record
            elif isinstance(record, Channel):
                self.channels[record.id] = record
            elif isinstance(record, Metadata):
                self.metadata[record.name] = dict(record.metadata)
            elif isinstance(record, Message):
                channel = self.channels.get(record.channel_id)
                if channel is None:
                    raise _CorruptRecord(f"message on unknown channel id {record.channel_id}")
                yield channel, record


class _CorruptRecord(Exception):
    pass


class _Decoders:
    """Decoders per schema id: protobuf from the file's descriptor set, JSON with ``json``."""

    def __init__(self) -> None:
        self._protobuf = DecoderFactory()
        self._cache: dict[tuple[int, str], Callable[[bytes], Any]] = {}

    def decode(self, channel: Channel, schema: Schema | None, data: bytes) -> Any:
        key = (channel.schema_id, channel.message_encoding)
        decoder = self._cache.get(key)
        if decoder is None:
            decoder = self._make(channel, schema)
            self._cache[key] = decoder
        return decoder(data)

    def _make(self, channel: Channel, schema: Schema | None) -> Callable[[bytes], Any]:
        if channel.message_encoding == "json":
            return json.loads
        if channel.message_encoding == "protobuf":
            made = self._protobuf.decoder_for("protobuf", schema)
            if made is None:
                raise _CorruptRecord(f"channel {channel.topic!r}: no protobuf schema")
            return made
        return bytes


def _iterate(
    scan: _Scan, topics: frozenset[str] | None, counter: list[int]
) -> Iterator[LogMessage]:
    decoders = _Decoders()
    previous: tuple[int, str] | None = None
    for position, (channel, record) in enumerate(scan.messages()):
        t = int(record.log_time)
        if previous is not None and t < previous[0]:
            scan.time_reversals.append(
                f"message {position} on {channel.topic!r}: log time {t} ns is before the "
                f"previous message's {previous[0]} ns (on {previous[1]!r})"
            )
        previous = (t, channel.topic)
        if topics is not None and channel.topic not in topics:
            continue
        schema = scan.schemas.get(channel.schema_id)
        try:
            message = decoders.decode(channel, schema, record.data)
        except Exception as exc:  # a message that does not decode ends the read
            scan.fail(
                f"message {counter[0]} on {channel.topic!r} (log time {record.log_time}) "
                f"does not decode: {type(exc).__name__}: {exc}"
            )
            scan.complete = False
            return
        counter[0] += 1
        yield LogMessage(
            topic=channel.topic,
            log_time_ns=int(record.log_time),
            schema_name=schema.name if schema is not None else "",
            message=message,
        )


def _topic_filter(topics: Sequence[str] | None) -> frozenset[str] | None:
    if topics is None:
        return None
    if isinstance(topics, str):
        raise TypeError(f"topics: expected a sequence of topic names, got the string {topics!r}")
    return frozenset(topics)


def read_log(path: Path, topics: Sequence[str] | None = None) -> Iterator[LogMessage]:
    """Stream the messages of an MCAP log in file order (only ``topics`` when given).

    A truncated or damaged file yields every complete message before the damage, then stops
    without raising (:func:`read_log_with_report` says where it broke, and where log times go
    backwards). A file that is not MCAP
    raises ``ValueError`` naming it, right away; a missing file raises ``FileNotFoundError``.
    """
    scan = _Scan(Path(path))
    return _iterate(scan, _topic_filter(topics), [0])


def read_log_with_report(
    path: Path, topics: Sequence[str] | None = None
) -> tuple[list[LogMessage], LogReadReport]:
    """All messages of a log (as :func:`read_log`) and a report of how reading went."""
    scan = _Scan(Path(path))
    counter = [0]
    messages = list(_iterate(scan, _topic_filter(topics), counter))
    return messages, LogReadReport(
        messages=counter[0],
        complete=scan.complete,
        error=scan.error,
        time_reversals=tuple(scan.time_reversals),
    )


def log_summary(path: Path) -> dict[str, Any]:
    """What a log holds, without decoding messages.

    Returns ``{"path", "messages", "start_ns", "end_ns", "topics": {topic: {"schema",
    "message_encoding", "count"}}, "metadata": {name: {key: value}}, "complete", "error"}``;
    ``start_ns``/``end_ns`` are the smallest/largest log times (None for an empty log).
    """
    scan = _Scan(Path(path))
    topics: dict[str, dict[str, Any]] = {}
    start: int | None = None
    end: int | None = None
    count = 0
    for channel, record in scan.messages():
        entry = topics.get(channel.topic)
        if entry is None:
            schema = scan.schemas.get(channel.schema_id)
            entry = {
                "schema": schema.name if schema is not None else "",
                "message_encoding": channel.message_encoding,
                "count": 0,
            }
            topics[channel.topic] = entry
        entry["count"] += 1
        count += 1
        t = int(record.log_time)
        start = t if start is None else min(start, t)
        end = t if end is None else max(end, t)
    return {
        "path": str(path),
        "messages": count,
        "start_ns": start,
        "end_ns": end,
        "topics": topics,
        "metadata": scan.metadata,
        "complete": scan.complete,
        "error": scan.error,
    }
