"""The fixed-rate runtime: planning at 10 Hz, control at 50 Hz, deadlines, watchdog, degraded modes.

:class:`FixedRateRuntime` is what sits between a car's (or a simulator's) sensors and its
actuators. It is driven by control ticks (:meth:`FixedRateRuntime.tick`, nominally every
``1 / control_rate`` seconds) with the scheduler's time ``now_ns`` and the latest sensor
:class:`~kaido.scene.frame.Frame`; every tick returns one
:class:`~kaido.stack.command.VehicleCommand`.

Every tick
----------
1. **Input checks** (:func:`check_inputs`, on every frame): the frame's timestamp advances
   (a repeated timestamp is *stale*, an earlier one *invalid*); the frame is not older than
   ``max_frame_age``; every required sensor (default: every sensor of the frame's rig) is
   present and no older than its max age (``camera_max_age``, ``lidar_max_age``, or a per-sensor
   entry of ``sensor_max_age``) — else *stale*; the ego state and the lidar points are finite,
   camera images are not blank (all zero), the calibration of every sensor is present and finite
   — else *invalid*.
2. **Planning** when due (every ``1 / planning_rate`` s), only on healthy inputs: the planning
   core (:class:`PlanningCore`: the learned stack on sensors, or the privileged expert) runs its
   stages — inputs, perception, prediction, world_model, planning — and reports each one's end
   through a ``lap`` callback; the runtime times them with its injected ``clock`` (ns). A stage
   over its deadline (``deadlines``), the cycle over ``cycle_deadline``, or an exception in the
   core discards the cycle's plan (a late plan is not used).
3. **Mode** (:class:`RuntimeMode`), each change an event (:attr:`FixedRateRuntime.events`):

   * ``nominal``: the newest plan is tracked.
   * ``reuse_last_plan``: a planning cycle was skipped (stale input) or discarded (deadline,
     error); the last accepted plan is tracked further in time (the controller interpolates it
     at the time since it was planned: the last world state extrapolated), for at most
     ``max_extrapolation`` seconds after it was planned.
   * ``minimum_risk``: invalid input, no plan, or the last plan older than
     ``max_extrapolation``: a controlled stop in lane
     (:func:`kaido.planning.fallback.minimum_risk_trajectory` along the route's reference, at
     ``mrm_decel``), made once on entry and tracked; with a non-finite ego state the command is
     ``-mrm_decel`` with the wheel angle held.
   * ``recovering``: inputs and planning are healthy again after a degraded mode; new plans are
     tracked and after ``recovery_cycles`` healthy cycles in a row the mode is ``nominal``.
4. **Control**: the controller (:class:`~kaido.planning.controller.TrajectoryController`) tracks
   the mode's trajectory; its physical command passes the vehicle profile's envelope and rate
   limiter in :class:`~kaido.stack.command.CommandBuilder`, which makes the message.

**Watchdog**: a gap between control ticks longer than ``watchdog_timeout`` is an event
(``watchdog``) and counts in :attr:`RuntimeStats.watchdog_trips`; the plan-age rule above is the
watchdog of the planning loop (no accepted plan for ``max_extrapolation`` → minimum risk).

Stage latencies [ms] and deadline misses are kept in :attr:`FixedRateRuntime.stats`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import yaml

from kaido.planning.controller import TrajectoryController
from kaido.planning.fallback import FallbackConfig, minimum_risk_trajectory
from kaido.planning.types import PlannerConfig, PlannerOutput, ReferencePath, TrajIndex
from kaido.provenance import REPO_ROOT
from kaido.scene.agents import EgoState
from kaido.scene.frame import CameraImage, Frame, LidarSweep, TrafficLightState
from kaido.scene.route_planner import RoutePlan
from kaido.scene.vehicle import VehicleProfile
from kaido.stack.command import CommandBuilder, RateLimits, VehicleCommand

__all__ = [
    "DEFAULT_RUNTIME_CONFIG",
    "STAGES",
    "ExpertCore",
    "FixedRateRuntime",
    "InputCheck",
    "ManualClock",
    "PlanningCore",
    "RuntimeConfig",
    "RuntimeEvent",
    "RuntimeMode",
    "RuntimeStats",
    "check_inputs",
    "latency_summary",
    "load_runtime_config",
    "mode_sequence",
]

FloatArray = npt.NDArray[np.float64]
NS_PER_S = 1_000_000_000
DEFAULT_RUNTIME_CONFIG = REPO_ROOT / "configs" / "runtime" / "default.yaml"

STAGES = ("inputs", "perception", "prediction", "world_model", "planning", "control")
"""The stages with a deadline, in the order a planning cycle runs them (control every tick)."""


class RuntimeMode(Enum):
    """The runtime's modes (module docstring); the value is the name in logs and commands."""

    NOMINAL = "nominal"
    REUSE_LAST_PLAN = "reuse_last_plan"
    MINIMUM_RISK = "minimum_risk"
    RECOVERING = "recovering"


