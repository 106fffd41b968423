"""The fault-injection suite: the runtime under sensor, clock, latency and link faults.

Each run drives one seeded episode of the embedded simulator (a generated town, a random route,
SUMO traffic, the sensor rig rendered at 10 Hz) with the ``runtime`` agent
(:mod:`kaido.simulation.runtime_agent`) at the runtime's control rate, and injects one fault
(:class:`FaultKind`) from ``start_s`` for ``duration_s`` seconds of simulated time; then the
inputs are healthy again. The planning core is the privileged expert (fast and deterministic):
its plans come from ground truth, but the runtime's input checks see every sensor fault, so the
faults reach the runtime exactly as they would with the learned core. Stages are timed on a
simulated clock (they take no time) except where a latency spike is injected.

Faults (:class:`FaultyBackend` applies them between the simulator and the agent):

* ``camera_blackout``: every camera image is black (all zero), with fresh timestamps.
* ``lidar_dropout``: no lidar sweep reaches the runtime.
* ``nan_values``: the ego's velocity and every lidar point are NaN.
* ``frozen_clock``: the frame's and every sensor's timestamp stop at their value at the onset
  (the data keeps coming).
* ``latency_spike``: every stage of every planning cycle takes ``spike_s`` longer (the
  runtime's stage clock jumps), past the deadlines.
* ``lost_message``: each control message is lost with probability ``loss_probability``
  (seeded); the vehicle keeps executing the last message it received.

Outcomes per run (:class:`FaultOutcome`): crashes (an exception anywhere in the loop, or the
episode ended by an agent error), collisions (compared with the fault-free run of the same seed),
commands outside the vehicle profile's envelope, the time from the onset to the first
``minimum_risk`` command and to the minimum-risk state (``minimum_risk`` and standing, speed
below ``stop_speed``), and the mode at the end.
"""

from __future__ import annotations

import dataclasses
import math
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from kaido.scene.agents import Control
from kaido.scene.frame import CameraImage, Frame, LidarSweep
from kaido.scene.sensors import SensorRig
from kaido.scene.town_generator import TownSpec, write_town
from kaido.scene.vehicle import VehicleProfile
from kaido.simulation.backend import Backend, Observation, Scenario
from kaido.stack.runtime import RuntimeConfig, RuntimeMode

__all__ = [
    "SMALL_RIG",
    "FaultClock",
    "FaultKind",
    "FaultOutcome",
    "FaultSpec",
    "FaultSuiteConfig",
    "FaultyBackend",
    "fault_table",
    "run_fault",
    "run_suite",
]


class FaultKind(Enum):
    """The injected faults (module docstring); ``none`` is the fault-free reference run."""

    NONE = "none"
    CAMERA_BLACKOUT = "camera_blackout"
    LIDAR_DROPOUT = "lidar_dropout"
    NAN_VALUES = "nan_values"
    FROZEN_CLOCK = "frozen_clock"
    LATENCY_SPIKE = "latency_spike"
    LOST_MESSAGE = "lost_message"


