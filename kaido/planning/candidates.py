"""Candidate trajectories for the planner: a Frenet lattice plus PDM-Closed-style IDM proposals.

One call of :func:`generate_candidates`:

1. **Projection.** The ego's rear axle is projected on the reference path: arc length ``s0``,
   lateral offset ``d0`` (left positive) and heading error. The reference is resampled every
   :attr:`CandidateConfig.path_resolution` metres over the stretch the horizon can reach (the
   *reference grid*, extended straight past the path's ends). Its *speed cap* is the posted
   limit, lowered where the path curves (lateral acceleration
   :attr:`CandidateConfig.curve_lateral_accel` on the smoothed curvature) and ahead of any lower
   cap (braking at :attr:`CandidateConfig.comfort_decel`).
2. **Longitudinal profiles** ``s(t), v(t), a(t)`` on the planner's time grid:

   * one per :attr:`CandidateConfig.speed_fractions` entry ``f``: head for ``f`` × the speed cap
     at the current arc length with ``a = (target - v) / speed_time_constant`` (at least
     ``settle_accel`` until the target is reached, so profiles settle), clipped to the
     vehicle's envelope (``envelope_accel_min``..``envelope_accel_max``). Constant acceleration
     over each step, no jerk limit; ``f = 0`` brings the ego to a stop;
   * stop profiles: cruise at the speed cap and stop with the front bumper
     :attr:`CandidateConfig.stop_margin` before each :class:`StopConstraint` ahead and before the
     end of the reference path, braking along the constant-deceleration curve once that takes
     :attr:`CandidateConfig.comfort_decel` (more, up to the envelope, when the stop is closer);
   * IDM profiles (PDM-Closed): the intelligent driver model at each of
     :attr:`CandidateConfig.idm_speed_fractions` of the speed cap, following the nearest agent
     (its most likely predicted mode, step by step) whose box overlaps the reference lane ahead
     (``|offset| < lane_half_width + half its width``) and treating each stop constraint ahead as
     a standing obstacle whose standstill gap ends :attr:`CandidateConfig.stop_margin` before
     it. The end of the reference path does not stop the IDM.
3. **Lateral profiles**: a quintic in ``s`` from ``(d0, tan(heading error))`` to a target
   offset, with zero slope and curvature at both ends, over the distance the longitudinal
   profile covers in :attr:`CandidateConfig.lane_change_time` (at least
   :attr:`CandidateConfig.min_transition_length`). Targets: every
   :attr:`CandidateConfig.lateral_offsets` entry, and the centre of the neighbouring lane on the
   left / right where ``ReferencePath.left_offsets`` / ``right_offsets`` are finite from ``s0``
   to the end of a lane change at the current speed (its offset there is the target).
4. **Candidates**: IDM profiles × :attr:`CandidateConfig.idm_offsets`, then lateral targets ×
   (speed profiles and stop profiles). Order: the IDM block first (offsets by increasing |offset|,
   each with every IDM speed), then lateral targets by increasing |offset| (lane changes last),
   each with every speed profile and then every stop profile; ``max_candidates`` keeps the
   first ones. Kind: ``LANE_CHANGE_*`` for lane-change targets, else ``STOP`` for stop profiles,
   else ``LATTICE``; IDM proposals are ``IDM``.
5. **Rollout** (:func:`kaido.planning.candidate_kernels.rollout_kernel`): a kinematic bicycle on
   the rear axle (the vehicle profile's wheelbase, steering angle and rate limits) driven by pure
   pursuit on the candidate's offset path and by profile tracking clipped to the envelope, so
   every candidate is feasible: |steer| ≤ max_steer, |steer rate| ≤ max_steer_rate, acceleration
   within the envelope, speed ≥ 0. Stop profiles (and IDM proposals, at the first stop
   constraint) also carry an arc-length limit their rollout brakes for.

Trajectories are ``(N, T, len(TrajIndex))`` in the world frame; point 0 is the ego's rear-axle
pose and speed. Axis vocabulary: ``N`` candidates, ``M`` longitudinal profiles, ``T`` time
points, ``G`` reference-grid points, ``A`` agents, ``S`` stops.

This module also holds the plain NumPy references of the kernels (``*_reference``): the same
maths, vectorised over candidates / profiles / agents and looping over time.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from kaido.planning import candidate_kernels as kernels
from kaido.planning.candidate_kernels import (
    GAP_EPS,
    MIN_DESIRED_SPEED,
    MIN_IDM_GAP,
    SEGMENT_EPS,
    AgentPathIndex,
    IdmParam,
    LateralIndex,
    ProfileIndex,
    RolloutParam,
    SpeedProfileParam,
    StartIndex,
)
from kaido.planning.types import (
    ModeIndex,
    PlannerConfig,
    PlannerInput,
    ReferencePath,
    TrajIndex,
)
from kaido.scene.vehicle import VehicleProfile

__all__ = [
    "CandidateConfig",
    "CandidateInfo",
    "CandidateKind",
    "PathProjection",
    "ReferenceGrid",
    "build_reference_grid",
    "generate_candidates",
    "generate_candidates_reference",
    "idm_profiles_reference",
    "project_agents_reference",
    "project_on_path",
    "rollout_params",
    "rollout_reference",
    "speed_profiles_reference",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

GRID_BACK = 5.0
"""[m] the reference grid starts this far behind the ego's projection."""
GRID_MARGIN = 10.0
"""[m] extra reference grid beyond the farthest point the horizon can reach."""


class CandidateKind(IntEnum):
    """What a candidate is (see the module docstring)."""

    LATTICE = 0
    IDM = 1
    STOP = 2
    LANE_CHANGE_LEFT = 3
    LANE_CHANGE_RIGHT = 4


