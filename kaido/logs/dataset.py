"""``kaido dataset build``: training shards of :mod:`kaido.logs.sample` samples from kaido logs.

Input: kaido episode logs (MCAP, :mod:`kaido.logs.mcap_log`) anywhere under ``LOGS_DIR``, e.g. a
``kaido collect`` folder. Output (``DATA_DIR``)::

    DATA_DIR/manifest.json
    DATA_DIR/shards/<shard>/<field>.npy     one file per field of SAMPLE_FIELDS
    DATA_DIR/shards/<shard>/shard.json

One shard per log; ``<shard>`` is the log's path below ``LOGS_DIR`` without ``.mcap`` (and
without a final ``run``), ``/`` written ``__`` (``ep00003/run.mcap`` → ``ep00003``).

``<field>.npy`` is a plain NumPy ``.npy`` array of the field's dtype with a leading sample axis
``S``: shape ``(S, *shape)`` (see :data:`~kaido.logs.sample.SAMPLE_FIELDS`), written without
pickling (load with ``np.load(path, mmap_mode="r", allow_pickle=False)`` for random access).
Sample ``i`` of a shard is row ``i`` of every field; rows are in time order.

``shard.json``: ``format`` (``kaido-shard/1``), ``name``, ``samples`` (S), ``spec``
(:meth:`SampleSpec.to_dict`), ``fields`` (``{name: {"dtype", "shape"}}``, shape without ``S``),
``timestamps_ns`` (the log time of each sample), ``stride_ns`` (time between consecutive
samples; consecutive rows whose times differ by it are consecutive frames), ``log`` (the source
log, relative to ``LOGS_DIR``), ``source`` (its size and mtime, to skip unchanged logs on a
re-run), ``every`` and ``seed`` (the build's options), ``town``, ``episode_seed``, ``group``,
``map`` (where the map came from), ``ticks`` (ego states read), ``complete`` and
``read_error`` (a truncated log builds up to its last whole message and says where it broke),
``missing`` (samples without a camera / the lidar / an occupancy horizon) and ``bytes``.

``manifest.json``: ``format`` (``kaido-dataset/1``), ``spec``, ``fields``, ``shards`` (one
entry per log with ``name``, ``path`` relative to ``DATA_DIR``, ``log``, ``samples``,
``split``, ``group``, ``town``, ``seed``, ``complete``, ``read_error``, ``missing``, ``bytes``),
``splits`` (``{"train"|"val": {"shards", "samples"}}``), ``failed`` (logs that built nothing,
with the error), ``counts``, ``options`` and ``provenance``. The split is by group: a group is
one town (a map file, or a generated town's parameters) with one episode seed, and a whole group
goes to one side, so no log (and no replay of a log's episode) is in both splits; a
``val_fraction`` share of the groups, chosen by a hash of their keys, is validation.

How the fields are made (all in the ego frame at the sample time ``t``; see
:mod:`kaido.logs.sample`): samples lie on a lattice of ``step_seconds`` from the log's first tick
(every ``every``-th lattice time), where the log has ego states at all past and future steps.
Camera images are JPEG-decoded, resized with area interpolation and their intrinsics scaled
with them; lidar sweeps move from their sensor's frame to the ego frame and keep the points
inside the grid's x/y range. ``ego_state`` takes speed, longitudinal acceleration and yaw rate
from ``/kaido/ego_state`` and the speed limit of the nearest lane along the ego's heading. The
route is the last ``/scene/route`` written, resampled every ``route_spacing`` metres from the
ego's projection onto it (held at its end). Actions come from the logged future: ``ACCEL`` is
the speed change over the step divided by its duration, ``CURVATURE`` that of the circular arc
from the step's start pose to its end pose (``2 sin(turn / 2) / distance``; 0 below 5 cm),
clipped to ``±MAX_CURVATURE``; :func:`rollout_actions` integrates them back. Agents are the
ground-truth vehicles, pedestrians and cyclists of ``/scene/agents`` (the nearest ``M`` whose
centre is in the grid), velocities by central differences of their logged positions.
``traffic_light`` is the state (``/scene/traffic_lights``, the ``state`` metadata of each light)
of the first light whose stop line crosses the route within ``TRAFFIC_LIGHT_RANGE`` metres ahead
of the ego's projection on it (``NONE`` when there is none, or it is off or unknown).
``bev_semantics`` draws DRIVABLE and LANE_DIVIDER from the map (:meth:`RoadMap.rasterize`) and
every agent's footprint (:func:`box_footprint_mask`) in VEHICLE (vehicles, cyclists) or
PEDESTRIAN. ``occupancy_future[k]`` marks the pixels hit by the lidar
sweep at ``t + (k + 1) * step_seconds`` with points ``occupancy_z_min..occupancy_z_max`` above
the ground of that moment's ego frame, outside the ego's own box, moved into the ego frame at
``t``.

The map of a log is found from its metadata (the drive options' map path; the log's folder's
``town.xodr``; or a generated town rebuilt from ``collect.town_spec``). A log that cannot be read
or whose map cannot be found is listed in ``failed`` only; one too short for a sample is listed
in ``failed`` and keeps an empty entry in ``shards``.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import math
import multiprocessing as mp
import os
import shutil
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from mcap.records import Chunk, Header, Message, Metadata
from mcap.stream_reader import StreamReader

from kaido.logs.mcap_log import (
    METADATA_NAME,
    TOPIC_AGENTS,
    TOPIC_EGO_STATE,
    TOPIC_ROUTE,
    TOPIC_TRAFFIC_LIGHTS,
    camera_image_topic,
    decode_image,
    decode_point_cloud,
    lidar_topic,
    log_summary,
    read_log,
    read_log_with_report,
)
from kaido.logs.sample import (
    PAD_CLASS,
    SAMPLE_FIELDS,
    TRAFFIC_LIGHT_RANGE,
    ActionIndex,
    BevClass,
    BoxField,
    DetectionClass,
    EgoFeature,
    SampleSpec,
    TrafficLightClass,
    field_layout,
)
from kaido.provenance import provenance, to_jsonable
from kaido.scene.agents import AgentClass
from kaido.scene.geometry import se2_compose, se2_relative, wrap_angle
from kaido.scene.raster import RasterSpec
from kaido.scene.road_map import RASTER_LAYER_NAMES, MapLayer, RoadMap
from kaido.scene.sensors import SensorRig

__all__ = [
    "CENTRE_TOLERANCE",
    "DATASET_FORMAT",
    "MANIFEST_NAME",
    "MAX_CURVATURE",
    "SHARD_FORMAT",
    "SHARD_META",
    "BuildSummary",
    "LogTrack",
    "actions_from_trajectory",
    "box_footprint_mask",
    "build_dataset",
    "build_shard",
    "find_logs",
    "load_shard",
    "log_metadata",
    "points_occupancy",
    "read_log_track",
    "read_manifest",
    "resolve_map",
    "rollout_actions",
    "route_points",
    "shard_name",
]

DATASET_FORMAT = "kaido-dataset/1"
SHARD_FORMAT = "kaido-shard/1"
MANIFEST_NAME = "manifest.json"
SHARD_META = "shard.json"
MAX_CURVATURE = 0.5
"""[1/m] largest |CURVATURE| action (a car's tightest turn is about 0.2 1/m)."""
MIN_STEP_DISTANCE = 0.05
"""[m] below this distance over a step, its curvature is 0 (standing still)."""
CENTRE_TOLERANCE = 1e-4
"""[m] a box centre this close to a pixel border marks the pixels on both sides (float32 boxes
round either way)."""
EGO_BOX_MARGIN = 0.3
"""[m] lidar hits this close to the ego's own box are not occupancy."""

FloatArray = npt.NDArray[np.float64]

_AGENT_CLASS_TO_DETECTION = {
    AgentClass.VEHICLE: DetectionClass.VEHICLE,
    AgentClass.PEDESTRIAN: DetectionClass.PEDESTRIAN,
    AgentClass.CYCLIST: DetectionClass.CYCLIST,
}
_DETECTION_TO_BEV = {
    DetectionClass.VEHICLE: BevClass.VEHICLE,
    DetectionClass.CYCLIST: BevClass.VEHICLE,
    DetectionClass.PEDESTRIAN: BevClass.PEDESTRIAN,
}


class _Ego(IntEnum):
    """Columns of :attr:`LogTrack.ego`."""

    X = 0
    Y = 1
    YAW = 2
    SPEED = 3
    AX = 4
    YAW_RATE = 5


class _Agent(IntEnum):
    """Columns of :attr:`LogTrack.agents`."""

    TICK = 0
    TRACK = 1
    CLASS = 2
    X = 3
    Y = 4
    YAW = 5
    LENGTH = 6
    WIDTH = 7
    SPEED = 8


class _Box(IntEnum):
    """Columns of a world or ego-frame 2D box ``(n, 5)`` used here."""

    X = 0
    Y = 1
    YAW = 2
    LENGTH = 3
    WIDTH = 4


# -- pure geometry helpers ----------------------------------------------------------------------


def _pixel_index(
    spec: RasterSpec, xy: FloatArray
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Row and column ``(n,)`` of the pixels that ego-frame points ``(n, 2)`` fall in, and a
    mask of those inside the grid."""
    rows = np.floor(spec.origin_row - xy[:, 0] / spec.resolution).astype(np.int64)
    cols = np.floor(spec.origin_col - xy[:, 1] / spec.resolution).astype(np.int64)
    inside = (rows >= 0) & (rows < spec.height) & (cols >= 0) & (cols < spec.width)
    return rows, cols, inside


def points_occupancy(points_xy: npt.ArrayLike, spec: RasterSpec) -> npt.NDArray[np.uint8]:
    """``(H, W)`` 0/1 mask of the pixels holding at least one ego-frame point ``(n, 2)`` [m]."""
    xy = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    out = np.zeros((spec.height, spec.width), dtype=np.uint8)
    rows, cols, inside = _pixel_index(spec, xy)
    out[rows[inside], cols[inside]] = 1
    return out


def box_footprint_mask(boxes: npt.ArrayLike, spec: RasterSpec) -> npt.NDArray[np.uint8]:
    """``(H, W)`` 0/1 mask of ego-frame boxes ``(n, 5)`` [x, y, yaw, length, width].

    A pixel is set when its centre lies in a box (edges included), and the pixel under each box
    centre is set too (both pixels when the centre is within ``CENTRE_TOLERANCE`` of their
    border), so that a box smaller than a pixel still shows.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, len(_Box))
    out = np.zeros((spec.height, spec.width), dtype=np.uint8)
    res = spec.resolution
    for x, y, yaw, length, width in b:
        c, s = math.cos(yaw), math.sin(yaw)
        hl, hw = 0.5 * length, 0.5 * width
        ex = abs(c) * hl + abs(s) * hw  # half extents of the box's axis-aligned bounds
        ey = abs(s) * hl + abs(c) * hw
        r_lo = max(int(math.floor(spec.origin_row - (x + ex) / res)), 0)
        r_hi = min(int(math.floor(spec.origin_row - (x - ex) / res)), spec.height - 1)
        c_lo = max(int(math.floor(spec.origin_col - (y + ey) / res)), 0)
        c_hi = min(int(math.floor(spec.origin_col - (y - ey) / res)), spec.width - 1)
        if r_lo <= r_hi and c_lo <= c_hi:
            rr = np.arange(r_lo, r_hi + 1)
            cc = np.arange(c_lo, c_hi + 1)
            px = (spec.origin_row - rr - 0.5)[:, None] * res - x
            py = (spec.origin_col - cc - 0.5)[None, :] * res - y
            lx = c * px + s * py
            ly = -s * px + c * py
            eps = 1e-9
            inside = (np.abs(lx) <= hl + eps) & (np.abs(ly) <= hw + eps)
            out[r_lo : r_hi + 1, c_lo : c_hi + 1] |= inside.astype(np.uint8)
        nudge = CENTRE_TOLERANCE * np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]])
        rows, cols, ok = _pixel_index(spec, np.array([x, y]) + nudge)
        out[rows[ok], cols[ok]] = 1
    return out


