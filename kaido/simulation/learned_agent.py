"""The ``learned`` driving agent: :class:`kaido.stack.learned.LearnedStack` as a DrivingAgent.

It drives from the sensor frame only: the observation's ground truth is not passed on, except
where the traffic lights and their stop lines are (map knowledge, with every colour blanked out:
the colour comes from the model). torch is imported when the agent is set up, not when this
module is (the simulator itself never needs torch).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from kaido.planning.types import TrajIndex
from kaido.provenance import REPO_ROOT
from kaido.scene.agents import Control
from kaido.scene.frame import TrafficLightColor
from kaido.scene.road_map import RoadMap
from kaido.scene.route_planner import RoutePlan
from kaido.scene.sensors import load_sensor_rig
from kaido.scene.vehicle import VehicleProfile
from kaido.simulation.agents import DrivingAgent, planner_cost_metrics, register_agent
from kaido.simulation.backend import Observation

DEFAULT_CHECKPOINT = REPO_ROOT / "checkpoints" / "tiny.ckpt"
"""The shipped tiny model (see the README for how it was trained)."""
DEFAULT_RIG = REPO_ROOT / "configs" / "sensors" / "default.yaml"


@register_agent("learned")
class LearnedAgent(DrivingAgent):
    """Sensors → the learned model → kaido's planner → controller."""

    name = "learned"

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        rig: str | Path | None = None,
        config: Any = None,
    ) -> None:
        super().__init__()
        self.checkpoint = Path(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
        if not self.checkpoint.is_file():
            raise FileNotFoundError(f"{self.checkpoint}: no such checkpoint (see `kaido train`)")
        self.rig_path = Path(rig) if rig is not None else DEFAULT_RIG
        self.config = config
        self.stack: Any = None
        self.block: dict[str, Any] = {}

    def setup(
        self, *, road_map: RoadMap, route: RoutePlan, profile: VehicleProfile, dt: float
    ) -> None:
        super().setup(road_map=road_map, route=route, profile=profile, dt=dt)
        from kaido.logs.sample import SampleSpec
        from kaido.stack.learned import LearnedStack
        from kaido.world_model.lightning import load_checkpoint

        model, block = load_checkpoint(self.checkpoint)
        spec = SampleSpec.from_dict(block["spec"])
        model.cfg.check_sample_spec(spec)
        self.block = block
        self.stack = LearnedStack(
            model,
            spec,
            road_map,
            profile,
            load_sensor_rig(self.rig_path),
            config=self.config,
        )
        self.stack.reset(route)

    def run_step(self, obs: Observation) -> Control:
        if self.stack is None:
            raise RuntimeError("LearnedAgent.run_step: call setup() first")
        if self.stack.route is not obs.route:
            self.stack.reset(obs.route)
        lights = tuple(
            dataclasses.replace(light, color=TrafficLightColor.UNKNOWN)
            for light in obs.ground_truth.traffic_lights
        )
        frame = dataclasses.replace(obs.frame, ground_truth=None)
        control, _ = self.stack.step(frame, obs.sim_time_s, self.dt, lights)
        return control

    def metrics(self) -> dict[str, float]:
        return planner_cost_metrics(self.stack.output if self.stack is not None else None)

    def plan(self) -> npt.NDArray[np.float64] | None:
        if self.stack is None or self.stack.output is None:
            return None
        traj = self.stack.output.trajectory
        return np.ascontiguousarray(traj[:, [TrajIndex.X, TrajIndex.Y, TrajIndex.YAW]])
