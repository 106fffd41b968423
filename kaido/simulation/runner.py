"""The episode runner: one loop for every backend (embedded, CARLA, replay).

``run_episode`` resets the backend on a scenario, sets the agent up on the episode's route,
steps agent → control → backend until the route is completed, failed or timed out, scores it
with :class:`~kaido.simulation.metrics.RouteEvaluator`, records the MCAP log and the BEV video,
and writes ``results.json`` in the leaderboard's shape with provenance.
"""

from __future__ import annotations

import json
import math
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from kaido.provenance import provenance, to_jsonable
from kaido.scene.agents import Control
from kaido.scene.road_map import RoadMap
from kaido.scene.vehicle import VehicleProfile
from kaido.simulation.agents import DrivingAgent
from kaido.simulation.backend import Backend, Observation, Scenario
from kaido.simulation.metrics import RouteEvaluator, RouteResult, RouteStatus, results_document

SECONDS_PER_METER = 0.8
"""[s/m] route time budget per metre of route (1.25 m/s on average: room for red lights)."""
INITIAL_SECONDS = 60.0
"""[s] fixed part of the route time budget."""


def route_timeout(route_length: float) -> float:
    """[s] the time an agent gets for a route of ``route_length`` [m]."""
    return INITIAL_SECONDS + SECONDS_PER_METER * route_length


@dataclass(frozen=True)
class EpisodeOptions:
    """What an episode writes and shows."""

    out_dir: Path
    record_mcap: bool = True
    record_video: bool = True
    max_seconds: float | None = None
    """[s] stop after this much simulated time (the route is then scored as it stands)."""
    progress: bool = True
    video_fps: float = 10.0


@dataclass(frozen=True)
class EpisodeResult:
    """The outcome of one episode and where its files are."""

    result: RouteResult
    results_path: Path
    mcap_path: Path | None
    video_path: Path | None
    sim_seconds: float
    wall_seconds: float
    steps: int
    control_warnings: int
    events: tuple[tuple[float, str, str], ...]

    @property
    def realtime_factor(self) -> float:
        return self.sim_seconds / max(self.wall_seconds, 1e-9)


class _Progress:
    """A one-line progress bar on a terminal (plain lines otherwise)."""

    def __init__(self, total_s: float, stream: TextIO = sys.stderr, enabled: bool = True) -> None:
        self.total = max(total_s, 1e-9)
        self.stream = stream
        self.enabled = enabled
        self.tty = stream.isatty()
        self.last = -1.0

    def update(self, t: float, text: str) -> None:
        if not self.enabled:
            return
        frac = min(t / self.total, 1.0)
        if self.tty:
            bar = "#" * int(30 * frac)
            self.stream.write(f"\r[{bar:<30}] {100 * frac:5.1f}% {text}")
            self.stream.flush()
        elif frac - self.last >= 0.1 or (frac >= 1.0 and self.last < 1.0):
            self.last = frac
            self.stream.write(f"[{100 * frac:5.1f}%] {text}\n")

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")


