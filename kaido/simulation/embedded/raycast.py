"""Camera and lidar sensors of the embedded simulator, rendered by a Numba ray caster.

What the rays hit: the static :class:`~kaido.simulation.embedded.world.RenderWorld` (ground with
semantic classes, buildings) plus each tick's dynamic :class:`Actors` (oriented boxes with a
:class:`~kaido.simulation.embedded.world.SemanticClass` and an RGB colour each).

* :func:`render_camera`: RGB (Lambert-shaded box faces, textured ground, sky gradient),
  optical-frame depth and semantic classes of a :class:`~kaido.scene.sensors.CameraSpec`, one ray
  per pixel centre, in the camera's own projection convention: a world point hit by the ray of
  pixel ``(row, col)`` projects with :meth:`CameraSpec.project` into that pixel.
* :func:`render_lidar`: one full sweep of a :class:`~kaido.scene.sensors.LidarSpec` (every
  channel at every azimuth step, all at the same instant: no motion distortion), points in the
  lidar's body frame with range noise, dropout and an intensity from class reflectivity and
  incidence angle (:class:`LidarNoise`).

Frames: poses given to the renderers map the sensor's body frame (x forward, y left, z up) to
the world: ``camera_to_world = ego_to_world @ camera.extrinsics``, and likewise for a lidar.
Rays start at the sensor, so a box containing a sensor (the ego's own body, when rendered) is not
seen by it. The kernels are in :mod:`kaido.simulation.embedded.raycast_kernels`; their NumPy
oracles in :mod:`kaido.simulation.embedded.raycast_reference`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kaido.scene import raster_kernels
from kaido.scene.agents import AgentClass, AgentState
from kaido.scene.frame import TrafficLightColor, TrafficLightState
from kaido.scene.geometry import SE3, Box3D
from kaido.scene.sensors import CameraSpec, LidarSpec
from kaido.simulation.embedded import raycast_kernels
from kaido.simulation.embedded.world import (
    CLASS_COLORS,
    GROUND_TEXTURE,
    RenderWorld,
    SemanticClass,
    box_bounds,
)

__all__ = [
    "AGENT_SEMANTICS",
    "LIDAR_REFLECTIVITY",
    "SKY_ZENITH",
    "SUN_DIRECTION",
    "Actors",
    "CameraShading",
    "LidarNoise",
    "RenderWorld",
    "SceneBoxes",
    "SemanticClass",
    "TrafficLightModel",
    "actor_color",
    "draw_lidar_noise",
    "ego_actor",
    "light_vector",
    "optical_to_world",
    "render_camera",
    "render_lidar",
    "scene_boxes",
    "traffic_light_actors",
]

FloatArray = npt.NDArray[np.float64]
UInt8Array = npt.NDArray[np.uint8]

AGENT_SEMANTICS: dict[AgentClass, SemanticClass] = {
    AgentClass.VEHICLE: SemanticClass.VEHICLE,
    AgentClass.PEDESTRIAN: SemanticClass.PEDESTRIAN,
    AgentClass.CYCLIST: SemanticClass.CYCLIST,
    AgentClass.STATIC: SemanticClass.OBSTACLE,
    AgentClass.UNKNOWN: SemanticClass.OBSTACLE,
}
"""The semantic class an agent of each :class:`~kaido.scene.agents.AgentClass` renders as."""

_PALETTES: dict[SemanticClass, UInt8Array] = {
    SemanticClass.VEHICLE: np.array(
        [
            (200, 200, 204),
            (30, 30, 34),
            (150, 20, 24),
            (24, 54, 140),
            (120, 124, 130),
            (230, 230, 226),
            (20, 90, 60),
            (210, 150, 30),
            (90, 30, 90),
            (60, 120, 190),
        ],
        dtype=np.uint8,
    ),
    SemanticClass.PEDESTRIAN: np.array(
        [(200, 50, 60), (40, 60, 120), (60, 60, 60), (180, 160, 120), (70, 130, 80)],
        dtype=np.uint8,
    ),
    SemanticClass.CYCLIST: np.array([(119, 11, 32), (30, 110, 160), (220, 200, 40)], np.uint8),
}


def _mix(value: int) -> int:
    """SplitMix64 finaliser of a non-negative integer (a well-spread 64-bit hash)."""
    z = (value + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def actor_color(track_id: int, semantic: SemanticClass) -> tuple[int, int, int]:
    """The RGB colour of an actor: a pick from its class's palette hashed from its id (the
    class's :data:`~kaido.simulation.embedded.world.CLASS_COLORS` entry for classes without
    one). The same id always gives the same colour."""
    palette = _PALETTES.get(SemanticClass(semantic))
    if palette is None:
        rgb = CLASS_COLORS[int(semantic)]
    else:
        rgb = palette[_mix(int(track_id) & 0xFFFFFFFFFFFFFFFF) % len(palette)]
    return int(rgb[0]), int(rgb[1]), int(rgb[2])


def _checked(
    where: str, value: object, dtype: type[np.generic], shape: tuple[int | None, ...]
) -> npt.NDArray[Any]:
    arr = np.asarray(value)
    ok = arr.ndim == len(shape) and all(
        s is None or s == n for s, n in zip(shape, arr.shape, strict=True)
    )
    if not ok:
        want = "(" + ", ".join("A" if s is None else str(s) for s in shape)
        want += ",)" if len(shape) == 1 else ")"
        raise ValueError(f"{where}: expected shape {want}, got {arr.shape}")
    if arr.dtype != dtype:
        # integers convert when every value fits; floats become float64; nothing else converts
        target = np.dtype(dtype)
        fits = (
            arr.dtype.kind in "iu"
            and target.kind in "iuf"
            and (
                target.kind == "f"
                or arr.size == 0
                or (
                    int(arr.min()) >= np.iinfo(target).min
                    and int(arr.max()) <= np.iinfo(target).max
                )
            )
        ) or (arr.dtype.kind == "f" and target.kind == "f")
        if not fits:
            raise ValueError(f"{where}: expected {target} values, got {arr.dtype} {arr.shape}")
        arr = arr.astype(dtype)
    out = np.ascontiguousarray(arr).copy()
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class Actors:
    """The dynamic boxes of one tick, in the world frame (``A`` = actors).

    Arrays are copied at construction and stored read-only.
    """

    boxes: FloatArray
    """``(A, 7)`` float64 boxes indexed by :class:`~kaido.scene.geometry.Box3DIndex`: centre x, y,
    z [m] (z is the box's middle), yaw [rad], length, width, height [m]."""
    classes: UInt8Array
    """``(A,)`` uint8 :class:`~kaido.simulation.embedded.world.SemanticClass` of each actor."""
    colors: UInt8Array
    """``(A, 3)`` uint8 RGB of each actor."""

    def __post_init__(self) -> None:
        boxes = _checked("Actors.boxes", self.boxes, np.float64, (None, 7))
        n = boxes.shape[0]
        classes = _checked("Actors.classes", self.classes, np.uint8, (n,))
        colors = _checked("Actors.colors", self.colors, np.uint8, (n, 3))
        if not np.isfinite(boxes).all():
            bad = int(np.argwhere(~np.isfinite(boxes))[0, 0])
            raise ValueError(f"Actors.boxes: row {bad} is not finite: {boxes[bad].tolist()}")
        if (boxes[:, 4:] < 0.0).any():
            bad = int(np.argwhere(boxes[:, 4:] < 0.0)[0, 0])
            raise ValueError(f"Actors.boxes: row {bad} has a negative size: {boxes[bad].tolist()}")
        if n and int(classes.max()) >= len(SemanticClass):
            raise ValueError(f"Actors.classes: {int(classes.max())} is not a SemanticClass")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "colors", colors)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @classmethod
    def empty(cls) -> Actors:
        """No actors."""
        return cls(np.zeros((0, 7)), np.zeros(0, np.uint8), np.zeros((0, 3), np.uint8))

    @classmethod
    def from_agents(cls, agents: Sequence[AgentState]) -> Actors:
        """Actors of agents: their boxes, the class of :data:`AGENT_SEMANTICS` and
        :func:`actor_color` of their track id."""
        agents = tuple(agents)
        for i, agent in enumerate(agents):
            if not isinstance(agent, AgentState):
                raise TypeError(f"agents[{i}]: expected AgentState, got {type(agent).__name__}")
        if not agents:
            return cls.empty()
        boxes = np.stack([a.box.as_array() for a in agents])
        classes = np.array([AGENT_SEMANTICS[a.agent_class] for a in agents], dtype=np.uint8)
        colors = np.array(
            [
                actor_color(a.track_id, SemanticClass(c))
                for a, c in zip(agents, classes, strict=True)
            ],
            dtype=np.uint8,
        )
        return cls(boxes, classes, colors)

    @classmethod
    def concatenate(cls, parts: Sequence[Actors]) -> Actors:
        """All actors of ``parts``, in order."""
        parts = tuple(parts)
        for i, part in enumerate(parts):
            if not isinstance(part, Actors):
                raise TypeError(f"parts[{i}]: expected Actors, got {type(part).__name__}")
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.classes for p in parts]),
            np.concatenate([p.colors for p in parts]),
        )


