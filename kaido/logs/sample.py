"""One training sample of the learned stack: its sizes (:class:`SampleSpec`), fields and checks.

A sample holds everything the model sees and learns from at one time ``t`` of a driving log,
in the ego frame at ``t`` (x forward, y left, z up, origin at the rear axle on the ground).
``kaido dataset build`` (:mod:`kaido.logs.dataset`) writes samples; the model's data loader
(:mod:`kaido.world_model.data`) reads them into torch tensors with the same names (a batch adds a
leading ``B`` axis). This module is NumPy-only so that both sides import it.

Axes: ``C`` cameras (``SampleSpec.cameras``, fixed order), ``h, w`` the resized image
(``image_hw``), ``N`` lidar points, ``M`` agents, ``T_f`` future steps, ``T_p`` past steps,
``R`` route points, ``T_o`` occupancy horizons, ``H, W`` the BEV grid (``grid``).

=================== ======= ================ =================================================
name                dtype   shape            meaning
=================== ======= ================ =================================================
camera_images       uint8   (C, 3, h, w)     RGB, resized to (h, w)
camera_intrinsics   float32 (C, 3, 3)        K of the resized image
camera_to_ego       float32 (C, 4, 4)        OpenCV optical frame (x right, y down, z fwd) → ego
camera_mask         bool    (C,)             camera present (absent: zero image, mask False)
lidar_points        float16 (N, 4)           x, y, z [m], intensity; rows ≥ lidar_count are 0
lidar_count         int32   ()               valid rows of lidar_points
ego_state           float32 (4,)             :class:`EgoFeature`
route               float32 (R, 2)           route centreline x, y [m] from the ego onwards
ego_past            float32 (T_p, 3)         past ego poses x, y [m], yaw [rad], oldest first
ego_future          float32 (T_f, 3)         future ego poses x, y [m], yaw [rad]
actions             float32 (T_f, 2)         :class:`ActionIndex` over each future step
boxes               float32 (M, 7)           :class:`BoxField` (box centre, velocity)
box_class           int64   (M,)             :class:`DetectionClass`, −1 for padding
box_mask            bool    (M,)             valid rows of ``boxes``
agent_future        float32 (M, T_f, 2)      each agent's future box-centre x, y [m]
agent_future_mask   bool    (M, T_f)         the agent is tracked at that step
bev_semantics       uint8   (4, H, W)        :class:`BevClass` masks (0/1)
occupancy_future    uint8   (T_o, H, W)      future non-ground lidar occupancy (0/1)
=================== ======= ================ =================================================

Times: the past steps are at ``-T_p*dt .. -dt``, the future steps at ``dt .. T_f*dt`` and the
occupancy horizons at ``dt .. T_o*dt`` with ``dt = step_seconds``. Action ``k`` acts over the
future step ``k*dt → (k+1)*dt`` (``k = 0`` is now → ``dt``). The BEV grid's pixel convention is
:class:`~kaido.scene.raster.RasterSpec`'s (row 0 the far front, column 0 the far left).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from kaido.scene.raster import RasterSpec

__all__ = [
    "PAD_CLASS",
    "SAMPLE_FIELDS",
    "TRAFFIC_LIGHT_RANGE",
    "ActionIndex",
    "BevClass",
    "BoxField",
    "DetectionClass",
    "EgoFeature",
    "FieldSpec",
    "SampleSpec",
    "TrafficLightClass",
    "check_sample",
    "empty_sample",
    "field_layout",
    "load_sample_spec",
]


class EgoFeature(IntEnum):
    """Columns of ``ego_state`` ``(4,)``."""

    SPEED = 0
    """[m/s] forward speed."""
    ACCEL = 1
    """[m/s²] longitudinal acceleration."""
    YAW_RATE = 2
    """[rad/s] positive to the left."""
    SPEED_LIMIT = 3
    """[m/s] speed limit of the lane the ego drives in."""


class ActionIndex(IntEnum):
    """Columns of ``actions`` ``(T_f, 2)``: what the ego did over each future step."""

    ACCEL = 0
    """[m/s²] mean longitudinal acceleration over the step."""
    CURVATURE = 1
    """[1/m] curvature of the path driven over the step, positive to the left."""


class BoxField(IntEnum):
    """Columns of ``boxes`` ``(M, 7)``, in the ego frame at the sample time."""

    X = 0
    """[m] box centre."""
    Y = 1
    """[m] box centre."""
    LENGTH = 2
    """[m] along the box's heading."""
    WIDTH = 3
    """[m]"""
    YAW = 4
    """[rad] heading relative to the ego's, in ``[-pi, pi)``."""
    VX = 5
    """[m/s] the agent's own (not relative) velocity, expressed in the ego frame."""
    VY = 6
    """[m/s]"""


