"""Road maps from OpenDRIVE, through CARLA's own map library, offline.

``RoadMap`` is built once from OpenDRIVE text with ``carla.Map(name, text)`` (no server needed) and
then answers everything the stack asks of the road network as plain NumPy arrays in kaido's
right-handed frame (x east, y north, z up; CARLA's y and yaw are negated once, on the way in,
by :mod:`kaido.scene.carla_frame`):

- lanes (driving and the others: shoulders, sidewalks, parking, ...) with centrelines, left/right
  boundaries, widths, markings, junction membership and speed limits;
- the lane graph: successors, predecessors, left/right neighbours with lane-change permissions;
- nearest-lane queries through a uniform-grid index over centreline segments;
- an A* route planner over the lane graph (see :mod:`kaido.scene.route_planner`);
- spawn points derived from driving waypoints outside junctions (a server-less map has none);
- the drivable area as a shapely polygon and ego-centred BEV rasters (:mod:`kaido.scene.raster`).

``import carla`` is confined to this module (the road map) and ``kaido.simulation.carla``.
"""

from __future__ import annotations

import functools
import hashlib
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from kaido.scene.carla_frame import carla_points_to_kaido
from kaido.scene.geometry import SE2, wrap_angle
from kaido.scene.raster import MapGeometryIndex, RasterSpec, rasterize_bev

if TYPE_CHECKING:
    from kaido.scene.route_planner import RoutePlan

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class MapError(ValueError):
    """A map file that cannot be read or a query the map cannot answer; the message says why."""


class LaneType(IntEnum):
    """OpenDRIVE lane types kaido distinguishes (others map to ``OTHER``)."""

    DRIVING = 0
    SHOULDER = 1
    SIDEWALK = 2
    PARKING = 3
    BIKING = 4
    BIDIRECTIONAL = 5
    MEDIAN = 6
    BORDER = 7
    RESTRICTED = 8
    OTHER = 9


_CARLA_LANE_TYPES = {
    "Driving": LaneType.DRIVING,
    "Shoulder": LaneType.SHOULDER,
    "Sidewalk": LaneType.SIDEWALK,
    "Parking": LaneType.PARKING,
    "Biking": LaneType.BIKING,
    "Bidirectional": LaneType.BIDIRECTIONAL,
    "Median": LaneType.MEDIAN,
    "Border": LaneType.BORDER,
    "Restricted": LaneType.RESTRICTED,
}


class LaneKey(NamedTuple):
    """OpenDRIVE identity of a lane: road id, lane-section index, lane id (sign = side)."""

    road_id: int
    section_id: int
    lane_id: int


class MapLayer(IntEnum):
    """Channels of :meth:`RoadMap.rasterize` in their default order."""

    DRIVABLE = 0
    LANE_DIVIDERS = 1
    CENTERLINES = 2
    ROAD_EDGES = 3


RASTER_LAYER_NAMES: dict[MapLayer, str] = {
    MapLayer.DRIVABLE: "drivable",
    MapLayer.LANE_DIVIDERS: "lane_dividers",
    MapLayer.CENTERLINES: "centerlines",
    MapLayer.ROAD_EDGES: "road_edges",
}


