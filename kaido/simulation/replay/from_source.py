"""Dataset replay sources (AV2, WOMD, CommonRoad) as :class:`LoggedDrive` for open/closed replay.

:func:`logged_drive_from_scenario` turns any :class:`~kaido.logs.replay_source.ReplayScenario`
that carries a road map into the :class:`~kaido.simulation.replay.backend.LoggedDrive` that
:class:`~kaido.simulation.replay.backend.ReplayBackend`, closed-loop, open-loop and reactive
replay take; :func:`load_drive` reads any source path (a kaido ``.mcap`` log or anything
:func:`~kaido.logs.replay_source.open_source` reads).

The conversion:

* ticks: the scenario's time grid (from the first to the last tick the recorded ego is valid;
  for CommonRoad from the planning problem's initial time step to the end);
* the ego: the recorded ego track's box centre moved ``rear_axle_to_center`` back along its yaw
  (the rear axle); speed (signed, along the yaw), yaw rate and acceleration by central finite
  differences on the grid; steering angle ``atan(wheelbase * curvature)`` with curvature = yaw
  rate / speed (0 below :data:`STEER_MIN_SPEED`). CommonRoad has no recorded ego: tick 0 is the
  first planning problem's initial state, the later ego columns are NaN;
* agents: every track sample on a tick as an :class:`AgentState` (box centre, yaw, size, the
  track's velocity, a class-typical height);
* no traffic lights (the readers keep none) and no controls (``logged`` agent cannot drive);
* the route: the recorded ego path re-planned on the lane graph like
  :func:`~kaido.simulation.replay.backend.logged_route` (falling back to the raw path, with a
  note, when the lane graph has no route); for CommonRoad the lane route from the initial state
  to the goal (the goal polygon's centre, or the middle of the nearest reachable goal lanelet;
  without a goal position, :data:`NO_GOAL_ROUTE_M` of lanes ahead).

Scoring helpers for closed-loop replay: :func:`goal_status` (CommonRoad goal regions) and
:func:`at_fault_collisions` (nuPlan's at-fault rule, see its docstring).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from kaido.logs.replay_source import GoalRegion, PlanningProblem, ReplayScenario, open_source
from kaido.scene.agents import AgentClass, AgentIndex, AgentState, Track
from kaido.scene.geometry import Box3D, BoxIndex, box2d_overlap
from kaido.scene.road_map import RoadMap
from kaido.scene.route_planner import RoadOption, RoutePlan, RoutePlanningError, plan_route
from kaido.scene.vehicle import DEFAULT_VEHICLE, VehicleProfile, load_vehicle_profile
from kaido.simulation.replay.backend import (
    LoggedDrive,
    LoggedEgoIndex,
    load_logged_drive,
    logged_route,
)

__all__ = [
    "AT_FAULT_RULE",
    "NO_GOAL_ROUTE_M",
    "STEER_MIN_SPEED",
    "STOPPED_SPEED",
    "TWIN_DISTANCE_M",
    "Collision",
    "GoalStatus",
    "at_fault_collisions",
    "goal_status",
    "load_drive",
    "logged_drive_from_scenario",
]

FloatArray = npt.NDArray[np.float64]

STEER_MIN_SPEED = 0.5
"""[m/s] below this speed the derived steering angle is 0 (curvature is ill-defined)."""
NO_GOAL_ROUTE_M = 400.0
"""[m] route length along the lanes ahead when a planning problem names no goal position."""
TWIN_DISTANCE_M = 1.0
"""[m] a recorded track this close to a planning problem's initial state at its initial time step
is the ego's own recording (CommonRoad cooperative scenarios keep it) and is dropped."""
STOPPED_SPEED = 0.05
"""[m/s] an ego slower than this is stopped (never at fault in a collision)."""
AT_FAULT_RULE = (
    "a collision (first tick of contact between the ego box and an agent box) is at fault "
    f"unless the ego was stopped (< {STOPPED_SPEED} m/s) or the other agent hit it from behind "
    "(the other's box centre behind the ego's rear axle along the ego heading)"
)
"""The at-fault rule as written into the results."""