class DetectionClass(IntEnum):
    """Classes of ``box_class``; padding rows hold :data:`PAD_CLASS`."""

    VEHICLE = 0
    PEDESTRIAN = 1
    CYCLIST = 2


PAD_CLASS = -1
"""``box_class`` of a padding row."""


class BevClass(IntEnum):
    """Channels of ``bev_semantics`` ``(4, H, W)``."""

    DRIVABLE = 0
    """Driving lanes' area (from the map)."""
    LANE_DIVIDER = 1
    """Lines between neighbouring driving lanes (from the map)."""
    VEHICLE = 2
    """Footprints of vehicles and cyclists."""
    PEDESTRIAN = 3
    """Footprints of pedestrians."""


class TrafficLightClass(IntEnum):
    """Values of ``traffic_light`` ``()``: the state of the light that governs the ego's route
    ahead, the first whose stop line crosses the route within :data:`TRAFFIC_LIGHT_RANGE`."""

    NONE = 0
    """No light ahead on the route (or one that is off or unknown)."""
    GREEN = 1
    YELLOW = 2
    RED = 3


TRAFFIC_LIGHT_RANGE = 50.0
"""[m] along the route ahead of the ego within which a light's stop line labels the sample."""


def _tiny_grid() -> RasterSpec:
    return RasterSpec(height=64, width=64, resolution=1.0, ego_row=48, ego_col=32)


_GRID_KEYS = ("height", "width", "resolution", "ego_row", "ego_col", "line_width_px")


