"""Argoverse 2 motion-forecasting scenarios (and AV2 sensor logs) as :class:`ReplayScenario`.

Layout of a motion-forecasting scenario folder::

    <id>/scenario_<id>.parquet           one row per (track, timestep): track_id, object_type,
                                         object_category (0 fragment, 1 unscored, 2 scored,
                                         3 focal), timestep, position_x/y [m], heading [rad],
                                         velocity_x/y [m/s], start_timestamp [ns], focal_track_id
    <id>/log_map_archive_<id>.json       lane_segments (centerline, left/right_lane_boundary,
                                         lane_type, is_intersection, successors, predecessors,
                                         left/right_neighbor_id, left/right_lane_mark_type),
                                         drivable_areas, pedestrian_crossings

AV2's city frame is already kaido's world frame (x east, y north, z up, metres). 110 steps at
10 Hz; the protocol observes steps 0-49 (5 s, the present is step 49) and scores the next 60
(6 s), K = 6, miss threshold 2 m, on the focal track (single-agent) and the focal + scored tracks
(multi-agent). Numeric track ids keep their value; others (``"AV"``, the ego) get ids from
:data:`NON_NUMERIC_ID_BASE` up, listed in :attr:`ReplayScenario.source_ids`. The ``AV`` track is
the ego (:attr:`ReplayScenario.ego_track`).

AV2 motion data carries no box sizes: every track gets its class's :data:`DEFAULT_SIZES`.

:func:`load_av2_sensor_scenario` turns an AV2 sensor log (:class:`~kaido.logs.av2_sensor.
Av2SensorLog`) into a scenario: the sweep timestamps as the time grid, the annotated cuboids as
tracks (velocities the log cannot difference are set to 0 and listed in the notes), the ego's
rear-axle poses shifted forward by :data:`AV2_EGO_REAR_AXLE_TO_CENTER` as the ego track and the
log's ``map/log_map_archive_*.json`` as the road map; it has no prediction protocol.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from kaido.logs.replay_source import ReplayProtocol, ReplayScenario
from kaido.scene.agents import AgentClass, AgentIndex, Track
from kaido.scene.lane_graph import LaneGraphMap, LaneRecord, midpoint_line
from kaido.scene.road_map import LaneType, MapError

__all__ = [
    "AV2_CURRENT_INDEX",
    "AV2_EGO_REAR_AXLE_TO_CENTER",
    "AV2_OBJECT_TYPES",
    "AV2_PREDICTED_STEPS",
    "DEFAULT_SIZES",
    "NON_NUMERIC_ID_BASE",
    "load_av2_map",
    "load_av2_motion_scenario",
    "load_av2_sensor_scenario",
]

FloatArray = npt.NDArray[np.float64]

AV2_CURRENT_INDEX = 49
"""Index of the present: 50 observed steps (5 s at 10 Hz)."""
AV2_PREDICTED_STEPS = 60
"""Scored future steps (6 s at 10 Hz)."""
AV2_STEP_NS = 100_000_000
NON_NUMERIC_ID_BASE = 1_000_000_000
"""kaido ids given to tracks whose AV2 id is not a number (in sorted order of the AV2 id)."""
AV2_EGO_REAR_AXLE_TO_CENTER = 1.43
"""[m] the AV2 car's (Ford Fusion Hybrid: 4.87 m long, ~1.0 m rear overhang) box centre ahead of
its rear axle."""

AV2_OBJECT_TYPES: Mapping[str, AgentClass] = MappingProxyType(
    {
        "vehicle": AgentClass.VEHICLE,
        "bus": AgentClass.VEHICLE,
        "motorcyclist": AgentClass.CYCLIST,
        "cyclist": AgentClass.CYCLIST,
        "pedestrian": AgentClass.PEDESTRIAN,
        "riderless_bicycle": AgentClass.STATIC,
        "static": AgentClass.STATIC,
        "construction": AgentClass.STATIC,
        "background": AgentClass.UNKNOWN,
        "unknown": AgentClass.UNKNOWN,
    }
)
"""AV2 ``object_type`` → kaido class (others: ``UNKNOWN``)."""

DEFAULT_SIZES: Mapping[AgentClass, tuple[float, float]] = MappingProxyType(
    {
        AgentClass.VEHICLE: (4.5, 1.9),
        AgentClass.PEDESTRIAN: (0.6, 0.6),
        AgentClass.CYCLIST: (1.9, 0.7),
        AgentClass.STATIC: (1.0, 1.0),
        AgentClass.UNKNOWN: (1.0, 1.0),
    }
)
"""(length, width) [m] per class for sources without box sizes."""

_COLUMNS = (
    "track_id",
    "object_type",
    "object_category",
    "timestep",
    "position_x",
    "position_y",
    "heading",
    "velocity_x",
    "velocity_y",
    "start_timestamp",
    "focal_track_id",
)
_LANE_TYPES = {"VEHICLE": LaneType.DRIVING, "BUS": LaneType.DRIVING, "BIKE": LaneType.BIKING}
_FOCAL, _SCORED = 3, 2


def _read_parquet(path: Path) -> dict[str, npt.NDArray[Any]]:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"{path}: not a readable parquet file ({exc})") from exc
    out: dict[str, npt.NDArray[Any]] = {}
    for name in _COLUMNS:
        if name not in table.column_names:
            raise ValueError(f"{path}: missing column {name!r} of an AV2 scenario")
        col = table.column(name)
        if col.null_count:
            raise ValueError(f"{path}: column {name!r} has {col.null_count} null values")
        out[name] = col.to_numpy(zero_copy_only=False)
    return out


def _kaido_ids(names: list[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    others = sorted(n for n in names if not n.isdigit())
    for n in names:
        if n.isdigit():
            ids[n] = int(n)
    for k, n in enumerate(others):
        ids[n] = NON_NUMERIC_ID_BASE + k
    return ids


def _points(where: str, value: Any) -> FloatArray:
    try:
        pts = np.array([[p["x"], p["y"], p.get("z", 0.0)] for p in value], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: expected a list of {{x, y, z}} points ({exc})") from exc
    return pts.reshape(-1, 3)


def _changes(mark: str, side: str) -> bool:
    """Whether a lane may cross a boundary with AV2 mark ``mark`` on its ``side``."""
    mark = mark.upper()
    if mark in ("NONE", "UNKNOWN") or mark.startswith(("DASHED", "DOUBLE_DASH")):
        return True
    # mixed marks name the left line first: the line nearer to the lane decides
    if side == "left":
        return mark.startswith("SOLID_DASH")
    return mark.startswith("DASH_SOLID")


def load_av2_map(path: Path) -> LaneGraphMap:
    """An AV2 map archive (``log_map_archive_*.json``) as a :class:`LaneGraphMap`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable AV2 map JSON ({exc})") from exc
    segments = data.get("lane_segments") if isinstance(data, dict) else None
    if not isinstance(segments, dict):
        raise ValueError(f"{path}: no 'lane_segments' object (not an AV2 map archive)")
    records = []
    for key, seg in segments.items():
        where = f"{path}: lane_segments[{key}]"
        try:
            lane_id = int(seg["id"])
            left = _points(f"{where}.left_lane_boundary", seg["left_lane_boundary"])
            right = _points(f"{where}.right_lane_boundary", seg["right_lane_boundary"])
            centre = (
                _points(f"{where}.centerline", seg["centerline"])
                if "centerline" in seg
                else midpoint_line(left, right)
            )
        except KeyError as exc:
            raise ValueError(f"{where}: missing field {exc}") from exc
        left_mark = str(seg.get("left_lane_mark_type", "NONE"))
        right_mark = str(seg.get("right_lane_mark_type", "NONE"))
        ln, rn = seg.get("left_neighbor_id"), seg.get("right_neighbor_id")
        records.append(
            LaneRecord(
                lane_id=lane_id,
                centerline=centre,
                lane_type=_LANE_TYPES.get(str(seg.get("lane_type", "")), LaneType.OTHER),
                left_boundary=left,
                right_boundary=right,
                successors=tuple(int(s) for s in seg.get("successors") or ()),
                predecessors=tuple(int(s) for s in seg.get("predecessors") or ()),
                left_neighbor=None if ln is None else int(ln),
                right_neighbor=None if rn is None else int(rn),
                left_marking=left_mark,
                right_marking=right_mark,
                can_change_left=_changes(left_mark, "left"),
                can_change_right=_changes(right_mark, "right"),
                in_intersection=bool(seg.get("is_intersection", False)),
            )
        )
    try:
        return LaneGraphMap(path.stem, records, source=str(path))
    except MapError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def _scenario_files(path: Path) -> tuple[Path, Path]:
    if path.is_dir():
        found = sorted(path.glob("scenario_*.parquet"))
        if len(found) != 1:
            raise ValueError(
                f"{path}: expected one scenario_*.parquet in an AV2 scenario folder, found "
                f"{len(found)}"
            )
        parquet = found[0]
    else:
        parquet = path
    maps = sorted(parquet.parent.glob("log_map_archive_*.json"))
    if len(maps) != 1:
        raise ValueError(
            f"{parquet.parent}: expected one log_map_archive_*.json beside {parquet.name}, "
            f"found {len(maps)}"
        )
    return parquet, maps[0]


