"""A* route planning over a ``RoadMap``'s lane graph, like CARLA's ``GlobalRoutePlanner``.

A route goes through a sequence of waypoints (a leaderboard route, or a start and a goal). Each
waypoint is snapped to the driving lanes within ``snap_distance`` (and within 90° of its yaw when
one is given); each leg is an A* search whose states are (lane, arc length at which the lane is
entered), whose moves are "follow the lane to a successor" (cost: the distance driven) and "change
to the left/right neighbour going the same way" where the map allows it (cost: the distance driven
during the change plus ``lane_change_cost``), and whose heuristic is the straight-line distance to
the goal (admissible and consistent). The result is the lane sequence with CARLA's road options
and a dense reference path resampled every ``spacing`` metres, as the leaderboard interpolates a
route with ``GlobalRoutePlanner.trace_route``.
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from kaido.scene.geometry import PoseIndex, wrap_angle

if TYPE_CHECKING:
    from kaido.scene.road_map import Lane, LaneProjection, RoadMap
    from kaido.scene.routes import RouteSpec

FloatArray = npt.NDArray[np.float64]

SNAP_PENALTY = 10.0
"""Cost per metre between a waypoint and the lane it is snapped to: the nearest lane wins."""
SNAP_TIE_DISTANCE = 1.0
"""[m] lanes this much farther than the nearest one are still snap candidates for a waypoint."""


class RoadOption(IntEnum):
    """CARLA's ``RoadOption`` values (``agents.navigation.local_planner``)."""

    VOID = -1
    LEFT = 1
    RIGHT = 2
    STRAIGHT = 3
    LANEFOLLOW = 4
    CHANGELANELEFT = 5
    CHANGELANERIGHT = 6


@dataclass(frozen=True)
class RouteStep:
    """A stretch of one lane on the route: arc lengths ``s_start``..``s_end`` [m] of ``lane``.

    For a lane change, ``lane`` is the lane left and ``target_lane`` the one joined, entered at
    ``target_s`` [m].
    """

    lane: int
    s_start: float
    s_end: float
    option: RoadOption
    target_lane: int = -1
    target_s: float = 0.0


@dataclass(frozen=True, eq=False)
class RoutePlan:
    """A planned route: its lane steps and a dense reference path.

    ``path`` is ``(P, 3)`` [x, y, yaw] in kaido's frame, ``s`` ``(P,)`` [m] arc length from the
    first point, ``options`` ``(P,)`` ``RoadOption`` values, ``lanes`` ``(P,)`` lane indices and
    ``speed_limits`` ``(P,)`` [m/s].
    """

    steps: tuple[RouteStep, ...]
    path: FloatArray
    s: FloatArray
    options: npt.NDArray[np.int8]
    lanes: npt.NDArray[np.int64]
    speed_limits: FloatArray
    waypoint_s: FloatArray
    """``(N,)`` [m] arc length of each input waypoint's snapped position along the path."""

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def max_gap(self) -> float:
        """Largest distance [m] between consecutive path points."""
        if len(self.path) < 2:
            return 0.0
        return float(np.linalg.norm(np.diff(self.path[:, :2], axis=0), axis=1).max())


class RoutePlanningError(ValueError):
    """No route: the message names the waypoint(s) and the reason."""


@dataclass(frozen=True)
class RoutePlannerConfig:
    """Tuning of :func:`plan_route`."""

    spacing: float = 1.0
    """[m] spacing of the dense reference path."""
    snap_distance: float = 5.0
    """[m] farthest a waypoint may lie from a driving lane's centreline."""
    lane_change_length: float = 20.0
    """[m] distance driven while changing lanes."""
    min_lane_change_length: float = 8.0
    """[m] shortest lane change allowed near a lane's end."""
    lane_change_cost: float = 10.0
    """[m] extra cost of a lane change (>= a lane width keeps the heuristic consistent)."""
    turn_angle: float = math.radians(30.0)
    """[rad] heading change through a junction beyond which it is a LEFT/RIGHT turn."""

    def __post_init__(self) -> None:
        for name in ("spacing", "snap_distance", "lane_change_length", "min_lane_change_length"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"RoutePlannerConfig.{name} must be > 0, got {value}")
        if not (math.isfinite(self.lane_change_cost) and self.lane_change_cost >= 4.0):
            raise ValueError(
                f"RoutePlannerConfig.lane_change_cost must be >= 4 m, got {self.lane_change_cost}"
            )