_HEIGHTS = {
    AgentClass.VEHICLE: 1.6,
    AgentClass.PEDESTRIAN: 1.75,
    AgentClass.CYCLIST: 1.7,
}
"""[m] box heights by class (the sources give footprints only)."""
_DEFAULT_HEIGHT = 1.5


def _ego_twins(scenario: ReplayScenario, problem: PlanningProblem) -> set[int]:
    """Tracks that stand where the planning problem's ego starts, at its initial time step."""
    st = problem.initial_state
    t0 = scenario.timestamps_ns[problem.initial_time_step]
    out: set[int] = set()
    for track in scenario.tracks:
        hit = np.flatnonzero(track.timestamps_ns == t0)
        if len(hit) == 0:
            continue
        row = track.states[int(hit[0])]
        d = math.hypot(row[AgentIndex.X] - st[AgentIndex.X], row[AgentIndex.Y] - st[AgentIndex.Y])
        if d <= TWIN_DISTANCE_M:
            out.add(track.track_id)
    return out


def _agents_per_tick(
    tracks: Sequence[Track], grid: npt.NDArray[np.int64]
) -> tuple[tuple[AgentState, ...], ...]:
    per_tick: list[list[AgentState]] = [[] for _ in range(len(grid))]
    for track in tracks:
        height = _HEIGHTS.get(track.agent_class, _DEFAULT_HEIGHT)
        idx = np.searchsorted(grid, track.timestamps_ns)
        for i, k in enumerate(idx):
            if k >= len(grid) or grid[k] != track.timestamps_ns[i]:
                continue
            st = track.states[i]
            per_tick[int(k)].append(
                AgentState(
                    track_id=track.track_id,
                    agent_class=track.agent_class,
                    box=Box3D(
                        x=float(st[AgentIndex.X]),
                        y=float(st[AgentIndex.Y]),
                        z=0.5 * height,
                        yaw=float(st[AgentIndex.YAW]),
                        length=max(float(st[AgentIndex.LENGTH]), 0.1),
                        width=max(float(st[AgentIndex.WIDTH]), 0.1),
                        height=height,
                    ),
                    velocity=(float(st[AgentIndex.VX]), float(st[AgentIndex.VY])),
                    timestamp_ns=int(grid[k]),
                )
            )
    return tuple(tuple(a) for a in per_tick)