def ego_actor(box: Box3D, color: tuple[int, int, int] | None = None) -> Actors:
    """The ego vehicle's body as one ``EGO`` actor (colour: the class colour unless given)."""
    if not isinstance(box, Box3D):
        raise TypeError(f"box: expected Box3D, got {type(box).__name__}")
    rgb = tuple(CLASS_COLORS[SemanticClass.EGO]) if color is None else color
    return Actors(
        box.as_array()[None], np.array([SemanticClass.EGO], np.uint8), np.array([rgb], np.uint8)
    )


# -- traffic lights --------------------------------------------------------------------------------

_LIGHT_COLORS: dict[TrafficLightColor, tuple[int, int, int]] = {
    TrafficLightColor.RED: (235, 30, 30),
    TrafficLightColor.YELLOW: (245, 200, 20),
    TrafficLightColor.GREEN: (40, 225, 80),
    TrafficLightColor.OFF: (35, 35, 35),
    TrafficLightColor.UNKNOWN: (95, 95, 95),
}


@dataclass(frozen=True)
class TrafficLightModel:
    """Shape and placement of a rendered traffic light: a pole with the signal head on top."""

    pole_height: float = 3.5
    """Height of the pole [m]."""
    pole_width: float = 0.2
    """Side of the pole's square section [m]."""
    head_size: tuple[float, float, float] = (0.35, 0.45, 1.0)
    """Head's depth along the traffic, width across it, height [m]."""
    side_offset: float = 1.0
    """Distance of the pole beyond the right end of the stop line [m]."""
    off_road_step: float = 0.25
    """Step [m] by which a pole standing on road or marking cells moves further right."""
    max_off_road: float = 8.0
    """Furthest extra distance [m] a pole moves to leave the road."""

    def __post_init__(self) -> None:
        values = {
            "pole_height": self.pole_height,
            "pole_width": self.pole_width,
            "head_size[0]": self.head_size[0],
            "head_size[1]": self.head_size[1],
            "head_size[2]": self.head_size[2],
            "off_road_step": self.off_road_step,
        }
        for name, value in values.items():
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"TrafficLightModel.{name}: must be > 0 m, got {value}")
        for name in ("side_offset", "max_off_road"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"TrafficLightModel.{name}: must be >= 0 m, got {value}")