def _junction_option(lane: Lane, turn_angle: float) -> RoadOption:
    turn = float(wrap_angle(lane.headings[-1] - lane.headings[0]))
    if turn > turn_angle:
        return RoadOption.LEFT
    if turn < -turn_angle:
        return RoadOption.RIGHT
    return RoadOption.STRAIGHT


def _search_leg(
    road_map: RoadMap,
    starts: list[LaneProjection],
    goals: list[LaneProjection],
    config: RoutePlannerConfig,
) -> tuple[list[RouteStep], LaneProjection]:
    """A* from any start projection to any goal projection; returns steps and the goal used."""
    lanes = road_map.lanes
    xy = [PoseIndex.X, PoseIndex.Y]
    goal_xy = np.array([lanes[gp.lane].interpolate(gp.s)[xy] for gp in goals])
    goals_by_lane: dict[int, list[LaneProjection]] = {}
    for gp in goals:
        goals_by_lane.setdefault(gp.lane, []).append(gp)

    def heuristic(lane: int, s: float) -> float:
        p = lanes[lane].interpolate(s)[[PoseIndex.X, PoseIndex.Y]]
        return float(np.min(np.linalg.norm(goal_xy - p, axis=1)))

    # Snapping far from the lane is penalised so the nearest sensible lane wins.
    counter = itertools.count()
    heap: list[tuple[float, int, float, int, float, int]] = []
    # entries: (f, tiebreak, g, lane, entry_s, kind) with kind 0 = lane state, 1 = goal reached
    parents: dict[
        tuple[int, float, int], tuple[tuple[int, float, int] | None, RouteStep | None]
    ] = {}
    best: dict[tuple[int, float, int], float] = {}
    goal_of: dict[tuple[int, float, int], LaneProjection] = {}
    for st in starts:
        g0 = SNAP_PENALTY * st.distance
        key = (st.lane, round(st.s, 3), 0)
        if g0 < best.get(key, math.inf):
            best[key] = g0
            parents[key] = (None, None)
            heapq.heappush(
                heap, (g0 + heuristic(st.lane, st.s), next(counter), g0, st.lane, st.s, 0)
            )

    def push(
        parent: tuple[int, float, int],
        step: RouteStep | None,
        g: float,
        lane: int,
        s: float,
        kind: int,
    ) -> tuple[int, float, int] | None:
        key = (lane, round(s, 3), kind)
        if g >= best.get(key, math.inf) - 1e-9:
            return None
        best[key] = g
        parents[key] = (parent, step)
        h = 0.0 if kind == 1 else heuristic(lane, s)
        heapq.heappush(heap, (g + h, next(counter), g, lane, s, kind))
        return key

    found: tuple[int, float, int] | None = None
    while heap:
        _, _, g, lane_idx, entry_s, kind = heapq.heappop(heap)
        key = (lane_idx, round(entry_s, 3), kind)
        if g > best.get(key, math.inf) + 1e-9:
            continue
        if kind == 1:
            found = key
            break
        lane = lanes[lane_idx]
        for goal in goals_by_lane.get(lane_idx, ()):
            if goal.s >= entry_s - 1e-6:
                gkey = push(
                    key,
                    RouteStep(lane_idx, entry_s, goal.s, RoadOption.LANEFOLLOW),
                    g + (goal.s - entry_s) + SNAP_PENALTY * goal.distance,
                    lane_idx,
                    goal.s,
                    1,
                )
                if gkey is not None:
                    goal_of[gkey] = goal
        option = (
            _junction_option(lane, config.turn_angle) if lane.in_junction else RoadOption.LANEFOLLOW
        )
        remaining = lane.length - entry_s
        for succ in lane.successors:
            push(
                key, RouteStep(lane_idx, entry_s, lane.length, option), g + remaining, succ, 0.0, 0
            )
        for neighbour, allowed, change in (
            (lane.left_neighbor, lane.can_change_left, RoadOption.CHANGELANELEFT),
            (lane.right_neighbor, lane.can_change_right, RoadOption.CHANGELANERIGHT),
        ):
            if neighbour < 0 or not allowed:
                continue
            d = min(config.lane_change_length, remaining)
            if d < config.min_lane_change_length:
                continue
            target = lanes[neighbour]
            target_s = min((entry_s + d) / lane.length * target.length, target.length)
            push(
                key,
                RouteStep(lane_idx, entry_s, entry_s + d, change, neighbour, target_s),
                g + d + config.lane_change_cost,
                neighbour,
                target_s,
                0,
            )
    if found is None:
        raise RoutePlanningError("no lane path")
    steps: list[RouteStep] = []
    node: tuple[int, float, int] | None = found
    while node is not None:
        parent, step = parents[node]
        if step is not None:
            steps.append(step)
        node = parent
    steps.reverse()
    return steps, goal_of[found]