@dataclass(frozen=True)
class RoadMapConfig:
    """How a ``RoadMap`` samples the OpenDRIVE geometry."""

    sample_step: float = 1.0
    """[m] spacing of lane centreline samples."""
    default_speed_limit: float = 30.0 / 3.6
    """[m/s] speed limit of roads whose OpenDRIVE record gives none (CARLA's town default)."""
    include_non_driving: bool = True
    """Also sample shoulders, sidewalks, parking and other lanes next to the driving lanes."""
    index_cell_size: float = 20.0
    """[m] cell of the uniform grid behind nearest-lane queries."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sample_step) and 0.05 <= self.sample_step <= 10.0):
            raise ValueError(
                f"RoadMapConfig.sample_step must be in [0.05, 10] m, got {self.sample_step}"
            )
        if not (math.isfinite(self.default_speed_limit) and self.default_speed_limit > 0):
            raise ValueError(
                f"RoadMapConfig.default_speed_limit must be > 0 m/s, got {self.default_speed_limit}"
            )
        if not (math.isfinite(self.index_cell_size) and self.index_cell_size > 0):
            raise ValueError(
                f"RoadMapConfig.index_cell_size must be > 0 m, got {self.index_cell_size}"
            )


@dataclass(frozen=True, eq=False)
class Lane:
    """One lane of one lane section, sampled along its driving direction.

    Arrays have N >= 2 samples; ``centerline`` is ``(N, 3)`` x, y, z [m], ``headings`` ``(N,)``
    [rad], ``s`` ``(N,)`` arc length from the lane's start [m], ``widths`` ``(N,)`` [m],
    ``left_boundary``/``right_boundary`` ``(N, 2)`` [m] (left/right seen in the driving direction;
    for non-driving lanes, in the road's reference direction).
    """

    index: int
    key: LaneKey
    lane_type: LaneType
    centerline: FloatArray
    headings: FloatArray
    s: FloatArray
    widths: FloatArray
    left_boundary: FloatArray
    right_boundary: FloatArray
    left_marking: str
    right_marking: str
    junction_id: int
    """OpenDRIVE junction id, -1 outside junctions."""
    speed_limit: float
    """[m/s]"""
    successors: tuple[int, ...] = ()
    predecessors: tuple[int, ...] = ()
    left_neighbor: int = -1
    """Index of the driving lane on the left going the same way, -1 if none."""
    right_neighbor: int = -1
    can_change_left: bool = False
    can_change_right: bool = False

    @property
    def length(self) -> float:
        return float(self.s[-1])

    @property
    def in_junction(self) -> bool:
        return self.junction_id >= 0

    @property
    def is_driving(self) -> bool:
        return self.lane_type == LaneType.DRIVING

    def polygon(self) -> BaseGeometry:
        """The lane's area as a valid shapely geometry."""
        ring = np.concatenate([self.left_boundary, self.right_boundary[::-1]], axis=0)
        poly = shapely.Polygon(ring)
        return poly if poly.is_valid else shapely.make_valid(poly)

    def interpolate(self, s: float | FloatArray) -> FloatArray:
        """Points ``(..., 3)`` [x, y, yaw] at arc length ``s`` (clamped to the lane)."""
        s_arr = np.clip(np.asarray(s, dtype=np.float64), 0.0, self.length)
        x = np.interp(s_arr, self.s, self.centerline[:, 0])
        y = np.interp(s_arr, self.s, self.centerline[:, 1])
        yaw = np.interp(s_arr, self.s, np.unwrap(self.headings))
        return np.stack([x, y, wrap_angle(yaw)], axis=-1)


@dataclass(frozen=True)
class Junction:
    """An OpenDRIVE junction: its id, the driving lanes inside it and its footprint."""

    junction_id: int
    lanes: tuple[int, ...]
    bounds: FloatArray
    """``(4,)`` [min_x, min_y, max_x, max_y] of its lanes' boundaries [m]."""


@dataclass(frozen=True)
class LaneProjection:
    """A point projected onto a lane centreline."""

    lane: int
    s: float
    """[m] arc length along the lane."""
    lateral: float
    """[m] signed offset, positive to the left of the driving direction."""
    distance: float
    """[m] Euclidean distance to the centreline."""
    heading: float
    """[rad] lane heading at the projection."""


@dataclass(frozen=True)
class MapSummary:
    """What ``kaido map info`` prints."""

    name: str
    roads: int
    lanes: int
    driving_lanes: int
    junctions: int
    lane_km: float
    """Total length of driving lanes [km]."""
    bounds: tuple[float, float, float, float]
    """[m] min_x, min_y, max_x, max_y."""
    lane_types: dict[str, int] = field(default_factory=dict)


def _speed_limits_from_xodr(text: str, default: float) -> dict[int, float]:
    """Road id → speed limit [m/s] from ``<road><type><speed max unit>`` (first entry per road)."""
    to_mps = {"m/s": 1.0, "km/h": 1.0 / 3.6, "kmh": 1.0 / 3.6, "mph": 0.44704}
    limits: dict[int, float] = {}
    root = ET.fromstring(text)
    for road in root.iter("road"):
        try:
            road_id = int(road.get("id", ""))
        except ValueError:
            continue
        for speed in road.iter("speed"):
            raw = speed.get("max", "")
            unit = speed.get("unit", "m/s").strip().lower()
            try:
                value = float(raw) * to_mps.get(unit, 1.0)
            except ValueError:
                continue
            if math.isfinite(value) and value > 0:
                limits[road_id] = value
                break
        limits.setdefault(road_id, default)
    return limits


def _marking(marking: Any) -> str:
    return str(marking.type) if marking is not None else "NONE"


def _wp_arrays(wps: Sequence[Any]) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """CARLA waypoints → kaido (N, 3) points, (N,) headings, (N,) widths, (N,) CARLA s."""
    raw = np.array(
        [
            (
                w.transform.location.x,
                w.transform.location.y,
                w.transform.location.z,
                w.transform.rotation.yaw,
                w.lane_width,
                w.s,
            )
            for w in wps
        ],
        dtype=np.float64,
    ).reshape(-1, 6)
    points = carla_points_to_kaido(raw[:, :3])
    headings = wrap_angle(-np.radians(raw[:, 3]))
    return points, np.asarray(headings, dtype=np.float64), raw[:, 4].copy(), raw[:, 5].copy()


def _boundaries(
    points: FloatArray, headings: FloatArray, widths: FloatArray
) -> tuple[FloatArray, FloatArray]:
    normal = np.stack([-np.sin(headings), np.cos(headings)], axis=-1)
    half = 0.5 * widths[:, None]
    return points[:, :2] + half * normal, points[:, :2] - half * normal


def _arc_length(points: FloatArray) -> FloatArray:
    steps = np.linalg.norm(np.diff(points[:, :2], axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(steps)])


def _dedupe(points: FloatArray, *others: FloatArray) -> tuple[FloatArray, ...]:
    """Drop samples closer than 1 cm to their predecessor (CARLA repeats lane ends)."""
    keep = np.ones(len(points), dtype=bool)
    keep[1:] = np.linalg.norm(np.diff(points[:, :2], axis=0), axis=1) > 1e-2
    return (points[keep], *(o[keep] for o in others))


class RoadMap:
    """A road network in kaido's frame, built from OpenDRIVE through ``carla.Map``.

    Build with :meth:`from_opendrive` (text) or :meth:`from_file`. Lanes are indexed densely
    (``lanes[i].index == i``); driving lanes come first.
    """

    def __init__(self, name: str, xodr_text: str, config: RoadMapConfig | None = None) -> None:
        import carla  # the one place outside simulation/carla that touches the CARLA library

        self.name = name
        self.config = config or RoadMapConfig()
        self.source_sha256 = hashlib.sha256(xodr_text.encode("utf-8")).hexdigest()
        try:
            self._speed_limits = _speed_limits_from_xodr(xodr_text, self.config.default_speed_limit)
        except ET.ParseError as err:
            raise MapError(f"map {name!r}: malformed OpenDRIVE XML: {err}") from err
        self._carla_map = carla.Map(name, xodr_text)
        topology = self._carla_map.get_topology()
        if not topology:
            raise MapError(f"map {name!r}: OpenDRIVE has no driving lanes (empty topology)")
        self._build(topology)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_opendrive(
        cls, xodr_text: str, name: str = "opendrive", config: RoadMapConfig | None = None
    ) -> RoadMap:
        if not xodr_text.lstrip().startswith("<"):
            raise MapError(f"map {name!r}: not OpenDRIVE XML (text does not start with '<')")
        return cls(name, xodr_text, config)

    @classmethod
    def from_file(cls, path: Path | str, config: RoadMapConfig | None = None) -> RoadMap:
        path = Path(path)
        if not path.is_file():
            raise MapError(f"{path}: no such OpenDRIVE file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise MapError(f"{path}: not a UTF-8 text file ({err})") from err
        try:
            return cls.from_opendrive(text, name=path.stem, config=config)
        except MapError as err:
            raise MapError(f"{path}: {err}") from err

    def _build(self, topology: Sequence[tuple[Any, Any]]) -> None:
        step = self.config.sample_step
        records: list[dict[str, Any]] = []
        key_to_index: dict[LaneKey, int] = {}
        entry_wps: dict[LaneKey, Any] = {}
        edges: list[tuple[LaneKey, LaneKey]] = []
        exit_wps: dict[LaneKey, Any] = {}
        for entry, exit_ in topology:
            key = LaneKey(entry.road_id, entry.section_id, entry.lane_id)
            exit_key = LaneKey(exit_.road_id, exit_.section_id, exit_.lane_id)
            edges.append((key, exit_key))
            entry_wps.setdefault(key, entry)
            exit_wps.setdefault(key, exit_)
        for key, entry in entry_wps.items():
            # next_until_lane_end runs to the end of the road's lane, across lane sections:
            # keep this section's samples and close the lane at its exit (the next one's start)
            wps = [entry]
            for wp in entry.next_until_lane_end(step):
                if (wp.road_id, wp.section_id, wp.lane_id) != tuple(key):
                    break
                wps.append(wp)
            wps.append(exit_wps[key])
            points, headings, widths, _ = _wp_arrays(wps)
            points, headings, widths = _dedupe(points, headings, widths)
            if len(points) < 2:
                continue
            mid = wps[len(wps) // 2]
            key_to_index[key] = len(records)
            records.append(
                {
                    "key": key,
                    "lane_type": LaneType.DRIVING,
                    "points": points,
                    "headings": headings,
                    "widths": widths,
                    "left_marking": _marking(mid.left_lane_marking),
                    "right_marking": _marking(mid.right_lane_marking),
                    "junction_id": int(entry.junction_id) if entry.is_junction else -1,
                    "lane_change": str(mid.lane_change),
                    "mid_wp": mid,
                    "sample_wps": wps,
                }
            )
        successors: dict[int, set[int]] = {i: set() for i in range(len(records))}
        predecessors: dict[int, set[int]] = {i: set() for i in range(len(records))}
        for a, b in edges:
            ia, ib = key_to_index.get(a), key_to_index.get(b)
            if ia is None or ib is None or ia == ib:
                continue
            successors[ia].add(ib)
            predecessors[ib].add(ia)
        neighbours = self._neighbours(records, key_to_index)
        n_driving = len(records)
        if self.config.include_non_driving:
            records.extend(self._non_driving_lanes(records))
        lanes: list[Lane] = []
        for i, rec in enumerate(records):
            left_b, right_b = _boundaries(rec["points"], rec["headings"], rec["widths"])
            left, right, change_left, change_right = neighbours.get(i, (-1, -1, False, False))
            lanes.append(
                Lane(
                    index=i,
                    key=rec["key"],
                    lane_type=rec["lane_type"],
                    centerline=rec["points"],
                    headings=rec["headings"],
                    s=_arc_length(rec["points"]),
                    widths=rec["widths"],
                    left_boundary=left_b,
                    right_boundary=right_b,
                    left_marking=rec["left_marking"],
                    right_marking=rec["right_marking"],
                    junction_id=rec["junction_id"],
                    speed_limit=self._speed_limits.get(
                        rec["key"].road_id, self.config.default_speed_limit
                    ),
                    successors=tuple(sorted(successors.get(i, ()))),
                    predecessors=tuple(sorted(predecessors.get(i, ()))),
                    left_neighbor=left,
                    right_neighbor=right,
                    can_change_left=change_left,
                    can_change_right=change_right,
                )
            )
        self.lanes: tuple[Lane, ...] = tuple(lanes)
        self.num_driving_lanes = n_driving
        self._key_to_index = {lane.key: lane.index for lane in self.lanes}
        self._build_junctions()
        self._build_segment_index()

    @staticmethod
    def _neighbours(
        records: list[dict[str, Any]], key_to_index: dict[LaneKey, int]
    ) -> dict[int, tuple[int, int, bool, bool]]:
        out: dict[int, tuple[int, int, bool, bool]] = {}
        for i, rec in enumerate(records):
            mid = rec["mid_wp"]
            left_idx = right_idx = -1
            for getter, side in ((mid.get_left_lane, "left"), (mid.get_right_lane, "right")):
                other = getter()
                if other is None or str(other.lane_type) != "Driving":
                    continue
                if (other.lane_id > 0) != (mid.lane_id > 0):
                    continue  # opposite direction: a neighbour for rasters, not for lane changes
                idx = key_to_index.get(LaneKey(other.road_id, other.section_id, other.lane_id), -1)
                if side == "left":
                    left_idx = idx
                else:
                    right_idx = idx
            change = rec["lane_change"]
            out[i] = (
                left_idx,
                right_idx,
                left_idx >= 0 and change in ("Left", "Both") and rec["junction_id"] < 0,
                right_idx >= 0 and change in ("Right", "Both") and rec["junction_id"] < 0,
            )
        return out

    def _non_driving_lanes(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Walk outwards from driving-lane samples to collect shoulders, sidewalks, parking, ..."""
        found: dict[LaneKey, dict[float, Any]] = {}
        types: dict[LaneKey, str] = {}
        for rec in records:
            if rec["junction_id"] >= 0:
                continue
            for wp in rec["sample_wps"]:
                walks = [(wp.get_right_lane, "right")]
                if wp.lane_id < 0:
                    walks.append((wp.get_left_lane, "left"))
                for first, _side in walks:
                    other = first()
                    hops = 0
                    while other is not None and hops < 8:
                        hops += 1
                        type_name = str(other.lane_type)
                        if type_name in ("Driving", "NONE", "Any"):
                            break
                        key = LaneKey(other.road_id, other.section_id, other.lane_id)
                        found.setdefault(key, {})[round(other.s, 2)] = other
                        types[key] = type_name
                        if _side == "left":
                            break
                        other = other.get_right_lane()
        out: list[dict[str, Any]] = []
        for key in sorted(found):
            wps = [found[key][s] for s in sorted(found[key])]
            if key.lane_id > 0:
                wps = wps[::-1]  # positive lanes run against the reference line
            points, headings, widths, _ = _wp_arrays(wps)
            points, headings, widths = _dedupe(points, headings, widths)
            if len(points) < 2:
                continue
            out.append(
                {
                    "key": key,
                    "lane_type": _CARLA_LANE_TYPES.get(types[key], LaneType.OTHER),
                    "points": points,
                    "headings": headings,
                    "widths": widths,
                    "left_marking": _marking(wps[len(wps) // 2].left_lane_marking),
                    "right_marking": _marking(wps[len(wps) // 2].right_lane_marking),
                    "junction_id": -1,
                    "lane_change": "NONE",
                }
            )
        return out

    def _build_junctions(self) -> None:
        members: dict[int, list[int]] = {}
        for lane in self.driving_lanes:
            if lane.junction_id >= 0:
                members.setdefault(lane.junction_id, []).append(lane.index)
        junctions = []
        for jid in sorted(members):
            pts = np.concatenate(
                [
                    np.concatenate([self.lanes[i].left_boundary, self.lanes[i].right_boundary])
                    for i in members[jid]
                ]
            )
            bounds = np.array([*pts.min(axis=0), *pts.max(axis=0)], dtype=np.float64)
            junctions.append(Junction(jid, tuple(members[jid]), bounds))
        self.junctions: tuple[Junction, ...] = tuple(junctions)

    def _build_segment_index(self) -> None:
        """Uniform grid over driving-lane centreline segments for nearest-lane queries."""
        starts, ends, lane_ids, s0 = [], [], [], []
        for lane in self.driving_lanes:
            starts.append(lane.centerline[:-1, :2])
            ends.append(lane.centerline[1:, :2])
            lane_ids.append(np.full(len(lane.s) - 1, lane.index, dtype=np.int64))
            s0.append(lane.s[:-1])
        self._seg_a = np.concatenate(starts)
        self._seg_b = np.concatenate(ends)
        self._seg_lane = np.concatenate(lane_ids)
        self._seg_s0 = np.concatenate(s0)
        cell = self.config.index_cell_size
        lo = np.minimum(self._seg_a, self._seg_b)
        hi = np.maximum(self._seg_a, self._seg_b)
        self._grid_origin = lo.min(axis=0)
        cmin = np.floor((lo - self._grid_origin) / cell).astype(np.int64)
        cmax = np.floor((hi - self._grid_origin) / cell).astype(np.int64)
        self._grid_shape = (int(cmax[:, 0].max()) + 1, int(cmax[:, 1].max()) + 1)
        cells: dict[int, list[int]] = {}
        ny = self._grid_shape[1]
        for seg, (a, b) in enumerate(zip(cmin, cmax, strict=True)):
            for cx in range(a[0], b[0] + 1):
                for cy in range(a[1], b[1] + 1):
                    cells.setdefault(cx * ny + cy, []).append(seg)
        self._grid_cells = {k: np.asarray(v, dtype=np.int64) for k, v in cells.items()}

    # -- basic accessors ----------------------------------------------------------------------

    @property
    def driving_lanes(self) -> tuple[Lane, ...]:
        return self.lanes[: self.num_driving_lanes]

    def lane(self, key: LaneKey | tuple[int, int, int]) -> Lane:
        try:
            return self.lanes[self._key_to_index[LaneKey(*key)]]
        except KeyError:
            raise KeyError(f"map {self.name!r} has no lane {tuple(key)}") from None

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        pts = np.concatenate(
            [np.concatenate([ln.left_boundary, ln.right_boundary]) for ln in self.lanes]
        )
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    def summary(self) -> MapSummary:
        types: dict[str, int] = {}
        for lane in self.lanes:
            types[lane.lane_type.name.lower()] = types.get(lane.lane_type.name.lower(), 0) + 1
        return MapSummary(
            name=self.name,
            roads=len({lane.key.road_id for lane in self.lanes}),
            lanes=len(self.lanes),
            driving_lanes=self.num_driving_lanes,
            junctions=len(self.junctions),
            lane_km=sum(lane.length for lane in self.driving_lanes) / 1000.0,
            bounds=self.bounds,
            lane_types=types,
        )

    # -- queries -----------------------------------------------------------------------------

    def _candidate_segments(self, x: float, y: float, radius: float) -> IntArray:
        cell = self.config.index_cell_size
        ox, oy = self._grid_origin
        nx, ny = self._grid_shape
        cx0 = max(int(math.floor((x - radius - ox) / cell)), 0)
        cx1 = min(int(math.floor((x + radius - ox) / cell)), nx - 1)
        cy0 = max(int(math.floor((y - radius - oy) / cell)), 0)
        cy1 = min(int(math.floor((y + radius - oy) / cell)), ny - 1)
        found = [
            self._grid_cells[cx * ny + cy]
            for cx in range(cx0, cx1 + 1)
            for cy in range(cy0, cy1 + 1)
            if cx * ny + cy in self._grid_cells
        ]
        if not found:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate(found))

    def project(
        self,
        x: float,
        y: float,
        *,
        max_distance: float = 5.0,
        heading: float | None = None,
        max_heading_error: float = math.pi / 2,
        include_junctions: bool = True,
    ) -> list[LaneProjection]:
        """Driving lanes within ``max_distance`` [m] of (x, y), nearest first, one per lane.

        With ``heading`` [rad], only lanes whose direction at the projection is within
        ``max_heading_error`` of it are returned.
        """
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError(f"RoadMap.project: point must be finite, got ({x}, {y})")
        segs = self._candidate_segments(x, y, max_distance)
        if len(segs) == 0:
            return []
        a, b = self._seg_a[segs], self._seg_b[segs]
        ab = b - a
        p = np.array([x, y])
        denom = np.maximum((ab * ab).sum(axis=1), 1e-12)
        t = np.clip(((p - a) * ab).sum(axis=1) / denom, 0.0, 1.0)
        closest = a + t[:, None] * ab
        dist = np.linalg.norm(p - closest, axis=1)
        order = np.argsort(dist, kind="stable")
        out: list[LaneProjection] = []
        seen: set[int] = set()
        for k in order:
            if dist[k] > max_distance:
                break
            lane_idx = int(self._seg_lane[segs[k]])
            if lane_idx in seen:
                continue
            lane = self.lanes[lane_idx]
            if not include_junctions and lane.in_junction:
                continue
            seg_len = math.sqrt(denom[k])
            lane_heading = math.atan2(ab[k, 1], ab[k, 0])
            if (
                heading is not None
                and abs(float(wrap_angle(heading - lane_heading))) > max_heading_error
            ):
                continue
            seen.add(lane_idx)
            cross = ab[k, 0] * (y - a[k, 1]) - ab[k, 1] * (x - a[k, 0])
            out.append(
                LaneProjection(
                    lane=lane_idx,
                    s=float(self._seg_s0[segs[k]] + t[k] * seg_len),
                    lateral=float(cross / seg_len),
                    distance=float(dist[k]),
                    heading=lane_heading,
                )
            )
        return out

    def nearest_lane(
        self, x: float, y: float, *, max_distance: float = 5.0, heading: float | None = None
    ) -> LaneProjection | None:
        """The nearest driving lane to (x, y) within ``max_distance`` [m], or None."""
        found = self.project(x, y, max_distance=max_distance, heading=heading)
        return found[0] if found else None

    def on_road(self, points: FloatArray) -> npt.NDArray[np.bool_]:
        """Whether each point ``(N, 2)`` lies in the drivable area."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return np.asarray(shapely.contains_xy(self.drivable_area, pts[:, 0], pts[:, 1]))

    # -- spawn points ---------------------------------------------------------------------------

    def spawn_points(self, spacing: float = 20.0, junction_clearance: float = 10.0) -> FloatArray:
        """Spawn poses ``(P, 3)`` [x, y, yaw] on driving lanes outside junctions.

        One every ``spacing`` [m] along each lane, at least ``junction_clearance`` [m] from the
        lane's ends when they touch a junction (CARLA's server-side spawn points are not in the
        OpenDRIVE file, so they are derived here). Deterministic order.
        """
        if spacing <= 0 or junction_clearance < 0:
            raise ValueError(
                f"spawn_points: spacing must be > 0 and junction_clearance >= 0, got "
                f"{spacing}, {junction_clearance}"
            )
        poses = []
        for lane in self.driving_lanes:
            if lane.in_junction:
                continue
            start = (
                junction_clearance
                if any(self.lanes[p].in_junction for p in lane.predecessors)
                else 2.0
            )
            end = lane.length - (
                junction_clearance
                if any(self.lanes[s].in_junction for s in lane.successors)
                else 2.0
            )
            if end < start:
                continue
            s_values = np.arange(start, end + 1e-9, spacing)
            if len(s_values):
                poses.append(lane.interpolate(s_values))
        if not poses:
            return np.zeros((0, 3), dtype=np.float64)
        return np.concatenate(poses, axis=0)

    # -- areas and rasters ------------------------------------------------------------------------

    @functools.cached_property
    def drivable_area(self) -> BaseGeometry:
        """Union of the driving lanes' areas (shapely, kaido frame)."""
        polys = [lane.polygon() for lane in self.driving_lanes]
        return shapely.union_all(polys).buffer(0)

    def lane_quads(self, lanes: Iterable[Lane] | None = None) -> FloatArray:
        """``(Q, 4, 2)`` quads between consecutive samples whose union is the lanes' area."""
        quads = []
        for lane in self.driving_lanes if lanes is None else lanes:
            lb, rb = lane.left_boundary, lane.right_boundary
            quads.append(np.stack([lb[:-1], lb[1:], rb[1:], rb[:-1]], axis=1))
        return np.concatenate(quads, axis=0) if quads else np.zeros((0, 4, 2))

    def segment_layers(self) -> dict[str, FloatArray]:
        """World-frame ``(S, 2, 2)`` line segments for each line layer of the rasters."""

        def segments(lines: Iterable[FloatArray]) -> FloatArray:
            parts = [np.stack([ln[:-1, :2], ln[1:, :2]], axis=1) for ln in lines if len(ln) >= 2]
            return np.concatenate(parts, axis=0) if parts else np.zeros((0, 2, 2))

        dividers = []
        for lane in self.driving_lanes:
            # a border shared with another driving lane, of either direction
            if not lane.in_junction and self._driving_across_left(lane):
                dividers.append(lane.left_boundary)
        edges = []
        area = self.drivable_area
        geoms = getattr(area, "geoms", [area])
        for poly in geoms:
            if poly.geom_type != "Polygon":
                continue
            edges.append(np.asarray(poly.exterior.coords)[:, :2])
            edges.extend(np.asarray(r.coords)[:, :2] for r in poly.interiors)
        return {
            RASTER_LAYER_NAMES[MapLayer.LANE_DIVIDERS]: segments(dividers),
            RASTER_LAYER_NAMES[MapLayer.CENTERLINES]: segments(
                ln.centerline for ln in self.driving_lanes
            ),
            RASTER_LAYER_NAMES[MapLayer.ROAD_EDGES]: segments(edges),
        }

    def _driving_across_left(self, lane: Lane) -> bool:
        """Whether a driving lane (either direction) borders this lane on its left."""
        mid = lane.centerline[len(lane.centerline) // 2]
        heading = lane.headings[len(lane.headings) // 2]
        width = lane.widths[len(lane.widths) // 2]
        probe = mid[:2] + width * np.array([-math.sin(heading), math.cos(heading)])
        for proj in self.project(float(probe[0]), float(probe[1]), max_distance=0.45 * width):
            if proj.lane != lane.index:
                return True
        return False

    @functools.cached_property
    def geometry_index(self) -> MapGeometryIndex:
        """The spatial index behind :meth:`rasterize` (built on first use)."""
        return MapGeometryIndex(self.lane_quads(), self.segment_layers())

    def rasterize(
        self,
        pose: SE2 | FloatArray,
        spec: RasterSpec | None = None,
        layers: Sequence[str] = tuple(RASTER_LAYER_NAMES.values()),
    ) -> npt.NDArray[np.uint8]:
        """Ego-centred BEV raster ``(C, H, W)`` of 0/1 masks around ``pose`` (see ``raster``)."""
        return rasterize_bev(self.geometry_index, pose, spec or RasterSpec(), layers)

    # -- routes ------------------------------------------------------------------------------

    def plan_route(self, waypoints: FloatArray, **kwargs: Any) -> RoutePlan:
        """Plan through ``waypoints`` ``(N, 2|3)`` (optionally with yaws ``yaws=(N,)``).

        See :func:`kaido.scene.route_planner.plan_route`.
        """
        from kaido.scene.route_planner import plan_route

        return plan_route(self, waypoints, **kwargs)