def _ego_from_track(scenario: ReplayScenario, vehicle: VehicleProfile) -> tuple[slice, FloatArray]:
    """The grid span the ego is recorded in and its rows ``(K, len(LoggedEgoIndex))``."""
    assert scenario.ego_track is not None
    grid = scenario.timestamps_ns
    ego = scenario.ego_track
    centre = np.full((len(grid), len(AgentIndex)), np.nan)
    idx = np.searchsorted(grid, ego.timestamps_ns)
    on = (idx < len(grid)) & (grid[np.minimum(idx, len(grid) - 1)] == ego.timestamps_ns)
    centre[idx[on]] = ego.states[on]
    valid = np.flatnonzero(np.isfinite(centre[:, AgentIndex.X]))
    if len(valid) == 0:
        raise ValueError(f"{scenario.path}: the recorded ego has no sample on the time grid")
    span = slice(int(valid[0]), int(valid[-1]) + 1)
    c = centre[span]
    t = grid[span].astype(np.float64) * 1e-9
    yaw = c[:, AgentIndex.YAW]
    back = vehicle.rear_axle_to_center
    x = c[:, AgentIndex.X] - back * np.cos(yaw)
    y = c[:, AgentIndex.Y] - back * np.sin(yaw)
    rows = np.full((len(c), len(LoggedEgoIndex)), np.nan)
    rows[:, LoggedEgoIndex.X] = x
    rows[:, LoggedEgoIndex.Y] = y
    rows[:, LoggedEgoIndex.YAW] = yaw
    if len(c) >= 2:
        vx = np.gradient(x, t)
        vy = np.gradient(y, t)
        speed = vx * np.cos(yaw) + vy * np.sin(yaw)
        yaw_rate = np.gradient(np.unwrap(yaw), t)
        rows[:, LoggedEgoIndex.SPEED] = speed
        rows[:, LoggedEgoIndex.YAW_RATE] = yaw_rate
        rows[:, LoggedEgoIndex.AX] = np.gradient(speed, t)
        moving = np.abs(speed) >= STEER_MIN_SPEED
        curvature = np.where(moving, yaw_rate / np.where(moving, speed, 1.0), 0.0)
        steer = np.arctan(vehicle.wheelbase * curvature)
        rows[:, LoggedEgoIndex.STEERING_ANGLE] = np.clip(
            steer, -vehicle.max_steer, vehicle.max_steer
        )
    else:
        # one sample: the speed is the recorded velocity along the yaw, nothing else is known
        rows[0, LoggedEgoIndex.SPEED] = c[0, AgentIndex.VX] * np.cos(yaw[0]) + c[
            0, AgentIndex.VY
        ] * np.sin(yaw[0])
        rows[0, [LoggedEgoIndex.YAW_RATE, LoggedEgoIndex.AX, LoggedEgoIndex.STEERING_ANGLE]] = 0.0
    return span, rows


def _raw_route(road_map: RoadMap, polyline: FloatArray) -> RoutePlan:
    """A route that follows ``polyline`` ``(P, 2)`` as it is (lanes: the nearest driving lane
    of each point within 50 m, else lane 0)."""
    seg = np.linalg.norm(np.diff(polyline, axis=0), axis=1)
    keep = np.concatenate([[True], seg > 1e-6])
    pts = polyline[keep]
    if len(pts) < 2:
        raise ValueError("raw route: the path has fewer than two distinct points")
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    d = np.gradient(pts, axis=0)
    yaw = np.arctan2(d[:, 1], d[:, 0])
    lanes = np.zeros(len(pts), dtype=np.int64)
    for i, (px, py) in enumerate(pts):
        near = road_map.nearest_lane(float(px), float(py), max_distance=50.0)
        lanes[i] = near.lane if near is not None else 0
    return RoutePlan(
        steps=(),
        path=np.stack([pts[:, 0], pts[:, 1], yaw], axis=1),
        s=s,
        options=np.full(len(pts), int(RoadOption.LANEFOLLOW), dtype=np.int8),
        lanes=lanes,
        speed_limits=np.array([road_map.lanes[i].speed_limit for i in lanes], dtype=np.float64),
        waypoint_s=np.array([0.0, float(s[-1])]),
    )


def _goal_lane_polygons(road_map: RoadMap, goal: GoalRegion) -> list[shapely.Polygon]:
    out = []
    for lane_id in goal.lanelet_ids:
        lane = _lane_of_source_id(road_map, lane_id)
        if lane is None:
            continue
        ring = np.concatenate([lane.left_boundary[:, :2], lane.right_boundary[::-1, :2]])
        out.append(shapely.make_valid(shapely.Polygon(ring)))
    return out


def _lane_of_source_id(road_map: RoadMap, lane_id: int) -> Any:
    for lane in road_map.lanes:
        if lane.key.road_id == int(lane_id):
            return lane
    return None


