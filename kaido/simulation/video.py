"""Bird's-eye-view (BEV) video of an episode: ego-centred, heading up, written as mp4.

Each frame is a ``size_px`` × ``size_px`` image covering ``meters`` × ``meters`` around the ego's
rear axle, which sits at the image centre with its heading pointing up and its left to the left
(the pixel convention of :mod:`kaido.scene.raster`: pixel ``(row, col)`` is centred on the ego-frame
point ``x = (size/2 - row - 0.5) * res``, ``y = (size/2 - col - 0.5) * res`` with
``res = meters / size_px`` [m/px]).

Drawn, back to front: the road map (``RoadMap.rasterize``: drivable area, lane dividers, road
edges), the route (a translucent band), the ego's past trajectory, the planned path, the agents as
oriented boxes coloured by class (:data:`~kaido.logs.mcap_log.AGENT_CLASS_RGB`) with a line to
their front, the ego box, traffic lights as dots at their stop lines (or at the light where there
is no stop line) in their state's colour, a scale bar, the text lines (top left) and a camera image
inset (top right). Colours are shared with the MCAP log's scene markers.

Frames go to an mp4 file as VP9 (fourcc ``vp09``, through the libvpx encoder that the
``opencv-python-headless`` wheels' FFmpeg carries), which Chromium, Firefox and Safari play; where
that encoder is missing the writer falls back to OpenCV's ``mp4v`` (MPEG-4 Part 2, which desktop
players open but browsers do not). :attr:`BevVideoWriter.codec` says which was used and
:func:`mp4_video_codec` reads it back from a file. The wheels hold no H.264 encoder.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

from kaido.logs.mcap_log import AGENT_CLASS_RGB, EGO_RGB, TRAFFIC_LIGHT_RGB
from kaido.scene.agents import AgentClass, AgentState
from kaido.scene.frame import TrafficLightState
from kaido.scene.geometry import SE2, Box3D, BoxCorner, BoxIndex, box2d_corners
from kaido.scene.raster import RasterSpec, world_to_pixel
from kaido.scene.road_map import RASTER_LAYER_NAMES, MapLayer, RoadMap

__all__ = ["BROWSER_CODECS", "VIDEO_CODECS", "BevVideoWriter", "mp4_video_codec"]

VIDEO_CODECS: Final = ("vp09", "mp4v")
"""FourCCs the writer tries, in order: VP9 (browser-playable), then MPEG-4 Part 2."""
BROWSER_CODECS: Final = frozenset({"vp09", "avc1", "av01"})
"""mp4 sample-entry codecs that Chromium and Firefox play."""


def mp4_video_codec(path: Path) -> str | None:
    """The video codec of the mp4 file at ``path`` (its sample entry's fourcc, e.g. ``"vp09"``,
    ``"mp4v"``, ``"avc1"``), or None when the file holds no sample description."""
    data = Path(path).read_bytes()
    at = data.find(b"stsd")
    # box: size, "stsd", version+flags (4), entry count (4), then the first entry: size, fourcc
    if at < 4 or len(data) < at + 20:
        return None
    fourcc = data[at + 16 : at + 20]
    return fourcc.decode("ascii") if fourcc.isalnum() and fourcc.isascii() else None


_SHIFT: Final = 3
"""Fractional bits of the fixed-point pixel coordinates handed to OpenCV's drawing functions."""
_ONE: Final = 1 << _SHIFT
_COORD_LIMIT: Final = 1.0e6
"""Pixel coordinates are clipped to ±this before fixed-point conversion (int32 safety)."""

_MAP_LAYERS: Final = (
    RASTER_LAYER_NAMES[MapLayer.DRIVABLE],
    RASTER_LAYER_NAMES[MapLayer.LANE_DIVIDERS],
    RASTER_LAYER_NAMES[MapLayer.ROAD_EDGES],
)
_BACKGROUND_RGB: Final = (28, 30, 34)
_DRIVABLE_RGB: Final = (72, 75, 82)
_DIVIDER_RGB: Final = (205, 205, 205)
_EDGE_RGB: Final = (235, 190, 70)
_ROUTE_RGB: Final = (60, 200, 255)
_ROUTE_ALPHA: Final = 0.35
_TRAJECTORY_RGB: Final = (250, 250, 250)
_PLAN_RGB: Final = (255, 60, 200)
_TEXT_RGB: Final = (240, 240, 240)
_PANEL_RGB: Final = (0, 0, 0)
_OUTLINE_RGB: Final = (15, 15, 15)
_FONT: Final = cv2.FONT_HERSHEY_SIMPLEX


