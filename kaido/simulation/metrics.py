"""Closed-loop route metrics: the CARLA Leaderboard 2.0 driving score, nuPlan comfort and TTC.

:class:`RouteEvaluator` watches one route tick by tick, as the leaderboard's criteria watch a
route in CARLA (``srunner`` ``atomic_criteria``), and scores it (:class:`RouteResult`, written by
:mod:`kaido.simulation.results` in the leaderboard's ``results.json`` shape).

What is measured, each rule as the leaderboard defines it (distances in metres, times in seconds;
the defaults live in :class:`MetricConfig`). The ego's *location* is its box centre (a CARLA
actor's location), its heading the rear-axle pose's yaw.

Route completion (``RouteCompletionTest``)
    A route point counts as passed once the ego is beyond the plane through it normal to the
    route's direction; RC is the arc-length share of the route up to the last passed point,
    searched in a short window ahead so that it only grows. The route is completed when RC
    exceeds 99 % and the ego is within 10 m of the route's end; RC is then 100.
Collisions (``CollisionTest``)
    The ego's box against every ground-truth agent's box (yaw-only 3D boxes: 2D separating axes
    plus z overlap) and every static obstacle. Agents are classed by ``AgentClass``: pedestrians
    0.50, vehicles and cyclists 0.60 (a bicycle is a vehicle in CARLA), static agents and
    obstacles 0.65; an ``UNKNOWN`` agent is a real body and counts as a vehicle. A contact is not
    counted again when it is with the actor of the last counted collision within 5 s of it, or
    when the ego is within 5 m of where the last counted collision happened (whatever the actor).
    A contact that has not ended since the previous tick is never counted again: CARLA's physics
    pushes bodies apart, a kinematic simulator lets boxes overlap for many ticks.
Red lights (``RunningRedLightTest``)
    A RED light within 15 m (of its stop line's midpoint) is run when the segment behind the ego
    from 0.8 half-lengths to one half-length plus 1 m behind its centre crosses the light's stop
    line, i.e. when the ego's tail passes the line, while the ego is on a lane the light controls
    (``affected_lane_ids``: the road map's lane indices of the lanes at the tail, or the lanes
    leading into them, headed within 90° of the ego) or, when the light names no lanes, while the
    ego heads within 45° of the stop line's normal. The same light is not counted twice in a row.
Stop signs (``RunningStopTest``)
    For each :class:`StopSign` (the road map has none yet; scenarios pass them in): the ego,
    driving with the sign, enters the zone that reaches 5 m before the stop line and must drop
    below 0.1 m/s before its centre leaves the zone, else it ran the stop (0.80).
Outside route lanes (``OutsideRouteLanesTest``)
    Outside when the ego's location is more than 1.3 m outside every driving and parking lane,
    or on a driving lane (outside junctions) whose direction differs from the ego's heading by
    more than 120°. The route distance passed while outside, as a share ``p`` of the route
    distance passed, is one infraction with factor ``1 - p / 100`` (so that share of the route
    counts for nothing in the driving score).
Minimum speed (``MinimumSpeedRouteTest``)
    The route is cut into 4 equal stretches; on each, the ego's mean speed is compared with the
    mean speed of the vehicles around it (within 50 m: the leaderboard's background traffic
    lives in a bubble around the ego), and a stretch below 100 % is an infraction with factor
    ``1 - 0.3 * (1 - p / 100)``. Ticks without surrounding vehicles do not count.
Route deviation (``InRouteTest``)
    The route ends ("Agent deviated from the route") when the ego is 30 m or more from the
    nearest route point of its window, or when the route distance passed while 15 m or more
    away exceeds 30 % of the route.
Agent blocked (``ActorBlockedTest``)
    The route ends ("Agent got blocked") after more than 180 s below 0.1 m/s.
Route timeout
    Decided by the episode runner (``finish(timed_out=True)``): "Agent timed out".
Scenario timeout, yield to an emergency vehicle
    Scenario-driven: :meth:`RouteEvaluator.report_scenario_timeout`, and
    :meth:`RouteEvaluator.watch_emergency_vehicle` / :meth:`RouteEvaluator.end_emergency_vehicle`
    (``YieldToEmergencyVehicleTest``: failed when, at the end, the ego is still ahead of the
    emergency vehicle along its heading).

Beyond the leaderboard, nuPlan-style:

Comfort (``ego_is_comfortable``)
    Longitudinal acceleration in [-4.05, 2.40] m/s², |lateral acceleration| <= 4.89 m/s²,
    |yaw rate| <= 0.95 rad/s, |yaw acceleration| <= 1.93 rad/s², |longitudinal jerk| <=
    4.13 m/s³, |jerk magnitude| <= 8.37 m/s³, from the ego states' accelerations and the
    heading, smoothed and differentiated with Savitzky-Golay filters (:func:`savgol_filter`) as
    nuPlan does; windows are given in seconds (nuPlan's sample counts at its 10 Hz).
Time to collision (``time_to_collision_within_bound``)
    Every tick with the ego moving, the ego's and the agents' footprints are projected at
    constant velocity every 0.1 s up to 3 s; the TTC is the first time they overlap (agents
    already in contact and agents behind the ego, beyond 150° of its heading, are left out).
    Ticks below 0.95 s are violations.
Progress
    The furthest arc length reached along the route (projection of the ego onto the path while
    within 15 m of it), over the route's length.
"""

from __future__ import annotations

import dataclasses
import math
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from numpy.lib.stride_tricks import sliding_window_view
from shapely.geometry.base import BaseGeometry

from kaido.scene.agents import AgentClass, EgoState
from kaido.scene.frame import GroundTruth, TrafficLightColor
from kaido.scene.geometry import Box3D, BoxIndex, box2d_overlap, box3d_overlap, wrap_angle
from kaido.scene.road_map import LaneType, RoadMap
from kaido.scene.route_planner import RoutePlan
from kaido.simulation.backend import StaticObstacle
from kaido.simulation.results import (
    METRIC_VERSION,
    PENALTIES,
    Infraction,
    InfractionKind,
    RouteResult,
    global_results,
    infraction_penalty,
    results_document,
)

__all__ = [
    "METRIC_VERSION",
    "PENALTIES",
    "ComfortQuantity",
    "Infraction",
    "InfractionKind",
    "MetricConfig",
    "RouteEvaluator",
    "RouteResult",
    "RouteStatus",
    "StopSign",
    "comfort_metrics",
    "global_results",
    "results_document",
    "savgol_filter",
    "time_to_collision",
]

FloatArray = npt.NDArray[np.float64]