def _lanes_ahead(road_map: RoadMap, x: float, y: float, yaw: float, length: float) -> FloatArray:
    """Waypoints ``(N, 2)`` following the lanes ahead of ``(x, y)`` for about ``length`` [m]
    (first successor at each lane end)."""
    near = road_map.nearest_lane(x, y, max_distance=10.0, heading=yaw)
    if near is None:
        raise RoutePlanningError(
            f"no driving lane within 10 m of ({x:.1f}, {y:.1f}) heading {math.degrees(yaw):.0f} deg"
        )
    lane = road_map.lanes[near.lane]
    s0 = near.s
    travelled = 0.0
    points = [np.array([x, y])]
    seen = {lane.index}
    while travelled < length:
        remaining = float(lane.s[-1]) - s0
        travelled += remaining
        points.append(lane.centerline[-1, :2])
        nxt = [i for i in lane.successors if i not in seen]
        if not nxt:
            break
        lane = road_map.lanes[nxt[0]]
        seen.add(lane.index)
        s0 = 0.0
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) < 2 or float(np.linalg.norm(pts[-1] - pts[0])) < 1.0:
        raise RoutePlanningError(f"no lane ahead of ({x:.1f}, {y:.1f}) on map {road_map.name!r}")
    return pts


def _route_to_goal(
    road_map: RoadMap, problem: PlanningProblem
) -> tuple[FloatArray, RoutePlan | None, list[str]]:
    """The route polyline (rear axle start → goal) and the planned route, for a CommonRoad
    planning problem; notes on what was assumed."""
    st = problem.initial_state
    x0, y0, yaw0 = float(st[AgentIndex.X]), float(st[AgentIndex.Y]), float(st[AgentIndex.YAW])
    start = np.array([x0, y0])
    notes: list[str] = []
    candidates: list[tuple[FloatArray, float | None]] = []
    goal = problem.goals[0]
    for g in problem.goals:
        for poly in g.polygons:
            c = shapely.Polygon(poly).centroid
            yaw = None if g.orientation is None else 0.5 * (g.orientation[0] + g.orientation[1])
            candidates.append((np.array([c.x, c.y]), yaw))
        for lane_id in g.lanelet_ids:
            lane = _lane_of_source_id(road_map, lane_id)
            if lane is not None:
                mid = len(lane.centerline) // 2
                candidates.append((lane.centerline[mid, :2], float(lane.headings[mid])))
    best: RoutePlan | None = None
    best_line: FloatArray | None = None
    for point, yaw in candidates:
        wps = np.stack([start, point])
        yaws = None if yaw is None else np.array([yaw0, yaw])
        try:
            plan = plan_route(road_map, wps, yaws=yaws)
        except RoutePlanningError:
            if yaws is None:
                continue
            try:  # the goal heading may disagree with the lane's: snap without it
                plan = plan_route(road_map, wps, yaws=None)
            except RoutePlanningError:
                continue
        if best is None or plan.length < best.length:
            best, best_line = plan, wps
    if best is not None and best_line is not None:
        return best_line, best, notes
    if candidates:
        notes.append(
            f"planning problem {problem.problem_id}: no lane route to the goal; following the "
            f"lanes ahead for {NO_GOAL_ROUTE_M:.0f} m"
        )
    elif goal.polygons == () and goal.lanelet_ids == ():
        notes.append(
            f"planning problem {problem.problem_id}: the goal has no position; the route follows "
            f"the lanes ahead for {NO_GOAL_ROUTE_M:.0f} m"
        )
    line = _lanes_ahead(road_map, x0, y0, yaw0, NO_GOAL_ROUTE_M)
    try:
        return line, plan_route(road_map, line, yaws=None), notes
    except RoutePlanningError:
        notes.append("the lanes ahead have no lane route; the route is their raw polyline")
        return line, _raw_route(road_map, line), notes