def _finite_tuple(owner: str, name: str, values: Any, minimum: float | None) -> tuple[float, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
        raise TypeError(f"{owner}.{name}: expected a sequence of numbers, got {values!r}")
    out: list[float] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise TypeError(f"{owner}.{name}: expected numbers, got {value!r}")
        value = float(value)
        if not math.isfinite(value) or (minimum is not None and value < minimum):
            bound = "" if minimum is None else f" and >= {minimum}"
            raise ValueError(f"{owner}.{name}: every entry must be finite{bound}, got {value}")
        out.append(value)
    return tuple(out)


@dataclass(frozen=True)
class CandidateConfig:
    """How many candidates, of which kinds, and how they are tracked (see the module docstring).

    The lattice has ``(len(lateral_offsets) + lane changes) × (len(speed_fractions) + stops ahead
    + 1)`` candidates and the IDM block ``len(idm_speed_fractions) × len(idm_offsets)``;
    :meth:`dense` builds a config with a given lattice size.
    """

    lateral_offsets: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0)
    """[m] target offsets around the reference (left positive)."""
    speed_fractions: tuple[float, ...] = (0.0, 0.3, 0.6, 0.8, 1.0, 1.1)
    """[-] target speeds of the lattice's speed profiles, as fractions of the speed cap."""
    idm_speed_fractions: tuple[float, ...] = (0.4, 0.7, 1.0)
    """[-] desired speeds of the IDM proposals, as fractions of the speed cap."""
    idm_offsets: tuple[float, ...] = (-0.5, 0.0, 0.5)
    """[m] target offsets of the IDM proposals."""
    idm_time_headway: float = 1.5
    """[s] IDM desired time headway."""
    idm_min_gap: float = 2.5
    """[m] IDM standstill gap to a leading agent."""
    idm_accel: float = 1.5
    """[m/s²] IDM maximum acceleration."""
    idm_decel: float = 3.0
    """[m/s²] IDM comfortable deceleration (positive)."""
    lane_half_width: float = 1.75
    """[m] half the reference lane's width: an agent leads the IDM when |its offset| is below
    this plus half its width."""
    lane_change_time: float = 4.0
    """[s] lateral transitions complete over the distance a profile covers in this time."""
    min_transition_length: float = 8.0
    """[m] shortest lateral transition."""
    max_initial_slope: float = 0.5
    """[m/m] bound on the transition's initial slope (tangent of the ego's heading error)."""
    stop_margin: float = 1.0
    """[m] stop profiles put the front bumper this far before the stop."""
    comfort_decel: float = 2.0
    """[m/s²] (positive) braking of stop profiles and of the speed cap ahead of slower stretches."""
    curve_lateral_accel: float = 2.0
    """[m/s²] the speed cap keeps the lateral acceleration on the reference below this."""
    curvature_smoothing: float = 3.0
    """[m] window of the moving average applied to the reference curvature."""
    speed_time_constant: float = 1.5
    """[s] speed profiles accelerate by (target - speed) / this (clipped to the envelope)."""
    settle_accel: float = 0.5
    """[m/s²] speed profiles change speed at least this fast until they reach their target."""
    lookahead_gain: float = 0.6
    """[s] pure-pursuit lookahead per m/s of speed."""
    min_lookahead: float = 4.0
    """[m] shortest pure-pursuit lookahead."""
    speed_gain: float = 1.0
    """[1/s] profile tracking: acceleration per m/s of speed error."""
    position_gain: float = 0.25
    """[1/s²] profile tracking: acceleration per metre of arc-length error."""
    standstill_speed: float = 0.3
    """[m/s] once its longitudinal profile is at rest, a rollout slower than this stops."""
    path_resolution: float = 0.5
    """[m] spacing of the reference grid."""
    max_candidates: int | None = None
    """keep only the first this many candidates (see the module docstring for the order)."""

    def __post_init__(self) -> None:
        owner = "CandidateConfig"
        object.__setattr__(
            self,
            "lateral_offsets",
            _finite_tuple(owner, "lateral_offsets", self.lateral_offsets, None),
        )
        if not self.lateral_offsets:
            raise ValueError(f"{owner}.lateral_offsets: needs at least one offset")
        for name in ("speed_fractions", "idm_speed_fractions"):
            object.__setattr__(self, name, _finite_tuple(owner, name, getattr(self, name), 0.0))
        object.__setattr__(
            self, "idm_offsets", _finite_tuple(owner, "idm_offsets", self.idm_offsets, None)
        )
        positive = (
            "idm_time_headway",
            "idm_min_gap",
            "idm_accel",
            "idm_decel",
            "lane_half_width",
            "lane_change_time",
            "min_transition_length",
            "comfort_decel",
            "curve_lateral_accel",
            "curvature_smoothing",
            "speed_time_constant",
            "settle_accel",
            "min_lookahead",
            "path_resolution",
        )
        non_negative = (
            "max_initial_slope",
            "stop_margin",
            "lookahead_gain",
            "speed_gain",
            "position_gain",
            "standstill_speed",
        )
        for name in positive + non_negative:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{owner}.{name}: expected a number, got {value!r}")
            if not math.isfinite(value) or value < 0 or (name in positive and value == 0):
                bound = "> 0" if name in positive else ">= 0"
                raise ValueError(f"{owner}.{name}: must be finite and {bound}, got {value}")
        if self.max_candidates is not None and (
            isinstance(self.max_candidates, bool)
            or not isinstance(self.max_candidates, int)
            or self.max_candidates < 1
        ):
            raise ValueError(
                f"{owner}.max_candidates: must be None or an int >= 1, got {self.max_candidates!r}"
            )

    def dense(
        self,
        num_offsets: int,
        num_speeds: int,
        max_offset: float = 1.5,
        max_speed_fraction: float = 1.1,
    ) -> CandidateConfig:
        """This config with ``num_offsets`` lateral offsets evenly in ``±max_offset`` [m] and
        ``num_speeds`` speed fractions evenly in ``[0, max_speed_fraction]``."""
        if num_offsets < 1 or num_speeds < 1:
            raise ValueError(
                f"CandidateConfig.dense: num_offsets and num_speeds must be >= 1, got "
                f"{num_offsets}, {num_speeds}"
            )
        offsets = np.linspace(-max_offset, max_offset, num_offsets) if num_offsets > 1 else [0.0]
        return dataclasses.replace(
            self,
            lateral_offsets=tuple(float(v) for v in offsets),
            speed_fractions=tuple(
                float(v) for v in np.linspace(0.0, max_speed_fraction, num_speeds)
            ),
        )


@dataclass(frozen=True, eq=False)
class CandidateInfo:
    """What each candidate of :func:`generate_candidates` aims for; every array is ``(N,)``."""

    lateral_offset: FloatArray
    """[m] target offset from the reference (left positive)."""
    target_speed: FloatArray
    """[m/s] the profile's fraction × the speed cap at the ego (0 for stop profiles)."""
    kind: IntArray
    """:class:`CandidateKind` values."""
    stop_s: FloatArray
    """[m] arc length of the stop a stop profile ends before (its front bumper
    ``stop_margin`` earlier); NaN for other profiles."""

    def __len__(self) -> int:
        return int(self.kind.shape[0])


@dataclass(frozen=True)
class PathProjection:
    """A pose projected on a reference path."""

    s: float
    """[m] arc length (extrapolated before the start and past the end)."""
    d: float
    """[m] signed lateral offset, left positive."""
    heading_error: float
    """[rad] pose yaw minus path yaw there, wrapped to [-π, π)."""
    segment: int
    """index of the path segment projected on."""


