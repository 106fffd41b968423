"""Open-loop replay of a recorded drive: the planner on logged inputs, scored against the logged
ego. The drive is a kaido log or any dataset source with a recorded ego and a road map (AV2, WOMD;
:func:`~kaido.simulation.replay.from_source.load_drive`).

At every planning step (every ``every_s`` seconds of the log, while the log reaches the longest
horizon beyond it) the privileged expert's planner
(:class:`~kaido.stack.expert.PrivilegedExpert`: the logged agents and lights as ground truth,
lane-following prediction, the logged route) plans from the LOGGED ego state; its trajectory is
compared with what the logged ego then did:

* **L2** [m] between the planned and the logged rear-axle position, at each horizon (1, 2, 3 s),
  under both protocols the field uses, named in the results:

  - ``per_time_step`` (UniAD/VAD's later code): the L2 at exactly the horizon;
  - ``running_mean`` (ST-P3's): the mean of the L2 over the planner's time steps in
    ``(0, horizon]``.

  Each is averaged over planning steps.
* **collision rate**: the share of planning steps whose planned ego box (centre
  ``rear_axle_to_center`` ahead of the rear axle) overlaps a logged agent's box at the same time
  within the longest horizon.

The planned trajectory is sampled at log ticks by linear interpolation of x and y over the
planner's times.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from kaido.planning.types import TrajIndex
from kaido.provenance import provenance
from kaido.scene.agents import EgoState
from kaido.scene.frame import GroundTruth
from kaido.scene.geometry import SE2, BoxIndex, box2d_overlap
from kaido.scene.vehicle import VehicleProfile
from kaido.simulation.replay.backend import (
    LoggedDrive,
    LoggedEgoIndex,
    logged_route,
)

__all__ = ["AVERAGING_PROTOCOLS", "OpenLoopResult", "OpenLoopStep", "run_open_loop"]

FloatArray = npt.NDArray[np.float64]

AVERAGING_PROTOCOLS: dict[str, str] = {
    "per_time_step": "L2 at exactly the horizon, averaged over planning steps (UniAD, VAD)",
    "running_mean": (
        "mean of the L2 over the planner's time steps in (0, horizon], averaged over planning "
        "steps (ST-P3)"
    ),
}
"""The two L2 averaging protocols, as written into the results."""


@dataclass(frozen=True)
class OpenLoopStep:
    """One planning step's scores."""

    tick: int
    """Log tick planned from."""
    l2_per_time_step: dict[float, float]
    """horizon [s] → L2 [m] at the horizon."""
    l2_running_mean: dict[float, float]
    """horizon [s] → mean L2 [m] over ``(0, horizon]``."""
    collision: bool
    """The planned box overlaps a logged agent's within the longest horizon."""
    fallback: str | None
    """The planner's fallback reason, if it fell back."""


@dataclass(frozen=True)
class OpenLoopResult:
    """All planning steps of one log, and the averages."""

    steps: tuple[OpenLoopStep, ...]
    horizons_s: tuple[float, ...]
    results_path: Path

    def mean_l2(self, protocol: str) -> dict[float, float]:
        """horizon [s] → mean over steps of the L2 [m] under ``protocol`` (see
        :data:`AVERAGING_PROTOCOLS`)."""
        if protocol not in AVERAGING_PROTOCOLS:
            raise ValueError(f"protocol {protocol!r}: expected one of {list(AVERAGING_PROTOCOLS)}")
        out = {}
        for h in self.horizons_s:
            values = [
                (s.l2_per_time_step if protocol == "per_time_step" else s.l2_running_mean)[h]
                for s in self.steps
            ]
            out[h] = float(np.mean(values)) if values else math.nan
        return out

    @property
    def collision_rate(self) -> float:
        """Share of planning steps whose plan collides with the logged agents."""
        return float(np.mean([s.collision for s in self.steps])) if self.steps else math.nan