def logged_drive_from_scenario(
    scenario: ReplayScenario, vehicle: VehicleProfile | None = None, *, problem_index: int = 0
) -> LoggedDrive:
    """``scenario`` (any source with a road map) as a :class:`LoggedDrive` (module docstring).

    ``vehicle``: the ego's profile (default: kaido's sedan). ``problem_index``: which planning
    problem drives the ego when the scenario has no recorded ego (CommonRoad). ``ValueError``
    naming the source when it has no road map, or neither a recorded ego nor a planning problem.
    """
    if not isinstance(scenario, ReplayScenario):
        raise TypeError(f"logged_drive_from_scenario: expected ReplayScenario, got {scenario!r}")
    if scenario.road_map is None:
        raise ValueError(
            f"{scenario.path}: the {scenario.source_format} source has no road map; open/closed "
            "replay needs one"
        )
    road_map = scenario.road_map
    profile = vehicle if vehicle is not None else load_vehicle_profile(DEFAULT_VEHICLE)
    grid = scenario.timestamps_ns
    notes = list(scenario.notes)
    notes.append("no traffic lights: the source keeps none")
    problem: PlanningProblem | None = None
    route: RoutePlan | None
    if scenario.ego_track is not None:
        span, ego = _ego_from_track(scenario, profile)
        finite = np.all(np.isfinite(ego[:, [LoggedEgoIndex.X, LoggedEgoIndex.Y]]), axis=1)
        line = ego[finite][:, [LoggedEgoIndex.X, LoggedEgoIndex.Y]]
        if len(line) >= 2 and float(np.linalg.norm(line[-1] - line[0])) < 1.0:
            line = np.empty((0, 2))  # the ego stood still: route along the lanes ahead
        if len(line) >= 2:
            try:
                route = logged_route(road_map, line)
            except RoutePlanningError as err:
                notes.append(
                    f"the lane graph has no route along the logged ego path ({err}); "
                    "the route is the raw logged path"
                )
                route = _raw_route(road_map, line)
        else:
            x, y, yaw = (
                float(ego[0, i]) for i in (LoggedEgoIndex.X, LoggedEgoIndex.Y, LoggedEgoIndex.YAW)
            )
            line = _lanes_ahead(road_map, x, y, yaw, NO_GOAL_ROUTE_M)
            notes.append(
                f"the logged ego barely moves; the route follows the lanes ahead for "
                f"{NO_GOAL_ROUTE_M:.0f} m"
            )
            route = plan_route(road_map, line)
        first = span.start
    elif scenario.planning_problems:
        if not 0 <= problem_index < len(scenario.planning_problems):
            raise ValueError(
                f"{scenario.path}: problem_index {problem_index} out of range (the scenario has "
                f"{len(scenario.planning_problems)} planning problems)"
            )
        problem = scenario.planning_problems[problem_index]
        first = int(problem.initial_time_step)
        if not 0 <= first < len(grid):
            raise ValueError(
                f"{scenario.path}: planning problem {problem.problem_id} starts at time step "
                f"{first}, outside the scenario's {len(grid)} steps"
            )
        span = slice(first, len(grid))
        st = problem.initial_state
        yaw = float(st[AgentIndex.YAW])
        ego = np.full((len(grid) - first, len(LoggedEgoIndex)), np.nan)
        back = profile.rear_axle_to_center
        ego[0, LoggedEgoIndex.X] = float(st[AgentIndex.X]) - back * math.cos(yaw)
        ego[0, LoggedEgoIndex.Y] = float(st[AgentIndex.Y]) - back * math.sin(yaw)
        ego[0, LoggedEgoIndex.YAW] = yaw
        ego[0, LoggedEgoIndex.SPEED] = float(
            st[AgentIndex.VX] * math.cos(yaw) + st[AgentIndex.VY] * math.sin(yaw)
        )
        ego[0, [LoggedEgoIndex.AX, LoggedEgoIndex.YAW_RATE, LoggedEgoIndex.STEERING_ANGLE]] = 0.0
        line, route, route_notes = _route_to_goal(road_map, problem)
        notes.extend(route_notes)
        notes.append(
            f"no recorded ego: the ego starts at planning problem {problem.problem_id}'s initial "
            "state; logged ego columns after tick 0 are NaN"
        )
    else:
        raise ValueError(
            f"{scenario.path}: the {scenario.source_format} source has neither a recorded ego "
            "nor a planning problem; replay needs one of them"
        )
    ticks = grid[span]
    tracks = scenario.tracks
    if problem is not None:
        twins = _ego_twins(scenario, problem)
        if twins:
            tracks = tuple(tr for tr in tracks if tr.track_id not in twins)
            notes.append(
                f"dropped track(s) {sorted(twins)}: at the planning problem's initial time step "
                f"they stand where the ego starts (within {TWIN_DISTANCE_M} m), the ego's own "
                "recording"
            )
    if len(ticks) < 2:
        raise ValueError(
            f"{scenario.path}: {len(ticks)} ticks with an ego; replay needs at least 2"
        )
    agents = _agents_per_tick(tracks, grid)[span]
    return LoggedDrive(
        path=scenario.path,
        metadata={"source_format": scenario.source_format, "scenario": scenario.name},
        road_map=road_map,
        map_source=f"{scenario.source_format}:{scenario.path}",
        route_path=np.asarray(line, dtype=np.float64),
        ticks_ns=np.ascontiguousarray(ticks),
        dt=float(np.median(np.diff(ticks))) * 1e-9,
        ego=ego,
        controls=(None,) * len(ticks),
        agents=agents,
        traffic_lights=((),) * len(ticks),
        vehicle=profile,
        complete=True,
        read_error=None,
        route=route,
        source_format=scenario.source_format,
        notes=tuple(notes),
        planning_problem=problem,
        first_time_step=first,
    )