@dataclass(frozen=True, eq=False)
class ReferenceGrid:
    """The reference resampled every ``ds`` [m] from arc length ``s0`` [m]: ``xy`` ``(G, 2)``,
    unit left normals ``normal`` ``(G, 2)``, ``speed_limit`` and ``speed_cap`` ``(G,)`` [m/s],
    neighbour lane offsets ``left_offsets``/``right_offsets`` ``(G,)`` [m] (NaN: none)."""

    s0: float
    ds: float
    xy: FloatArray
    normal: FloatArray
    speed_limit: FloatArray
    speed_cap: FloatArray
    left_offsets: FloatArray
    right_offsets: FloatArray

    @property
    def s(self) -> FloatArray:
        """``(G,)`` [m] arc length of each grid point."""
        return self.s0 + self.ds * np.arange(self.xy.shape[0], dtype=np.float64)

    def at(self, values: FloatArray, s: float) -> float:
        """``values`` ``(G,)`` interpolated at arc length ``s`` (constant beyond the ends)."""
        return float(kernels.value_at(values, self.s0, self.ds, s))


def _wrap(angle: Any) -> Any:
    return (np.asarray(angle) + np.pi) % (2.0 * np.pi) - np.pi


def project_on_path(reference: ReferencePath, x: float, y: float, yaw: float) -> PathProjection:
    """Project the pose ``(x, y, yaw)`` on ``reference``: the nearest segment among those heading
    within 90° of ``yaw`` (any segment when none does). The NumPy reference of
    :func:`~kaido.planning.candidate_kernels.project_pose_kernel`."""
    p = reference.path[:, :2]
    e = np.diff(p, axis=0)
    den = np.maximum(np.einsum("ij,ij->i", e, e), SEGMENT_EPS)
    rel = np.array([x, y]) - p[:-1]
    raw = np.einsum("ij,ij->i", rel, e) / den
    u = np.clip(raw, 0.0, 1.0)
    q = p[:-1] + u[:, None] * e
    dist2 = np.sum((q - np.array([x, y])) ** 2, axis=1)
    aligned = np.abs(_wrap(yaw - np.arctan2(e[:, 1], e[:, 0]))) < 0.5 * np.pi
    if aligned.any():
        dist2 = np.where(aligned, dist2, np.inf)
    i = int(np.argmin(dist2))
    last = len(e) - 1
    t = float(raw[i])
    if i > 0:
        t = max(t, 0.0)
    if i < last:
        t = min(t, 1.0)
    s = float(reference.s[i] + t * (reference.s[i + 1] - reference.s[i]))
    length = math.sqrt(float(den[i]))
    d = float((e[i, 0] * rel[i, 1] - e[i, 1] * rel[i, 0]) / length)
    path_yaw = float(np.interp(s, reference.s, np.unwrap(reference.path[:, 2])))
    return PathProjection(s=s, d=d, heading_error=float(_wrap(yaw - path_yaw)), segment=i)


def _grid_count(s_from: float, s_to: float, ds: float) -> int:
    """Points of a reference grid from ``s_from`` to at least ``s_to`` [m], ``ds`` apart."""
    return max(int(math.ceil((s_to - s_from) / ds)) + 1, 2)


def _smoothing_window(config: CandidateConfig) -> int:
    """Odd window [points] of the moving average on the reference curvature."""
    return max(int(round(config.curvature_smoothing / config.path_resolution)), 1) | 1


def _project_on_path_kernel(
    reference: ReferencePath, x: float, y: float, yaw: float
) -> PathProjection:
    """:func:`project_on_path` through
    :func:`~kaido.planning.candidate_kernels.project_pose_kernel`."""
    s, d, error, segment = kernels.project_pose_kernel(reference.path, reference.s, x, y, yaw)
    return PathProjection(s=float(s), d=float(d), heading_error=float(error), segment=int(segment))


def _build_reference_grid_kernel(
    reference: ReferencePath, s_from: float, s_to: float, config: CandidateConfig
) -> ReferenceGrid:
    """:func:`build_reference_grid` through
    :func:`~kaido.planning.candidate_kernels.reference_grid_kernel`."""
    ds = config.path_resolution
    xy, normal, limit, cap, left, right = kernels.reference_grid_kernel(
        reference.path, reference.s, reference.speed_limits, reference.left_offsets,
        reference.right_offsets, float(s_from), ds, _grid_count(s_from, s_to, ds),
        _smoothing_window(config), config.curve_lateral_accel, config.comfort_decel,
    )  # fmt: skip
    return ReferenceGrid(
        s0=float(s_from), ds=ds, xy=xy, normal=normal, speed_limit=limit, speed_cap=cap,
        left_offsets=left, right_offsets=right,
    )  # fmt: skip