@dataclass(frozen=True)
class SampleSpec:
    """The sizes of a sample (defaults: the tiny configuration that trains on a laptop)."""

    grid: RasterSpec = field(default_factory=_tiny_grid)
    """The ego-centred BEV grid of ``bev_semantics``, ``occupancy_future`` and the lidar crop."""
    cameras: tuple[str, ...] = ("front",)
    """Camera names of the rig, in the order of the camera axis ``C``."""
    image_hw: tuple[int, int] = (96, 160)
    """(h, w) [px] of the resized camera images."""
    max_lidar_points: int = 16384
    """N: lidar rows per sample (a random subsample when a sweep has more inside the grid)."""
    max_agents: int = 64
    """M: agent rows per sample (the nearest agents when more are inside the grid)."""
    future_steps: int = 16
    """T_f: future ego poses, actions and agent positions."""
    past_steps: int = 4
    """T_p: past ego poses."""
    step_seconds: float = 0.5
    """[s] time between consecutive past/future steps, occupancy horizons and samples."""
    route_points: int = 16
    """R: route points."""
    route_spacing: float = 4.0
    """[m] arc length between route points."""
    occupancy_steps: int = 6
    """T_o: future occupancy horizons."""
    occupancy_z_min: float = 0.3
    """[m] lowest height above the ground of a lidar hit counted as occupied."""
    occupancy_z_max: float = 2.5
    """[m] highest height above the ground of a lidar hit counted as occupied."""

    def __post_init__(self) -> None:
        if not isinstance(self.grid, RasterSpec):
            raise TypeError(f"SampleSpec.grid: expected a RasterSpec, got {self.grid!r}")
        cameras = self.cameras
        if isinstance(cameras, str) or not isinstance(cameras, tuple | list):
            raise TypeError(f"SampleSpec.cameras: expected a sequence of names, got {cameras!r}")
        cameras = tuple(cameras)
        for name in cameras:
            if not isinstance(name, str) or not name:
                raise ValueError(f"SampleSpec.cameras: names must be non-empty strings: {name!r}")
        if len(set(cameras)) != len(cameras):
            raise ValueError(f"SampleSpec.cameras: duplicate names in {list(cameras)}")
        object.__setattr__(self, "cameras", cameras)
        hw = tuple(self.image_hw) if isinstance(self.image_hw, tuple | list) else ()
        if len(hw) != 2 or not all(_is_int(v) and v >= 1 for v in hw):
            raise ValueError(
                f"SampleSpec.image_hw: expected two positive ints, got {self.image_hw!r}"
            )
        object.__setattr__(self, "image_hw", (int(hw[0]), int(hw[1])))
        for name in (
            "max_lidar_points",
            "max_agents",
            "future_steps",
            "past_steps",
            "route_points",
            "occupancy_steps",
        ):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"SampleSpec.{name}: expected an integer >= 1, got {value!r}")
            object.__setattr__(self, name, int(value))
        for name in ("step_seconds", "route_spacing"):
            value = getattr(self, name)
            if not _is_real(value) or not (math.isfinite(value) and value > 0):
                raise ValueError(f"SampleSpec.{name}: expected a number > 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in ("occupancy_z_min", "occupancy_z_max"):
            value = getattr(self, name)
            if not _is_real(value) or not math.isfinite(value):
                raise ValueError(f"SampleSpec.{name}: expected a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.occupancy_z_min >= self.occupancy_z_max:
            raise ValueError(
                f"SampleSpec: occupancy_z_min ({self.occupancy_z_min}) must be below "
                f"occupancy_z_max ({self.occupancy_z_max})"
            )
        step_ns = self.step_seconds * 1e9
        if abs(step_ns - round(step_ns)) > 1e-3:
            raise ValueError(
                f"SampleSpec.step_seconds: must be a whole number of ns, got {self.step_seconds}"
            )

    @property
    def step_ns(self) -> int:
        """``step_seconds`` [ns]."""
        return int(round(self.step_seconds * 1e9))

    @property
    def horizon_steps(self) -> int:
        """Future steps a sample needs logged after its time (``max(T_f, T_o)``)."""
        return max(self.future_steps, self.occupancy_steps)

    @property
    def grid_x_range(self) -> tuple[float, float]:
        """[m] ego-frame x covered by the grid (rear edge, front edge)."""
        g = self.grid
        return ((g.origin_row - g.height) * g.resolution, g.origin_row * g.resolution)

    @property
    def grid_y_range(self) -> tuple[float, float]:
        """[m] ego-frame y covered by the grid (right edge, left edge)."""
        g = self.grid
        return ((g.origin_col - g.width) * g.resolution, g.origin_col * g.resolution)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML data; :meth:`from_dict` reads it back."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "grid":
                value = {k: getattr(value, k) for k in _GRID_KEYS}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "sample spec") -> SampleSpec:
        """A spec from :meth:`to_dict` data; omitted keys take their defaults. Unknown keys and
        bad values raise ``ValueError`` naming ``where`` and the key."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown} (known: {sorted(known)})")
        kwargs = dict(data)
        if "grid" in kwargs:
            grid = kwargs["grid"]
            if isinstance(grid, Mapping):
                bad = sorted(set(grid) - set(_GRID_KEYS))
                if bad:
                    raise ValueError(
                        f"{where}: grid: unknown keys {bad} (known: {list(_GRID_KEYS)})"
                    )
                try:
                    kwargs["grid"] = RasterSpec(**grid)
                except (TypeError, ValueError) as err:
                    raise ValueError(f"{where}: grid: {err}") from None
            elif not isinstance(grid, RasterSpec):
                raise ValueError(f"{where}: grid: expected a mapping, got {grid!r}")
        for key in ("cameras", "image_hw"):
            if isinstance(kwargs.get(key), list):
                kwargs[key] = tuple(kwargs[key])
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {err}") from None


def load_sample_spec(path: str | Path) -> SampleSpec:
    """A :class:`SampleSpec` from a YAML or JSON file (top level: the spec's keys, or a mapping
    with a ``spec`` key holding them, like a dataset manifest)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such sample spec file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as err:  # yaml and json parse errors have no common base
        raise ValueError(f"{path}: not valid YAML/JSON ({err})") from None
    if data is None:
        data = {}
    if isinstance(data, Mapping) and isinstance(data.get("spec"), Mapping):
        data = data["spec"]
    return SampleSpec.from_dict(data, where=str(path))


def _is_int(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | np.integer)


def _is_real(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating)


# -- the fields ----------------------------------------------------------------------------------


class FieldSpec(NamedTuple):
    """dtype and shape (a function of the spec) of one sample field."""

    dtype: np.dtype[Any]
    shape: Callable[[SampleSpec], tuple[int, ...]]


def _grid_hw(s: SampleSpec) -> tuple[int, int]:
    return (s.grid.height, s.grid.width)


SAMPLE_FIELDS: Mapping[str, FieldSpec] = MappingProxyType(
    {
        "camera_images": FieldSpec(np.dtype(np.uint8), lambda s: (len(s.cameras), 3, *s.image_hw)),
        "camera_intrinsics": FieldSpec(np.dtype(np.float32), lambda s: (len(s.cameras), 3, 3)),
        "camera_to_ego": FieldSpec(np.dtype(np.float32), lambda s: (len(s.cameras), 4, 4)),
        "camera_mask": FieldSpec(np.dtype(np.bool_), lambda s: (len(s.cameras),)),
        "lidar_points": FieldSpec(np.dtype(np.float16), lambda s: (s.max_lidar_points, 4)),
        "lidar_count": FieldSpec(np.dtype(np.int32), lambda s: ()),
        "ego_state": FieldSpec(np.dtype(np.float32), lambda s: (len(EgoFeature),)),
        "route": FieldSpec(np.dtype(np.float32), lambda s: (s.route_points, 2)),
        "ego_past": FieldSpec(np.dtype(np.float32), lambda s: (s.past_steps, 3)),
        "ego_future": FieldSpec(np.dtype(np.float32), lambda s: (s.future_steps, 3)),
        "actions": FieldSpec(np.dtype(np.float32), lambda s: (s.future_steps, len(ActionIndex))),
        "boxes": FieldSpec(np.dtype(np.float32), lambda s: (s.max_agents, len(BoxField))),
        "box_class": FieldSpec(np.dtype(np.int64), lambda s: (s.max_agents,)),
        "box_mask": FieldSpec(np.dtype(np.bool_), lambda s: (s.max_agents,)),
        "agent_future": FieldSpec(
            np.dtype(np.float32), lambda s: (s.max_agents, s.future_steps, 2)
        ),
        "agent_future_mask": FieldSpec(
            np.dtype(np.bool_), lambda s: (s.max_agents, s.future_steps)
        ),
        "traffic_light": FieldSpec(np.dtype(np.int64), lambda s: ()),
        "bev_semantics": FieldSpec(np.dtype(np.uint8), lambda s: (len(BevClass), *_grid_hw(s))),
        "occupancy_future": FieldSpec(
            np.dtype(np.uint8), lambda s: (s.occupancy_steps, *_grid_hw(s))
        ),
    }
)
"""Every field of a sample: name → (dtype, shape as a function of the spec), in table order."""


def field_layout(spec: SampleSpec) -> dict[str, dict[str, Any]]:
    """``{name: {"dtype": str, "shape": [...]}}`` of every field under ``spec`` (JSON-ready)."""
    return {
        name: {"dtype": f.dtype.name, "shape": list(f.shape(spec))}
        for name, f in SAMPLE_FIELDS.items()
    }


def empty_sample(spec: SampleSpec) -> dict[str, npt.NDArray[Any]]:
    """A sample of zeros with every mask False, ``box_class`` all :data:`PAD_CLASS`."""
    out = {name: np.zeros(f.shape(spec), dtype=f.dtype) for name, f in SAMPLE_FIELDS.items()}
    out["box_class"][:] = PAD_CLASS
    return out


def check_sample(
    sample: Mapping[str, Any], spec: SampleSpec, batch_shape: tuple[int, ...] = ()
) -> None:
    """Check that ``sample`` has every field of :data:`SAMPLE_FIELDS` with its dtype and shape
    under ``spec`` (after ``batch_shape`` leading axes), and the cheap invariants: finite floats,
    ``lidar_count`` in ``[0, N]``, known ``box_class`` values, 0/1 masks in the uint8 rasters.

    Raises ``ValueError`` (``TypeError`` for a non-array) naming the field, what was expected
    and what it got. Extra keys are allowed (callers may carry their own).
    """
    if not isinstance(sample, Mapping):
        raise TypeError(f"sample: expected a mapping of field name to array, got {type(sample)}")
    missing = [name for name in SAMPLE_FIELDS if name not in sample]
    if missing:
        raise ValueError(f"sample: missing fields {missing}")
    lead = tuple(int(v) for v in batch_shape)
    for name, f in SAMPLE_FIELDS.items():
        value = sample[name]
        if not isinstance(value, np.ndarray):
            raise TypeError(
                f"sample field {name!r}: expected a numpy array, got {type(value).__name__}"
            )
        want = (*lead, *f.shape(spec))
        if value.dtype != f.dtype or value.shape != want:
            raise ValueError(
                f"sample field {name!r}: expected {f.dtype.name} {want}, "
                f"got {value.dtype.name} {value.shape}"
            )
        if value.dtype.kind == "f" and value.size and not np.isfinite(value).all():
            index = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
            raise ValueError(f"sample field {name!r}: non-finite value at index {index}")
    count = np.asarray(sample["lidar_count"])
    if count.size and (count.min() < 0 or count.max() > spec.max_lidar_points):
        raise ValueError(
            f"sample field 'lidar_count': expected values in [0, {spec.max_lidar_points}], "
            f"got {int(count.min())}..{int(count.max())}"
        )
    classes = np.asarray(sample["box_class"])
    allowed = np.array([PAD_CLASS, *(int(c) for c in DetectionClass)])
    bad = ~np.isin(classes, allowed)
    if bad.any():
        value = int(classes[bad].ravel()[0])
        raise ValueError(
            f"sample field 'box_class': expected values in {allowed.tolist()}, got {value}"
        )
    if ((classes == PAD_CLASS) & np.asarray(sample["box_mask"])).any():
        raise ValueError("sample field 'box_mask': a row marked valid has box_class -1")
    for name in ("bev_semantics", "occupancy_future"):
        value = np.asarray(sample[name])
        if value.size and value.max() > 1:
            raise ValueError(f"sample field {name!r}: expected 0/1 values, got max {value.max()}")
