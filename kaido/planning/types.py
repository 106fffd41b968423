"""The planner's inputs and outputs: frozen dataclasses of NumPy arrays, shapes checked on entry.

Axis vocabulary: ``N`` candidates, ``A`` agents, ``K`` modes, ``T`` time steps (``T = horizon_steps
+ 1`` points at ``dt`` spacing, the first at the planning time), ``P`` reference-path points.
Everything is in kaido's world frame (x east, y north, radians), SI units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from kaido.scene.agents import EgoState
from kaido.scene.forecast import ModeIndex, PredictedAgents, check_array

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "DrivableField",
    "ModeIndex",
    "OccupancyForecast",
    "PlannerConfig",
    "PlannerInput",
    "PlannerOutput",
    "PredictedAgents",
    "ReferencePath",
    "StopConstraint",
    "StopKind",
    "TrajIndex",
]


class TrajIndex(IntEnum):
    """Columns of a trajectory state ``(..., T, len(TrajIndex))``."""

    X = 0
    Y = 1
    YAW = 2
    SPEED = 3
    """[m/s] along the heading."""
    ACCEL = 4
    """[m/s²] longitudinal."""
    CURVATURE = 5
    """[1/m] of the path (yaw rate = speed × curvature)."""


class StopKind(IntEnum):
    RED_LIGHT = 0
    YELLOW_LIGHT = 1
    STOP_LINE = 2
    YIELD = 3
    """Give way to a road user (a pedestrian or cyclist) crossing the path there."""


_array = check_array


@dataclass(frozen=True)
class PlannerConfig:
    """Time grid and limits shared by every planning component."""

    dt: float = 0.1
    """[s] trajectory time step (10 Hz)."""
    horizon_steps: int = 80
    """steps after the first point: 80 × 0.1 s = 8 s."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.dt) and 0.01 <= self.dt <= 0.5):
            raise ValueError(f"PlannerConfig.dt must be in [0.01, 0.5] s, got {self.dt}")
        if not 1 <= self.horizon_steps <= 400:
            raise ValueError(
                f"PlannerConfig.horizon_steps must be in [1, 400], got {self.horizon_steps}"
            )

    @property
    def num_points(self) -> int:
        """T = horizon_steps + 1."""
        return self.horizon_steps + 1

    @property
    def times(self) -> FloatArray:
        """``(T,)`` [s] from 0."""
        return np.arange(self.num_points, dtype=np.float64) * self.dt


@dataclass(frozen=True, eq=False)
class ReferencePath:
    """The route ahead of the ego: the centreline to follow and the room around it.

    ``path`` ``(P, 3)`` [x, y, yaw], ``s`` ``(P,)`` [m] increasing, ``speed_limits`` ``(P,)``
    [m/s], ``left_offsets``/``right_offsets`` ``(P,)`` [m]: the lateral offset of the centre of
    the neighbouring lane on the left (positive) / right (negative) going the same way, NaN where
    there is none (the lattice changes lanes only where these are finite).
    """

    path: FloatArray
    s: FloatArray
    speed_limits: FloatArray
    left_offsets: FloatArray
    right_offsets: FloatArray

    def __post_init__(self) -> None:
        path = _array(self.path, "ReferencePath.path", (None, 3))
        n = len(path)
        if n < 2:
            raise ValueError(f"ReferencePath.path: needs at least 2 points, got {n}")
        object.__setattr__(self, "path", path)
        for name in ("s", "speed_limits", "left_offsets", "right_offsets"):
            object.__setattr__(
                self, name, _array(getattr(self, name), f"ReferencePath.{name}", (n,))
            )
        if not np.all(np.isfinite(path)) or not np.all(np.isfinite(self.s)):
            raise ValueError("ReferencePath.path/s: must be finite")
        if np.any(np.diff(self.s) <= 0):
            raise ValueError("ReferencePath.s: must be strictly increasing")

    @property
    def length(self) -> float:
        return float(self.s[-1] - self.s[0])


@dataclass(frozen=True, eq=False)
class DrivableField:
    """Signed distance to the drivable area's edge on an ego-centred raster.

    ``distance`` ``(H, W)`` [m], positive inside the drivable area and negative outside; pixel
    ``(r, c)`` has its centre at raster-frame x = (origin_row - r - 0.5)·res, y = (origin_col - c -
    0.5)·res (see ``kaido.scene.raster``), the raster frame being ``pose`` [x, y, yaw] in the world.
    """

    distance: FloatArray
    pose: FloatArray
    resolution: float
    origin_row: float
    origin_col: float

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "distance", _array(self.distance, "DrivableField.distance", (None, None))
        )
        object.__setattr__(self, "pose", _array(self.pose, "DrivableField.pose", (3,)))
        if not (math.isfinite(self.resolution) and self.resolution > 0):
            raise ValueError(f"DrivableField.resolution must be > 0, got {self.resolution}")


@dataclass(frozen=True, eq=False)
class OccupancyForecast:
    """Predicted occupancy probability ``(T, H, W)`` in [0, 1] on an ego-centred grid."""

    probability: FloatArray
    pose: FloatArray
    resolution: float
    origin_row: float
    origin_col: float

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "probability",
            _array(self.probability, "OccupancyForecast.probability", (None, None, None)),
        )
        object.__setattr__(self, "pose", _array(self.pose, "OccupancyForecast.pose", (3,)))


@dataclass(frozen=True)
class StopConstraint:
    """A place on the reference path the ego must not pass: ``s`` [m] along it."""

    s: float
    kind: StopKind


@dataclass(frozen=True, eq=False)
class PlannerInput:
    """Everything one planning cycle sees."""

    timestamp_ns: int
    ego: EgoState
    reference: ReferencePath
    agents: PredictedAgents
    drivable: DrivableField | None = None
    occupancy: OccupancyForecast | None = None
    stops: tuple[StopConstraint, ...] = ()
    ego_length: float = 4.85
    ego_width: float = 1.85
    rear_axle_to_center: float = 1.425
    """[m] from the ego's rear axle (its pose) forward to its box centre."""


@dataclass(frozen=True, eq=False)
class PlannerOutput:
    """The chosen trajectory ``(T, len(TrajIndex))``, why, and (for debugging) the candidates."""

    trajectory: FloatArray
    costs: Any = field(default_factory=lambda: MappingProxyType({}))
    """Cost breakdown of the chosen candidate: term name → value."""
    fallback_reason: str | None = None
    """Set when the minimum-risk trajectory was returned instead of a scored candidate."""
    candidates: FloatArray | None = None
    """``(N, T, len(TrajIndex))`` every scored candidate."""
    scores: FloatArray | None = None
    """``(N,)`` total score of each candidate (higher is better)."""
    chosen: int = -1
    compute_ms: float = 0.0
