"""Road maps from a dataset's lane graph (Argoverse 2, Waymo Open Motion, CommonRoad lanelets).

A :class:`LaneGraphMap` is a :class:`~kaido.scene.road_map.RoadMap` built from plain lane
records (:class:`LaneRecord`) instead of OpenDRIVE, so everything that takes a ``RoadMap``
(``project``/``nearest_lane``, ``drivable_area``, ``rasterize``, the lane-following predictor,
the route planner) works on recorded traffic. It needs no CARLA.

Construction, per lane:

- the centreline (kaido frame: x east, y north, z up) is densified so that consecutive samples
  are at most ``RoadMapConfig.sample_step`` apart (samples closer than 1 cm are dropped);
- headings are the direction of the centreline (central differences, one-sided at the ends);
- with boundaries, the half-widths at each sample are the distances from the sample to the left
  and right boundary polylines (clipped to [0.3, 10] m) and the boundaries are re-sampled as the
  centreline offset by them along its normal, so every ``Lane`` array has the same length; without
  boundaries, ``LaneRecord.width`` is used on both sides;
- successors, predecessors and neighbours are given by source ids and become dense indices;
  edges to lanes that are not in the map are dropped. A neighbour is kept only when it is a
  driving lane going the same way (heading at the middle sample within 90 degrees).
- lanes marked ``in_intersection`` are grouped into junctions: intersection lanes whose areas
  touch share a junction id (connected components).

Lanes are indexed densely with the driving lanes first. Each lane's :class:`LaneKey` is
``(source id, 0, -1)``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from kaido.scene.road_map import (
    Lane,
    LaneKey,
    LaneType,
    MapError,
    RoadMap,
    RoadMapConfig,
)

__all__ = [
    "LaneGraphMap",
    "LaneRecord",
    "densify_polyline",
    "midpoint_line",
    "polyline_headings",
]

FloatArray = npt.NDArray[np.float64]

#: [m] half-width bounds when measured from boundary polylines.
_MIN_HALF_WIDTH = 0.3
_MAX_HALF_WIDTH = 10.0


@dataclass(frozen=True, eq=False)
class LaneRecord:
    """One lane of a dataset's lane graph, in kaido's frame, before it becomes a ``Lane``.

    ``centerline`` ``(N, 2)`` or ``(N, 3)`` [m] in the driving direction, ``N >= 2``;
    ``left_boundary``/``right_boundary`` ``(M, 2|3)`` [m] or None (then ``width`` is used).
    """

    lane_id: int
    """Source id (AV2 lane segment id, WOMD feature id, CommonRoad lanelet id)."""
    centerline: FloatArray
    lane_type: LaneType = LaneType.DRIVING
    left_boundary: FloatArray | None = None
    right_boundary: FloatArray | None = None
    width: float = 3.5
    """[m] lane width used when the boundaries are not given."""
    successors: tuple[int, ...] = ()
    """Source ids of the lanes that continue this one."""
    predecessors: tuple[int, ...] = ()
    left_neighbor: int | None = None
    """Source id of the lane on the left (either direction; kept only if it goes the same way)."""
    right_neighbor: int | None = None
    left_marking: str = "NONE"
    right_marking: str = "NONE"
    can_change_left: bool | None = None
    """Lane change to the left neighbour allowed; None: allowed when outside intersections."""
    can_change_right: bool | None = None
    in_intersection: bool = False
    speed_limit: float | None = None
    """[m/s]; None: ``RoadMapConfig.default_speed_limit``."""


def densify_polyline(points: FloatArray, step: float) -> FloatArray:
    """``(N, D)`` polyline with extra samples so that no segment is longer than ``step`` [m].

    Samples closer than 1 cm to their predecessor are dropped first.
    """
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) == 0:
        return pts
    keep = np.ones(len(pts), dtype=bool)
    keep[1:] = np.linalg.norm(np.diff(pts[:, :2], axis=0), axis=1) > 1e-2
    pts = pts[keep]
    if len(pts) < 2:
        return pts
    seg = np.linalg.norm(np.diff(pts[:, :2], axis=0), axis=1)
    pieces = np.maximum(np.ceil(seg / step).astype(np.int64), 1)
    out = [pts[:1]]
    for i, n in enumerate(pieces):
        frac = (np.arange(1, n + 1, dtype=np.float64) / n)[:, None]
        out.append(pts[i] + frac * (pts[i + 1] - pts[i]))
    return np.concatenate(out, axis=0)


def polyline_headings(points: FloatArray) -> FloatArray:
    """``(N,)`` [rad] direction of a polyline ``(N, >=2)`` at each sample (central differences)."""
    xy = np.asarray(points, dtype=np.float64)[:, :2]
    d = np.empty_like(xy)
    d[1:-1] = xy[2:] - xy[:-2]
    d[0] = xy[1] - xy[0]
    d[-1] = xy[-1] - xy[-2]
    return np.asarray(np.arctan2(d[:, 1], d[:, 0]), dtype=np.float64)


def _resample(line: FloatArray, n: int) -> FloatArray:
    """``(n, D)`` points equally spaced in arc length along ``line`` ``(M, D)``."""
    seg = np.linalg.norm(np.diff(line[:, :2], axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 0.0:
        return np.repeat(line[:1], n, axis=0)
    u = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(u, s, line[:, d]) for d in range(line.shape[1])], axis=-1)


def midpoint_line(left: FloatArray, right: FloatArray, spacing: float = 1.0) -> FloatArray:
    """Centreline ``(N, D)`` between two boundaries ``(M, D)`` walked the same way: both are
    resampled at equal arc-length fractions (about ``spacing`` [m] apart) and averaged, as the
    AV2 API does for maps that store no centreline (the sensor dataset's) and as CommonRoad
    defines a lanelet's centre."""
    length = max(
        float(np.linalg.norm(np.diff(b[:, :2], axis=0), axis=1).sum()) for b in (left, right)
    )
    n = max(int(math.ceil(length / spacing)) + 1, 2)
    return 0.5 * (_resample(left, n) + _resample(right, n))


def _check_polyline(owner: str, name: str, value: object, min_rows: int) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] not in (2, 3) or arr.shape[0] < min_rows:
        raise ValueError(
            f"{owner}.{name}: expected an (N, 2|3) polyline with N >= {min_rows}, "
            f"got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{owner}.{name}: polyline has non-finite values")
    return arr