def load_av2_motion_scenario(path: Path | str) -> ReplayScenario:
    """An AV2 motion-forecasting scenario (its folder or parquet file); see the module docs."""
    parquet, map_path = _scenario_files(Path(path))
    cols = _read_parquet(parquet)
    steps = cols["timestep"].astype(np.int64)
    if np.any(steps < 0):
        raise ValueError(f"{parquet}: negative timestep {int(steps.min())}")
    n_t = int(steps.max()) + 1
    start_ns = int(round(float(cols["start_timestamp"][0])))
    timestamps = start_ns + AV2_STEP_NS * np.arange(n_t, dtype=np.int64)
    names = [str(n) for n in cols["track_id"]]
    ids = _kaido_ids(sorted(set(names)))
    name_arr = np.asarray(names)
    tracks: list[Track] = []
    ego: Track | None = None
    scored: list[int] = []
    focal_name = str(cols["focal_track_id"][0])
    for name in sorted(set(names), key=lambda n: ids[n]):
        rows = np.flatnonzero(name_arr == name)
        rows = rows[np.argsort(steps[rows], kind="stable")]
        t_steps = steps[rows]
        if np.any(np.diff(t_steps) <= 0):
            i = int(np.argmax(np.diff(t_steps) <= 0))
            raise ValueError(
                f"{parquet}: track {name!r} has timestep {int(t_steps[i + 1])} after "
                f"{int(t_steps[i])} (repeated or backwards)"
            )
        cls = AV2_OBJECT_TYPES.get(str(cols["object_type"][rows[0]]), AgentClass.UNKNOWN)
        states = np.empty((len(rows), len(AgentIndex)), dtype=np.float64)
        states[:, AgentIndex.X] = cols["position_x"][rows]
        states[:, AgentIndex.Y] = cols["position_y"][rows]
        states[:, AgentIndex.YAW] = cols["heading"][rows]
        states[:, AgentIndex.VX] = cols["velocity_x"][rows]
        states[:, AgentIndex.VY] = cols["velocity_y"][rows]
        states[:, AgentIndex.LENGTH], states[:, AgentIndex.WIDTH] = DEFAULT_SIZES[cls]
        track = Track(ids[name], cls, timestamps[t_steps], states)
        if name == "AV":
            ego = track
            continue
        tracks.append(track)
        category = int(cols["object_category"][rows[0]])
        if category in (_FOCAL, _SCORED):
            scored.append(ids[name])
    if focal_name not in ids:
        raise ValueError(f"{parquet}: focal_track_id {focal_name!r} is not among the tracks")
    if n_t < AV2_CURRENT_INDEX + 1 + AV2_PREDICTED_STEPS:
        raise ValueError(
            f"{parquet}: {n_t} timesteps, the AV2 protocol needs "
            f"{AV2_CURRENT_INDEX + 1 + AV2_PREDICTED_STEPS}"
        )
    protocol = ReplayProtocol(
        name="av2-motion-forecasting",
        step_seconds=AV2_STEP_NS * 1e-9,
        current_index=AV2_CURRENT_INDEX,
        predicted_steps=AV2_PREDICTED_STEPS,
        scored_track_ids=tuple(sorted(set(scored) | {ids[focal_name]})),
        focal_track_ids=(ids[focal_name],),
    )
    return ReplayScenario(
        name=parquet.stem.removeprefix("scenario_"),
        source_format="av2-motion",
        path=parquet,
        timestamps_ns=timestamps,
        tracks=tuple(tracks),
        ego_track=ego,
        road_map=load_av2_map(map_path),
        protocol=protocol,
        source_ids={i: n for n, i in ids.items() if not n.isdigit()},
    )