def build_reference_grid(
    reference: ReferencePath, s_from: float, s_to: float, config: CandidateConfig
) -> ReferenceGrid:
    """The reference grid from ``s_from`` to at least ``s_to`` [m] (see the module docstring).

    Positions are interpolated linearly in ``s``, yaws (unwrapped) likewise; normals come from
    the yaws. Beyond the path's ends the grid continues straight along the end yaws, with the
    end speed limits and neighbour offsets. The NumPy reference of
    :func:`~kaido.planning.candidate_kernels.reference_grid_kernel`.
    """
    ds = config.path_resolution
    count = _grid_count(s_from, s_to, ds)
    s = s_from + ds * np.arange(count, dtype=np.float64)
    ref_s = reference.s
    path = reference.path
    yaw_ref = np.unwrap(path[:, 2])
    x = np.interp(s, ref_s, path[:, 0])
    y = np.interp(s, ref_s, path[:, 1])
    yaw = np.interp(s, ref_s, yaw_ref)
    for mask, k in ((s < ref_s[0], 0), (s > ref_s[-1], -1)):
        if mask.any():
            along = s[mask] - ref_s[k]
            x[mask] = path[k, 0] + along * math.cos(yaw_ref[k])
            y[mask] = path[k, 1] + along * math.sin(yaw_ref[k])
    xy = np.stack([x, y], axis=1)
    normal = np.stack([-np.sin(yaw), np.cos(yaw)], axis=1)
    limit = np.interp(s, ref_s, reference.speed_limits)
    # curvature of the (smoothed) yaw → lateral-acceleration speed limit
    curvature = np.gradient(yaw, ds)
    window = _smoothing_window(config)
    if window > 1 and count > 1:
        padded = np.pad(curvature, window // 2, mode="edge")
        curvature = np.convolve(padded, np.full(window, 1.0 / window), mode="valid")
    with np.errstate(divide="ignore"):
        curve_limit = np.sqrt(config.curve_lateral_accel / np.abs(curvature))
    local = np.minimum(limit, curve_limit)
    # anticipate slower stretches: cap² (s) = min over s' >= s of local² (s') + 2 b (s' - s)
    brake = 2.0 * config.comfort_decel
    w = local * local + brake * (s - s[0])
    cap2 = np.minimum.accumulate(w[::-1])[::-1] - brake * (s - s[0])
    cap = np.sqrt(np.maximum(cap2, 0.0))
    return ReferenceGrid(
        s0=float(s[0]),
        ds=ds,
        xy=np.ascontiguousarray(xy),
        normal=np.ascontiguousarray(normal),
        speed_limit=limit,
        speed_cap=cap,
        left_offsets=np.interp(s, ref_s, reference.left_offsets),
        right_offsets=np.interp(s, ref_s, reference.right_offsets),
    )


# -- input checks --------------------------------------------------------------------------------


def _check_inputs(
    inp: PlannerInput, profile: VehicleProfile, planner: PlannerConfig, config: CandidateConfig
) -> None:
    arguments: tuple[tuple[object, type, str], ...] = (
        (inp, PlannerInput, "inp"),
        (profile, VehicleProfile, "profile"),
        (planner, PlannerConfig, "planner"),
        (config, CandidateConfig, "config"),
    )
    for argument, cls, name in arguments:
        if not isinstance(argument, cls):
            raise TypeError(
                f"generate_candidates.{name}: expected {cls.__name__}, "
                f"got {type(argument).__name__}"
            )
    ego = inp.ego
    fields = {
        "pose.x": ego.pose.x,
        "pose.y": ego.pose.y,
        "pose.yaw": ego.pose.yaw,
        "velocity[0]": ego.velocity[0],
        "steering_angle": ego.steering_angle,
    }
    for name, number in fields.items():
        if not math.isfinite(number):
            raise ValueError(f"PlannerInput.ego.{name} must be finite, got {number}")
    for name in ("ego_length", "ego_width", "rear_axle_to_center"):
        value = getattr(inp, name)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"PlannerInput.{name} must be finite and >= 0, got {value}")
    ref = inp.reference
    if not np.all(np.isfinite(ref.speed_limits)) or np.any(ref.speed_limits < 0):
        raise ValueError("ReferencePath.speed_limits: must be finite and >= 0")
    if np.any(np.isinf(ref.left_offsets)) or np.any(np.isinf(ref.right_offsets)):
        raise ValueError("ReferencePath.left_offsets/right_offsets: must be finite or NaN")
    for i, stop in enumerate(inp.stops):
        if not math.isfinite(stop.s):
            raise ValueError(f"PlannerInput.stops[{i}].s must be finite, got {stop.s}")
    agents = inp.agents
    if agents.num_agents:
        if agents.modes.shape[2] != planner.num_points:
            raise ValueError(
                f"PredictedAgents.modes: expected {planner.num_points} time points "
                f"(PlannerConfig.num_points), got {agents.modes.shape[2]}"
            )
        # a finite sum is the cheap proof; an overflowing one is checked value by value
        if not math.isfinite(float(np.sum(agents.modes))) and not np.all(np.isfinite(agents.modes)):
            raise ValueError("PredictedAgents.modes: must be finite")
        if not np.all(np.isfinite(agents.sizes)) or np.any(agents.sizes < 0):
            raise ValueError("PredictedAgents.sizes: must be finite and >= 0")


# -- generation ----------------------------------------------------------------------------------


def _lane_change_target(
    grid: ReferenceGrid, offsets: FloatArray, s0: float, s_end: float
) -> float | None:
    """The neighbour offset at ``s_end`` when ``offsets`` is finite on ``[s0, s_end]``."""
    s = grid.s
    inside = (s >= s0 - grid.ds) & (s <= s_end + grid.ds)
    if not inside.any() or not np.all(np.isfinite(offsets[inside])):
        return None
    value = grid.at(offsets, s_end)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class _Implementation:
    project_pose: Callable[..., PathProjection]
    reference_grid: Callable[..., ReferenceGrid]
    project_agents: Callable[..., FloatArray]
    speed_profiles: Callable[..., FloatArray]
    idm_profiles: Callable[..., FloatArray]
    rollout: Callable[..., FloatArray]


def generate_candidates(
    inp: PlannerInput,
    profile: VehicleProfile,
    planner: PlannerConfig = PlannerConfig(),  # noqa: B008 (frozen, immutable default)
    config: CandidateConfig = CandidateConfig(),
) -> tuple[FloatArray, CandidateInfo]:
    """Candidate trajectories ``(N, T, len(TrajIndex))`` and what each aims for.

    See the module docstring for the method; raises ``ValueError`` naming the field on
    non-finite ego state, speed limits, stops or predicted agents.
    """
    return _generate(inp, profile, planner, config, _KERNELS)


def generate_candidates_reference(
    inp: PlannerInput,
    profile: VehicleProfile,
    planner: PlannerConfig = PlannerConfig(),  # noqa: B008
    config: CandidateConfig = CandidateConfig(),
) -> tuple[FloatArray, CandidateInfo]:
    """:func:`generate_candidates` with the NumPy references in place of the Numba kernels."""
    return _generate(inp, profile, planner, config, _REFERENCES)


