"""Scoring candidate trajectories, nuPlan/PDMS style: hard multipliers × weighted soft terms.

Axis vocabulary: ``N`` candidates, ``T`` time points (``PlannerConfig.num_points``), ``A`` agents,
``K`` modes per agent, ``P`` reference-path points, ``S`` sample points per step. Candidates are
``(N, T, len(TrajIndex))`` rear-axle states in the world frame; the first point is the ego's
current state. The ego's box (``VehicleProfile.length`` x ``width``) has its centre
``VehicleProfile.rear_axle_to_center`` ahead of the rear axle (the profile is what is used; the
``ego_*`` fields of :class:`PlannerInput` are not read).

Score of candidate ``n`` (in [0, 1], higher is better)::

    score = prod(multipliers[n]) * sum_s(w_s * soft[n, s]) / sum_s(w_s)

Hard multipliers (:class:`Multiplier`):

* ``NO_AT_FAULT_COLLISION`` = ``max(0, 1 - sum of weights of the agent modes hit at fault)``,
  a mode's weight being its probability × the class weight (``static_collision_weight`` for
  ``AgentClass.STATIC``, 1 otherwise: a certain hit on a static object gives nuPlan's 0.5; a
  value within ``PROBABILITY_TOLERANCE`` of 0 is 0, as probabilities sum to 1 only within it). The
  at-fault rules (nuPlan's ``no_ego_at_fault_collisions``) are in
  :func:`kaido.planning.cost_kernels.interaction_kernel`: only the first step of each collision
  with a mode (a run of overlapping steps) is judged; a stopped ego is never at fault; hitting
  a stopped agent is; being hit from behind (the agent's centre more than ``behind_angle`` from
  the ego's heading, seen from its rear axle) is not; a collision at the ego's front edge is; a
  lateral collision is when the ego straddles its lane (its rear axle or front bumper more than
  ``lane_half_width - width / 2`` from the reference) or is off the drivable area.
* ``DRIVABLE_AREA``: 0 when a corner of the ego box is more than ``drivable_margin`` outside the
  drivable area at some step (nuPlan's drivable-area compliance); corners off the raster are not
  judged. When the current state is already outside (smallest corner distance ``d0 < 0``), the
  bound is ``d0 - drivable_margin``: a candidate may recover, not get worse.
* ``DRIVING_DIRECTION``: distance driven against the reference's direction within any
  ``direction_window``: 1 up to ``direction_compliance``, 0.5 up to ``direction_violation``, else
  0 (nuPlan's driving-direction compliance).
* ``STOPS``: 0 when the front bumper passes a :class:`StopConstraint` it had not passed at the
  current state.

Soft terms (:class:`SoftTerm`), each in [0, 1]:

* ``PROGRESS``: arc length gained along the reference by the rear axle, divided by the best gain
  among the candidates that pass the multipliers (PDMS ego progress); 1 for all when that best
  gain is at most ``progress_threshold``.
* ``TTC``: ``max(0, 1 - sum of the probabilities of the modes whose time to collision drops
  below ttc_threshold)`` (constant-velocity projection of ego and agent at each step, see
  :func:`kaido.planning.cost_kernels.interaction_kernel`; nuPlan's 0/1 for a single certain
  mode).
* ``COMFORT``: 1 when longitudinal acceleration, lateral acceleration ``v²κ``, yaw rate ``vκ``,
  yaw acceleration, longitudinal jerk and the rate of change of the acceleration magnitude stay
  within nuPlan's bounds over the whole horizon, else 0. Derivatives are Savitzky-Golay
  derivatives (polynomial order 2, ``comfort_window`` points, the edges fitted over the first or
  last window), as nuPlan's.
* ``SPEED_LIMIT``: ``max(0, 1 - mean overspeed / overspeed_tolerance)``, overspeed =
  ``max(0, v - limit)`` with the limit of the reference point at or before the rear axle's arc
  length (a non-finite or non-positive limit is no limit).
* ``LANE_CENTER``: ``max(0, 1 - mean |lateral offset of the rear axle| / lane_center_tolerance)``.
* ``OCCUPANCY``: ``1 - mean occupancy probability`` over a grid of points in the ego's footprint
  and the steps (points off the forecast's raster read 0).

Terms that the current state alone decides are the same for every candidate, so the multipliers,
speed limit, lane centring and occupancy are evaluated over steps ``1..T-1``; collisions and time
to collision over every step up to ``collision_horizon``. Without agents the collision and TTC
terms are 1; without a :class:`DrivableField` the drivable-area multiplier is 1 (and lateral
collisions are judged by the lane test alone); without an :class:`OccupancyForecast` the
occupancy term is 1 and its weight is left out of the average.

The collision and TTC measures (``raw["collision_measure"]``, ``raw["ttc_measure"]``) saturate:
once a candidate's measure is within ``PROBABILITY_TOLERANCE`` of 1 or above, its term is 0
whatever else it meets, so the search stops there and the measure reads 1 (the first collision
step stays exact). Every other value is what the full search gives.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType, SimpleNamespace
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from kaido.planning import cost_kernels
from kaido.planning.cost_kernels import OVERLAP_EPS, BoxState, CandidateTerm
from kaido.planning.types import (
    DrivableField,
    ModeIndex,
    OccupancyForecast,
    PlannerConfig,
    PlannerInput,
    ReferencePath,
    StopConstraint,
    TrajIndex,
)
from kaido.scene.agents import AgentClass
from kaido.scene.geometry import BoxIndex, box2d_corners, box2d_overlap, wrap_angle
from kaido.scene.vehicle import VehicleProfile

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

PROBABILITY_TOLERANCE = 1e-6
"""Mode probabilities sum to 1 within this (``PredictedAgents``); ``1 - measure`` below it is 0."""


__all__ = [
    "PROBABILITY_TOLERANCE",
    "REFERENCE_KERNELS",
    "ComfortIndex",
    "CostConfig",
    "Multiplier",
    "ScoredCandidates",
    "SoftTerm",
    "agent_box_states",
    "box_pair_reference",
    "candidate_terms_reference",
    "collision_reference",
    "comfort_metrics",
    "ego_box_states",
    "footprint_sample_reference",
    "interaction_reference",
    "path_projection_reference",
    "savgol_derivative_matrix",
    "score_candidates",
    "ttc_reference",
]


class Multiplier(IntEnum):
    """Columns of :attr:`ScoredCandidates.multipliers` ``(N, len(Multiplier))``."""

    NO_AT_FAULT_COLLISION = 0
    DRIVABLE_AREA = 1
    DRIVING_DIRECTION = 2
    STOPS = 3


class SoftTerm(IntEnum):
    """Columns of :attr:`ScoredCandidates.soft` ``(N, len(SoftTerm))``."""

    PROGRESS = 0
    TTC = 1
    COMFORT = 2
    SPEED_LIMIT = 3
    LANE_CENTER = 4
    OCCUPANCY = 5


class ComfortIndex(IntEnum):
    """Columns of :func:`comfort_metrics` ``(N, len(ComfortIndex))``: extremes over the horizon."""

    MIN_LON_ACCEL = 0
    """[m/s²] most negative longitudinal acceleration."""
    MAX_LON_ACCEL = 1
    """[m/s²]"""
    MAX_ABS_LAT_ACCEL = 2
    """[m/s²] of v²κ."""
    MAX_ABS_YAW_RATE = 3
    """[rad/s] of vκ."""
    MAX_ABS_YAW_ACCEL = 4
    """[rad/s²]"""
    MAX_ABS_LON_JERK = 5
    """[m/s³]"""
    MAX_ABS_JERK = 6
    """[m/s³] of the rate of change of the acceleration magnitude (nuPlan's ``ego_jerk``)."""


@dataclass(frozen=True)
class CostConfig:
    """Weights and thresholds of the candidate score (defaults: nuPlan / NAVSIM PDMS values)."""

    # -- soft-term weights (dimensionless, >= 0; PDMS uses EP 5, TTC 5, comfort 2) ---------------
    progress_weight: float = 5.0
    ttc_weight: float = 5.0
    comfort_weight: float = 2.0
    speed_limit_weight: float = 2.0
    lane_center_weight: float = 1.0
    occupancy_weight: float = 2.0
    """Used only when the input carries an :class:`OccupancyForecast`."""

    # -- collisions and time to collision ----------------------------------------------------------
    collision_horizon: float | None = None
    """[s] collisions and time to collision are checked up to this time (None: whole horizon)."""
    stopped_speed: float = 0.05
    """[m/s] at or below this |speed| a vehicle counts as stopped (nuPlan collisions)."""
    behind_angle: float = math.radians(150.0)
    """[rad] an agent whose centre is further than this from the ego's heading, seen from its rear
    axle, is behind the ego (nuPlan ``is_agent_behind``); in [pi/2, pi]."""
    lane_half_width: float = 1.75
    """[m] half the width of the ego's lane: beyond ``lane_half_width - width / 2`` of lateral
    offset the ego straddles lanes and lateral collisions are its fault."""
    static_collision_weight: float = 0.5
    """Collision weight of ``AgentClass.STATIC`` objects (nuPlan: 0.5); other classes weigh 1."""
    ttc_threshold: float = 0.95
    """[s] time to collision below this flags a mode (nuPlan ``least_min_ttc``)."""
    broad_phase_cell: float = 6.0
    """[m] cell of the collision broad-phase grid (a speed knob; results do not change)."""

    # -- drivable area and driving direction -------------------------------------------------------
    drivable_margin: float = 0.3
    """[m] a corner more than this outside the drivable area is a violation (nuPlan 0.3 m)."""
    direction_window: float = 1.0
    """[s] window over which driving against the reference is summed (nuPlan 1 s)."""
    direction_compliance: float = 2.0
    """[m] against the reference within a window: up to this, compliant (1)."""
    direction_violation: float = 6.0
    """[m] up to this, 0.5; beyond, 0."""

    # -- progress, speed, lane ---------------------------------------------------------------------
    progress_threshold: float = 5.0
    """[m] when the best admissible progress is at most this, progress is 1 for all (NAVSIM)."""
    overspeed_tolerance: float = 2.23
    """[m/s] mean overspeed at which the speed-limit term reaches 0 (nuPlan 2.23 m/s)."""
    lane_center_tolerance: float = 1.75
    """[m] mean |lateral offset| at which the lane-centring term reaches 0."""

    # -- comfort (nuPlan ego_is_comfortable bounds) ------------------------------------------------
    min_lon_accel: float = -4.05
    """[m/s²]"""
    max_lon_accel: float = 2.40
    """[m/s²]"""
    max_abs_lat_accel: float = 4.89
    """[m/s²]"""
    max_abs_yaw_rate: float = 0.95
    """[rad/s]"""
    max_abs_yaw_accel: float = 1.93
    """[rad/s²]"""
    max_abs_lon_jerk: float = 4.13
    """[m/s³]"""
    max_abs_jerk: float = 8.37
    """[m/s³]"""
    comfort_window: int = 5
    """[points] Savitzky-Golay window of the comfort derivatives (odd, >= 3; nuPlan 5)."""

    # -- occupancy ---------------------------------------------------------------------------------
    occupancy_samples_length: int = 4
    """Sample points along the ego's length for the occupancy term."""
    occupancy_samples_width: int = 3
    """Sample points across the ego's width for the occupancy term."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name == "collision_horizon":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"CostConfig.{f.name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"CostConfig.{f.name} must be finite, got {value}")
        weights = [getattr(self, n) for n in _WEIGHT_FIELDS]
        for name, w in zip(_WEIGHT_FIELDS, weights, strict=True):
            if w < 0:
                raise ValueError(f"CostConfig.{name} must be >= 0, got {w}")
        if sum(weights) <= 0:
            raise ValueError("CostConfig: at least one soft-term weight must be > 0")
        positive = (
            "stopped_speed",
            "lane_half_width",
            "broad_phase_cell",
            "ttc_threshold",
            "direction_window",
            "overspeed_tolerance",
            "lane_center_tolerance",
            "max_lon_accel",
            "max_abs_lat_accel",
            "max_abs_yaw_rate",
            "max_abs_yaw_accel",
            "max_abs_lon_jerk",
            "max_abs_jerk",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"CostConfig.{name} must be > 0, got {getattr(self, name)}")
        for name in ("drivable_margin", "progress_threshold", "static_collision_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"CostConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.collision_horizon is not None and not (
            isinstance(self.collision_horizon, int | float)
            and math.isfinite(self.collision_horizon)
            and self.collision_horizon >= 0
        ):
            raise ValueError(
                f"CostConfig.collision_horizon must be None or >= 0 s, got {self.collision_horizon}"
            )
        if not math.pi / 2 <= self.behind_angle <= math.pi:
            raise ValueError(
                f"CostConfig.behind_angle must be in [pi/2, pi] rad, got {self.behind_angle}"
            )
        if self.min_lon_accel >= 0:
            raise ValueError(f"CostConfig.min_lon_accel must be < 0, got {self.min_lon_accel}")
        if not 0 <= self.direction_compliance <= self.direction_violation:
            raise ValueError(
                "CostConfig: 0 <= direction_compliance <= direction_violation must hold, got "
                f"{self.direction_compliance}, {self.direction_violation}"
            )
        for name in ("occupancy_samples_length", "occupancy_samples_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"CostConfig.{name} must be an integer >= 1, got {value!r}")
        if (
            not isinstance(self.comfort_window, int)
            or self.comfort_window < 3
            or self.comfort_window % 2 == 0
        ):
            raise ValueError(
                "CostConfig.comfort_window must be an odd integer >= 3, got "
                f"{self.comfort_window!r}"
            )

    def soft_weights(self) -> FloatArray:
        """``(len(SoftTerm),)`` the configured weight of each soft term."""
        return np.array([getattr(self, _SOFT_WEIGHT[term]) for term in SoftTerm])


_SOFT_WEIGHT = {
    SoftTerm.PROGRESS: "progress_weight",
    SoftTerm.TTC: "ttc_weight",
    SoftTerm.COMFORT: "comfort_weight",
    SoftTerm.SPEED_LIMIT: "speed_limit_weight",
    SoftTerm.LANE_CENTER: "lane_center_weight",
    SoftTerm.OCCUPANCY: "occupancy_weight",
}
_WEIGHT_FIELDS = tuple(_SOFT_WEIGHT.values())


def _readonly(array: Any) -> Any:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class ScoredCandidates:
    """The score of every candidate and what it is made of.

    ``scores`` ``(N,)`` in [0, 1]; ``multipliers`` ``(N, len(Multiplier))`` and ``soft``
    ``(N, len(SoftTerm))`` in [0, 1], columns named by ``multiplier_names`` / ``soft_names``;
    ``soft_weights`` ``(len(SoftTerm),)`` the weights the average used (0 for a term whose input
    was absent); ``collision_time`` ``(N,)`` the first step of an at-fault collision, -1 if none;
    ``raw`` diagnostics, each ``(N,)``, in the units their names end with.
    """

    scores: FloatArray
    multipliers: FloatArray
    multiplier_names: tuple[str, ...]
    soft: FloatArray
    soft_names: tuple[str, ...]
    soft_weights: FloatArray
    collision_time: IntArray
    raw: Mapping[str, FloatArray] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        n = len(self.scores)
        for name, columns in (
            ("multipliers", len(self.multiplier_names)),
            ("soft", len(self.soft_names)),
        ):
            if getattr(self, name).shape != (n, columns):
                raise ValueError(
                    f"ScoredCandidates.{name}: expected shape ({n}, {columns}), "
                    f"got {getattr(self, name).shape}"
                )
        if self.collision_time.shape != (n,):
            raise ValueError(
                f"ScoredCandidates.collision_time: expected shape ({n},), "
                f"got {self.collision_time.shape}"
            )

    @property
    def num_candidates(self) -> int:
        return len(self.scores)

    def breakdown(self, i: int) -> dict[str, float]:
        """Every term of candidate ``i``: score, multipliers, soft terms, collision step, raw."""
        n = self.num_candidates
        if isinstance(i, bool) or not isinstance(i, int | np.integer) or not -n <= i < n:
            raise IndexError(f"ScoredCandidates.breakdown: candidate {i!r} out of range [0, {n})")
        out = {"score": float(self.scores[i])}
        for j, name in enumerate(self.multiplier_names):
            out[name] = float(self.multipliers[i, j])
        for j, name in enumerate(self.soft_names):
            out[name] = float(self.soft[i, j])
        out["collision_step"] = float(self.collision_time[i])
        for name, values in self.raw.items():
            out[name] = float(values[i])
        return out


# -- geometry helpers ------------------------------------------------------------------------------


def ego_box_states(candidates: FloatArray, rear_axle_to_center: float) -> Any:
    """``(N, T, len(BoxState))`` ego box states of rear-axle candidates ``(N, T, >=4)``."""
    yaw = candidates[..., TrajIndex.YAW]
    out = np.empty((*candidates.shape[:-1], len(BoxState)))
    out[..., BoxState.COS] = np.cos(yaw)
    out[..., BoxState.SIN] = np.sin(yaw)
    out[..., BoxState.X] = (
        candidates[..., TrajIndex.X] + rear_axle_to_center * out[..., BoxState.COS]
    )
    out[..., BoxState.Y] = (
        candidates[..., TrajIndex.Y] + rear_axle_to_center * out[..., BoxState.SIN]
    )
    out[..., BoxState.SPEED] = candidates[..., TrajIndex.SPEED]
    return out


def agent_box_states(modes: FloatArray) -> Any:
    """``(A, K, T, len(BoxState))`` box states of agent modes ``(A, K, T, len(ModeIndex))`` (the
    NumPy reference of :func:`cost_kernels.mode_box_states_kernel`)."""
    yaw = modes[..., ModeIndex.YAW]
    out = np.empty((*modes.shape[:-1], len(BoxState)))
    out[..., BoxState.X] = modes[..., ModeIndex.X]
    out[..., BoxState.Y] = modes[..., ModeIndex.Y]
    out[..., BoxState.COS] = np.cos(yaw)
    out[..., BoxState.SIN] = np.sin(yaw)
    out[..., BoxState.SPEED] = modes[..., ModeIndex.SPEED]
    return out


def _packed_boxes(states: FloatArray, size: Any) -> Any:
    """``(..., 5)`` packed boxes (``BoxIndex``) of box states and sizes broadcasting to them."""
    yaw = np.arctan2(states[..., BoxState.SIN], states[..., BoxState.COS])
    size = np.broadcast_to(size, (*states.shape[:-1], 2))
    return np.concatenate([states[..., [BoxState.X, BoxState.Y]], yaw[..., None], size], axis=-1)


def _box_points(states: FloatArray, local: FloatArray) -> FloatArray:
    """Points ``(..., S, 2)`` given in the boxes' frames ``local`` ``(S, 2)`` in the world."""
    c = states[..., None, BoxState.COS]
    s = states[..., None, BoxState.SIN]
    x = states[..., None, BoxState.X] + c * local[:, 0] - s * local[:, 1]
    y = states[..., None, BoxState.Y] + s * local[:, 0] + c * local[:, 1]
    return np.stack([x, y], axis=-1)


# -- references of the kernels (plain NumPy / shapely) ---------------------------------------------


def box_pair_reference(a: FloatArray, b: FloatArray) -> tuple[BoolArray, BoolArray]:
    """Shapely oracle of :func:`cost_kernels.box_pair_kernel`: ``a``, ``b`` ``(M, 5)`` boxes ->
    (``Polygon(a).intersects(Polygon(b))``, ``LineString(front edge of a).intersects(b)``)."""
    corners_a = box2d_corners(a)
    corners_b = box2d_corners(b)
    poly_a = shapely.polygons(corners_a)
    poly_b = shapely.polygons(corners_b)
    front = shapely.linestrings(corners_a[:, [0, 3]])
    return (
        np.asarray(shapely.intersects(poly_a, poly_b), dtype=bool),
        np.asarray(shapely.intersects(front, poly_b), dtype=bool),
    )


def _segment_box_overlap_np(
    p0: FloatArray, p1: FloatArray, boxes: FloatArray, eps: float = OVERLAP_EPS
) -> BoolArray:
    """Segments ``p0``-``p1`` ``(..., 2)`` against boxes ``(..., 5)`` (broadcast), SAT."""
    c = np.cos(boxes[..., BoxIndex.YAW])
    s = np.sin(boxes[..., BoxIndex.YAW])
    hl = 0.5 * boxes[..., BoxIndex.LENGTH]
    hw = 0.5 * boxes[..., BoxIndex.WIDTH]

    def local(p: FloatArray) -> tuple[FloatArray, FloatArray]:
        dx = p[..., 0] - boxes[..., BoxIndex.X]
        dy = p[..., 1] - boxes[..., BoxIndex.Y]
        return c * dx + s * dy, c * dy - s * dx

    x0, y0 = local(p0)
    x1, y1 = local(p1)
    nx, ny = y0 - y1, x1 - x0
    ok = (np.minimum(x0, x1) <= hl + eps) & (np.maximum(x0, x1) >= -hl - eps)
    ok &= (np.minimum(y0, y1) <= hw + eps) & (np.maximum(y0, y1) >= -hw - eps)
    ok &= np.abs(nx * x0 + ny * y0) <= hl * np.abs(nx) + hw * np.abs(ny) + eps * np.hypot(nx, ny)
    return np.asarray(ok)


def _is_behind_np(
    ego: FloatArray, rear_to_center: float, x: FloatArray, y: FloatArray, behind_angle: float
) -> BoolArray:
    """Whether points lie behind the rear axles of ego box states (angle > ``behind_angle``)."""
    rear_x = ego[..., BoxState.X] - rear_to_center * ego[..., BoxState.COS]
    rear_y = ego[..., BoxState.Y] - rear_to_center * ego[..., BoxState.SIN]
    yaw = np.arctan2(ego[..., BoxState.SIN], ego[..., BoxState.COS])
    bearing = np.arctan2(y - rear_y, x - rear_x) - yaw
    return np.asarray(np.abs(wrap_angle(bearing)) > behind_angle)


def collision_reference(
    ego: FloatArray,
    lateral_at_fault: BoolArray,
    agents: FloatArray,
    sizes: FloatArray,
    weights: FloatArray,
    ego_length: float,
    ego_width: float,
    rear_to_center: float,
    stopped_speed: float,
    behind_angle: float,
    num_steps: int,
) -> tuple[FloatArray, IntArray]:
    """Vectorised NumPy reference of :func:`cost_kernels.collision_kernel` (same arguments, but
    agent ``sizes`` ``(A, 2)`` full length/width and the angle ``behind_angle`` [rad]).
    Memory grows as ``N·A·K·T``: for tests on small inputs."""
    n_count, t_count = ego.shape[:2]
    nt = min(num_steps, t_count, agents.shape[2])
    measure = np.zeros(n_count)
    first = np.full(n_count, -1, np.int64)
    if agents.shape[0] == 0 or nt <= 0:
        return measure, first
    e = ego[:, None, None, :nt]  # (N, 1, 1, T, 5)
    m = agents[None, :, :, :nt]  # (1, A, K, T, 5)
    ego_box = _packed_boxes(e, [ego_length, ego_width])
    agent_box = _packed_boxes(m, sizes[None, :, None, None, :])
    overlap = box2d_overlap(ego_box, agent_box, OVERLAP_EPS)  # (N, A, K, T)
    prev = np.zeros_like(overlap)
    prev[..., 1:] = overlap[..., :-1]
    new = overlap & ~prev
    ego_stopped = np.abs(e[..., BoxState.SPEED]) <= stopped_speed
    agent_stopped = np.abs(m[..., BoxState.SPEED]) <= stopped_speed
    behind = _is_behind_np(e, rear_to_center, m[..., BoxState.X], m[..., BoxState.Y],
                           behind_angle)  # fmt: skip
    front_corners = box2d_corners(ego_box)[..., [0, 3], :]
    front = _segment_box_overlap_np(front_corners[..., 0, :], front_corners[..., 1, :], agent_box)
    lateral = lateral_at_fault[:, None, None, :nt]
    at_fault = ~ego_stopped & (agent_stopped | (~behind & (front | lateral)))
    hits = new & at_fault & (weights[None, :, :, None] > 0)
    any_hit = hits.any(axis=-1)  # (N, A, K)
    measure = np.sum(np.where(any_hit, weights[None], 0.0), axis=(1, 2))
    step = np.where(any_hit, np.argmax(hits, axis=-1), nt).min(axis=(1, 2))
    first = np.where(step < nt, step, -1).astype(np.int64)
    return measure, first


def ttc_reference(
    ego: FloatArray,
    agents: FloatArray,
    sizes: FloatArray,
    weights: FloatArray,
    ego_length: float,
    ego_width: float,
    rear_to_center: float,
    stopped_speed: float,
    behind_angle: float,
    num_steps: int,
    projection_times: FloatArray,
) -> tuple[FloatArray, IntArray]:
    """Vectorised NumPy reference of :func:`cost_kernels.ttc_kernel` (agent ``sizes`` ``(A, 2)``,
    ``behind_angle`` [rad]): every projection time checked with a box SAT. Memory grows as
    ``N·A·K·T``: for tests on small inputs."""
    n_count, t_count = ego.shape[:2]
    nt = min(num_steps, t_count, agents.shape[2])
    measure = np.zeros(n_count)
    first = np.full(n_count, -1, np.int64)
    if agents.shape[0] == 0 or nt <= 0 or len(projection_times) == 0:
        return measure, first
    e = ego[:, None, None, :nt]  # (N, 1, 1, T, 5)
    m = agents[None, :, :, :nt]  # (1, A, K, T, 5)
    ego_box = _packed_boxes(e, [ego_length, ego_width])
    agent_box = _packed_boxes(m, sizes[None, :, None, None, :])
    flag = np.zeros(np.broadcast_shapes(ego_box.shape, agent_box.shape)[:-1], dtype=bool)
    for tau in projection_times:
        moved_ego = ego_box.copy()
        moved_agent = agent_box.copy()
        for box, state in ((moved_ego, e), (moved_agent, m)):
            box[..., 0] += state[..., BoxState.SPEED] * tau * state[..., BoxState.COS]
            box[..., 1] += state[..., BoxState.SPEED] * tau * state[..., BoxState.SIN]
        flag |= box2d_overlap(moved_ego, moved_agent, OVERLAP_EPS)
    now = box2d_overlap(ego_box, agent_box, OVERLAP_EPS)
    moving = np.abs(e[..., BoxState.SPEED]) > stopped_speed
    behind = _is_behind_np(e, rear_to_center, m[..., BoxState.X], m[..., BoxState.Y],
                           behind_angle)  # fmt: skip
    flag &= moving & ~now & ~behind & (weights[None, :, :, None] > 0)
    any_flag = flag.any(axis=-1)
    measure = np.sum(np.where(any_flag, weights[None], 0.0), axis=(1, 2))
    step = np.where(any_flag, np.argmax(flag, axis=-1), nt).min(axis=(1, 2))
    first = np.where(step < nt, step, -1).astype(np.int64)
    return measure, first


def interaction_reference(
    ego: FloatArray,
    lateral_at_fault: BoolArray,
    agents: FloatArray,
    half_sizes: FloatArray,
    collision_weights: FloatArray,
    ttc_weights: FloatArray,
    ego_length: float,
    ego_width: float,
    rear_to_center: float,
    stopped_speed: float,
    cos_behind: float,
    num_steps: int,
    projection_times: FloatArray,
    saturation: float,
) -> tuple[FloatArray, IntArray, FloatArray, IntArray]:
    """NumPy reference of :func:`cost_kernels.interaction_kernel` (same arguments, without the
    broad-phase cell): :func:`collision_reference` and :func:`ttc_reference` over the whole
    horizon, measures clipped at ``saturation``. Memory grows as ``N·A·K·T``: small inputs."""
    if ego.shape[-1] == len(TrajIndex):  # rear-axle poses
        ego = ego_box_states(ego, rear_to_center)
    sizes = 2.0 * np.asarray(half_sizes, dtype=np.float64)
    behind_angle = math.acos(min(1.0, max(-1.0, cos_behind)))
    collision_measure, collision_first = collision_reference(
        ego, lateral_at_fault, agents, sizes, collision_weights, ego_length, ego_width,
        rear_to_center, stopped_speed, behind_angle, num_steps,
    )  # fmt: skip
    ttc_measure, ttc_first = ttc_reference(
        ego, agents, sizes, ttc_weights, ego_length, ego_width, rear_to_center, stopped_speed,
        behind_angle, num_steps, projection_times,
    )  # fmt: skip
    return (
        np.minimum(collision_measure, saturation),
        collision_first,
        np.minimum(ttc_measure, saturation),
        ttc_first,
    )


def candidate_terms_reference(
    candidates: FloatArray,
    path: FloatArray,
    path_s: FloatArray,
    speed_limits: FloatArray,
    rear_to_center: float,
    front_offset: float,
    half_width: float,
    lane_half_width: float,
    window_steps: int,
    band_index: IntArray,
    band_coef: FloatArray,
    box_states: bool,
) -> tuple[FloatArray, BoolArray, FloatArray, BoolArray]:
    """NumPy reference of :func:`cost_kernels.candidate_terms_kernel` (same arguments), built
    from :func:`ego_box_states`, :func:`path_projection_reference` (a global nearest-segment
    search: the two agree wherever the kernel's walk reaches the nearest segment) and
    :func:`comfort_metrics`-style derivatives with the given band."""
    t_count = candidates.shape[1]
    ego = ego_box_states(candidates, rear_to_center)
    rear = candidates[..., [TrajIndex.X, TrajIndex.Y]]
    front = np.empty_like(rear)
    front[..., 0] = rear[..., 0] + front_offset * ego[..., BoxState.COS]
    front[..., 1] = rear[..., 1] + front_offset * ego[..., BoxState.SIN]
    arc, lateral = path_projection_reference(rear, path, path_s)
    front_arc, front_lateral = path_projection_reference(front, path, path_s)
    straddle = np.maximum(np.abs(lateral), np.abs(front_lateral)) + half_width > lane_half_width
    terms = np.empty((candidates.shape[0], len(CandidateTerm)))
    terms[:, CandidateTerm.PROGRESS] = np.maximum(arc[:, -1] - arc[:, 0], 0.0)
    terms[:, CandidateTerm.WRONG_WAY] = _wrong_way_distance(arc, window_steps)
    index = np.clip(np.searchsorted(path_s, arc[:, 1:], side="right") - 1, 0, len(path_s) - 1)
    speed = candidates[:, 1:, TrajIndex.SPEED]
    terms[:, CandidateTerm.MEAN_OVERSPEED] = np.maximum(speed - speed_limits[index], 0.0).mean(1)
    terms[:, CandidateTerm.MEAN_ABS_LATERAL] = np.abs(lateral[:, 1:]).mean(axis=1)
    terms[:, CandidateTerm.FRONT_ARC_START] = front_arc[:, 0]
    terms[:, CandidateTerm.FRONT_ARC_MAX] = front_arc[:, 1:].max(axis=1) if t_count > 1 else -np.inf
    comfort = slice(CandidateTerm.MIN_LON_ACCEL, CandidateTerm.MIN_LON_ACCEL + len(ComfortIndex))
    terms[:, comfort] = _comfort_extremes(candidates, (band_index, band_coef))
    finite = np.all(np.isfinite(candidates), axis=(1, 2))
    return (ego if box_states else ego[:0]), straddle, terms, finite


def _interaction_reference_kernel(
    ego: FloatArray,
    lateral_at_fault: BoolArray,
    agents: FloatArray,
    half_sizes: FloatArray,
    collision_weights: FloatArray,
    ttc_weights: FloatArray,
    ego_length: float,
    ego_width: float,
    rear_to_center: float,
    stopped_speed: float,
    cos_behind: float,
    num_steps: int,
    projection_times: FloatArray,
    _cell_size: float,
    saturation: float,
) -> tuple[FloatArray, IntArray, FloatArray, IntArray]:
    return interaction_reference(
        ego, lateral_at_fault, agents, half_sizes, collision_weights, ttc_weights, ego_length,
        ego_width, rear_to_center, stopped_speed, cos_behind, num_steps, projection_times,
        saturation,
    )  # fmt: skip


def path_projection_reference(
    points: FloatArray, path: FloatArray, s: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Global nearest-segment projection of points ``(N, T, 2)`` onto ``path`` ``(P, >=2)``.

    Same outputs as :func:`cost_kernels.path_projection_kernel`, each point matched to its
    nearest segment over the whole path (the first one on ties); the two agree wherever the
    nearest segment is also the one the kernel's local walk reaches.
    """
    p0 = path[:-1, :2]
    d = path[1:, :2] - p0
    length2 = np.sum(d * d, axis=-1)
    rel = points[..., None, :] - p0  # (N, T, P-1, 2)
    u = np.clip(np.sum(rel * d, axis=-1) / np.where(length2 > 0, length2, 1.0), 0.0, 1.0)
    err = rel - u[..., None] * d
    j = np.argmin(np.sum(err * err, axis=-1), axis=-1)  # (N, T)
    seg = d[j]
    length = np.sqrt(length2[j])
    r = np.take_along_axis(rel, j[..., None, None], axis=-2)[..., 0, :]
    safe = np.where(length > 0, length, 1.0)
    along = np.sum(r * seg, axis=-1) / safe
    last = len(path) - 2
    along = np.where(j > 0, np.maximum(along, 0.0), along)
    along = np.where(j < last, np.minimum(along, length), along)
    lateral = (seg[..., 0] * r[..., 1] - seg[..., 1] * r[..., 0]) / safe
    arc = s[j] + along * (s[j + 1] - s[j]) / safe
    arc = np.where(length > 0, arc, s[j])
    lateral = np.where(length > 0, lateral, np.hypot(r[..., 0], r[..., 1]))
    return arc, lateral


def footprint_sample_reference(
    ego: FloatArray,
    local: FloatArray,
    grid: FloatArray,
    layer_of_step: IntArray,
    pose: FloatArray,
    resolution: float,
    origin_row: float,
    origin_col: float,
) -> Any:
    """Vectorised NumPy reference of :func:`cost_kernels.footprint_sample_kernel`."""
    points = _box_points(ego, local)  # (N, T, S, 2)
    h, w = grid.shape[1:]
    c, s = math.cos(pose[2]), math.sin(pose[2])
    dx = points[..., 0] - pose[0]
    dy = points[..., 1] - pose[1]
    u = origin_row - (c * dx + s * dy) / resolution - 0.5
    v = origin_col - (c * dy - s * dx) / resolution - 0.5
    inside = (u >= -0.5) & (u <= h - 0.5) & (v >= -0.5) & (v <= w - 0.5)
    u = np.clip(u, 0.0, h - 1.0)
    v = np.clip(v, 0.0, w - 1.0)
    r0 = np.minimum(np.floor(u).astype(np.int64), max(h - 2, 0))
    c0 = np.minimum(np.floor(v).astype(np.int64), max(w - 2, 0))
    fu = u - r0
    fv = v - c0
    r1 = np.minimum(r0 + 1, h - 1)
    c1 = np.minimum(c0 + 1, w - 1)
    layer = np.broadcast_to(layer_of_step[None, :, None], u.shape)
    top = (1 - fv) * grid[layer, r0, c0] + fv * grid[layer, r0, c1]
    bottom = (1 - fv) * grid[layer, r1, c0] + fv * grid[layer, r1, c1]
    return np.where(inside, (1 - fu) * top + fu * bottom, np.nan)


REFERENCE_KERNELS = SimpleNamespace(
    candidate_terms_kernel=candidate_terms_reference,
    interaction_kernel=_interaction_reference_kernel,
    mode_box_states_kernel=agent_box_states,
    footprint_sample_kernel=footprint_sample_reference,
)
"""The NumPy references under the names and argument conventions of the kernels that
:func:`score_candidates` calls: put in place of :mod:`kaido.planning.cost_kernels` (the module
attribute ``cost_kernels``) to score with plain NumPy (agreement tests, the benchmark)."""


# -- NumPy terms -----------------------------------------------------------------------------------


def _savgol_band(num_points: int, dt: float, window: int, order: int) -> tuple[Any, Any]:
    """Banded form of :func:`savgol_derivative_matrix`: ``index`` ``(T, w)`` columns and
    ``coef`` ``(T, w)`` weights, so that ``dy[t] = sum_i coef[t, i] * y[index[t, i]]``
    (C-ordered and read-only: computed once per setting)."""
    return _savgol_band_cached(int(num_points), float(dt), int(window), int(order))


@functools.lru_cache(maxsize=32)
def _savgol_band_cached(num_points: int, dt: float, window: int, order: int) -> tuple[Any, Any]:
    index, coef = _savgol_band_of(num_points, dt, window, order)
    return (
        _readonly(np.ascontiguousarray(index, dtype=np.int64)),
        _readonly(np.ascontiguousarray(coef, dtype=np.float64)),
    )


def _savgol_band_of(num_points: int, dt: float, window: int, order: int) -> tuple[Any, Any]:
    t_count = num_points
    if window > t_count:
        window = t_count if t_count % 2 else t_count - 1
    if window < 3:
        if t_count == 1:
            return np.zeros((1, 1), np.int64), np.zeros((1, 1))
        index = np.clip(np.arange(t_count)[:, None] + np.array([-1, 1]), 0, t_count - 1)
        coef = np.array([[-1.0, 1.0]]) / ((index[:, 1] - index[:, 0])[:, None] * dt)
        return index, coef
    order = min(order, window - 1)
    half = window // 2
    offsets = np.arange(window, dtype=np.float64) - half
    fit = np.linalg.pinv(offsets[:, None] ** np.arange(order + 1))  # coefficients = fit @ y
    start = np.clip(np.arange(t_count) - half, 0, t_count - window)
    x = (np.arange(t_count) - start - half).astype(np.float64)  # t within its window, centred
    powers = np.arange(order + 1)
    dpoly = np.where(powers > 0, powers * x[:, None] ** np.maximum(powers - 1, 0), 0.0)
    return start[:, None] + np.arange(window), dpoly @ fit / dt


def savgol_derivative_matrix(num_points: int, dt: float, window: int = 5, order: int = 2) -> Any:
    """``(T, T)`` matrix ``D`` with ``y @ D.T`` the Savitzky-Golay first derivative of ``y``.

    A polynomial of degree ``order`` is fitted by least squares over ``window`` points centred on
    each point (``scipy.signal.savgol_filter(..., deriv=1, mode="interp")``: the first and last
    ``window // 2`` points use the polynomial fitted to the first / last window). A series shorter
    than the window uses the largest odd window it holds (central differences below 3 points).
    """
    index, coef = _savgol_band(num_points, dt, window, order)
    out = np.zeros((num_points, num_points))
    np.add.at(out, (np.arange(num_points)[:, None], index), coef)
    return out


def _derivative(y: FloatArray, band: tuple[Any, Any]) -> Any:
    """Savitzky-Golay derivative of ``y`` ``(N, T)`` along T (band from :func:`_savgol_band`)."""
    index, coef = band
    t_count, width = index.shape
    out = np.zeros(y.shape)
    # rows sharing a window start (the edges) or a window offset (the interior) in bulk
    interior = np.flatnonzero(index[:, 0] == np.arange(t_count) - width // 2)
    if len(interior) and np.allclose(coef[interior], coef[interior[0]], rtol=0, atol=1e-12):
        lo, hi = interior[0], interior[-1] + 1
        for i in range(width):
            out[:, lo:hi] += coef[lo, i] * y[:, lo - width // 2 + i : hi - width // 2 + i]
        rows = np.setdiff1d(np.arange(t_count), np.arange(lo, hi))
    else:
        rows = np.arange(t_count)
    for t in rows:
        out[:, t] = y[:, index[t]] @ coef[t]
    return out


def comfort_metrics(candidates: FloatArray, dt: float, window: int = 5) -> Any:
    """``(N, len(ComfortIndex))`` extremes of the comfort signals of candidates ``(N, T, 6)``
    (the NumPy reference of :func:`cost_kernels.comfort_kernel`).

    Longitudinal acceleration is the ``ACCEL`` column, lateral acceleration ``v²κ`` and yaw rate
    ``vκ`` from ``SPEED`` and ``CURVATURE``; yaw acceleration, longitudinal jerk and the rate of
    change of the acceleration magnitude ``hypot(a_lon, a_lat)`` are Savitzky-Golay derivatives
    (:func:`savgol_derivative_matrix`, ``window`` points, ``dt`` [s]).
    """
    return _comfort_extremes(candidates, _savgol_band(candidates.shape[1], dt, window, 2))


def _comfort_extremes(candidates: FloatArray, band: tuple[Any, Any]) -> Any:
    """:func:`comfort_metrics` with the derivative band given."""
    v = candidates[..., TrajIndex.SPEED]
    kappa = candidates[..., TrajIndex.CURVATURE]
    lon = candidates[..., TrajIndex.ACCEL]
    lat = v * v * kappa
    yaw_rate = v * kappa
    out = np.empty((candidates.shape[0], len(ComfortIndex)))
    out[:, ComfortIndex.MIN_LON_ACCEL] = lon.min(axis=1)
    out[:, ComfortIndex.MAX_LON_ACCEL] = lon.max(axis=1)
    out[:, ComfortIndex.MAX_ABS_LAT_ACCEL] = np.abs(lat).max(axis=1)
    out[:, ComfortIndex.MAX_ABS_YAW_RATE] = np.abs(yaw_rate).max(axis=1)
    out[:, ComfortIndex.MAX_ABS_YAW_ACCEL] = np.abs(_derivative(yaw_rate, band)).max(axis=1)
    out[:, ComfortIndex.MAX_ABS_LON_JERK] = np.abs(_derivative(lon, band)).max(axis=1)
    out[:, ComfortIndex.MAX_ABS_JERK] = np.abs(_derivative(np.hypot(lon, lat), band)).max(axis=1)
    return out


def _comfort_term(metrics: FloatArray, config: CostConfig) -> Any:
    ok = (metrics[:, ComfortIndex.MIN_LON_ACCEL] >= config.min_lon_accel) & (
        metrics[:, ComfortIndex.MAX_LON_ACCEL] <= config.max_lon_accel
    )
    bounds = (
        (ComfortIndex.MAX_ABS_LAT_ACCEL, config.max_abs_lat_accel),
        (ComfortIndex.MAX_ABS_YAW_RATE, config.max_abs_yaw_rate),
        (ComfortIndex.MAX_ABS_YAW_ACCEL, config.max_abs_yaw_accel),
        (ComfortIndex.MAX_ABS_LON_JERK, config.max_abs_lon_jerk),
        (ComfortIndex.MAX_ABS_JERK, config.max_abs_jerk),
    )
    for column, bound in bounds:
        ok &= metrics[:, column] <= bound
    return ok.astype(np.float64)


def _wrong_way_distance(arc: FloatArray, window_steps: int) -> Any:
    """``(N,)`` [m] largest distance driven against the path within ``window_steps`` steps."""
    t_count = arc.shape[1]
    worst = np.zeros(arc.shape[0])
    for t in range(1, t_count):
        gain = arc[:, t] - arc[:, max(t - window_steps, 0)]
        worst = np.maximum(worst, -gain)
    return worst + 0.0  # no -0.0


def _prepared_limits(reference: ReferencePath) -> Any:
    """``(P,)`` [m/s] the limit from each reference point on (``inf`` where there is none: a
    non-finite or non-positive limit)."""
    limits = np.asarray(reference.speed_limits, dtype=np.float64)
    return np.where(np.isfinite(limits) & (limits > 0), limits, np.inf)


def _stop_multiplier(
    front_start: FloatArray, front_max: FloatArray, stops: tuple[StopConstraint, ...]
) -> Any:
    """1 unless the front bumper (arc length ``front_start`` ``(N,)`` at step 0, at most
    ``front_max`` ``(N,)`` later) passes a stop it had not passed at step 0."""
    ok = np.ones(front_start.shape[0], dtype=bool)
    for stop in stops:
        line = float(stop.s)
        if not math.isfinite(line):
            raise ValueError(f"inp.stops: StopConstraint.s must be finite, got {stop.s}")
        ok &= (front_start > line) | ~(front_max > line)
    return ok.astype(np.float64)


def _one_minus(measure: FloatArray) -> Any:
    """``1 - measure`` clipped to [0, 1], with values within the probability tolerance of 0 set
    to 0 (a certain hit must zero the score even when the probabilities sum to 1 - 1e-7)."""
    value = np.clip(1.0 - measure, 0.0, 1.0)
    return np.where(value <= PROBABILITY_TOLERANCE, 0.0, value)


def _progress_term(gain: FloatArray, admissible: BoolArray, threshold: float) -> Any:
    pool = gain[admissible] if np.any(admissible) else gain
    best = float(np.max(pool))
    if best <= threshold:
        return np.ones_like(gain)
    return np.clip(gain / best, 0.0, 1.0)


def _footprint_grid(length: float, width: float, n_len: int, n_wid: int) -> Any:
    """``(n_len · n_wid, 2)`` points at the centres of a ``n_len × n_wid`` grid over the box."""
    along = ((np.arange(n_len) + 0.5) / n_len - 0.5) * length
    across = ((np.arange(n_wid) + 0.5) / n_wid - 0.5) * width
    gx, gy = np.meshgrid(along, across, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel()], axis=-1)


# -- scoring ---------------------------------------------------------------------------------------


def _check_candidates(candidates: Any, planner: PlannerConfig) -> FloatArray:
    """The candidates as a C-ordered float64 array of the right shape (finiteness is checked by
    the terms kernel, which reads every value anyway: :func:`_raise_non_finite`)."""
    try:
        array = np.ascontiguousarray(candidates, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"candidates: expected a float array (N, T, 6), got {err}") from None
    t = planner.num_points
    if array.ndim != 3 or array.shape[1:] != (t, len(TrajIndex)) or array.shape[0] < 1:
        raise ValueError(
            f"candidates: expected shape (N >= 1, {t}, {len(TrajIndex)}), got {array.shape}"
        )
    return array


def _raise_non_finite(array: FloatArray) -> None:
    bad = np.argwhere(~np.isfinite(array))[0]
    raise ValueError(f"candidates: non-finite value at index {tuple(int(i) for i in bad)}")


def _sample_footprint(
    ego: FloatArray,
    local: FloatArray,
    grid: FloatArray,
    layer: IntArray,
    raster: DrivableField | OccupancyForecast,
) -> Any:
    return cost_kernels.footprint_sample_kernel(
        np.ascontiguousarray(ego),
        np.ascontiguousarray(local, dtype=np.float64),
        np.ascontiguousarray(grid, dtype=np.float64),
        layer,
        np.ascontiguousarray(raster.pose, dtype=np.float64),
        float(raster.resolution),
        float(raster.origin_row),
        float(raster.origin_col),
    )


def _corner_points(length: float, width: float) -> Any:
    """``(4, 2)`` box corners (``BoxCorner`` order) in the box frame."""
    signs = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    return signs * np.array([0.5 * length, 0.5 * width])


_DEFAULT_PLANNER = PlannerConfig()


def score_candidates(
    candidates: FloatArray,
    inp: PlannerInput,
    profile: VehicleProfile,
    planner: PlannerConfig = _DEFAULT_PLANNER,
    config: CostConfig = CostConfig(),
) -> ScoredCandidates:
    """Score candidates ``(N, T, len(TrajIndex))`` against the input (see the module docstring).

    ``T`` must be ``planner.num_points``, and so must the agents' and the occupancy forecast's
    time axes. Raises ValueError naming the argument on a bad shape or non-finite candidates.
    """
    if not isinstance(inp, PlannerInput):
        raise TypeError(f"inp: expected PlannerInput, got {type(inp).__name__}")
    if not isinstance(profile, VehicleProfile):
        raise TypeError(f"profile: expected VehicleProfile, got {type(profile).__name__}")
    cand = _check_candidates(candidates, planner)
    n_count, t_count = cand.shape[:2]
    agents = inp.agents
    if agents.modes.shape[2] != t_count:
        raise ValueError(
            f"inp.agents.modes: expected {t_count} time points (A, K, {t_count}, "
            f"{len(ModeIndex)}), got shape {agents.modes.shape}"
        )
    dt = planner.dt
    length, width = profile.length, profile.width
    rear_to_center = profile.rear_axle_to_center
    front_offset = length - profile.rear_overhang
    window = max(1, int(round(config.direction_window / dt)))
    band = _savgol_band(t_count, dt, config.comfort_window, 2)

    # -- everything per candidate: box states, path projections, lane test, soft-term inputs -----
    ego, straddle, terms, finite = cost_kernels.candidate_terms_kernel(
        cand,
        np.ascontiguousarray(inp.reference.path[:, :2]),
        np.array(inp.reference.s, dtype=np.float64),  # writable: one compiled signature
        _prepared_limits(inp.reference),
        rear_to_center,
        front_offset,
        0.5 * width,
        config.lane_half_width,
        window,
        band[0],
        band[1],
        inp.drivable is not None or inp.occupancy is not None,  # box states for the rasters
    )
    if not np.all(finite):
        _raise_non_finite(cand)

    # -- drivable area ---------------------------------------------------------------------------
    if inp.drivable is not None:
        samples = _sample_footprint(
            ego,
            _corner_points(length, width),
            inp.drivable.distance[None],
            np.zeros(t_count, np.int64),
            inp.drivable,
        )
        # (N, T) smallest corner distance; NaN only where every corner is off the raster
        margin = np.fmin(
            np.fmin(samples[..., 0], samples[..., 1]), np.fmin(samples[..., 2], samples[..., 3])
        )
        known = ~np.isnan(margin)
        margin_now = np.where(known[:, :1], margin[:, :1], 0.0)
        limit = np.minimum(-config.drivable_margin, margin_now - config.drivable_margin)
        outside = known & (margin < limit)
        drivable_ok = ~np.any(outside[:, 1:], axis=1)
        min_margin = np.where(known[:, 1:], margin[:, 1:], np.inf).min(axis=1)
        offroad_fraction = outside[:, 1:].mean(axis=1)
        lateral_at_fault = straddle | (known & (margin < -config.drivable_margin))
    else:
        drivable_ok = np.ones(n_count, dtype=bool)
        min_margin = np.full(n_count, np.inf)
        offroad_fraction = np.zeros(n_count)
        lateral_at_fault = straddle

    # -- collisions and time to collision ----------------------------------------------------------
    horizon_steps = (
        t_count
        if config.collision_horizon is None
        else min(t_count, int(math.floor(config.collision_horizon / dt + 1e-9)) + 1)
    )
    class_weight = np.where(agents.classes == int(AgentClass.STATIC),
                            config.static_collision_weight, 1.0)  # fmt: skip
    probabilities = np.array(agents.probabilities, dtype=np.float64)  # writable, as above
    j_max = int(math.ceil(config.ttc_threshold / dt - 1e-9)) - 1
    saturation = 1.0 - PROBABILITY_TOLERANCE
    collision_measure, collision_time, ttc_measure, _ttc_time = (
        cost_kernels.interaction_kernel(
            cand, lateral_at_fault,
            cost_kernels.mode_box_states_kernel(np.ascontiguousarray(agents.modes, np.float64)),
            np.ascontiguousarray(0.5 * agents.sizes, dtype=np.float64),
            probabilities * class_weight[:, None], probabilities, length, width, rear_to_center,
            config.stopped_speed, math.cos(config.behind_angle), horizon_steps,
            dt * np.arange(1, max(j_max, 0) + 1, dtype=np.float64), config.broad_phase_cell,
            saturation,
        )
    )  # fmt: skip
    collision_measure = np.where(collision_measure >= saturation, 1.0, collision_measure)
    ttc_measure = np.where(ttc_measure >= saturation, 1.0, ttc_measure)

    # -- multipliers -------------------------------------------------------------------------------
    multipliers = np.empty((n_count, len(Multiplier)))
    multipliers[:, Multiplier.NO_AT_FAULT_COLLISION] = _one_minus(collision_measure)
    multipliers[:, Multiplier.DRIVABLE_AREA] = drivable_ok
    wrong_way = terms[:, CandidateTerm.WRONG_WAY]
    multipliers[:, Multiplier.DRIVING_DIRECTION] = np.where(
        wrong_way <= config.direction_compliance,
        1.0,
        np.where(wrong_way <= config.direction_violation, 0.5, 0.0),
    )
    multipliers[:, Multiplier.STOPS] = _stop_multiplier(
        terms[:, CandidateTerm.FRONT_ARC_START], terms[:, CandidateTerm.FRONT_ARC_MAX], inp.stops
    )
    product = multipliers.prod(axis=1)

    # -- soft terms --------------------------------------------------------------------------------
    soft = np.ones((n_count, len(SoftTerm)))
    soft_weights = config.soft_weights()
    gain = terms[:, CandidateTerm.PROGRESS]
    soft[:, SoftTerm.PROGRESS] = _progress_term(gain, product > 0, config.progress_threshold)
    soft[:, SoftTerm.TTC] = _one_minus(ttc_measure)
    comfort = terms[:, CandidateTerm.MIN_LON_ACCEL :]
    soft[:, SoftTerm.COMFORT] = _comfort_term(comfort, config)
    overspeed = terms[:, CandidateTerm.MEAN_OVERSPEED]
    soft[:, SoftTerm.SPEED_LIMIT] = np.clip(1.0 - overspeed / config.overspeed_tolerance, 0, 1)
    lateral_mean = terms[:, CandidateTerm.MEAN_ABS_LATERAL]
    soft[:, SoftTerm.LANE_CENTER] = np.clip(
        1.0 - lateral_mean / config.lane_center_tolerance, 0.0, 1.0
    )
    if inp.occupancy is not None:
        grid = inp.occupancy.probability
        if grid.shape[0] != t_count:
            raise ValueError(
                f"inp.occupancy.probability: expected {t_count} time layers (T, H, W), "
                f"got shape {grid.shape}"
            )
        local = _footprint_grid(
            length, width, config.occupancy_samples_length, config.occupancy_samples_width
        )
        samples = _sample_footprint(
            ego[:, 1:], local, grid[1:], np.arange(t_count - 1, dtype=np.int64), inp.occupancy
        )
        occupancy_mean = np.clip(np.nan_to_num(samples, nan=0.0), 0.0, 1.0).mean(axis=(1, 2))
        soft[:, SoftTerm.OCCUPANCY] = 1.0 - occupancy_mean
    else:
        occupancy_mean = np.zeros(n_count)
        soft_weights[SoftTerm.OCCUPANCY] = 0.0
    total_weight = float(soft_weights.sum())
    average = soft @ soft_weights / total_weight if total_weight > 0 else np.ones(n_count)
    scores = np.clip(product * average, 0.0, 1.0)

    raw = {
        "collision_measure": collision_measure,
        "ttc_measure": ttc_measure,
        "progress_m": gain,
        "wrong_way_m": wrong_way,
        "drivable_min_margin_m": min_margin,
        "offroad_fraction": offroad_fraction,
        "mean_overspeed_mps": overspeed,
        "mean_abs_lateral_m": lateral_mean,
        "occupancy_mean": occupancy_mean,
        "min_lon_accel_mps2": comfort[:, ComfortIndex.MIN_LON_ACCEL],
        "max_abs_lon_jerk_mps3": comfort[:, ComfortIndex.MAX_ABS_LON_JERK],
    }
    return ScoredCandidates(
        scores=_readonly(scores),
        multipliers=_readonly(multipliers),
        multiplier_names=tuple(m.name.lower() for m in Multiplier),
        soft=_readonly(soft),
        soft_names=tuple(s.name.lower() for s in SoftTerm),
        soft_weights=_readonly(soft_weights),
        collision_time=_readonly(np.asarray(collision_time, dtype=np.int64)),
        raw=MappingProxyType({k: _readonly(np.asarray(v, np.float64)) for k, v in raw.items()}),
    )