_ROADWAY = (SemanticClass.ROAD, SemanticClass.LANE_MARKING)
_POLE_COLOR = (
    int(CLASS_COLORS[SemanticClass.POLE, 0]),
    int(CLASS_COLORS[SemanticClass.POLE, 1]),
    int(CLASS_COLORS[SemanticClass.POLE, 2]),
)


def _pole_footprint_on_road(world: RenderWorld, x: float, y: float, half: float) -> bool:
    """Whether the pole's centre or a corner of its square section stands on the roadway."""
    corners = np.array([[0.0, 0.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]])
    probe = np.array([x, y]) + half * corners
    return bool(np.isin(world.ground_class_at(probe), _ROADWAY).any())


def traffic_light_actors(
    lights: Sequence[TrafficLightState],
    world: RenderWorld | None = None,
    model: TrafficLightModel | None = None,
) -> Actors:
    """Two actors per light: a ``POLE`` and a ``TRAFFIC_LIGHT`` head coloured by its state.

    With a stop line, ``stop_line[0]`` is taken as its end on the right of traffic approaching
    it (lanes' right boundary to left boundary: traffic runs along ``stop_line[1] - stop_line[0]``
    turned by -90 degrees); the pole stands ``model.side_offset`` beyond that end, on the line,
    and, given ``world``, moves further right in steps until it stands off ``ROAD`` and
    ``LANE_MARKING`` cells (at most ``model.max_off_road``). The head faces the traffic. Without
    a stop line the pole stands at the light's ``position`` (x, y). The head sits on the pole.
    """
    model = TrafficLightModel() if model is None else model
    lights = tuple(lights)
    if not lights:
        return Actors.empty()
    boxes: list[list[float]] = []
    classes: list[int] = []
    colors: list[tuple[int, int, int]] = []
    depth, width, head_h = model.head_size
    for i, light in enumerate(lights):
        if not isinstance(light, TrafficLightState):
            raise TypeError(f"lights[{i}]: expected TrafficLightState, got {type(light).__name__}")
        x, y = light.position[0], light.position[1]
        yaw = 0.0
        line = light.stop_line
        if line is not None and float(np.hypot(*(line[1] - line[0]))) > 1e-6:
            across = (line[1] - line[0]) / float(np.hypot(*(line[1] - line[0])))
            right = -across
            yaw = math.atan2(-across[0], across[1])  # across turned by -90 degrees
            x, y = (line[0] + right * model.side_offset).tolist()
            if world is not None:
                moved = 0.0
                while moved < model.max_off_road and _pole_footprint_on_road(
                    world, x, y, 0.5 * model.pole_width
                ):
                    x += right[0] * model.off_road_step
                    y += right[1] * model.off_road_step
                    moved += model.off_road_step
        h = model.pole_height
        boxes.append([x, y, 0.5 * h, yaw, model.pole_width, model.pole_width, h])
        classes.append(SemanticClass.POLE)
        colors.append(_POLE_COLOR)
        boxes.append([x, y, h + 0.5 * head_h, yaw, depth, width, head_h])
        classes.append(SemanticClass.TRAFFIC_LIGHT)
        colors.append(_LIGHT_COLORS[light.color])
    return Actors(np.array(boxes), np.array(classes, np.uint8), np.array(colors, np.uint8))