def _positive(where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{where}: expected a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{where}: must be finite and > 0, got {value!r}")
    return float(value)


def _default_deadlines() -> Mapping[str, float]:
    return {
        "inputs": 0.02,
        "perception": 0.05,
        "prediction": 0.03,
        "world_model": 0.05,
        "planning": 0.06,
        "control": 0.005,
    }


@dataclass(frozen=True)
class RuntimeConfig:
    """Rates, deadlines, input limits and degraded-mode settings of :class:`FixedRateRuntime`."""

    planning_rate: float = 10.0
    """[Hz] planning cycles per second."""
    control_rate: float = 50.0
    """[Hz] control ticks per second (the caller ticks at this rate)."""
    deadlines: Mapping[str, float] = field(default_factory=_default_deadlines)
    """[s] per stage of :data:`STAGES`; a stage that takes longer misses its deadline."""
    cycle_deadline: float = 0.1
    """[s] a whole planning cycle (all its stages) that takes longer misses its deadline."""
    max_frame_age: float = 0.2
    """[s] the frame's timestamp may lag the scheduler's time by this much."""
    camera_max_age: float = 0.25
    """[s] oldest camera image accepted (sensors run at 10 Hz: 0.1 s plus margin)."""
    lidar_max_age: float = 0.25
    """[s] oldest lidar sweep accepted."""
    sensor_max_age: Mapping[str, float] = field(default_factory=dict)
    """[s] per-sensor overrides by sensor name."""
    required_sensors: tuple[str, ...] | None = None
    """Sensors that must be in every frame (None: every sensor of the frame's rig)."""
    max_extrapolation: float = 0.5
    """[s] the last plan is tracked for at most this long after it was planned."""
    recovery_cycles: int = 3
    """Healthy planning cycles in a row before ``recovering`` becomes ``nominal``."""
    mrm_decel: float = 3.0
    """[m/s²] deceleration of the minimum-risk manoeuvre (limited by the envelope)."""
    watchdog_timeout: float = 0.06
    """[s] longest gap between control ticks before the watchdog trips."""
    max_jerk: float = 5.0
    """[m/s³] rate limit of the commanded acceleration (:class:`RateLimits`)."""
    enforce_deadlines: bool = True
    """False: deadline misses are counted but late plans are still used (for measuring a core
    that is not yet fast enough, e.g. ``kaido bench runtime``)."""

    def __post_init__(self) -> None:
        for name in (
            "planning_rate",
            "control_rate",
            "cycle_deadline",
            "max_frame_age",
            "camera_max_age",
            "lidar_max_age",
            "max_extrapolation",
            "mrm_decel",
            "watchdog_timeout",
            "max_jerk",
        ):
            object.__setattr__(self, name, _positive(f"RuntimeConfig.{name}", getattr(self, name)))
        if self.control_rate < self.planning_rate:
            raise ValueError(
                f"RuntimeConfig: control_rate ({self.control_rate} Hz) must be >= planning_rate "
                f"({self.planning_rate} Hz)"
            )
        if not isinstance(self.deadlines, Mapping):
            raise TypeError(f"RuntimeConfig.deadlines: expected a mapping, got {self.deadlines!r}")
        unknown = sorted(set(self.deadlines) - set(STAGES))
        missing = sorted(set(STAGES) - set(self.deadlines))
        if unknown or missing:
            raise ValueError(
                f"RuntimeConfig.deadlines: unknown stages {unknown}, missing stages {missing} "
                f"(stages are {list(STAGES)})"
            )
        deadlines = {
            k: _positive(f"RuntimeConfig.deadlines[{k!r}]", v) for k, v in self.deadlines.items()
        }
        object.__setattr__(self, "deadlines", deadlines)
        if not isinstance(self.sensor_max_age, Mapping):
            raise TypeError(
                f"RuntimeConfig.sensor_max_age: expected a mapping, got {self.sensor_max_age!r}"
            )
        ages = {
            str(k): _positive(f"RuntimeConfig.sensor_max_age[{k!r}]", v)
            for k, v in self.sensor_max_age.items()
        }
        object.__setattr__(self, "sensor_max_age", ages)
        if self.required_sensors is not None:
            if isinstance(self.required_sensors, str) or not all(
                isinstance(s, str) for s in self.required_sensors
            ):
                raise TypeError(
                    "RuntimeConfig.required_sensors: expected None or a list of names, got "
                    f"{self.required_sensors!r}"
                )
            object.__setattr__(self, "required_sensors", tuple(self.required_sensors))
        if not isinstance(self.enforce_deadlines, bool):
            raise TypeError(
                f"RuntimeConfig.enforce_deadlines: expected a bool, got {self.enforce_deadlines!r}"
            )
        if (
            isinstance(self.recovery_cycles, bool)
            or not isinstance(self.recovery_cycles, int)
            or self.recovery_cycles < 1
        ):
            raise ValueError(
                f"RuntimeConfig.recovery_cycles: expected an int >= 1, got {self.recovery_cycles!r}"
            )

    @property
    def planning_period_ns(self) -> int:
        return int(round(NS_PER_S / self.planning_rate))

    @property
    def control_period(self) -> float:
        """[s] nominal time between control ticks."""
        return 1.0 / self.control_rate

    def max_age(self, sensor: str, kind: str) -> float:
        """[s] the oldest data accepted from ``sensor`` of ``kind`` (``camera`` or ``lidar``)."""
        if sensor in self.sensor_max_age:
            return self.sensor_max_age[sensor]
        return self.camera_max_age if kind == "camera" else self.lidar_max_age


def load_runtime_config(path: Path | str = DEFAULT_RUNTIME_CONFIG) -> RuntimeConfig:
    """A :class:`RuntimeConfig` from YAML (keys = field names; errors name the file and key)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such runtime config")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: malformed YAML: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    known = set(RuntimeConfig.__dataclass_fields__)
    unknown = sorted(str(k) for k in set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown} (known: {sorted(known)})")
    if isinstance(data.get("required_sensors"), list):
        data["required_sensors"] = tuple(data["required_sensors"])
    try:
        return RuntimeConfig(**data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from None


# -- input checks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputCheck:
    """What is wrong with one frame: ``stale`` (old, missing or repeated data) and ``invalid``
    (non-finite values, blank images, missing calibration, time running backwards)."""

    stale: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.stale and not self.invalid


def _finite_array(value: object) -> bool:
    try:
        arr = np.asarray(value)
        return bool(arr.dtype.kind in "biuf" and np.all(np.isfinite(arr)))
    except (TypeError, ValueError):
        return False


def _int_ns(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        return None
    return int(value)


def _fresh(
    kind: str,
    name: str,
    reading: CameraImage | LidarSweep | None,
    now: int,
    required: bool,
    config: RuntimeConfig,
    stale: list[str],
) -> bool:
    """Whether the ``kind`` sensor ``name`` delivered ``reading``; notes in ``stale`` a required
    one that is missing and a reading older than its max age [ns clock ``now``]."""
    if reading is None:
        if required:
            stale.append(f"{kind} {name!r}: missing")
        return False
    limit = config.max_age(name, kind)
    age = (now - reading.timestamp_ns) * 1e-9
    if age > limit:
        stale.append(f"{kind} {name!r}: {age:.3f} s old > {limit} s")
    return True


def check_inputs(
    frame: object, now_ns: int, previous_ns: int | None, config: RuntimeConfig
) -> InputCheck:
    """The input checks of one frame (module docstring) at the scheduler's time ``now_ns``;
    ``previous_ns`` is the timestamp of the last frame that passed the clock check (None at
    the start). Never raises: anything that is not a well-formed :class:`Frame` is invalid."""
    if not isinstance(frame, Frame):
        return InputCheck(invalid=(f"frame: expected Frame, got {type(frame).__name__}",))
    stale: list[str] = []
    invalid: list[str] = []
    ts = _int_ns(frame.timestamp_ns)
    now = _int_ns(now_ns)
    if ts is None or now is None:
        return InputCheck(invalid=(f"clock: timestamps {frame.timestamp_ns!r}, {now_ns!r}",))
    if previous_ns is not None:
        if ts < previous_ns:
            invalid.append(f"clock: frame time {ts} ns before the previous {previous_ns} ns")
        elif ts == previous_ns:
            stale.append(f"clock: frame time {ts} ns did not advance")
    age = (now - ts) * 1e-9
    if age > config.max_frame_age:
        stale.append(f"frame: {age:.3f} s old > {config.max_frame_age} s")
    elif age < -config.max_frame_age:
        invalid.append(f"frame: {-age:.3f} s in the future")
    ego = frame.ego
    if not ego.is_finite():
        invalid.append("ego: state not finite")
    rig = frame.rig
    cameras = set(rig.camera_names)
    lidars = set(rig.lidar_names)
    required = cameras | lidars if config.required_sensors is None else set(config.required_sensors)
    for name in sorted(required - cameras - lidars):
        invalid.append(f"calibration: no sensor {name!r} in the rig")
    for name in sorted(cameras):
        spec = rig.camera(name)
        if not (
            _finite_array(spec.intrinsic_matrix()) and _finite_array(spec.extrinsics.as_matrix())
        ):
            invalid.append(f"calibration: camera {name!r} not finite")
        image = frame.images.get(name)
        if not _fresh("camera", name, image, now, name in required, config, stale):
            continue
        assert image is not None
        if not bool(np.any(image.rgb)):
            invalid.append(f"camera {name!r}: blank image")
    for name in sorted(lidars):
        if not _finite_array(rig.lidar(name).extrinsics.as_matrix()):
            invalid.append(f"calibration: lidar {name!r} not finite")
        sweep = frame.lidar.get(name)
        if not _fresh("lidar", name, sweep, now, name in required, config, stale):
            continue
        assert sweep is not None
        if len(sweep.points) == 0:
            stale.append(f"lidar {name!r}: no points")
        elif not _finite_array(sweep.points):
            invalid.append(f"lidar {name!r}: points not finite")
    return InputCheck(stale=tuple(stale), invalid=tuple(invalid))


# -- planning cores -------------------------------------------------------------------------------


Lap = Callable[[str], None]
"""Called by a planning core when one of its stages ends, with the stage's name."""


class PlanningCore(Protocol):
    """What the runtime runs at the planning rate (the learned stack or the expert)."""

    @property
    def route(self) -> RoutePlan | None: ...

    def reset(self, route: RoutePlan) -> None: ...

    def plan(
        self,
        frame: Frame,
        time_s: float,
        lights: tuple[TrafficLightState, ...],
        lap: Lap,
    ) -> PlannerOutput:
        """One planning cycle on ``frame``; ``lap(stage)`` at the end of each stage."""
        ...

    def reference(self, ego: EgoState) -> ReferencePath | None:
        """The route's reference around ``ego`` for a stop in lane (None: none known)."""
        ...

    @property
    def planner_config(self) -> PlannerConfig: ...


class ExpertCore:
    """The privileged expert as a planning core: ground-truth agents from ``frame.ground_truth``
    (lane-following prediction), kaido's planner. Stages: prediction, planning."""

    def __init__(self, expert: Any) -> None:
        self.expert = expert

    @property
    def route(self) -> RoutePlan | None:
        route: RoutePlan | None = self.expert.route
        return route

    @property
    def planner_config(self) -> PlannerConfig:
        config: PlannerConfig = self.expert.planner.settings.planner
        return config

    def reset(self, route: RoutePlan) -> None:
        self.expert.reset(route)

    def plan(
        self, frame: Frame, time_s: float, lights: tuple[TrafficLightState, ...], lap: Lap
    ) -> PlannerOutput:
        from kaido.scene.frame import GroundTruth

        truth = frame.ground_truth if frame.ground_truth is not None else GroundTruth()
        inp = self.expert.planner_input(frame.ego, truth, int(round(time_s * 1e9)))
        lap("prediction")
        output: PlannerOutput = self.expert.planner.plan(inp)
        lap("planning")
        self.expert.output = output
        return output

    def reference(self, ego: EgoState) -> ReferencePath | None:
        reference: ReferencePath = self.expert.reference(ego)[0]
        return reference


class ManualClock:
    """A clock for tests and fault injection: returns ``now_ns`` [ns], moved by :meth:`advance`
    (optionally by ``per_call_ns`` on every read)."""

    def __init__(self, start_ns: int = 0, per_call_ns: int = 0) -> None:
        self.now_ns = int(start_ns)
        self.per_call_ns = int(per_call_ns)

    def advance(self, ns: int) -> None:
        self.now_ns += int(ns)

    def __call__(self) -> int:
        self.now_ns += self.per_call_ns
        return self.now_ns


# -- the runtime ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuntimeEvent:
    """One event of the runtime (a mode change, a watchdog trip)."""

    timestamp_ns: int
    kind: str
    """``mode_change`` or ``watchdog``."""
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class RuntimeStats:
    """What the runtime measured (latencies in ms)."""

    latency_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    cycle_ms: list[float] = field(default_factory=list)
    deadline_misses: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    cycle_deadline_misses: int = 0
    cycles: int = 0
    """Planning cycles due."""
    plans: int = 0
    """Plans accepted."""
    skipped: int = 0
    """Cycles skipped on unhealthy input."""
    core_errors: int = 0
    watchdog_trips: int = 0
    ticks: int = 0
    mode_ticks: dict[str, int] = field(default_factory=lambda: {m.value: 0 for m in RuntimeMode})
    envelope_violations: int = 0
    """Commands outside the profile's hard bounds (must stay 0)."""


class FixedRateRuntime:
    """The scheduler, input checks, degraded modes and command output (module docstring).

    ``clock`` returns nanoseconds and is used only to time stages (inject one in tests);
    ``now_ns`` of :meth:`tick` is the scheduler's time (the simulation time in closed loop).
    """

    def __init__(
        self,
        core: PlanningCore,
        profile: VehicleProfile,
        config: RuntimeConfig | None = None,
        *,
        clock: Callable[[], int] = time.perf_counter_ns,
        fallback: FallbackConfig | None = None,
    ) -> None:
        if not isinstance(profile, VehicleProfile):
            raise TypeError(
                f"FixedRateRuntime.profile: expected VehicleProfile, got {type(profile).__name__}"
            )
        self.core = core
        self.profile = profile
        self.config = config or RuntimeConfig()
        self.clock = clock
        self.fallback = fallback or FallbackConfig(
            decel=min(self.config.mrm_decel, -profile.envelope_accel_min)
        )
        self.controller = TrajectoryController(profile)
        self.builder = CommandBuilder(profile, RateLimits(max_jerk=self.config.max_jerk))
        self.events: list[RuntimeEvent] = []
        self.stats = RuntimeStats()
        self.mode = RuntimeMode.NOMINAL
        self.last_check = InputCheck()
        self.last_command: VehicleCommand | None = None
        self._reset_state()

    def _reset_state(self) -> None:
        self.mode = RuntimeMode.NOMINAL
        self.output: PlannerOutput | None = None
        self._plan_ns: int | None = None
        self._next_plan_ns: int | None = None
        self._last_frame_ns: int | None = None
        self._last_tick_ns: int | None = None
        self._healthy = 0
        self._mrm: tuple[FloatArray, int] | None = None
        self._last_ego: EgoState | None = None
        self._last_ego_ns = 0
        self._wheel = 0.0
        self.last_command = None

    def reset(self, route: RoutePlan) -> None:
        """Start an episode along ``route``: forget plans, modes and the command stream."""
        self.core.reset(route)
        self.controller.reset()
        self._reset_state()

    @property
    def plan(self) -> FloatArray | None:
        """The trajectory ``(T, len(TrajIndex))`` being tracked (the stop in minimum risk)."""
        if self.mode is RuntimeMode.MINIMUM_RISK and self._mrm is not None:
            return self._mrm[0]
        return None if self.output is None else self.output.trajectory

    # -- one tick ------------------------------------------------------------------------------

    def tick(
        self,
        now_ns: int,
        frame: Frame,
        lights: tuple[TrafficLightState, ...] = (),
    ) -> VehicleCommand:
        """One control tick at the scheduler's time ``now_ns`` [ns] with the latest ``frame``."""
        if isinstance(now_ns, bool) or not isinstance(now_ns, int) or now_ns < 0:
            raise ValueError(f"FixedRateRuntime.tick: now_ns must be an int >= 0, got {now_ns!r}")
        cfg = self.config
        stats = self.stats
        stats.ticks += 1
        period_ns = int(round(NS_PER_S / cfg.control_rate))
        if self._last_tick_ns is None:
            self.builder.reset(now_ns - period_ns)
            dt = cfg.control_period
        else:
            gap = now_ns - self._last_tick_ns
            if gap * 1e-9 > cfg.watchdog_timeout:
                stats.watchdog_trips += 1
                self._event(
                    now_ns,
                    "watchdog",
                    f"control tick {gap * 1e-6:.1f} ms after the previous one "
                    f"(> {cfg.watchdog_timeout * 1e3:.0f} ms)",
                    {"gap_ms": gap * 1e-6},
                )
            # a scheduler time that does not advance: the command builder makes it a stop
            dt = gap * 1e-9 if gap > 0 else cfg.control_period
        self._last_tick_ns = max(now_ns, self._last_tick_ns or 0)

        clock0 = self.clock()
        check = check_inputs(frame, now_ns, self._last_frame_ns, cfg)
        inputs_ms = (self.clock() - clock0) * 1e-6
        self.last_check = check
        if isinstance(frame, Frame) and not any(
            r.startswith("clock") for r in check.invalid + check.stale
        ):
            self._last_frame_ns = int(frame.timestamp_ns)
        ego = frame.ego if isinstance(frame, Frame) else None
        if ego is not None and ego.is_finite():
            self._last_ego, self._last_ego_ns = ego, now_ns

        reason: str | None = None
        accepted = False
        if self._next_plan_ns is None or now_ns >= self._next_plan_ns:
            self._next_plan_ns = now_ns + cfg.planning_period_ns
            stats.cycles += 1
            if check.invalid:
                reason = "invalid input: " + "; ".join(check.invalid)
                stats.skipped += 1
            elif check.stale:
                reason = "stale input: " + "; ".join(check.stale)
                stats.skipped += 1
            else:
                assert isinstance(frame, Frame)
                reason = self._plan_cycle(frame, now_ns, lights, inputs_ms)
                accepted = reason is None
        elif check.invalid:
            reason = "invalid input: " + "; ".join(check.invalid)
        self._update_mode(now_ns, check, reason, accepted)

        clock0 = self.clock()
        command = self._control(now_ns, ego, dt)
        control_ms = (self.clock() - clock0) * 1e-6
        stats.latency_ms["control"].append(control_ms)
        if control_ms > 1e3 * cfg.deadlines["control"]:
            stats.deadline_misses["control"] += 1
        stats.mode_ticks[self.mode.value] += 1
        if not command.within_envelope(self.profile):
            stats.envelope_violations += 1
        self.last_command = command
        return command

    def _plan_cycle(
        self,
        frame: Frame,
        now_ns: int,
        lights: tuple[TrafficLightState, ...],
        inputs_ms: float,
    ) -> str | None:
        """Run the core; None when its plan is accepted, else why it was discarded."""
        cfg = self.config
        stats = self.stats
        durations: dict[str, float] = {"inputs": inputs_ms}
        start = self.clock()
        last = [start]

        def lap(stage: str) -> None:
            now = self.clock()
            if stage in durations or stage in STAGES:
                durations[stage] = durations.get(stage, 0.0) + (now - last[0]) * 1e-6
            last[0] = now

        try:
            output = self.core.plan(frame, now_ns * 1e-9, lights, lap)
        except Exception as err:  # a failing core degrades the runtime; it never stops it
            stats.core_errors += 1
            return f"planning error: {type(err).__name__}: {err}"
        cycle_ms = inputs_ms + (self.clock() - start) * 1e-6
        stats.cycle_ms.append(cycle_ms)
        late: list[str] = []
        for stage, ms in durations.items():
            stats.latency_ms[stage].append(ms)
            if ms > 1e3 * cfg.deadlines[stage]:
                stats.deadline_misses[stage] += 1
                late.append(f"{stage} {ms:.1f} ms > {1e3 * cfg.deadlines[stage]:.0f} ms")
        if cycle_ms > 1e3 * cfg.cycle_deadline:
            stats.cycle_deadline_misses += 1
            late.append(f"cycle {cycle_ms:.1f} ms > {1e3 * cfg.cycle_deadline:.0f} ms")
        if late and self.config.enforce_deadlines:
            return "deadline missed: " + "; ".join(late)
        traj = np.asarray(output.trajectory, dtype=np.float64)
        if traj.ndim != 2 or traj.shape[1] != len(TrajIndex) or not np.all(np.isfinite(traj)):
            stats.core_errors += 1
            return f"planning error: trajectory of shape {traj.shape} not finite or malformed"
        self.output = output
        self._plan_ns = now_ns
        stats.plans += 1
        return None

    def _update_mode(
        self, now_ns: int, check: InputCheck, reason: str | None, accepted: bool
    ) -> None:
        cfg = self.config
        age = math.inf if self._plan_ns is None else (now_ns - self._plan_ns) * 1e-9
        mode = self.mode
        why = reason
        if check.invalid:
            target = RuntimeMode.MINIMUM_RISK
        elif age > cfg.max_extrapolation:
            target = RuntimeMode.MINIMUM_RISK
            why = f"no plan for {age:.2f} s > {cfg.max_extrapolation} s" + (
                f" ({reason})" if reason else ""
            )
        elif reason is not None:
            target = (
                RuntimeMode.MINIMUM_RISK
                if mode is RuntimeMode.MINIMUM_RISK
                else RuntimeMode.REUSE_LAST_PLAN
            )
        elif accepted:
            if mode in (RuntimeMode.REUSE_LAST_PLAN, RuntimeMode.MINIMUM_RISK):
                self._healthy = 1
                target = RuntimeMode.RECOVERING
                why = "inputs and planning healthy again"
            elif mode is RuntimeMode.RECOVERING:
                self._healthy += 1
                target = mode
                if self._healthy >= cfg.recovery_cycles:
                    target = RuntimeMode.NOMINAL
                    why = f"{self._healthy} healthy planning cycles"
            else:
                target = RuntimeMode.NOMINAL
        else:
            target = mode
        if target is RuntimeMode.MINIMUM_RISK and mode is not RuntimeMode.MINIMUM_RISK:
            self._mrm = None
        if target is not mode:
            self._event(
                now_ns,
                "mode_change",
                f"{mode.value} -> {target.value}: {why}",
                {"from": mode.value, "to": target.value, "reason": why or ""},
            )
            self.mode = target
            if target is not RuntimeMode.RECOVERING:
                self._healthy = 0

    def _mrm_trajectory(self, now_ns: int, ego: EgoState | None) -> tuple[FloatArray, int] | None:
        base = ego if ego is not None and ego.is_finite() else self._last_ego
        if base is None:
            return None
        reference: ReferencePath | None
        try:
            reference = self.core.reference(base)
        except Exception:  # no reference: the stop runs straight ahead
            reference = None
        traj = minimum_risk_trajectory(
            base,
            reference,
            self.profile,
            self.core.planner_config,
            reason="runtime minimum-risk manoeuvre",
            config=self.fallback,
        )
        return traj, now_ns

    def _control(self, now_ns: int, ego: EgoState | None, dt: float) -> VehicleCommand:
        cfg = self.config
        mode = self.mode
        trajectory: FloatArray | None = None
        since = 0.0
        if mode is RuntimeMode.MINIMUM_RISK:
            if self._mrm is None:
                self._mrm = self._mrm_trajectory(now_ns, ego)
            if self._mrm is not None:
                trajectory, t0 = self._mrm
                since = (now_ns - t0) * 1e-9
        elif self.output is not None and self._plan_ns is not None:
            trajectory = self.output.trajectory
            since = (now_ns - self._plan_ns) * 1e-9
        if ego is not None and ego.is_finite() and trajectory is not None:
            _, debug = self.controller.command(ego, trajectory, since, dt)
            accel, wheel = debug.accel_command, debug.wheel_angle_command
            speed = float(ego.velocity[0])
        else:
            # no trusted state or nothing to track: brake, hold the wheel
            accel = -min(cfg.mrm_decel, -self.profile.envelope_accel_min)
            wheel = self._wheel
            speed = self._estimated_speed(now_ns)
        command = self.builder.build(now_ns, accel, wheel, speed, mode=mode.value)
        self._wheel = command.wheel_angle
        return command

    def _estimated_speed(self, now_ns: int) -> float:
        """[m/s] the last finite speed, braked at the manoeuvre's rate since it was measured."""
        if self._last_ego is None:
            return 0.0
        v = float(self._last_ego.velocity[0])
        return max(v - self.config.mrm_decel * (now_ns - self._last_ego_ns) * 1e-9, 0.0)

    def _event(self, now_ns: int, kind: str, message: str, data: Mapping[str, Any]) -> None:
        self.events.append(RuntimeEvent(now_ns, kind, message, dict(data)))


def latency_summary(stats: RuntimeStats) -> dict[str, Any]:
    """Per-stage latency p50/p99 [ms] and deadline misses of ``stats`` (JSON-ready)."""
    out: dict[str, Any] = {}
    for stage in STAGES:
        values = np.asarray(stats.latency_ms[stage], dtype=np.float64)
        out[stage] = {
            "count": int(len(values)),
            "p50_ms": float(np.percentile(values, 50)) if len(values) else None,
            "p99_ms": float(np.percentile(values, 99)) if len(values) else None,
            "max_ms": float(values.max()) if len(values) else None,
            "deadline_misses": stats.deadline_misses[stage],
        }
    cycle = np.asarray(stats.cycle_ms, dtype=np.float64)
    out["cycle"] = {
        "count": int(len(cycle)),
        "p50_ms": float(np.percentile(cycle, 50)) if len(cycle) else None,
        "p99_ms": float(np.percentile(cycle, 99)) if len(cycle) else None,
        "max_ms": float(cycle.max()) if len(cycle) else None,
        "deadline_misses": stats.cycle_deadline_misses,
    }
    return out


def mode_sequence(events: Sequence[RuntimeEvent]) -> list[str]:
    """The modes entered, in order, from the runtime's events."""
    return [str(e.data["to"]) for e in events if e.kind == "mode_change"]