class RouteStatus(Enum):
    """Where a route stands after a tick."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


# Leaderboard failure reasons ("Failed - <reason>").
FAILURE_TIMEOUT = "Agent timed out"
FAILURE_DEVIATION = "Agent deviated from the route"
FAILURE_BLOCKED = "Agent got blocked"
FAILURE_AGENT_CRASH = "Agent crashed"
FAILURE_SIMULATION_CRASH = "Simulation crashed"
FAILURE_SENSORS = "Agent's sensors were invalid"
FAILURE_AGENT_SETUP = "Agent couldn't be set up"

_CRASH_PREFIXES: tuple[tuple[str, str], ...] = (
    ("simulation", FAILURE_SIMULATION_CRASH),
    ("sensors", FAILURE_SENSORS),
    ("agent setup", FAILURE_AGENT_SETUP),
)
"""How a ``crashed`` message maps to the leaderboard's failure: by its (case-insensitive) start;
anything else is an agent crash."""

_TYPE_NAMES: dict[AgentClass, str] = {
    AgentClass.VEHICLE: "vehicle",
    AgentClass.CYCLIST: "vehicle.bicycle",
    AgentClass.PEDESTRIAN: "walker.pedestrian",
    AgentClass.STATIC: "static.prop",
    AgentClass.UNKNOWN: "vehicle.unknown",
}
_COLLISION_KINDS: dict[AgentClass, InfractionKind] = {
    AgentClass.VEHICLE: InfractionKind.COLLISION_VEHICLE,
    AgentClass.CYCLIST: InfractionKind.COLLISION_VEHICLE,
    AgentClass.PEDESTRIAN: InfractionKind.COLLISION_PEDESTRIAN,
    AgentClass.STATIC: InfractionKind.COLLISION_STATIC,
    AgentClass.UNKNOWN: InfractionKind.COLLISION_VEHICLE,
}
_TRAFFIC_CLASSES = frozenset({AgentClass.VEHICLE, AgentClass.CYCLIST})
"""Classes whose speeds make up "the surrounding traffic" of the minimum-speed test."""

_COMPLETION_MIN_POINTS = 2
"""Route points always searched ahead for route completion (the leaderboard's window)."""
_DEVIATION_MIN_POINTS = 5
"""Route points always searched ahead for route deviation (the leaderboard's window)."""
_LANE_SNAP = 3.0
"""[m] lanes whose centreline is this close to the ego's tail count as its lanes (red lights)."""
_WRONG_LANE_SEARCH = 5.0
"""[m] farthest driving-lane centreline considered for the opposite-direction test."""


@dataclass(frozen=True)
class MetricConfig:
    """Thresholds of the route metrics; defaults are the leaderboard's and nuPlan's values."""

    route_deviation_distance: float = 30.0
    """[m] distance from the route that ends it (``InRouteTest`` ``offroad_max``)."""
    route_deviation_safe_distance: float = 15.0
    """[m] distance from the route beyond which the route distance passed is "out of route"."""
    route_deviation_max_share: float = 0.30
    """Share of the route that may be passed out of route before the route ends."""
    route_window: float = 5.0
    """[m] how far ahead along the route the route-progress tests search each tick (at least
    twice the distance moved since the previous tick plus 1 m)."""
    completion_distance: float = 10.0
    """[m] the route is completed within this distance of its end..."""
    completion_percentage: float = 99.0
    """[%] ...with route completion above this."""
    blocked_time: float = 180.0
    """[s] time below ``blocked_speed`` that ends the route."""
    blocked_speed: float = 0.1
    """[m/s] speed under which the ego counts as standing."""
    collision_radius: float = 5.0
    """[m] contacts within this distance of the last counted collision are not counted."""
    collision_id_time: float = 5.0
    """[s] contacts with the last counted collision's actor within this time are not counted."""
    red_light_distance: float = 15.0
    """[m] only red lights within this distance of the ego are checked."""
    red_light_heading_tolerance: float = math.radians(45.0)
    """[rad] a light naming no lanes applies when the ego heads this close to its line's
    normal."""
    outside_lane_margin: float = 1.3
    """[m] how far beyond the driving and parking lanes the ego may be before it is outside."""
    wrong_lane_angle: float = math.radians(120.0)
    """[rad] heading difference from the lane beyond which the ego is in a lane of opposite
    direction."""
    stop_zone_length: float = 5.0
    """[m] depth of a stop sign's zone before its stop line."""
    stop_speed: float = 0.1
    """[m/s] speed the ego must drop below inside a stop sign's zone."""
    min_speed_checkpoints: int = 4
    """Number of equal route stretches over which the minimum speed is checked."""
    min_speed_radius: float = 50.0
    """[m] vehicles within this distance make up the surrounding traffic."""
    ttc_horizon: float = 3.0
    """[s] how far ahead time to collision is projected."""
    ttc_step: float = 0.1
    """[s] step of the time-to-collision projection."""
    ttc_threshold: float = 0.95
    """[s] a tick with a smaller time to collision is a violation."""
    ttc_stopped_speed: float = 5e-3
    """[m/s] below this the ego is stopped and has no time to collision."""
    ttc_behind_angle: float = math.radians(150.0)
    """[rad] agents beyond this angle from the ego's heading are behind it (left out of TTC)."""
    comfort_lon_accel: tuple[float, float] = (-4.05, 2.40)
    """[m/s²] bounds of the longitudinal acceleration."""
    comfort_lat_accel: float = 4.89
    """[m/s²] bound of |lateral acceleration|."""
    comfort_yaw_rate: float = 0.95
    """[rad/s] bound of |yaw rate|."""
    comfort_yaw_accel: float = 1.93
    """[rad/s²] bound of |yaw acceleration|."""
    comfort_lon_jerk: float = 4.13
    """[m/s³] bound of |longitudinal jerk|."""
    comfort_jerk: float = 8.37
    """[m/s³] bound of |jerk magnitude| (derivative of the acceleration's magnitude)."""
    comfort_accel_window: float = 0.8
    """[s] Savitzky-Golay window smoothing the accelerations (nuPlan: 8 samples at 10 Hz)."""
    comfort_jerk_window: float = 1.5
    """[s] Savitzky-Golay window differentiating the accelerations (nuPlan: 15 samples)."""
    comfort_yaw_window: float = 0.5
    """[s] Savitzky-Golay window differentiating the heading (nuPlan: 5 samples)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "comfort_lon_accel":
                lo, hi = (float(v) for v in value)
                if not (math.isfinite(lo) and math.isfinite(hi) and lo < 0.0 < hi):
                    raise ValueError(
                        f"MetricConfig.comfort_lon_accel: expected (min < 0 < max) m/s², "
                        f"got {value!r}"
                    )
                object.__setattr__(self, f.name, (lo, hi))
                continue
            if f.name == "min_speed_checkpoints":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(
                        f"MetricConfig.min_speed_checkpoints: expected an int >= 1, got {value!r}"
                    )
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"MetricConfig.{f.name}: expected a number, got {value!r}")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"MetricConfig.{f.name}: must be finite and > 0, got {value}")
        if self.route_deviation_safe_distance > self.route_deviation_distance:
            raise ValueError(
                "MetricConfig: route_deviation_safe_distance "
                f"({self.route_deviation_safe_distance} m) exceeds route_deviation_distance "
                f"({self.route_deviation_distance} m)"
            )
        if self.route_deviation_max_share > 1.0:
            raise ValueError(
                f"MetricConfig.route_deviation_max_share: must be <= 1, got "
                f"{self.route_deviation_max_share}"
            )
        if self.completion_percentage > 100.0:
            raise ValueError(
                f"MetricConfig.completion_percentage: must be <= 100 %, got "
                f"{self.completion_percentage}"
            )
        for name in ("wrong_lane_angle", "ttc_behind_angle", "red_light_heading_tolerance"):
            if getattr(self, name) > math.pi:
                raise ValueError(
                    f"MetricConfig.{name}: must be <= pi rad, got {getattr(self, name)}"
                )
        if self.ttc_step > self.ttc_horizon:
            raise ValueError(
                f"MetricConfig: ttc_step ({self.ttc_step} s) exceeds ttc_horizon "
                f"({self.ttc_horizon} s)"
            )


@dataclass(frozen=True, eq=False)
class StopSign:
    """A stop sign: where traffic must stop and which way it drives through the line."""

    sign_id: str | int
    """Identity of the sign."""
    stop_line: FloatArray
    """``(2, 2)`` float64 end points of the stop line, world frame [m]."""
    heading: float
    """Direction of travel through the stop line [rad]."""

    def __post_init__(self) -> None:
        line = np.asarray(self.stop_line, dtype=np.float64)
        if line.shape != (2, 2) or not np.all(np.isfinite(line)):
            raise ValueError(
                f"StopSign({self.sign_id!r}).stop_line: expected finite (2, 2) end points, "
                f"got {np.shape(self.stop_line)}"
            )
        if float(np.linalg.norm(line[1] - line[0])) <= 0.0:
            raise ValueError(f"StopSign({self.sign_id!r}).stop_line: end points coincide")
        if not math.isfinite(self.heading):
            raise ValueError(f"StopSign({self.sign_id!r}).heading: must be finite")
        line.flags.writeable = False
        object.__setattr__(self, "stop_line", line)

    @property
    def location(self) -> tuple[float, float]:
        """Midpoint of the stop line [m]."""
        mid = self.stop_line.mean(axis=0)
        return float(mid[0]), float(mid[1])

    def in_zone(self, point: FloatArray, depth: float) -> bool:
        """Whether ``point`` ``(2,)`` lies within ``depth`` [m] before the stop line, across its
        width."""
        direction = np.array([math.cos(self.heading), math.sin(self.heading)])
        mid = self.stop_line.mean(axis=0)
        along_line = self.stop_line[1] - self.stop_line[0]
        half_width = 0.5 * float(np.linalg.norm(along_line))
        unit_line = along_line / (2.0 * half_width)
        rel = np.asarray(point, dtype=np.float64) - mid
        along = float(rel @ direction)
        across = float(rel @ unit_line)
        return -depth <= along <= 0.0 and abs(across) <= half_width


# ----------------------------------------------------------------------------------------------
# Savitzky-Golay filtering, comfort and time to collision
# ----------------------------------------------------------------------------------------------


def savgol_filter(
    y: npt.ArrayLike, window_length: int, polyorder: int, deriv: int = 0, delta: float = 1.0
) -> FloatArray:
    """Savitzky-Golay smoothing or derivative of samples ``y`` ``(T,)`` spaced ``delta`` apart.

    Each output is the ``deriv``-th derivative of the least-squares polynomial of degree
    ``polyorder`` through the ``window_length`` (odd) samples centred on it; the first and last
    ``window_length // 2`` outputs come from the polynomial through the first / last window
    (SciPy's ``mode="interp"``). A derivative above ``polyorder`` is zero.
    """
    values = np.asarray(y, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"savgol_filter: y must be 1-D (T,), got shape {values.shape}")
    n = values.shape[0]
    if window_length < 1 or window_length % 2 == 0:
        raise ValueError(f"savgol_filter: window_length must be odd and >= 1, got {window_length}")
    if window_length > n:
        raise ValueError(f"savgol_filter: window_length {window_length} exceeds {n} samples")
    if not 0 <= polyorder < window_length:
        raise ValueError(
            f"savgol_filter: polyorder must be in [0, window_length), got {polyorder} "
            f"for window_length {window_length}"
        )
    if deriv < 0:
        raise ValueError(f"savgol_filter: deriv must be >= 0, got {deriv}")
    if not (math.isfinite(delta) and delta > 0):
        raise ValueError(f"savgol_filter: delta must be > 0, got {delta}")
    if deriv > polyorder:
        return np.zeros(n, dtype=np.float64)
    half = window_length // 2
    scale = delta**deriv
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    fit = np.linalg.pinv(np.vander(offsets, polyorder + 1, increasing=True))  # (P+1, W)
    weights = fit[deriv] * math.factorial(deriv) / scale
    out = np.empty(n, dtype=np.float64)
    out[half : n - half] = sliding_window_view(values, window_length) @ weights
    if half:
        positions = np.arange(window_length, dtype=np.float64)
        edge_fit = np.linalg.pinv(np.vander(positions, polyorder + 1, increasing=True))
        for block, at, target in (
            (values[:window_length], positions[:half], slice(0, half)),
            (values[n - window_length :], positions[window_length - half :], slice(n - half, n)),
        ):
            coef = np.polynomial.polynomial.polyder(edge_fit @ block, deriv)
            out[target] = np.polynomial.polynomial.polyval(at, coef) / scale
    return out


def _savgol_auto(
    y: FloatArray, window_s: float, dt: float, polyorder: int, deriv: int = 0
) -> FloatArray:
    """:func:`savgol_filter` with a window given in seconds, shrunk to fit short series."""
    n = y.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    window = max(int(round(window_s / dt)), polyorder + 1)
    if window % 2 == 0:
        window += 1
    if window > n:
        window = n if n % 2 else n - 1
    order = min(polyorder, window - 1)
    return savgol_filter(y, window, order, deriv=deriv, delta=dt)


class ComfortQuantity(Enum):
    """The six quantities of nuPlan's ``ego_is_comfortable``; values are their names."""

    LON_ACCELERATION = "lon_acceleration"
    LAT_ACCELERATION = "lat_acceleration"
    YAW_RATE = "yaw_rate"
    YAW_ACCELERATION = "yaw_acceleration"
    LON_JERK = "lon_jerk"
    JERK = "jerk_magnitude"


def comfort_metrics(
    times: npt.ArrayLike,
    yaws: npt.ArrayLike,
    accelerations: npt.ArrayLike,
    config: MetricConfig = MetricConfig(),
) -> tuple[dict[str, float], bool]:
    """nuPlan-style comfort of an ego trajectory.

    ``times`` ``(T,)`` [s] strictly increasing, ``yaws`` ``(T,)`` [rad], ``accelerations``
    ``(T, 2)`` (longitudinal, lateral) in the ego frame [m/s²]. Returns the values named in
    :attr:`RouteResult.comfort` and whether every quantity stays in bounds at every tick.
    """
    t = np.asarray(times, dtype=np.float64)
    yaw = np.asarray(yaws, dtype=np.float64)
    acc = np.asarray(accelerations, dtype=np.float64)
    n = t.shape[0]
    if t.ndim != 1 or yaw.shape != (n,) or acc.shape != (n, 2):
        raise ValueError(
            f"comfort_metrics: expected times (T,), yaws (T,), accelerations (T, 2); got "
            f"{t.shape}, {yaw.shape}, {acc.shape}"
        )
    if n >= 2 and not np.all(np.diff(t) > 0):
        raise ValueError("comfort_metrics: times must be strictly increasing")
    out: dict[str, float] = {}
    if n == 0:
        for q in ComfortQuantity:
            out[f"{q.value}_min"] = out[f"{q.value}_max"] = math.nan
            out[f"{q.value}_within_bounds"] = math.nan
        out["all_within_bounds"] = math.nan
        return out, True
    dt = float(np.mean(np.diff(t))) if n >= 2 else 1.0
    cfg = config
    lon = _savgol_auto(acc[:, 0], cfg.comfort_accel_window, dt, 2)
    lat = _savgol_auto(acc[:, 1], cfg.comfort_accel_window, dt, 2)
    heading = np.unwrap(yaw)
    magnitude = _savgol_auto(np.hypot(acc[:, 0], acc[:, 1]), cfg.comfort_accel_window, dt, 2)
    series = {
        ComfortQuantity.LON_ACCELERATION: lon,
        ComfortQuantity.LAT_ACCELERATION: lat,
        ComfortQuantity.YAW_RATE: _savgol_auto(heading, cfg.comfort_yaw_window, dt, 2, 1),
        ComfortQuantity.YAW_ACCELERATION: _savgol_auto(heading, cfg.comfort_yaw_window, dt, 3, 2),
        ComfortQuantity.LON_JERK: _savgol_auto(lon, cfg.comfort_jerk_window, dt, 2, 1),
        ComfortQuantity.JERK: _savgol_auto(magnitude, cfg.comfort_jerk_window, dt, 2, 1),
    }
    lo, hi = cfg.comfort_lon_accel
    bounds = {
        ComfortQuantity.LON_ACCELERATION: (lo, hi),
        ComfortQuantity.LAT_ACCELERATION: (-cfg.comfort_lat_accel, cfg.comfort_lat_accel),
        ComfortQuantity.YAW_RATE: (-cfg.comfort_yaw_rate, cfg.comfort_yaw_rate),
        ComfortQuantity.YAW_ACCELERATION: (-cfg.comfort_yaw_accel, cfg.comfort_yaw_accel),
        ComfortQuantity.LON_JERK: (-cfg.comfort_lon_jerk, cfg.comfort_lon_jerk),
        ComfortQuantity.JERK: (-cfg.comfort_jerk, cfg.comfort_jerk),
    }
    all_ok = np.ones(n, dtype=bool)
    for q, values in series.items():
        low, high = bounds[q]
        ok = (values >= low) & (values <= high)  # NaN compares False: not comfortable
        all_ok &= ok
        out[f"{q.value}_min"] = float(np.min(values))
        out[f"{q.value}_max"] = float(np.max(values))
        out[f"{q.value}_within_bounds"] = float(np.mean(ok))
    out["all_within_bounds"] = float(np.mean(all_ok))
    return out, bool(np.all(all_ok))


def time_to_collision(
    ego_box: npt.ArrayLike,
    ego_velocity: npt.ArrayLike,
    boxes: npt.ArrayLike,
    velocities: npt.ArrayLike,
    *,
    horizon: float,
    step: float,
) -> float:
    """First time [s] at which constant-velocity footprints overlap, ``inf`` if none by
    ``horizon``.

    ``ego_box`` ``(5,)`` and ``boxes`` ``(A, 5)`` are packed 2D boxes (:class:`BoxIndex`),
    ``ego_velocity`` ``(2,)`` and ``velocities`` ``(A, 2)`` world-frame velocities [m/s]; the
    projection is checked at ``step, 2 step, ...`` up to ``horizon`` [s], headings unchanged.
    """
    ego = np.asarray(ego_box, dtype=np.float64)
    agents = np.asarray(boxes, dtype=np.float64).reshape(-1, len(BoxIndex))
    vel = np.asarray(velocities, dtype=np.float64).reshape(-1, 2)
    ego_vel = np.asarray(ego_velocity, dtype=np.float64)
    if ego.shape != (len(BoxIndex),) or ego_vel.shape != (2,) or len(vel) != len(agents):
        raise ValueError(
            f"time_to_collision: expected ego_box (5,), ego_velocity (2,), boxes (A, 5), "
            f"velocities (A, 2); got {ego.shape}, {ego_vel.shape}, {agents.shape}, {vel.shape}"
        )
    if len(agents) == 0:
        return math.inf
    count = int(math.floor(horizon / step + 1e-9))
    times = step * np.arange(1, count + 1, dtype=np.float64)  # (K,)
    ego_k = np.repeat(ego[None], len(times), axis=0)  # (K, 5)
    ego_k[:, [BoxIndex.X, BoxIndex.Y]] += times[:, None] * ego_vel
    agents_k = np.repeat(agents[None], len(times), axis=0)  # (K, A, 5)
    agents_k[..., [BoxIndex.X, BoxIndex.Y]] += times[:, None, None] * vel[None]
    hit = box2d_overlap(ego_k[:, None, :], agents_k).any(axis=1)  # (K,)
    if not np.any(hit):
        return math.inf
    return float(times[int(np.argmax(hit))])


# ----------------------------------------------------------------------------------------------
# Geometry helpers
# ----------------------------------------------------------------------------------------------


def _cross(o: FloatArray, a: FloatArray, b: FloatArray) -> float:
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def _segments_intersect(p1: FloatArray, p2: FloatArray, q1: FloatArray, q2: FloatArray) -> bool:
    """Whether closed segments p1-p2 and q1-q2 share a point."""
    d1, d2 = _cross(q1, q2, p1), _cross(q1, q2, p2)
    d3, d4 = _cross(p1, p2, q1), _cross(p1, p2, q2)
    if d1 * d2 < 0 and d3 * d4 < 0:
        return True

    def on_segment(a: FloatArray, b: FloatArray, c: FloatArray) -> bool:
        return bool(
            min(a[0], b[0]) - 1e-12 <= c[0] <= max(a[0], b[0]) + 1e-12
            and min(a[1], b[1]) - 1e-12 <= c[1] <= max(a[1], b[1]) + 1e-12
        )

    return bool(
        (d1 == 0 and on_segment(q1, q2, p1))
        or (d2 == 0 and on_segment(q1, q2, p2))
        or (d3 == 0 and on_segment(p1, p2, q1))
        or (d4 == 0 and on_segment(p1, p2, q2))
    )


_LANE_AREAS: weakref.WeakKeyDictionary[RoadMap, dict[float, BaseGeometry]] = (
    weakref.WeakKeyDictionary()
)


def _lane_area(road_map: RoadMap, margin: float) -> BaseGeometry:
    """The driving and parking lanes grown by ``margin`` [m], prepared for point queries."""
    per_map = _LANE_AREAS.setdefault(road_map, {})
    if margin not in per_map:
        parts = [road_map.drivable_area]
        parts += [lane.polygon() for lane in road_map.lanes if lane.lane_type == LaneType.PARKING]
        area = shapely.union_all(parts).buffer(margin)
        shapely.prepare(area)
        per_map[margin] = area
    return per_map[margin]


def _xyz(x: float, y: float, z: float) -> str:
    return f"(x={round(x, 3)}, y={round(y, 3)}, z={round(z, 3)})"


# ----------------------------------------------------------------------------------------------
# The evaluator
# ----------------------------------------------------------------------------------------------


class RouteEvaluator:
    """Scores one route, fed one tick at a time (see the module docstring for the rules).

    Call :meth:`update` every tick with the simulation time and the world; it returns
    :class:`RouteStatus` (``COMPLETED`` / ``FAILED`` end the route; later updates change
    nothing). Then :meth:`finish` gives the :class:`RouteResult`.
    """

    def __init__(
        self,
        route: RoutePlan,
        road_map: RoadMap,
        config: MetricConfig = MetricConfig(),
        *,
        route_id: str = "0",
        ego_length: float,
        ego_width: float,
        stop_signs: Sequence[StopSign] = (),
        index: int = 0,
    ) -> None:
        if not isinstance(route, RoutePlan):
            raise TypeError(
                f"RouteEvaluator: route must be a RoutePlan, got {type(route).__name__}"
            )
        if not isinstance(config, MetricConfig):
            raise TypeError(
                f"RouteEvaluator: config must be a MetricConfig, got {type(config).__name__}"
            )
        path = np.asarray(route.path, dtype=np.float64)
        if path.ndim != 2 or path.shape[0] < 2 or path.shape[1] < 3:
            raise ValueError(f"RouteEvaluator: route.path must be (P>=2, 3), got {path.shape}")
        if not (math.isfinite(route.length) and route.length > 0):
            raise ValueError(f"RouteEvaluator: route length must be > 0 m, got {route.length}")
        for name, value in (("ego_length", ego_length), ("ego_width", ego_width)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"RouteEvaluator: {name} must be > 0 m, got {value}")
        for i, sign in enumerate(stop_signs):
            if not isinstance(sign, StopSign):
                raise TypeError(
                    f"RouteEvaluator: stop_signs[{i}] must be a StopSign, got {type(sign).__name__}"
                )
        self.config = config
        self.route_id = str(route_id)
        self.index = int(index)
        self.road_map = road_map
        self.ego_length = float(ego_length)
        self.ego_width = float(ego_width)
        self._points = path[:, :2].copy()  # (P, 2)
        self._forward = np.stack([np.cos(path[:, 2]), np.sin(path[:, 2])], axis=-1)  # (P, 2)
        self._s = np.asarray(route.s, dtype=np.float64)  # (P,)
        self._length = float(route.length)
        self._percent = self._s / self._length * 100.0
        self._lane_area = _lane_area(road_map, config.outside_lane_margin)
        self._stop_signs = tuple(stop_signs)
        self._wall0 = time.perf_counter()

        self._status = RouteStatus.RUNNING
        self._result: RouteResult | None = None
        self._events: list[Infraction] = []
        self._t: list[float] = []
        self._yaw: list[float] = []
        self._acc: list[tuple[float, float]] = []
        self._ttc: list[float] = []
        self._location = np.zeros(2)
        self._z = 0.0
        self._distance_driven = 0.0
        # route completion / outside route lanes
        self._rc_index = 0
        self._passed_distance = 0.0
        self._outside_distance = 0.0
        self._outside_start: tuple[float, tuple[float, float]] | None = None
        # route deviation
        self._dev_index = 0
        self._out_of_route_distance = 0.0
        self._in_safe_route = True
        self._progress_s = 0.0
        # collisions
        self._contacts: set[tuple[Any, ...]] = set()
        self._last_collision_id: int | None = None
        self._last_collision_time = -math.inf
        self._last_collision_location: FloatArray | None = None
        # red lights, stop signs
        self._last_red_light: str | None = None
        self._stop_target: StopSign | None = None
        self._stop_completed = False
        # minimum speed
        self._ms_current_s = 0.0
        self._ms_traffic = 0.0
        self._ms_ego = 0.0
        self._ms_points = 0
        # blocked
        self._last_moving_time: float | None = None
        # emergency vehicles: track id -> ego ahead of it (failing) at the last sighting
        self._emergency: dict[int, bool] = {}

    # -- live state --------------------------------------------------------------------------

    @property
    def status(self) -> RouteStatus:
        return self._status

    @property
    def route_completion(self) -> float:
        """Route completion so far [%]."""
        if self._status is RouteStatus.COMPLETED:
            return 100.0
        return round(float(self._percent[self._rc_index]), 2)

    @property
    def infractions(self) -> tuple[Infraction, ...]:
        """Infractions so far (with the outside-route-lanes share as it stands)."""
        live = list(self._events)
        outside = self._outside_infraction()
        if outside is not None:
            live.append(outside)
        return tuple(sorted(live, key=lambda i: i.time_s))

    # -- scenario hooks ------------------------------------------------------------------------

    def report_scenario_timeout(self, t: float, scenario: str) -> None:
        """A scenario along the route timed out waiting for the ego (factor 0.70)."""
        self._events.append(
            Infraction(
                InfractionKind.SCENARIO_TIMEOUT,
                float(t),
                (float(self._location[0]), float(self._location[1])),
                None,
                f"Agent timed out a scenario ({scenario})",
            )
        )

    def watch_emergency_vehicle(self, track_id: int) -> None:
        """Start checking that the ego lets the emergency vehicle ``track_id`` pass."""
        self._emergency.setdefault(int(track_id), False)

    def end_emergency_vehicle(self, track_id: int, t: float | None = None) -> None:
        """End the check on ``track_id``: an infraction (0.70) if the ego is still ahead of it."""
        key = int(track_id)
        if key not in self._emergency:
            raise KeyError(f"RouteEvaluator: emergency vehicle {key} is not being watched")
        failing = self._emergency.pop(key)
        if failing:
            when = float(t) if t is not None else (self._t[-1] if self._t else 0.0)
            self._events.append(
                Infraction(
                    InfractionKind.YIELD_EMERGENCY,
                    when,
                    (float(self._location[0]), float(self._location[1])),
                    key,
                    "Agent failed to yield to an emergency vehicle",
                )
            )

    # -- per tick ------------------------------------------------------------------------------

    def update(
        self,
        t: float,
        ego: EgoState,
        ego_box: Box3D,
        ground_truth: GroundTruth,
        static_obstacles: Sequence[StaticObstacle] = (),
    ) -> RouteStatus:
        """Evaluate one tick at simulation time ``t`` [s] (strictly increasing).

        ``ego_box`` is the ego's box in the world frame, ``ground_truth`` the other agents (by
        track id) and traffic lights, ``static_obstacles`` what the ego can hit besides agents.
        As in the leaderboard, the ego is expected to start at the route's first point: route
        completion and deviation search a short window ahead of where the ego has been.
        """
        if self._result is not None:
            raise RuntimeError(f"RouteEvaluator({self.route_id!r}): update after finish")
        if self._status is not RouteStatus.RUNNING:
            return self._status
        if not isinstance(ego, EgoState):
            raise TypeError(
                f"RouteEvaluator.update: ego must be an EgoState, got {type(ego).__name__}"
            )
        if not isinstance(ego_box, Box3D):
            raise TypeError(
                f"RouteEvaluator.update: ego_box must be a Box3D, got {type(ego_box).__name__}"
            )
        if not isinstance(ground_truth, GroundTruth):
            raise TypeError(
                "RouteEvaluator.update: ground_truth must be a GroundTruth, got "
                f"{type(ground_truth).__name__}"
            )
        t = float(t)
        if not math.isfinite(t) or (self._t and t <= self._t[-1]):
            last = self._t[-1] if self._t else None
            raise ValueError(
                f"RouteEvaluator.update: t must be finite and increase, got {t} after {last}"
            )
        location = np.array([ego_box.x, ego_box.y], dtype=np.float64)
        step = float(np.linalg.norm(location - self._location)) if self._t else 0.0
        self._distance_driven += step
        self._location = location
        self._z = ego_box.z - 0.5 * ego_box.height
        yaw = ego.pose.yaw
        speed = ego.speed if math.isfinite(ego.speed) else 0.0
        self._t.append(t)
        self._yaw.append(yaw)
        self._acc.append((ego.acceleration[0], ego.acceleration[1]))
        window = max(self.config.route_window, 2.0 * step + 1.0)

        passed = self._advance_route(location, window)
        outside = self._outside_route_lanes(location, yaw)
        if passed > 0.0:
            self._passed_distance += passed
            if outside:
                self._outside_distance += passed
                if self._outside_start is None:
                    self._outside_start = (t, (float(location[0]), float(location[1])))
        self._check_collisions(t, location, ego_box, ground_truth, static_obstacles)
        self._check_red_lights(t, location, yaw, ground_truth)
        self._check_stop_signs(t, location, yaw, ego, speed)
        self._check_min_speed(t, location, speed, ground_truth)
        self._check_emergency_vehicles(location, ground_truth)
        self._ttc.append(self._time_to_collision(ego, ego_box, speed, ground_truth))
        deviated = self._check_route_deviation(location, window)

        if (
            self._percent[self._rc_index] > self.config.completion_percentage
            and float(np.linalg.norm(location - self._points[-1])) < self.config.completion_distance
        ):
            self._status = RouteStatus.COMPLETED
        elif self._blocked(t, speed):
            self._record(InfractionKind.AGENT_BLOCKED, t, None, "Agent got blocked at ")
            self._status = RouteStatus.FAILED
        elif deviated:
            self._record(
                InfractionKind.ROUTE_DEVIATION, t, None, "Agent deviated from the route at "
            )
            self._status = RouteStatus.FAILED
        return self._status

    def _record(self, kind: InfractionKind, t: float, actor_id: int | None, prefix: str) -> None:
        x, y = float(self._location[0]), float(self._location[1])
        self._events.append(Infraction(kind, t, (x, y), actor_id, prefix + _xyz(x, y, self._z)))

    def _advance_route(self, location: FloatArray, window: float) -> float:
        """Move the route-completion index past the points the ego is beyond; distance passed."""
        i = self._rc_index
        hi = int(np.searchsorted(self._s, self._s[i] + window, side="right"))
        hi = min(max(hi, i + 1 + _COMPLETION_MIN_POINTS), len(self._s))
        if hi <= i + 1:
            return 0.0
        ahead = ((location - self._points[i + 1 : hi]) * self._forward[i + 1 : hi]).sum(axis=1)
        beyond = np.flatnonzero(ahead > 0.0)
        if beyond.size == 0:
            return 0.0
        j = i + 1 + int(beyond[-1])
        self._rc_index = j
        return float(self._s[j] - self._s[i])

    def _outside_route_lanes(self, location: FloatArray, yaw: float) -> bool:
        x, y = float(location[0]), float(location[1])
        if not shapely.contains_xy(self._lane_area, x, y):
            return True
        found = self.road_map.project(x, y, max_distance=_WRONG_LANE_SEARCH)
        if not found:
            return False
        nearest = found[0]
        if self.road_map.lanes[nearest.lane].in_junction:
            return False
        return abs(float(wrap_angle(yaw - nearest.heading))) > self.config.wrong_lane_angle

    def _outside_infraction(self) -> Infraction | None:
        if self._outside_distance <= 0.0 or self._outside_start is None:
            return None
        percent = self._outside_distance / self._passed_distance * 100.0
        when, where = self._outside_start
        return Infraction(
            InfractionKind.OUTSIDE_ROUTE_LANES,
            when,
            where,
            None,
            f"Agent went outside its route lanes for about {round(self._outside_distance, 3)} "
            f"meters ({round(percent, 2)}% of the completed route)",
            value=percent,
        )

    # -- collisions ------------------------------------------------------------------------------

    def _check_collisions(
        self,
        t: float,
        location: FloatArray,
        ego_box: Box3D,
        ground_truth: GroundTruth,
        static_obstacles: Sequence[StaticObstacle],
    ) -> None:
        ego = ego_box.as_array()[None]
        contacts: set[tuple[Any, ...]] = set()
        candidates: list[tuple[tuple[Any, ...], InfractionKind, int | None, str]] = []
        key: tuple[Any, ...]
        if ground_truth.agents:
            boxes = np.stack([a.box.as_array() for a in ground_truth.agents])
            hits = box3d_overlap(ego, boxes)
            for agent, hit in zip(ground_truth.agents, hits, strict=True):
                if hit:
                    key = ("agent", agent.track_id)
                    kind = _COLLISION_KINDS[agent.agent_class]
                    candidates.append((key, kind, agent.track_id, _TYPE_NAMES[agent.agent_class]))
        if static_obstacles:
            for i, obstacle in enumerate(static_obstacles):
                if not isinstance(obstacle, StaticObstacle):
                    raise TypeError(
                        f"RouteEvaluator.update: static_obstacles[{i}] must be a StaticObstacle, "
                        f"got {type(obstacle).__name__}"
                    )
            boxes = np.stack([o.box.as_array() for o in static_obstacles])
            hits = box3d_overlap(ego, boxes)
            for obstacle, hit in zip(static_obstacles, hits, strict=True):
                if hit:
                    b = obstacle.box
                    key = ("static", obstacle.kind, round(b.x, 2), round(b.y, 2), round(b.yaw, 3))
                    candidates.append(
                        (key, InfractionKind.COLLISION_STATIC, None, f"static.{obstacle.kind}")
                    )
        for key, kind, actor_id, type_name in candidates:
            contacts.add(key)
            if key in self._contacts:
                continue  # the same contact, still going on
            if actor_id is not None and actor_id == self._last_collision_id:
                continue
            if (
                self._last_collision_location is not None
                and float(np.linalg.norm(location - self._last_collision_location))
                <= self.config.collision_radius
            ):
                continue
            self._last_collision_time = t
            self._last_collision_location = location.copy()
            if actor_id is not None:
                self._last_collision_id = actor_id
            shown_id = actor_id if actor_id is not None else 0
            self._record(
                kind,
                t,
                actor_id,
                f"Agent collided against object with type={type_name} and id={shown_id} at ",
            )
        self._contacts = contacts
        # what the leaderboard forgets once the ego has moved on or time has passed
        if (
            self._last_collision_location is not None
            and float(np.linalg.norm(location - self._last_collision_location))
            > self.config.collision_radius
        ):
            self._last_collision_location = None
        if (
            self._last_collision_id is not None
            and t - self._last_collision_time > self.config.collision_id_time
        ):
            self._last_collision_id = None

    # -- traffic lights and stop signs -----------------------------------------------------------

    def _ego_lanes(self, point: FloatArray, yaw: float) -> set[str]:
        found = self.road_map.project(
            float(point[0]),
            float(point[1]),
            max_distance=_LANE_SNAP,
            heading=yaw,
            max_heading_error=math.pi / 2,
        )
        lanes: set[str] = set()
        for proj in found:
            lanes.add(str(proj.lane))
            lanes.update(str(p) for p in self.road_map.lanes[proj.lane].predecessors)
        return lanes

    def _check_red_lights(
        self, t: float, location: FloatArray, yaw: float, ground_truth: GroundTruth
    ) -> None:
        forward = np.array([math.cos(yaw), math.sin(yaw)])
        half = 0.5 * self.ego_length
        tail_close = location - 0.8 * half * forward
        tail_far = location - (half + 1.0) * forward
        for light in ground_truth.traffic_lights:
            if light.stop_line is None or light.color != TrafficLightColor.RED:
                continue
            light_key = str(light.light_id)
            if light_key == self._last_red_light:
                continue
            line = np.asarray(light.stop_line, dtype=np.float64)
            if float(np.linalg.norm(line.mean(axis=0) - location)) > self.config.red_light_distance:
                continue
            if not _segments_intersect(tail_close, tail_far, line[0], line[1]):
                continue
            if light.affected_lane_ids:
                affected = {str(lane) for lane in light.affected_lane_ids}
                if not affected & self._ego_lanes(tail_far, yaw):
                    continue
            else:
                along = line[1] - line[0]
                normal_heading = math.atan2(along[0], -along[1])  # either normal will do
                off = abs(float(wrap_angle(yaw - normal_heading)))
                off = min(off, math.pi - off)
                if off > self.config.red_light_heading_tolerance:
                    continue
            x, y, z = light.position
            self._events.append(
                Infraction(
                    InfractionKind.RED_LIGHT,
                    t,
                    (x, y),
                    None,
                    f"Agent ran a red light {light.light_id} at {_xyz(x, y, z)}",
                )
            )
            self._last_red_light = light_key
            break

    def _check_stop_signs(
        self, t: float, location: FloatArray, yaw: float, ego: EgoState, speed: float
    ) -> None:
        if not self._stop_signs:
            return
        depth = self.config.stop_zone_length
        if self._stop_target is None:
            for sign in self._stop_signs:
                if abs(float(wrap_angle(yaw - sign.heading))) > math.pi / 2:
                    continue  # driving against the sign
                if ego.velocity[0] < 0.0:
                    continue  # backing up
                if sign.in_zone(location, depth):
                    self._stop_target = sign
                    self._stop_completed = speed < self.config.stop_speed
                    break
            return
        if speed < self.config.stop_speed:
            self._stop_completed = True
        sign = self._stop_target
        if not sign.in_zone(location, depth):
            if not self._stop_completed:
                x, y = sign.location
                self._events.append(
                    Infraction(
                        InfractionKind.STOP_SIGN,
                        t,
                        (x, y),
                        None,
                        f"Agent ran a stop with id={sign.sign_id} at {_xyz(x, y, 0.0)}",
                    )
                )
            self._stop_target = None
            self._stop_completed = False

    # -- speed, emergency vehicles, blocking -----------------------------------------------------

    def _close_min_speed_stretch(self, t: float) -> None:
        if self._ms_points > 0 and self._ms_traffic > 0.0:
            percent = round(self._ms_ego / self._ms_traffic * 100.0, 2)
        else:
            percent = 100.0
        if percent < 100.0:
            x, y = float(self._location[0]), float(self._location[1])
            self._events.append(
                Infraction(
                    InfractionKind.MIN_SPEED,
                    t,
                    (x, y),
                    None,
                    f"Average speed is {percent}% of the surrounding traffic's one",
                    value=percent,
                )
            )
        self._ms_traffic = self._ms_ego = 0.0
        self._ms_points = 0

    def _check_min_speed(
        self, t: float, location: FloatArray, speed: float, ground_truth: GroundTruth
    ) -> None:
        stretch = self._length / self.config.min_speed_checkpoints
        reached = float(self._s[self._rc_index])
        if reached - self._ms_current_s > stretch:
            self._close_min_speed_stretch(t)
            self._ms_current_s = reached
        speeds = [
            a.speed
            for a in ground_truth.agents
            if a.agent_class in _TRAFFIC_CLASSES
            and math.hypot(a.box.x - location[0], a.box.y - location[1])
            <= self.config.min_speed_radius
            and math.isfinite(a.speed)
        ]
        if speeds:
            self._ms_traffic += float(np.mean(speeds))
            self._ms_ego += speed
            self._ms_points += 1

    def _check_emergency_vehicles(self, location: FloatArray, ground_truth: GroundTruth) -> None:
        if not self._emergency:
            return
        by_id = {a.track_id: a for a in ground_truth.agents}
        for track_id in self._emergency:
            agent = by_id.get(track_id)
            if agent is None:
                continue
            forward = np.array([math.cos(agent.box.yaw), math.sin(agent.box.yaw)])
            rel = location - np.array([agent.box.x, agent.box.y])
            self._emergency[track_id] = bool(rel @ forward > 0.0)

    def _blocked(self, t: float, speed: float) -> bool:
        if speed < self.config.blocked_speed and self._last_moving_time is not None:
            return t - self._last_moving_time > self.config.blocked_time
        self._last_moving_time = t
        return False

    # -- route deviation and progress ------------------------------------------------------------

    def _check_route_deviation(self, location: FloatArray, window: float) -> bool:
        i = self._dev_index
        hi = int(np.searchsorted(self._s, self._s[i] + window, side="right"))
        hi = min(max(hi, i + 1 + _DEVIATION_MIN_POINTS), len(self._s))
        distances = np.linalg.norm(self._points[i:hi] - location, axis=1)
        closest = i + len(distances) - 1 - int(np.argmin(distances[::-1]))  # ties: the farthest
        shortest = float(distances[closest - i])
        off_route = True
        if shortest < self.config.route_deviation_distance:
            off_route = False
            self._in_safe_route = shortest < self.config.route_deviation_safe_distance
        if closest != i:
            if not self._in_safe_route:
                self._out_of_route_distance += float(self._s[closest] - self._s[i])
                if (
                    self._out_of_route_distance / self._length
                    > self.config.route_deviation_max_share
                ):
                    off_route = True
            self._dev_index = closest
        if shortest < self.config.route_deviation_safe_distance:
            self._progress_s = max(self._progress_s, self._project_on_route(location, closest))
        return off_route

    def _project_on_route(self, location: FloatArray, near: int) -> float:
        """Arc length [m] of the projection of ``location`` on the path segments around ``near``."""
        best_s, best_d = float(self._s[near]), math.inf
        for a in (near - 1, near):
            if a < 0 or a + 1 >= len(self._s):
                continue
            p, q = self._points[a], self._points[a + 1]
            seg = q - p
            length2 = float(seg @ seg)
            u = 0.0 if length2 <= 0.0 else min(max(float((location - p) @ seg) / length2, 0.0), 1.0)
            d = float(np.linalg.norm(p + u * seg - location))
            if d < best_d:
                best_d = d
                best_s = float(self._s[a] + u * (self._s[a + 1] - self._s[a]))
        return best_s

    # -- time to collision -------------------------------------------------------------------

    def _time_to_collision(
        self, ego: EgoState, ego_box: Box3D, speed: float, ground_truth: GroundTruth
    ) -> float:
        if speed < self.config.ttc_stopped_speed or not ground_truth.agents:
            return math.inf
        yaw = ego.pose.yaw
        c, s = math.cos(yaw), math.sin(yaw)
        vx, vy = ego.velocity
        ego_velocity = np.array([c * vx - s * vy, s * vx + c * vy])
        if not np.all(np.isfinite(ego_velocity)):
            return math.inf
        ego_footprint = ego_box.footprint().as_array()
        boxes = np.stack([a.box.footprint().as_array() for a in ground_truth.agents])
        velocities = np.array([a.velocity for a in ground_truth.agents], dtype=np.float64)
        touching = box2d_overlap(ego_footprint[None], boxes)
        rel = boxes[:, [BoxIndex.X, BoxIndex.Y]] - np.array([ego.pose.x, ego.pose.y])
        bearing = np.abs(wrap_angle(np.arctan2(rel[:, 1], rel[:, 0]) - yaw))
        behind = (bearing > self.config.ttc_behind_angle) & (np.hypot(rel[:, 0], rel[:, 1]) > 0)
        keep = ~touching & ~behind & np.all(np.isfinite(velocities), axis=1)
        if not np.any(keep):
            return math.inf
        return time_to_collision(
            ego_footprint,
            ego_velocity,
            boxes[keep],
            velocities[keep],
            horizon=self.config.ttc_horizon,
            step=self.config.ttc_step,
        )

    # -- the end -----------------------------------------------------------------------------

    def finish(self, *, timed_out: bool = False, crashed: str | None = None) -> RouteResult:
        """Close the route and score it.

        ``timed_out``: the episode ran out of its time budget (route timeout, "Agent timed
        out"). ``crashed``: why the route could not run to its end; it maps to the leaderboard's
        failure by its start: ``"simulation..."`` → "Simulation crashed", ``"sensors..."`` →
        "Agent's sensors were invalid", ``"agent setup..."`` → "Agent couldn't be set up",
        anything else → "Agent crashed". A second call returns the same result.
        """
        if self._result is not None:
            return self._result
        last_t = self._t[-1] if self._t else 0.0
        for track_id in list(self._emergency):
            self.end_emergency_vehicle(track_id, last_t)
        if self._s[self._rc_index] / self._length > 0.95:
            self._close_min_speed_stretch(last_t)
        completed = self._status is RouteStatus.COMPLETED
        if timed_out and not completed:
            x, y = float(self._location[0]), float(self._location[1])
            self._events.append(
                Infraction(InfractionKind.ROUTE_TIMEOUT, last_t, (x, y), None, "Route timeout.")
            )
        infractions = self.infractions
        rc = 100.0 if completed else round(float(self._percent[self._rc_index]), 2)
        ip = infraction_penalty(infractions)
        if completed:
            status = "Completed" if infractions else "Perfect"
        else:
            failure = ""
            if crashed:
                lowered = crashed.strip().lower()
                failure = FAILURE_AGENT_CRASH
                for prefix, reason in _CRASH_PREFIXES:
                    if lowered.startswith(prefix):
                        failure = reason
                        break
            if timed_out:
                failure = FAILURE_TIMEOUT
            for infraction in infractions:
                if infraction.kind is InfractionKind.ROUTE_DEVIATION:
                    failure = FAILURE_DEVIATION
                elif infraction.kind is InfractionKind.AGENT_BLOCKED:
                    failure = FAILURE_BLOCKED
            status = f"Failed - {failure}" if failure else "Failed"
            if self._status is RouteStatus.RUNNING:
                self._status = RouteStatus.FAILED
        comfort, comfortable = comfort_metrics(
            np.asarray(self._t, dtype=np.float64),
            np.asarray(self._yaw, dtype=np.float64),
            np.asarray(self._acc, dtype=np.float64).reshape(-1, 2),
            self.config,
        )
        ttc = np.asarray(self._ttc, dtype=np.float64)
        ttc_min = float(ttc.min()) if ttc.size else math.inf
        outside_percent = (
            self._outside_distance / self._passed_distance * 100.0
            if self._passed_distance > 0
            else 0.0
        )
        self._result = RouteResult(
            route_id=self.route_id,
            status=status,
            driving_score=max(rc * ip, 0.0),
            route_completion=rc,
            infraction_penalty=ip,
            infractions=infractions,
            duration_game_s=(last_t - self._t[0]) if self._t else 0.0,
            route_length_m=self._length,
            distance_driven_m=self._distance_driven,
            comfort=comfort,
            comfortable=comfortable,
            ttc_min_s=ttc_min if math.isfinite(ttc_min) else None,
            ttc_violations=int(np.count_nonzero(ttc < self.config.ttc_threshold)),
            progress=1.0 if completed else min(self._progress_s / self._length, 1.0),
            outside_route_lanes_m=self._outside_distance,
            outside_route_lanes_percent=outside_percent,
            duration_system_s=time.perf_counter() - self._wall0,
            town_name=self.road_map.name,
            crash_message=crashed,
            index=self.index,
            metric_config={"metric_version": METRIC_VERSION, **dataclasses.asdict(self.config)},
        )
        return self._result
