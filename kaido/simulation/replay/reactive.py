"""Reactive replay traffic: logged agents that switch to IDM once the ego leaves its logged track.

Until the simulated ego's rear axle is more than :attr:`ReactiveConfig.deviation_m` from the logged
ego's at the same tick, every agent is shown as logged; where the log has no ego at that tick (a
CommonRoad planning problem records only the ego's start) the ego counts as deviated, so such
traffic reacts from the first step. From then on (the switch is latched), each agent present in the
log is driven along its OWN logged path (its logged box centres, by arc length) by the Intelligent
Driver Model (Treiber, Hennecke & Helbing 2000)::

    a = a_max * (1 - (v / v0)**delta - (s_star / gap)**2)
    s_star = s0 + v * T + v * (v - v_lead) / (2 * sqrt(a_max * b))

``v0`` is the agent's logged speed at the current tick (floored at
:attr:`ReactiveConfig.min_desired_speed`), ``gap`` the bumper-to-bumper distance along its path to
the nearest leader: the simulated ego or another agent whose box centre lies ahead on the path
within a lateral distance of half the two widths plus :attr:`ReactiveConfig.lateral_margin_m`.
An agent starts IDM from its logged arc position and speed at the switch; it stops at the end of
its logged path, and it disappears when the log no longer has it. Agents the log only shows after
the switch start IDM where and when they first appear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from kaido.scene.agents import AgentState
from kaido.scene.geometry import Box3D
from kaido.simulation.replay.backend import LoggedDrive, LoggedEgoIndex

__all__ = ["ReactiveConfig", "ReactiveTraffic", "idm_acceleration"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ReactiveConfig:
    """IDM parameters (the standard urban values of Treiber & Kesting) and the switch rule."""

    max_accel: float = 1.0
    """[m/s²] IDM maximum acceleration ``a_max``."""
    comfortable_decel: float = 2.0
    """[m/s²] IDM comfortable deceleration ``b``."""
    max_decel: float = 8.0
    """[m/s²] hardest braking applied (clip of the IDM acceleration)."""
    time_headway: float = 1.5
    """[s] IDM desired time headway ``T``."""
    min_gap: float = 2.0
    """[m] IDM jam distance ``s0``."""
    delta: float = 4.0
    """IDM acceleration exponent."""
    min_desired_speed: float = 0.5
    """[m/s] floor of the desired speed ``v0`` (the logged speed)."""
    deviation_m: float = 0.5
    """[m] ego deviation from its logged rear axle that switches the agents to IDM."""
    lateral_margin_m: float = 0.5
    """[m] added to half the two widths to decide that an object is on an agent's path."""
    lookahead_m: float = 80.0
    """[m] how far ahead along its path an agent looks for a leader."""

    def __post_init__(self) -> None:
        for name in ("max_accel", "comfortable_decel", "max_decel", "time_headway", "delta"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"ReactiveConfig.{name} must be > 0, got {value}")
        for name in ("min_gap", "min_desired_speed", "deviation_m", "lateral_margin_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"ReactiveConfig.{name} must be >= 0, got {value}")
        if not (math.isfinite(self.lookahead_m) and self.lookahead_m > 0):
            raise ValueError(f"ReactiveConfig.lookahead_m must be > 0, got {self.lookahead_m}")


def idm_acceleration(
    speed: float, desired_speed: float, gap: float, lead_speed: float, config: ReactiveConfig
) -> float:
    """[m/s²] the IDM acceleration (module docstring), clipped to ``[-max_decel, max_accel]``.

    ``gap`` [m] is ``inf`` without a leader; a gap ≤ 0 brakes as hard as allowed.
    """
    v0 = max(desired_speed, config.min_desired_speed)
    free = 1.0 - (max(speed, 0.0) / v0) ** config.delta
    if math.isinf(gap):
        a = config.max_accel * free
    elif gap <= 1e-3:
        a = -config.max_decel
    else:
        s_star = config.min_gap + max(
            0.0,
            speed * config.time_headway
            + speed
            * (speed - lead_speed)
            / (2.0 * math.sqrt(config.max_accel * config.comfortable_decel)),
        )
        a = config.max_accel * (free - (s_star / gap) ** 2)
    return float(np.clip(a, -config.max_decel, config.max_accel))


@dataclass(frozen=True)
class _Path:
    """One agent's logged path: ``(M, 2)`` box centres, ``(M,)`` arc length and unwrapped yaw."""

    xy: FloatArray
    s: FloatArray
    yaw: FloatArray
    s_at_tick: dict[int, float]
    speed_at_tick: dict[int, float]

    def pose(self, s: float) -> tuple[float, float, float]:
        if len(self.s) == 1:
            return float(self.xy[0, 0]), float(self.xy[0, 1]), float(self.yaw[0])
        return (
            float(np.interp(s, self.s, self.xy[:, 0])),
            float(np.interp(s, self.s, self.xy[:, 1])),
            float(np.interp(s, self.s, self.yaw)),
        )

    def project(self, x: float, y: float) -> tuple[float, float]:
        """Arc length [m] and lateral distance [m] of the nearest path point to ``(x, y)``."""
        if len(self.s) == 1:
            return 0.0, float(math.hypot(x - self.xy[0, 0], y - self.xy[0, 1]))
        a = self.xy[:-1]
        d = np.diff(self.xy, axis=0)
        length2 = np.maximum(np.einsum("ij,ij->i", d, d), 1e-12)
        u = np.clip(np.einsum("ij,ij->i", np.array([x, y]) - a, d) / length2, 0.0, 1.0)
        foot = a + u[:, None] * d
        dist = np.hypot(foot[:, 0] - x, foot[:, 1] - y)
        i = int(np.argmin(dist))
        return float(self.s[i] + u[i] * (self.s[i + 1] - self.s[i])), float(dist[i])


def _paths(drive: LoggedDrive) -> dict[int, _Path]:
    points: dict[int, list[tuple[int, float, float, float, float]]] = {}
    for k, agents in enumerate(drive.agents):
        for a in agents:
            speed = math.hypot(a.velocity[0], a.velocity[1])
            points.setdefault(a.track_id, []).append((k, a.box.x, a.box.y, a.box.yaw, speed))
    out: dict[int, _Path] = {}
    for track_id, rows in points.items():
        xy = np.array([[r[1], r[2]] for r in rows], dtype=np.float64)
        s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
        # interp needs increasing s: a standing agent's repeated points share one arc length
        s = s + np.arange(len(s)) * 1e-9
        out[track_id] = _Path(
            xy=xy,
            s=s,
            yaw=np.unwrap(np.array([r[3] for r in rows], dtype=np.float64)),
            s_at_tick={r[0]: float(s[i]) for i, r in enumerate(rows)},
            speed_at_tick={r[0]: r[4] for r in rows},
        )
    return out


class ReactiveTraffic:
    """The agents of a :class:`LoggedDrive`, logged until the ego deviates, then IDM-driven.

    Call :meth:`reset` at the start of an episode and :meth:`agents` once per tick, in order.
    """

    def __init__(self, drive: LoggedDrive, config: ReactiveConfig | None = None) -> None:
        if not isinstance(drive, LoggedDrive):
            raise TypeError(f"ReactiveTraffic.drive: expected LoggedDrive, got {type(drive)!r}")
        self.drive = drive
        self.config = config if config is not None else ReactiveConfig()
        self._paths = _paths(drive)
        self._state: dict[int, tuple[float, float]] = {}
        self.switched_at: int | None = None
        """The tick the agents switched to IDM (None while they follow the log)."""
        self._last_tick = -1

    def reset(self) -> None:
        """Back to the log's agents (before any deviation)."""
        self._state = {}
        self.switched_at = None
        self._last_tick = -1

    def agents(
        self,
        tick: int,
        ego_box: Box3D,
        ego_speed: float,
        ego_yaw: float,
        ego_xy: tuple[float, float],
    ) -> tuple[AgentState, ...]:
        """The agents to show at ``tick``, given the simulated ego (its box, speed [m/s], yaw
        [rad] and rear-axle position [m]); advances IDM by one tick after the switch."""
        if tick != self._last_tick + 1:
            raise ValueError(
                f"ReactiveTraffic.agents: tick {tick} after {self._last_tick}; ticks must be "
                "consecutive from 0 (call reset() to start again)"
            )
        self._last_tick = tick
        drive = self.drive
        logged = drive.agents[tick]
        if self.switched_at is None:
            row = drive.ego[tick]
            lx, ly = float(row[LoggedEgoIndex.X]), float(row[LoggedEgoIndex.Y])
            if not (math.isfinite(lx) and math.isfinite(ly)) or (
                math.hypot(ego_xy[0] - lx, ego_xy[1] - ly) > self.config.deviation_m
            ):
                self.switched_at = tick
        if self.switched_at is None:
            return logged
        dt = drive.dt
        present = {a.track_id: a for a in logged}
        # agents advance from their state of the previous tick; new ones start as logged
        if tick > self.switched_at:
            self._advance(present, ego_box, ego_speed, ego_yaw, dt)
        for track_id in present:
            if track_id not in self._state:
                path = self._paths[track_id]
                self._state[track_id] = (path.s_at_tick[tick], path.speed_at_tick[tick])
        for track_id in [t for t in self._state if t not in present]:
            del self._state[track_id]
        out = []
        for track_id, a in present.items():
            s, v = self._state[track_id]
            x, y, yaw = self._paths[track_id].pose(s)
            out.append(
                replace(
                    a,
                    box=replace(a.box, x=x, y=y, yaw=yaw),
                    velocity=(v * math.cos(yaw), v * math.sin(yaw)),
                )
            )
        return tuple(out)

    def _advance(
        self,
        present: dict[int, AgentState],
        ego_box: Box3D,
        ego_speed: float,
        ego_yaw: float,
        dt: float,
    ) -> None:
        cfg = self.config
        tick = self._last_tick
        # obstacles: the ego and every agent at its current simulated pose
        obstacles: list[tuple[int | None, float, float, float, float, float, float]] = [
            (None, ego_box.x, ego_box.y, ego_box.yaw, ego_box.length, ego_box.width, ego_speed)
        ]
        for track_id, (s, v) in self._state.items():
            if track_id not in present:
                continue
            x, y, yaw = self._paths[track_id].pose(s)
            box = present[track_id].box
            obstacles.append((track_id, x, y, yaw, box.length, box.width, v))
        new_state: dict[int, tuple[float, float]] = {}
        for track_id, (s, v) in self._state.items():
            if track_id not in present:
                continue
            path = self._paths[track_id]
            box = present[track_id].box
            _, _, own_yaw = path.pose(s)
            gap = math.inf
            lead_speed = 0.0
            for other_id, ox, oy, oyaw, olength, owidth, ospeed in obstacles:
                if other_id == track_id:
                    continue
                so, lateral = path.project(ox, oy)
                ahead = so - s
                if ahead <= 0.0 or ahead > cfg.lookahead_m:
                    continue
                if lateral > 0.5 * (box.width + owidth) + cfg.lateral_margin_m:
                    continue
                relative = oyaw - own_yaw
                reach = 0.5 * (abs(olength * math.cos(relative)) + abs(owidth * math.sin(relative)))
                g = ahead - 0.5 * box.length - reach
                if g < gap:
                    gap = g
                    lead_speed = max(ospeed * math.cos(relative), 0.0)
            desired = path.speed_at_tick.get(tick)
            if desired is None:
                desired = path.speed_at_tick[max(k for k in path.speed_at_tick if k <= tick)]
            a = idm_acceleration(v, desired, gap, lead_speed, cfg)
            v_new = max(v + a * dt, 0.0)
            s_new = min(s + 0.5 * (v + v_new) * dt, float(path.s[-1]))
            if s_new >= float(path.s[-1]):
                v_new = 0.0
            new_state[track_id] = (s_new, v_new)
        self._state = new_state
