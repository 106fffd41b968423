"""The driving-agent interface every closed-loop driver implements, and its registry.

An episode runner calls ``agent.setup(road_map=..., route=..., profile=..., dt=...)`` once, then
``control = agent.run_step(obs)`` on every :class:`~kaido.simulation.backend.Observation`, then
``agent.destroy()``. ``plan()`` exposes the agent's current planned trajectory for recording.

Agents are registered by name with :func:`register_agent` and built with :func:`make_agent`;
the registry refuses duplicate names. The agents that ship with kaido are registered when the
registry is first queried.
"""

from __future__ import annotations

import abc
import importlib
import math
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt

from kaido.scene.agents import Control
from kaido.scene.road_map import RoadMap
from kaido.scene.route_planner import RoutePlan
from kaido.scene.vehicle import VehicleProfile
from kaido.simulation.backend import Observation

__all__ = [
    "AGENTS",
    "DrivingAgent",
    "agent_names",
    "make_agent",
    "register_agent",
]

FloatArray = npt.NDArray[np.float64]

_BUILTIN_AGENT_MODULES = (
    "kaido.simulation.baseline_agent",
    "kaido.simulation.expert_agent",
    "kaido.simulation.learned_agent",
    "kaido.simulation.runtime_agent",
)
"""Modules whose import registers kaido's own agents."""


class DrivingAgent(abc.ABC):
    """A driver: observations in, :class:`Control` (CARLA convention) out.

    The base class keeps what :meth:`setup` was given (``road_map``, ``route``, ``profile``,
    ``dt``); subclasses fill in :meth:`run_step` and may extend :meth:`setup`, :meth:`plan` and
    :meth:`destroy`.
    """

    name: ClassVar[str] = ""
    """Registry name, set by :func:`register_agent`."""

    def __init__(self) -> None:
        self.road_map: RoadMap | None = None
        self.route: RoutePlan | None = None
        self.profile: VehicleProfile = VehicleProfile()
        self.dt: float = 0.05

    def setup(
        self, *, road_map: RoadMap, route: RoutePlan, profile: VehicleProfile, dt: float
    ) -> None:
        """Prepare for an episode on ``road_map`` along ``route`` with steps of ``dt`` [s]."""
        if not isinstance(road_map, RoadMap):
            raise TypeError(
                f"{type(self).__name__}.setup: road_map must be a RoadMap, "
                f"got {type(road_map).__name__}"
            )
        if not isinstance(route, RoutePlan):
            raise TypeError(
                f"{type(self).__name__}.setup: route must be a RoutePlan, "
                f"got {type(route).__name__}"
            )
        if not isinstance(profile, VehicleProfile):
            raise TypeError(
                f"{type(self).__name__}.setup: profile must be a VehicleProfile, "
                f"got {type(profile).__name__}"
            )
        if isinstance(dt, bool) or not isinstance(dt, int | float) or not math.isfinite(dt):
            raise ValueError(f"{type(self).__name__}.setup: dt must be a finite number, got {dt!r}")
        if dt <= 0:
            raise ValueError(f"{type(self).__name__}.setup: dt must be > 0 s, got {dt}")
        self.road_map = road_map
        self.route = route
        self.profile = profile
        self.dt = float(dt)

    @abc.abstractmethod
    def run_step(self, obs: Observation) -> Control:
        """The command for the next ``dt`` given the latest observation."""

    def plan(self) -> FloatArray | None:
        """The current planned trajectory ``(T, 3)`` [x, y, yaw] (world frame), or None."""
        return None

    def metrics(self) -> dict[str, float]:
        """Named numbers about the latest step (e.g. the plan's cost terms), recorded on the
        episode log's ``/kaido/metrics`` topic every tick; empty by default."""
        return {}

    def destroy(self) -> None:  # noqa: B027 - optional hook
        """Release what the agent holds (subclasses override when they hold anything)."""


def planner_cost_metrics(output: Any) -> dict[str, float]:
    """``{"cost/<term>": value}`` of a planner output's cost breakdown (finite numbers only;
    empty for None or a fallback, whose reason is no number)."""
    if output is None:
        return {}
    out: dict[str, float] = {}
    for name, value in dict(getattr(output, "costs", {}) or {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[f"cost/{name}"] = float(value)
    return out


_AgentT = TypeVar("_AgentT", bound=type[DrivingAgent])

AGENTS: dict[str, type[DrivingAgent]] = {}
"""Registered agents by name (use :func:`register_agent` to add, never assign directly)."""


def register_agent(name: str) -> Callable[[_AgentT], _AgentT]:
    """Class decorator registering a :class:`DrivingAgent` subclass under ``name``.

    Sets the class's ``name``. Raises ``ValueError`` if the name is empty or already taken and
    ``TypeError`` if the class is not a ``DrivingAgent``.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"register_agent: name must be a non-empty string, got {name!r}")

    def decorate(cls: _AgentT) -> _AgentT:
        if not (isinstance(cls, type) and issubclass(cls, DrivingAgent)):
            raise TypeError(f"register_agent({name!r}): {cls!r} is not a DrivingAgent subclass")
        if name in AGENTS:
            raise ValueError(
                f"register_agent: an agent named {name!r} is already registered "
                f"({AGENTS[name].__module__}.{AGENTS[name].__qualname__})"
            )
        cls.name = name
        AGENTS[name] = cls
        return cls

    return decorate


def _load_builtin_agents() -> None:
    for module in _BUILTIN_AGENT_MODULES:
        importlib.import_module(module)


def agent_names() -> tuple[str, ...]:
    """Names of the registered agents, sorted."""
    _load_builtin_agents()
    return tuple(sorted(AGENTS))


def make_agent(name: str, **kwargs: Any) -> DrivingAgent:
    """A new agent of the class registered as ``name``, built with ``kwargs``.

    Raises ``ValueError`` listing the known names when ``name`` is unknown.
    """
    _load_builtin_agents()
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; known agents: {', '.join(sorted(AGENTS))}")
    return AGENTS[name](**kwargs)