def _half_width(points: FloatArray, boundary: FloatArray | None, default: float) -> FloatArray:
    if boundary is None or len(boundary) < 2:
        return np.full(len(points), 0.5 * default)
    line = shapely.LineString(boundary[:, :2])
    dist = shapely.distance(shapely.points(points[:, :2]), line)
    return np.clip(np.asarray(dist, dtype=np.float64), _MIN_HALF_WIDTH, _MAX_HALF_WIDTH)


class LaneGraphMap(RoadMap):
    """A :class:`RoadMap` from dataset lane records; see the module docstring.

    ``source`` names where the lanes came from (kept as :attr:`source`); ``source_sha256`` is
    the hash of the lanes' arrays and graph. Raises :class:`MapError` when no lane is usable as
    a driving lane.
    """

    def __init__(
        self,
        name: str,
        lanes: Sequence[LaneRecord],
        config: RoadMapConfig | None = None,
        source: str = "",
    ) -> None:
        self.name = name
        self.config = config or RoadMapConfig()
        self.source = source
        records = [r for r in lanes]
        for i, rec in enumerate(records):
            if not isinstance(rec, LaneRecord):
                raise TypeError(
                    f"map {name!r}: lanes[{i}] is a {type(rec).__name__}, not a LaneRecord"
                )
        built = self._sample(records)
        order = sorted(
            range(len(built)),
            key=lambda i: (built[i][0].lane_type != LaneType.DRIVING, i),
        )
        built = [built[i] for i in order]
        if not built or built[0][0].lane_type != LaneType.DRIVING:
            raise MapError(f"map {name!r}: the lane graph has no usable driving lane")
        index_of = {rec.lane_id: i for i, (rec, *_rest) in enumerate(built)}
        junction_of = self._junction_ids(built)
        digest = hashlib.sha256()
        lanes_out: list[Lane] = []
        for i, (rec, pts, hdg, hl, hr) in enumerate(built):
            normal = np.stack([-np.sin(hdg), np.cos(hdg)], axis=-1)
            left_b = pts[:, :2] + hl[:, None] * normal
            right_b = pts[:, :2] - hr[:, None] * normal
            s = np.concatenate(
                [[0.0], np.cumsum(np.linalg.norm(np.diff(pts[:, :2], axis=0), axis=1))]
            )
            succ = tuple(sorted({index_of[j] for j in rec.successors if j in index_of} - {i}))
            pred = tuple(sorted({index_of[j] for j in rec.predecessors if j in index_of} - {i}))
            left = self._neighbour(built, index_of, i, rec.left_neighbor)
            right = self._neighbour(built, index_of, i, rec.right_neighbor)
            junction = junction_of.get(i, -1)
            change_left = (
                rec.can_change_left if rec.can_change_left is not None else junction < 0
            ) and left >= 0
            change_right = (
                rec.can_change_right if rec.can_change_right is not None else junction < 0
            ) and right >= 0
            speed = rec.speed_limit if rec.speed_limit else self.config.default_speed_limit
            lanes_out.append(
                Lane(
                    index=i,
                    key=LaneKey(int(rec.lane_id), 0, -1),
                    lane_type=rec.lane_type,
                    centerline=pts,
                    headings=hdg,
                    s=s,
                    widths=hl + hr,
                    left_boundary=left_b,
                    right_boundary=right_b,
                    left_marking=rec.left_marking,
                    right_marking=rec.right_marking,
                    junction_id=junction,
                    speed_limit=float(speed),
                    successors=succ,
                    predecessors=pred,
                    left_neighbor=left,
                    right_neighbor=right,
                    can_change_left=bool(change_left),
                    can_change_right=bool(change_right),
                )
            )
            digest.update(np.int64(rec.lane_id).tobytes())
            digest.update(pts.tobytes())
            digest.update(np.asarray(succ, dtype=np.int64).tobytes())
        self.source_sha256 = digest.hexdigest()
        self.lanes: tuple[Lane, ...] = tuple(lanes_out)
        self.num_driving_lanes = sum(1 for ln in lanes_out if ln.lane_type == LaneType.DRIVING)
        self._key_to_index = {lane.key: lane.index for lane in self.lanes}
        self._build_junctions()
        self._build_segment_index()

    @classmethod
    def from_lanes(
        cls,
        name: str,
        lanes: Sequence[LaneRecord],
        config: RoadMapConfig | None = None,
        source: str = "",
    ) -> LaneGraphMap:
        """Same as the constructor (reads like :meth:`RoadMap.from_opendrive`)."""
        return cls(name, lanes, config, source)

    def lane_by_source_id(self, lane_id: int) -> Lane:
        """The lane whose source id is ``lane_id``; ``KeyError`` naming it if absent."""
        return self.lane(LaneKey(int(lane_id), 0, -1))

    # -- construction helpers -------------------------------------------------------------------

    def _sample(
        self, records: Sequence[LaneRecord]
    ) -> list[tuple[LaneRecord, FloatArray, FloatArray, FloatArray, FloatArray]]:
        out = []
        seen: set[int] = set()
        for i, rec in enumerate(records):
            owner = f"map {self.name!r}: lanes[{i}] (id {rec.lane_id})"
            if rec.lane_id in seen:
                raise MapError(f"{owner}: duplicate lane id")
            seen.add(rec.lane_id)
            centre = _check_polyline(owner, "centerline", rec.centerline, 2)
            if centre.shape[1] == 2:
                centre = np.concatenate([centre, np.zeros((len(centre), 1))], axis=1)
            pts = densify_polyline(centre, self.config.sample_step)
            if len(pts) < 2:
                continue  # a degenerate (sub-centimetre) lane
            lb = (
                None
                if rec.left_boundary is None
                else _check_polyline(owner, "left_boundary", rec.left_boundary, 2)
            )
            rb = (
                None
                if rec.right_boundary is None
                else _check_polyline(owner, "right_boundary", rec.right_boundary, 2)
            )
            if not (math.isfinite(rec.width) and rec.width > 0):
                raise MapError(f"{owner}: width must be > 0 m, got {rec.width}")
            hdg = polyline_headings(pts)
            out.append(
                (rec, pts, hdg, _half_width(pts, lb, rec.width), _half_width(pts, rb, rec.width))
            )
        return out

    @staticmethod
    def _neighbour(
        built: Sequence[tuple[LaneRecord, FloatArray, FloatArray, FloatArray, FloatArray]],
        index_of: dict[int, int],
        i: int,
        other: int | None,
    ) -> int:
        if other is None or other not in index_of:
            return -1
        j = index_of[other]
        if j == i or built[j][0].lane_type != LaneType.DRIVING:
            return -1
        h_i = built[i][2][len(built[i][2]) // 2]
        h_j = built[j][2][len(built[j][2]) // 2]
        if abs(math.remainder(float(h_i - h_j), 2.0 * math.pi)) >= 0.5 * math.pi:
            return -1
        return j

    @staticmethod
    def _junction_ids(
        built: Sequence[tuple[LaneRecord, FloatArray, FloatArray, FloatArray, FloatArray]],
    ) -> dict[int, int]:
        members = [i for i, b in enumerate(built) if b[0].in_intersection]
        if not members:
            return {}
        polys = []
        for i in members:
            _rec, pts, hdg, hl, hr = built[i]
            normal = np.stack([-np.sin(hdg), np.cos(hdg)], axis=-1)
            ring = np.concatenate(
                [pts[:, :2] + hl[:, None] * normal, (pts[:, :2] - hr[:, None] * normal)[::-1]]
            )
            polys.append(shapely.make_valid(shapely.Polygon(ring)))
        parent = list(range(len(members)))

        def find(a: int) -> int:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        tree = shapely.STRtree(polys)
        left, right = tree.query(polys, predicate="intersects")
        for a, b in zip(left.tolist(), right.tolist(), strict=True):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        roots = sorted({find(a) for a in range(len(members))})
        jid = {r: k for k, r in enumerate(roots)}
        return {members[a]: jid[find(a)] for a in range(len(members))}
