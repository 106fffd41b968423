"""A rule-based driver on ground truth: pure pursuit on the route, IDM, PI speed control.

The baseline reads only privileged information (``obs.frame.ego``, ``obs.ground_truth``,
``obs.route``), so it measures the simulator and the metrics, not perception.

Lateral: pure pursuit from the rear axle on the route path. The ego is projected on the path by a
windowed search around the last projection (monotonic along the route); the target point lies
``clamp(lookahead_gain * v, min_lookahead, max_lookahead)`` metres further along the path; the
road-wheel angle is ``atan(wheelbase * 2 * y_t / d²)`` for the target at ``(x_t, y_t)`` in the
ego frame, ``d`` its distance, and the command is ``steer = -wheel_angle / max_steer`` clipped to
``[-1, 1]`` (CARLA: +1 = full right, kaido's wheel angle is positive to the left).

Longitudinal: the desired speed ``v0`` is the smallest of the route's speed limit and the
curvature-limited speed ``sqrt(max_lateral_accel / |κ|)`` over the path ahead, each relaxed by
the distance left to brake for it at ``preview_decel`` (``sqrt(v² + 2 a d)``), so the agent slows
down before a curve and is at the curve's speed when it gets there. Obstacles on the path ahead
are handled by the Intelligent Driver Model (Treiber, Hennecke, Helbing 2000): the most
restrictive of these constraints wins:

* agents (vehicles, cyclists, static obstacles, and pedestrians with a wider margin) whose box
  centre lies within ``corridor_half_width`` of the path, or whose box overlaps the ego's swept
  width, within ``detection_range`` ahead; the gap is measured along the path from the ego's
  front bumper to the nearest corner of the box, and the leader's speed is its velocity along
  the path (pedestrians count as standing);
* the stop line of a RED light (unless stopping would take more than ``red_max_decel``), or of
  a YELLOW light the agent can stop for at ``yellow_max_decel``, where the line crosses the
  route path ahead (segment intersection, at a clear angle, not deep inside a junction, so the
  lines of other approaches do not count); the IDM gap ``idm_min_gap`` is kept to the line;
* the end of the route (the rear axle stops on it).

The IDM acceleration feeds a PI speed controller that tracks the speed the IDM acceleration
integrates to, with that acceleration as feedforward; the commanded acceleration becomes throttle
or brake (never both) through the inverse of the vehicle's longitudinal model (drive fade,
rolling resistance, drag). At standstill with nothing pulling it forward the agent holds the
brake.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from kaido.scene.agents import AgentClass, AgentIndex, Control
from kaido.scene.frame import GroundTruth, TrafficLightColor
from kaido.scene.geometry import BoxIndex, box2d_corners, wrap_angle
from kaido.scene.road_map import RoadMap
from kaido.scene.route_planner import RoutePlan
from kaido.scene.vehicle import VehicleProfile
from kaido.simulation.agents import DrivingAgent, register_agent
from kaido.simulation.backend import Observation

__all__ = ["BaselineAgent", "BaselineConfig", "Constraint", "RoutePath"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Projection = tuple[FloatArray, FloatArray, FloatArray, IntArray]
"""``(s, lateral, distance, segment)`` of projected points, see :meth:`RoutePath.project`."""


@dataclass(frozen=True)
class BaselineConfig:
    """Tuning of :class:`BaselineAgent`."""

    lookahead_gain: float = 0.8
    """[s] pure-pursuit lookahead per unit speed."""
    min_lookahead: float = 4.0
    """[m] shortest pure-pursuit lookahead."""
    max_lookahead: float = 15.0
    """[m] longest pure-pursuit lookahead."""
    max_lateral_accel: float = 2.5
    """[m/s²] lateral acceleration the curvature-limited speed allows."""
    preview_decel: float = 1.0
    """[m/s²] deceleration planned for slowing down to lower speeds ahead."""
    preview_distance: float = 80.0
    """[m] how far ahead speed limits and curvature are read."""
    curvature_window: float = 4.0
    """[m] length of the moving average smoothing the path curvature."""
    detection_range: float = 60.0
    """[m] agents and stop lines farther along the path than this are ignored."""
    corridor_half_width: float = 1.8
    """[m] agents whose box centre is this close to the path are in the way."""
    body_margin: float = 0.3
    """[m] agents whose box comes within half the ego's width plus this are in the way."""
    pedestrian_margin: float = 1.0
    """[m] extra corridor half-width for pedestrians."""
    idm_min_gap: float = 2.0
    """[m] IDM jam distance s0 (also the stop distance before a stop line)."""
    idm_time_headway: float = 1.5
    """[s] IDM time headway T."""
    idm_max_accel: float = 1.5
    """[m/s²] IDM maximum acceleration a."""
    idm_comfort_decel: float = 2.0
    """[m/s²] IDM comfortable deceleration b."""
    idm_exponent: float = 4.0
    """IDM acceleration exponent δ."""
    overspeed_gain: float = 2.0
    """[1/s] deceleration per m/s above the desired speed (replaces IDM's free term there)."""
    max_command_decel: float = 6.0
    """[m/s²] strongest deceleration the agent asks for (emergencies)."""
    yellow_max_decel: float = 3.0
    """[m/s²] stop for a yellow light only if this deceleration suffices."""
    red_max_decel: float = 6.0
    """[m/s²] stop for a red light unless it would take more than this."""
    stop_line_behind: float = 1.0
    """[m] stop lines up to this far behind the front bumper still count."""
    junction_depth: float = 3.0
    """[m] stop lines crossed deeper than this inside a junction belong to other approaches."""
    min_crossing_sine: float = 0.5
    """|sin| of the smallest angle between a stop line and the path for it to count."""
    speed_kp: float = 1.0
    """[(m/s²)/(m/s)] proportional gain of the speed controller."""
    speed_ki: float = 0.3
    """[(m/s²)/m] integral gain of the speed controller."""
    integral_limit: float = 2.0
    """[m] bound on the speed controller's integrated error."""
    reference_band: float = 2.0
    """[m/s] the speed reference stays this close to the actual speed."""
    standstill_speed: float = 0.2
    """[m/s] below this the agent holds the brake unless it wants to move off."""
    move_off_accel: float = 0.3
    """[m/s²] desired acceleration needed to release the standstill hold."""
    hold_brake: float = 1.0
    """Brake pedal held at standstill, [0, 1]."""
    plan_horizon: float = 6.0
    """[s] length of the planned trajectory :meth:`BaselineAgent.plan` returns."""
    plan_step: float = 0.5
    """[s] spacing of the planned trajectory's points."""
    search_behind: float = 0.0
    """[m] the ego projection searches this far back from its last position (0: the projection
    only moves forwards along the route)."""
    search_ahead: float = 30.0
    """[m] the ego projection searches this far ahead of its last position (plus v·dt)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"BaselineConfig.{f.name} must be finite and >= 0, got {value!r}")
        positive = (
            "min_lookahead",
            "max_lateral_accel",
            "preview_decel",
            "idm_time_headway",
            "idm_max_accel",
            "idm_comfort_decel",
            "idm_exponent",
            "max_command_decel",
            "plan_horizon",
            "plan_step",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"BaselineConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.max_lookahead < self.min_lookahead:
            raise ValueError(
                f"BaselineConfig.max_lookahead ({self.max_lookahead}) must be >= min_lookahead "
                f"({self.min_lookahead})"
            )
        if self.hold_brake > 1:
            raise ValueError(f"BaselineConfig.hold_brake must be in [0, 1], got {self.hold_brake}")


class Constraint(NamedTuple):
    """Something the agent must not run into: ``gap`` [m] from the front bumper along the path
    to it, its speed along the path [m/s], and what it is."""

    gap: float
    speed: float
    kind: str


class RoutePath:
    """A route's reference path prepared for projection and look-ups.

    ``P`` path points, ``P - 1`` segments; arrays in the world frame [m], [rad].
    """

    def __init__(self, route: RoutePlan, road_map: RoadMap | None, curvature_window: float) -> None:
        path = np.asarray(route.path, dtype=np.float64)
        if path.ndim != 2 or path.shape[1] != 3 or len(path) < 2:
            raise ValueError(f"RoutePath: route.path must be (P>=2, 3), got {path.shape}")
        self.route = route
        self.xy: FloatArray = path[:, :2].copy()
        """``(P, 2)`` path points."""
        self.s: FloatArray = np.asarray(route.s, dtype=np.float64)
        """``(P,)`` arc length [m]."""
        if self.s.shape != (len(path),) or np.any(np.diff(self.s) <= 0):
            raise ValueError(
                f"RoutePath: route.s must be ({len(path)},) and strictly increasing, "
                f"got shape {self.s.shape}"
            )
        self.yaw_unwrapped: FloatArray = np.unwrap(path[:, 2])
        """``(P,)`` path heading, unwrapped [rad]."""
        seg = np.diff(self.xy, axis=0)
        self.seg_len: FloatArray = np.linalg.norm(seg, axis=1)
        """``(P-1,)`` segment lengths [m]."""
        safe = np.maximum(self.seg_len, 1e-9)[:, None]
        self.tangent: FloatArray = seg / safe
        """``(P-1, 2)`` unit segment directions."""
        spacing = float(np.median(np.diff(self.s))) if len(self.s) > 1 else 1.0
        self.spacing = max(spacing, 1e-3)
        # curvature from the heading change of the segments, smoothed along the path
        seg_yaw = np.unwrap(np.arctan2(seg[:, 1], seg[:, 0]))
        mid_s = 0.5 * (self.s[:-1] + self.s[1:])
        kappa = np.zeros(len(self.s))
        if len(seg_yaw) >= 2:
            kappa = np.interp(self.s, mid_s, np.gradient(seg_yaw, mid_s))
        half = max(int(round(0.5 * curvature_window / self.spacing)), 0)
        if half > 0:
            kernel = np.ones(2 * half + 1) / (2 * half + 1)
            kappa = np.convolve(np.pad(kappa, half, mode="edge"), kernel, mode="valid")
        self.curvature: FloatArray = kappa
        """``(P,)`` signed path curvature [1/m], positive turning left."""
        self.speed_limits: FloatArray = np.asarray(route.speed_limits, dtype=np.float64)
        """``(P,)`` [m/s]."""
        self.junction_depth: FloatArray = np.zeros(len(self.s))
        """``(P,)`` [m] distance driven since entering the junction the point is in (0 outside)."""
        if road_map is not None:
            lanes = road_map.lanes
            inside = np.array(
                [0 <= int(i) < len(lanes) and lanes[int(i)].in_junction for i in route.lanes],
                dtype=bool,
            )
            depth = np.zeros(len(self.s))
            for i in range(1, len(self.s)):
                if inside[i]:
                    depth[i] = depth[i - 1] + (self.s[i] - self.s[i - 1]) if inside[i - 1] else 0.0
            self.junction_depth = depth

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def index_at(self, s: float) -> int:
        """Index of the segment holding arc length ``s`` (clamped to the path)."""
        i = int(np.searchsorted(self.s, s, side="right")) - 1
        return min(max(i, 0), len(self.s) - 2)

    def pose_at(self, s: FloatArray | float) -> FloatArray:
        """``(..., 3)`` [x, y, yaw] at arc lengths ``s``; beyond the ends the path is extended
        along its end headings."""
        s_arr = np.asarray(s, dtype=np.float64)
        inside = np.clip(s_arr, 0.0, self.length)
        x = np.interp(inside, self.s, self.xy[:, 0])
        y = np.interp(inside, self.s, self.xy[:, 1])
        yaw = np.interp(inside, self.s, self.yaw_unwrapped)
        over = s_arr - inside
        end_dir = np.where(over > 0, 1, 0)
        t_end, t_start = self.tangent[-1], self.tangent[0]
        tx = np.where(end_dir, t_end[0], t_start[0])
        ty = np.where(end_dir, t_end[1], t_start[1])
        return np.stack([x + over * tx, y + over * ty, wrap_angle(yaw)], axis=-1)

    def project(self, points: FloatArray, lo: int, hi: int) -> Projection:
        """Project points ``(K, 2)`` onto segments ``lo..hi-1``.

        Returns ``s`` ``(K,)`` [m], signed ``lateral`` ``(K,)`` [m] (positive left),
        ``distance`` ``(K,)`` [m] and the segment index ``(K,)`` of each point.
        """
        lo = max(lo, 0)
        hi = min(max(hi, lo + 1), len(self.seg_len))
        a = self.xy[lo:hi]
        t = self.tangent[lo:hi]
        length = self.seg_len[lo:hi]
        rel = points[:, None, :] - a[None, :, :]  # (K, M, 2)
        along = np.clip((rel * t[None]).sum(axis=-1), 0.0, length[None])
        closest = a[None] + along[..., None] * t[None]
        dist = np.linalg.norm(points[:, None, :] - closest, axis=-1)
        k = np.argmin(dist, axis=1)
        rows = np.arange(len(points))
        seg = (lo + k).astype(np.int64)
        rel_k = rel[rows, k]
        t_k = t[k]
        lateral = t_k[:, 0] * rel_k[:, 1] - t_k[:, 1] * rel_k[:, 0]
        s = self.s[seg] + along[rows, k]
        return s, lateral, dist[rows, k], seg

    def project_all(self, point: FloatArray) -> Projection:
        """Project one point ``(1, 2)`` onto every segment.

        Returns ``s``, ``lateral``, ``distance`` and segment index, each ``(P-1,)``.
        """
        a = self.xy[:-1]
        rel = point - a
        along = np.clip((rel * self.tangent).sum(axis=1), 0.0, self.seg_len)
        closest = a + along[:, None] * self.tangent
        dist = np.linalg.norm(point - closest, axis=1)
        lateral = self.tangent[:, 0] * rel[:, 1] - self.tangent[:, 1] * rel[:, 0]
        index = np.arange(len(self.seg_len), dtype=np.int64)
        return self.s[:-1] + along, lateral, dist, index

    def crossing(
        self, line: FloatArray, lo: int, hi: int, min_sine: float, max_junction_depth: float
    ) -> float | None:
        """Arc length [m] where the segment ``line`` ``(2, 2)`` first crosses path segments
        ``lo..hi-1`` at an angle whose |sine| is at least ``min_sine``, no deeper than
        ``max_junction_depth`` [m] into a junction; None if it does not."""
        lo = max(lo, 0)
        hi = min(max(hi, lo + 1), len(self.seg_len))
        a = self.xy[lo:hi]
        r = self.xy[lo + 1 : hi + 1] - a  # (M, 2)
        p = line[0]
        q = line[1] - line[0]
        denom = r[:, 0] * q[1] - r[:, 1] * q[0]
        ap = p - a
        with np.errstate(divide="ignore", invalid="ignore"):
            u = (ap[:, 0] * q[1] - ap[:, 1] * q[0]) / denom
            w = (ap[:, 0] * r[:, 1] - ap[:, 1] * r[:, 0]) / denom
        norm = np.linalg.norm(r, axis=1) * float(np.linalg.norm(q))
        sine = np.abs(denom) / np.maximum(norm, 1e-12)
        hit = (
            (sine >= min_sine)
            & (u >= 0.0)
            & (u <= 1.0)
            & (w >= 0.0)
            & (w <= 1.0)
            & (self.junction_depth[lo:hi] <= max_junction_depth)
        )
        idx = np.flatnonzero(hit)
        if len(idx) == 0:
            return None
        k = int(idx[0])
        return float(self.s[lo + k] + u[k] * self.seg_len[lo + k])


@register_agent("baseline")
class BaselineAgent(DrivingAgent):
    """Ground-truth driver: pure pursuit, IDM on leaders/pedestrians/red lights, PI speed control.

    See the module docstring for the behaviour; all numbers are in :class:`BaselineConfig`.
    """

    def __init__(self, config: BaselineConfig | None = None) -> None:
        super().__init__()
        self.config = config or BaselineConfig()
        self._path: RoutePath | None = None
        self._segment = -1
        self._v_ref = 0.0
        self._integral = 0.0
        self._plan: FloatArray | None = None
        self._ready = False
        self.last_constraint: Constraint | None = None
        """The constraint that limited the last command (None when driving freely)."""
        self.target_speed = 0.0
        """[m/s] desired speed of the last step (speed limit and curvature, before obstacles)."""
        self.route_s = 0.0
        """[m] the ego's arc length along the route at the last step."""
        self.lateral_error = 0.0
        """[m] the ego's signed distance to the route path at the last step (left positive)."""

    @property
    def route_path(self) -> RoutePath | None:
        """The prepared route path the agent follows (None before :meth:`setup`)."""
        return self._path

    # -- episode -----------------------------------------------------------------------------

    def setup(
        self, *, road_map: RoadMap, route: RoutePlan, profile: VehicleProfile, dt: float
    ) -> None:
        super().setup(road_map=road_map, route=route, profile=profile, dt=dt)
        self._path = RoutePath(route, road_map, self.config.curvature_window)
        self._segment = -1
        self._v_ref = 0.0
        self._integral = 0.0
        self._plan = None
        self._ready = True

    def plan(self) -> FloatArray | None:
        """``(T, 3)`` [x, y, yaw] at ``plan_step``, ``2 plan_step``, ... ``plan_horizon`` s
        ahead: the route path driven under the agent's speed law, leaders moving at their
        current speed; None before the first step."""
        return None if self._plan is None else self._plan.copy()

    def destroy(self) -> None:
        self._path = None
        self._plan = None
        self._ready = False

    # -- one step ----------------------------------------------------------------------------

    def run_step(self, obs: Observation) -> Control:
        """The command for the next step; reads ``obs.frame.ego``, ``obs.ground_truth`` and
        ``obs.route`` only (a route other than the one set up is prepared afresh)."""
        if not self._ready or self._path is None:
            raise RuntimeError("BaselineAgent.run_step: call setup() before the first step")
        if not isinstance(obs, Observation):
            raise TypeError(
                f"BaselineAgent.run_step: expected an Observation, got {type(obs).__name__}"
            )
        if obs.route is not self._path.route:
            self._path = RoutePath(obs.route, self.road_map, self.config.curvature_window)
            self._segment = -1
        ego = obs.frame.ego
        if not ego.is_finite():
            raise ValueError(f"BaselineAgent.run_step: ego state is not finite: {ego}")
        x, y, yaw = ego.pose.x, ego.pose.y, ego.pose.yaw
        v = float(ego.velocity[0])
        s_ego = self._localise(x, y, yaw, v)
        self.route_s = s_ego

        steer = self._steer(x, y, yaw, v, s_ego)
        v0 = self.desired_speed(s_ego)
        self.target_speed = v0
        constraints = self.constraints(obs.ground_truth, s_ego, v)
        accel, limiting = self.idm_accel(v, v0, constraints)
        self.last_constraint = limiting
        self._plan = self._rollout(s_ego, v, constraints)

        cfg = self.config
        if abs(v) < cfg.standstill_speed and accel < cfg.move_off_accel:
            self._v_ref = max(v, 0.0)
            self._integral = 0.0
            return Control(throttle=0.0, steer=steer, brake=cfg.hold_brake)
        throttle, brake = self._speed_control(v, accel)
        return Control(throttle=throttle, steer=steer, brake=brake)

    def _localise(self, x: float, y: float, yaw: float, v: float) -> float:
        """Arc length of the ego on the path, searched near the last projection."""
        path = self._path
        assert path is not None
        cfg = self.config
        point = np.array([[x, y]])
        if self._segment < 0:
            # first step: the nearest segment whose direction agrees with the ego's heading
            s_all, lateral, dist, seg = path.project_all(point)
            seg_yaw = np.arctan2(path.tangent[seg, 1], path.tangent[seg, 0])
            wrong_way = np.abs(wrap_angle(seg_yaw - yaw)) > math.pi / 2
            k = int(np.argmin(dist + 1e3 * wrong_way))
            self._segment = int(seg[k])
            self.lateral_error = float(lateral[k])
            return float(s_all[k])
        back = int(math.ceil(cfg.search_behind / path.spacing))
        ahead = int(math.ceil((cfg.search_ahead + abs(v) * self.dt) / path.spacing))
        s, lateral, _, seg = path.project(point, self._segment - back, self._segment + ahead + 1)
        self._segment = int(seg[0])
        self.lateral_error = float(lateral[0])
        return float(s[0])

    def _steer(self, x: float, y: float, yaw: float, v: float, s_ego: float) -> float:
        """Pure pursuit: the CARLA steer command towards the lookahead point."""
        assert self._path is not None
        cfg = self.config
        lookahead = min(max(cfg.lookahead_gain * abs(v), cfg.min_lookahead), cfg.max_lookahead)
        target = self._path.pose_at(s_ego + lookahead)
        dx, dy = float(target[0]) - x, float(target[1]) - y
        c, s = math.cos(yaw), math.sin(yaw)
        local_x, local_y = c * dx + s * dy, -s * dx + c * dy
        d2 = local_x * local_x + local_y * local_y
        if d2 < 1e-6:
            return 0.0
        wheel = math.atan(self.profile.wheelbase * 2.0 * local_y / d2)
        return min(max(-wheel / self.profile.max_steer, -1.0), 1.0)

    # -- longitudinal ------------------------------------------------------------------------

    def desired_speed(self, s_ego: float) -> float:
        """[m/s] the speed limit and curvature-limited speed ahead, relaxed by the distance
        left to slow down for them at ``preview_decel``."""
        path = self._path
        assert path is not None
        cfg = self.config
        lo = path.index_at(s_ego)
        hi = path.index_at(s_ego + cfg.preview_distance) + 2
        ahead = np.maximum(path.s[lo:hi] - s_ego, 0.0)
        curve = np.sqrt(cfg.max_lateral_accel / np.maximum(np.abs(path.curvature[lo:hi]), 1e-9))
        limit = np.minimum(path.speed_limits[lo:hi], curve)
        return float(np.min(np.sqrt(limit * limit + 2.0 * cfg.preview_decel * ahead)))

    def constraints(self, truth: GroundTruth, s_ego: float, v: float) -> list[Constraint]:
        """What lies on the route path ahead: agents, red/yellow stop lines, the route's end."""
        path = self._path
        assert path is not None
        cfg = self.config
        front = self.profile.length - self.profile.rear_overhang
        s_front = s_ego + front
        lo = max(self._segment, 0)
        hi = path.index_at(s_front + cfg.detection_range) + 1
        out = self._agent_constraints(truth, s_ego, s_front, lo, hi)
        out.extend(self._light_constraints(truth, s_front, v, lo, hi))
        end_gap = path.length - s_ego + cfg.idm_min_gap
        if end_gap - cfg.idm_min_gap <= cfg.detection_range:
            out.append(Constraint(end_gap, 0.0, "route_end"))
        return out

    def _agent_constraints(
        self, truth: GroundTruth, s_ego: float, s_front: float, lo: int, hi: int
    ) -> list[Constraint]:
        path = self._path
        assert path is not None
        cfg = self.config
        agents = truth.agents_array()
        if len(agents) == 0:
            return []
        centres = agents[:, [AgentIndex.X, AgentIndex.Y]]
        s_c, lat_c, dist_c, seg = path.project(centres, lo, hi + 1)
        boxes = np.zeros((len(agents), len(BoxIndex)))
        boxes[:, BoxIndex.X] = agents[:, AgentIndex.X]
        boxes[:, BoxIndex.Y] = agents[:, AgentIndex.Y]
        boxes[:, BoxIndex.YAW] = agents[:, AgentIndex.YAW]
        boxes[:, BoxIndex.LENGTH] = agents[:, AgentIndex.LENGTH]
        boxes[:, BoxIndex.WIDTH] = agents[:, AgentIndex.WIDTH]
        rel = box2d_corners(boxes) - centres[:, None, :]  # (A, 4, 2)
        tangent = path.tangent[seg]  # (A, 2)
        normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
        along = (rel * tangent[:, None, :]).sum(axis=-1)
        across = (rel * normal[:, None, :]).sum(axis=-1)
        nearest_s = s_c + along.min(axis=1)
        lat_lo = lat_c + across.min(axis=1)
        lat_hi = lat_c + across.max(axis=1)
        pedestrian = np.array(
            [a.agent_class == AgentClass.PEDESTRIAN for a in truth.agents], dtype=bool
        )
        extra = np.where(pedestrian, cfg.pedestrian_margin, 0.0)
        body = 0.5 * self.profile.width + cfg.body_margin + extra
        half_diagonal = 0.5 * np.hypot(boxes[:, BoxIndex.LENGTH], boxes[:, BoxIndex.WIDTH])
        centre_in = dist_c <= cfg.corridor_half_width + extra
        overlaps = (lat_lo <= body) & (lat_hi >= -body) & (dist_c <= body + half_diagonal)
        gap = nearest_s - s_front
        relevant = (centre_in | overlaps) & (s_c >= s_ego) & (gap <= cfg.detection_range)
        velocity = agents[:, [AgentIndex.VX, AgentIndex.VY]]
        speed_along = np.where(pedestrian, 0.0, (velocity * tangent).sum(axis=1))
        out: list[Constraint] = []
        for i in np.flatnonzero(relevant):
            kind = "pedestrian" if pedestrian[i] else truth.agents[i].agent_class.name.lower()
            out.append(Constraint(float(gap[i]), float(speed_along[i]), kind))
        return out

    def _light_constraints(
        self, truth: GroundTruth, s_front: float, v: float, lo: int, hi: int
    ) -> list[Constraint]:
        path = self._path
        assert path is not None
        cfg = self.config
        out: list[Constraint] = []
        for light in truth.traffic_lights:
            if light.color not in (TrafficLightColor.RED, TrafficLightColor.YELLOW):
                continue
            if light.stop_line is None:
                continue
            s_cross = path.crossing(
                np.asarray(light.stop_line), lo, hi + 1, cfg.min_crossing_sine, cfg.junction_depth
            )
            if s_cross is None:
                continue
            gap = s_cross - s_front
            if gap < -cfg.stop_line_behind or gap > cfg.detection_range:
                continue
            speed = max(v, 0.0)
            needed = speed * speed / (2.0 * max(gap, 1e-3)) if speed > 0 else 0.0
            limit = (
                cfg.yellow_max_decel
                if light.color == TrafficLightColor.YELLOW
                else cfg.red_max_decel
            )
            if needed > limit:
                continue  # too late to stop before the line: go through
            out.append(Constraint(gap, 0.0, f"{light.color.name.lower()}_light"))
        return out

    def idm_accel(
        self, v: float, v0: float, constraints: list[Constraint]
    ) -> tuple[float, Constraint | None]:
        """IDM acceleration [m/s²] at speed ``v`` for desired speed ``v0`` and the nearest
        constraint, and the constraint that binds (None when driving freely)."""
        cfg = self.config
        a, b = cfg.idm_max_accel, cfg.idm_comfort_decel
        speed = max(v, 0.0)
        v0 = max(v0, 0.1)
        if speed <= v0:
            free = a * (1.0 - (speed / v0) ** cfg.idm_exponent)
        else:
            free = max(-cfg.overspeed_gain * (speed - v0), -cfg.max_command_decel)
        interaction = 0.0
        limiting: Constraint | None = None
        for c in constraints:
            if c.gap <= 0.1:
                term = -math.inf
            else:
                desired_gap = cfg.idm_min_gap + max(
                    0.0,
                    speed * cfg.idm_time_headway
                    + speed * (speed - c.speed) / (2.0 * math.sqrt(a * b)),
                )
                term = -a * (desired_gap / c.gap) ** 2
            if term < interaction:
                interaction, limiting = term, c
        accel = max(min(free + interaction, a), -cfg.max_command_decel)
        return accel, limiting

    def _speed_control(self, v: float, accel: float) -> tuple[float, float]:
        """PI tracking of the speed ``accel`` integrates to, with ``accel`` as feedforward."""
        cfg = self.config
        self._v_ref = min(max(self._v_ref, v - cfg.reference_band), v + cfg.reference_band)
        error = self._v_ref - v
        self._integral = min(
            max(self._integral + error * self.dt, -cfg.integral_limit), cfg.integral_limit
        )
        command = accel + cfg.speed_kp * error + cfg.speed_ki * self._integral
        self._v_ref = max(self._v_ref + accel * self.dt, 0.0)
        return self._pedals(v, command)

    def _pedals(self, v: float, accel: float) -> tuple[float, float]:
        """(throttle, brake) giving ``accel`` [m/s²] at speed ``v`` per the vehicle model."""
        p = self.profile
        need = accel + p.rolling_decel + p.drag_coefficient * v * v
        if need >= 0.0:
            fade = max(1.0 - (max(v, 0.0) / p.max_speed) ** 2, 0.05)
            return min(need / (p.max_accel * fade), 1.0), 0.0
        return 0.0, min(-need / p.max_decel, 1.0)

    def _rollout(self, s_ego: float, v: float, constraints: list[Constraint]) -> FloatArray:
        """The planned trajectory: the speed law integrated along the path."""
        path = self._path
        assert path is not None
        cfg = self.config
        substeps = 2
        h = cfg.plan_step / substeps
        count = max(int(round(cfg.plan_horizon / cfg.plan_step)), 1)
        s, speed = s_ego, max(v, 0.0)
        samples = np.empty(count)
        s_time = 0.0
        for k in range(count):
            for _ in range(substeps):
                moved = s - s_ego
                t = s_time
                now = [
                    Constraint(c.gap + c.speed * t - moved, c.speed, c.kind) for c in constraints
                ]
                accel, _ = self.idm_accel(speed, self.desired_speed(s), now)
                new_speed = max(speed + accel * h, 0.0)
                s += 0.5 * (speed + new_speed) * h
                speed = new_speed
                s_time += h
            samples[k] = s
        poses: FloatArray = path.pose_at(samples)
        return poses
