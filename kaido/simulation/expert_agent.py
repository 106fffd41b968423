"""The ``expert`` driving agent: ``kaido.stack.expert.PrivilegedExpert`` as a DrivingAgent."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from kaido.planning.planner import PlannerSettings
from kaido.planning.types import TrajIndex
from kaido.scene.agents import Control
from kaido.scene.road_map import RoadMap
from kaido.scene.route_planner import RoutePlan
from kaido.scene.vehicle import VehicleProfile
from kaido.simulation.agents import DrivingAgent, planner_cost_metrics, register_agent
from kaido.simulation.backend import Observation
from kaido.stack.expert import ExpertConfig, PrivilegedExpert


@register_agent("expert")
class ExpertAgent(DrivingAgent):
    """Ground-truth agents + lane-following prediction → kaido's planner → controller."""

    name = "expert"

    def __init__(
        self, settings: PlannerSettings | None = None, config: ExpertConfig | None = None
    ) -> None:
        super().__init__()
        self.settings = settings
        self.config = config
        self.expert: PrivilegedExpert | None = None
        self.fallbacks = 0
        """Planning cycles that ended in the minimum-risk fallback."""

    def setup(
        self, *, road_map: RoadMap, route: RoutePlan, profile: VehicleProfile, dt: float
    ) -> None:
        super().setup(road_map=road_map, route=route, profile=profile, dt=dt)
        self.expert = PrivilegedExpert(
            road_map, profile, settings=self.settings, config=self.config
        )
        self.expert.reset(route)
        self.fallbacks = 0

    def run_step(self, obs: Observation) -> Control:
        if self.expert is None:
            raise RuntimeError("ExpertAgent.run_step: call setup() first")
        if self.expert.route is not obs.route:
            self.expert.reset(obs.route)
        before = self.expert.output
        control, output = self.expert.step(obs.ego, obs.ground_truth, obs.sim_time_s, self.dt)
        if output is not None and output is not before and output.fallback_reason:
            self.fallbacks += 1
        return control

    def metrics(self) -> dict[str, float]:
        return planner_cost_metrics(self.expert.output if self.expert is not None else None)

    def plan(self) -> npt.NDArray[np.float64] | None:
        if self.expert is None or self.expert.output is None:
            return None
        traj = self.expert.output.trajectory
        return np.ascontiguousarray(traj[:, [TrajIndex.X, TrajIndex.Y, TrajIndex.YAW]])
