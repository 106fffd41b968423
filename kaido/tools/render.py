"""Top-down PNG drawings of road maps and routes (OpenCV)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from kaido.scene.road_map import LaneType, RoadMap
from kaido.scene.route_planner import RoadOption, RoutePlan

Image = npt.NDArray[np.uint8]

# BGR colours
_BACKGROUND = (40, 40, 40)
_DRIVING = (110, 110, 110)
_JUNCTION = (140, 125, 110)
_SIDEWALK = (150, 170, 170)
_OTHER_LANE = (80, 95, 80)
_CENTERLINE = (200, 200, 200)
_DIVIDER = (230, 230, 230)
_EDGE = (0, 215, 255)
_ROUTE = (60, 60, 235)
_ROUTE_CHANGE = (235, 120, 60)


@dataclass(frozen=True)
class MapRenderSpec:
    """How :func:`render_map` draws."""

    pixels_per_meter: float = 4.0
    """[px/m] scale; reduced automatically so the longer side fits ``max_size``."""
    max_size: int = 4096
    """[px] longest image side."""
    margin: float = 10.0
    """[m] border around the map's bounds."""


class _Canvas:
    """World (kaido frame, y up) → image pixels (row down)."""

    def __init__(self, bounds: tuple[float, float, float, float], spec: MapRenderSpec) -> None:
        min_x, min_y, max_x, max_y = bounds
        self.min_x = min_x - spec.margin
        self.max_y = max_y + spec.margin
        width_m = (max_x - min_x) + 2 * spec.margin
        height_m = (max_y - min_y) + 2 * spec.margin
        self.scale = min(spec.pixels_per_meter, spec.max_size / max(width_m, height_m))
        self.width = max(int(math.ceil(width_m * self.scale)), 1)
        self.height = max(int(math.ceil(height_m * self.scale)), 1)

    def px(self, xy: npt.NDArray[np.float64]) -> npt.NDArray[np.int32]:
        """``(..., 2)`` world points → ``(..., 2)`` integer pixel (col, row), 4 bits of subpixel."""
        col = (xy[..., 0] - self.min_x) * self.scale
        row = (self.max_y - xy[..., 1]) * self.scale
        return np.round(np.stack([col, row], axis=-1) * 16).astype(np.int32)


def render_map(
    road_map: RoadMap, route: RoutePlan | None = None, spec: MapRenderSpec | None = None
) -> Image:
    """Draw lanes (by type), junctions, road edges, lane dividers and an optional route.

    Returns a BGR ``(H, W, 3)`` uint8 image, north up.
    """
    spec = spec or MapRenderSpec()
    bounds = road_map.bounds
    if route is not None:
        lo = np.minimum(route.path[:, :2].min(axis=0), bounds[:2])
        hi = np.maximum(route.path[:, :2].max(axis=0), bounds[2:])
        bounds = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
    canvas = _Canvas(bounds, spec)
    img = np.empty((canvas.height, canvas.width, 3), dtype=np.uint8)
    img[:] = _BACKGROUND
    shift = 4
    for lane in road_map.lanes:
        if lane.lane_type == LaneType.DRIVING:
            colour = _JUNCTION if lane.in_junction else _DRIVING
        elif lane.lane_type == LaneType.SIDEWALK:
            colour = _SIDEWALK
        else:
            colour = _OTHER_LANE
        quads = canvas.px(road_map.lane_quads([lane]))
        cv2.fillPoly(img, list(quads), colour, lineType=cv2.LINE_AA, shift=shift)
    layers = road_map.segment_layers()
    thickness = max(1, int(round(0.15 * canvas.scale)))
    for name, colour in (
        ("centerlines", _CENTERLINE),
        ("lane_dividers", _DIVIDER),
        ("road_edges", _EDGE),
    ):
        segs = canvas.px(layers[name])
        for a, b in segs:
            cv2.line(
                img,
                (int(a[0]), int(a[1])),
                (int(b[0]), int(b[1])),
                colour,
                1 if name == "centerlines" else thickness,
                cv2.LINE_AA,
                shift,
            )
    if route is not None:
        pts = canvas.px(route.path[:, :2])
        width = max(2, int(round(0.8 * canvas.scale)))
        changing = np.isin(route.options, [RoadOption.CHANGELANELEFT, RoadOption.CHANGELANERIGHT])
        for i in range(len(pts) - 1):
            colour = _ROUTE_CHANGE if changing[i] else _ROUTE
            cv2.line(
                img,
                tuple(int(v) for v in pts[i]),
                tuple(int(v) for v in pts[i + 1]),
                colour,
                width,
                cv2.LINE_AA,
                shift,
            )
        radius = max(4, int(round(2.0 * canvas.scale))) * 16
        cv2.circle(
            img, tuple(int(v) for v in pts[0]), radius, (80, 220, 80), -1, cv2.LINE_AA, shift
        )
        cv2.circle(
            img, tuple(int(v) for v in pts[-1]), radius, (60, 60, 235), -1, cv2.LINE_AA, shift
        )
    return img


def save_png(image: Image, path: Path) -> Path:
    """Write ``image`` as PNG, creating the folder; raises OSError naming the path on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"{path}: could not write PNG")
    return path