def load_av2_sensor_scenario(path: Path | str) -> ReplayScenario:
    """An AV2 sensor log folder as a scenario (no protocol); see the module docstring."""
    from kaido.logs.av2_sensor import Av2SensorLog

    root = Path(path)
    log = Av2SensorLog(root)
    maps = sorted((root / "map").glob("log_map_archive_*.json"))
    if len(maps) != 1:
        raise ValueError(f"{root / 'map'}: expected one log_map_archive_*.json, found {len(maps)}")
    per_track: dict[int, list[tuple[int, FloatArray, AgentClass]]] = {}
    zeroed = 0
    for i in range(len(log)):
        t = int(log.timestamps_ns[i])
        for agent in log.ground_truth(i).agents:
            state = agent.as_array()
            bad = ~np.isfinite(state[[AgentIndex.VX, AgentIndex.VY]])
            if np.any(bad):
                zeroed += 1
                state[[AgentIndex.VX, AgentIndex.VY]] = 0.0
            per_track.setdefault(agent.track_id, []).append((t, state, agent.agent_class))
    tracks = tuple(
        Track(
            tid,
            samples[0][2],
            np.array([s[0] for s in samples], dtype=np.int64),
            np.stack([s[1] for s in samples]),
        )
        for tid, samples in sorted(per_track.items())
    )
    ego_states = []
    for i in range(len(log)):
        ego = log.ego_state(i)
        c, s = math.cos(ego.pose.yaw), math.sin(ego.pose.yaw)
        row = np.zeros(len(AgentIndex))
        row[AgentIndex.X] = ego.pose.x + AV2_EGO_REAR_AXLE_TO_CENTER * c
        row[AgentIndex.Y] = ego.pose.y + AV2_EGO_REAR_AXLE_TO_CENTER * s
        row[AgentIndex.YAW] = ego.pose.yaw
        vx, vy = ego.velocity
        if math.isfinite(vx) and math.isfinite(vy):
            row[AgentIndex.VX] = c * vx - s * vy
            row[AgentIndex.VY] = s * vx + c * vy
        row[AgentIndex.LENGTH], row[AgentIndex.WIDTH] = 4.87, 1.85
        ego_states.append(row)
    ego_id = max((t.track_id for t in tracks), default=-1) + 1
    ego_track = Track(ego_id, AgentClass.VEHICLE, log.timestamps_ns.copy(), np.stack(ego_states))
    notes = (
        (f"{zeroed} annotation(s) without a neighbouring annotation: velocity set to 0",)
        if zeroed
        else ()
    )
    return ReplayScenario(
        name=log.log_id,
        source_format="av2-sensor",
        path=root,
        timestamps_ns=log.timestamps_ns.copy(),
        tracks=tracks,
        ego_track=ego_track,
        road_map=load_av2_map(maps[0]),
        protocol=None,
        source_ids={**{k: u for k, u in enumerate(log.track_uuids)}, ego_id: "ego"},
        notes=notes,
    )
