"""The static render world of the embedded simulator: what camera and lidar rays hit.

Everything is in kaido's world frame (x east, y north, z up) [m]:

* the ground, the plane ``z = 0``, seen from above only. Its :class:`SemanticClass` comes from a
  global grid over the map (:attr:`RenderWorld.ground_classes`): ``ROAD`` on the driving lanes
  (and the paved non-driving lanes of :attr:`WorldConfig.road_lane_types`), ``LANE_MARKING`` on
  the painted lines between lanes and along the road edges, ``SIDEWALK`` on sidewalk lanes and
  ``TERRAIN`` everywhere else, including beyond the grid;
* static boxes (``BUILDING``): facades placed along the outline of the paved area, a few metres
  off it, deterministic from the map and :attr:`WorldConfig.seed`; none ever touches a lane.

Dynamic actors (vehicles, pedestrians, traffic lights) are given per tick to the renderers of
:mod:`kaido.simulation.embedded.raycast`.

Ground grid layout: ``ground_classes[row, col]`` covers the square
``x in [x0 + col * res, x0 + (col + 1) * res)``, ``y in [y0 + row * res, y0 + (row + 1) * res)``
with ``(x0, y0) = ground_origin`` and ``res = ground_resolution``; so row index grows with y
(north up when the array is shown flipped vertically).

The boxes (static here, plus each tick's actors) are found through a uniform grid of square
cells of :attr:`RenderWorld.box_cell_size` over the world's extent, walked along each ray
(:mod:`kaido.simulation.embedded.raycast_kernels`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.polygon import orient

from kaido.scene.geometry import Box3DIndex, box3d_corners
from kaido.scene.raster import MapGeometryIndex, RasterSpec, rasterize_bev
from kaido.scene.road_map import LaneType, RoadMap

__all__ = [
    "CLASS_COLORS",
    "GROUND_TEXTURE",
    "RenderWorld",
    "SemanticClass",
    "WorldConfig",
    "box_bounds",
    "build_render_world",
    "colorize_semantic",
    "place_buildings",
]

FloatArray = npt.NDArray[np.float64]
UInt8Array = npt.NDArray[np.uint8]


class SemanticClass(IntEnum):
    """Semantic class of a camera pixel or lidar point (``uint8`` in the sensor arrays).

    ======================  ==============================================================
    ``NONE`` (0)            nothing hit: sky, or beyond the sensor's range
    ``ROAD`` (1)            driving lanes and other paved lanes (shoulders, parking, ...)
    ``LANE_MARKING`` (2)    painted lines: lane dividers and road edge lines
    ``SIDEWALK`` (3)        sidewalk lanes
    ``TERRAIN`` (4)         the ground everywhere else
    ``BUILDING`` (5)        static facades along the roads
    ``VEHICLE`` (6)         cars, vans, trucks, buses, motorcycles
    ``PEDESTRIAN`` (7)      people on foot
    ``TRAFFIC_LIGHT`` (8)   the signal head of a traffic light
    ``POLE`` (9)            the pole carrying a traffic light
    ``EGO`` (10)            the ego vehicle's own body, when a caller renders it
    ``CYCLIST`` (11)        bicycles with their rider
    ``OBSTACLE`` (12)       static obstacles (cones, barriers) and unclassified agents
    ======================  ==============================================================
    """

    NONE = 0
    ROAD = 1
    LANE_MARKING = 2
    SIDEWALK = 3
    TERRAIN = 4
    BUILDING = 5
    VEHICLE = 6
    PEDESTRIAN = 7
    TRAFFIC_LIGHT = 8
    POLE = 9
    EGO = 10
    CYCLIST = 11
    OBSTACLE = 12


def _class_table(values: dict[SemanticClass, tuple[int, int, int]]) -> UInt8Array:
    missing = [c.name for c in SemanticClass if c not in values]
    if missing:
        raise ValueError(f"class table misses {missing}")
    table = np.array([values[c] for c in SemanticClass], dtype=np.uint8)
    table.setflags(write=False)
    return table


CLASS_COLORS: UInt8Array = _class_table(
    {
        SemanticClass.NONE: (135, 180, 230),
        SemanticClass.ROAD: (84, 84, 88),
        SemanticClass.LANE_MARKING: (232, 232, 220),
        SemanticClass.SIDEWALK: (168, 162, 152),
        SemanticClass.TERRAIN: (96, 128, 68),
        SemanticClass.BUILDING: (150, 118, 96),
        SemanticClass.VEHICLE: (30, 60, 190),
        SemanticClass.PEDESTRIAN: (220, 40, 60),
        SemanticClass.TRAFFIC_LIGHT: (250, 170, 30),
        SemanticClass.POLE: (140, 140, 140),
        SemanticClass.EGO: (240, 240, 240),
        SemanticClass.CYCLIST: (119, 11, 32),
        SemanticClass.OBSTACLE: (255, 120, 0),
    }
)
"""``(len(SemanticClass), 3)`` uint8 RGB per class: the semantic palette of
:func:`colorize_semantic`, and the camera's base colour of the ground classes (boxes carry their
own colours). Row ``SemanticClass.NONE`` is the sky at the horizon."""

GROUND_TEXTURE: FloatArray = np.array(
    [
        {
            SemanticClass.ROAD: 0.06,
            SemanticClass.LANE_MARKING: 0.03,
            SemanticClass.SIDEWALK: 0.08,
            SemanticClass.TERRAIN: 0.14,
        }.get(c, 0.0)
        for c in SemanticClass
    ],
    dtype=np.float64,
)
"""``(len(SemanticClass),)`` relative brightness jitter of each ground class's texture: a ground
cell's colour is its class colour times ``1 + GROUND_TEXTURE[class] * n`` with ``n`` in
``[-1, 1]`` hashed from the cell's indices."""
GROUND_TEXTURE.setflags(write=False)