# -- the scene of one tick -------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SceneBoxes:
    """Static and dynamic boxes together in the kernels' form, with their grid (``B`` boxes)."""

    params: FloatArray
    """``(B, len(BoxParam))`` ray-test form (:func:`raycast_kernels.box_params`)."""
    classes: UInt8Array
    """``(B,)`` semantic classes."""
    colors: UInt8Array
    """``(B, 3)`` RGB."""
    cell_start: npt.NDArray[np.int64]
    """``(G + 1,)`` CSR offsets of the box grid's cells."""
    cell_items: npt.NDArray[np.int64]
    """``(K,)`` box ids per cell."""
    outside: npt.NDArray[np.int64]
    """``(O,)`` boxes not wholly inside the grid (tested on every ray)."""
    z_top: float
    """Highest top of any box [m] (0 with no boxes)."""


def scene_boxes(world: RenderWorld, actors: Actors) -> SceneBoxes:
    """The world's static boxes followed by the actors, ready for the kernels."""
    if not isinstance(world, RenderWorld):
        raise TypeError(f"world: expected RenderWorld, got {type(world).__name__}")
    if not isinstance(actors, Actors):
        raise TypeError(f"actors: expected Actors, got {type(actors).__name__}")
    boxes = np.concatenate([world.static_boxes, actors.boxes])
    params = raycast_kernels.box_params(boxes)
    lo, hi = box_bounds(boxes)
    n_cols, n_rows = world.box_grid_shape
    cell = world.box_cell_size
    g_lo = world.box_grid_origin
    g_hi = g_lo + cell * np.array([n_cols, n_rows], dtype=np.float64)
    inside = np.all((lo >= g_lo) & (hi < g_hi), axis=1)
    inside_ids = np.flatnonzero(inside)
    start, items = raster_kernels.build_grid(
        np.ascontiguousarray(lo[inside]),
        np.ascontiguousarray(hi[inside]),
        float(g_lo[0]),
        float(g_lo[1]),
        cell,
        n_cols,
        n_rows,
    )
    z_top = float(np.max(boxes[:, 2] + 0.5 * boxes[:, 6])) if len(boxes) else 0.0
    return SceneBoxes(
        params=params,
        classes=np.ascontiguousarray(np.concatenate([world.static_classes, actors.classes])),
        colors=np.ascontiguousarray(np.concatenate([world.static_colors, actors.colors])),
        cell_start=start,
        cell_items=inside_ids[items],
        outside=np.flatnonzero(~inside),
        z_top=z_top,
    )