def _smoothstep(u: FloatArray) -> FloatArray:
    return u * u * (3.0 - 2.0 * u)


def _step_points(road_map: RoadMap, step: RouteStep, spacing: float) -> FloatArray:
    """Raw ``(M, 3)`` [x, y, yaw] samples of one step, including both ends."""
    lane = road_map.lanes[step.lane]
    length = step.s_end - step.s_start
    n = max(int(math.ceil(length / spacing)), 1) + 1
    s = np.linspace(step.s_start, step.s_end, n)
    points = lane.interpolate(s)
    if step.target_lane < 0:
        return points
    target = road_map.lanes[step.target_lane]
    u = np.linspace(0.0, 1.0, n)
    target_start = step.target_s - length * target.length / lane.length
    t_points = target.interpolate(np.linspace(target_start, step.target_s, n))
    alpha = _smoothstep(u)[:, None]
    xy = (1.0 - alpha) * points[:, :2] + alpha * t_points[:, :2]
    yaw = np.arctan2(np.gradient(xy[:, 1]), np.gradient(xy[:, 0]))
    return np.concatenate([xy, yaw[:, None]], axis=1)


def plan_route(
    road_map: RoadMap,
    waypoints: FloatArray,
    *,
    yaws: FloatArray | None = None,
    config: RoutePlannerConfig | None = None,
) -> RoutePlan:
    """Plan a lane-level route through ``waypoints`` ``(N, 2|3)`` [m] (N >= 2), kaido frame.

    ``yaws`` ``(N,)`` [rad], when given, restricts each waypoint to lanes heading within 90° of
    it. Raises :class:`RoutePlanningError` naming the waypoint and the reason when a waypoint is
    off every driving lane or a leg has no lane path.
    """
    cfg = config or RoutePlannerConfig()
    pts = np.asarray(waypoints, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] not in (2, 3) or len(pts) < 2:
        raise RoutePlanningError(f"waypoints must be (N>=2, 2|3), got shape {pts.shape}")
    if not np.all(np.isfinite(pts)):
        bad = int(np.argwhere(~np.isfinite(pts))[0, 0])
        raise RoutePlanningError(f"waypoint {bad} is not finite: {pts[bad].tolist()}")
    if yaws is not None and np.shape(yaws) != (len(pts),):
        raise RoutePlanningError(f"yaws must be ({len(pts)},), got shape {np.shape(yaws)}")

    def snap(i: int) -> list[LaneProjection]:
        heading = None if yaws is None else float(yaws[i])
        found = road_map.project(
            float(pts[i, 0]), float(pts[i, 1]), max_distance=cfg.snap_distance, heading=heading
        )
        if not found:
            nearest = road_map.project(float(pts[i, 0]), float(pts[i, 1]), max_distance=50.0)
            where = (
                f"nearest driving lane is {nearest[0].distance:.1f} m away"
                if nearest
                else "no driving lane within 50 m"
            )
            facing = "" if heading is None else f" heading {math.degrees(heading):.0f} deg"
            raise RoutePlanningError(
                f"waypoint {i} at ({pts[i, 0]:.1f}, {pts[i, 1]:.1f}){facing} is off every driving "
                f"lane of map {road_map.name!r} by more than {cfg.snap_distance} m ({where})"
            )
        # the lanes the point is on (overlapping junction lanes, ties), not the lanes beside it
        return [p for p in found if p.distance <= found[0].distance + SNAP_TIE_DISTANCE]

    steps: list[RouteStep] = []
    waypoint_steps: list[int] = [0]
    starts = snap(0)
    for i in range(1, len(pts)):
        goals = snap(i)
        try:
            leg, reached = _search_leg(road_map, starts, goals, cfg)
        except RoutePlanningError:
            raise RoutePlanningError(
                f"no lane path from waypoint {i - 1} ({pts[i - 1, 0]:.1f}, {pts[i - 1, 1]:.1f}) "
                f"to waypoint {i} ({pts[i, 0]:.1f}, {pts[i, 1]:.1f}) on map {road_map.name!r}"
            ) from None
        steps.extend(leg)
        waypoint_steps.append(len(steps))
        starts = [reached]
    return _densify(road_map, steps, waypoint_steps, cfg)