def _map_lut() -> npt.NDArray[np.uint8]:
    """``(256, 1, 3)`` colour of each map code ``drivable | dividers << 1 | edges << 2``."""
    lut = np.zeros((256, 1, 3), dtype=np.uint8)
    for code in range(8):
        if code & 4:
            rgb = _EDGE_RGB
        elif code & 2:
            rgb = _DIVIDER_RGB
        elif code & 1:
            rgb = _DRIVABLE_RGB
        else:
            rgb = _BACKGROUND_RGB
        lut[code, 0] = rgb
    return lut


def _check_points(where: str, value: object, min_cols: int) -> npt.NDArray[np.float64] | None:
    """The x, y columns ``(N, 2)`` float64 of ``value`` ``(N, >= min_cols)``, non-finite rows
    dropped; None for None or an empty array."""
    if value is None:
        return None
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{where}: expected an ndarray or None, got {type(value).__name__}")
    if value.size == 0:
        return None
    if value.ndim != 2 or value.shape[1] < min_cols:
        raise ValueError(f"{where}: expected shape (N, {min_cols}+), got {value.shape}")
    arr = np.asarray(value[:, :2], dtype=np.float64)
    return arr[np.all(np.isfinite(arr), axis=1)]


class BevVideoWriter:
    """Renders ego-centred BEV frames (see the module docstring) and writes them to an mp4.

    ``size_px``: frame width and height [px], even and >= 64. ``meters``: width of the view [m].
    ``fps``: playback rate [frames/s] (the caller decides which ticks to write).
    ``camera_inset``: draw the camera image given to :meth:`write` in the top-right corner.
    """

    def __init__(
        self,
        path: Path,
        road_map: RoadMap,
        *,
        size_px: int = 512,
        meters: float = 80.0,
        fps: float = 10.0,
        camera_inset: bool = True,
    ) -> None:
        if isinstance(size_px, bool) or not isinstance(size_px, int | np.integer):
            raise TypeError(f"BevVideoWriter.size_px: expected an int, got {size_px!r}")
        if size_px < 64 or size_px % 2:
            raise ValueError(f"BevVideoWriter.size_px: must be even and >= 64, got {size_px}")
        for name, value in (("meters", meters), ("fps", fps)):
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise TypeError(f"BevVideoWriter.{name}: expected a number, got {value!r}")
            if not math.isfinite(float(value)) or float(value) <= 0.0:
                raise ValueError(f"BevVideoWriter.{name}: must be positive and finite, got {value}")
        if not hasattr(road_map, "rasterize"):
            raise TypeError(
                f"BevVideoWriter.road_map: expected a RoadMap, got {type(road_map).__name__}"
            )
        self.path = Path(path)
        self.road_map = road_map
        self.size_px = int(size_px)
        self.meters = float(meters)
        self.fps = float(fps)
        self.camera_inset = bool(camera_inset)
        self.spec = RasterSpec(
            height=self.size_px, width=self.size_px, resolution=self.meters / self.size_px
        )
        self._lut = _map_lut()
        self._frames = 0
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.codec = ""
        """The fourcc the video is written with (one of :data:`VIDEO_CODECS`)."""
        for codec in VIDEO_CODECS:
            fourcc = cv2.VideoWriter.fourcc(*codec)
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (size_px, size_px))
            if self._writer.isOpened():
                self.codec = codec
                break
        else:
            raise RuntimeError(
                f"{self.path}: OpenCV cannot open a video writer for any of {list(VIDEO_CODECS)}"
            )

    @property
    def frames(self) -> int:
        """Frames written so far."""
        return self._frames

    @property
    def resolution(self) -> float:
        """Edge length of a pixel [m/px]."""
        return self.spec.resolution

    def render(
        self,
        *,
        ego_pose: SE2,
        ego_box: Box3D,
        agents: Sequence[AgentState],
        traffic_lights: Sequence[TrafficLightState],
        route_path: npt.NDArray[np.float64] | None,
        trajectory: npt.NDArray[np.float64] | None,
        plan: npt.NDArray[np.float64] | None,
        camera_rgb: npt.NDArray[np.uint8] | None,
        text: Sequence[str] = (),
    ) -> npt.NDArray[np.uint8]:
        """One frame ``(size_px, size_px, 3)`` uint8 RGB; arguments as for :meth:`write`."""
        if not isinstance(ego_pose, SE2):
            raise TypeError(f"BEV frame: ego_pose: expected SE2, got {type(ego_pose).__name__}")
        if not isinstance(ego_box, Box3D):
            raise TypeError(f"BEV frame: ego_box: expected Box3D, got {type(ego_box).__name__}")
        route = _check_points("BEV frame: route_path", route_path, 2)
        past = _check_points("BEV frame: trajectory", trajectory, 2)
        planned = _check_points("BEV frame: plan", plan, 2)
        if camera_rgb is not None and (
            not isinstance(camera_rgb, np.ndarray)
            or camera_rgb.dtype != np.uint8
            or camera_rgb.ndim != 3
            or camera_rgb.shape[2] != 3
        ):
            got = (
                f"{camera_rgb.dtype} {camera_rgb.shape}"
                if isinstance(camera_rgb, np.ndarray)
                else type(camera_rgb).__name__
            )
            raise ValueError(f"BEV frame: camera_rgb: expected uint8 (H, W, 3), got {got}")
        if isinstance(text, str):
            text = (text,)

        pose = np.array([ego_pose.x, ego_pose.y, ego_pose.yaw])
        masks = self.road_map.rasterize(pose, self.spec, _MAP_LAYERS)
        code = masks[0] | (masks[1] << 1) | (masks[2] << 2)
        img: npt.NDArray[np.uint8] = np.ascontiguousarray(
            cv2.LUT(cv2.merge([code, code, code]), self._lut), dtype=np.uint8
        )

        if route is not None and len(route) >= 2:
            runs = self._visible_runs(self._pixels(route, pose))
            if runs:
                width = max(int(round(2.0 / self.resolution)), 2)
                band = img.copy()
                cv2.polylines(band, runs, False, _ROUTE_RGB, width, cv2.LINE_AA, _SHIFT)
                cv2.addWeighted(band, _ROUTE_ALPHA, img, 1.0 - _ROUTE_ALPHA, 0.0, dst=img)
        thin = max(self.size_px // 256, 1)
        if past is not None and len(past) >= 2:
            runs = self._visible_runs(self._pixels(past, pose))
            if runs:
                cv2.polylines(img, runs, False, _TRAJECTORY_RGB, thin, cv2.LINE_AA, _SHIFT)
        if planned is not None and len(planned) >= 1:
            px = self._pixels(planned, pose)
            runs = self._visible_runs(px)
            if runs:
                cv2.polylines(img, runs, False, _PLAN_RGB, thin + 1, cv2.LINE_AA, _SHIFT)
            dot = 2 * thin * _ONE
            for p in px[:: max(len(px) // 10, 1)]:
                cv2.circle(img, (int(p[0]), int(p[1])), dot, _PLAN_RGB, -1, cv2.LINE_AA, _SHIFT)
        self._draw_agents(img, pose, agents)
        self._draw_boxes(img, pose, ego_box.footprint().as_array()[None], EGO_RGB)
        self._draw_traffic_lights(img, pose, traffic_lights)
        self._draw_scale_bar(img)
        if text:
            self._draw_text(img, text)
        if camera_rgb is not None and self.camera_inset:
            self._draw_inset(img, camera_rgb)
        return img

    def write(
        self,
        *,
        ego_pose: SE2,
        ego_box: Box3D,
        agents: Sequence[AgentState],
        traffic_lights: Sequence[TrafficLightState],
        route_path: npt.NDArray[np.float64] | None,
        trajectory: npt.NDArray[np.float64] | None,
        plan: npt.NDArray[np.float64] | None,
        camera_rgb: npt.NDArray[np.uint8] | None,
        text: Sequence[str] = (),
    ) -> None:
        """Render one frame and append it to the video.

        ``ego_pose``: rear-axle pose in the world frame (the image centre). ``ego_box``: the
        ego's box, world frame. ``agents``, ``traffic_lights``: ground truth, world frame.
        ``route_path`` ``(P, 3)``, ``trajectory`` ``(K, 2)`` (the ego's past positions) and
        ``plan`` ``(T, 3)``: world-frame paths (only x, y are drawn; non-finite rows are
        skipped). ``camera_rgb``: ``(H, W, 3)`` uint8 RGB for the inset. ``text``: lines drawn
        at the top left (speed, time, driving score, ...).
        """
        if self._closed:
            raise RuntimeError(f"BevVideoWriter({str(self.path)!r}).write: writer is closed")
        rgb = self.render(
            ego_pose=ego_pose,
            ego_box=ego_box,
            agents=agents,
            traffic_lights=traffic_lights,
            route_path=route_path,
            trajectory=trajectory,
            plan=plan,
            camera_rgb=camera_rgb,
            text=text,
        )
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self._frames += 1

    def close(self) -> Path:
        """Finish the file; returns its path. Idempotent."""
        if not self._closed:
            self._closed = True
            self._writer.release()
        return self.path

    def __enter__(self) -> BevVideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"BevVideoWriter({str(self.path)!r}, {self.codec}, {self.size_px} px, {self.meters} m, "
            f"{self._frames} frames)"
        )

    # -- drawing -------------------------------------------------------------------------------

    def _pixels(self, points: npt.NDArray[np.float64], pose: npt.NDArray[np.float64]) -> Any:
        """World points ``(..., 2)`` → fixed-point OpenCV coordinates ``(..., 2)`` int32 (x=col,
        y=row)."""
        rc = world_to_pixel(points, pose, self.spec)
        xy = np.clip(rc[..., ::-1] * _ONE, -_COORD_LIMIT, _COORD_LIMIT)
        return np.rint(xy).astype(np.int32)

    def _visible_runs(self, px: npt.NDArray[np.int32]) -> list[npt.NDArray[np.int32]]:
        """Runs of consecutive polyline points near the view (a point off-view is kept when a
        neighbour is near, so segments crossing the border are drawn)."""
        lo, hi = -self.size_px * _ONE, 2 * self.size_px * _ONE
        near = np.all((px >= lo) & (px <= hi), axis=1)
        keep = near.copy()
        keep[1:] |= near[:-1]
        keep[:-1] |= near[1:]
        idx = np.flatnonzero(keep)
        if idx.size < 2:
            return []
        breaks = np.flatnonzero(np.diff(idx) > 1) + 1
        return [px[run] for run in np.split(idx, breaks) if run.size >= 2]

    def _draw_boxes(
        self,
        img: npt.NDArray[np.uint8],
        pose: npt.NDArray[np.float64],
        boxes: npt.NDArray[np.float64],
        rgb: tuple[int, int, int],
    ) -> None:
        """Filled oriented boxes ``(N, 5)`` (:class:`BoxIndex`), outlined, with a heading tick."""
        corners = self._pixels(box2d_corners(boxes), pose)  # (N, 4, 2)
        polys = list(corners)
        cv2.fillPoly(img, polys, rgb, cv2.LINE_AA, _SHIFT)
        cv2.polylines(img, polys, True, _OUTLINE_RGB, 1, cv2.LINE_AA, _SHIFT)
        centre = self._pixels(boxes[:, [BoxIndex.X, BoxIndex.Y]], pose)
        front = (corners[:, BoxCorner.FRONT_LEFT] + corners[:, BoxCorner.FRONT_RIGHT]) // 2
        for c, f in zip(centre, front, strict=True):
            cv2.line(
                img,
                (int(c[0]), int(c[1])),
                (int(f[0]), int(f[1])),
                _OUTLINE_RGB,
                1,
                cv2.LINE_AA,
                _SHIFT,
            )

    def _draw_agents(
        self,
        img: npt.NDArray[np.uint8],
        pose: npt.NDArray[np.float64],
        agents: Sequence[AgentState],
    ) -> None:
        by_class: dict[AgentClass, list[npt.NDArray[np.float64]]] = {}
        for i, agent in enumerate(agents):
            if not isinstance(agent, AgentState):
                raise TypeError(
                    f"BEV frame: agents[{i}]: expected AgentState, got {type(agent).__name__}"
                )
            by_class.setdefault(agent.agent_class, []).append(agent.box.footprint().as_array())
        for agent_class, boxes in by_class.items():
            self._draw_boxes(img, pose, np.stack(boxes), AGENT_CLASS_RGB[agent_class])

    def _draw_traffic_lights(
        self,
        img: npt.NDArray[np.uint8],
        pose: npt.NDArray[np.float64],
        lights: Sequence[TrafficLightState],
    ) -> None:
        radius = max(int(round(1.0 / self.resolution)), 3) * _ONE
        width = max(int(round(0.5 / self.resolution)), 2)
        for i, light in enumerate(lights):
            if not isinstance(light, TrafficLightState):
                raise TypeError(
                    f"BEV frame: traffic_lights[{i}]: expected TrafficLightState, "
                    f"got {type(light).__name__}"
                )
            rgb = TRAFFIC_LIGHT_RGB[light.color]
            if light.stop_line is not None:
                ends = self._pixels(np.asarray(light.stop_line), pose)
                cv2.line(
                    img,
                    tuple(ends[0].tolist()),
                    tuple(ends[1].tolist()),
                    rgb,
                    width,
                    cv2.LINE_AA,
                    _SHIFT,
                )
                dot = self._pixels(np.asarray(light.stop_line).mean(axis=0), pose)
            else:
                dot = self._pixels(np.asarray(light.position[:2]), pose)
            centre = (int(dot[0]), int(dot[1]))
            cv2.circle(img, centre, radius + _ONE, _OUTLINE_RGB, -1, cv2.LINE_AA, _SHIFT)
            cv2.circle(img, centre, radius, rgb, -1, cv2.LINE_AA, _SHIFT)

    def _font_scale(self) -> float:
        return 0.4 * self.size_px / 512.0 + 0.1

    def _draw_text(self, img: npt.NDArray[np.uint8], lines: Sequence[str]) -> None:
        scale = self._font_scale()
        thickness = max(self.size_px // 512, 1)
        (_, h), base = cv2.getTextSize("Ag", _FONT, scale, thickness)
        step = h + base + 4
        widths = [cv2.getTextSize(str(t), _FONT, scale, thickness)[0][0] for t in lines]
        cv2.rectangle(img, (0, 0), (max(widths) + 12, step * len(lines) + 6), _PANEL_RGB, -1)
        for k, line in enumerate(lines):
            origin = (6, 4 + h + k * step)
            cv2.putText(
                img,
                str(line),
                origin,
                _FONT,
                scale,
                _TEXT_RGB,
                thickness,
                cv2.LINE_AA,
            )

    def _draw_scale_bar(self, img: npt.NDArray[np.uint8]) -> None:
        """A bar of a round length (1, 2 or 5 × 10^k m, about a sixth of the view) at the
        bottom left."""
        target = self.meters / 6.0
        exponent = math.floor(math.log10(target))
        length_m = max(m * 10.0**exponent for m in (1.0, 2.0, 5.0) if m * 10.0**exponent <= target)
        length_px = int(round(length_m / self.resolution))
        y = self.size_px - 10
        cv2.line(img, (10, y), (10 + length_px, y), _TEXT_RGB, 2)
        label = f"{length_m:g} m"
        cv2.putText(
            img,
            label,
            (14 + length_px, y + 4),
            _FONT,
            self._font_scale(),
            _TEXT_RGB,
            1,
            cv2.LINE_AA,
        )

    def _draw_inset(self, img: npt.NDArray[np.uint8], camera_rgb: npt.NDArray[np.uint8]) -> None:
        """The camera image, 40 % of the frame wide, in the top-right corner with a border."""
        h, w = camera_rgb.shape[:2]
        if h == 0 or w == 0:
            return
        inset_w = int(self.size_px * 0.4)
        inset_h = max(int(round(inset_w * h / w)), 1)
        inset_h = min(inset_h, self.size_px // 2)
        small = cv2.resize(camera_rgb, (inset_w, inset_h), interpolation=cv2.INTER_AREA)
        x0 = self.size_px - inset_w - 4
        y0 = 4
        cv2.rectangle(img, (x0 - 2, y0 - 2), (x0 + inset_w + 1, y0 + inset_h + 1), _TEXT_RGB, -1)
        img[y0 : y0 + inset_h, x0 : x0 + inset_w] = small