_FACADE_COLORS = np.array(
    [
        (150, 118, 96),
        (176, 160, 136),
        (122, 96, 84),
        (190, 182, 170),
        (110, 112, 120),
        (160, 90, 70),
        (200, 190, 150),
        (96, 100, 92),
    ],
    dtype=np.uint8,
)


def colorize_semantic(semantic: npt.NDArray[np.uint8]) -> UInt8Array:
    """RGB ``(..., 3)`` uint8 of a semantic array ``(...)`` through :data:`CLASS_COLORS`; values
    outside :class:`SemanticClass` are black."""
    sem = np.asarray(semantic)
    if sem.dtype != np.uint8:
        raise ValueError(f"semantic must be uint8, got {sem.dtype}")
    table = np.zeros((256, 3), dtype=np.uint8)
    table[: len(CLASS_COLORS)] = CLASS_COLORS
    out: UInt8Array = table[sem]
    return out


# -- the world -------------------------------------------------------------------------------------

MAX_BOX_GRID_CELLS = 1 << 22
"""Upper bound on the cells of the box grid; a larger ``box_cell_size`` lowers the count."""


def _check_array(
    where: str, value: object, dtype: type[np.generic], shape: tuple[int | None, ...]
) -> npt.NDArray[Any]:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{where}: expected a numpy array, got {type(value).__name__}")
    ok = value.ndim == len(shape) and all(
        s is None or s == n for s, n in zip(shape, value.shape, strict=True)
    )
    if not ok or value.dtype != dtype:
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(
            f"{where}: expected {np.dtype(dtype)} {want}, got {value.dtype} {value.shape}"
        )
    out = np.ascontiguousarray(value).copy()
    out.setflags(write=False)
    return out


def box_bounds(boxes: FloatArray) -> tuple[FloatArray, FloatArray]:
    """World footprint bounding boxes ``(lo (N, 2), hi (N, 2))`` [m] of boxes ``(N, 7)``."""
    if len(boxes) == 0:
        return np.zeros((0, 2)), np.zeros((0, 2))
    hl = 0.5 * boxes[:, Box3DIndex.LENGTH]
    hw = 0.5 * boxes[:, Box3DIndex.WIDTH]
    c = np.abs(np.cos(boxes[:, Box3DIndex.YAW]))
    s = np.abs(np.sin(boxes[:, Box3DIndex.YAW]))
    ex = c * hl + s * hw
    ey = s * hl + c * hw
    centre = boxes[:, [Box3DIndex.X, Box3DIndex.Y]]
    half = np.stack([ex, ey], axis=1)
    return np.ascontiguousarray(centre - half), np.ascontiguousarray(centre + half)


