"""Ego-centred bird's-eye-view (BEV) rasters of map geometry, fast enough for every planning tick.

Inputs are world-frame map geometry in kaido's right-handed frame [m], precomputed once per map:

* ``quads`` ``(Q, 4, 2)``: quadrilaterals whose union is the drivable area (the layer
  ``"drivable"``), corners in order around the quad, either winding. Each is filled as two
  triangles (:func:`quad_triangles`): a simple quad (convex or not) covers exactly its own area,
  a self-intersecting one (a "bow tie" at a sharp turn) the triangles ``(p0, p1, p2)`` and
  ``(p0, p2, p3)``; degenerate (zero-area) triangles cover nothing.
* segment layers ``{name: (S, 2, 2)}``: line segments of polylines (lane dividers, centrelines,
  road edges), one array per layer.

:class:`MapGeometryIndex` holds them with a uniform-grid spatial hash (CSR arrays) per layer;
:func:`rasterize_bev` culls the grid cells under the raster's rotated footprint and draws only
what they hold with the Numba kernels of :mod:`kaido.scene.raster_kernels`.
:func:`rasterize_bev_reference` is the exact oracle (shapely, pixel centres mapped to the world)
and :func:`rasterize_bev_cv2` the conventional OpenCV drawing, kept for comparison.

Pixel convention (raster ``(C, H, W)``, row ``r``, column ``c``, resolution ``res`` [m/px]):
forward is up and left is left. With the ego origin at pixel row ``ego_row`` and column
``ego_col`` (defaults ``H / 2`` and ``W / 2``; fractional values allowed), pixel ``(r, c)``
covers the ego-frame square::

    x in [(ego_row - r - 1) * res, (ego_row - r) * res]     (row 0 is the far front)
    y in [(ego_col - c - 1) * res, (ego_col - c) * res]     (column 0 is the far left)

so its centre is ``x = (ego_row - r - 0.5) * res``, ``y = (ego_col - c - 0.5) * res``. The ego
frame is the world frame moved to the pose ``(x, y, yaw)`` [m, m, rad]: x along the heading, y
to its left. A drivable pixel is one whose centre lies inside (or on the edge of) a quad; a line
pixel is one whose centre lies within ``line_width_px / 2`` pixels of a segment of that layer.
Channels are 0/1 ``uint8`` masks in the order the caller asks for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import shapely

from kaido.scene import raster_kernels
from kaido.scene.geometry import SE2, PoseIndex

FloatArray = npt.NDArray[np.float64]
MaskArray = npt.NDArray[np.uint8]

DRIVABLE = "drivable"
"""Name of the layer drawn from the quads."""

MAX_GRID_CELLS = 1 << 22
"""Upper bound on the spatial hash's cells (per layer); a larger ``cell_size`` lowers the count."""