def _densify(
    road_map: RoadMap, steps: list[RouteStep], waypoint_steps: list[int], cfg: RoutePlannerConfig
) -> RoutePlan:
    chunks: list[FloatArray] = []
    chunk_options: list[int] = []
    chunk_lanes: list[int] = []
    step_first_point: list[int] = []
    count = 0
    for step in steps:
        pts = _step_points(road_map, step, cfg.spacing)
        if chunks:
            pts = pts[1:]  # the first sample repeats the previous step's last one
        step_first_point.append(count)
        chunks.append(pts)
        chunk_options.extend([int(step.option)] * len(pts))
        chunk_lanes.extend([step.target_lane if step.target_lane >= 0 else step.lane] * len(pts))
        count += len(pts)
    if count == 0:
        raise RoutePlanningError("route has no steps")
    raw = np.concatenate(chunks, axis=0)
    seg = np.linalg.norm(np.diff(raw[:, :2], axis=0), axis=1)
    keep = np.concatenate([[True], seg > 1e-6])
    keep_idx = np.flatnonzero(keep)
    raw = raw[keep_idx]
    raw_s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(raw[:, :2], axis=0), axis=1))])
    options_raw = np.asarray(chunk_options, dtype=np.int8)[keep_idx]
    lanes_raw = np.asarray(chunk_lanes, dtype=np.int64)[keep_idx]
    total = float(raw_s[-1])
    n = max(int(math.ceil(total / cfg.spacing)), 1) + 1
    s = np.linspace(0.0, total, n)
    x = np.interp(s, raw_s, raw[:, 0])
    y = np.interp(s, raw_s, raw[:, 1])
    yaw = wrap_angle(np.interp(s, raw_s, np.unwrap(raw[:, 2])))
    nearest = np.clip(np.searchsorted(raw_s, s, side="right") - 1, 0, len(raw_s) - 1)
    lanes_dense = lanes_raw[nearest]
    speed = np.array([road_map.lanes[i].speed_limit for i in lanes_dense], dtype=np.float64)
    # arc length of each waypoint: the start of the first step of its leg
    raw_index_of = np.searchsorted(keep_idx, np.asarray([*step_first_point, count - 1]))
    wp_s = np.array(
        [raw_s[min(int(raw_index_of[k]), len(raw_s) - 1)] for k in waypoint_steps],
        dtype=np.float64,
    )
    wp_s[-1] = total
    return RoutePlan(
        steps=tuple(steps),
        path=np.stack([x, y, np.asarray(yaw, dtype=np.float64)], axis=1),
        s=s,
        options=options_raw[nearest],
        lanes=lanes_dense,
        speed_limits=speed,
        waypoint_s=wp_s,
    )


def _town_key(name: str) -> str:
    key = name.strip().lower()
    return key.removesuffix("_opt")


def plan_leaderboard_route(
    road_map: RoadMap, route: RouteSpec, config: RoutePlannerConfig | None = None
) -> RoutePlan:
    """The dense lane-level reference path of a leaderboard route on its town's map.

    Raises :class:`RoutePlanningError` naming the route id and the reason when the route is for
    another town or cannot be planned.
    """
    where = f"route {route.route_id}" + (f" ({route.source})" if route.source else "")
    if _town_key(route.town) != _town_key(road_map.name):
        raise RoutePlanningError(
            f"{where} is for town {route.town!r}, but the map is {road_map.name!r}"
        )
    try:
        return plan_route(road_map, route.waypoints[:, :2], yaws=route.yaws, config=config)
    except RoutePlanningError as err:
        raise RoutePlanningError(f"{where}: {err}") from None