# -- camera ----------------------------------------------------------------------------------------

SUN_DIRECTION: tuple[float, float, float] = (0.40, 0.25, 0.88)
"""Default direction towards the light, world frame (normalised when used)."""
SKY_ZENITH: tuple[int, int, int] = (70, 125, 205)
"""RGB of the sky straight up; at the horizon it is ``CLASS_COLORS[NONE]``."""


@dataclass(frozen=True)
class CameraShading:
    """Lighting and clipping of :func:`render_camera`."""

    ambient: float = 0.45
    """Share of a surface's colour lit by ambient light, in [0, 1]."""
    near: float = 0.05
    """Nearest rendered depth [m]."""
    far: float = 300.0
    """Farthest rendered depth [m]: beyond it (ground included) is sky."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.ambient) and 0.0 <= self.ambient <= 1.0):
            raise ValueError(f"CameraShading.ambient: must be in [0, 1], got {self.ambient}")
        if not (math.isfinite(self.near) and self.near >= 0.0):
            raise ValueError(f"CameraShading.near: must be >= 0 m, got {self.near}")
        if not (math.isfinite(self.far) and self.far > self.near):
            raise ValueError(f"CameraShading.far: must exceed near={self.near} m, got {self.far}")


def optical_to_world(camera: CameraSpec, camera_to_world: SE3) -> SE3:
    """Pose of the camera's optical frame (x right, y down, z forward) in the world, from the
    pose of its body frame ``camera_to_world``."""
    if not isinstance(camera, CameraSpec):
        raise TypeError(f"camera: expected CameraSpec, got {type(camera).__name__}")
    if not isinstance(camera_to_world, SE3):
        raise TypeError(f"camera_to_world: expected SE3, got {type(camera_to_world).__name__}")
    return camera_to_world @ camera.extrinsics.inverse() @ camera.optical_to_ego()


def light_vector(light_dir: Sequence[float]) -> FloatArray:
    """``light_dir`` as a unit ``(3,)`` vector; ValueError when it is not a non-zero 3-vector."""
    light = np.asarray(light_dir, dtype=np.float64)
    norm = float(np.linalg.norm(light)) if light.shape == (3,) else 0.0
    if not (math.isfinite(norm) and norm > 0.0):
        raise ValueError(f"light_dir: expected a non-zero finite 3-vector, got {light_dir!r}")
    return light / norm


def render_camera(
    world: RenderWorld,
    actors: Actors,
    camera: CameraSpec,
    camera_to_world: SE3,
    light_dir: Sequence[float] = SUN_DIRECTION,
    shading: CameraShading | None = None,
) -> tuple[UInt8Array, npt.NDArray[np.float32], UInt8Array]:
    """Render one camera image: ``rgb (H, W, 3)`` uint8, ``depth (H, W)`` float32, ``semantic
    (H, W)`` uint8 (:class:`SemanticClass`).

    ``camera_to_world`` is the pose of the camera's body frame in the world (``ego_to_world @
    camera.extrinsics``); ``light_dir`` the world direction towards the light. Each pixel shows
    what the ray through its centre hits first; ``depth`` is the optical-frame z of that point
    [m] (not the range), ``+inf`` where the ray hits nothing between ``shading.near`` and
    ``shading.far`` (sky, class ``NONE``).
    """
    shading = CameraShading() if shading is None else shading
    pose = optical_to_world(camera, camera_to_world)
    light = light_vector(light_dir)
    scene = scene_boxes(world, actors)
    n_cols, n_rows = world.box_grid_shape
    rgb, depth, semantic = raycast_kernels.render_camera_kernel(
        np.ascontiguousarray(pose.translation, dtype=np.float64),
        np.ascontiguousarray(pose.rotation, dtype=np.float64),
        camera.fx,
        camera.fy,
        camera.cx,
        camera.cy,
        camera.height,
        camera.width,
        shading.near,
        shading.far,
        world.ground_classes,
        float(world.ground_origin[0]),
        float(world.ground_origin[1]),
        world.ground_resolution,
        int(world.ground_default),
        scene.params,
        scene.classes,
        scene.colors,
        scene.cell_start,
        scene.cell_items,
        scene.outside,
        float(world.box_grid_origin[0]),
        float(world.box_grid_origin[1]),
        world.box_cell_size,
        n_cols,
        n_rows,
        scene.z_top,
        CLASS_COLORS,
        GROUND_TEXTURE,
        light,
        shading.ambient,
        np.array(SKY_ZENITH, dtype=np.float64),
    )
    return rgb, depth, semantic


# -- lidar -----------------------------------------------------------------------------------------

LIDAR_REFLECTIVITY: tuple[float, ...] = tuple(
    {
        SemanticClass.ROAD: 0.12,
        SemanticClass.LANE_MARKING: 0.85,
        SemanticClass.SIDEWALK: 0.25,
        SemanticClass.TERRAIN: 0.20,
        SemanticClass.BUILDING: 0.35,
        SemanticClass.VEHICLE: 0.55,
        SemanticClass.PEDESTRIAN: 0.30,
        SemanticClass.TRAFFIC_LIGHT: 0.70,
        SemanticClass.POLE: 0.45,
        SemanticClass.EGO: 0.55,
        SemanticClass.CYCLIST: 0.40,
        SemanticClass.OBSTACLE: 0.80,
    }.get(c, 0.0)
    for c in SemanticClass
)
"""Default reflectivity per :class:`SemanticClass` (unitless, in [0, 1]): retro-reflective paint
and signs bright, asphalt dark."""


@dataclass(frozen=True)
class LidarNoise:
    """How a lidar return departs from the exact hit, and how bright it is."""

    range_std: float = 0.02
    """Standard deviation of the Gaussian noise added to each range [m]."""
    dropout: float = 0.05
    """Probability that a return is dropped, independently per ray, in [0, 1]."""
    attenuation: float = 0.004
    """Atmospheric attenuation of the intensity [1/m] (CARLA's ``atmosphere_attenuation_rate``)."""
    reflectivity: tuple[float, ...] = LIDAR_REFLECTIVITY
    """Reflectivity per :class:`SemanticClass`; a return's intensity is ``reflectivity[class] *
    |cos(incidence)| * exp(-attenuation * range)``."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.range_std) and self.range_std >= 0.0):
            raise ValueError(f"LidarNoise.range_std: must be >= 0 m, got {self.range_std}")
        if not (math.isfinite(self.dropout) and 0.0 <= self.dropout <= 1.0):
            raise ValueError(f"LidarNoise.dropout: must be in [0, 1], got {self.dropout}")
        if not (math.isfinite(self.attenuation) and self.attenuation >= 0.0):
            raise ValueError(f"LidarNoise.attenuation: must be >= 0 1/m, got {self.attenuation}")
        refl = tuple(float(v) for v in self.reflectivity)
        if len(refl) != len(SemanticClass) or not all(0.0 <= v <= 1.0 for v in refl):
            raise ValueError(
                f"LidarNoise.reflectivity: expected {len(SemanticClass)} values in [0, 1] "
                f"(one per SemanticClass), got {self.reflectivity!r}"
            )
        object.__setattr__(self, "reflectivity", refl)


def draw_lidar_noise(
    rng: np.random.Generator, rays: int, noise: LidarNoise
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """The random draws of one sweep, in a fixed order: range noise ``(rays,)`` [m] (standard
    normals times ``range_std``), then which rays survive dropout ``(rays,)``. The generator
    always advances by the same amount, whatever the noise settings."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected numpy.random.Generator, got {type(rng).__name__}")
    range_noise = noise.range_std * rng.standard_normal(rays)
    keep = rng.random(rays) >= noise.dropout
    return range_noise, keep