@dataclass(frozen=True)
class FaultSpec:
    """One fault and when it acts."""

    kind: FaultKind
    start_s: float = 4.0
    """[s] simulated time of the onset."""
    duration_s: float = 5.0
    """[s] how long the fault lasts."""
    spike_s: float = 0.2
    """[s] extra time of every stage during a latency spike."""
    loss_probability: float = 0.5
    """Probability that one control message is lost (``lost_message``)."""

    def __post_init__(self) -> None:
        if not isinstance(self.kind, FaultKind):
            raise TypeError(f"FaultSpec.kind: expected a FaultKind, got {self.kind!r}")
        for name in ("start_s", "duration_s", "spike_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"FaultSpec.{name} must be finite and >= 0, got {value!r}")
        if not 0.0 <= self.loss_probability <= 1.0:
            raise ValueError(
                f"FaultSpec.loss_probability must be in [0, 1], got {self.loss_probability!r}"
            )

    def active(self, time_s: float) -> bool:
        return self.kind is not FaultKind.NONE and (
            self.start_s <= time_s < self.start_s + self.duration_s
        )


SMALL_RIG: dict[str, Any] = {
    "cameras": [
        {"name": "front", "width": 256, "height": 144, "fov_deg": 90.0,
         "extrinsics": {"x": 1.5, "z": 1.6}},
    ],
    "lidars": [
        {"name": "top", "channels": 16, "upper_fov_deg": 10.0, "lower_fov_deg": -30.0,
         "range_min": 0.5, "range_max": 60.0, "rotation_frequency": 10.0,
         "points_per_second": 81920, "extrinsics": {"x": 1.3, "z": 2.0}},
    ],
}  # fmt: skip
"""The suite's sensor rig: one 256x144 camera, one 16-beam lidar (fast to render)."""


class FaultClock:
    """The runtime's stage clock: simulated time that stands still, plus ``per_call_ns`` on
    every read while a latency spike is on (each stage then lasts that much longer)."""

    def __init__(self) -> None:
        self.now_ns = 0
        self.per_call_ns = 0

    def __call__(self) -> int:
        self.now_ns += self.per_call_ns
        return self.now_ns


def _with_sensors(frame: Frame, **changes: Any) -> Frame:
    return dataclasses.replace(frame, **changes)


class FaultyBackend(Backend):
    """A backend between a simulator and the agent that injects one fault (module docstring).

    ``event_log`` merges the simulator's events, the injection's own (``fault_start``,
    ``fault_end``) and, when ``agent_events`` is given, the agent's (the runtime's mode changes),
    so the episode runner writes them all into the MCAP log.
    """

    name = "faulty"

    def __init__(
        self,
        inner: Backend,
        fault: FaultSpec,
        *,
        clock: FaultClock | None = None,
        agent_events: Callable[[], list[tuple[float, str, str]]] | None = None,
    ) -> None:
        super().__init__()
        self.inner = inner
        self.fault = fault
        self.clock = clock or FaultClock()
        self.agent_events = agent_events
        self._merged: list[tuple[float, str, str]] = []
        self._seen_inner = self._seen_agent = 0
        self._frozen: Frame | None = None
        self._delivered = Control()
        self._rng = np.random.default_rng(0)
        self.lost = 0
        """Control messages lost this episode."""
        self.true_speed: dict[int, float] = {}
        """[m/s] the simulator's ego speed by frame timestamp [ns] (before any fault)."""
        self._was_active = False

    @property
    def road_map(self) -> Any:
        return getattr(self.inner, "road_map", None)

    @property
    def event_log(self) -> list[tuple[float, str, str]]:
        """Every event so far, append-only, in the order they were seen."""
        self._collect()
        return self._merged

    def _collect(self) -> None:
        inner = list(getattr(self.inner, "event_log", []))
        agent = self.agent_events() if self.agent_events is not None else []
        self._merged += inner[self._seen_inner :] + agent[self._seen_agent :]
        self._seen_inner, self._seen_agent = len(inner), len(agent)

    def _reset(self, scenario: Scenario) -> Observation:
        self._merged = []
        self._seen_inner = self._seen_agent = 0
        self._frozen = None
        self._delivered = Control()
        self._rng = np.random.default_rng(scenario.seed + 104_729)
        self.lost = 0
        self.true_speed = {}
        self._was_active = False
        self.clock.per_call_ns = 0
        return self._inject(self.inner.reset(scenario))

    def _step(self, control: Control) -> Observation:
        fault = self.fault
        time_s = self.step_index * self.dt
        if fault.kind is FaultKind.LOST_MESSAGE and fault.active(time_s):
            if self._rng.random() < fault.loss_probability:
                self.lost += 1
                control = self._delivered
        self._delivered = control
        return self._inject(self.inner.step(control))

    def _close(self) -> None:
        self.inner.close()

    def _inject(self, obs: Observation) -> Observation:
        fault = self.fault
        self.true_speed[int(round(obs.sim_time_s * 1e9))] = float(obs.ego.speed)
        active = fault.active(obs.sim_time_s)
        if active != self._was_active:
            kind = "fault_start" if active else "fault_end"
            self._collect()
            self._merged.append((obs.sim_time_s, kind, fault.kind.value))
            self._was_active = active
        self.clock.per_call_ns = (
            int(round(fault.spike_s * 1e9))
            if active and fault.kind is FaultKind.LATENCY_SPIKE
            else 0
        )
        if not active:
            self._frozen = None
            return obs
        frame = obs.frame
        if fault.kind is FaultKind.CAMERA_BLACKOUT:
            images = {
                name: CameraImage(
                    camera=name, timestamp_ns=image.timestamp_ns, rgb=np.zeros_like(image.rgb)
                )
                for name, image in frame.images.items()
            }
            frame = _with_sensors(frame, images=images)
        elif fault.kind is FaultKind.LIDAR_DROPOUT:
            frame = _with_sensors(frame, lidar={})
        elif fault.kind is FaultKind.NAN_VALUES:
            ego = dataclasses.replace(frame.ego, velocity=(math.nan, math.nan))
            lidar = {
                name: LidarSweep(
                    lidar=name,
                    timestamp_ns=sweep.timestamp_ns,
                    points=np.full_like(sweep.points, np.nan),
                )
                for name, sweep in frame.lidar.items()
            }
            frame = _with_sensors(frame, ego=ego, lidar=lidar)
        elif fault.kind is FaultKind.FROZEN_CLOCK:
            if self._frozen is None:
                self._frozen = frame
            held = self._frozen
            images = {
                name: dataclasses.replace(
                    image,
                    timestamp_ns=(
                        held.images[name].timestamp_ns if name in held.images else held.timestamp_ns
                    ),
                )
                for name, image in frame.images.items()
            }
            lidar = {
                name: dataclasses.replace(
                    sweep,
                    timestamp_ns=(
                        held.lidar[name].timestamp_ns if name in held.lidar else held.timestamp_ns
                    ),
                )
                for name, sweep in frame.lidar.items()
            }
            ego = dataclasses.replace(frame.ego, timestamp_ns=held.timestamp_ns)
            frame = _with_sensors(
                frame, timestamp_ns=held.timestamp_ns, images=images, lidar=lidar, ego=ego
            )
        else:
            return obs
        return dataclasses.replace(obs, frame=frame)


# -- the suite ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultSuiteConfig:
    """What the suite drives."""

    seeds: tuple[int, ...] = (0, 1, 2)
    faults: tuple[FaultKind, ...] = tuple(k for k in FaultKind if k is not FaultKind.NONE)
    seconds: float = 14.0
    """[s] simulated time per run."""
    start_s: float = 4.0
    """[s] fault onset."""
    duration_s: float = 5.0
    """[s] fault duration (the runtime should recover in the rest of the run)."""
    spike_s: float = 0.2
    """[s] latency-spike size."""
    loss_probability: float = 0.5
    traffic_density: float = 15.0
    """[vehicles/lane-km] SUMO traffic."""
    town: TownSpec = field(default_factory=lambda: TownSpec(rows=2, cols=3, seed=3, name="town"))
    stop_speed: float = 0.1
    """[m/s] below this the ego stands (minimum-risk state reached)."""
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    record_mcap: bool = False

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("FaultSuiteConfig.seeds must not be empty")
        if not (math.isfinite(self.seconds) and self.seconds > 0):
            raise ValueError(f"FaultSuiteConfig.seconds must be > 0, got {self.seconds!r}")
        for kind in self.faults:
            if not isinstance(kind, FaultKind):
                raise TypeError(f"FaultSuiteConfig.faults: expected FaultKind, got {kind!r}")

    def spec(self, kind: FaultKind) -> FaultSpec:
        return FaultSpec(
            kind=kind,
            start_s=self.start_s,
            duration_s=self.duration_s,
            spike_s=self.spike_s,
            loss_probability=self.loss_probability,
        )


@dataclass(frozen=True)
class FaultOutcome:
    """The outcome of one run."""

    fault: str
    seed: int
    crashed: str | None
    """Why the loop crashed (None: it did not)."""
    collisions: int
    envelope_violations: int
    """Commands outside the profile's hard bounds."""
    commands: int
    time_to_mrm_s: float | None
    """[s] onset → first ``minimum_risk`` command (None: never)."""
    time_to_mrm_state_s: float | None
    """[s] onset → ``minimum_risk`` and standing (None: never)."""
    final_mode: str
    modes: tuple[str, ...]
    """The modes entered, in order."""
    route_completion: float
    """[%]"""
    lost_messages: int
    deadline_misses: int
    sim_seconds: float


def _collisions(result: Any) -> int:
    return sum(1 for i in result.infractions if i.kind.name.startswith("COLLISION"))


def run_fault(
    fault: FaultSpec,
    seed: int,
    config: FaultSuiteConfig,
    out_dir: Path,
    rig: SensorRig,
    vehicle: VehicleProfile | None = None,
) -> FaultOutcome:
    """Drive one seeded episode under ``fault``; never raises for a failure of the loop (it is
    the outcome's ``crashed``)."""
    from kaido.simulation.embedded.backend import EmbeddedBackend, EmbeddedConfig
    from kaido.simulation.runner import EpisodeOptions, run_episode
    from kaido.simulation.runtime_agent import RuntimeAgent

    profile = vehicle or VehicleProfile()
    out_dir.mkdir(parents=True, exist_ok=True)
    town = out_dir.parent / "town.xodr"
    if not town.is_file():
        write_town(config.town, town)
    clock = FaultClock()
    agent = RuntimeAgent(core="expert", config=config.runtime, clock=clock)
    inner = EmbeddedBackend(EmbeddedConfig(rig=rig, vehicle=profile))
    backend = FaultyBackend(inner, fault, clock=clock)
    scenario = Scenario(
        name=f"fault-{fault.kind.value}-seed{seed}",
        map_path=town,
        traffic_density=config.traffic_density,
        seed=seed,
        dt=config.runtime.control_period,
    )
    crashed: str | None = None
    collisions = 0
    completion = 0.0
    sim_seconds = 0.0
    try:
        with backend:
            episode = run_episode(
                backend,
                agent,
                scenario,
                EpisodeOptions(
                    out_dir=out_dir,
                    record_mcap=config.record_mcap,
                    record_video=False,
                    max_seconds=config.seconds,
                    progress=False,
                ),
                road_map_of=lambda b: inner.road_map,  # type: ignore[arg-type,return-value]
                vehicle=profile,
                config={"fault": fault, "seed": seed},
            )
        result = episode.result
        collisions = _collisions(result)
        completion = float(result.route_completion)
        sim_seconds = episode.sim_seconds
        if "crashed" in result.status.lower():
            crashed = result.status
    except Exception as err:  # the suite counts crashes rather than stopping at one
        crashed = f"{type(err).__name__}: {err}"
        traceback.print_exc()
    commands = agent.commands
    violations = sum(1 for c in commands if not c.within_envelope(profile))
    onset_ns = int(round(fault.start_s * 1e9))
    to_mrm = to_state = None
    if fault.kind is not FaultKind.NONE:
        for c in commands:
            if c.timestamp_ns < onset_ns or c.mode != RuntimeMode.MINIMUM_RISK.value:
                continue
            t = (c.timestamp_ns - onset_ns) * 1e-9
            if to_mrm is None:
                to_mrm = t
            if backend.true_speed.get(c.timestamp_ns, math.inf) < config.stop_speed:
                to_state = t
                break
    runtime = agent.runtime
    misses = 0
    modes: tuple[str, ...] = ()
    final = "none"
    if runtime is not None:
        misses = sum(runtime.stats.deadline_misses.values()) + runtime.stats.cycle_deadline_misses
        modes = tuple(str(e.data["to"]) for e in runtime.events if e.kind == "mode_change")
        final = runtime.mode.value
    return FaultOutcome(
        fault=fault.kind.value,
        seed=seed,
        crashed=crashed,
        collisions=collisions,
        envelope_violations=violations,
        commands=len(commands),
        time_to_mrm_s=to_mrm,
        time_to_mrm_state_s=to_state,
        final_mode=final,
        modes=modes,
        route_completion=completion,
        lost_messages=backend.lost,
        deadline_misses=misses,
        sim_seconds=sim_seconds,
    )


def run_suite(
    config: FaultSuiteConfig,
    out_dir: Path,
    rig: SensorRig,
    *,
    vehicle: VehicleProfile | None = None,
    progress: Callable[[FaultOutcome], None] | None = None,
) -> list[FaultOutcome]:
    """The fault-free run and every fault of ``config`` on every seed."""
    outcomes: list[FaultOutcome] = []
    for seed in config.seeds:
        for kind in (FaultKind.NONE, *config.faults):
            outcome = run_fault(
                config.spec(kind), seed, config, out_dir / f"{kind.value}-seed{seed}", rig, vehicle
            )
            outcomes.append(outcome)
            if progress is not None:
                progress(outcome)
    return outcomes


def _stats(values: Sequence[float | None]) -> dict[str, float | None]:
    known = [v for v in values if v is not None]
    return {
        "mean": float(np.mean(known)) if known else None,
        "max": float(np.max(known)) if known else None,
        "reached": len(known),
    }


def fault_table(outcomes: Sequence[FaultOutcome]) -> list[dict[str, Any]]:
    """One row per fault: runs, crashes, collisions (and new ones: where the fault-free run of
    the same seed had none), envelope violations, time to minimum risk, runs ending nominal."""
    free = {o.seed: o.collisions for o in outcomes if o.fault == FaultKind.NONE.value}
    rows: list[dict[str, Any]] = []
    for kind in FaultKind:
        runs = [o for o in outcomes if o.fault == kind.value]
        if not runs:
            continue
        rows.append(
            {
                "fault": kind.value,
                "runs": len(runs),
                "crashes": sum(o.crashed is not None for o in runs),
                "collisions": sum(o.collisions for o in runs),
                "new_collisions": sum(o.collisions for o in runs if free.get(o.seed, 0) == 0)
                if kind is not FaultKind.NONE
                else 0,
                "envelope_violations": sum(o.envelope_violations for o in runs),
                "commands": sum(o.commands for o in runs),
                "time_to_mrm_s": _stats([o.time_to_mrm_s for o in runs]),
                "time_to_mrm_state_s": _stats([o.time_to_mrm_state_s for o in runs]),
                "ended_nominal": sum(o.final_mode == RuntimeMode.NOMINAL.value for o in runs),
                "lost_messages": sum(o.lost_messages for o in runs),
                "deadline_misses": sum(o.deadline_misses for o in runs),
            }
        )
    return rows
