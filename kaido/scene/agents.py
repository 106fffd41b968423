"""Agents, the ego vehicle, tracks and the control command.

Frames and units
----------------
* World frame: right-handed ISO 8855 (x east/forward, y north/left, z up), metres; yaw in
  radians, counter-clockwise from +x, wrapped to ``[-pi, pi)``.
* Ego frame: x forward, y left, z up. Its origin is the centre of the rear axle projected onto
  the ground plane, the reference point of the kinematic bicycle model.
* Time: ``int`` nanoseconds (``timestamp_ns``) in data.

Packed state vectors use the named indices :class:`EgoIndex` and :class:`AgentIndex`; arrays of
agent states over time are ``(T, A, len(AgentIndex))`` (time, agents, state), float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from kaido.scene.geometry import SE2, Box3D, wrap_angle

__all__ = [
    "AgentClass",
    "AgentIndex",
    "AgentState",
    "Control",
    "EgoIndex",
    "EgoState",
    "Track",
]


class AgentClass(IntEnum):
    """Semantic class of a traffic participant or obstacle.

    * ``VEHICLE``: cars, vans, trucks, buses, motorcycles driven on the road.
    * ``PEDESTRIAN``: people on foot.
    * ``CYCLIST``: bicycles with their rider.
    * ``STATIC``: non-moving obstacles: traffic cones, barriers, parked debris.
    * ``UNKNOWN``: anything a source could not classify.
    """

    VEHICLE = 0
    PEDESTRIAN = 1
    CYCLIST = 2
    STATIC = 3
    UNKNOWN = 4


class EgoIndex(IntEnum):
    """Columns of a packed ego state vector ``(..., len(EgoIndex))``, float64, SI units.

    Pose in the world frame at the rear axle (``X``, ``Y`` [m], ``YAW`` [rad]); velocity and
    acceleration in the ego frame (``VX``, ``VY`` [m/s], ``AX``, ``AY`` [m/s²]); ``YAW_RATE``
    [rad/s]; ``STEER`` the road-wheel steering angle [rad], positive to the left.
    """

    X = 0
    Y = 1
    YAW = 2
    VX = 3
    VY = 4
    YAW_RATE = 5
    AX = 6
    AY = 7
    STEER = 8


class AgentIndex(IntEnum):
    """Columns of a packed agent state vector ``(..., len(AgentIndex))``, float64, SI units.

    Box centre and heading in the world frame (``X``, ``Y`` [m], ``YAW`` [rad]), velocity in the
    world frame (``VX``, ``VY`` [m/s]), box footprint (``LENGTH`` along the heading, ``WIDTH``
    across it [m]).
    """

    X = 0
    Y = 1
    YAW = 2
    VX = 3
    VY = 4
    LENGTH = 5
    WIDTH = 6


def _require_int(owner: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{owner}.{name}: expected an int, got {type(value).__name__} {value!r}")
    return int(value)


def _require_float(owner: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{owner}.{name}: expected a number, got {type(value).__name__} {value!r}")
    return float(value)


def _require_pair(owner: str, name: str, value: object) -> tuple[float, float]:
    if isinstance(value, np.ndarray):
        value = tuple(value.tolist())
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise TypeError(f"{owner}.{name}: expected a pair of numbers, got {value!r}")
    return (
        _require_float(owner, f"{name}[0]", value[0]),
        _require_float(owner, f"{name}[1]", value[1]),
    )


@dataclass(frozen=True)
class EgoState:
    """State of the ego vehicle at one instant.

    Non-finite values are accepted here (they come from sensors and are degraded downstream);
    :meth:`is_finite` tells whether every number is finite.
    """

    timestamp_ns: int
    """Time of the state [ns]."""
    pose: SE2
    """Rear-axle pose in the world frame (x, y [m], yaw [rad])."""
    velocity: tuple[float, float] = (0.0, 0.0)
    """(vx, vy) of the rear axle in the ego frame [m/s]."""
    acceleration: tuple[float, float] = (0.0, 0.0)
    """(ax, ay) in the ego frame [m/s²]."""
    yaw_rate: float = 0.0
    """Yaw rate, positive counter-clockwise [rad/s]."""
    steering_angle: float = 0.0
    """Road-wheel steering angle, positive to the left (ISO 8855) [rad]."""

    def __post_init__(self) -> None:
        owner = "EgoState"
        object.__setattr__(
            self, "timestamp_ns", _require_int(owner, "timestamp_ns", self.timestamp_ns)
        )
        if not isinstance(self.pose, SE2):
            raise TypeError(f"{owner}.pose: expected SE2, got {type(self.pose).__name__}")
        object.__setattr__(self, "velocity", _require_pair(owner, "velocity", self.velocity))
        object.__setattr__(
            self, "acceleration", _require_pair(owner, "acceleration", self.acceleration)
        )
        object.__setattr__(self, "yaw_rate", _require_float(owner, "yaw_rate", self.yaw_rate))
        object.__setattr__(
            self, "steering_angle", _require_float(owner, "steering_angle", self.steering_angle)
        )

    @property
    def speed(self) -> float:
        """Magnitude of the velocity [m/s]."""
        return math.hypot(self.velocity[0], self.velocity[1])

    def is_finite(self) -> bool:
        """Whether every number of the state is finite."""
        return bool(np.all(np.isfinite(self.as_array())))

    def as_array(self) -> npt.NDArray[np.float64]:
        """Packed state ``(len(EgoIndex),)`` float64, columns per :class:`EgoIndex`."""
        out = np.empty(len(EgoIndex), dtype=np.float64)
        out[EgoIndex.X] = self.pose.x
        out[EgoIndex.Y] = self.pose.y
        out[EgoIndex.YAW] = self.pose.yaw
        out[EgoIndex.VX] = self.velocity[0]
        out[EgoIndex.VY] = self.velocity[1]
        out[EgoIndex.YAW_RATE] = self.yaw_rate
        out[EgoIndex.AX] = self.acceleration[0]
        out[EgoIndex.AY] = self.acceleration[1]
        out[EgoIndex.STEER] = self.steering_angle
        return out

    @classmethod
    def from_array(cls, timestamp_ns: int, arr: npt.ArrayLike) -> EgoState:
        """Inverse of :meth:`as_array`; ``arr`` has shape ``(len(EgoIndex),)``."""
        a = np.asarray(arr, dtype=np.float64)
        if a.shape != (len(EgoIndex),):
            raise ValueError(
                f"EgoState.from_array: expected shape ({len(EgoIndex)},), got {a.shape}"
            )
        return cls(
            timestamp_ns=timestamp_ns,
            pose=SE2(float(a[EgoIndex.X]), float(a[EgoIndex.Y]), float(a[EgoIndex.YAW])),
            velocity=(float(a[EgoIndex.VX]), float(a[EgoIndex.VY])),
            acceleration=(float(a[EgoIndex.AX]), float(a[EgoIndex.AY])),
            yaw_rate=float(a[EgoIndex.YAW_RATE]),
            steering_angle=float(a[EgoIndex.STEER]),
        )


@dataclass(frozen=True)
class AgentState:
    """One observed agent at one instant (ground truth or detection)."""

    track_id: int
    """Identity of the agent, stable over time within one scene."""
    agent_class: AgentClass
    """Semantic class."""
    box: Box3D
    """Oriented box in the world frame (centre x, y, z [m], yaw [rad], size [m])."""
    velocity: tuple[float, float]
    """(vx, vy) of the box centre in the world frame [m/s]."""
    timestamp_ns: int
    """Time of the observation [ns]."""

    def __post_init__(self) -> None:
        owner = "AgentState"
        object.__setattr__(self, "track_id", _require_int(owner, "track_id", self.track_id))
        if not isinstance(self.agent_class, AgentClass):
            try:
                object.__setattr__(self, "agent_class", AgentClass(self.agent_class))
            except ValueError as exc:
                raise ValueError(
                    f"{owner}.agent_class: {self.agent_class!r} is not an AgentClass"
                ) from exc
        if not isinstance(self.box, Box3D):
            raise TypeError(f"{owner}.box: expected Box3D, got {type(self.box).__name__}")
        object.__setattr__(self, "velocity", _require_pair(owner, "velocity", self.velocity))
        object.__setattr__(
            self, "timestamp_ns", _require_int(owner, "timestamp_ns", self.timestamp_ns)
        )

    @property
    def speed(self) -> float:
        """Magnitude of the velocity [m/s]."""
        return math.hypot(self.velocity[0], self.velocity[1])

    def as_array(self) -> npt.NDArray[np.float64]:
        """Packed state ``(len(AgentIndex),)`` float64, columns per :class:`AgentIndex`."""
        out = np.empty(len(AgentIndex), dtype=np.float64)
        out[AgentIndex.X] = self.box.x
        out[AgentIndex.Y] = self.box.y
        out[AgentIndex.YAW] = self.box.yaw
        out[AgentIndex.VX] = self.velocity[0]
        out[AgentIndex.VY] = self.velocity[1]
        out[AgentIndex.LENGTH] = self.box.length
        out[AgentIndex.WIDTH] = self.box.width
        return out


def _readonly(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    view = arr.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False)
class Track:
    """The history of one agent: ``T`` packed states at strictly increasing timestamps.

    The arrays are copied at construction and stored read-only.
    """

    track_id: int
    """Identity of the agent."""
    agent_class: AgentClass
    """Semantic class."""
    timestamps_ns: npt.NDArray[np.int64]
    """``(T,)`` int64, strictly increasing [ns], ``T >= 1``."""
    states: npt.NDArray[np.float64]
    """``(T, len(AgentIndex))`` float64, finite, columns per :class:`AgentIndex`."""

    def __post_init__(self) -> None:
        owner = "Track"
        object.__setattr__(self, "track_id", _require_int(owner, "track_id", self.track_id))
        if not isinstance(self.agent_class, AgentClass):
            try:
                object.__setattr__(self, "agent_class", AgentClass(self.agent_class))
            except ValueError as exc:
                raise ValueError(
                    f"{owner}.agent_class: {self.agent_class!r} is not an AgentClass"
                ) from exc
        t = self.timestamps_ns
        if not isinstance(t, np.ndarray) or t.dtype != np.int64 or t.ndim != 1 or t.size < 1:
            raise ValueError(
                f"{owner}.timestamps_ns: expected int64 (T,) with T >= 1, got {_describe(t)}"
            )
        s = self.states
        expected = (t.shape[0], len(AgentIndex))
        if not isinstance(s, np.ndarray) or s.dtype != np.float64 or s.shape != expected:
            raise ValueError(f"{owner}.states: expected float64 {expected}, got {_describe(s)}")
        steps = np.diff(t)
        if np.any(steps <= 0):
            i = int(np.argmax(steps <= 0))
            raise ValueError(
                f"{owner}.timestamps_ns: must be strictly increasing, but "
                f"timestamps_ns[{i}]={int(t[i])} >= timestamps_ns[{i + 1}]={int(t[i + 1])}"
            )
        bad = ~np.isfinite(s)
        if np.any(bad):
            row, col = (int(v) for v in np.argwhere(bad)[0])
            raise ValueError(
                f"{owner}.states: non-finite value {s[row, col]} at "
                f"[{row}, AgentIndex.{AgentIndex(col).name}]"
            )
        object.__setattr__(self, "timestamps_ns", _readonly(t.copy()))
        object.__setattr__(self, "states", _readonly(s.copy()))

    def __len__(self) -> int:
        return int(self.timestamps_ns.shape[0])

    @property
    def start_ns(self) -> int:
        """First timestamp [ns]."""
        return int(self.timestamps_ns[0])

    @property
    def end_ns(self) -> int:
        """Last timestamp [ns]."""
        return int(self.timestamps_ns[-1])

    def at(self, timestamp_ns: int) -> npt.NDArray[np.float64]:
        """Packed state ``(len(AgentIndex),)`` at ``timestamp_ns`` by linear interpolation.

        Yaw is interpolated along the shorter arc of the circle and wrapped to ``[-pi, pi)``;
        at a sample time the stored state is returned exactly. Times outside
        ``[start_ns, end_ns]`` raise ``ValueError`` (no extrapolation).
        """
        ts = _require_int("Track.at", "timestamp_ns", timestamp_ns)
        if ts < self.start_ns or ts > self.end_ns:
            raise ValueError(
                f"Track.at: timestamp_ns={ts} is outside track {self.track_id}'s span "
                f"[{self.start_ns}, {self.end_ns}]"
            )
        i = int(np.searchsorted(self.timestamps_ns, ts, side="left"))
        if int(self.timestamps_ns[i]) == ts:
            return self.states[i].copy()
        t0 = int(self.timestamps_ns[i - 1])
        t1 = int(self.timestamps_ns[i])
        alpha = (ts - t0) / (t1 - t0)
        s0 = self.states[i - 1]
        s1 = self.states[i]
        out = s0 + alpha * (s1 - s0)
        dyaw = wrap_angle(float(s1[AgentIndex.YAW] - s0[AgentIndex.YAW]))
        out[AgentIndex.YAW] = wrap_angle(float(s0[AgentIndex.YAW]) + alpha * float(dyaw))
        return out

    def slice(self, t0_ns: int, t1_ns: int) -> Track:
        """The samples with ``t0_ns <= t <= t1_ns`` as a new track; ``ValueError`` if none."""
        lo = _require_int("Track.slice", "t0_ns", t0_ns)
        hi = _require_int("Track.slice", "t1_ns", t1_ns)
        if hi < lo:
            raise ValueError(f"Track.slice: t1_ns={hi} is before t0_ns={lo}")
        keep = (self.timestamps_ns >= lo) & (self.timestamps_ns <= hi)
        if not np.any(keep):
            raise ValueError(
                f"Track.slice: no sample of track {self.track_id} in [{lo}, {hi}] "
                f"(track spans [{self.start_ns}, {self.end_ns}])"
            )
        return Track(
            track_id=self.track_id,
            agent_class=self.agent_class,
            timestamps_ns=self.timestamps_ns[keep],
            states=self.states[keep],
        )


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {value.shape}"
    return type(value).__name__


_CONTROL_RANGES: dict[str, tuple[float, float]] = {
    "throttle": (0.0, 1.0),
    "steer": (-1.0, 1.0),
    "brake": (0.0, 1.0),
}


@dataclass(frozen=True)
class Control:
    """An actuator command in CARLA's ``carla.VehicleControl`` convention, field for field.

    kaido keeps CARLA's convention here so a command maps 1:1 onto ``carla.VehicleControl``:
    ``steer`` is normalised to ``[-1, 1]`` and **positive steers to the right** (CARLA is
    left-handed). This is the opposite sign of kaido's ISO 8855 road-wheel angle
    (:attr:`EgoState.steering_angle`, positive to the left); the vehicle profile converts between
    them (``steering_angle = -steer * max_steering_angle``).

    Construction rejects out-of-range or non-finite values with ``ValueError`` naming the field;
    use :meth:`clipped` to sanitise raw controller output instead.
    """

    throttle: float = 0.0
    """Accelerator pedal, ``[0, 1]``."""
    steer: float = 0.0
    """Normalised steering, ``[-1, 1]``, positive = right (CARLA)."""
    brake: float = 0.0
    """Brake pedal, ``[0, 1]``."""
    reverse: bool = False
    """Reverse gear engaged."""
    hand_brake: bool = False
    """Hand brake engaged."""

    def __post_init__(self) -> None:
        for name, (lo, hi) in _CONTROL_RANGES.items():
            value = _require_float("Control", name, getattr(self, name))
            if not math.isfinite(value):
                raise ValueError(f"Control.{name}: must be finite, got {value}")
            if not lo <= value <= hi:
                raise ValueError(f"Control.{name}: must be in [{lo}, {hi}], got {value}")
            object.__setattr__(self, name, value)
        for name in ("reverse", "hand_brake"):
            value = getattr(self, name)
            if not isinstance(value, bool | np.bool_):
                raise TypeError(
                    f"Control.{name}: expected a bool, got {type(value).__name__} {value!r}"
                )
            object.__setattr__(self, name, bool(value))

    @classmethod
    def clipped(
        cls,
        throttle: float,
        steer: float,
        brake: float,
        reverse: bool = False,
        hand_brake: bool = False,
    ) -> tuple[Control, list[str]]:
        """A valid command from raw values, and the names of the fields that were changed.

        Finite values outside their range are clipped into it. If any of ``throttle``,
        ``steer`` or ``brake`` is NaN or infinite the whole command is untrustworthy and is
        replaced by a full stop (throttle 0, steer 0, brake 1; ``reverse`` and ``hand_brake``
        kept); the non-finite fields are reported as changed. The list is in field order,
        so ``len(changed)`` counts the warnings to raise.
        """
        raw = {"throttle": throttle, "steer": steer, "brake": brake}
        values = {name: _require_float("Control", name, v) for name, v in raw.items()}
        non_finite = [name for name, v in values.items() if not math.isfinite(v)]
        if non_finite:
            return (
                cls(0.0, 0.0, 1.0, reverse=reverse, hand_brake=hand_brake),
                non_finite,
            )
        changed: list[str] = []
        out: dict[str, float] = {}
        for name, v in values.items():
            lo, hi = _CONTROL_RANGES[name]
            c = min(max(v, lo), hi)
            if c != v:
                changed.append(name)
            out[name] = c
        return (
            cls(
                out["throttle"], out["steer"], out["brake"], reverse=reverse, hand_brake=hand_brake
            ),
            changed,
        )

    @classmethod
    def brake_full(cls) -> Control:
        """Full brake, no throttle, wheels straight."""
        return cls(throttle=0.0, steer=0.0, brake=1.0)

    @classmethod
    def coast(cls) -> Control:
        """No pedal, wheels straight."""
        return cls(throttle=0.0, steer=0.0, brake=0.0)

    @classmethod
    def hold(cls) -> Control:
        """Standstill hold: full brake and hand brake, wheels straight."""
        return cls(throttle=0.0, steer=0.0, brake=1.0, hand_brake=True)