def _json_safe(value: Any) -> Any:
    """JSON has no NaN/inf: null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _ego_state(drive: LoggedDrive, k: int) -> EgoState:
    e = drive.ego[k]

    def num(i: LoggedEgoIndex) -> float:
        v = float(e[i])
        return v if math.isfinite(v) else 0.0

    return EgoState(
        timestamp_ns=int(drive.ticks_ns[k]),
        pose=SE2(num(LoggedEgoIndex.X), num(LoggedEgoIndex.Y), num(LoggedEgoIndex.YAW)),
        velocity=(num(LoggedEgoIndex.SPEED), 0.0),
        acceleration=(num(LoggedEgoIndex.AX), 0.0),
        yaw_rate=num(LoggedEgoIndex.YAW_RATE),
        steering_angle=num(LoggedEgoIndex.STEERING_ANGLE),
    )


def _collides(
    drive: LoggedDrive, k: int, times: FloatArray, plan: FloatArray, profile: VehicleProfile
) -> bool:
    """Whether the planned ego box meets a logged agent at a tick ``k + i`` with ``i * dt`` in
    ``(0, times[-1]]`` (plan ``(T, len(TrajIndex))`` over ``times`` ``(T,)``)."""
    n = int(round(times[-1] / drive.dt))
    for i in range(1, n + 1):
        agents = drive.agents[k + i] if k + i < len(drive.agents) else ()
        if not agents:
            continue
        t = i * drive.dt
        x = float(np.interp(t, times, plan[:, TrajIndex.X]))
        y = float(np.interp(t, times, plan[:, TrajIndex.Y]))
        yaw = float(np.interp(t, times, np.unwrap(plan[:, TrajIndex.YAW])))
        ego = np.empty(len(BoxIndex))
        ego[BoxIndex.X] = x + profile.rear_axle_to_center * math.cos(yaw)
        ego[BoxIndex.Y] = y + profile.rear_axle_to_center * math.sin(yaw)
        ego[BoxIndex.YAW] = yaw
        ego[BoxIndex.LENGTH] = profile.length
        ego[BoxIndex.WIDTH] = profile.width
        others = np.array(
            [[a.box.x, a.box.y, a.box.yaw, a.box.length, a.box.width] for a in agents]
        )
        if bool(np.any(box2d_overlap(ego[None, :], others))):
            return True
    return False


def run_open_loop(
    log: Path | str | LoggedDrive,
    out_dir: Path,
    *,
    every_s: float = 0.5,
    horizons_s: tuple[float, ...] = (1.0, 2.0, 3.0),
) -> OpenLoopResult:
    """Plan at every ``every_s`` [s] of ``log`` and score against the logged ego (module
    docstring); write ``out_dir/results.json``."""
    from kaido.simulation.replay.from_source import load_drive
    from kaido.stack.expert import PrivilegedExpert

    drive = log if isinstance(log, LoggedDrive) else load_drive(Path(log))
    if not (math.isfinite(every_s) and every_s > 0):
        raise ValueError(f"run_open_loop: every_s must be > 0 s, got {every_s}")
    if not horizons_s or any(not (math.isfinite(h) and h > 0) for h in horizons_s):
        raise ValueError(f"run_open_loop: horizons_s must be positive, got {horizons_s}")
    horizons = tuple(sorted(float(h) for h in horizons_s))
    expert = PrivilegedExpert(drive.road_map, drive.vehicle)
    expert.reset(
        drive.route if drive.route is not None else logged_route(drive.road_map, drive.route_path)
    )
    times = expert.planner.settings.planner.times
    if times[-1] < horizons[-1] - 1e-9:
        raise ValueError(
            f"run_open_loop: the planner's horizon {times[-1]} s is shorter than {horizons[-1]} s"
        )
    stride = max(int(round(every_s / drive.dt)), 1)
    reach = int(round(horizons[-1] / drive.dt))
    steps: list[OpenLoopStep] = []
    for k in range(1, len(drive.ticks_ns) - reach, stride):
        expert.track(
            GroundTruth(agents=drive.agents[k - 1], traffic_lights=drive.traffic_lights[k - 1]),
            float(drive.ticks_ns[k - 1]) * 1e-9,
        )
        truth = GroundTruth(agents=drive.agents[k], traffic_lights=drive.traffic_lights[k])
        ego = _ego_state(drive, k)
        output = expert.planner.plan(expert.planner_input(ego, truth, int(drive.ticks_ns[k])))
        plan = output.trajectory
        future_t = np.arange(1, reach + 1) * drive.dt
        logged = drive.ego[k + 1 : k + reach + 1, [LoggedEgoIndex.X, LoggedEgoIndex.Y]]
        planned = np.stack(
            [
                np.interp(future_t, times, plan[:, TrajIndex.X]),
                np.interp(future_t, times, plan[:, TrajIndex.Y]),
            ],
            axis=1,
        )
        l2_ticks = np.linalg.norm(planned - logged, axis=1)
        at: dict[float, float] = {}
        mean: dict[float, float] = {}
        for h in horizons:
            i = int(round(h / drive.dt))
            at[h] = float(l2_ticks[i - 1])
            on_grid = times[(times > 1e-9) & (times <= h + 1e-9)]
            idx = np.rint(on_grid / drive.dt).astype(np.int64) - 1
            mean[h] = float(np.mean(l2_ticks[idx]))
        steps.append(
            OpenLoopStep(
                tick=k,
                l2_per_time_step=at,
                l2_running_mean=mean,
                collision=_collides(drive, k, times, plan, drive.vehicle),
                fallback=output.fallback_reason,
            )
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = OpenLoopResult(
        steps=tuple(steps), horizons_s=horizons, results_path=out / "results.json"
    )
    document: dict[str, Any] = {
        "mode": "open",
        "source": str(drive.path),
        "source_format": drive.source_format,
        "source_notes": list(drive.notes),
        "map": drive.map_source,
        "planner": "expert (logged agents as ground truth, lane-following prediction)",
        "every_s": every_s,
        "planning_steps": len(steps),
        "averaging_protocols": AVERAGING_PROTOCOLS,
        "l2_m": {
            protocol: {f"{h:g}s": v for h, v in result.mean_l2(protocol).items()}
            for protocol in AVERAGING_PROTOCOLS
        },
        "collision_rate": result.collision_rate,
        "fallbacks": sum(s.fallback is not None for s in steps),
        "log_complete": drive.complete,
        "steps": [
            {
                "tick": s.tick,
                "l2_per_time_step": {f"{h:g}s": v for h, v in s.l2_per_time_step.items()},
                "l2_running_mean": {f"{h:g}s": v for h, v in s.l2_running_mean.items()},
                "collision": s.collision,
                "fallback": s.fallback,
            }
            for s in steps
        ],
        "provenance": provenance({"log": str(drive.path), "every_s": every_s}),
    }
    result.results_path.write_text(
        json.dumps(_json_safe(document), indent=2, allow_nan=False) + "\n"
    )
    return result