@dataclass(frozen=True, eq=False)
class RenderWorld:
    """The static scene the sensors see (see the module docstring for frames and layout).

    Arrays are copied at construction and stored read-only. ``M`` = static boxes.
    """

    ground_classes: npt.NDArray[np.uint8]
    """``(H, W)`` uint8 :class:`SemanticClass` of each ground cell (row along y, column along x)."""
    ground_origin: FloatArray
    """``(2,)`` world (x, y) [m] of the corner of cell ``[0, 0]`` (its lowest x and y)."""
    ground_resolution: float
    """Edge length of a ground cell [m]."""
    static_boxes: FloatArray = field(default_factory=lambda: np.zeros((0, 7)))
    """``(M, 7)`` float64 boxes indexed by :class:`~kaido.scene.geometry.Box3DIndex` [m, rad]."""
    static_classes: npt.NDArray[np.uint8] = field(
        default_factory=lambda: np.zeros(0, dtype=np.uint8)
    )
    """``(M,)`` uint8 :class:`SemanticClass` of each static box."""
    static_colors: npt.NDArray[np.uint8] = field(
        default_factory=lambda: np.zeros((0, 3), dtype=np.uint8)
    )
    """``(M, 3)`` uint8 RGB of each static box."""
    box_cell_size: float = 4.0
    """Edge of a cell of the uniform grid that finds boxes along a ray [m]."""
    ground_default: SemanticClass = SemanticClass.TERRAIN
    """Class of the ground outside the grid."""
    box_grid_origin: FloatArray = field(init=False, repr=False)
    """``(2,)`` world (x, y) [m] of the box grid's lowest corner: the ground grid's extent grown
    to hold every static box."""
    box_grid_shape: tuple[int, int] = field(init=False)
    """``(n_cols, n_rows)`` cells of the box grid along x and y."""

    def __post_init__(self) -> None:
        grid = _check_array(
            "RenderWorld.ground_classes", self.ground_classes, np.uint8, (None, None)
        )
        if grid.shape[0] == 0 or grid.shape[1] == 0:
            raise ValueError(f"RenderWorld.ground_classes: must not be empty, got {grid.shape}")
        if int(grid.max()) >= len(SemanticClass):
            raise ValueError(
                f"RenderWorld.ground_classes: holds {int(grid.max())}, not a SemanticClass"
            )
        origin = _check_array(
            "RenderWorld.ground_origin",
            np.asarray(self.ground_origin, dtype=np.float64),
            np.float64,
            (2,),
        )
        res = float(self.ground_resolution)
        if not (math.isfinite(res) and res > 0.0):
            raise ValueError(f"RenderWorld.ground_resolution: must be > 0 m, got {res}")
        if not np.isfinite(origin).all():
            raise ValueError(f"RenderWorld.ground_origin: must be finite, got {origin.tolist()}")
        boxes = _check_array("RenderWorld.static_boxes", self.static_boxes, np.float64, (None, 7))
        m = boxes.shape[0]
        classes = _check_array("RenderWorld.static_classes", self.static_classes, np.uint8, (m,))
        colors = _check_array("RenderWorld.static_colors", self.static_colors, np.uint8, (m, 3))
        if not np.isfinite(boxes).all():
            raise ValueError("RenderWorld.static_boxes: must be finite")
        sizes = boxes[:, [Box3DIndex.LENGTH, Box3DIndex.WIDTH, Box3DIndex.HEIGHT]]
        if (sizes < 0.0).any():
            raise ValueError("RenderWorld.static_boxes: sizes must be >= 0")
        cell = float(self.box_cell_size)
        if not (math.isfinite(cell) and cell > 0.0):
            raise ValueError(f"RenderWorld.box_cell_size: must be > 0 m, got {cell}")
        object.__setattr__(self, "ground_classes", grid)
        object.__setattr__(self, "ground_origin", origin)
        object.__setattr__(self, "ground_resolution", res)
        object.__setattr__(self, "static_boxes", boxes)
        object.__setattr__(self, "static_classes", classes)
        object.__setattr__(self, "static_colors", colors)
        object.__setattr__(self, "box_cell_size", cell)
        object.__setattr__(self, "ground_default", SemanticClass(self.ground_default))
        lo = origin.copy()
        hi = origin + res * np.array([grid.shape[1], grid.shape[0]], dtype=np.float64)
        if m:
            b_lo, b_hi = box_bounds(boxes)
            lo = np.minimum(lo, b_lo.min(axis=0))
            hi = np.maximum(hi, b_hi.max(axis=0))
        n_cols, n_rows = (np.floor((hi - lo) / cell).astype(np.int64) + 1).tolist()
        if n_cols * n_rows > MAX_BOX_GRID_CELLS:
            raise ValueError(
                f"RenderWorld.box_cell_size: {cell} m gives a {n_cols} x {n_rows} box grid over "
                f"the world's {hi[0] - lo[0]:.0f} x {hi[1] - lo[1]:.0f} m; use a larger cell"
            )
        lo.setflags(write=False)
        object.__setattr__(self, "box_grid_origin", lo)
        object.__setattr__(self, "box_grid_shape", (int(n_cols), int(n_rows)))

    @property
    def ground_extent(self) -> tuple[float, float, float, float]:
        """``(x_min, y_min, x_max, y_max)`` [m] of the ground grid."""
        x0, y0 = self.ground_origin.tolist()
        h, w = self.ground_classes.shape
        return x0, y0, x0 + w * self.ground_resolution, y0 + h * self.ground_resolution

    def ground_class_at(self, points: npt.ArrayLike) -> npt.NDArray[np.uint8]:
        """:class:`SemanticClass` ``(N,)`` of the ground under world points ``(N, 2)`` [m]."""
        p = np.asarray(points, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != 2:
            raise ValueError(f"RenderWorld.ground_class_at: points must be (N, 2), got {p.shape}")
        col = np.floor((p[:, 0] - self.ground_origin[0]) / self.ground_resolution)
        row = np.floor((p[:, 1] - self.ground_origin[1]) / self.ground_resolution)
        h, w = self.ground_classes.shape
        inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
        out = np.full(p.shape[0], int(self.ground_default), dtype=np.uint8)
        out[inside] = self.ground_classes[
            row[inside].astype(np.int64), col[inside].astype(np.int64)
        ]
        return out

    def __repr__(self) -> str:
        h, w = self.ground_classes.shape
        return (
            f"RenderWorld(ground={w}x{h} cells of {self.ground_resolution} m, "
            f"static_boxes={len(self.static_boxes)}, box_grid={self.box_grid_shape[0]}x"
            f"{self.box_grid_shape[1]} cells of {self.box_cell_size} m)"
        )


# -- building the world from a map -----------------------------------------------------------------


@dataclass(frozen=True)
class WorldConfig:
    """How :func:`build_render_world` turns a road map into a render world."""

    ground_resolution: float = 0.2
    """Edge of a ground grid cell [m]."""
    margin: float = 60.0
    """Ground grid extent beyond the map's lanes on every side [m]."""
    marking_width_px: int = 1
    """Width of painted lines in ground cells (1 cell = ``ground_resolution`` m)."""
    edge_markings: bool = True
    """Also paint a line along the edges of the driving lanes (not only between lanes)."""
    road_lane_types: tuple[LaneType, ...] = (
        LaneType.DRIVING,
        LaneType.SHOULDER,
        LaneType.PARKING,
        LaneType.BIKING,
        LaneType.BIDIRECTIONAL,
    )
    """Lane types drawn as ``ROAD``."""
    sidewalk_lane_types: tuple[LaneType, ...] = (LaneType.SIDEWALK,)
    """Lane types drawn as ``SIDEWALK``."""
    buildings: bool = True
    """Place building facades along the roads."""
    building_setback: float = 3.0
    """Distance from the paved area (road and sidewalk lanes, junctions) to the facades [m]."""
    building_clearance: float = 1.5
    """Smallest distance any building keeps from the paved area [m]; buildings that would come
    closer (at concave corners) are left out."""
    building_length: tuple[float, float] = (8.0, 22.0)
    """Range of a facade's length along the road [m]."""
    building_depth: tuple[float, float] = (8.0, 16.0)
    """Range of a building's depth away from the road [m]."""
    building_height: tuple[float, float] = (5.0, 22.0)
    """Range of a building's height [m]."""
    building_gap: tuple[float, float] = (0.0, 5.0)
    """Range of the gap between neighbouring facades [m]."""
    box_cell_size: float = 4.0
    """Edge of a cell of the box grid [m] (see :class:`RenderWorld`)."""
    seed: int = 0
    """Seed of the buildings' sizes and colours."""

    def __post_init__(self) -> None:
        for name in ("ground_resolution", "building_setback", "box_cell_size"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"WorldConfig.{name}: must be > 0 m, got {value}")
        for name in ("margin", "building_clearance"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"WorldConfig.{name}: must be >= 0 m, got {value}")
        if self.building_clearance > self.building_setback:
            raise ValueError(
                f"WorldConfig.building_clearance: must not exceed building_setback="
                f"{self.building_setback} m, got {self.building_clearance}"
            )
        width = self.marking_width_px
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"WorldConfig.marking_width_px: must be an int >= 1, got {width!r}")
        for name in ("building_length", "building_depth", "building_height", "building_gap"):
            lo, hi = getattr(self, name)
            minimum = 0.0 if name == "building_gap" else 0.5
            if not (math.isfinite(lo) and math.isfinite(hi) and minimum <= lo <= hi):
                raise ValueError(
                    f"WorldConfig.{name}: must be a range (lo, hi) with {minimum} <= lo <= hi "
                    f"[m], got {(lo, hi)}"
                )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"WorldConfig.seed: must be an int, got {self.seed!r}")


