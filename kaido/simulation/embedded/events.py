"""Scripted scenario events in the embedded simulator (lead brake, cut-in, crossing, ...).

Each :class:`~kaido.simulation.backend.ScenarioEvent` fires once, when the ego's progress along
the route passes its ``trigger_s``; its actor is placed ``distance`` metres further along the
route, through the SUMO traffic primitives, so background traffic reacts to it as well.

Parameters read here beyond :class:`~kaido.simulation.backend.EventKind`'s: a ``STOPPED_VEHICLE``
with ``beside`` > 0 also stops a second vehicle alongside it in the neighbouring lane (the left
one where there is one), so the ego cannot pass it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from kaido.scene.frame import TrafficLightColor, TrafficLightState
from kaido.scene.geometry import SE2
from kaido.scene.road_map import RoadMap
from kaido.scene.route_planner import RoutePlan
from kaido.simulation.backend import EventKind, ScenarioEvent

FloatArray = npt.NDArray[np.float64]


class EventTraffic(Protocol):
    """The traffic primitives scripted events need (``SumoTraffic`` provides them)."""

    def spawn_vehicle(self, pose: SE2, speed: float, *, lane_hint: int | None = None) -> int: ...

    def set_vehicle_speed(
        self, track_id: int, speed: float, decel: float | None = None
    ) -> None: ...

    def change_lane(self, track_id: int, direction: int, duration: float) -> None: ...

    def hold_vehicle(self, track_id: int) -> None: ...

    def set_light(self, light_id: str, color: TrafficLightColor, duration: float) -> None: ...

    def spawn_pedestrian(self, start: FloatArray, end: FloatArray, speed: float) -> int: ...

    def traffic_lights(self) -> tuple[TrafficLightState, ...]: ...


@dataclass
class FiredEvent:
    """What happened when an event fired (for the log and the results)."""

    event: ScenarioEvent
    time_s: float
    message: str
    actor_id: int | None = None


@dataclass
class _Pending:
    """A follow-up action of a fired event, due at ``time_s``."""

    time_s: float
    actor_id: int
    action: str
    value: float = 0.0


@dataclass
class EventRunner:
    """Fires a scenario's events as the ego progresses along the route."""

    events: tuple[ScenarioEvent, ...]
    route: RoutePlan
    road_map: RoadMap
    fired: list[FiredEvent] = field(default_factory=list)
    _done: set[int] = field(default_factory=set)
    _pending: list[_Pending] = field(default_factory=list)

    def _pose_ahead(self, s: float, lateral: float = 0.0) -> SE2:
        s = float(np.clip(s, 0.0, self.route.length))
        x = float(np.interp(s, self.route.s, self.route.path[:, 0]))
        y = float(np.interp(s, self.route.s, self.route.path[:, 1]))
        yaw = float(np.interp(s, self.route.s, np.unwrap(self.route.path[:, 2])))
        return SE2(x - lateral * math.sin(yaw), y + lateral * math.cos(yaw), yaw)

    def _lane_at(self, s: float) -> int:
        index = int(np.clip(np.searchsorted(self.route.s, s), 0, len(self.route.s) - 1))
        return int(self.route.lanes[index])

    def update(
        self, time_s: float, ego_s: float, ego_speed: float, traffic: EventTraffic
    ) -> list[FiredEvent]:
        """Fire the events whose trigger the ego has passed; run due follow-ups."""
        new: list[FiredEvent] = []
        for i, event in enumerate(self.events):
            if i in self._done or ego_s < event.trigger_s:
                continue
            self._done.add(i)
            new.append(self._fire(event, time_s, ego_s, ego_speed, traffic))
        for pending in [p for p in self._pending if p.time_s <= time_s]:
            self._pending.remove(pending)
            if pending.action == "brake":
                traffic.set_vehicle_speed(pending.actor_id, 0.0, decel=pending.value)
            elif pending.action == "cut_in":
                traffic.change_lane(pending.actor_id, int(pending.value), 2.0)
        self.fired.extend(new)
        return new

    def _fire(
        self,
        event: ScenarioEvent,
        time_s: float,
        ego_s: float,
        ego_speed: float,
        traffic: EventTraffic,
    ) -> FiredEvent:
        params = event.params
        s = ego_s + event.distance
        if event.kind is EventKind.STOPPED_VEHICLE:
            actor = traffic.spawn_vehicle(self._pose_ahead(s), 0.0, lane_hint=self._lane_at(s))
            traffic.hold_vehicle(actor)
            message = f"stopped vehicle {event.distance:.0f} m ahead"
            if float(params.get("beside", 0.0)) > 0.0:
                # a second stopped vehicle alongside, in the neighbouring lane (left first)
                lane = self.road_map.lanes[self._lane_at(s)]
                side = -1 if lane.left_neighbor >= 0 else (1 if lane.right_neighbor >= 0 else 0)
                if side == 0:
                    return FiredEvent(
                        event, time_s, f"{message}; none beside: the lane has no neighbour", actor
                    )
                neighbour = lane.left_neighbor if side < 0 else lane.right_neighbor
                lateral = (
                    -side
                    * 0.5
                    * (
                        float(np.mean(lane.widths))
                        + float(np.mean(self.road_map.lanes[neighbour].widths))
                    )
                )
                beside = traffic.spawn_vehicle(
                    self._pose_ahead(s, lateral), 0.0, lane_hint=neighbour
                )
                traffic.hold_vehicle(beside)
                message += f", another beside it on the {'left' if side < 0 else 'right'}"
            return FiredEvent(event, time_s, message, actor)
        if event.kind is EventKind.LEAD_BRAKE:
            speed = float(params.get("speed", max(ego_speed, 5.0)))
            actor = traffic.spawn_vehicle(self._pose_ahead(s), speed, lane_hint=self._lane_at(s))
            decel = float(params.get("decel", 6.0))
            self._pending.append(
                _Pending(time_s + float(params.get("brake_after", 2.0)), actor, "brake", decel)
            )
            return FiredEvent(
                event,
                time_s,
                f"lead vehicle {event.distance:.0f} m ahead, brakes at {decel} m/s²",
                actor,
            )
        if event.kind is EventKind.CUT_IN:
            lane = self.road_map.lanes[self._lane_at(s)]
            side = -1 if lane.left_neighbor >= 0 else (1 if lane.right_neighbor >= 0 else 0)
            if side == 0:
                return FiredEvent(
                    event, time_s, "cut-in skipped: the route's lane has no neighbour"
                )
            lateral = -side * float(np.mean(lane.widths))
            speed = float(params.get("speed", max(ego_speed, 5.0)))
            neighbour = lane.left_neighbor if side < 0 else lane.right_neighbor
            actor = traffic.spawn_vehicle(self._pose_ahead(s, lateral), speed, lane_hint=neighbour)
            # SUMO's lane-change direction: +1 = left, -1 = right; the cut-in moves towards the ego
            self._pending.append(
                _Pending(
                    time_s + float(params.get("after", 1.0)), actor, "cut_in", -1 if side < 0 else 1
                )
            )
            return FiredEvent(
                event, time_s, f"cut-in from the {'left' if side < 0 else 'right'}", actor
            )
        if event.kind is EventKind.PEDESTRIAN_CROSSING:
            lane = self.road_map.lanes[self._lane_at(s)]
            half = float(np.mean(lane.widths)) * float(params.get("lanes", 2.0)) / 2 + 2.0
            start = self._pose_ahead(s, -half)
            end = self._pose_ahead(s, half)
            actor = traffic.spawn_pedestrian(
                np.array([start.x, start.y]),
                np.array([end.x, end.y]),
                float(params.get("speed", 1.4)),
            )
            return FiredEvent(
                event, time_s, f"pedestrian crossing {event.distance:.0f} m ahead", actor
            )
        if event.kind is EventKind.RED_LIGHT:
            light = self._next_light(ego_s, traffic.traffic_lights())
            if light is None:
                return FiredEvent(
                    event, time_s, "red light skipped: no traffic light ahead on the route"
                )
            traffic.set_light(
                str(light.light_id), TrafficLightColor.RED, float(params.get("duration", 20.0))
            )
            return FiredEvent(event, time_s, f"light {light.light_id} forced red")
        raise ValueError(f"unknown event kind {event.kind!r}")

    def _next_light(
        self, ego_s: float, lights: tuple[TrafficLightState, ...]
    ) -> TrafficLightState | None:
        """The first light whose stop line crosses the route ahead of the ego."""
        best: tuple[float, TrafficLightState] | None = None
        for light in lights:
            if light.stop_line is None:
                continue
            mid = np.asarray(light.stop_line, dtype=np.float64).mean(axis=0)
            d = np.linalg.norm(self.route.path[:, :2] - mid, axis=1)
            k = int(np.argmin(d))
            if d[k] > 2.5 or self.route.s[k] <= ego_s:
                continue
            if best is None or self.route.s[k] < best[0]:
                best = (float(self.route.s[k]), light)
        return None if best is None else best[1]
