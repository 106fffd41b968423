"""The privileged expert: kaido's planner fed ground truth instead of perception.

Each planning cycle (``replan_period``) it builds a :class:`~kaido.planning.types.PlannerInput`
from the world state: the route ahead of the ego as the reference path (with the offsets of the
neighbouring lanes where a lane change is allowed and the lane is clear of traffic by the ego),
the ground-truth agents forecast by the lane-following predictor, the drivable area's signed
distance field from the map raster, and stops: the stop lines of red and yellow lights on the
route, a yield stop in front of each pedestrian or cyclist about to cross the ego's path on the
road, one behind each vehicle cutting into it, and one before a lane change of the route while
its target lane is not clear. It plans (with :func:`expert_planner_settings`), and every control
step the trajectory controller tracks the current plan through the safety envelope. The same
expert drives the embedded simulator to collect training data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from kaido.planning.candidates import CandidateConfig
from kaido.planning.controller import TrajectoryController
from kaido.planning.planner import Planner, PlannerSettings
from kaido.planning.types import (
    DrivableField,
    PlannerInput,
    PlannerOutput,
    ReferencePath,
    StopConstraint,
    StopKind,
)
from kaido.prediction.baselines import LaneFollowing, Predictor
from kaido.scene.agents import AgentClass, AgentState, Control, EgoState
from kaido.scene.frame import GroundTruth, TrafficLightColor
from kaido.scene.raster import RasterSpec
from kaido.scene.road_map import RoadMap
from kaido.scene.route_planner import RoadOption, RoutePlan
from kaido.scene.vehicle import VehicleProfile

FloatArray = npt.NDArray[np.float64]


_CUT_IN_NOW = 0.05
"""[m] a stop this far ahead of the ego's front bumper: brake as hard as the envelope allows."""
_CUT_IN_LEVEL = 0.25
"""[m] a cut-in whose centre is no more than this ahead of the ego's centre is level with it."""


@dataclass(frozen=True)
class ExpertConfig:
    """How the expert turns ground truth into planner input."""

    replan_period: float = 0.1
    """[s] time between planning cycles (10 Hz)."""
    reference_behind: float = 5.0
    """[m] of route kept behind the ego in the reference path."""
    reference_ahead: float = 150.0
    """[m] of route ahead of the ego in the reference path."""
    reference_extension: float = 30.0
    """[m] the reference runs on along the road past the route's end (the goal is driven
    through, see ``PrivilegedExpert._extension``)."""
    detection_range: float = 70.0
    """[m] agents farther than this from the ego are ignored."""
    raster: RasterSpec = field(
        default_factory=lambda: RasterSpec(height=240, width=140, resolution=0.5, ego_row=200.0)
    )
    """Ego-centred drivable-area raster (100 m ahead, 20 m behind, ±35 m aside)."""
    stop_for_yellow_decel: float = 3.0
    """[m/s²] a yellow light is a stop when the ego can stop for it at this deceleration."""
    yield_horizon: float = 4.0
    """[s] a pedestrian or cyclist whose constant-velocity path enters the ego's corridor within
    this time is yielded to (the planner's nuPlan-style at-fault rules would let the ego pass
    one that walks into its side)."""
    yield_clearance: float = 1.0
    """[m] the corridor is the ego's half width plus the road user's half size plus this."""
    yield_gap: float = 2.0
    """[m] the yield stop is this far before the road user's position along the route."""
    yield_decel: float = 3.5
    """[m/s²] a yield stop is set only when the ego can still stop for it at this deceleration
    (otherwise the planner's collision terms alone keep it clear)."""
    yield_along_speed: float = 1.0
    """[m/s] a cyclist riding along the route faster than this (and faster than it moves
    across) is a lead to follow, not a road user to yield to."""
    cut_in_horizon: float = 2.0
    """[s] a vehicle moving sideways towards the ego's corridor that enters it within this time
    ahead of the ego (constant velocity) is cutting in: the ego yields to it."""
    cut_in_lateral_speed: float = 0.3
    """[m/s] ... when it moves towards the corridor faster than this."""
    cut_in_clearance: float = 0.3
    """[m] the cut-in corridor is the ego's half width plus the vehicle's plus this."""
    cut_in_min_gap: float = 0.5
    """[m] gap to a cut-in's rear that the stop keeps when ``yield_gap`` no longer fits ahead of
    the ego's front bumper (a vehicle sliding in just ahead is still braked for)."""
    lane_change_horizon: float = 3.5
    """[s] a neighbouring lane is clear for a lane change when no vehicle in it comes within the
    gaps below of the ego over this time (constant speeds along the route) after the ego
    reaches the change (see ``PrivilegedExpert.lane_clear``)."""
    lane_change_front_gap: float = 2.0
    """[m] bumper-to-bumper gap kept to a vehicle ahead in the target lane..."""
    lane_change_front_headway: float = 0.3
    """[s] ...plus the ego's speed times this."""
    lane_change_rear_gap: float = 3.0
    """[m] bumper-to-bumper gap kept to a vehicle behind in the target lane..."""
    lane_change_rear_headway: float = 0.6
    """[s] ...plus that vehicle's speed times this (its time to react)."""
    lane_change_lookahead: float = 4.0
    """[s] a lane change of the route is checked once the ego reaches it within this time (at
    least 1 m/s); when the target lane is not clear, a yield stop before the change's start
    holds the ego back, if it can stop for it at ``yield_decel``."""

    def __post_init__(self) -> None:
        for name in (
            "yield_horizon",
            "yield_clearance",
            "yield_gap",
            "yield_decel",
            "yield_along_speed",
            "cut_in_horizon",
            "cut_in_lateral_speed",
            "cut_in_clearance",
            "cut_in_min_gap",
            "lane_change_horizon",
            "lane_change_front_gap",
            "lane_change_front_headway",
            "lane_change_rear_gap",
            "lane_change_rear_headway",
            "lane_change_lookahead",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"ExpertConfig.{name} must be finite and >= 0, got {value}")