def _raster_masks(
    quads: FloatArray,
    lines: dict[str, FloatArray],
    origin: FloatArray,
    n_cols: int,
    n_rows: int,
    resolution: float,
    line_width_px: int,
) -> list[npt.NDArray[np.bool_]]:
    """Boolean ``(n_rows, n_cols)`` grids (row along y) of the quads' area and of each line layer.

    Drawn with the BEV raster kernels at yaw 0: raster row ``r`` runs along x (far end first) and
    column ``c`` along y (far end first), so the ground grid is the raster flipped on both axes
    and transposed.
    """
    if len(quads) == 0 and not any(len(v) for v in lines.values()):
        return [np.zeros((n_rows, n_cols), dtype=bool) for _ in range(1 + len(lines))]
    index = MapGeometryIndex(quads, lines, cell_size=64.0)
    spec = RasterSpec(
        height=n_cols,
        width=n_rows,
        resolution=resolution,
        ego_row=float(n_cols),
        ego_col=float(n_rows),
        line_width_px=line_width_px,
    )
    pose = np.array([origin[0], origin[1], 0.0])
    raster = rasterize_bev(index, pose, spec, index.layer_names)
    return [np.ascontiguousarray(layer[::-1, ::-1].T.astype(bool)) for layer in raster]


def _paved_area(road_map: RoadMap, lane_types: Sequence[LaneType]) -> shapely.Geometry:
    """Union of the lanes of ``lane_types`` and the convex hulls of the junctions."""
    polys = [lane.polygon() for lane in road_map.lanes if lane.lane_type in lane_types]
    for junction in road_map.junctions:
        pts = np.concatenate(
            [
                np.concatenate([road_map.lanes[i].left_boundary, road_map.lanes[i].right_boundary])
                for i in junction.lanes
            ]
        )
        polys.append(shapely.convex_hull(shapely.multipoints(pts)))
    return shapely.union_all(polys)