def _generate(
    inp: PlannerInput,
    profile: VehicleProfile,
    planner: PlannerConfig,
    config: CandidateConfig,
    impl: _Implementation,
) -> tuple[FloatArray, CandidateInfo]:
    _check_inputs(inp, profile, planner, config)
    ego = inp.ego
    ref = inp.reference
    dt = planner.dt
    num_points = planner.num_points
    x0, y0, yaw0 = float(ego.pose.x), float(ego.pose.y), float(ego.pose.yaw)
    v0 = max(float(ego.velocity[0]), 0.0)
    steer0 = min(max(float(ego.steering_angle), -profile.max_steer), profile.max_steer)
    front = inp.rear_axle_to_center + 0.5 * inp.ego_length

    proj = impl.project_pose(ref, x0, y0, yaw0)
    s0 = proj.s
    f_max = max((1.0, *config.speed_fractions, *config.idm_speed_fractions))
    v_top = max(v0, f_max * float(ref.speed_limits.max()))
    horizon = planner.horizon_steps * dt
    reach = v_top * horizon + config.min_lookahead + config.lookahead_gain * v_top + GRID_MARGIN
    grid = impl.reference_grid(ref, s0 - GRID_BACK, s0 + reach, config)
    cap0 = grid.at(grid.speed_cap, s0)

    # stops ahead of the front bumper, and the end of the path
    stops = sorted(float(st.s) for st in inp.stops if st.s > s0 + front)
    stop_s = np.array([*stops, float(ref.s[-1])])
    stop_targets = stop_s - config.stop_margin - front

    # longitudinal profiles: speed fractions, stops, IDM
    n_speed = len(config.speed_fractions)
    n_stop = len(stop_s)
    fractions = np.array([*config.speed_fractions, *([1.0] * n_stop)])
    targets = np.concatenate([np.full(n_speed, np.inf), stop_targets])
    speed_params = np.empty(len(SpeedProfileParam))
    speed_params[SpeedProfileParam.DT] = dt
    speed_params[SpeedProfileParam.ACCEL_MIN] = profile.envelope_accel_min
    speed_params[SpeedProfileParam.ACCEL_MAX] = profile.envelope_accel_max
    speed_params[SpeedProfileParam.TIME_CONSTANT] = config.speed_time_constant
    speed_params[SpeedProfileParam.STOP_DECEL] = config.comfort_decel
    speed_params[SpeedProfileParam.SETTLE_ACCEL] = config.settle_accel
    lon = impl.speed_profiles(
        grid.speed_cap, grid.s0, grid.ds, s0, v0, fractions, targets, speed_params, num_points
    )
    idm_fractions = np.array(config.idm_speed_fractions, dtype=np.float64)
    if len(idm_fractions) and len(config.idm_offsets):
        agents = inp.agents
        if agents.num_agents:
            best = np.argmax(agents.probabilities, axis=1)
            states = np.ascontiguousarray(agents.modes[np.arange(agents.num_agents), best])
            projected = impl.project_agents(
                grid.xy, grid.s0, grid.ds, states, np.ascontiguousarray(agents.sizes)
            )
            half_widths = 0.5 * agents.sizes[:, 1]
        else:
            projected = np.zeros((0, num_points, len(AgentPathIndex)))
            half_widths = np.zeros(0)
        idm_params = np.empty(len(IdmParam))
        idm_params[IdmParam.DT] = dt
        idm_params[IdmParam.ACCEL_MIN] = profile.envelope_accel_min
        idm_params[IdmParam.ACCEL_MAX] = profile.envelope_accel_max
        idm_params[IdmParam.IDM_ACCEL] = config.idm_accel
        idm_params[IdmParam.IDM_DECEL] = config.idm_decel
        idm_params[IdmParam.TIME_HEADWAY] = config.idm_time_headway
        idm_params[IdmParam.MIN_GAP] = config.idm_min_gap
        idm_params[IdmParam.LANE_HALF_WIDTH] = config.lane_half_width
        idm_params[IdmParam.FRONT_DISTANCE] = front
        idm_params[IdmParam.CENTER_DISTANCE] = inp.rear_axle_to_center
        idm = impl.idm_profiles(
            grid.speed_cap,
            grid.s0,
            grid.ds,
            s0,
            v0,
            idm_fractions,
            projected,
            half_widths,
            np.array(stops) - config.stop_margin,
            idm_params,
            num_points,
        )
        profiles = np.concatenate([lon, idm], axis=0)
    else:
        idm_fractions = np.zeros(0)
        profiles = lon
    n_lon = len(lon)
    k_lc = min(int(round(config.lane_change_time / dt)), num_points - 1)
    transition = np.maximum(profiles[:, k_lc, ProfileIndex.S] - s0, config.min_transition_length)

    # lateral targets: offsets by |offset|, then lane changes where the neighbours exist
    order = sorted(range(len(config.lateral_offsets)), key=lambda i: abs(config.lateral_offsets[i]))
    lat_targets = [config.lateral_offsets[i] for i in order]
    lat_kinds = [CandidateKind.LATTICE] * len(lat_targets)
    lc_end = s0 + max(config.min_transition_length, config.lane_change_time * v0)
    for offsets, change in (
        (grid.left_offsets, CandidateKind.LANE_CHANGE_LEFT),
        (grid.right_offsets, CandidateKind.LANE_CHANGE_RIGHT),
    ):
        target = _lane_change_target(grid, offsets, s0, lc_end)
        if target is not None:
            lat_targets.append(target)
            lat_kinds.append(change)

    # candidate table: IDM block, then lateral targets × (speed, stop) profiles
    idm_order = sorted(config.idm_offsets, key=abs)
    n_idm = len(idm_fractions)
    cand_offset = [np.repeat(np.array(idm_order), n_idm)]
    cand_profile = [np.tile(n_lon + np.arange(n_idm), len(idm_order))]
    cand_kind = [np.full(n_idm * len(idm_order), CandidateKind.IDM)]
    cand_offset.append(np.repeat(np.array(lat_targets), n_lon))
    cand_profile.append(np.tile(np.arange(n_lon), len(lat_targets)))
    is_stop = np.arange(n_lon) >= n_speed
    lattice_kind = np.where(is_stop, CandidateKind.STOP, CandidateKind.LATTICE)
    cand_kind.append(
        np.concatenate(
            [
                lattice_kind if lat_kind == CandidateKind.LATTICE else np.full(n_lon, lat_kind)
                for lat_kind in lat_kinds
            ]
        )
    )
    offset = np.concatenate(cand_offset).astype(np.float64)
    profile_index = np.concatenate(cand_profile).astype(np.int64)
    kind = np.concatenate(cand_kind).astype(np.int64)
    if config.max_candidates is not None:
        offset = offset[: config.max_candidates]
        profile_index = profile_index[: config.max_candidates]
        kind = kind[: config.max_candidates]

    # per-profile facts → per candidate
    first_stop = stop_targets[0] if stops else np.inf
    profile_limit = np.concatenate([targets, np.full(n_idm, first_stop)])
    profile_speed = np.concatenate([fractions * cap0, idm_fractions * cap0])
    profile_speed[n_speed:n_lon] = 0.0
    profile_stop_s = np.concatenate([np.full(n_speed, np.nan), stop_s, np.full(n_idm, np.nan)])

    lateral = np.empty((len(offset), len(LateralIndex)))
    lateral[:, LateralIndex.D_START] = proj.d
    lateral[:, LateralIndex.SLOPE_START] = np.clip(
        math.tan(proj.heading_error) if abs(proj.heading_error) < 0.5 * np.pi else 0.0,
        -config.max_initial_slope,
        config.max_initial_slope,
    )
    lateral[:, LateralIndex.D_TARGET] = offset
    lateral[:, LateralIndex.S_START] = s0
    lateral[:, LateralIndex.LENGTH] = transition[profile_index]

    start = np.empty(len(StartIndex))
    start[StartIndex.X] = x0
    start[StartIndex.Y] = y0
    start[StartIndex.YAW] = yaw0
    start[StartIndex.SPEED] = v0
    start[StartIndex.STEER] = steer0
    trajectories = impl.rollout(
        grid.xy,
        grid.normal,
        grid.s0,
        grid.ds,
        int((s0 - grid.s0) / grid.ds),
        start,
        lateral,
        profile_index,
        np.ascontiguousarray(profiles),
        profile_limit[profile_index],
        rollout_params(profile, planner, config),
    )
    info = CandidateInfo(
        lateral_offset=offset,
        target_speed=profile_speed[profile_index],
        kind=kind,
        stop_s=profile_stop_s[profile_index],
    )
    return trajectories, info