_LANE_CHANGES = (int(RoadOption.CHANGELANELEFT), int(RoadOption.CHANGELANERIGHT))
_LANE_USERS = frozenset({AgentClass.VEHICLE, AgentClass.CYCLIST, AgentClass.UNKNOWN})
"""Road users that occupy a lane the ego changes into."""
_LANE_OVERLAP = 0.3
"""[m] a road user is in a lane when its box reaches this far into it."""


def _frenet(path: FloatArray, path_s: FloatArray, x: float, y: float) -> tuple[float, float, float]:
    """(arc length [m], left offset [m], path yaw [rad]) of the point (x, y) along the polyline
    ``path`` ``(P, 3)`` [x, y, yaw] with arc lengths ``path_s`` ``(P,)``, extended straight past
    both ends (the yaw is that of the nearest path point)."""
    d2 = (path[:, 0] - x) ** 2 + (path[:, 1] - y) ** 2
    k = int(np.argmin(d2))
    yaw = float(path[k, 2])
    dx, dy = x - float(path[k, 0]), y - float(path[k, 1])
    along = dx * math.cos(yaw) + dy * math.sin(yaw)
    return float(path_s[k]) + along, -dx * math.sin(yaw) + dy * math.cos(yaw), yaw


def first_crossing(path: FloatArray, a: FloatArray, b: FloatArray) -> tuple[int, float] | None:
    """First segment ``j`` of the polyline ``path`` ``(P, 2)`` that crosses segment a→b, and the
    parameter t in [0, 1] along it; None when none does."""
    p, q = path[:-1], path[1:]
    r = q - p
    d = b - a
    denom = r[:, 0] * d[1] - r[:, 1] * d[0]
    ap = a - p
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (ap[:, 0] * d[1] - ap[:, 1] * d[0]) / denom
        u = (ap[:, 0] * r[:, 1] - ap[:, 1] * r[:, 0]) / denom
    hit = (np.abs(denom) > 1e-12) & (t >= 0.0) & (t <= 1.0) & (u >= -0.05) & (u <= 1.05)
    found = np.flatnonzero(hit)
    if len(found) == 0:
        return None
    j = int(found[0])
    return j, float(t[j])