def actions_from_trajectory(
    poses: npt.ArrayLike, speeds: npt.ArrayLike, dt: float
) -> npt.NDArray[np.float64]:
    """Actions ``(T, 2)`` (:class:`ActionIndex`) that lead through ``T + 1`` poses ``(T+1, 3)``
    [x, y, yaw] with speeds ``(T+1,)`` [m/s], ``dt`` [s] apart (pose 0 is now)."""
    p = np.asarray(poses, dtype=np.float64)
    v = np.asarray(speeds, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or v.shape != (p.shape[0],) or len(p) < 2:
        raise ValueError(
            f"actions_from_trajectory: expected poses (T+1, 3) and speeds (T+1,), "
            f"got {p.shape} and {v.shape}"
        )
    out = np.zeros((len(p) - 1, len(ActionIndex)), dtype=np.float64)
    out[:, ActionIndex.ACCEL] = np.diff(v) / dt
    distance = np.hypot(np.diff(p[:, 0]), np.diff(p[:, 1]))
    turn = wrap_angle(np.diff(p[:, 2]))
    moving = distance >= MIN_STEP_DISTANCE
    # the circular arc from one pose to the next: chord = 2 sin(turn / 2) / curvature
    curvature = np.where(moving, 2.0 * np.sin(0.5 * turn) / np.maximum(distance, 1e-9), 0.0)
    out[:, ActionIndex.CURVATURE] = np.clip(curvature, -MAX_CURVATURE, MAX_CURVATURE)
    return out


def rollout_actions(speed: float, actions: npt.ArrayLike, dt: float) -> npt.NDArray[np.float64]:
    """Poses ``(T, 3)`` [x, y, yaw] after each action ``(T, 2)`` (:class:`ActionIndex`), from
    the origin at ``speed`` [m/s]: the speed changes by ``ACCEL * dt`` (never below 0), the step's
    distance is the mean of its start and end speeds times ``dt``, driven on an arc of the step's
    ``CURVATURE``."""
    a = np.asarray(actions, dtype=np.float64).reshape(-1, len(ActionIndex))
    out = np.zeros((len(a), 3), dtype=np.float64)
    x = y = yaw = 0.0
    v = float(speed)
    for k, (accel, kappa) in enumerate(a):
        v_next = max(v + accel * dt, 0.0)
        ds = 0.5 * (v + v_next) * dt
        turn = kappa * ds
        chord = ds if abs(turn) < 1e-9 else 2.0 * math.sin(0.5 * turn) / kappa
        x += chord * math.cos(yaw + 0.5 * turn)
        y += chord * math.sin(yaw + 0.5 * turn)
        yaw = float(wrap_angle(yaw + turn))
        v = v_next
        out[k] = (x, y, yaw)
    return out


def light_ahead(
    route_xy: npt.ArrayLike, s_ego: float, lights: Iterable[tuple[int, npt.ArrayLike]]
) -> int:
    """The :class:`TrafficLightClass` of the first light whose stop line ``(2, 2)`` crosses the
    world route polyline ``(P, 2)`` within ``TRAFFIC_LIGHT_RANGE`` metres after arc length
    ``s_ego`` (``NONE`` when none does)."""
    path = np.asarray(route_xy, dtype=np.float64).reshape(-1, 2)
    if len(path) < 2:
        return int(TrafficLightClass.NONE)
    seg = np.diff(path, axis=0)
    s = np.concatenate([[0.0], np.cumsum(np.hypot(seg[:, 0], seg[:, 1]))])
    best_s, best = math.inf, int(TrafficLightClass.NONE)
    for light, line in lights:
        a, b = np.asarray(line, dtype=np.float64)[:2]
        d = b - a
        denom = seg[:, 0] * d[1] - seg[:, 1] * d[0]
        ap = a - path[:-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (ap[:, 0] * d[1] - ap[:, 1] * d[0]) / denom
            u = (ap[:, 0] * seg[:, 1] - ap[:, 1] * seg[:, 0]) / denom
        hit = (np.abs(denom) > 1e-12) & (t >= 0.0) & (t <= 1.0) & (u >= -0.05) & (u <= 1.05)
        for j in np.flatnonzero(hit):
            at = float(s[j] + t[j] * (s[j + 1] - s[j]))
            if s_ego <= at <= s_ego + TRAFFIC_LIGHT_RANGE and at < best_s:
                best_s, best = at, int(light)
    return best


def route_points(
    path_xy: npt.ArrayLike,
    pose: npt.ArrayLike,
    count: int,
    spacing: float,
    previous_s: float | None = None,
) -> tuple[npt.NDArray[np.float64], float]:
    """``count`` points of a world-frame route polyline ``(P, 2)`` every ``spacing`` [m] from
    the projection of ``pose`` [x, y, yaw] onto it (held at the route's end), in the frame of
    ``pose``; and the projection's arc length [m].

    The projection is the nearest point of a segment heading within 90° of the pose's yaw
    (any segment when none does), preferring, with ``previous_s``, not to move backwards.
    """
    path = np.asarray(path_xy, dtype=np.float64).reshape(-1, 2)
    p = np.asarray(pose, dtype=np.float64)
    if len(path) == 0:
        raise ValueError("route_points: empty route")
    if len(path) == 1:
        path = np.vstack([path, path])
    a, b = path[:-1], path[1:]
    ab = b - a
    seg_len = np.hypot(ab[:, 0], ab[:, 1])
    s_start = np.concatenate([[0.0], np.cumsum(seg_len)])
    t = np.clip(((p[:2] - a) * ab).sum(axis=1) / np.maximum(seg_len**2, 1e-12), 0.0, 1.0)
    closest = a + t[:, None] * ab
    dist = np.hypot(closest[:, 0] - p[0], closest[:, 1] - p[1])
    s = s_start[:-1] + t * seg_len
    heading = np.arctan2(ab[:, 1], ab[:, 0])
    aligned = (np.cos(heading - p[2]) > 0.0) & (seg_len > 1e-9)
    cost = dist + np.where(aligned, 0.0, 1e3)
    if previous_s is not None:
        cost = cost + 0.1 * np.maximum(previous_s - 2.0 - s, 0.0)
    k = int(np.argmin(cost))
    s0 = float(s[k])
    targets = np.minimum(s0 + spacing * np.arange(count), s_start[-1])
    xs = np.interp(targets, s_start, path[:, 0])
    ys = np.interp(targets, s_start, path[:, 1])
    world = np.stack([xs, ys, np.zeros_like(xs)], axis=1)
    local = se2_relative(p, world)[:, :2]
    return local, s0


# -- reading a log ------------------------------------------------------------------------------


def log_metadata(path: Path) -> dict[str, str]:
    """The ``kaido`` metadata record of a log (written before any data, so a truncated log has
    it); ``{}`` when the log has none."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            for record in StreamReader(f, emit_chunks=True).records:
                if isinstance(record, Metadata) and record.name == METADATA_NAME:
                    return dict(record.metadata)
                if isinstance(record, Chunk | Message):
                    break
                if not isinstance(record, Header | Metadata):
                    continue
    except Exception:  # an unreadable head: fall back to the tolerant full scan
        pass
    metadata = log_summary(path)["metadata"]
    return dict(metadata.get(METADATA_NAME, {}))


@dataclass
class LogTrack:
    """The light part of a log (ego, agents, route), as arrays. ``K`` ticks."""

    ticks_ns: npt.NDArray[np.int64]
    """``(K,)`` log time of each tick, increasing."""
    ego: FloatArray
    """``(K, 6)`` world x, y [m], yaw [rad], speed [m/s], ax [m/s²], yaw rate [rad/s] (NaN where
    not logged)."""
    ego_box: FloatArray
    """``(K, 5)`` the ego's world box [x, y, yaw, length, width] (NaN where not logged)."""
    agents: FloatArray
    """``(A, 9)`` one row per agent per tick: tick index, track id, AgentClass, world x, y [m],
    yaw [rad], length, width [m], speed [m/s]."""
    has_agents: npt.NDArray[np.bool_]
    """``(K,)`` whether the tick logged the scene's agents."""
    routes: list[tuple[int, FloatArray]]
    """(log time, world polyline ``(P, 2)``) of each route written."""
    lights: dict[int, list[tuple[int, FloatArray]]]
    """Log time → ``(TrafficLightClass, stop line (2, 2))`` of each light with a stop line."""
    complete: bool
    read_error: str | None

    def tick_index(self, times_ns: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Index of the tick at each time (within half a tick), -1 where none."""
        t = np.asarray(times_ns, dtype=np.int64)
        if len(self.ticks_ns) == 0:
            return np.full(t.shape, -1, dtype=np.int64)
        half = max(int(np.median(np.diff(self.ticks_ns))) // 2, 1) if len(self.ticks_ns) > 1 else 1
        i = np.clip(np.searchsorted(self.ticks_ns, t), 0, len(self.ticks_ns) - 1)
        j = np.clip(i - 1, 0, len(self.ticks_ns) - 1)
        best = np.where(np.abs(self.ticks_ns[j] - t) < np.abs(self.ticks_ns[i] - t), j, i).astype(
            np.int64
        )
        return np.where(np.abs(self.ticks_ns[best] - t) < half, best, -1)


def _time_ns(stamp: Any) -> int:
    return int(stamp["sec"]) * 1_000_000_000 + int(stamp["nsec"])


def _nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _quat_yaw(q: Any) -> float:
    return 2.0 * math.atan2(float(q.z), float(q.w))


def read_log_track(path: Path) -> LogTrack:
    """Read the ego states, ground-truth agents and routes of a log (see :class:`LogTrack`)."""
    messages, report = read_log_with_report(
        Path(path), topics=(TOPIC_EGO_STATE, TOPIC_AGENTS, TOPIC_ROUTE, TOPIC_TRAFFIC_LIGHTS)
    )
    lights: dict[int, list[tuple[int, FloatArray]]] = {}
    light_classes = {
        "green": TrafficLightClass.GREEN,
        "yellow": TrafficLightClass.YELLOW,
        "red": TrafficLightClass.RED,
    }
    ego_rows: dict[int, list[float]] = {}
    ego_boxes: dict[int, list[float]] = {}
    agent_rows: dict[int, list[list[float]]] = {}
    routes: list[tuple[int, FloatArray]] = []
    class_names = {c.name.lower(): c for c in AgentClass}
    for m in messages:
        if m.topic == TOPIC_EGO_STATE:
            d = m.message
            ego_rows[m.log_time_ns] = [
                _nan(d.get(k)) for k in ("x", "y", "yaw", "speed", "ax", "yaw_rate")
            ]
        elif m.topic == TOPIC_AGENTS:
            rows = agent_rows.setdefault(m.log_time_ns, [])
            for entity in m.message.entities:
                if not entity.cubes:
                    continue
                cube = entity.cubes[0]
                box = [
                    cube.pose.position.x,
                    cube.pose.position.y,
                    _quat_yaw(cube.pose.orientation),
                    cube.size.x,
                    cube.size.y,
                ]
                if entity.id == "ego":
                    ego_boxes[m.log_time_ns] = box
                    continue
                if not entity.id.startswith("agent/"):
                    continue
                meta = {kv.key: kv.value for kv in entity.metadata}
                cls = class_names.get(meta.get("class", ""), AgentClass.UNKNOWN)
                try:
                    track = int(meta.get("track_id", entity.id.removeprefix("agent/")))
                    speed = float(meta.get("speed", "nan"))
                except ValueError:
                    continue
                rows.append([track, float(cls), box[0], box[1], box[2], box[3], box[4], speed])
        elif m.topic == TOPIC_TRAFFIC_LIGHTS:
            tick_lights = lights.setdefault(m.log_time_ns, [])
            for entity in m.message.entities:
                if not entity.lines or len(entity.lines[0].points) < 2:
                    continue
                meta = {kv.key: kv.value for kv in entity.metadata}
                light = light_classes.get(meta.get("state", ""), TrafficLightClass.NONE)
                line = np.array([[p.x, p.y] for p in entity.lines[0].points[:2]], dtype=np.float64)
                tick_lights.append((int(light), line))
        elif m.topic == TOPIC_ROUTE:
            for entity in m.message.entities:
                if entity.id == "route" and entity.lines:
                    pts = np.array([[p.x, p.y] for p in entity.lines[0].points], dtype=np.float64)
                    if len(pts):
                        routes.append((m.log_time_ns, pts))
    ticks = np.array(sorted(ego_rows), dtype=np.int64)
    index = {int(t): i for i, t in enumerate(ticks)}
    ego = np.array([ego_rows[int(t)] for t in ticks], dtype=np.float64).reshape(-1, len(_Ego))
    ego_box = np.full((len(ticks), len(_Box)), np.nan)
    for t, box in ego_boxes.items():
        if t in index:
            ego_box[index[t]] = box
    has_agents = np.zeros(len(ticks), dtype=bool)
    agents: list[list[float]] = []
    for t, rows in agent_rows.items():
        if t not in index:
            continue
        has_agents[index[t]] = True
        agents.extend([float(index[t]), *row] for row in rows)
    agent_array = np.array(agents, dtype=np.float64).reshape(-1, len(_Agent))
    return LogTrack(
        ticks_ns=ticks,
        ego=ego,
        ego_box=ego_box,
        agents=agent_array,
        has_agents=has_agents,
        routes=routes,
        lights=lights,
        complete=report.complete,
        read_error=report.error,
    )


# -- the map of a log ---------------------------------------------------------------------------


def _config_of(metadata: Mapping[str, str]) -> dict[str, Any]:
    try:
        config = json.loads(metadata.get("provenance", "{}")).get("config")
    except (json.JSONDecodeError, AttributeError):
        return {}
    return config if isinstance(config, dict) else {}


def _town_spec_of(config: Mapping[str, Any]) -> dict[str, Any] | None:
    extra = config.get("extra") or {}
    text = extra.get("collect.town_spec") if isinstance(extra, Mapping) else None
    if not text:
        return None
    try:
        spec = json.loads(text)
    except json.JSONDecodeError:
        return None
    return spec if isinstance(spec, dict) and spec else None


def resolve_map(log_path: Path, metadata: Mapping[str, str]) -> tuple[RoadMap, str]:
    """The road map a log was driven on, and where it came from.

    Tried in order: the drive options' ``map_path`` (as recorded, then relative to the log's
    folder), the log folder's ``town.xodr`` (``kaido drive``'s generated town), the generated
    town's parameters (``collect.town_spec``). ``FileNotFoundError`` naming the log otherwise.
    """
    log_path = Path(log_path)
    config = _config_of(metadata)
    tried: list[str] = []
    candidates: list[Path] = []
    recorded = config.get("map_path")
    if recorded:
        candidates += [Path(recorded), log_path.parent / Path(recorded).name]
    candidates.append(log_path.parent / "town.xodr")
    for candidate in candidates:
        tried.append(str(candidate))
        if candidate.is_file():
            return RoadMap.from_file(candidate), str(candidate)
    town = _town_spec_of(config)
    if town is not None:
        from kaido.scene.town_generator import TownSpec, generate_town

        spec = TownSpec(**town)
        return RoadMap.from_opendrive(generate_town(spec), name=spec.name), "generated:town_spec"
    raise FileNotFoundError(
        f"{log_path}: cannot find the log's map (tried {', '.join(tried) or 'nothing'}; "
        f"no generated-town parameters in its metadata)"
    )


def _town_key(metadata: Mapping[str, str]) -> str:
    config = _config_of(metadata)
    town = _town_spec_of(config)
    if town is not None:
        body = {k: v for k, v in town.items() if k != "name"}
        digest = hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]
        return f"generated-{digest}"
    if config.get("map_path"):
        return Path(str(config["map_path"])).stem
    if config:  # kaido drive's own generated town: its seed is the episode's seed
        return f"generated-drive-seed{config.get('seed')}"
    return metadata.get("scenario", "unknown")


# -- building one shard -------------------------------------------------------------------------


def shard_name(log_path: Path, logs_dir: Path) -> str:
    """The shard name of a log below ``logs_dir`` (see the module docstring)."""
    rel = Path(os.path.abspath(log_path)).relative_to(os.path.abspath(logs_dir)).with_suffix("")
    parts = list(rel.parts)
    if len(parts) > 1 and parts[-1] == "run":
        parts = parts[:-1]
    return "__".join(parts)


@dataclass
class _Plan:
    """Which ticks each sample uses."""

    center: npt.NDArray[np.int64]  # (S,)
    past: npt.NDArray[np.int64]  # (S, T_p)
    future: npt.NDArray[np.int64]  # (S, T_f)
    occupancy: npt.NDArray[np.int64]  # (S, T_o)


def _empty_plan(spec: SampleSpec) -> _Plan:
    def empty(n: int) -> npt.NDArray[np.int64]:
        return np.zeros((0, n), dtype=np.int64)

    return _Plan(
        np.zeros(0, dtype=np.int64),
        empty(spec.past_steps),
        empty(spec.future_steps),
        empty(spec.occupancy_steps),
    )


def _plan_samples(track: LogTrack, spec: SampleSpec, every: int) -> _Plan:
    if len(track.ticks_ns) == 0:
        return _empty_plan(spec)
    step = spec.step_ns
    t0 = int(track.ticks_ns[0])
    count = int((int(track.ticks_ns[-1]) - t0) // step) + 1
    lattice = track.tick_index(t0 + step * np.arange(count, dtype=np.int64))
    finite = np.asarray(np.isfinite(track.ego[:, : _Ego.YAW_RATE + 1]).all(axis=1))
    centers, pasts, futures, occs = [], [], [], []
    horizon = spec.horizon_steps
    for j in range(spec.past_steps, count - horizon):
        if j % every:
            continue
        window = lattice[j - spec.past_steps : j + horizon + 1]
        if (window < 0).any() or not finite[window].all():
            continue
        centers.append(lattice[j])
        pasts.append(lattice[j - spec.past_steps : j])
        futures.append(lattice[j + 1 : j + spec.future_steps + 1])
        occs.append(lattice[j + 1 : j + spec.occupancy_steps + 1])
    if not centers:
        return _empty_plan(spec)
    return _Plan(
        np.array(centers, dtype=np.int64),
        np.array(pasts, dtype=np.int64),
        np.array(futures, dtype=np.int64),
        np.array(occs, dtype=np.int64),
    )


def _speed_limit(road_map: RoadMap, pose: FloatArray) -> float:
    found = road_map.nearest_lane(float(pose[0]), float(pose[1]), heading=float(pose[2]))
    if found is None:
        found = road_map.nearest_lane(float(pose[0]), float(pose[1]), max_distance=15.0)
    if found is None:
        return float(road_map.config.default_speed_limit)
    return float(road_map.lanes[found.lane].speed_limit)


class _AgentIndex:
    """Agent rows by (track, tick)."""

    def __init__(self, agents: FloatArray) -> None:
        self.agents = agents
        self.by_tick: dict[int, npt.NDArray[np.int64]] = {}
        self.row: dict[tuple[int, int], int] = {}
        ticks = agents[:, _Agent.TICK].astype(np.int64)
        tracks = agents[:, _Agent.TRACK].astype(np.int64)
        order = np.argsort(ticks, kind="stable")
        for i in order:
            self.row[(int(tracks[i]), int(ticks[i]))] = int(i)
        if len(ticks):
            splits = np.flatnonzero(np.diff(ticks[order])) + 1
            for group in np.split(order, splits):
                self.by_tick[int(ticks[group[0]])] = group

    def at(self, tick: int) -> npt.NDArray[np.int64]:
        return self.by_tick.get(int(tick), np.zeros(0, dtype=np.int64))

    def find(self, track: int, tick: int) -> int:
        return self.row.get((int(track), int(tick)), -1)


def _agent_velocity(
    track: LogTrack, index: _AgentIndex, row: int, tick: int
) -> tuple[float, float]:
    """World velocity of an agent by central (or one-sided) differences of its positions."""
    a = index.agents
    tid = int(a[row, _Agent.TRACK])
    prev = index.find(tid, tick - 1) if tick > 0 else -1
    nxt = index.find(tid, tick + 1) if tick + 1 < len(track.ticks_ns) else -1
    lo = prev if prev >= 0 else row
    hi = nxt if nxt >= 0 else row
    lo_tick = tick - 1 if prev >= 0 else tick
    hi_tick = tick + 1 if nxt >= 0 else tick
    if lo == hi:
        speed = a[row, _Agent.SPEED]
        speed = 0.0 if not math.isfinite(speed) else float(speed)
        yaw = a[row, _Agent.YAW]
        return speed * math.cos(yaw), speed * math.sin(yaw)
    dt = (track.ticks_ns[hi_tick] - track.ticks_ns[lo_tick]) * 1e-9
    return (
        float(a[hi, _Agent.X] - a[lo, _Agent.X]) / dt,
        float(a[hi, _Agent.Y] - a[lo, _Agent.Y]) / dt,
    )


def _fill_track_fields(
    out: Mapping[str, npt.NDArray[Any]],
    i: int,
    track: LogTrack,
    plan: _Plan,
    agents: _AgentIndex,
    road_map: RoadMap,
    spec: SampleSpec,
    route_state: dict[str, float | None],
) -> None:
    """Everything of sample ``i`` that comes from the ego, agents, route and map."""
    c = int(plan.center[i])
    ego = track.ego
    pose = ego[c, : _Ego.YAW + 1]
    state = out["ego_state"][i]
    state[EgoFeature.SPEED] = ego[c, _Ego.SPEED]
    state[EgoFeature.ACCEL] = ego[c, _Ego.AX]
    state[EgoFeature.YAW_RATE] = ego[c, _Ego.YAW_RATE]
    state[EgoFeature.SPEED_LIMIT] = _speed_limit(road_map, pose)

    out["ego_past"][i] = se2_relative(pose, ego[plan.past[i], : _Ego.YAW + 1])
    future = se2_relative(pose, ego[plan.future[i], : _Ego.YAW + 1])
    out["ego_future"][i] = future
    poses = np.vstack([np.zeros((1, 3)), future])
    speeds = np.concatenate([[ego[c, _Ego.SPEED]], ego[plan.future[i], _Ego.SPEED]])
    out["actions"][i] = actions_from_trajectory(poses, speeds, spec.step_seconds)

    t = int(track.ticks_ns[c])
    route = None
    for t_route, path in track.routes:
        if t_route <= t:
            route = path
    if route is not None:
        local, s0 = route_points(
            route, pose, spec.route_points, spec.route_spacing, route_state.get("s")
        )
        out["route"][i] = local
        route_state["s"] = s0
        out["traffic_light"][i] = light_ahead(route, s0, track.lights.get(t, []))

    grid = spec.grid
    rows = agents.at(c)
    a = agents.agents[rows]
    keep = np.isin(a[:, _Agent.CLASS], [int(k) for k in _AGENT_CLASS_TO_DETECTION])
    rows, a = rows[keep], a[keep]
    world = a[:, [_Agent.X, _Agent.Y, _Agent.YAW]]
    local = se2_relative(pose, world) if len(a) else np.zeros((0, 3))
    boxes = np.zeros((len(a), len(_Box)))
    boxes[:, _Box.X : _Box.YAW + 1] = local
    boxes[:, _Box.LENGTH] = a[:, _Agent.LENGTH]
    boxes[:, _Box.WIDTH] = a[:, _Agent.WIDTH]
    classes = np.array(
        [_AGENT_CLASS_TO_DETECTION[AgentClass(int(k))] for k in a[:, _Agent.CLASS]], dtype=np.int64
    )
    sem = out["bev_semantics"][i]
    drawn = road_map.rasterize(
        pose,
        grid,
        layers=(RASTER_LAYER_NAMES[MapLayer.DRIVABLE], RASTER_LAYER_NAMES[MapLayer.LANE_DIVIDERS]),
    )
    sem[BevClass.DRIVABLE] = drawn[0]
    sem[BevClass.LANE_DIVIDER] = drawn[1]
    for det, bev in _DETECTION_TO_BEV.items():
        mask = classes == det
        if mask.any():
            sem[bev] |= box_footprint_mask(boxes[mask], grid)

    x_lo, x_hi = spec.grid_x_range
    y_lo, y_hi = spec.grid_y_range
    inside = (
        (local[:, 0] >= x_lo) & (local[:, 0] < x_hi) & (local[:, 1] >= y_lo) & (local[:, 1] < y_hi)
    )
    order = [k for k in np.argsort(np.hypot(local[:, 0], local[:, 1]), kind="stable") if inside[k]]
    order = order[: spec.max_agents]
    cos, sin = math.cos(pose[2]), math.sin(pose[2])
    for m, k in enumerate(order):
        vx, vy = _agent_velocity(track, agents, int(rows[k]), c)
        box = out["boxes"][i, m]
        box[BoxField.X] = boxes[k, _Box.X]
        box[BoxField.Y] = boxes[k, _Box.Y]
        box[BoxField.LENGTH] = boxes[k, _Box.LENGTH]
        box[BoxField.WIDTH] = boxes[k, _Box.WIDTH]
        box[BoxField.YAW] = boxes[k, _Box.YAW]
        box[BoxField.VX] = cos * vx + sin * vy
        box[BoxField.VY] = -sin * vx + cos * vy
        out["box_class"][i, m] = classes[k]
        out["box_mask"][i, m] = True
        tid = int(a[k, _Agent.TRACK])
        for step, tick in enumerate(plan.future[i]):
            row = agents.find(tid, int(tick))
            if row < 0:
                continue
            p = agents.agents[row, [_Agent.X, _Agent.Y, _Agent.YAW]]
            out["agent_future"][i, m, step] = se2_relative(pose, p)[:2]
            out["agent_future_mask"][i, m, step] = True


def _lidar_ego_points(message: Any, extrinsics: FloatArray) -> npt.NDArray[np.float64]:
    """``(n, 4)`` finite ego-frame x, y, z, intensity of a PointCloud message."""
    fields = decode_point_cloud(message)
    xyz = np.stack([fields["x"], fields["y"], fields["z"]], axis=1).astype(np.float64)
    intensity = fields.get("intensity", np.zeros(len(xyz), dtype=np.float32)).astype(np.float64)
    ego = xyz @ extrinsics[:3, :3].T + extrinsics[:3, 3]
    out = np.concatenate([ego, intensity[:, None]], axis=1)
    return out[np.isfinite(out).all(axis=1)]


def _ego_box_keep(points: FloatArray, box_world: FloatArray, pose: FloatArray) -> FloatArray:
    """Mask of ego-frame points ``(n, >=2)`` outside the ego's own box (grown by a margin)."""
    if not np.isfinite(box_world).all():
        return np.ones(len(points), dtype=bool)
    centre = se2_relative(pose, box_world[[_Box.X, _Box.Y, _Box.YAW]])
    c, s = math.cos(centre[2]), math.sin(centre[2])
    dx = points[:, 0] - centre[0]
    dy = points[:, 1] - centre[1]
    lx = c * dx + s * dy
    ly = -s * dx + c * dy
    inside = (np.abs(lx) <= 0.5 * box_world[_Box.LENGTH] + EGO_BOX_MARGIN) & (
        np.abs(ly) <= 0.5 * box_world[_Box.WIDTH] + EGO_BOX_MARGIN
    )
    return np.asarray(~inside)


def build_shard(
    log_path: Path,
    shard_dir: Path,
    spec: SampleSpec,
    *,
    every: int = 1,
    seed: int = 0,
    name: str | None = None,
    log_label: str | None = None,
) -> dict[str, Any]:
    """Build the shard of one log into ``shard_dir`` (replaced atomically); returns its
    ``shard.json`` data. Raises on a log that cannot be used (no map, not MCAP)."""
    log_path = Path(log_path)
    shard_dir = Path(shard_dir)
    name = name or shard_dir.name
    metadata = log_metadata(log_path)
    rig_data = metadata.get("sensor_rig")
    rig = SensorRig.from_dict(json.loads(rig_data)) if rig_data else SensorRig()
    road_map, map_source = resolve_map(log_path, metadata)
    track = read_log_track(log_path)
    plan = _plan_samples(track, spec, every)
    count = len(plan.center)
    stat = log_path.stat()
    config = _config_of(metadata)
    town = _town_key(metadata)
    episode_seed = metadata.get("seed", str(config.get("seed", "")))
    info: dict[str, Any] = {
        "format": SHARD_FORMAT,
        "name": name,
        "samples": count,
        "spec": spec.to_dict(),
        "fields": field_layout(spec),
        "every": every,
        "seed": seed,
        "stride_ns": spec.step_ns * every,
        "log": log_label or str(log_path),
        "source": {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns},
        "town": town,
        "episode_seed": episode_seed,
        "group": f"{town}/seed{episode_seed}",
        "map": map_source,
        "complete": track.complete,
        "read_error": track.read_error,
        "ticks": len(track.ticks_ns),
        "timestamps_ns": [int(track.ticks_ns[c]) for c in plan.center],
    }
    tmp = shard_dir.with_name(f".{shard_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        rng_key = zlib.crc32(str(info["group"]).encode())
        missing = _write_fields(tmp, log_path, track, plan, road_map, rig, spec, (seed, rng_key))
        info["missing"] = missing
        info["bytes"] = sum(p.stat().st_size for p in tmp.glob("*.npy"))
        (tmp / SHARD_META).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
        shutil.rmtree(shard_dir, ignore_errors=True)
        os.replace(tmp, shard_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return info


def _write_fields(
    folder: Path,
    log_path: Path,
    track: LogTrack,
    plan: _Plan,
    road_map: RoadMap,
    rig: SensorRig,
    spec: SampleSpec,
    rng_key: tuple[int, int],
) -> dict[str, int]:
    """Write every field of the planned samples into ``folder``; returns the missing-sensor
    counts. The lidar subsample of a sample is seeded by ``rng_key`` and its time."""
    count = len(plan.center)
    missing: dict[str, int] = {}
    if count == 0:
        return missing
    out: dict[str, npt.NDArray[Any]] = {
        fname: np.lib.format.open_memmap(
            folder / f"{fname}.npy", mode="w+", dtype=f.dtype, shape=(count, *f.shape(spec))
        )
        for fname, f in SAMPLE_FIELDS.items()
    }
    out["box_class"][:] = PAD_CLASS
    h, w = spec.image_hw
    for ci, cam_name in enumerate(spec.cameras):
        if cam_name in rig.camera_names:
            cam = rig.camera(cam_name)
            scale = np.diag([w / cam.width, h / cam.height, 1.0])
            out["camera_intrinsics"][:, ci] = scale @ cam.intrinsic_matrix()
            out["camera_to_ego"][:, ci] = cam.optical_to_ego().as_matrix()
        else:
            out["camera_intrinsics"][:, ci] = np.eye(3)
            out["camera_to_ego"][:, ci] = np.eye(4)

    agents = _AgentIndex(track.agents)
    route_state: dict[str, float | None] = {"s": None}
    for i in range(count):
        _fill_track_fields(out, i, track, plan, agents, road_map, spec, route_state)

    # pass 2: sensors, at the ticks the samples need
    ticks = track.ticks_ns
    sample_at = {int(ticks[c]): i for i, c in enumerate(plan.center)}
    occupancy_at: dict[int, list[tuple[int, int]]] = {}
    for i in range(count):
        for k, tick in enumerate(plan.occupancy[i]):
            occupancy_at.setdefault(int(ticks[tick]), []).append((i, k))
    tick_of = {int(t): j for j, t in enumerate(ticks)}
    camera_topics = {camera_image_topic(c): ci for ci, c in enumerate(spec.cameras)}
    lidar_topics = {lidar_topic(x.name): x.extrinsics.as_matrix() for x in rig.lidars}
    n_lidars = len(rig.lidars)
    x_lo, x_hi = spec.grid_x_range
    y_lo, y_hi = spec.grid_y_range
    lidar_done: set[int] = set()
    occupancy_done: set[tuple[int, int]] = set()

    def use_lidar(t: int, parts: list[FloatArray]) -> None:
        points = np.concatenate(parts, axis=0) if parts else np.zeros((0, 4))
        tick = tick_of[t]
        if t in sample_at:
            i = sample_at[t]
            inside = (
                (points[:, 0] >= x_lo)
                & (points[:, 0] < x_hi)
                & (points[:, 1] >= y_lo)
                & (points[:, 1] < y_hi)
            )
            chosen = points[inside]
            if len(chosen) > spec.max_lidar_points:
                rng = np.random.default_rng([*rng_key, t])
                pick = np.sort(rng.choice(len(chosen), spec.max_lidar_points, replace=False))
                chosen = chosen[pick]
            out["lidar_points"][i, : len(chosen)] = chosen.astype(np.float16)
            out["lidar_count"][i] = len(chosen)
            lidar_done.add(i)
        targets = occupancy_at.get(t)
        if targets:
            pose = track.ego[tick, : _Ego.YAW + 1]
            z = points[:, 2]
            hits = points[(z >= spec.occupancy_z_min) & (z <= spec.occupancy_z_max)]
            hits = hits[_ego_box_keep(hits, track.ego_box[tick], pose)]
            world = np.zeros((len(hits), 3))
            world[:, :2] = hits[:, :2]
            world = se2_compose(pose, world)
            for i, k in targets:
                ref = track.ego[plan.center[i], : _Ego.YAW + 1]
                local = se2_relative(ref, world)[:, :2]
                out["occupancy_future"][i, k] = points_occupancy(local, spec.grid)
                occupancy_done.add((i, k))

    lidar_parts: dict[int, list[FloatArray]] = {}  # sweeps of a tick until every lidar's is in
    topics = [*camera_topics, *lidar_topics]
    for m in read_log(log_path, topics=topics):
        t = m.log_time_ns
        if m.topic in camera_topics:
            i = sample_at.get(t, -1)
            if i < 0:
                continue
            try:
                rgb = decode_image(m.message)
            except ValueError:
                continue
            ci = camera_topics[m.topic]
            cam_name = spec.cameras[ci]
            small = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
            out["camera_images"][i, ci] = np.transpose(small, (2, 0, 1))
            out["camera_mask"][i, ci] = True
            if cam_name in rig.camera_names:
                cam = rig.camera(cam_name)
                if (rgb.shape[1], rgb.shape[0]) != (cam.width, cam.height):
                    scale = np.diag([w / rgb.shape[1], h / rgb.shape[0], 1.0])
                    out["camera_intrinsics"][i, ci] = scale @ cam.intrinsic_matrix()
        elif m.topic in lidar_topics:
            if t not in sample_at and t not in occupancy_at:
                continue
            parts = lidar_parts.setdefault(t, [])
            parts.append(_lidar_ego_points(m.message, lidar_topics[m.topic]))
            if len(parts) == n_lidars:
                use_lidar(t, lidar_parts.pop(t))
    for t, parts in sorted(lidar_parts.items()):  # sweeps with a lidar missing
        use_lidar(t, parts)

    for ci, cam_name in enumerate(spec.cameras):
        absent = int(count - out["camera_mask"][:, ci].sum())
        if absent:
            missing[f"camera:{cam_name}"] = absent
    if count - len(lidar_done):
        missing["lidar"] = count - len(lidar_done)
    if count * spec.occupancy_steps - len(occupancy_done):
        missing["occupancy"] = count * spec.occupancy_steps - len(occupancy_done)
    for array in out.values():
        if isinstance(array, np.memmap):
            array.flush()
    return missing


# -- the dataset ----------------------------------------------------------------------------------


def find_logs(logs_dir: Path) -> list[Path]:
    """Every ``*.mcap`` below ``logs_dir``, sorted."""
    logs_dir = Path(logs_dir)
    if not logs_dir.is_dir():
        raise FileNotFoundError(f"{logs_dir}: no such folder of logs")
    return sorted(p for p in logs_dir.rglob("*.mcap") if p.is_file())


@dataclass(frozen=True)
class _Job:
    """One log to build (plain data, sent to a worker process)."""

    name: str
    log_path: str
    shard_dir: str
    spec: dict[str, Any]
    every: int
    seed: int
    label: str


def _shard_job(job: _Job) -> dict[str, Any]:
    """One log's shard in a worker; errors come back as data."""
    spec = SampleSpec.from_dict(job.spec)
    t0 = time.perf_counter()
    try:
        info = build_shard(
            Path(job.log_path),
            Path(job.shard_dir),
            spec,
            every=job.every,
            seed=job.seed,
            log_label=job.label,
        )
    except Exception as err:
        return {"log": job.label, "error": f"{type(err).__name__}: {err}"}
    info.pop("timestamps_ns", None)
    info["build_seconds"] = time.perf_counter() - t0
    return info


def _reusable(shard_dir: Path, log_path: Path, spec: SampleSpec, every: int, seed: int) -> bool:
    meta = shard_dir / SHARD_META
    if not meta.is_file():
        return False
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return False
    stat = log_path.stat()
    return bool(
        info.get("format") == SHARD_FORMAT
        and info.get("spec") == spec.to_dict()
        and info.get("every") == every
        and info.get("seed") == seed
        and info.get("source") == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    )


def _split(groups: Iterable[str], val_fraction: float, seed: int) -> set[str]:
    """The validation groups: a ``val_fraction`` share, by a stable hash of their keys."""
    unique = sorted(set(groups))
    if val_fraction <= 0.0 or len(unique) < 2:
        return set()
    ranked = sorted(unique, key=lambda g: hashlib.sha1(f"{seed}:{g}".encode()).hexdigest())
    n_val = min(max(int(round(val_fraction * len(unique))), 1), len(unique) - 1)
    return set(ranked[:n_val])


@dataclass(frozen=True)
class BuildSummary:
    """What :func:`build_dataset` wrote."""

    manifest_path: Path
    logs: int
    samples: int
    train_samples: int
    val_samples: int
    failed: tuple[tuple[str, str], ...]
    bytes: int
    seconds: float

    @property
    def bytes_per_sample(self) -> float:
        return self.bytes / max(self.samples, 1)


def build_dataset(
    logs_dir: Path,
    out_dir: Path,
    spec: SampleSpec | None = None,
    *,
    every: int = 1,
    val_fraction: float = 0.1,
    workers: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> BuildSummary:
    """Build shards of every log under ``logs_dir`` into ``out_dir`` (format: module docstring).

    ``every``: keep every ``every``-th lattice time (1: a sample every ``step_seconds``).
    ``workers`` logs build at once in separate processes (default: the CPU count; 1 builds in
    this process). Shards of unchanged logs built with the same options are kept.
    """
    spec = spec or SampleSpec()
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"dataset build: every must be an integer >= 1, got {every!r}")
    if not (math.isfinite(val_fraction) and 0.0 <= val_fraction < 1.0):
        raise ValueError(f"dataset build: val_fraction must be in [0, 1), got {val_fraction}")
    logs_dir = Path(logs_dir)
    out_dir = Path(out_dir)
    logs = find_logs(logs_dir)
    if not logs:
        raise FileNotFoundError(f"{logs_dir}: no .mcap logs below it")
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise ValueError(f"dataset build: workers must be >= 1, got {workers}")
    names = [shard_name(p, logs_dir) for p in logs]
    shards_dir = out_dir / "shards"
    shards_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    jobs: list[_Job] = []
    for path, name in zip(logs, names, strict=True):
        label = str(Path(os.path.abspath(path)).relative_to(os.path.abspath(logs_dir)))
        if _reusable(shards_dir / name, path, spec, every, seed):
            info = json.loads((shards_dir / name / SHARD_META).read_text(encoding="utf-8"))
            info.pop("timestamps_ns", None)
            results[name] = info
        else:
            job = _Job(name, str(path), str(shards_dir / name), spec.to_dict(), every, seed, label)
            jobs.append(job)
    from tqdm import tqdm

    with tqdm(total=len(jobs), desc="dataset", unit="log", disable=not progress) as bar:
        if workers == 1 or len(jobs) <= 1:
            for job in jobs:
                results[job.name] = _shard_job(job)
                bar.update(1)
        else:
            context = mp.get_context("spawn")
            with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                futures = {pool.submit(_shard_job, job): job.name for job in jobs}
                for future in cf.as_completed(futures):
                    name = futures[future]
                    try:
                        results[name] = future.result()
                    except Exception as err:  # a worker that died (e.g. killed)
                        results[name] = {"log": name, "error": f"{type(err).__name__}: {err}"}
                    bar.update(1)

    failed: list[dict[str, str]] = []
    shards: list[dict[str, Any]] = []
    for name in names:
        info = results[name]
        if "error" in info:
            failed.append({"log": str(info["log"]), "error": str(info["error"])})
            shutil.rmtree(shards_dir / name, ignore_errors=True)
            continue
        if info["samples"] == 0:
            failed.append(
                {
                    "log": str(info["log"]),
                    "error": f"no sample: {info['ticks']} ticks, a sample needs "
                    f"{(spec.past_steps + spec.horizon_steps) * spec.step_seconds:.1f} s of log"
                    + ("" if info["complete"] else f" (truncated: {info['read_error']})"),
                }
            )
        shards.append(
            {
                "name": name,
                "path": f"shards/{name}",
                "log": info["log"],
                "samples": info["samples"],
                "group": info["group"],
                "town": info["town"],
                "seed": info["episode_seed"],
                "map": info["map"],
                "complete": info["complete"],
                "read_error": info["read_error"],
                "missing": info.get("missing", {}),
                "bytes": info.get("bytes", 0),
            }
        )
    val_groups = _split((s["group"] for s in shards if s["samples"]), val_fraction, seed)
    for s in shards:
        s["split"] = "val" if s["group"] in val_groups else "train"
    splits = {
        split: {
            "shards": [s["name"] for s in shards if s["split"] == split and s["samples"]],
            "samples": sum(s["samples"] for s in shards if s["split"] == split),
        }
        for split in ("train", "val")
    }
    total_bytes = sum(s["bytes"] for s in shards)
    samples = sum(s["samples"] for s in shards)
    options = {
        "logs_dir": str(logs_dir),
        "every": every,
        "val_fraction": val_fraction,
        "seed": seed,
    }
    manifest = {
        "format": DATASET_FORMAT,
        "spec": spec.to_dict(),
        "fields": field_layout(spec),
        "shards": shards,
        "splits": splits,
        "failed": failed,
        "counts": {
            "logs": len(logs),
            "shards": sum(1 for s in shards if s["samples"]),
            "samples": samples,
            "truncated_logs": sum(1 for s in shards if not s["complete"]),
            "failed_logs": len(failed),
            "bytes": total_bytes,
            "bytes_per_sample": total_bytes / max(samples, 1),
        },
        "options": options,
        "provenance": provenance({"spec": spec, **options}),
    }
    manifest_path = out_dir / MANIFEST_NAME
    tmp = manifest_path.with_name(f".{MANIFEST_NAME}.tmp")
    tmp.write_text(json.dumps(to_jsonable(manifest), indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, manifest_path)
    return BuildSummary(
        manifest_path=manifest_path,
        logs=len(logs),
        samples=samples,
        train_samples=splits["train"]["samples"],
        val_samples=splits["val"]["samples"],
        failed=tuple((f["log"], f["error"]) for f in failed),
        bytes=total_bytes,
        seconds=time.perf_counter() - t0,
    )


def read_manifest(data_dir: Path) -> dict[str, Any]:
    """``DATA_DIR/manifest.json`` as data; errors name the file."""
    path = Path(data_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no dataset here (build one with `kaido dataset build`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != DATASET_FORMAT:
        raise ValueError(f"{path}: not a kaido dataset manifest (format {DATASET_FORMAT!r})")
    return data


def load_shard(shard_dir: Path, spec: SampleSpec) -> dict[str, npt.NDArray[Any]]:
    """Every field of a shard as read-only memory maps ``(S, ...)``, checked against ``spec``."""
    shard_dir = Path(shard_dir)
    out: dict[str, npt.NDArray[Any]] = {}
    samples: int | None = None
    for fname, f in SAMPLE_FIELDS.items():
        path = shard_dir / f"{fname}.npy"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing field file of shard {shard_dir.name}")
        array = np.load(path, mmap_mode="r", allow_pickle=False)
        want = f.shape(spec)
        if array.dtype != f.dtype or array.shape[1:] != want:
            raise ValueError(
                f"{path}: expected {f.dtype.name} (S, {', '.join(map(str, want))}), "
                f"got {array.dtype.name} {array.shape}"
            )
        if samples is not None and array.shape[0] != samples:
            raise ValueError(f"{path}: {array.shape[0]} samples, other fields have {samples}")
        samples = array.shape[0]
        out[fname] = array
    return out