def rollout_params(
    profile: VehicleProfile, planner: PlannerConfig, config: CandidateConfig
) -> FloatArray:
    """The rollout kernel's ``params`` ``(len(RolloutParam),)`` for these settings."""
    params = np.empty(len(RolloutParam))
    params[RolloutParam.DT] = planner.dt
    params[RolloutParam.WHEELBASE] = profile.wheelbase
    params[RolloutParam.MAX_STEER] = profile.max_steer
    params[RolloutParam.MAX_STEER_RATE] = profile.max_steer_rate
    params[RolloutParam.ACCEL_MIN] = profile.envelope_accel_min
    params[RolloutParam.ACCEL_MAX] = profile.envelope_accel_max
    params[RolloutParam.LOOKAHEAD_GAIN] = config.lookahead_gain
    params[RolloutParam.MIN_LOOKAHEAD] = config.min_lookahead
    params[RolloutParam.SPEED_GAIN] = config.speed_gain
    params[RolloutParam.POSITION_GAIN] = config.position_gain
    params[RolloutParam.STOP_DECEL] = config.comfort_decel
    params[RolloutParam.STANDSTILL_SPEED] = config.standstill_speed
    return params


# -- NumPy references of the kernels -------------------------------------------------------------


def _advance_reference(v: FloatArray, a: FloatArray, dt: float) -> tuple[Any, Any, Any]:
    vn = v + a * dt
    stopped = vn <= 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ds_stop = np.where(a < 0.0, v * v / (-2.0 * a), 0.0)
    ds = np.where(stopped, ds_stop, v * dt + 0.5 * a * dt * dt)
    return np.where(stopped, -v / dt, a), ds, np.where(stopped, 0.0, vn)


def _segment_param_reference(grid_xy: FloatArray, seg: IntArray, px: Any, py: Any) -> Any:
    ex = grid_xy[seg + 1, 0] - grid_xy[seg, 0]
    ey = grid_xy[seg + 1, 1] - grid_xy[seg, 1]
    den = np.maximum(ex * ex + ey * ey, SEGMENT_EPS)
    return (px - grid_xy[seg, 0]) * (ex / den) + (py - grid_xy[seg, 1]) * (ey / den)


def _walk_reference(
    grid_xy: FloatArray, seg: IntArray, px: FloatArray, py: FloatArray
) -> tuple[IntArray, FloatArray]:
    last = grid_xy.shape[0] - 2
    seg = np.clip(seg, 0, last)
    u = _segment_param_reference(grid_xy, seg, px, py)
    moved = np.zeros(seg.shape, dtype=bool)
    step = (u > 1.0) & (seg < last)
    while step.any():
        seg = np.where(step, seg + 1, seg)
        u = np.where(step, _segment_param_reference(grid_xy, seg, px, py), u)
        moved |= step
        step = (u > 1.0) & (seg < last)
    step = ~moved & (u < 0.0) & (seg > 0)
    while step.any():
        seg = np.where(step, seg - 1, seg)
        u = np.where(step, _segment_param_reference(grid_xy, seg, px, py), u)
        step &= (u < 0.0) & (seg > 0)
    u = np.where(seg > 0, np.maximum(u, 0.0), u)
    u = np.where(seg < last, np.minimum(u, 1.0), u)
    return seg, u


def _index_reference(n_points: int, grid_s0: float, grid_ds: float, s: Any) -> tuple[Any, Any]:
    f = (s - grid_s0) / grid_ds
    i = np.clip(np.floor(f), 0, n_points - 2).astype(np.int64)
    return i, f - i


def _value_reference(values: FloatArray, grid_s0: float, grid_ds: float, s: Any) -> Any:
    i, u = _index_reference(values.shape[0], grid_s0, grid_ds, s)
    u = np.minimum(np.maximum(u, 0.0), 1.0)
    return values[i] + u * (values[i + 1] - values[i])


def _lateral_reference(lateral: FloatArray, s: FloatArray) -> FloatArray:
    length = lateral[:, LateralIndex.LENGTH]
    u = np.minimum(np.maximum((s - lateral[:, LateralIndex.S_START]) / length, 0.0), 1.0)
    u3 = u * u * u
    rise = u3 * (10.0 - 15.0 * u + 6.0 * u * u)
    h1 = u - u3 * (6.0 - 8.0 * u + 3.0 * u * u)
    out: FloatArray = (
        lateral[:, LateralIndex.D_START] * (1.0 - rise)
        + lateral[:, LateralIndex.SLOPE_START] * length * h1
        + lateral[:, LateralIndex.D_TARGET] * rise
    )
    return out