def render_lidar(
    world: RenderWorld,
    actors: Actors,
    lidar: LidarSpec,
    sensor_to_world: SE3,
    rng: np.random.Generator,
    noise: LidarNoise | None = None,
) -> tuple[npt.NDArray[np.float32], UInt8Array]:
    """One full sweep: ``points (N, 4)`` float32 (x, y, z [m] in the lidar's body frame,
    intensity, columns per :class:`~kaido.scene.frame.LidarIndex`) and ``semantic (N,)`` uint8.

    ``sensor_to_world`` is the pose of the lidar's body frame in the world (``ego_to_world @
    lidar.extrinsics``). Every channel fires at every azimuth step (``lidar.points_per_sweep``
    rays); a ray returns a point when its first hit lies at a range in ``[range_min,
    range_max]`` and it survives dropout. Points come in firing order: azimuth step by step
    (from -pi), each step's channels from the lowest. ``rng`` draws the noise
    (:func:`draw_lidar_noise`) before the rays are cast, so a seed fixes the sweep exactly.
    """
    noise = LidarNoise() if noise is None else noise
    if not isinstance(lidar, LidarSpec):
        raise TypeError(f"lidar: expected LidarSpec, got {type(lidar).__name__}")
    if not isinstance(sensor_to_world, SE3):
        raise TypeError(f"sensor_to_world: expected SE3, got {type(sensor_to_world).__name__}")
    scene = scene_boxes(world, actors)
    range_noise, keep = draw_lidar_noise(rng, lidar.points_per_sweep, noise)
    n_cols, n_rows = world.box_grid_shape
    points, semantic, valid = raycast_kernels.cast_lidar_kernel(
        np.ascontiguousarray(sensor_to_world.translation, dtype=np.float64),
        np.ascontiguousarray(sensor_to_world.rotation, dtype=np.float64),
        lidar.elevation_angles(),
        lidar.azimuth_angles(),
        lidar.range_min,
        lidar.range_max,
        range_noise,
        keep,
        world.ground_classes,
        float(world.ground_origin[0]),
        float(world.ground_origin[1]),
        world.ground_resolution,
        int(world.ground_default),
        scene.params,
        scene.classes,
        scene.cell_start,
        scene.cell_items,
        scene.outside,
        float(world.box_grid_origin[0]),
        float(world.box_grid_origin[1]),
        world.box_cell_size,
        n_cols,
        n_rows,
        scene.z_top,
        np.array(noise.reflectivity, dtype=np.float64),
        noise.attenuation,
    )
    return np.ascontiguousarray(points[valid]), np.ascontiguousarray(semantic[valid])