def load_drive(
    source: Path | str, vehicle: VehicleProfile | None = None, *, problem_index: int = 0
) -> LoggedDrive:
    """Any replay source as a :class:`LoggedDrive`: a kaido ``.mcap`` log through
    :func:`~kaido.simulation.replay.backend.load_logged_drive`, anything else through
    :func:`~kaido.logs.replay_source.open_source` and :func:`logged_drive_from_scenario`."""
    p = Path(source)
    if p.suffix.lower() == ".mcap":
        return load_logged_drive(p, vehicle)
    scenario = open_source(p)
    if scenario.source_format == "kaido-mcap":
        return load_logged_drive(p, vehicle)
    return logged_drive_from_scenario(scenario, vehicle, problem_index=problem_index)


@dataclass(frozen=True)
class GoalStatus:
    """Whether the simulated ego reached a planning problem's goal."""

    problem_id: int
    reached: bool
    """The ego's box centre was in a goal position with speed and heading in the goal's
    intervals at some tick."""
    time_step: int | None
    """The scenario time step it first was (the first in time, when it was in time), or None."""
    in_time: bool
    """It was so at a time step within the goal's ``time_steps`` (CommonRoad's criterion)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "reached": self.reached,
            "time_step": self.time_step,
            "in_time": self.in_time,
            "problem_id": self.problem_id,
        }


def _in_interval(angle: float, lo: float, hi: float) -> bool:
    width = (hi - lo) % (2 * math.pi) if hi - lo < 2 * math.pi else 2 * math.pi
    return float((angle - lo) % (2 * math.pi)) <= width + 1e-9


def goal_status(
    problem: PlanningProblem,
    road_map: RoadMap,
    ego_states: FloatArray,
    first_time_step: int,
    rear_axle_to_center: float,
) -> GoalStatus:
    """Score ``ego_states`` ``(K, 4)`` (rear-axle x, y [m], yaw [rad], speed [m/s] at ticks
    ``0..K-1``, tick ``k`` being time step ``first_time_step + k``) against ``problem``'s goals.

    The ego position is its box centre, ``rear_axle_to_center`` [m] ahead of the rear axle. A
    goal position is any of the goal's polygons or lanelets (anywhere when it names none).
    """
    states = np.asarray(ego_states, dtype=np.float64)
    first_any: int | None = None
    first_in_time: int | None = None
    for goal in problem.goals:
        areas = [shapely.make_valid(shapely.Polygon(p)) for p in goal.polygons]
        areas += _goal_lane_polygons(road_map, goal)
        area = shapely.union_all(areas) if areas else None
        for k, (x, y, yaw, speed) in enumerate(states):
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            cx = x + rear_axle_to_center * math.cos(yaw)
            cy = y + rear_axle_to_center * math.sin(yaw)
            if area is not None and not shapely.contains_xy(area, cx, cy):
                continue
            if goal.velocity is not None and not (
                goal.velocity[0] - 1e-9 <= speed <= goal.velocity[1] + 1e-9
            ):
                continue
            if goal.orientation is not None and not _in_interval(yaw, *goal.orientation):
                continue
            step = first_time_step + k
            if first_any is None or step < first_any:
                first_any = step
            if goal.time_steps[0] <= step <= goal.time_steps[1]:
                if first_in_time is None or step < first_in_time:
                    first_in_time = step
                break
    return GoalStatus(
        problem_id=problem.problem_id,
        reached=first_any is not None,
        time_step=first_in_time if first_in_time is not None else first_any,
        in_time=first_in_time is not None,
    )


@dataclass(frozen=True)
class Collision:
    """The first tick of contact between the ego and one agent."""

    tick: int
    track_id: int
    agent_class: str
    ego_speed: float
    """[m/s] the simulated ego's speed then."""
    at_fault: bool
    reason: str
    """Why it is (not) at fault."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "tick": self.tick,
            "track_id": self.track_id,
            "agent_class": self.agent_class,
            "ego_speed": self.ego_speed,
            "at_fault": self.at_fault,
            "reason": self.reason,
        }


def at_fault_collisions(
    ego_states: FloatArray,
    agents: Sequence[Sequence[AgentState]],
    vehicle: VehicleProfile,
) -> list[Collision]:
    """Every collision of the ego with an agent and whether the ego is at fault
    (:data:`AT_FAULT_RULE`, nuPlan's simplification).

    ``ego_states`` ``(K, 4)`` rear-axle x, y [m], yaw [rad], speed [m/s]; ``agents`` the ``K``
    ticks' agents shown to the ego. A contact that lasts several ticks is one collision, scored
    at its first tick.
    """
    states = np.asarray(ego_states, dtype=np.float64)
    out: list[Collision] = []
    touching: set[int] = set()
    back = vehicle.rear_axle_to_center
    for k, (x, y, yaw, speed) in enumerate(states):
        shown = agents[k] if k < len(agents) else ()
        if not shown:
            touching = set()
            continue
        c, s = math.cos(yaw), math.sin(yaw)
        ego = np.empty(len(BoxIndex))
        ego[BoxIndex.X] = x + back * c
        ego[BoxIndex.Y] = y + back * s
        ego[BoxIndex.YAW] = yaw
        ego[BoxIndex.LENGTH] = vehicle.length
        ego[BoxIndex.WIDTH] = vehicle.width
        others = np.array([[a.box.x, a.box.y, a.box.yaw, a.box.length, a.box.width] for a in shown])
        hit = np.asarray(box2d_overlap(ego[None, :], others)).reshape(-1)
        now: set[int] = set()
        for a, is_hit in zip(shown, hit, strict=True):
            if not is_hit:
                continue
            now.add(a.track_id)
            if a.track_id in touching:
                continue
            along = (a.box.x - x) * c + (a.box.y - y) * s
            if abs(speed) < STOPPED_SPEED:
                fault, reason = False, "ego stopped"
            elif along < 0.0:
                fault, reason = False, "hit from behind"
            else:
                fault, reason = True, "ego moving, other ahead of the rear axle"
            out.append(
                Collision(
                    tick=k,
                    track_id=a.track_id,
                    agent_class=a.agent_class.name.lower(),
                    ego_speed=float(speed),
                    at_fault=fault,
                    reason=reason,
                )
            )
        touching = now
    return out
