"""Physics prediction baselines: constant velocity, constant turn rate (CTRV), lane following.

They forecast box-centre states ``(A, K, T, len(ModeIndex))`` with mode probabilities
``(A, K)`` (:class:`~kaido.scene.forecast.PredictedAgents`) on the consumer's time grid
``times`` ``(T,)`` [s from now, ``times[0] == 0``]. They feed the planner until a learned
predictor exists and stay as baselines and fallbacks after that.

Axis vocabulary: ``A`` agents, ``K`` modes, ``T`` time points, ``C`` lane candidates, ``M`` modes
of all agents together, ``S`` centreline segments.

Every predictor shares one interface: :meth:`Predictor.observe` is called once per tick with the
agents seen at that time (predictors that keep a history use it; the others ignore it), then
:meth:`Predictor.predict` returns the forecast. The base class checks the inputs and packs the
result; subclasses fill in :meth:`Predictor._predict_modes`. Mode 0 is always the most likely
mode of each agent, and every predictor returns a rectangular ``K`` (agents with fewer modes are
padded with copies of their mode 0 at probability 0).

Predictors are registered by name (:func:`register_predictor`, which refuses duplicate names) and
built with :func:`make_predictor`.
"""

from __future__ import annotations

import abc
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt

from kaido.scene.agents import AgentClass, AgentIndex, AgentState
from kaido.scene.forecast import ModeIndex, PredictedAgents
from kaido.scene.geometry import wrap_angle
from kaido.scene.road_map import Lane, RoadMap