def run_episode(
    backend: Backend,
    agent: DrivingAgent,
    scenario: Scenario,
    options: EpisodeOptions,
    *,
    road_map_of: Callable[[Backend], RoadMap],
    vehicle: VehicleProfile,
    config: Any = None,
) -> EpisodeResult:
    """Drive one scenario to its end and write ``results.json``, ``run.mcap`` and ``bev.mp4``.

    ``road_map_of`` returns the map the backend loaded for the episode; ``config`` is recorded
    as the resolved configuration in the results' provenance.
    """
    out = Path(options.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wall0 = time.perf_counter()
    obs = backend.reset(scenario)
    road_map = road_map_of(backend)
    route = obs.route
    agent.setup(road_map=road_map, route=route, profile=vehicle, dt=scenario.dt)
    evaluator = RouteEvaluator(
        route,
        road_map,
        route_id=scenario.route_id or scenario.name,
        ego_length=vehicle.length,
        ego_width=vehicle.width,
    )
    timeout = scenario.timeout_s or route_timeout(route.length)
    limit = timeout if options.max_seconds is None else min(timeout, options.max_seconds)
    recorder = video = None
    mcap_path = out / "run.mcap" if options.record_mcap else None
    video_path = out / "bev.mp4" if options.record_video else None
    run_provenance = provenance(config)
    if mcap_path is not None:
        from kaido.logs.mcap_log import EpisodeRecorder

        recorder = EpisodeRecorder(
            mcap_path,
            rig=obs.frame.rig,
            metadata={
                "scenario": scenario.name,
                "seed": str(scenario.seed),
                "git_commit": str(run_provenance["git"]["commit"]),
                "provenance": json.dumps(run_provenance),
            },
        )
    if video_path is not None:
        from kaido.simulation.video import BevVideoWriter

        video = BevVideoWriter(video_path, road_map, fps=options.video_fps)
    video_every = max(int(round(1.0 / (options.video_fps * scenario.dt))), 1)
    trail: deque[tuple[float, float]] = deque(maxlen=400)
    progress = _Progress(limit, enabled=options.progress)
    status = evaluator.update(
        obs.sim_time_s, obs.ego, obs.ego_box, obs.ground_truth, obs.static_obstacles
    )
    crashed: str | None = None
    logged_events = 0
    logged_agent_events = 0
    last_camera: np.ndarray | None = None
    try:
        while status is RouteStatus.RUNNING and obs.sim_time_s < limit - 1e-9:
            try:
                control = agent.run_step(obs)
            except Exception as err:  # an agent failure ends the route as a failure
                crashed = f"agent error: {type(err).__name__}: {err}"
                traceback.print_exc(file=sys.stderr)
                break
            plan = agent.plan()
            ts = obs.frame.timestamp_ns
            if recorder is not None:
                recorder.write_tick(
                    timestamp_ns=ts,
                    frame=obs.frame,
                    ego_box=obs.ego_box,
                    route_path=route.path if obs.step == 0 else None,
                    control=control,
                    plan=plan,
                    extra=agent.metrics(),
                )
            trail.append((obs.ego.pose.x, obs.ego.pose.y))
            if obs.frame.images:
                last_camera = next(iter(obs.frame.images.values())).rgb
            if video is not None and obs.step % video_every == 0:
                gt = obs.ground_truth
                video.write(
                    ego_pose=obs.ego.pose,
                    ego_box=obs.ego_box,
                    agents=gt.agents,
                    traffic_lights=gt.traffic_lights,
                    route_path=route.path,
                    trajectory=np.array(trail),
                    plan=plan,
                    camera_rgb=last_camera,
                    text=(
                        f"t {obs.sim_time_s:6.1f} s  v {obs.ego.speed * 3.6:5.1f} km/h",
                        f"progress {evaluator.route_completion:5.1f}%  "
                        f"infractions {len(evaluator.infractions)}",
                    ),
                )
            obs = backend.step(control)
            status = evaluator.update(
                obs.sim_time_s, obs.ego, obs.ego_box, obs.ground_truth, obs.static_obstacles
            )
            events = getattr(backend, "event_log", [])
            agent_events = getattr(agent, "event_log", [])
            if recorder is not None:
                for t_event, kind, message in (
                    *events[logged_events:],
                    *agent_events[logged_agent_events:],
                ):
                    recorder.write_event(int(round(t_event * 1e9)), kind, message)
            logged_events = len(events)
            logged_agent_events = len(agent_events)
            progress.update(
                obs.sim_time_s,
                f"t={obs.sim_time_s:6.1f}s RC={evaluator.route_completion:5.1f}% "
                f"v={obs.ego.speed * 3.6:4.0f} km/h",
            )
    finally:
        progress.close()
        agent.destroy()
        timed_out = (
            status is RouteStatus.RUNNING and crashed is None and obs.sim_time_s >= timeout - 1e-9
        )
        result = evaluator.finish(timed_out=timed_out, crashed=crashed)
        if recorder is not None:
            for infraction in result.infractions:
                recorder.write_event(
                    int(round(infraction.time_s * 1e9)),
                    infraction.kind.name.lower(),
                    infraction.message,
                )
            recorder.close()
        if video is not None:
            video.close()
    wall = time.perf_counter() - wall0
    document = results_document(
        [result],
        provenance=run_provenance,
        config={"scenario": to_jsonable(scenario), "config": to_jsonable(config)},
    )
    document["kaido"]["episode"] = {
        "sim_seconds": obs.sim_time_s,
        "wall_seconds": wall,
        "realtime_factor": obs.sim_time_s / max(wall, 1e-9),
        "steps": obs.step,
        "control_warnings": backend.control_warnings,
        "events": [list(e) for e in _episode_events(backend, agent)],
        "files": {
            "mcap": str(mcap_path) if mcap_path else None,
            "video": str(video_path) if video_path else None,
            "video_codec": video.codec if video is not None else None,
        },
    }
    results_path = out / "results.json"
    results_path.write_text(json.dumps(_finite(document), indent=2) + "\n")
    return EpisodeResult(
        result=result,
        results_path=results_path,
        mcap_path=mcap_path,
        video_path=video_path,
        sim_seconds=obs.sim_time_s,
        wall_seconds=wall,
        steps=obs.step,
        control_warnings=backend.control_warnings,
        events=_episode_events(backend, agent),
    )


def _episode_events(backend: Backend, agent: Any) -> tuple[tuple[float, str, str], ...]:
    """The simulator's events and the agent's own (e.g. a runtime's mode changes), by time."""
    merged = [*getattr(backend, "event_log", []), *getattr(agent, "event_log", [])]
    return tuple(sorted(merged, key=lambda e: e[0]))


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: write null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


__all__ = ["Control", "EpisodeOptions", "EpisodeResult", "Observation", "run_episode"]