def _ring_coords(area: shapely.Geometry) -> list[FloatArray]:
    """The rings ``(P, 2)`` of ``area``'s polygons, each oriented so the outside is on its right."""
    polygons = [g for g in getattr(area, "geoms", [area]) if g.geom_type == "Polygon"]
    rings: list[FloatArray] = []
    for poly in polygons:
        oriented = orient(poly, sign=1.0)
        rings.append(np.asarray(oriented.exterior.coords)[:, :2])
        rings.extend(np.asarray(r.coords)[:, :2] for r in oriented.interiors)
    return rings


def place_buildings(
    paved: shapely.Geometry, config: WorldConfig
) -> tuple[FloatArray, npt.NDArray[np.uint8]]:
    """Building boxes ``(M, 7)`` and their colours ``(M, 3)`` along the outline of ``paved``.

    The outline of ``paved`` grown by ``building_setback`` is walked ring by ring (in the fixed
    order shapely gives them); facades follow its chords, each building extending away from the
    paved area. A building whose footprint comes within ``building_clearance`` of ``paved`` is
    left out. Sizes, gaps and colours come from a generator seeded with ``config.seed``.
    """
    rng = np.random.default_rng(config.seed)
    outline = shapely.simplify(shapely.buffer(paved, config.building_setback), 0.25)
    boxes: list[tuple[float, ...]] = []
    for ring in _ring_coords(outline):
        steps = np.linalg.norm(np.diff(ring, axis=0), axis=1)
        s = np.concatenate([[0.0], np.cumsum(steps)])
        total = float(s[-1])
        pos = float(rng.uniform(*config.building_gap))
        while True:
            length = float(rng.uniform(*config.building_length))
            depth = float(rng.uniform(*config.building_depth))
            height = float(rng.uniform(*config.building_height))
            gap = float(rng.uniform(*config.building_gap))
            if pos + length > total:
                break
            a = np.array([np.interp(pos, s, ring[:, 0]), np.interp(pos, s, ring[:, 1])])
            b = np.array(
                [np.interp(pos + length, s, ring[:, 0]), np.interp(pos + length, s, ring[:, 1])]
            )
            chord = b - a
            chord_len = float(np.hypot(*chord))
            pos += length + gap
            if chord_len < config.building_length[0] * 0.5:
                continue
            yaw = math.atan2(chord[1], chord[0])
            right = np.array([math.sin(yaw), -math.cos(yaw)])
            centre = 0.5 * (a + b) + right * (0.5 * depth)
            boxes.append((centre[0], centre[1], 0.5 * height, yaw, chord_len, depth, height))
    if not boxes:
        return np.zeros((0, 7)), np.zeros((0, 3), dtype=np.uint8)
    out = np.array(boxes, dtype=np.float64)
    footprints = shapely.polygons(box3d_corners(out)[:, :4, :2])
    keep = ~shapely.intersects(footprints, shapely.buffer(paved, config.building_clearance))
    out = out[keep]
    colors = _FACADE_COLORS[rng.integers(0, len(_FACADE_COLORS), len(boxes))][keep]
    return out, np.ascontiguousarray(colors)