__all__ = [
    "PREDICTORS",
    "ConstantTurnRate",
    "ConstantTurnRateConfig",
    "ConstantVelocity",
    "LaneCandidates",
    "LaneFollowing",
    "LaneFollowingConfig",
    "LanePath",
    "LaneSnapIndex",
    "Predictor",
    "check_times",
    "constant_turn_rate_modes",
    "constant_velocity_modes",
    "fit_yaw_rate",
    "follow_polylines",
    "lane_paths",
    "make_predictor",
    "predictor_names",
    "register_predictor",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: [s] tolerance on ``times[0] == 0``.
_TIME_ORIGIN_TOL = 1e-9


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------


def check_times(times: npt.ArrayLike, owner: str) -> FloatArray:
    """``times`` as a float64 ``(T,)`` array: finite, ``times[0] == 0``, strictly increasing."""
    try:
        t = np.array(times, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{owner}: times must be an array of numbers, got {times!r}") from exc
    if t.ndim != 1:
        raise ValueError(f"{owner}: times must be a 1-D array (T,), got shape {t.shape}")
    if t.size == 0:
        raise ValueError(f"{owner}: times must hold at least one time point, got none")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{owner}: times must be finite, got {t}")
    if abs(t[0]) > _TIME_ORIGIN_TOL:
        raise ValueError(f"{owner}: times[0] must be 0 s (now), got {t[0]}")
    if t.size > 1 and np.any(np.diff(t) <= 0):
        i = int(np.argmax(np.diff(t) <= 0))
        raise ValueError(
            f"{owner}: times must be strictly increasing, but times[{i}]={t[i]} >= "
            f"times[{i + 1}]={t[i + 1]}"
        )
    t[0] = 0.0
    return t


def _check_agents(agents: Sequence[AgentState], owner: str) -> list[AgentState]:
    if isinstance(agents, AgentState) or not isinstance(agents, Sequence):
        raise TypeError(
            f"{owner}: agents must be a sequence of AgentState, got {type(agents).__name__}"
        )
    seen: dict[int, int] = {}
    out = list(agents)
    for i, agent in enumerate(out):
        if not isinstance(agent, AgentState):
            raise TypeError(f"{owner}: agents[{i}] is a {type(agent).__name__}, not an AgentState")
        if agent.track_id in seen:
            raise ValueError(
                f"{owner}: agents[{i}] repeats track_id {agent.track_id} "
                f"(also agents[{seen[agent.track_id]}])"
            )
        seen[agent.track_id] = i
    return out


def _pack_states(agents: Sequence[AgentState]) -> FloatArray:
    """``(A, len(AgentIndex))`` packed states of ``agents``."""
    if not agents:
        return np.zeros((0, len(AgentIndex)), dtype=np.float64)
    return np.stack([a.as_array() for a in agents])


def _check_positive(owner: str, name: str, value: float, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{owner}.{name} must be a number, got {value!r}")
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{owner}.{name} must be finite and {bound}, got {value}")


# ----------------------------------------------------------------------------------------------
# Motion models as array functions
# ----------------------------------------------------------------------------------------------


def constant_velocity_modes(states: FloatArray, times: FloatArray) -> FloatArray:
    """One constant-velocity mode per agent: ``(A, 1, T, len(ModeIndex))``.

    ``states`` ``(A, len(AgentIndex))`` packed agent states, ``times`` ``(T,)`` [s]. The box
    centre moves at its world velocity (``VX``, ``VY``), its yaw stays the box yaw and the speed
    is the velocity's magnitude.
    """
    x, y = states[:, None, AgentIndex.X], states[:, None, AgentIndex.Y]
    yaw = states[:, None, AgentIndex.YAW]
    vx, vy = states[:, None, AgentIndex.VX], states[:, None, AgentIndex.VY]
    out = np.empty((states.shape[0], 1, times.shape[0], len(ModeIndex)), dtype=np.float64)
    out[:, 0, :, ModeIndex.X] = x + vx * times
    out[:, 0, :, ModeIndex.Y] = y + vy * times
    out[:, 0, :, ModeIndex.YAW] = wrap_angle(yaw)
    out[:, 0, :, ModeIndex.SPEED] = np.hypot(vx, vy)
    return out


def constant_turn_rate_modes(
    states: FloatArray, yaw_rates: FloatArray, times: FloatArray
) -> FloatArray:
    """One constant-turn-rate-and-velocity mode per agent: ``(A, 1, T, len(ModeIndex))``.

    ``states`` ``(A, len(AgentIndex))``, ``yaw_rates`` ``(A,)`` [rad/s], ``times`` ``(T,)`` [s].
    The velocity vector turns at the yaw rate ``w`` at constant speed ``v``, so the centre runs on
    a circle of radius ``v / w``; the box yaw turns with it. In closed form, with ``theta`` the
    direction of the velocity (the box yaw when the agent stands still)::

        x(t) = x0 + v t sinc(w t / 2) cos(theta + w t / 2)
        y(t) = y0 + v t sinc(w t / 2) sin(theta + w t / 2)

    (``sinc(u) = sin(u) / u``), which equals the circle for ``w != 0`` and constant velocity for
    ``w == 0`` without a branch.
    """
    vx, vy = states[:, AgentIndex.VX], states[:, AgentIndex.VY]
    speed = np.hypot(vx, vy)
    theta = np.where(speed > 0.0, np.arctan2(vy, vx), states[:, AgentIndex.YAW])
    half = 0.5 * yaw_rates[:, None] * times[None, :]
    chord = speed[:, None] * times[None, :] * np.sinc(half / math.pi)
    out = np.empty((states.shape[0], 1, times.shape[0], len(ModeIndex)), dtype=np.float64)
    direction = theta[:, None] + half
    out[:, 0, :, ModeIndex.X] = states[:, None, AgentIndex.X] + chord * np.cos(direction)
    out[:, 0, :, ModeIndex.Y] = states[:, None, AgentIndex.Y] + chord * np.sin(direction)
    out[:, 0, :, ModeIndex.YAW] = wrap_angle(states[:, None, AgentIndex.YAW] + 2.0 * half)
    out[:, 0, :, ModeIndex.SPEED] = speed[:, None]
    return out


# ----------------------------------------------------------------------------------------------
# Interface and registry
# ----------------------------------------------------------------------------------------------


class Predictor(abc.ABC):
    """Forecasts agents' box-centre states with mode probabilities.

    :meth:`predict` checks its inputs (agents are :class:`AgentState` with distinct track ids;
    ``times`` ``(T,)`` finite, strictly increasing, ``times[0] == 0``), calls
    :meth:`_predict_modes` and packs the result as :class:`PredictedAgents`.
    """

    name: ClassVar[str] = ""
    """Registry name, set by :func:`register_predictor`."""

    def observe(self, agents: Sequence[AgentState], timestamp_ns: int) -> None:  # noqa: B027
        """Record the agents seen at ``timestamp_ns`` [ns] (a no-op for history-free models)."""

    def reset(self) -> None:  # noqa: B027
        """Forget any history (a new episode)."""

    def predict(self, agents: Sequence[AgentState], times: npt.ArrayLike) -> PredictedAgents:
        """Forecast ``agents`` at ``times`` ``(T,)`` [s from now]; see the class docstring."""
        owner = f"{type(self).__name__}.predict"
        checked = _check_agents(agents, owner)
        t = check_times(times, owner)
        if not checked:
            return PredictedAgents.empty(t.shape[0])
        states = _pack_states(checked)
        modes, probabilities = self._predict_modes(checked, states, t)
        n, t_len = len(checked), t.shape[0]
        if modes.ndim != 4 or (modes.shape[0], modes.shape[2:]) != (n, (t_len, len(ModeIndex))):
            raise ValueError(
                f"{owner}: {type(self).__name__} returned modes of shape {modes.shape}, expected "
                f"({n}, K, {t_len}, {len(ModeIndex)}) for {n} agents and {t_len} time points"
            )
        return PredictedAgents(
            ids=np.array([a.track_id for a in checked], dtype=np.int64),
            classes=np.array([int(a.agent_class) for a in checked], dtype=np.int64),
            sizes=states[:, [AgentIndex.LENGTH, AgentIndex.WIDTH]],
            modes=modes,
            probabilities=probabilities,
        )

    @abc.abstractmethod
    def _predict_modes(
        self, agents: Sequence[AgentState], states: FloatArray, times: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Modes ``(A, K, T, len(ModeIndex))`` and probabilities ``(A, K)`` (rows sum to 1).

        ``agents`` (``A >= 1``, checked), ``states`` their packed states ``(A,
        len(AgentIndex))``, ``times`` ``(T,)`` [s] checked.
        """


_PredictorT = TypeVar("_PredictorT", bound=type[Predictor])

PREDICTORS: dict[str, type[Predictor]] = {}
"""Registered predictors by name (add with :func:`register_predictor`, never assign directly)."""


def register_predictor(name: str) -> Callable[[_PredictorT], _PredictorT]:
    """Class decorator registering a :class:`Predictor` subclass under ``name``.

    Sets the class's ``name``. Raises ``ValueError`` if the name is empty or already taken and
    ``TypeError`` if the class is not a ``Predictor``.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"register_predictor: name must be a non-empty string, got {name!r}")

    def decorate(cls: _PredictorT) -> _PredictorT:
        if not (isinstance(cls, type) and issubclass(cls, Predictor)):
            raise TypeError(f"register_predictor({name!r}): {cls!r} is not a Predictor subclass")
        if name in PREDICTORS:
            taken = PREDICTORS[name]
            raise ValueError(
                f"register_predictor: a predictor named {name!r} is already registered "
                f"({taken.__module__}.{taken.__qualname__})"
            )
        cls.name = name
        PREDICTORS[name] = cls
        return cls

    return decorate


def predictor_names() -> tuple[str, ...]:
    """Names of the registered predictors, sorted."""
    return tuple(sorted(PREDICTORS))


def make_predictor(name: str, **kwargs: Any) -> Predictor:
    """A new predictor of the class registered as ``name``, built with ``kwargs``.

    Raises ``ValueError`` listing the known names when ``name`` is unknown.
    """
    if name not in PREDICTORS:
        raise ValueError(
            f"unknown predictor {name!r}; known predictors: {', '.join(predictor_names())}"
        )
    return PREDICTORS[name](**kwargs)


# ----------------------------------------------------------------------------------------------
# Constant velocity
# ----------------------------------------------------------------------------------------------


@register_predictor("constant_velocity")
class ConstantVelocity(Predictor):
    """Each agent keeps its current world velocity and box yaw (``K = 1``)."""

    def _predict_modes(
        self, agents: Sequence[AgentState], states: FloatArray, times: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        return constant_velocity_modes(states, times), np.ones((states.shape[0], 1))


# ----------------------------------------------------------------------------------------------
# Constant turn rate and velocity
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConstantTurnRateConfig:
    """How :class:`ConstantTurnRate` estimates yaw rates from the observed history."""

    history_window: float = 0.5
    """[s] span of the most recent observations a yaw rate is fitted to."""
    min_history_span: float = 0.05
    """[s] shortest span of observations that gives a yaw rate (shorter: 0)."""
    max_yaw_rate: float = 1.5
    """[rad/s] estimates are clipped to ``[-max_yaw_rate, max_yaw_rate]``."""
    min_speed: float = 0.5
    """[m/s] agents slower than this get yaw rate 0 (a standing box's yaw is noise)."""
    max_track_age: float = 2.0
    """[s] a track not observed for this long is forgotten."""

    def __post_init__(self) -> None:
        owner = "ConstantTurnRateConfig"
        _check_positive(owner, "history_window", self.history_window)
        _check_positive(owner, "min_history_span", self.min_history_span)
        _check_positive(owner, "max_yaw_rate", self.max_yaw_rate)
        _check_positive(owner, "min_speed", self.min_speed, allow_zero=True)
        _check_positive(owner, "max_track_age", self.max_track_age)
        if self.min_history_span > self.history_window:
            raise ValueError(
                f"{owner}.min_history_span ({self.min_history_span} s) must not exceed "
                f"history_window ({self.history_window} s)"
            )
        if self.max_track_age < self.history_window:
            raise ValueError(
                f"{owner}.max_track_age ({self.max_track_age} s) must be >= history_window "
                f"({self.history_window} s)"
            )


def fit_yaw_rate(timestamps_ns: IntArray, yaws: FloatArray) -> float:
    """Least-squares slope [rad/s] of the unwrapped ``yaws`` [rad] over ``timestamps_ns`` [ns].

    Needs at least two distinct timestamps; returns 0 otherwise.
    """
    if timestamps_ns.shape[0] < 2:
        return 0.0
    t = (timestamps_ns - timestamps_ns[-1]).astype(np.float64) * 1e-9
    span = float(t.max() - t.min())
    if span <= 0.0:
        return 0.0
    y = np.unwrap(yaws)
    tc = t - t.mean()
    return float((tc * (y - y.mean())).sum() / (tc * tc).sum())


@register_predictor("constant_turn_rate")
class ConstantTurnRate(Predictor):
    """CTRV: each agent keeps its speed and turns at a constant yaw rate (``K = 1``).

    The yaw rate of a track is the least-squares slope of its box yaw over the observations of
    the last ``history_window`` seconds (those given to :meth:`observe`, plus the predicted
    state itself when it is newer), clipped to ``max_yaw_rate``; it is 0 for a track with less
    than ``min_history_span`` of history or slower than ``min_speed``. Call :meth:`observe` every
    tick; timestamps must not go backwards (call :meth:`reset` for a new episode).
    """

    def __init__(self, config: ConstantTurnRateConfig | None = None) -> None:
        if config is not None and not isinstance(config, ConstantTurnRateConfig):
            raise TypeError(
                f"ConstantTurnRate: config must be a ConstantTurnRateConfig, "
                f"got {type(config).__name__}"
            )
        self.config = config or ConstantTurnRateConfig()
        self._history: dict[int, deque[tuple[int, float]]] = {}
        self._last_ns: int | None = None

    def reset(self) -> None:
        self._history.clear()
        self._last_ns = None

    def observe(self, agents: Sequence[AgentState], timestamp_ns: int) -> None:
        owner = "ConstantTurnRate.observe"
        if isinstance(timestamp_ns, bool) or not isinstance(timestamp_ns, int | np.integer):
            raise TypeError(f"{owner}: timestamp_ns must be an int [ns], got {timestamp_ns!r}")
        now = int(timestamp_ns)
        if self._last_ns is not None and now < self._last_ns:
            raise ValueError(
                f"{owner}: timestamp_ns={now} is before the last observation ({self._last_ns}); "
                "call reset() to start a new episode"
            )
        checked = _check_agents(agents, owner)
        self._last_ns = now
        keep_ns = int(round(self.config.history_window * 1e9))
        for agent in checked:
            samples = self._history.setdefault(agent.track_id, deque())
            if samples and samples[-1][0] == now:
                samples.pop()
            samples.append((now, agent.box.yaw))
            while samples and samples[0][0] < now - keep_ns:
                samples.popleft()
        stale_ns = int(round(self.config.max_track_age * 1e9))
        for track_id in [k for k, v in self._history.items() if v[-1][0] < now - stale_ns]:
            del self._history[track_id]

    def yaw_rate(self, agent: AgentState) -> float:
        """The yaw rate [rad/s] used for ``agent`` (see the class docstring)."""
        cfg = self.config
        if agent.speed < cfg.min_speed:
            return 0.0
        samples = [s for s in self._history.get(agent.track_id, ()) if s[0] <= agent.timestamp_ns]
        if not samples or samples[-1][0] < agent.timestamp_ns:
            samples.append((agent.timestamp_ns, agent.box.yaw))
        window_ns = int(round(cfg.history_window * 1e9))
        samples = [s for s in samples if s[0] >= agent.timestamp_ns - window_ns]
        ts = np.array([s[0] for s in samples], dtype=np.int64)
        if (ts[-1] - ts[0]) * 1e-9 < cfg.min_history_span - 1e-12:
            return 0.0
        rate = fit_yaw_rate(ts, np.array([s[1] for s in samples], dtype=np.float64))
        return float(np.clip(rate, -cfg.max_yaw_rate, cfg.max_yaw_rate))

    def _predict_modes(
        self, agents: Sequence[AgentState], states: FloatArray, times: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        rates = np.array([self.yaw_rate(a) for a in agents], dtype=np.float64)
        return constant_turn_rate_modes(states, rates, times), np.ones((states.shape[0], 1))


# ----------------------------------------------------------------------------------------------
# Lane following
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LaneFollowingConfig:
    """How :class:`LaneFollowing` snaps agents to lanes, branches and weighs its modes."""

    max_snap_distance: float = 2.5
    """[m] an agent is snapped to driving lanes whose centreline is at most this far."""
    max_heading_error: float = math.radians(45.0)
    """[rad] ... and whose direction is within this of the agent's box yaw."""
    max_modes: int = 6
    """Most lane-graph paths (modes) per agent."""
    min_speed: float = 0.5
    """[m/s] slower agents (standing, parked) are predicted at constant velocity."""
    lane_classes: tuple[AgentClass, ...] = (AgentClass.VEHICLE, AgentClass.CYCLIST)
    """Classes that follow lanes; the others (pedestrians, static, unknown) use constant
    velocity."""
    heading_sigma: float = math.radians(15.0)
    """[rad] scale of the heading-alignment weight of a candidate lane."""
    distance_sigma: float = 1.0
    """[m] scale of the distance weight of a candidate lane."""
    lateral_decay_time: float = 1.0
    """[s] time constant with which the agent's offset from the centreline decays."""
    merge_distance: float = 0.5
    """[m] lanes a path covers for less than this from the agent on are left out of its identity
    (two candidates at a lane's end and at its successor's start give the same modes)."""
    bucket_length: float = 20.0
    """[m] lane-graph paths are cached per (lane, needed length rounded up to this)."""
    cache_size: int = 4096
    """Entries of the path cache (it is emptied when full)."""
    index_cell_size: float = 10.0
    """[m] cell of the uniform grid behind the batched lane snapping."""

    def __post_init__(self) -> None:
        owner = "LaneFollowingConfig"
        _check_positive(owner, "max_snap_distance", self.max_snap_distance)
        if not (math.isfinite(self.max_heading_error) and 0 < self.max_heading_error <= math.pi):
            raise ValueError(
                f"{owner}.max_heading_error must be in (0, pi] rad, got {self.max_heading_error}"
            )
        if isinstance(self.max_modes, bool) or not isinstance(self.max_modes, int):
            raise TypeError(f"{owner}.max_modes must be an int, got {self.max_modes!r}")
        if not 1 <= self.max_modes <= 64:
            raise ValueError(f"{owner}.max_modes must be in [1, 64], got {self.max_modes}")
        _check_positive(owner, "min_speed", self.min_speed, allow_zero=True)
        classes = []
        for c in self.lane_classes:
            try:
                classes.append(AgentClass(c))
            except ValueError as exc:
                raise ValueError(f"{owner}.lane_classes: {c!r} is not an AgentClass") from exc
        object.__setattr__(self, "lane_classes", tuple(classes))
        _check_positive(owner, "heading_sigma", self.heading_sigma)
        _check_positive(owner, "distance_sigma", self.distance_sigma)
        _check_positive(owner, "lateral_decay_time", self.lateral_decay_time)
        _check_positive(owner, "merge_distance", self.merge_distance, allow_zero=True)
        _check_positive(owner, "bucket_length", self.bucket_length)
        if isinstance(self.cache_size, bool) or not isinstance(self.cache_size, int):
            raise TypeError(f"{owner}.cache_size must be an int, got {self.cache_size!r}")
        if self.cache_size < 1:
            raise ValueError(f"{owner}.cache_size must be >= 1, got {self.cache_size}")
        _check_positive(owner, "index_cell_size", self.index_cell_size)


@dataclass(frozen=True)
class LaneCandidates:
    """Points snapped to lanes: ``C`` (point, lane) pairs, grouped by point, nearest first.

    ``agent`` ``(C,)`` row of the query point, ``lane`` ``(C,)`` lane index, ``s`` ``(C,)`` [m]
    arc length of the projection, ``lateral`` ``(C,)`` [m] offset of the point, positive to the
    left of the lane, ``distance`` ``(C,)`` [m], ``heading_error`` ``(C,)`` [rad] point heading
    minus lane heading, wrapped, ``beyond`` ``(C,)`` [m] how far the point lies before the lane's
    start or past its end, along the lane (0 when it lies alongside the lane).
    """

    agent: IntArray
    lane: IntArray
    s: FloatArray
    lateral: FloatArray
    distance: FloatArray
    heading_error: FloatArray
    beyond: FloatArray


class LaneSnapIndex:
    """Batched projection of points onto driving-lane centrelines.

    Answers :meth:`RoadMap.project` (``max_distance``, ``heading``, ``max_heading_error``) for
    many points at once in vectorised NumPy: every centreline segment is registered in the cells
    of a uniform grid that come within ``max_distance`` of it, so a point's candidates are those
    of its own cell.
    """

    def __init__(
        self, road_map: RoadMap, max_distance: float, max_heading_error: float, cell_size: float
    ) -> None:
        self.max_distance = float(max_distance)
        self.max_heading_error = float(max_heading_error)
        self.cell_size = float(cell_size)
        lanes = road_map.driving_lanes
        if not lanes:
            raise ValueError(f"LaneSnapIndex: map {road_map.name!r} has no driving lanes")
        self._a = np.concatenate([ln.centerline[:-1, :2] for ln in lanes])
        self._b = np.concatenate([ln.centerline[1:, :2] for ln in lanes])
        self._lane = np.concatenate(
            [np.full(len(ln.s) - 1, ln.index, dtype=np.int64) for ln in lanes]
        )
        self._s0 = np.concatenate([ln.s[:-1] for ln in lanes])
        segments = np.array([len(ln.s) - 1 for ln in lanes], dtype=np.int64)
        position = np.concatenate([np.arange(n) for n in segments])
        self._first = position == 0
        self._last = position == np.repeat(segments - 1, segments)
        ab = self._b - self._a
        self._ab = ab
        self._denom = np.maximum((ab * ab).sum(axis=1), 1e-12)
        self._seg_len = np.sqrt(self._denom)
        self._heading = np.arctan2(ab[:, 1], ab[:, 0])
        r, c = self.max_distance, self.cell_size
        lo = np.minimum(self._a, self._b) - r
        hi = np.maximum(self._a, self._b) + r
        self._origin = lo.min(axis=0)
        cmin = np.floor((lo - self._origin) / c).astype(np.int64)
        cmax = np.floor((hi - self._origin) / c).astype(np.int64)
        self._shape = np.array([cmax[:, 0].max() + 1, cmax[:, 1].max() + 1], dtype=np.int64)
        ny = int(self._shape[1])
        nx_seg = cmax[:, 0] - cmin[:, 0] + 1
        ny_seg = cmax[:, 1] - cmin[:, 1] + 1
        counts = nx_seg * ny_seg
        seg = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        local = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(
            np.cumsum(counts) - counts, counts
        )
        keys = (cmin[seg, 0] + local // ny_seg[seg]) * ny + cmin[seg, 1] + local % ny_seg[seg]
        order = np.lexsort((seg, keys))
        keys, seg = keys[order], seg[order]
        self._cell_keys, first = np.unique(keys, return_index=True)
        self._cell_start = np.append(first, len(keys)).astype(np.int64)
        self._cell_items = seg

    def query(self, points: FloatArray, headings: FloatArray) -> LaneCandidates:
        """Lanes near each point ``(N, 2)`` going its heading ``(N,)`` [rad], one per lane.

        For each (point, lane) the nearest segment of the lane within ``max_distance`` whose
        direction is within ``max_heading_error`` of the heading gives the projection; each
        point's candidates come nearest first (ties by lane index).
        """
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        hdg = np.asarray(headings, dtype=np.float64).reshape(-1)
        if hdg.shape[0] != pts.shape[0]:
            raise ValueError(
                f"LaneSnapIndex.query: {pts.shape[0]} points but {hdg.shape[0]} headings"
            )
        if not (np.all(np.isfinite(pts)) and np.all(np.isfinite(hdg))):
            raise ValueError("LaneSnapIndex.query: points and headings must be finite")
        cell = np.floor((pts - self._origin) / self.cell_size).astype(np.int64)
        inside = np.all((cell >= 0) & (cell < self._shape), axis=1)
        keys = cell[:, 0] * self._shape[1] + cell[:, 1]
        pos = np.minimum(np.searchsorted(self._cell_keys, keys), len(self._cell_keys) - 1)
        found = inside & (self._cell_keys[pos] == keys)
        counts = np.where(found, self._cell_start[pos + 1] - self._cell_start[pos], 0)
        total = int(counts.sum())
        if total == 0:
            return _empty_candidates()
        agent = np.repeat(np.arange(len(pts), dtype=np.int64), counts)
        offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        seg = self._cell_items[self._cell_start[pos][agent] + offsets]
        a, ab, p = self._a[seg], self._ab[seg], pts[agent]
        t_free = ((p - a) * ab).sum(axis=1) / self._denom[seg]
        t = np.clip(t_free, 0.0, 1.0)
        dist = np.linalg.norm(p - (a + t[:, None] * ab), axis=1)
        herr = wrap_angle(hdg[agent] - self._heading[seg])
        keep = np.flatnonzero(
            (dist <= self.max_distance) & (np.abs(herr) <= self.max_heading_error)
        )
        if keep.size == 0:
            return _empty_candidates()
        lane = self._lane[seg[keep]]
        # the nearest segment of each (point, lane), then each point's lanes nearest first
        keep = keep[np.lexsort((seg[keep], dist[keep], lane, agent[keep]))]
        lane = self._lane[seg[keep]]
        first = np.ones(keep.size, dtype=bool)
        first[1:] = (agent[keep][1:] != agent[keep][:-1]) | (lane[1:] != lane[:-1])
        keep, lane = keep[first], lane[first]
        order = np.lexsort((lane, dist[keep], agent[keep]))
        keep, lane = keep[order], lane[order]
        s_idx = seg[keep]
        seg_len = self._seg_len[s_idx]
        a, ab, p = self._a[s_idx], self._ab[s_idx], pts[agent[keep]]
        cross = ab[:, 0] * (p[:, 1] - a[:, 1]) - ab[:, 1] * (p[:, 0] - a[:, 0])
        before = np.where(self._first[s_idx], np.maximum(-t_free[keep], 0.0), 0.0)
        after = np.where(self._last[s_idx], np.maximum(t_free[keep] - 1.0, 0.0), 0.0)
        return LaneCandidates(
            agent=agent[keep],
            lane=lane,
            s=self._s0[s_idx] + t[keep] * seg_len,
            lateral=cross / seg_len,
            distance=dist[keep],
            heading_error=herr[keep],
            beyond=(before + after) * seg_len,
        )


def _empty_candidates() -> LaneCandidates:
    z = np.zeros(0, dtype=np.float64)
    return LaneCandidates(np.zeros(0, np.int64), np.zeros(0, np.int64), z, z, z, z, z)


@dataclass(frozen=True, eq=False)
class LanePath:
    """One lane-graph path from the start of a lane: its lanes and centreline polyline.

    ``lanes`` the lane indices in driving order; ``lane_starts`` ``(L,)`` [m] arc length at which
    each lane begins; ``probability`` the product of ``1 / branches`` over the branch points taken;
    ``s`` ``(P,)`` [m], ``xy`` ``(P, 2)`` [m], ``yaw`` ``(P,)`` [rad, unwrapped] the polyline.
    """

    lanes: tuple[int, ...]
    lane_starts: tuple[float, ...]
    probability: float
    s: FloatArray
    xy: FloatArray
    yaw: FloatArray

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def identity(self, s_from: float, s_to: float, merge_distance: float) -> tuple[int, ...]:
        """Lanes the path covers in ``(s_from + merge_distance, s_to]``, in order."""
        lo = s_from + merge_distance
        ends = (*self.lane_starts[1:], math.inf)
        return tuple(
            lane
            for lane, a, b in zip(self.lanes, self.lane_starts, ends, strict=True)
            if b > lo and a <= s_to
        )


def _total_turn(lane: Lane) -> float:
    return abs(wrap_angle(float(lane.headings[-1] - lane.headings[0])))


def lane_paths(road_map: RoadMap, start: int, length: float, max_paths: int) -> list[LanePath]:
    """Lane-graph paths from the start of lane ``start`` until each covers ``length`` [m].

    Successor lanes branch breadth-first, each branch point splitting the probability uniformly,
    while the number of paths stays at most ``max_paths``; where branching further would exceed
    that, a path continues on its straightest successor only (smallest total heading change,
    then lowest index). A path ends early at a lane without successors. Deterministic order:
    breadth-first, successors by lane index.
    """
    lanes = road_map.lanes
    if not 0 <= start < road_map.num_driving_lanes:
        raise ValueError(f"lane_paths: start={start} is not a driving lane of {road_map.name!r}")
    queue: deque[tuple[tuple[int, ...], tuple[float, ...], float, float]] = deque(
        [((start,), (0.0,), lanes[start].length, 1.0)]
    )
    done: list[tuple[tuple[int, ...], tuple[float, ...], float]] = []
    count = 1
    while queue:
        seq, starts, covered, prob = queue.popleft()
        succ = lanes[seq[-1]].successors
        if covered >= length or not succ:
            done.append((seq, starts, prob))
            continue
        if count - 1 + len(succ) <= max_paths:
            chosen = succ
            count += len(succ) - 1
        else:
            chosen = (min(succ, key=lambda i: (_total_turn(lanes[i]), i)),)
        for nxt in chosen:
            queue.append(
                (
                    (*seq, nxt),
                    (*starts, covered),
                    covered + lanes[nxt].length,
                    prob / len(chosen),
                )
            )
    return [_build_path(road_map, seq, starts, prob) for seq, starts, prob in done]


def _build_path(
    road_map: RoadMap, seq: tuple[int, ...], starts: tuple[float, ...], prob: float
) -> LanePath:
    pts = []
    yaws = []
    for k, idx in enumerate(seq):
        lane = road_map.lanes[idx]
        first = 0 if k == 0 else 1
        pts.append(lane.centerline[first:, :2])
        yaws.append(lane.headings[first:])
    xy = np.concatenate(pts)
    yaw = np.unwrap(np.concatenate(yaws))
    steps = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    keep = np.concatenate([[True], steps > 1e-6])
    xy, yaw = xy[keep], yaw[keep]
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=1))])
    for arr in (xy, yaw, s):
        arr.setflags(write=False)
    return LanePath(lanes=seq, lane_starts=starts, probability=prob, s=s, xy=xy, yaw=yaw)


@register_predictor("lane_following")
class LaneFollowing(Predictor):
    """Agents follow lane-graph paths at their current speed.

    For each agent of ``config.lane_classes`` moving forward at ``min_speed`` or more:

    1. It is snapped to the driving lanes whose centreline is within ``max_snap_distance`` and
       whose direction is within ``max_heading_error`` of its box yaw (the same answer as
       :meth:`RoadMap.project`, batched over all agents), less the lanes it lies before the
       start or past the end of by more than ``merge_distance`` (it is on their neighbour in
       the lane graph, which is a candidate itself).
    2. From each such lane the paths of the lane graph are followed over the distance the agent
       covers in the horizon (:func:`lane_paths`: successors branch through junctions, at most
       ``max_modes`` paths, deterministic order; cached per (lane, length bucket)).
    3. Probabilities: a candidate lane weighs ``exp(-(e/heading_sigma)²/2 -
       (d/distance_sigma)²/2)`` with ``e`` its heading error and ``d`` its distance (normalised
       over the agent's candidates); within a candidate, each branch point splits the weight
       uniformly over its successors. Paths covering the same lanes from the agent on merge
       (their probabilities add); the ``max_modes`` most likely are kept and renormalised; mode 0
       is the most likely.
    4. Each mode advances ``speed × t`` along its path's centreline from the agent's projection
       (straight on past a dead end); the agent's lateral offset decays as
       ``exp(-t / lateral_decay_time)``, the yaw is the path's heading plus the slope of that
       decay, the speed stays constant.

    Other agents (pedestrians, static obstacles, standing or reversing vehicles, vehicles off
    the lanes) get one constant-velocity mode. ``K`` is the largest number of modes of any agent;
    agents with fewer are padded with copies of their mode 0 at probability 0.
    """

    def __init__(self, road_map: RoadMap, config: LaneFollowingConfig | None = None) -> None:
        if not isinstance(road_map, RoadMap):
            raise TypeError(
                f"LaneFollowing: road_map must be a RoadMap, got {type(road_map).__name__}"
            )
        if config is not None and not isinstance(config, LaneFollowingConfig):
            raise TypeError(
                f"LaneFollowing: config must be a LaneFollowingConfig, got {type(config).__name__}"
            )
        self.road_map = road_map
        self.config = config or LaneFollowingConfig()
        self.index = LaneSnapIndex(
            road_map,
            self.config.max_snap_distance,
            self.config.max_heading_error,
            self.config.index_cell_size,
        )
        self._paths: dict[tuple[int, int], tuple[LanePath, ...]] = {}

    def paths(self, lane: int, length: float) -> tuple[LanePath, ...]:
        """Cached :func:`lane_paths` from ``lane`` covering at least ``length`` [m]."""
        bucket = max(int(math.ceil(length / self.config.bucket_length)), 1)
        key = (lane, bucket)
        found = self._paths.get(key)
        if found is None:
            if len(self._paths) >= self.config.cache_size:
                self._paths.clear()
            found = tuple(
                lane_paths(
                    self.road_map, lane, bucket * self.config.bucket_length, self.config.max_modes
                )
            )
            self._paths[key] = found
        return found

    def _predict_modes(
        self, agents: Sequence[AgentState], states: FloatArray, times: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        cfg = self.config
        num = states.shape[0]
        speed = np.hypot(states[:, AgentIndex.VX], states[:, AgentIndex.VY])
        yaw = states[:, AgentIndex.YAW]
        forward = states[:, AgentIndex.VX] * np.cos(yaw) + states[:, AgentIndex.VY] * np.sin(yaw)
        lane_class = np.array([a.agent_class in cfg.lane_classes for a in agents], dtype=bool)
        follows = lane_class & (speed >= cfg.min_speed) & (forward > 0.0) & (speed > 0.0)
        rows = np.flatnonzero(follows)
        cand = self.index.query(
            states[rows][:, [AgentIndex.X, AgentIndex.Y]], states[rows, AgentIndex.YAW]
        )
        # a lane the agent lies before or past by more than merge_distance is not its lane
        ok = cand.beyond <= cfg.merge_distance
        c_agent, c_lane, c_s, c_lat = cand.agent[ok], cand.lane[ok], cand.s[ok], cand.lateral[ok]
        weight = np.exp(
            -0.5 * (cand.heading_error[ok] / cfg.heading_sigma) ** 2
            - 0.5 * (cand.distance[ok] / cfg.distance_sigma) ** 2
        )
        bounds = np.searchsorted(c_agent, np.arange(len(rows) + 1))
        horizon = float(times[-1])
        # per mode of every lane-following agent: (agent row, path, s0, lateral, probability)
        mode_agent: list[int] = []
        mode_path: list[LanePath] = []
        mode_s0: list[float] = []
        mode_lat: list[float] = []
        mode_prob: list[float] = []
        lane_modes = np.zeros(num, dtype=np.int64)
        for j, row in enumerate(rows.tolist()):
            lo, hi = int(bounds[j]), int(bounds[j + 1])
            if lo == hi:
                continue
            travel = float(speed[row]) * horizon
            w = weight[lo:hi] / weight[lo:hi].sum()
            # modes keyed by the lanes they cover within the horizon: same lanes, same mode
            chosen: dict[tuple[int, ...], list[Any]] = {}
            for c in range(lo, hi):
                s0 = float(c_s[c])
                for path in self.paths(int(c_lane[c]), s0 + travel):
                    ident = path.identity(s0, s0 + travel, cfg.merge_distance)
                    p = float(w[c - lo]) * path.probability
                    entry = chosen.get(ident)
                    if entry is None:
                        chosen[ident] = [p, path, s0, float(c_lat[c])]
                    else:
                        entry[0] += p
            ranked = sorted(chosen.values(), key=lambda e: -e[0])[: cfg.max_modes]
            total = sum(e[0] for e in ranked)
            for p, path, s0, lat in ranked:
                mode_agent.append(row)
                mode_path.append(path)
                mode_s0.append(s0)
                mode_lat.append(lat)
                mode_prob.append(p / total)
            lane_modes[row] = len(ranked)
        k = max(int(lane_modes.max()), 1)
        modes = np.empty((num, k, times.shape[0], len(ModeIndex)), dtype=np.float64)
        probs = np.zeros((num, k), dtype=np.float64)
        cv_rows = np.flatnonzero(lane_modes == 0)
        if len(cv_rows):
            modes[cv_rows] = constant_velocity_modes(states[cv_rows], times)
            probs[cv_rows, 0] = 1.0
        if mode_agent:
            m_agent = np.array(mode_agent, dtype=np.int64)
            # slot of each mode within its agent: an agent's modes are contiguous, rows ascend
            slot = np.arange(len(m_agent)) - np.searchsorted(m_agent, m_agent, side="left")
            modes[m_agent, slot] = self._follow(
                mode_path,
                np.array(mode_s0),
                np.array(mode_lat),
                speed[m_agent],
                times,
            )
            probs[m_agent, slot] = np.array(mode_prob)
        pad_rows, pad_slots = np.nonzero(
            np.arange(k)[None, :] >= np.maximum(lane_modes, 1)[:, None]
        )
        modes[pad_rows, pad_slots] = modes[pad_rows, 0]
        return modes, probs

    def _follow(
        self,
        paths: list[LanePath],
        s0: FloatArray,
        lateral: FloatArray,
        speed: FloatArray,
        times: FloatArray,
    ) -> FloatArray:
        """States ``(M, T, len(ModeIndex))`` of ``M`` modes along their paths (see the class)."""
        unique: dict[int, int] = {}
        polylines: list[LanePath] = []
        pid = np.empty(len(paths), dtype=np.int64)
        for m, path in enumerate(paths):
            slot = unique.get(id(path))
            if slot is None:
                slot = unique[id(path)] = len(polylines)
                polylines.append(path)
            pid[m] = slot
        travel = s0[:, None] + speed[:, None] * times[None, :]
        return follow_polylines(polylines, pid, travel, lateral, speed, times, self.config)


def follow_polylines(
    polylines: Sequence[LanePath],
    pid: IntArray,
    travel: FloatArray,
    lateral: FloatArray,
    speed: FloatArray,
    times: FloatArray,
    config: LaneFollowingConfig,
) -> FloatArray:
    """States ``(M, T, len(ModeIndex))`` at arc lengths ``travel`` ``(M, T)`` [m] along paths.

    ``polylines`` the distinct paths, ``pid`` ``(M,)`` each mode's path, ``lateral`` ``(M,)``
    [m] initial offset (decaying with ``config.lateral_decay_time``), ``speed`` ``(M,)`` [m/s].
    All modes are interpolated at once: the paths' arc lengths are laid end to end on one axis
    (each shifted past the longest query) so one ``searchsorted`` finds every segment; beyond a
    path's end the last segment is extended straight.
    """
    lengths = np.array([p.length for p in polylines])
    span = float(max(lengths.max(), travel.max())) + 1.0
    sizes = np.array([len(p.s) for p in polylines], dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    s_local = np.concatenate([p.s for p in polylines])
    s_all = s_local + np.repeat(np.arange(len(polylines)) * span, sizes)
    xy_all = np.concatenate([p.xy for p in polylines])
    yaw_all = np.concatenate([p.yaw for p in polylines])
    query = travel + (pid * span)[:, None]
    idx = np.searchsorted(s_all, query, side="right") - 1
    lo = first[pid][:, None]
    hi = (first + sizes - 2)[pid][:, None]
    idx = np.clip(idx, lo, hi)
    s_a, s_b = s_local[idx], s_local[idx + 1]
    f = (travel - s_a) / (s_b - s_a)
    x = xy_all[idx, 0] + f * (xy_all[idx + 1, 0] - xy_all[idx, 0])
    y = xy_all[idx, 1] + f * (xy_all[idx + 1, 1] - xy_all[idx, 1])
    yaw = yaw_all[idx] + np.clip(f, 0.0, 1.0) * (yaw_all[idx + 1] - yaw_all[idx])
    decay = np.exp(-times / config.lateral_decay_time)[None, :]
    offset = lateral[:, None] * decay
    slope = -offset / (config.lateral_decay_time * speed[:, None])
    out = np.empty((*travel.shape, len(ModeIndex)), dtype=np.float64)
    out[..., ModeIndex.X] = x - np.sin(yaw) * offset
    out[..., ModeIndex.Y] = y + np.cos(yaw) * offset
    out[..., ModeIndex.YAW] = wrap_angle(yaw + np.arctan(slope))
    out[..., ModeIndex.SPEED] = speed[:, None]
    return out
