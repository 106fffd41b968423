"""The ``Backend`` interface every simulator implements, and what flows through it.

One episode: ``obs = backend.reset(scenario)``, then ``obs = backend.step(control)`` every
``backend.dt`` seconds until the episode runner stops, then ``backend.close()``. The base class
owns the invariants (fixed step, control checked and clipped with a counted warning, step counter,
no stepping before reset or after close); subclasses fill in ``_reset`` and ``_step``.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from kaido.scene.agents import Control, EgoState
from kaido.scene.frame import Frame, GroundTruth
from kaido.scene.geometry import Box3D
from kaido.scene.route_planner import RoutePlan

FloatArray = npt.NDArray[np.float64]


class EventKind(Enum):
    """Scripted events a scenario can place along its route."""

    LEAD_BRAKE = "lead_brake"
    """A vehicle ahead of the ego in its lane brakes hard (``decel`` [m/s²])."""
    CUT_IN = "cut_in"
    """A vehicle in the neighbouring lane cuts in front of the ego (``gap`` [m])."""
    PEDESTRIAN_CROSSING = "pedestrian_crossing"
    """A pedestrian walks across the road ahead (``speed`` [m/s])."""
    RED_LIGHT = "red_light"
    """The next traffic light on the route turns red as the ego approaches (``duration`` [s])."""
    STOPPED_VEHICLE = "stopped_vehicle"
    """A vehicle stands still in the ego's lane ahead."""


@dataclass(frozen=True)
class ScenarioEvent:
    """One scripted event, triggered when the ego reaches ``trigger_s`` [m] along the route.

    The event's actor (if any) is placed ``distance`` [m] ahead of the ego when triggered.
    ``params`` holds event-specific numbers (see :class:`EventKind`).
    """

    kind: EventKind
    trigger_s: float
    distance: float = 30.0
    params: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.kind, EventKind):
            raise ValueError(f"ScenarioEvent.kind must be an EventKind, got {self.kind!r}")
        for name in ("trigger_s", "distance"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"ScenarioEvent.{name} must be finite and >= 0, got {value}")
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))


@dataclass(frozen=True)
class Scenario:
    """What one episode drives: a map, a route through it, traffic, events.

    ``route_waypoints`` ``(N, 2|3)`` [m] (kaido frame) with optional ``route_yaws`` ``(N,)``
    [rad] are planned into a dense reference path on the map (the leaderboard's way). ``None``
    means a route between two random spawn points chosen from ``seed``.
    """

    name: str
    map_path: Path
    route_waypoints: FloatArray | None = None
    route_yaws: FloatArray | None = None
    route_id: str | None = None
    traffic_density: float = 15.0
    """[vehicles/lane-km of driving lanes outside junctions] background SUMO traffic; 0: none."""
    pedestrians: float = 0.0
    """[pedestrians/km of sidewalk] SUMO persons, where the net has sidewalks."""
    seed: int = 0
    timeout_s: float | None = None
    """[s] episode time limit; None = from the route length (leaderboard-style)."""
    min_route_length: float = 250.0
    """[m] shortest random route (when ``route_waypoints`` is None)."""
    max_route_length: float = 600.0
    """[m] longest random route (when ``route_waypoints`` is None)."""
    events: tuple[ScenarioEvent, ...] = ()
    dt: float = 0.05
    """[s] fixed simulation step."""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("Scenario.name must not be empty")
        if not (math.isfinite(self.dt) and 0.001 <= self.dt <= 0.5):
            raise ValueError(f"Scenario.dt must be in [0.001, 0.5] s, got {self.dt}")
        for name in ("traffic_density", "pedestrians"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"Scenario.{name} must be finite and >= 0, got {value}")
        if self.timeout_s is not None and not (
            math.isfinite(self.timeout_s) and self.timeout_s > 0
        ):
            raise ValueError(f"Scenario.timeout_s must be > 0, got {self.timeout_s}")
        if self.route_waypoints is not None:
            wps = np.asarray(self.route_waypoints, dtype=np.float64)
            if wps.ndim != 2 or wps.shape[1] not in (2, 3) or len(wps) < 2:
                raise ValueError(f"Scenario.route_waypoints must be (N>=2, 2|3), got {wps.shape}")
            object.__setattr__(self, "route_waypoints", wps)
        if not 0 < self.min_route_length <= self.max_route_length:
            raise ValueError(
                "Scenario: 0 < min_route_length <= max_route_length must hold, got "
                f"{self.min_route_length}, {self.max_route_length}"
            )


@dataclass(frozen=True)
class StaticObstacle:
    """Something fixed the ego can hit: a building, wall or pole (class in ``kind``)."""

    box: Box3D
    kind: str


@dataclass(frozen=True)
class Observation:
    """What the simulator shows after each reset/step.

    ``frame`` is the sensor frame (its ``images``/``lidar`` are empty when sensors are off) with
    the privileged ``ground_truth``; ``route`` is the episode's reference path; ``ego_box`` the
    ego's box in the world frame.
    """

    frame: Frame
    ego_box: Box3D
    route: RoutePlan
    step: int
    sim_time_s: float
    static_obstacles: tuple[StaticObstacle, ...] = ()
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ego(self) -> EgoState:
        return self.frame.ego

    @property
    def ground_truth(self) -> GroundTruth:
        gt = self.frame.ground_truth
        return gt if gt is not None else GroundTruth()


class BackendError(RuntimeError):
    """The simulator could not do what was asked; the message says why."""


class Backend(abc.ABC):
    """A simulator behind kaido's fixed-step interface."""

    name: str = "backend"

    def __init__(self) -> None:
        self._step_index = -1
        self._closed = False
        self.control_warnings = 0
        """Controls that were out of range or not finite and had to be clipped or replaced."""
        self.dt = 0.05

    def reset(self, scenario: Scenario) -> Observation:
        if self._closed:
            raise BackendError(f"{self.name}: reset after close")
        self.dt = scenario.dt
        self._step_index = 0
        self.control_warnings = 0
        return self._reset(scenario)

    def step(self, control: Control | Sequence[float]) -> Observation:
        """Advance one ``dt`` under ``control``.

        A :class:`Control` is valid by construction. Raw ``(throttle, steer, brake)`` values are
        clipped into range, and NaN/inf become a full stop; each such command counts one
        ``control_warnings``. Nothing out of range ever reaches the vehicle state.
        """
        if self._closed:
            raise BackendError(f"{self.name}: step after close")
        if self._step_index < 0:
            raise BackendError(f"{self.name}: step before reset")
        if isinstance(control, Control):
            safe = control
        else:
            values = list(control)
            if len(values) != 3:
                raise ValueError(
                    f"{self.name}: raw control must be (throttle, steer, brake), got {values!r}"
                )
            throttle, steer, brake = (float(v) for v in values)
            safe, problems = Control.clipped(throttle, steer, brake)
            if problems:
                self.control_warnings += 1
        self._step_index += 1
        return self._step(safe)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def step_index(self) -> int:
        return self._step_index

    @abc.abstractmethod
    def _reset(self, scenario: Scenario) -> Observation: ...

    @abc.abstractmethod
    def _step(self, control: Control) -> Observation: ...

    def _close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (subclasses override when they hold any)."""
