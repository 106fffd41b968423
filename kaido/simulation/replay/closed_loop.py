"""Closed-loop replay of a recorded drive (nuPlan CLS-NR style).

:func:`run_closed_loop` drives an agent through a logged episode with
:class:`~kaido.simulation.replay.backend.ReplayBackend` (logged traffic, bicycle-model ego) and the
episode runner (:func:`~kaido.simulation.runner.run_episode`), so it is scored by the same
:class:`~kaido.simulation.metrics.RouteEvaluator` as a drive (collisions, leaving the route's
lanes, comfort, TTC) and writes the same ``results.json``, ``run.mcap`` and ``bev.mp4``.
``results.json`` gains a ``replay`` section: progress along the route against the logged ego's
(``progress_ratio_vs_logged`` is null without a logged ego track, as in CommonRoad), how far the
simulated ego strayed from the logged one, the source's format and conversion notes, every
collision with nuPlan's at-fault verdict (``collisions``, ``at_fault_collisions``;
:data:`~kaido.simulation.replay.from_source.AT_FAULT_RULE`), and for a CommonRoad planning
problem ``goal = {reached, time_step, in_time, problem_id}``
(:func:`~kaido.simulation.replay.from_source.goal_status`). The source may be a kaido ``.mcap``
log or any dataset source with a road map (:func:`~kaido.simulation.replay.from_source.load_drive`).
A CommonRoad episode's route ends at the goal, so reaching the route's end ends the episode.

Agents: any registered agent name (``expert``, ``baseline``, ...) or ``logged``, which sends the
logged controls (:class:`~kaido.simulation.replay.backend.LoggedControlAgent`) and so reproduces
an embedded run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kaido.scene.vehicle import VehicleProfile
from kaido.simulation.agents import DrivingAgent, make_agent
from kaido.simulation.embedded.backend import RouteProgress
from kaido.simulation.replay.backend import (
    LoggedControlAgent,
    LoggedDrive,
    LoggedEgoIndex,
    ReplayBackend,
    replay_scenario,
)
from kaido.simulation.replay.from_source import (
    AT_FAULT_RULE,
    at_fault_collisions,
    goal_status,
    load_drive,
)
from kaido.simulation.runner import EpisodeOptions, EpisodeResult, run_episode

__all__ = ["LOGGED_AGENT", "ClosedLoopResult", "run_closed_loop"]

LOGGED_AGENT = "logged"
"""Agent name that replays the logged controls."""


@dataclass(frozen=True)
class ClosedLoopResult:
    """One closed-loop replay and how it compares with the log."""

    episode: EpisodeResult
    logged_progress_m: float
    """[m] route arc length the logged ego covered over the replayed ticks."""
    replayed_progress_m: float
    """[m] route arc length the simulated ego covered."""
    max_deviation_m: float
    """[m] largest distance between the simulated and logged rear axle at the same tick."""
    final_deviation_m: float
    """[m] that distance at the last replayed tick."""

    @property
    def progress_ratio(self) -> float:
        """Simulated over logged route progress (nuPlan's ego progress along the expert route,
        not clipped); 1 when the logged ego did not move."""
        if self.logged_progress_m < 1e-6:
            return 1.0
        return self.replayed_progress_m / self.logged_progress_m


def _progress(route_progress: RouteProgress, xy: np.ndarray) -> float:
    start = route_progress.update(float(xy[0, 0]), float(xy[0, 1]))
    end = start
    for x, y in xy[1:]:
        end = route_progress.update(float(x), float(y))
    return end - start


def run_closed_loop(
    log: Path | str | LoggedDrive,
    out_dir: Path,
    *,
    agent: str | DrivingAgent = "expert",
    agent_options: Mapping[str, Any] | None = None,
    vehicle: VehicleProfile | None = None,
    record_mcap: bool = True,
    record_video: bool = True,
    progress: bool = False,
    reactive: bool = False,
) -> ClosedLoopResult:
    """Replay ``log`` closed loop with ``agent`` and write the drive's outputs to ``out_dir``.

    ``agent``: a registered agent name, :data:`LOGGED_AGENT`, or a ready agent instance.
    ``vehicle`` overrides the profile the log names (only when ``log`` is a path). ``reactive``:
    the agents switch to IDM along their logged paths once the ego deviates
    (:mod:`kaido.simulation.replay.reactive`); else they are replayed as logged.
    """
    drive = log if isinstance(log, LoggedDrive) else load_drive(Path(log), vehicle)
    driver: DrivingAgent
    if isinstance(agent, DrivingAgent):
        driver = agent
    elif agent == LOGGED_AGENT:
        if all(c is None for c in drive.controls):
            raise ValueError(
                f"{drive.path}: the {drive.source_format} source logs no controls; agent "
                f"{LOGGED_AGENT!r} cannot drive it"
            )
        driver = LoggedControlAgent(drive)
    else:
        driver = make_agent(agent, **dict(agent_options or {}))
    agent_name = agent if isinstance(agent, str) else type(agent).__name__
    scenario = replay_scenario(drive)
    out = Path(out_dir)
    backend = ReplayBackend(drive, reactive=reactive)
    try:
        episode = run_episode(
            backend,
            driver,
            scenario,
            EpisodeOptions(
                out_dir=out,
                record_mcap=record_mcap,
                record_video=record_video,
                # the grid of a dataset source may be slightly irregular: never step past the
                # last tick at the scenario's (median) spacing
                max_seconds=min(drive.duration_s, (len(drive.ticks_ns) - 1) * scenario.dt),
                progress=progress,
            ),
            road_map_of=lambda b: drive.road_map,
            vehicle=drive.vehicle,
            config={
                "log": str(drive.path),
                "agent": agent_name,
                "mode": "closed",
                "reactive": reactive,
            },
        )
        assert backend.route is not None
        trace = np.asarray(backend.trace, dtype=np.float64)
        ego_trace = np.asarray(backend.ego_trace, dtype=np.float64).reshape(-1, 4)
        shown_agents = list(backend.shown_agents)
        route = backend.route
        switched_at = backend.reactive.switched_at if backend.reactive is not None else None
    finally:
        backend.close()
    n = min(len(trace), len(drive.ego))
    logged_xy = drive.ego[:n, [LoggedEgoIndex.X, LoggedEgoIndex.Y]]
    valid = np.all(np.isfinite(logged_xy), axis=1)
    logged = logged_xy[valid]
    deviation = np.hypot(*(trace[:n][valid] - logged).T)
    result = ClosedLoopResult(
        episode=episode,
        logged_progress_m=_progress(RouteProgress(route), logged) if len(logged) else 0.0,
        replayed_progress_m=_progress(RouteProgress(route), trace),
        max_deviation_m=float(deviation.max()) if deviation.size else 0.0,
        final_deviation_m=float(deviation[-1]) if deviation.size else 0.0,
    )
    collisions = at_fault_collisions(ego_trace, shown_agents, drive.vehicle)
    recorded = np.count_nonzero(valid) >= 2
    # whether the source recorded the ego beyond its start (a CommonRoad problem does not)
    document = json.loads(episode.results_path.read_text())
    document["replay"] = {
        "mode": "closed",
        "reactive": reactive,
        "reactive_switch_tick": switched_at,
        "source": str(drive.path),
        "source_format": drive.source_format,
        "source_notes": list(drive.notes),
        "map": drive.map_source,
        "agent": agent_name,
        "log_complete": drive.complete,
        "log_error": drive.read_error,
        "ticks_replayed": int(len(trace)),
        "logged_progress_m": result.logged_progress_m,
        "replayed_progress_m": result.replayed_progress_m,
        "progress_ratio_vs_logged": result.progress_ratio if recorded else None,
        "max_deviation_from_log_m": result.max_deviation_m if recorded else None,
        "final_deviation_from_log_m": result.final_deviation_m if recorded else None,
        "logged_ego_ticks": int(np.count_nonzero(valid)),
        "at_fault_rule": AT_FAULT_RULE,
        "collisions": [c.to_dict() for c in collisions],
        "at_fault_collisions": sum(c.at_fault for c in collisions),
    }
    if drive.planning_problem is not None:
        document["replay"]["goal"] = goal_status(
            drive.planning_problem,
            drive.road_map,
            ego_trace,
            drive.first_time_step,
            drive.vehicle.rear_axle_to_center,
        ).to_dict()
    episode.results_path.write_text(json.dumps(document, indent=2) + "\n")
    return result