def project_agents_reference(
    grid_xy: FloatArray,
    grid_s0: float,
    grid_ds: float,
    states: FloatArray,
    sizes: FloatArray,
) -> FloatArray:
    """NumPy reference of :func:`~kaido.planning.candidate_kernels.project_agents_kernel`."""
    num_agents, num_points = states.shape[0], states.shape[1]
    out = np.empty((num_agents, num_points, len(AgentPathIndex)))
    if num_agents == 0:
        return out
    segs = np.arange(grid_xy.shape[0] - 1)
    px = states[:, 0, ModeIndex.X][:, None]
    py = states[:, 0, ModeIndex.Y][:, None]
    u = np.minimum(np.maximum(_segment_param_reference(grid_xy, segs, px, py), 0.0), 1.0)
    qx = grid_xy[segs, 0] + u * (grid_xy[segs + 1, 0] - grid_xy[segs, 0])
    qy = grid_xy[segs, 1] + u * (grid_xy[segs + 1, 1] - grid_xy[segs, 1])
    seg = np.argmin((px - qx) * (px - qx) + (py - qy) * (py - qy), axis=1).astype(np.int64)
    half_length = 0.5 * sizes[:, 0]
    half_width = 0.5 * sizes[:, 1]
    for k in range(num_points):
        px_k = states[:, k, ModeIndex.X]
        py_k = states[:, k, ModeIndex.Y]
        seg, uk = _walk_reference(grid_xy, seg, px_k, py_k)
        ex = grid_xy[seg + 1, 0] - grid_xy[seg, 0]
        ey = grid_xy[seg + 1, 1] - grid_xy[seg, 1]
        length = np.sqrt(np.maximum(ex * ex + ey * ey, SEGMENT_EPS))
        tx = ex / length
        ty = ey / length
        rx = px_k - grid_xy[seg, 0]
        ry = py_k - grid_xy[seg, 1]
        c = np.cos(states[:, k, ModeIndex.YAW])
        s = np.sin(states[:, k, ModeIndex.YAW])
        cos_rel = tx * c + ty * s
        sin_rel = tx * s - ty * c
        out[:, k, AgentPathIndex.S] = grid_s0 + (seg + uk) * grid_ds
        out[:, k, AgentPathIndex.D] = tx * ry - ty * rx
        out[:, k, AgentPathIndex.SPEED] = states[:, k, ModeIndex.SPEED] * cos_rel
        out[:, k, AgentPathIndex.HALF_EXTENT] = (
            np.abs(cos_rel) * half_length + np.abs(sin_rel) * half_width
        )
    return out


def speed_profiles_reference(
    speed_cap: FloatArray,
    grid_s0: float,
    grid_ds: float,
    s0: float,
    v0: float,
    fractions: FloatArray,
    s_targets: FloatArray,
    params: FloatArray,
    num_points: int,
) -> FloatArray:
    """NumPy reference of :func:`~kaido.planning.candidate_kernels.speed_profiles_kernel`."""
    dt = params[SpeedProfileParam.DT]
    accel_min = params[SpeedProfileParam.ACCEL_MIN]
    accel_max = params[SpeedProfileParam.ACCEL_MAX]
    tau = params[SpeedProfileParam.TIME_CONSTANT]
    stop_decel = params[SpeedProfileParam.STOP_DECEL]
    settle = params[SpeedProfileParam.SETTLE_ACCEL]
    m = fractions.shape[0]
    out = np.empty((m, num_points, len(ProfileIndex)))
    s = np.full(m, s0)
    v = np.full(m, v0)
    finite = np.isfinite(s_targets)
    for k in range(num_points):
        error = fractions * _value_reference(speed_cap, grid_s0, grid_ds, s) - v
        a = error / tau
        slow = np.minimum(settle, np.abs(error) / dt)
        a = np.where(np.abs(a) < settle, np.where(error < 0.0, -slow, slow), a)
        gap = s_targets - s
        with np.errstate(divide="ignore", invalid="ignore"):
            need = -v * v / (2.0 * gap)
        reached = finite & (gap <= GAP_EPS)
        braking = finite & ~reached & (need <= -stop_decel)
        a = np.where(reached, accel_min, np.where(braking, np.minimum(a, need), a))
        a = np.minimum(np.maximum(a, accel_min), accel_max)
        a, ds, vn = _advance_reference(v, a, dt)
        out[:, k, ProfileIndex.S] = s
        out[:, k, ProfileIndex.SPEED] = v
        out[:, k, ProfileIndex.ACCEL] = a
        s = s + ds
        v = vn
    return out


def idm_profiles_reference(
    speed_cap: FloatArray,
    grid_s0: float,
    grid_ds: float,
    s0: float,
    v0: float,
    fractions: FloatArray,
    agents: FloatArray,
    agent_half_widths: FloatArray,
    stop_fronts: FloatArray,
    params: FloatArray,
    num_points: int,
) -> FloatArray:
    """NumPy reference of :func:`~kaido.planning.candidate_kernels.idm_profiles_kernel`."""
    dt = params[IdmParam.DT]
    accel_min = params[IdmParam.ACCEL_MIN]
    accel_max = params[IdmParam.ACCEL_MAX]
    idm_accel = params[IdmParam.IDM_ACCEL]
    idm_decel = params[IdmParam.IDM_DECEL]
    headway = params[IdmParam.TIME_HEADWAY]
    min_gap = params[IdmParam.MIN_GAP]
    lane_half_width = params[IdmParam.LANE_HALF_WIDTH]
    front_distance = params[IdmParam.FRONT_DISTANCE]
    center_distance = params[IdmParam.CENTER_DISTANCE]
    brake_term = 2.0 * math.sqrt(idm_accel * idm_decel)
    m = fractions.shape[0]
    num_agents = agents.shape[0]
    out = np.empty((m, num_points, len(ProfileIndex)))
    s = np.full(m, s0)
    v = np.full(m, v0)
    for k in range(num_points):
        desired = np.maximum(
            fractions * _value_reference(speed_cap, grid_s0, grid_ds, s), MIN_DESIRED_SPEED
        )
        front = s + front_distance
        centre = s + center_distance
        gap = np.full(m, np.inf)
        lead_speed = np.zeros(m)
        if num_agents:
            sa = agents[:, k, AgentPathIndex.S]
            near = np.abs(agents[:, k, AgentPathIndex.D]) < lane_half_width + agent_half_widths
            leads = near[None, :] & (sa[None, :] > centre[:, None])
            g = np.where(
                leads,
                sa[None, :] - agents[:, k, AgentPathIndex.HALF_EXTENT] - front[:, None],
                np.inf,
            )
            j = np.argmin(g, axis=1)
            gap = g[np.arange(m), j]
            lead_speed = np.where(
                np.isfinite(gap), np.maximum(agents[j, k, AgentPathIndex.SPEED], 0.0), 0.0
            )
        if stop_fronts.shape[0]:
            g = stop_fronts[None, :] - front[:, None] + min_gap
            g_stop = g[np.arange(m), np.argmin(g, axis=1)]
            closer = g_stop < gap
            gap = np.where(closer, g_stop, gap)
            lead_speed = np.where(closer, 0.0, lead_speed)
        ratio = v / desired
        a = 1.0 - ratio * ratio * ratio * ratio
        wanted = min_gap + np.maximum(0.0, v * headway + v * (v - lead_speed) / brake_term)
        q = wanted / np.maximum(gap, MIN_IDM_GAP)
        a = np.where(np.isfinite(gap), a - q * q, a)
        a = np.minimum(np.maximum(idm_accel * a, accel_min), accel_max)
        a, ds, vn = _advance_reference(v, a, dt)
        out[:, k, ProfileIndex.S] = s
        out[:, k, ProfileIndex.SPEED] = v
        out[:, k, ProfileIndex.ACCEL] = a
        s = s + ds
        v = vn
    return out


