"""The ``runtime`` driving agent: a planning core wrapped by the fixed-rate runtime.

Every ``run_step`` is one control tick of :class:`kaido.stack.runtime.FixedRateRuntime` at the
simulation time; the runtime plans at its planning rate, checks the inputs of every frame,
switches degraded modes and returns a :class:`~kaido.stack.command.VehicleCommand` whose
CARLA-style ``control`` drives the simulator. Run the episode at the runtime's control rate
(``Scenario.dt = 1 / control_rate``, 0.02 s by default) for control at 50 Hz; at another step the
runtime's control simply runs once per step.

Cores (``core``):

* ``learned`` (default): :class:`kaido.stack.learned.LearnedStack` on the sensor frame (no ground
  truth except where the traffic lights are), with the eager checkpoint ``checkpoint`` or, when
  ``checkpoint`` is a folder written by ``kaido export``, the exported model (torch is imported
  when the agent is set up, never by the simulator itself).
* ``expert``: the privileged expert on the frame's ground truth (fast; used by the fault suite).
  Its plans ignore the sensors, but the runtime's input checks still see every sensor fault.

Clock (``clock``): ``sim`` (default) times the stages in simulated time, where they take none
(the simulator waits for the stack, as CARLA's synchronous mode does), so only injected
latency misses a deadline and an episode is deterministic; ``wall`` times them with
``time.perf_counter_ns`` (real deadlines on this machine); or any callable returning ns.

Mode changes and watchdog trips are kept in :attr:`RuntimeAgent.event_log` as
``(time_s, kind, message)``, the form the episode runner writes into the MCAP log.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
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
from kaido.simulation.agents import DrivingAgent, register_agent
from kaido.simulation.backend import Observation
from kaido.stack.command import VehicleCommand
from kaido.stack.runtime import (
    ExpertCore,
    FixedRateRuntime,
    ManualClock,
    PlanningCore,
    RuntimeConfig,
    load_runtime_config,
)

DEFAULT_CHECKPOINT = REPO_ROOT / "checkpoints" / "tiny.ckpt"
DEFAULT_RIG = REPO_ROOT / "configs" / "sensors" / "default.yaml"
CORES = ("learned", "expert")
CLOCKS = ("sim", "wall")


@register_agent("runtime")
class RuntimeAgent(DrivingAgent):
    """A planning core (learned or expert) run by the fixed-rate runtime."""

    name = "runtime"

    def __init__(
        self,
        core: str = "learned",
        checkpoint: str | Path | None = None,
        rig: str | Path | None = None,
        config: RuntimeConfig | str | Path | None = None,
        clock: str | Callable[[], int] = "sim",
        learned_config: Any = None,
    ) -> None:
        super().__init__()
        if core not in CORES:
            raise ValueError(f"RuntimeAgent.core: expected one of {list(CORES)}, got {core!r}")
        if isinstance(clock, str) and clock not in CLOCKS:
            raise ValueError(f"RuntimeAgent.clock: expected one of {list(CLOCKS)}, got {clock!r}")
        if not isinstance(clock, str) and not callable(clock):
            raise TypeError(f"RuntimeAgent.clock: expected a name or a callable, got {clock!r}")
        self.core_name = core
        self.checkpoint = Path(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
        if core == "learned" and not self.checkpoint.exists():
            raise FileNotFoundError(f"{self.checkpoint}: no such checkpoint or export folder")
        self.rig_path = Path(rig) if rig is not None else DEFAULT_RIG
        if config is None or isinstance(config, RuntimeConfig):
            self.config = config or load_runtime_config()
        else:
            self.config = load_runtime_config(config)
        self.clock = clock
        self.learned_config = learned_config
        self.runtime: FixedRateRuntime | None = None
        self.commands: list[VehicleCommand] = []
        """Every command sent this episode."""

    def _core(self, road_map: RoadMap, profile: VehicleProfile) -> PlanningCore:
        if self.core_name == "expert":
            from kaido.stack.expert import PrivilegedExpert

            return ExpertCore(PrivilegedExpert(road_map, profile))
        from kaido.logs.sample import SampleSpec
        from kaido.stack.learned import LearnedStack

        rig = load_sensor_rig(self.rig_path)
        if self.checkpoint.is_dir():
            from kaido.stack.export import ExportedModel

            exported = ExportedModel(self.checkpoint)
            spec = SampleSpec.from_dict(exported.metadata["sample_spec"])
            return LearnedStack(exported, spec, road_map, profile, rig, config=self.learned_config)
        from kaido.world_model.lightning import load_checkpoint

        model, block = load_checkpoint(self.checkpoint)
        spec = SampleSpec.from_dict(block["spec"])
        model.cfg.check_sample_spec(spec)
        return LearnedStack(model, spec, road_map, profile, rig, config=self.learned_config)

    def setup(
        self, *, road_map: RoadMap, route: RoutePlan, profile: VehicleProfile, dt: float
    ) -> None:
        super().setup(road_map=road_map, route=route, profile=profile, dt=dt)
        clock: Callable[[], int]
        if self.clock == "sim":
            clock = ManualClock()
        elif self.clock == "wall":
            import time

            clock = time.perf_counter_ns
        else:
            assert callable(self.clock)
            clock = self.clock
        self.runtime = FixedRateRuntime(
            self._core(road_map, profile), profile, self.config, clock=clock
        )
        self.runtime.reset(route)
        self.commands = []

    @property
    def event_log(self) -> list[tuple[float, str, str]]:
        """The runtime's events as ``(time_s, kind, message)``."""
        if self.runtime is None:
            return []
        return [(e.timestamp_ns * 1e-9, e.kind, e.message) for e in self.runtime.events]

    def run_step(self, obs: Observation) -> Control:
        runtime = self.runtime
        if runtime is None:
            raise RuntimeError("RuntimeAgent.run_step: call setup() first")
        if runtime.core.route is not obs.route:
            runtime.reset(obs.route)
        frame = obs.frame
        lights = obs.ground_truth.traffic_lights
        if self.core_name == "learned":
            lights = tuple(
                dataclasses.replace(light, color=TrafficLightColor.UNKNOWN) for light in lights
            )
            frame = dataclasses.replace(frame, ground_truth=None)
        now_ns = int(round(obs.sim_time_s * 1e9))
        command = runtime.tick(now_ns, frame, lights)
        self.commands.append(command)
        return command.control

    def plan(self) -> npt.NDArray[np.float64] | None:
        if self.runtime is None or self.runtime.plan is None:
            return None
        traj = self.runtime.plan
        return np.ascontiguousarray(traj[:, [TrajIndex.X, TrajIndex.Y, TrajIndex.YAW]])