def expert_planner_settings() -> PlannerSettings:
    """The planner settings the expert drives with unless it is given others.

    The planner's defaults with three candidate settings changed (closed-loop: after a junction
    turn the ego kept its heading error for tens of metres and drifted into the oncoming lane):

    * ``lane_change_time`` 2.75 s (default 4 s): every lateral transition, also the return to the
      lane centre after a turn, spans the distance covered in this time; with 4 s the plan
      carried the turn's exit heading error 40 m on. 2.75 s keeps a lane change's peak lateral
      acceleration (5.77 x 3.5 m / 2.75² = 2.7 m/s²) within the 3 m/s² envelope.
    * ``speed_time_constant`` 0.75 s (default 1.5 s): speed profiles lag a falling speed cap by
      this time x its slope (``comfort_decel``), so with 1.5 s they reached curves 3 m/s above
      the curve speed and the envelope's lateral limit made the ego run wide.
    * ``min_lookahead`` 3 m (default 4 m): the rollouts' pure pursuit cut the exit of tight
      turns less.
    """
    return PlannerSettings(
        candidates=CandidateConfig(
            lane_change_time=2.75, speed_time_constant=0.75, min_lookahead=3.0
        )
    )


class PrivilegedExpert:
    """Plans on ground truth and tracks the plan; see the module docstring."""

    def __init__(
        self,
        road_map: RoadMap,
        profile: VehicleProfile,
        *,
        settings: PlannerSettings | None = None,
        config: ExpertConfig | None = None,
        predictor: Predictor | None = None,
    ) -> None:
        self.road_map = road_map
        self.profile = profile
        self.config = config or ExpertConfig()
        self.planner = Planner(profile, settings or expert_planner_settings())
        self.controller = TrajectoryController(profile)
        self.predictor = predictor or LaneFollowing(road_map)
        self.route: RoutePlan | None = None
        self.output: PlannerOutput | None = None
        self._plan_time = -math.inf
        self._route_index = 0
        self._seen: dict[int, tuple[float, float, float]] = {}
        self._moved: dict[int, tuple[float, float]] = {}

    def reset(self, route: RoutePlan) -> None:
        self.route = route
        self.output = None
        self._plan_time = -math.inf
        self._route_index = 0
        self._seen = {}
        self._moved = {}
        self.controller.reset()

    def track(self, truth: GroundTruth, time_s: float) -> None:
        """Note where every agent is at ``time_s`` [s]: :meth:`velocity` then also knows how
        each one moved since the previous call (up to 0.5 s before)."""
        moved: dict[int, tuple[float, float]] = {}
        seen: dict[int, tuple[float, float, float]] = {}
        for agent in truth.agents:
            x, y = agent.box.x, agent.box.y
            before = self._seen.get(agent.track_id)
            if before is not None and 0.0 < time_s - before[0] <= 0.5:
                dt = time_s - before[0]
                moved[agent.track_id] = ((x - before[1]) / dt, (y - before[2]) / dt)
            seen[agent.track_id] = (time_s, x, y)
        self._seen, self._moved = seen, moved

    def velocity(self, agent: AgentState) -> tuple[float, float]:
        """``agent``'s world velocity [m/s]: how it moved between the last two :meth:`track`
        calls where known (a simulator may report only the speed along the heading, so a
        vehicle sliding sideways into a lane shows none), else its reported velocity."""
        return self._moved.get(agent.track_id, agent.velocity)

    # -- planner input ------------------------------------------------------------------------

    def _progress(self, ego: EgoState) -> int:
        assert self.route is not None
        path = self.route.path
        lo = max(self._route_index - 5, 0)
        hi = min(self._route_index + 60, len(path))
        d = np.hypot(path[lo:hi, 0] - ego.pose.x, path[lo:hi, 1] - ego.pose.y)
        self._route_index = lo + int(np.argmin(d))
        return self._route_index

    def reference(
        self, ego: EgoState, truth: GroundTruth | None = None
    ) -> tuple[ReferencePath, int, int]:
        """The route around the ego as a reference path, and its index range on the route.

        The neighbouring lanes' offsets (where the map allows changing into them) let the planner
        change lanes; with ``truth``, a side whose lane is not clear of vehicles by the ego
        (:meth:`lane_clear`) gets none, so the planner cannot start a lane change into traffic.
        """
        assert self.route is not None
        route = self.route
        k = self._progress(ego)
        s_here = route.s[k]
        i0 = int(np.searchsorted(route.s, s_here - self.config.reference_behind))
        i1 = int(np.searchsorted(route.s, s_here + self.config.reference_ahead)) + 1
        i1 = min(max(i1, i0 + 2), len(route.s))
        i0 = min(i0, i1 - 2)
        lanes = self.road_map.lanes
        left = np.full(i1 - i0, np.nan)
        right = np.full(i1 - i0, np.nan)
        left_width = np.full(i1 - i0, np.nan)
        right_width = np.full(i1 - i0, np.nan)
        for j, lane_index in enumerate(route.lanes[i0:i1]):
            lane = lanes[int(lane_index)]
            width = float(np.mean(lane.widths))
            if lane.can_change_left and lane.left_neighbor >= 0:
                left_width[j] = float(np.mean(lanes[lane.left_neighbor].widths))
                left[j] = 0.5 * (width + left_width[j])
            if lane.can_change_right and lane.right_neighbor >= 0:
                right_width[j] = float(np.mean(lanes[lane.right_neighbor].widths))
                right[j] = -0.5 * (width + right_width[j])
        if truth is not None:
            here = k - i0
            for offsets, widths in ((left, left_width), (right, right_width)):
                first = np.flatnonzero(np.isfinite(offsets[here:]))
                if len(first) == 0:
                    continue
                j = here + int(first[0])
                if not self.lane_clear(
                    ego,
                    truth,
                    route.path[i0:i1],
                    route.s[i0:i1],
                    float(offsets[j]),
                    float(widths[j]),
                    0.0,
                ):
                    offsets[:] = np.nan
        path, s, limits = route.path[i0:i1], route.s[i0:i1], route.speed_limits[i0:i1]
        if i1 == len(route.s):
            # the route's end is a goal to drive through, not a wall: extend the reference
            # straight on so the planner does not brake to a stop short of it
            tail = self._extension()
            if len(tail):
                joined = np.vstack([path[-1:, :2], tail[:, :2]])
                steps = np.linalg.norm(np.diff(joined, axis=0), axis=1)
                extra = route.s[-1] + np.cumsum(np.maximum(steps, 1e-3))
                path = np.concatenate([path, tail])
                s = np.concatenate([s, extra])
                limits = np.concatenate([limits, np.full(len(tail), route.speed_limits[-1])])
                left = np.concatenate([left, np.full(len(tail), np.nan)])
                right = np.concatenate([right, np.full(len(tail), np.nan)])
        reference = ReferencePath(
            path=path, s=s, speed_limits=limits, left_offsets=left, right_offsets=right
        )
        return reference, i0, i1

    def _extension(self) -> FloatArray:
        """``(M, 3)`` [x, y, yaw] of the lanes that follow the route's end, ``reference_extension``
        metres of them, along the straightest successor at each lane end (empty at a dead end).

        The route's end is a goal to drive through, not a wall: with the reference running on
        along the road (not straight on, which can leave the road at a bend), the planner does
        not brake to a stop short of it.
        """
        assert self.route is not None
        lanes = self.road_map.lanes
        lane = lanes[int(self.route.lanes[-1])]
        end = self.route.path[-1]
        nearest = np.hypot(lane.centerline[:, 0] - end[0], lane.centerline[:, 1] - end[1])
        start = float(lane.s[int(np.argmin(nearest))])
        pieces: list[FloatArray] = []
        total = 0.0
        while total < self.config.reference_extension:
            ahead = np.arange(start + 1.0, lane.length + 1e-9, 1.0)
            if len(ahead):
                pieces.append(lane.interpolate(ahead))
                total += float(ahead[-1] - start)
            if not lane.successors:
                break
            # keep the 1 m spacing across the lane boundary
            last = float(ahead[-1]) if len(ahead) else start
            heading = float(lane.headings[-1])
            length = lane.length
            lane = min(
                (lanes[i] for i in lane.successors),
                key=lambda nxt: abs(math.remainder(float(nxt.headings[-1]) - heading, math.tau)),
            )
            start = last - length
        if not pieces:
            return np.zeros((0, 3))
        return np.concatenate(pieces)[: int(self.config.reference_extension)]

    def stops(
        self, ego: EgoState, truth: GroundTruth, i0: int, i1: int
    ) -> tuple[StopConstraint, ...]:
        """Stop lines of red (and stoppable yellow) lights that cross the route ahead."""
        assert self.route is not None
        route = self.route
        path = route.path[i0:i1, :2]
        s_ego = float(route.s[self._route_index])
        v = max(ego.speed, 0.0)
        out: list[StopConstraint] = []
        for light in truth.traffic_lights:
            if light.stop_line is None or light.color not in (
                TrafficLightColor.RED,
                TrafficLightColor.YELLOW,
            ):
                continue
            a, b = np.asarray(light.stop_line, dtype=np.float64)
            crossing = first_crossing(path, a, b)
            if crossing is None:
                continue
            j, t = crossing
            s = float(route.s[i0 + j] + t * (route.s[i0 + j + 1] - route.s[i0 + j]))
            affected = light.affected_lane_ids
            if (affected and int(route.lanes[i0 + j]) not in affected) or s < s_ego:
                continue
            gap = s - s_ego - (self.profile.length - self.profile.rear_overhang)
            if light.color is TrafficLightColor.YELLOW and (
                gap <= 0 or v * v / (2 * gap) > self.config.stop_for_yellow_decel
            ):
                continue
            red = light.color is TrafficLightColor.RED
            out.append(
                StopConstraint(s=s, kind=StopKind.RED_LIGHT if red else StopKind.YELLOW_LIGHT)
            )
        return tuple(out)

    def yields(
        self,
        ego: EgoState,
        truth: GroundTruth,
        i0: int,
        i1: int,
    ) -> tuple[StopConstraint, ...]:
        """Yield stops before the pedestrians and cyclists about to cross the route ahead.

        Each one is placed on the route (arc length ``s``, left offset ``d``) and moved at
        constant velocity over ``yield_horizon``. It is yielded to when, at some step, it is
        within the corridor (ego half width + its half size + ``yield_clearance`` of the route)
        ahead of the ego's front bumper *and on the road* (its centre on the map's drivable
        area): a stop ``yield_gap`` before it is added, if the ego can still stop at
        ``yield_decel``. Left out:
        people walking along the sidewalk beside the lane (never on the road), road users
        leaving the ego's path sideways that are already clear of the ego's body, and cyclists
        riding along the route (a lead the planner follows, not a crossing).
        """
        assert self.route is not None
        cfg = self.config
        route = self.route
        path = route.path[i0:i1]
        s_ego = float(route.s[self._route_index])
        front = s_ego + self.profile.length - self.profile.rear_overhang
        v = max(ego.speed, 0.0)
        steps = np.arange(0.0, cfg.yield_horizon + 1e-9, 0.1)
        out: list[StopConstraint] = []
        for agent in truth.agents:
            if agent.agent_class not in (AgentClass.PEDESTRIAN, AgentClass.CYCLIST):
                continue
            if math.hypot(agent.box.x - ego.pose.x, agent.box.y - ego.pose.y) > (
                cfg.detection_range
            ):
                continue
            k = int(np.argmin(np.hypot(path[:, 0] - agent.box.x, path[:, 1] - agent.box.y)))
            yaw = float(path[k, 2])
            dx, dy = agent.box.x - path[k, 0], agent.box.y - path[k, 1]
            s = float(route.s[i0 + k]) + dx * math.cos(yaw) + dy * math.sin(yaw)
            d = -dx * math.sin(yaw) + dy * math.cos(yaw)
            vx, vy = self.velocity(agent)
            v_s = vx * math.cos(yaw) + vy * math.sin(yaw)
            v_d = -vx * math.sin(yaw) + vy * math.cos(yaw)
            half_size = 0.5 * max(agent.box.length, agent.box.width)
            if (
                agent.agent_class is AgentClass.CYCLIST
                and v_s > cfg.yield_along_speed
                and abs(v_d) < v_s
            ):
                continue  # riding along the route: a lead, not a crossing
            body = 0.5 * self.profile.width + half_size
            if d * v_d > 0.0 and abs(d) > body:
                continue  # leaving the path sideways, already clear of the ego's body
            corridor = body + cfg.yield_clearance
            inside = np.abs(d + v_d * steps) < corridor
            if not inside.any():
                continue
            when = steps[inside]
            on_road = self.road_map.on_road(
                np.stack([agent.box.x + vx * when, agent.box.y + vy * when], axis=1)
            )
            if not on_road.any():
                continue  # beside the road (a sidewalk) all the while it is abreast
            inside[np.flatnonzero(inside)[~on_road]] = False
            s_cross = s + v_s * float(steps[int(np.argmax(inside))])
            stop = min(s, s_cross) - cfg.yield_gap
            gap = stop - front
            if gap <= 0 or v * v / (2 * gap) > cfg.yield_decel:
                continue
            out.append(StopConstraint(s=stop, kind=StopKind.YIELD))
        return tuple(out)

    def cut_ins(
        self, ego: EgoState, truth: GroundTruth, i0: int, i1: int
    ) -> tuple[StopConstraint, ...]:
        """Yield stops behind the vehicles cutting into the route ahead of the ego.

        A vehicle (or unknown road user) that moves sideways (:meth:`velocity`) towards the
        route faster than ``cut_in_lateral_speed`` and, at constant velocity, is in the corridor
        (ego half width + its half width + ``cut_in_clearance`` of the route) within
        ``cut_in_horizon`` (or is in it already, still moving in) gets a stop ``yield_gap``
        behind its rear (where it is now or where it enters, whichever is nearer), or only
        ``cut_in_min_gap`` behind it when ``yield_gap`` does not fit ahead of the ego's front
        bumper. A vehicle whose rear is already level with the ego's front while its centre is
        ahead of the ego's centre is sliding in at the front corner: its stop is just ahead of
        the front bumper (brake now). One whose centre is level with the ego's or behind it gets
        none: it merges behind.
        The stop holds even when it takes more than ``yield_decel``: a cut-in is braked for as
        hard as the envelope allows (the planner's at-fault rules would let the ego drive on
        into a vehicle that enters its lane from the side, and the lane-following forecast sees
        it back in its own lane). Once it no longer moves sideways it is a lead the planner
        follows.
        """
        assert self.route is not None
        cfg = self.config
        route = self.route
        path = route.path[i0:i1]
        s_ego = float(route.s[self._route_index])
        front = s_ego + self.profile.length - self.profile.rear_overhang
        # the ego's centre from its own projection (the route index is on the route's 1 m grid)
        centre = _frenet(path, route.s[i0:i1], ego.pose.x, ego.pose.y)[0]
        centre += self.profile.rear_axle_to_center
        out: list[StopConstraint] = []
        for agent in truth.agents:
            if agent.agent_class not in (AgentClass.VEHICLE, AgentClass.UNKNOWN):
                continue
            if math.hypot(agent.box.x - ego.pose.x, agent.box.y - ego.pose.y) > (
                cfg.detection_range
            ):
                continue
            s, d, yaw = _frenet(path, route.s[i0:i1], agent.box.x, agent.box.y)
            vx, vy = self.velocity(agent)
            v_s = vx * math.cos(yaw) + vy * math.sin(yaw)
            v_d = -vx * math.sin(yaw) + vy * math.cos(yaw)
            if d * v_d >= 0.0 or abs(v_d) < cfg.cut_in_lateral_speed:
                continue  # not moving towards the route
            corridor = 0.5 * (self.profile.width + agent.box.width) + cfg.cut_in_clearance
            enter = max(abs(d) - corridor, 0.0) / abs(v_d)
            if enter > cfg.cut_in_horizon:
                continue
            rear = min(s, s + v_s * enter) - 0.5 * agent.box.length
            stop = rear - cfg.yield_gap
            if stop - front <= 0.0:
                stop = rear - cfg.cut_in_min_gap  # close ahead: brake for it with a short gap
            if stop - front <= 0.0:
                if s <= centre + _CUT_IN_LEVEL:
                    continue  # level with the ego or behind its centre: it merges behind
                stop = front + _CUT_IN_NOW  # sliding in at the ego's front corner: brake now
            out.append(StopConstraint(s=stop, kind=StopKind.YIELD))
        return tuple(out)

    def lane_clear(
        self,
        ego: EgoState,
        truth: GroundTruth,
        path: FloatArray,
        path_s: FloatArray,
        offset: float,
        width: float,
        delay: float,
    ) -> bool:
        """Whether the lane ``width`` metres wide whose centre is ``offset`` metres left
        (negative: right) of ``path`` ``(P, 3)`` (arc lengths ``path_s`` ``(P,)``, extended
        straight past its ends) is clear for the ego to change into ``delay`` seconds from now.

        Every vehicle, cyclist or unknown road user whose box overlaps that lane laterally is
        moved along the path at its current speed along it, the ego at its own; over
        ``[0, delay + lane_change_horizon]`` the bumper-to-bumper gap must stay at least
        ``lane_change_front_gap + lane_change_front_headway x ego speed`` to one ahead and
        ``lane_change_rear_gap + lane_change_rear_headway x its speed`` to one behind; one
        beside the ego is never clear.
        """
        cfg = self.config
        v_ego = max(ego.speed, 0.0)
        ego_s, _, _ = _frenet(path, path_s, *self._ego_center(ego))
        times = np.arange(0.0, delay + cfg.lane_change_horizon + 1e-9, 0.25)
        for agent in truth.agents:
            if agent.agent_class not in _LANE_USERS:
                continue
            if math.hypot(agent.box.x - ego.pose.x, agent.box.y - ego.pose.y) > (
                cfg.detection_range
            ):
                continue
            s_a, d_a, yaw = _frenet(path, path_s, agent.box.x, agent.box.y)
            if abs(d_a - offset) >= 0.5 * (width + agent.box.width) - _LANE_OVERLAP:
                continue
            vx, vy = self.velocity(agent)
            v_a = vx * math.cos(yaw) + vy * math.sin(yaw)
            gap = (s_a - ego_s) + (v_a - v_ego) * times
            half = 0.5 * (agent.box.length + self.profile.length)
            ahead = gap >= 0.0
            need = np.where(
                ahead,
                cfg.lane_change_front_gap + cfg.lane_change_front_headway * v_ego,
                cfg.lane_change_rear_gap + cfg.lane_change_rear_headway * max(v_a, 0.0),
            )
            if np.any(np.abs(gap) - half < need):
                return False
        return True

    def lane_change_stops(
        self, ego: EgoState, truth: GroundTruth, i0: int, i1: int
    ) -> tuple[StopConstraint, ...]:
        """A yield stop before the route's next lane change while its target lane is not clear.

        The change is the first route point ahead whose road option is a lane change (the ego
        not in one already); once the ego reaches it within ``lane_change_lookahead`` seconds,
        the target lane (beside the stretch of route before the change) is checked with
        :meth:`lane_clear`. When it is not clear the stop, at the change's start, holds the ego
        in its lane (if it can stop for it at ``yield_decel``) until a gap comes.
        """
        assert self.route is not None
        cfg = self.config
        route = self.route
        k = self._route_index
        options = route.options
        if int(options[k]) in _LANE_CHANGES:
            return ()
        change = np.flatnonzero(np.isin(options[k:i1], _LANE_CHANGES))
        if len(change) == 0:
            return ()
        j = k + int(change[0])
        front = float(route.s[k]) + self.profile.length - self.profile.rear_overhang
        gap = float(route.s[j]) - front
        v = max(ego.speed, 0.0)
        reach = max(gap, 0.0) / max(v, 1.0)
        if gap <= 0.0 or reach > cfg.lane_change_lookahead:
            return ()
        lanes = self.road_map.lanes
        origin, target = lanes[int(route.lanes[j - 1])], lanes[int(route.lanes[j])]
        side = 1.0 if int(options[j]) == int(RoadOption.CHANGELANELEFT) else -1.0
        offset = side * 0.5 * (float(np.mean(origin.widths)) + float(np.mean(target.widths)))
        before = slice(i0, j + 1)
        width = float(np.mean(target.widths))
        if self.lane_clear(ego, truth, route.path[before], route.s[before], offset, width, reach):
            return ()
        if v * v / (2.0 * gap) > cfg.yield_decel:
            return ()
        return (StopConstraint(s=float(route.s[j]), kind=StopKind.YIELD),)

    def _ego_center(self, ego: EgoState) -> tuple[float, float]:
        c, s = math.cos(ego.pose.yaw), math.sin(ego.pose.yaw)
        ahead = self.profile.rear_axle_to_center
        return ego.pose.x + ahead * c, ego.pose.y + ahead * s

    def drivable(self, ego: EgoState) -> DrivableField:
        """Signed distance [m] to the drivable area's edge around the ego."""
        spec = self.config.raster
        mask = self.road_map.rasterize(ego.pose, spec, layers=("drivable",))[0]
        inside = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
        outside = cv2.distanceTransform((1 - mask).astype(np.uint8), cv2.DIST_L2, 5)
        distance = (inside - outside).astype(np.float64) * spec.resolution
        return DrivableField(
            distance=distance,
            pose=ego.pose.as_array(),
            resolution=spec.resolution,
            origin_row=spec.origin_row,
            origin_col=spec.origin_col,
        )

    def planner_input(self, ego: EgoState, truth: GroundTruth, timestamp_ns: int) -> PlannerInput:
        self.track(truth, timestamp_ns * 1e-9)
        reference, i0, i1 = self.reference(ego, truth)
        near: list[AgentState] = [
            agent
            for agent in truth.agents
            if math.hypot(agent.box.x - ego.pose.x, agent.box.y - ego.pose.y)
            <= self.config.detection_range
        ]
        times = self.planner.settings.planner.times
        agents = self.predictor.predict(near, times)
        return PlannerInput(
            timestamp_ns=timestamp_ns,
            ego=ego,
            reference=reference,
            agents=agents,
            drivable=self.drivable(ego),
            stops=self.stops(ego, truth, i0, i1)
            + self.yields(ego, truth, i0, i1)
            + self.cut_ins(ego, truth, i0, i1)
            + self.lane_change_stops(ego, truth, i0, i1),
            ego_length=self.profile.length,
            ego_width=self.profile.width,
            rear_axle_to_center=self.profile.rear_axle_to_center,
        )

    # -- the loop -------------------------------------------------------------------------------

    def step(
        self, ego: EgoState, truth: GroundTruth, time_s: float, dt: float
    ) -> tuple[Control, PlannerOutput | None]:
        """Replan when due, then the control for this step."""
        if self.route is None:
            raise RuntimeError("PrivilegedExpert.step: call reset(route) first")
        if self.output is None or time_s - self._plan_time >= self.config.replan_period - 1e-9:
            self.output = self.planner.plan(
                self.planner_input(ego, truth, int(round(time_s * 1e9)))
            )
            self._plan_time = time_s
        control, _debug = self.controller.command(
            ego, self.output.trajectory, time_s - self._plan_time, dt
        )
        return control, self.output