def rollout_reference(
    grid_xy: FloatArray,
    grid_normal: FloatArray,
    grid_s0: float,
    grid_ds: float,
    start_segment: int,
    start: FloatArray,
    lateral: FloatArray,
    profile_index: IntArray,
    profiles: FloatArray,
    s_limits: FloatArray,
    params: FloatArray,
) -> FloatArray:
    """NumPy reference of :func:`~kaido.planning.candidate_kernels.rollout_kernel`."""
    dt = params[RolloutParam.DT]
    wheelbase = params[RolloutParam.WHEELBASE]
    max_steer = params[RolloutParam.MAX_STEER]
    max_step = params[RolloutParam.MAX_STEER_RATE] * dt
    accel_min = params[RolloutParam.ACCEL_MIN]
    accel_max = params[RolloutParam.ACCEL_MAX]
    gain = params[RolloutParam.LOOKAHEAD_GAIN]
    min_lookahead = params[RolloutParam.MIN_LOOKAHEAD]
    speed_gain = params[RolloutParam.SPEED_GAIN]
    position_gain = params[RolloutParam.POSITION_GAIN]
    stop_decel = params[RolloutParam.STOP_DECEL]
    standstill = params[RolloutParam.STANDSTILL_SPEED]
    n = lateral.shape[0]
    num_points = profiles.shape[1]
    n_grid = grid_xy.shape[0]
    out = np.empty((n, num_points, len(TrajIndex)))
    prof = profiles[profile_index]
    finite = np.isfinite(s_limits)
    x = np.full(n, start[StartIndex.X])
    y = np.full(n, start[StartIndex.Y])
    yaw = np.full(n, (start[StartIndex.YAW] + math.pi) % (2.0 * math.pi) - math.pi)
    v = np.full(n, start[StartIndex.SPEED])
    steer = np.full(n, start[StartIndex.STEER])
    c = np.cos(yaw)
    sn = np.sin(yaw)
    seg = np.full(n, start_segment, dtype=np.int64)
    for k in range(num_points):
        seg, u = _walk_reference(grid_xy, seg, x, y)
        s = grid_s0 + (seg + u) * grid_ds
        s_ahead = s + np.maximum(min_lookahead, gain * v)
        i, w = _index_reference(n_grid, grid_s0, grid_ds, s_ahead)
        cx = grid_xy[i, 0] + w * (grid_xy[i + 1, 0] - grid_xy[i, 0])
        cy = grid_xy[i, 1] + w * (grid_xy[i + 1, 1] - grid_xy[i, 1])
        nx = grid_normal[i, 0] + w * (grid_normal[i + 1, 0] - grid_normal[i, 0])
        ny = grid_normal[i, 1] + w * (grid_normal[i + 1, 1] - grid_normal[i, 1])
        inv_norm = 1.0 / np.sqrt(nx * nx + ny * ny)
        nx = nx * inv_norm
        ny = ny * inv_norm
        d = _lateral_reference(lateral, s_ahead)
        dx = cx + d * nx - x
        dy = cy + d * ny - y
        local_x = c * dx + sn * dy
        local_y = -sn * dx + c * dy
        pursuit = 2.0 * local_y / np.maximum(local_x * local_x + local_y * local_y, 1e-6)
        command = np.arctan(wheelbase * pursuit)
        free = (np.abs(command - steer) <= max_step) & (np.abs(command) <= max_steer)
        limited = steer + np.minimum(np.maximum(command - steer, -max_step), max_step)
        limited = np.minimum(np.maximum(limited, -max_steer), max_steer)
        steer = np.where(free, command, limited)
        curvature = np.where(free, pursuit, np.tan(limited) / wheelbase)
        a_ref = prof[:, k, ProfileIndex.ACCEL]
        v_ref = prof[:, k, ProfileIndex.SPEED]
        a = a_ref + speed_gain * (v_ref - v) + position_gain * (prof[:, k, ProfileIndex.S] - s)
        rest = (v_ref == 0.0) & (a_ref <= 0.0) & (v <= standstill)
        gap = s_limits - s
        with np.errstate(divide="ignore", invalid="ignore"):
            need = -v * v / (2.0 * gap)
        passed = ~rest & finite & (gap <= 0.0)
        braking = ~rest & finite & ~passed & (need <= -stop_decel)
        a = np.where(rest | passed, accel_min, np.where(braking, np.minimum(a, need), a))
        a = np.minimum(np.maximum(a, accel_min), accel_max)
        a, ds, vn = _advance_reference(v, a, dt)
        out[:, k, TrajIndex.X] = x
        out[:, k, TrajIndex.Y] = y
        out[:, k, TrajIndex.YAW] = yaw
        out[:, k, TrajIndex.SPEED] = v
        out[:, k, TrajIndex.ACCEL] = a
        out[:, k, TrajIndex.CURVATURE] = curvature
        half = 0.5 * curvature * ds
        ch = np.cos(half)
        sh = np.sin(half)
        turning = np.abs(half) > 1e-12
        chord = np.where(turning, ds * sh / np.where(turning, half, 1.0), ds)
        mid_c = c * ch - sn * sh
        mid_s = sn * ch + c * sh
        x = x + chord * mid_c
        y = y + chord * mid_s
        yaw = yaw + 2.0 * half
        yaw = np.where(yaw >= math.pi, yaw - 2.0 * math.pi, yaw)
        yaw = np.where(yaw < -math.pi, yaw + 2.0 * math.pi, yaw)
        c = mid_c * ch - mid_s * sh
        sn = mid_s * ch + mid_c * sh
        v = vn
    return out


_KERNELS = _Implementation(
    project_pose=_project_on_path_kernel,
    reference_grid=_build_reference_grid_kernel,
    project_agents=kernels.project_agents_kernel,
    speed_profiles=kernels.speed_profiles_kernel,
    idm_profiles=kernels.idm_profiles_kernel,
    rollout=kernels.rollout_kernel,
)
_REFERENCES = _Implementation(
    project_pose=project_on_path,
    reference_grid=build_reference_grid,
    project_agents=project_agents_reference,
    speed_profiles=speed_profiles_reference,
    idm_profiles=idm_profiles_reference,
    rollout=rollout_reference,
)