def build_render_world(road_map: RoadMap, config: WorldConfig | None = None) -> RenderWorld:
    """The render world of a map: ground classes from its lanes and lines, buildings along them.

    Deterministic: the same map and config give the same world.
    """
    if not isinstance(road_map, RoadMap):
        raise TypeError(f"road_map: expected a RoadMap, got {type(road_map).__name__}")
    config = WorldConfig() if config is None else config
    if not isinstance(config, WorldConfig):
        raise TypeError(f"config: expected a WorldConfig, got {type(config).__name__}")
    res = config.ground_resolution
    x_min, y_min, x_max, y_max = road_map.bounds
    origin = np.array([x_min - config.margin, y_min - config.margin])
    origin = np.floor(origin / res) * res
    n_cols = int(math.ceil((x_max + config.margin - origin[0]) / res))
    n_rows = int(math.ceil((y_max + config.margin - origin[1]) / res))

    road_lanes = [ln for ln in road_map.lanes if ln.lane_type in config.road_lane_types]
    sidewalk_lanes = [ln for ln in road_map.lanes if ln.lane_type in config.sidewalk_lane_types]
    layers = road_map.segment_layers()
    lines = {"lane_dividers": layers["lane_dividers"]}
    if config.edge_markings:
        lines["road_edges"] = layers["road_edges"]
    road, *markings = _raster_masks(
        road_map.lane_quads(road_lanes),
        lines,
        origin,
        n_cols,
        n_rows,
        res,
        config.marking_width_px,
    )
    (sidewalk,) = _raster_masks(
        road_map.lane_quads(sidewalk_lanes), {}, origin, n_cols, n_rows, res, 1
    )
    ground = np.full((n_rows, n_cols), int(SemanticClass.TERRAIN), dtype=np.uint8)
    ground[sidewalk] = SemanticClass.SIDEWALK
    ground[road] = SemanticClass.ROAD
    for mask in markings:
        ground[mask & road] = SemanticClass.LANE_MARKING

    if config.buildings:
        paved = _paved_area(road_map, (*config.road_lane_types, *config.sidewalk_lane_types))
        boxes, colors = place_buildings(paved, config)
    else:
        boxes, colors = np.zeros((0, 7)), np.zeros((0, 3), dtype=np.uint8)
    return RenderWorld(
        ground_classes=ground,
        ground_origin=origin,
        ground_resolution=res,
        static_boxes=boxes,
        static_classes=np.full(len(boxes), int(SemanticClass.BUILDING), dtype=np.uint8),
        static_colors=colors,
        box_cell_size=config.box_cell_size,
    )