@dataclass(frozen=True)
class RasterSpec:
    """Size, scale and ego placement of an ego-centred BEV raster."""

    height: int = 200
    """Rows [px], along ego x (forward is up)."""
    width: int = 200
    """Columns [px], along ego y (left is left)."""
    resolution: float = 0.5
    """Edge length of a pixel [m/px]."""
    ego_row: float | None = None
    """Pixel row [px] of the ego origin (a pixel boundary when integral); None = ``height / 2``."""
    ego_col: float | None = None
    """Pixel column [px] of the ego origin; None = ``width / 2``."""
    line_width_px: int = 1
    """Width of drawn lines [px]: a pixel is set when a segment passes within half of it."""

    def __post_init__(self) -> None:
        for name in ("height", "width", "line_width_px"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"RasterSpec.{name} must be a positive integer, got {value!r}")
        res = self.resolution
        if isinstance(res, bool) or not isinstance(res, int | float | np.number):
            raise ValueError(f"RasterSpec.resolution must be a number, got {res!r}")
        if not math.isfinite(float(res)) or float(res) <= 0.0:
            raise ValueError(f"RasterSpec.resolution must be positive and finite, got {res!r}")
        for name in ("ego_row", "ego_col"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ValueError(f"RasterSpec.{name} must be a number or None, got {value!r}")
            if not math.isfinite(float(value)):
                raise ValueError(f"RasterSpec.{name} must be finite, got {value!r}")

    @property
    def origin_row(self) -> float:
        """Pixel row of the ego origin [px] (``ego_row`` resolved)."""
        return float(self.height) / 2.0 if self.ego_row is None else float(self.ego_row)

    @property
    def origin_col(self) -> float:
        """Pixel column of the ego origin [px] (``ego_col`` resolved)."""
        return float(self.width) / 2.0 if self.ego_col is None else float(self.ego_col)

    @property
    def line_radius_px(self) -> float:
        """Largest distance [px] from a segment to the centre of a pixel it sets."""
        return 0.5 * float(self.line_width_px)


# -- input checks ----------------------------------------------------------------------------------


def _as_coords(value: Any, name: str, tail: tuple[int, ...]) -> FloatArray:
    """``value`` as a finite float64 C array of shape ``(N, *tail)``; ValueError naming ``name``."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged nested lists and the like
        raise ValueError(f"{name} must be an array of shape (N, {tail}), got {value!r}") from exc
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(f"{name} must hold real numbers (float or int), got dtype {arr.dtype}")
    if arr.ndim != 1 + len(tail) or arr.shape[1:] != tail:
        shape = ", ".join(["N", *map(str, tail)])
        raise ValueError(f"{name} must have shape ({shape}), got {arr.shape}")
    out = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(out).all():
        bad = np.argwhere(~np.isfinite(out))[0]
        raise ValueError(f"{name} holds a non-finite value at index {tuple(int(i) for i in bad)}")
    return out


def _check_quads(quads: Any) -> FloatArray:
    return _as_coords(quads, "quads", (4, 2))


def _check_segment_layers(segment_layers: Mapping[str, Any]) -> dict[str, FloatArray]:
    if not isinstance(segment_layers, Mapping):
        raise ValueError(
            f"segment_layers must be a mapping of layer name to (S, 2, 2) segments, "
            f"got {type(segment_layers).__name__}"
        )
    out: dict[str, FloatArray] = {}
    for name, segments in segment_layers.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"segment_layers keys must be non-empty strings, got {name!r}")
        if name == DRIVABLE:
            raise ValueError(f"segment_layers may not use the reserved name {DRIVABLE!r}")
        out[name] = _as_coords(segments, f"segment_layers[{name!r}]", (2, 2))
    return out


def pose_array(pose: SE2 | npt.ArrayLike) -> FloatArray:
    """A pose as a finite ``(3,)`` float64 array ``[x, y, yaw]`` [m, m, rad].

    Accepts an :class:`~kaido.scene.geometry.SE2` or an array-like ``(3,)`` indexed by
    :class:`~kaido.scene.geometry.PoseIndex`.
    """
    raw = pose.as_array() if isinstance(pose, SE2) else pose
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"pose must be SE2 or an array [x, y, yaw], got {pose!r}") from exc
    if arr.shape != (3,):
        raise ValueError(f"pose must have shape (3,) as [x, y, yaw], got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"pose must be finite, got {arr.tolist()}")
    return np.ascontiguousarray(arr)


def _check_spec(spec: Any) -> RasterSpec:
    if spec is None:
        return RasterSpec()
    if not isinstance(spec, RasterSpec):
        raise ValueError(f"spec must be a RasterSpec, got {type(spec).__name__}")
    return spec


def _check_layers(layers: Sequence[str] | None, available: Sequence[str]) -> tuple[str, ...]:
    if layers is None:
        return (DRIVABLE, *available)
    if isinstance(layers, str):
        raise ValueError(f"layers must be a sequence of layer names, not the string {layers!r}")
    out = tuple(layers)
    for name in out:
        if name != DRIVABLE and name not in available:
            known = ", ".join(repr(n) for n in (DRIVABLE, *available))
            raise ValueError(f"unknown raster layer {name!r}; known layers: {known}")
    return out


# -- frames ----------------------------------------------------------------------------------------


def world_to_pixel(
    points: npt.ArrayLike, pose: SE2 | npt.ArrayLike, spec: RasterSpec
) -> FloatArray:
    """World points ``(..., 2)`` [m] -> continuous pixel coordinates ``(..., 2)`` as (row, col).

    Integral results are pixel centres: pixel ``(r, c)`` is centred on ``(r, c)``.
    """
    p = pose_array(pose)
    pts = np.asarray(points, dtype=np.float64)
    cos, sin = math.cos(p[PoseIndex.YAW]), math.sin(p[PoseIndex.YAW])
    dx = pts[..., 0] - p[PoseIndex.X]
    dy = pts[..., 1] - p[PoseIndex.Y]
    ego_x = cos * dx + sin * dy
    ego_y = -sin * dx + cos * dy
    rows = spec.origin_row - ego_x / spec.resolution - 0.5
    cols = spec.origin_col - ego_y / spec.resolution - 0.5
    return np.stack([rows, cols], axis=-1)


def pixel_centres_world(pose: SE2 | npt.ArrayLike, spec: RasterSpec) -> FloatArray:
    """World coordinates ``(H, W, 2)`` [m] of every pixel centre of the raster at ``pose``."""
    p = pose_array(pose)
    rows = np.arange(spec.height, dtype=np.float64)
    cols = np.arange(spec.width, dtype=np.float64)
    ego_x = (spec.origin_row - rows - 0.5) * spec.resolution  # (H,)
    ego_y = (spec.origin_col - cols - 0.5) * spec.resolution  # (W,)
    cos, sin = math.cos(p[PoseIndex.YAW]), math.sin(p[PoseIndex.YAW])
    wx = p[PoseIndex.X] + cos * ego_x[:, None] - sin * ego_y[None, :]
    wy = p[PoseIndex.Y] + sin * ego_x[:, None] + cos * ego_y[None, :]
    return np.stack([wx, wy], axis=-1)


def raster_footprint(
    pose: SE2 | npt.ArrayLike, spec: RasterSpec, margin_px: float = 0.0
) -> FloatArray:
    """World corners ``(4, 2)`` [m] of the raster's area, grown by ``margin_px`` on every side.

    Corners go front-left, front-right, rear-right, rear-left (the image's corners clockwise).
    """
    p = pose_array(pose)
    res = spec.resolution
    x_hi = (spec.origin_row + margin_px) * res
    x_lo = (spec.origin_row - spec.height - margin_px) * res
    y_hi = (spec.origin_col + margin_px) * res
    y_lo = (spec.origin_col - spec.width - margin_px) * res
    ego = np.array([[x_hi, y_hi], [x_hi, y_lo], [x_lo, y_lo], [x_lo, y_hi]])
    cos, sin = math.cos(p[PoseIndex.YAW]), math.sin(p[PoseIndex.YAW])
    rot = np.array([[cos, -sin], [sin, cos]])
    return np.ascontiguousarray(ego @ rot.T + p[[PoseIndex.X, PoseIndex.Y]])


# -- the index -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _GridLayer:
    """CSR cell lists of one layer: cell ``g`` holds ``items[start[g]:start[g + 1]]``."""

    start: npt.NDArray[np.int64]  # (G + 1,)
    items: npt.NDArray[np.int64]  # (M,)
    n_items: int


class MapGeometryIndex:
    """World-frame map geometry with a uniform-grid spatial hash per layer, built once per map.

    ``quads`` ``(Q, 4, 2)`` [m] make the ``"drivable"`` layer; ``segment_layers`` maps each line
    layer's name to its segments ``(S, 2, 2)`` [m]. Every layer shares one grid of square cells
    of ``cell_size`` [m] covering all items' bounding boxes; each item is listed in every cell
    its bounding box touches.
    """

    def __init__(
        self,
        quads: npt.ArrayLike,
        segment_layers: Mapping[str, npt.ArrayLike],
        cell_size: float = 32.0,
    ) -> None:
        if isinstance(cell_size, bool) or not isinstance(cell_size, int | float | np.number):
            raise ValueError(f"cell_size must be a number [m], got {cell_size!r}")
        if not math.isfinite(float(cell_size)) or float(cell_size) <= 0.0:
            raise ValueError(f"cell_size must be positive and finite [m], got {cell_size!r}")
        self.cell_size = float(cell_size)
        # private read-only copies: the index must not change under the caller's edits
        self.quads = _check_quads(quads).copy()
        layers = {name: seg.copy() for name, seg in _check_segment_layers(segment_layers).items()}
        for arr in (self.quads, *layers.values()):
            arr.setflags(write=False)
        self.segment_layers: Mapping[str, FloatArray] = MappingProxyType(layers)

        boxes = {DRIVABLE: _bounding_boxes(self.quads)}
        boxes.update({name: _bounding_boxes(seg) for name, seg in layers.items()})
        lows = [lo for lo, _ in boxes.values() if len(lo)]
        highs = [hi for _, hi in boxes.values() if len(hi)]
        if lows:
            origin = np.min(np.concatenate(lows), axis=0)
            top = np.max(np.concatenate(highs), axis=0)
        else:
            origin = top = np.zeros(2)
        n_cols, n_rows = (np.floor((top - origin) / self.cell_size).astype(np.int64) + 1).tolist()
        if n_cols * n_rows > MAX_GRID_CELLS:
            raise ValueError(
                f"cell_size {self.cell_size} m gives a {n_cols} x {n_rows} grid over the map's "
                f"{top[0] - origin[0]:.0f} x {top[1] - origin[1]:.0f} m extent; use a larger "
                f"cell_size (at most {MAX_GRID_CELLS} cells)"
            )
        self.origin: FloatArray = origin
        self.n_cols = int(n_cols)
        self.n_rows = int(n_rows)
        self._grids: dict[str, _GridLayer] = {}
        for name, (lo, hi) in boxes.items():
            start, items = raster_kernels.build_grid(
                lo, hi, float(origin[0]), float(origin[1]), self.cell_size, self.n_cols, self.n_rows
            )
            self._grids[name] = _GridLayer(start, items, len(lo))

    @property
    def segment_layer_names(self) -> tuple[str, ...]:
        """Names of the line layers, in the order they were given."""
        return tuple(self.segment_layers)

    @property
    def layer_names(self) -> tuple[str, ...]:
        """All layers: ``"drivable"`` first, then the line layers."""
        return (DRIVABLE, *self.segment_layers)

    def query(self, layer: str, corners: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Ids ``(K,)`` of ``layer``'s items in the grid cells that overlap a world rectangle.

        ``corners`` ``(4, 2)`` [m] go around the rectangle (as :func:`raster_footprint` gives
        them). The ids are a superset of the items whose bounding box meets the rectangle.
        """
        _check_layers((layer,), self.segment_layer_names)
        rect = _as_coords(corners, "corners", (2,))
        if rect.shape[0] != 4:
            raise ValueError(f"corners must have shape (4, 2), got {rect.shape}")
        grid = self._grids[layer]
        return raster_kernels.cull_items(
            grid.start,
            grid.items,
            grid.n_items,
            float(self.origin[0]),
            float(self.origin[1]),
            self.cell_size,
            self.n_cols,
            self.n_rows,
            rect,
        )

    def __repr__(self) -> str:
        sizes = ", ".join(f"{n}={len(s)}" for n, s in self.segment_layers.items())
        return (
            f"MapGeometryIndex(quads={len(self.quads)}, {sizes}, cell_size={self.cell_size}, "
            f"grid={self.n_cols}x{self.n_rows})"
        )


def _bounding_boxes(geometry: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per-item world bounding boxes ``(lo (N, 2), hi (N, 2))`` of ``(N, P, 2)`` geometry."""
    if len(geometry) == 0:
        return np.zeros((0, 2)), np.zeros((0, 2))
    return (
        np.ascontiguousarray(geometry.min(axis=1)),
        np.ascontiguousarray(geometry.max(axis=1)),
    )


# -- rasterisation ---------------------------------------------------------------------------------


def rasterize_bev(
    index: MapGeometryIndex,
    pose: SE2 | npt.ArrayLike,
    spec: RasterSpec | None = None,
    layers: Sequence[str] | None = None,
) -> MaskArray:
    """Ego-centred BEV raster ``(C, H, W)`` of 0/1 masks of ``index``'s layers around ``pose``.

    ``pose`` is an :class:`~kaido.scene.geometry.SE2` or ``[x, y, yaw]`` [m, m, rad];
    ``layers`` defaults to ``("drivable", *index.segment_layer_names)``; C = ``len(layers)``.
    """
    if not isinstance(index, MapGeometryIndex):
        raise ValueError(f"index must be a MapGeometryIndex, got {type(index).__name__}")
    p = pose_array(pose)
    spec = _check_spec(spec)
    names = _check_layers(layers, index.segment_layer_names)
    out = np.empty((len(names), spec.height, spec.width), np.uint8)
    geometry = (
        spec.height,
        spec.width,
        float(spec.resolution),
        spec.origin_row,
        spec.origin_col,
    )
    area = raster_footprint(p, spec, margin_px=1.0)
    lines = raster_footprint(p, spec, margin_px=1.0 + spec.line_radius_px)
    drawn: dict[str, int] = {}
    for channel, name in enumerate(names):
        if name in drawn:
            out[channel] = out[drawn[name]]
            continue
        drawn[name] = channel
        if name == DRIVABLE:
            ids = index.query(name, area)
            out[channel] = raster_kernels.raster_quads(index.quads, ids, p, *geometry)
        else:
            ids = index.query(name, lines)
            out[channel] = raster_kernels.raster_segments(
                index.segment_layers[name], ids, p, *geometry, spec.line_radius_px
            )
    return out


def _area2(a: FloatArray, b: FloatArray, c: FloatArray) -> FloatArray:
    """Twice the signed areas ``(...)`` of triangles with corners ``(..., 2)`` (CCW positive)."""
    e1 = b - a
    e2 = c - a
    return np.asarray(e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0])


def quad_triangles(quads: FloatArray) -> FloatArray:
    """The two triangles ``(Q, 2, 3, 2)`` that the kernels fill for each quad ``(Q, 4, 2)``.

    The split is along the diagonal ``p0-p2`` unless the triangles ``(p0, p1, p2)`` and
    ``(p0, p2, p3)`` have opposite orientations while ``(p1, p2, p3)`` and ``(p1, p3, p0)`` do
    not; then along ``p1-p3``. For a simple quad this is a diagonal inside it, so the triangles
    tile it exactly; a self-intersecting quad gets ``(p0, p1, p2)`` and ``(p0, p2, p3)``.
    """
    p = [quads[:, i] for i in range(4)]
    flip_02 = _area2(p[0], p[1], p[2]) * _area2(p[0], p[2], p[3]) < 0.0
    keep_13 = _area2(p[1], p[2], p[3]) * _area2(p[1], p[3], p[0]) >= 0.0
    first = np.where(flip_02 & keep_13, 1, 0)
    order = (first[:, None, None] + np.array([[0, 1, 2], [0, 2, 3]])) % 4  # (Q, 2, 3)
    return np.take_along_axis(quads[:, None, :, :], order[..., None], axis=2)


def _near_footprint(geometry: FloatArray, corners: FloatArray) -> npt.NDArray[np.bool_]:
    """Items ``(N,)`` of ``(N, P, 2)`` geometry whose bounding box meets the corners' box."""
    lo = corners.min(axis=0)
    hi = corners.max(axis=0)
    return np.all((geometry.max(axis=1) >= lo) & (geometry.min(axis=1) <= hi), axis=1)


def rasterize_bev_reference(
    quads: npt.ArrayLike,
    segment_layers: Mapping[str, npt.ArrayLike],
    pose: SE2 | npt.ArrayLike,
    spec: RasterSpec | None = None,
    layers: Sequence[str] | None = None,
) -> MaskArray:
    """The oracle for :func:`rasterize_bev`: the same ``(C, H, W)`` masks, computed with shapely.

    Every pixel centre is mapped to the world and tested exactly (``intersects``) against each
    quad's polygon, or for a self-intersecting or degenerate quad (an invalid polygon) its
    :func:`quad_triangles`, and (``dwithin`` ``line_width_px / 2`` pixels) against the layers'
    segments. Items whose bounding box misses the raster's bounding box are skipped; nothing
    else is culled.
    """
    q = _check_quads(quads)
    segs = _check_segment_layers(segment_layers)
    p = pose_array(pose)
    spec = _check_spec(spec)
    names = _check_layers(layers, tuple(segs))
    centres = shapely.points(pixel_centres_world(p, spec).reshape(-1, 2))  # (H * W,)
    radius_m = spec.line_radius_px * spec.resolution
    out = np.zeros((len(names), spec.height * spec.width), np.uint8)
    for channel, name in enumerate(names):
        if name == DRIVABLE:
            near = q[_near_footprint(q, raster_footprint(p, spec, margin_px=1.0))]
            polys = shapely.polygons(near)
            simple = shapely.is_valid(polys)
            # self-intersecting or degenerate quads: the kernels' two triangles
            tris = quad_triangles(near[~simple]).reshape(-1, 3, 2)  # (2Q', 3, 2)
            area2_px = _area2(tris[:, 0], tris[:, 1], tris[:, 2]) / spec.resolution**2
            keep = np.abs(area2_px) > raster_kernels.DEGENERATE_AREA2_PX2
            geoms = np.concatenate([polys[simple], shapely.polygons(tris[keep])])
            hits = shapely.STRtree(geoms).query(centres, predicate="intersects")
        else:
            margin = 1.0 + spec.line_radius_px
            seg = segs[name]
            seg = seg[_near_footprint(seg, raster_footprint(p, spec, margin_px=margin))]
            point_like = np.all(seg[:, 0] == seg[:, 1], axis=1)
            geoms = np.concatenate(
                [shapely.linestrings(seg[~point_like]), shapely.points(seg[point_like, 0])]
            )
            hits = shapely.STRtree(geoms).query(centres, predicate="dwithin", distance=radius_m)
        out[channel, hits[0]] = 1
    return out.reshape(len(names), spec.height, spec.width)


def rasterize_bev_cv2(
    quads: npt.ArrayLike,
    segment_layers: Mapping[str, npt.ArrayLike],
    pose: SE2 | npt.ArrayLike,
    spec: RasterSpec | None = None,
    layers: Sequence[str] | None = None,
    shift_bits: int = 8,
) -> MaskArray:
    """The same rasters drawn the conventional way with OpenCV (a baseline, not the oracle).

    The quads' :func:`quad_triangles` are transformed to pixel coordinates and filled one by
    one with ``cv2.fillConvexPoly`` (a multi-polygon ``cv2.fillPoly`` would cancel overlaps by
    the even-odd rule); segments are drawn with ``cv2.polylines`` (8-connected,
    ``line_width_px`` thick), all with ``shift_bits`` of sub-pixel precision. OpenCV's fill also
    sets pixels that an outline merely crosses, so its areas are up to a pixel wider than the
    pixel-centre rule of :func:`rasterize_bev`, and its lines differ at their edges by up to a
    pixel.
    """
    q = _check_quads(quads)
    segs = _check_segment_layers(segment_layers)
    p = pose_array(pose)
    spec = _check_spec(spec)
    names = _check_layers(layers, tuple(segs))
    scale = float(1 << shift_bits)
    out = np.zeros((len(names), spec.height, spec.width), np.uint8)
    for channel, name in enumerate(names):
        img = np.zeros((spec.height, spec.width), np.uint8)
        if name == DRIVABLE:
            near = q[_near_footprint(q, raster_footprint(p, spec, margin_px=1.0))]
            tris = quad_triangles(near).reshape(-1, 3, 2)
            # cv2 points are (x, y) = (col, row)
            pix = np.round(world_to_pixel(tris, p, spec)[..., ::-1] * scale).astype(np.int32)
            for tri in pix:
                cv2.fillConvexPoly(img, tri, 1, cv2.LINE_8, shift_bits)
        else:
            margin = 1.0 + spec.line_radius_px
            seg = segs[name]
            seg = seg[_near_footprint(seg, raster_footprint(p, spec, margin_px=margin))]
            pix = np.round(world_to_pixel(seg, p, spec)[..., ::-1] * scale).astype(np.int32)
            if len(pix):
                cv2.polylines(img, list(pix), False, 1, spec.line_width_px, cv2.LINE_8, shift_bits)
        out[channel] = img
    return out
