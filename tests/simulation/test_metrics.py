"""Route metrics: leaderboard driving score, infractions, comfort, TTC, results JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaido.scene.agents import AgentClass, AgentState, EgoState
from kaido.scene.frame import GroundTruth, TrafficLightColor, TrafficLightState
from kaido.scene.geometry import SE2, Box3D
from kaido.scene.road_map import RoadMap
from kaido.scene.route_planner import RoutePlan
from kaido.scene.town_generator import TownSpec, generate_town
from kaido.scene.vehicle import VehicleProfile
from kaido.simulation.backend import StaticObstacle
from kaido.simulation.metrics import (
    PENALTIES,
    InfractionKind,
    MetricConfig,
    RouteEvaluator,
    RouteResult,
    RouteStatus,
    StopSign,
    comfort_metrics,
    global_results,
    results_document,
    savgol_filter,
    time_to_collision,
)
from kaido.simulation.results import (
    GLOBAL_LABELS,
    METRIC_VERSION,
    Infraction,
    min_speed_factor,
    outside_route_lanes_factor,
)

PROFILE = VehicleProfile()
TO_CENTER = PROFILE.rear_axle_to_center


# ----------------------------------------------------------------------------------------------
# A small town, a straight route through one junction, and hand-made ticks
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def town() -> RoadMap:
    return RoadMap.from_opendrive(
        generate_town(TownSpec(rows=3, cols=3, seed=0, name="t")), name="t"
    )


@pytest.fixture(scope="module")
def route(town: RoadMap) -> RoutePlan:
    """The longest eastbound straight between two spawn points (it crosses one junction)."""
    spawns = town.spawn_points()
    east = spawns[np.abs(spawns[:, 2]) < 0.01]
    rows = np.round(east[:, 1], 1)
    spans = {y: np.ptp(east[rows == y, 0]) for y in np.unique(rows)}
    y = max(spans, key=lambda k: spans[k])
    group = east[rows == y]
    start, goal = group[np.argmin(group[:, 0])], group[np.argmax(group[:, 0])]
    plan = town.plan_route(np.array([start[:2], goal[:2]]), yaws=np.array([0.0, 0.0]))
    assert np.ptp(plan.path[:, 1]) < 0.05 and np.all(np.abs(plan.path[:, 2]) < 1e-3)
    assert plan.length > 100.0
    return plan


def at(route: RoutePlan, s: float) -> tuple[float, float]:
    """(x, y) of the route's reference path at arc length ``s``."""
    return (
        float(np.interp(s, route.s, route.path[:, 0])),
        float(np.interp(s, route.s, route.path[:, 1])),
    )


@dataclass(frozen=True)
class Tick:
    """The ego at one tick: box centre (x, y), heading, speed, acceleration."""

    t: float
    x: float
    y: float
    yaw: float = 0.0
    speed: float = 0.0
    accel: tuple[float, float] = (0.0, 0.0)


def ego_state(tick: Tick) -> EgoState:
    return EgoState(
        timestamp_ns=int(round(tick.t * 1e9)),
        pose=SE2(
            tick.x - TO_CENTER * math.cos(tick.yaw),
            tick.y - TO_CENTER * math.sin(tick.yaw),
            tick.yaw,
        ),
        velocity=(tick.speed, 0.0),
        acceleration=tick.accel,
    )


def ego_box(tick: Tick) -> Box3D:
    return Box3D(
        tick.x,
        tick.y,
        0.5 * PROFILE.height,
        tick.yaw,
        PROFILE.length,
        PROFILE.width,
        PROFILE.height,
    )


def agent(
    track_id: int,
    x: float,
    y: float,
    cls: AgentClass = AgentClass.VEHICLE,
    *,
    yaw: float = 0.0,
    velocity: tuple[float, float] = (0.0, 0.0),
    size: tuple[float, float, float] = (4.5, 1.8, 1.5),
) -> AgentState:
    length, width, height = size
    return AgentState(
        track_id=track_id,
        agent_class=cls,
        box=Box3D(x, y, 0.5 * height, yaw, length, width, height),
        velocity=velocity,
        timestamp_ns=0,
    )


World = Callable[[Tick], GroundTruth]


def no_world(_: Tick) -> GroundTruth:
    return GroundTruth()


def evaluator(town: RoadMap, route: RoutePlan, **kwargs: object) -> RouteEvaluator:
    return RouteEvaluator(
        route,
        town,
        route_id=str(kwargs.pop("route_id", "r0")),
        ego_length=PROFILE.length,
        ego_width=PROFILE.width,
        **kwargs,  # type: ignore[arg-type]
    )


def run(
    ev: RouteEvaluator,
    ticks: Iterable[Tick],
    world: World = no_world,
    statics: Callable[[Tick], Sequence[StaticObstacle]] = lambda _: (),
) -> RouteStatus:
    status = RouteStatus.RUNNING
    for tick in ticks:
        status = ev.update(tick.t, ego_state(tick), ego_box(tick), world(tick), statics(tick))
        if status is not RouteStatus.RUNNING:
            break
    return status


def along(
    route: RoutePlan,
    speed: float,
    dt: float = 0.1,
    *,
    s0: float = 0.0,
    s1: float | None = None,
    t0: float = 0.0,
    lateral: Callable[[float], float] = lambda s: 0.0,
    yaw: float = 0.0,
) -> list[Tick]:
    """Ticks driving the straight route at constant ``speed`` from ``s0`` to ``s1``, offset
    ``lateral(s)`` [m] to the left."""
    end = route.length if s1 is None else s1
    count = int(round((end - s0) / (speed * dt)))
    out = []
    for k in range(count + 1):
        s = min(s0 + k * speed * dt, end)
        x, y = at(route, s)
        out.append(Tick(t0 + k * dt, x, y + lateral(s), yaw, speed))
    return out


# ----------------------------------------------------------------------------------------------
# Penalty definitions
# ----------------------------------------------------------------------------------------------


def test_penalty_table_is_the_leaderboards() -> None:
    assert dict(PENALTIES) == {
        InfractionKind.COLLISION_PEDESTRIAN: 0.50,
        InfractionKind.COLLISION_VEHICLE: 0.60,
        InfractionKind.COLLISION_STATIC: 0.65,
        InfractionKind.RED_LIGHT: 0.70,
        InfractionKind.STOP_SIGN: 0.80,
        InfractionKind.SCENARIO_TIMEOUT: 0.70,
        InfractionKind.YIELD_EMERGENCY: 0.70,
    }
    assert InfractionKind.COLLISION_STATIC.key == "collisions_layout"
    assert InfractionKind.AGENT_BLOCKED.key == "vehicle_blocked"
    assert min_speed_factor(0.0) == pytest.approx(0.7)
    assert min_speed_factor(50.0) == pytest.approx(0.85)
    assert min_speed_factor(100.0) == pytest.approx(1.0)
    assert outside_route_lanes_factor(30.0) == pytest.approx(0.7)
    for kind in (
        InfractionKind.ROUTE_DEVIATION,
        InfractionKind.AGENT_BLOCKED,
        InfractionKind.ROUTE_TIMEOUT,
    ):
        assert Infraction(kind, 0.0, (0.0, 0.0), None, "x").penalty == 1.0
    with pytest.raises(ValueError, match="MIN_SPEED"):
        Infraction(InfractionKind.MIN_SPEED, 0.0, (0.0, 0.0), None, "x")


def test_metric_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="blocked_time"):
        MetricConfig(blocked_time=0.0)
    with pytest.raises(ValueError, match="comfort_lon_accel"):
        MetricConfig(comfort_lon_accel=(1.0, 2.0))
    with pytest.raises(ValueError, match="route_deviation_safe_distance"):
        MetricConfig(route_deviation_safe_distance=40.0)


# ----------------------------------------------------------------------------------------------
# Route completion
# ----------------------------------------------------------------------------------------------


def test_clean_route_scores_100(town: RoadMap, route: RoutePlan) -> None:
    ev = evaluator(town, route)
    ticks = along(route, 10.0)
    assert run(ev, ticks) is RouteStatus.COMPLETED
    result = ev.finish()
    assert result.status == "Perfect" and result.completed
    assert result.driving_score == 100.0
    assert result.route_completion == 100.0
    assert result.infraction_penalty == 1.0
    assert result.infractions == ()
    assert result.progress == 1.0
    assert result.comfortable
    assert result.ttc_min_s is None and result.ttc_violations == 0
    assert result.distance_driven_m == pytest.approx(route.length - 0.0, abs=1.0)
    assert ev.finish() is result


def test_route_completion_counts_passed_route_points(town: RoadMap, route: RoutePlan) -> None:
    ev = evaluator(town, route)
    half = 0.5 * route.length
    assert run(ev, along(route, 10.0, s1=half)) is RouteStatus.RUNNING
    assert ev.route_completion == pytest.approx(50.0, abs=2.0)
    # backing up does not lower route completion
    x, y = at(route, half - 20.0)
    ev.update(100.0, ego_state(Tick(100.0, x, y)), ego_box(Tick(100.0, x, y)), GroundTruth())
    assert ev.route_completion == pytest.approx(50.0, abs=2.0)
    result = ev.finish()
    assert result.status == "Failed"
    assert result.driving_score == pytest.approx(result.route_completion)
    assert result.progress == pytest.approx(0.5, abs=0.02)


# ----------------------------------------------------------------------------------------------
# Collisions
# ----------------------------------------------------------------------------------------------


def test_driving_through_a_stopped_car_is_one_vehicle_collision(
    town: RoadMap, route: RoutePlan
) -> None:
    ev = evaluator(town, route)
    cx, cy = at(route, 50.0)
    car = agent(7, cx, cy)
    overlapping = 0

    def world(tick: Tick) -> GroundTruth:
        nonlocal overlapping
        overlapping += bool(ego_box(tick).overlaps(car.box))
        return GroundTruth(agents=(car,))

    # a kinematic ego drives straight through it at 1.5 m/s: the boxes overlap for over 6 s,
    # longer than the leaderboard's 5 s memory of the last collided actor
    run(ev, along(route, 1.5, dt=0.2, s1=80.0), world)
    result = ev.finish()
    assert overlapping * 0.2 > 6.0
    assert result.count(InfractionKind.COLLISION_VEHICLE) == 1
    assert result.infraction_penalty == pytest.approx(0.60)
    (collision,) = result.infractions
    assert collision.actor_id == 7
    assert "type=vehicle and id=7" in collision.message


@pytest.mark.parametrize(
    ("cls", "penalty", "kind"),
    [
        (AgentClass.PEDESTRIAN, 0.50, InfractionKind.COLLISION_PEDESTRIAN),
        (AgentClass.STATIC, 0.65, InfractionKind.COLLISION_STATIC),
        (AgentClass.CYCLIST, 0.60, InfractionKind.COLLISION_VEHICLE),
    ],
)
def test_collision_classes(
    town: RoadMap, route: RoutePlan, cls: AgentClass, penalty: float, kind: InfractionKind
) -> None:
    ev = evaluator(town, route)
    x, y = at(route, 50.0)
    other = agent(3, x, y, cls, size=(0.6, 0.6, 1.8))
    run(ev, along(route, 5.0, s1=70.0), lambda _: GroundTruth(agents=(other,)))
    result = ev.finish()
    assert [i.kind for i in result.infractions] == [kind]
    assert result.infraction_penalty == pytest.approx(penalty)


def test_static_obstacle_collision_and_height(town: RoadMap, route: RoutePlan) -> None:
    ev = evaluator(town, route)
    x, y = at(route, 50.0)
    pole = StaticObstacle(Box3D(x, y, 2.0, 0.0, 0.4, 0.4, 4.0), "pole")
    sign_above = StaticObstacle(Box3D(*at(route, 30.0), 5.0, 0.0, 0.4, 3.0, 0.5), "gantry")
    run(ev, along(route, 5.0, s1=70.0), statics=lambda _: (pole, sign_above))
    result = ev.finish()
    assert [i.kind for i in result.infractions] == [InfractionKind.COLLISION_STATIC]
    assert "type=static.pole" in result.infractions[0].message
    assert result.infraction_penalty == pytest.approx(0.65)


def test_collisions_with_two_actors_multiply(town: RoadMap, route: RoutePlan) -> None:
    ev = evaluator(town, route)
    first = agent(1, *at(route, 40.0))
    second = agent(2, *at(route, 60.0), AgentClass.PEDESTRIAN, size=(0.6, 0.6, 1.8))
    run(ev, along(route, 5.0, s1=80.0), lambda _: GroundTruth(agents=(first, second)))
    result = ev.finish()
    assert result.count(InfractionKind.COLLISION_VEHICLE) == 1
    assert result.count(InfractionKind.COLLISION_PEDESTRIAN) == 1
    assert result.infraction_penalty == pytest.approx(0.60 * 0.50)


def test_collision_deduplication_rules(town: RoadMap, route: RoutePlan) -> None:
    """The leaderboard's rules: same actor within 5 s, or within 5 m of the last collision."""
    x, y = at(route, 3.0)
    ego_at = Tick(0.0, x, y, speed=1.0)

    def contacts(
        schedule: Sequence[tuple[float, tuple[AgentState, ...]]],
    ) -> RouteResult:
        ev = evaluator(town, route)
        for t, agents in schedule:
            tick = Tick(t, ego_at.x, ego_at.y, speed=1.0)
            ev.update(t, ego_state(tick), ego_box(tick), GroundTruth(agents=agents))
        return ev.finish()

    touching_a = (agent(1, ego_at.x + 4.0, y),)
    touching_b = (agent(2, ego_at.x + 4.0, y),)
    apart: tuple[AgentState, ...] = ()
    # the same actor touches twice, 2 s apart: once
    assert len(contacts([(0.0, touching_a), (1.0, apart), (2.0, touching_a)]).infractions) == 1
    # another actor at the same place: once (within 5 m of the last collision)
    assert len(contacts([(0.0, touching_a), (1.0, apart), (2.0, touching_b)]).infractions) == 1
    # a long continuous contact stays one collision, even after 5 s
    steady = [(0.5 * k, touching_a) for k in range(30)]
    assert len(contacts(steady).infractions) == 1


def test_collisions_far_apart_count_again(town: RoadMap, route: RoutePlan) -> None:
    ticks = along(route, 10.0)

    def toucher(ids: dict[float, int]) -> World:
        def world(tick: Tick) -> GroundTruth:
            for t, track_id in ids.items():
                if abs(tick.t - t) < 1e-6:
                    return GroundTruth(agents=(agent(track_id, tick.x + 4.0, tick.y),))
            return GroundTruth()

        return world

    # the same actor 3 s and 30 m later: the leaderboard's id rule keeps it one collision
    ev = evaluator(town, route)
    run(ev, ticks, toucher({2.0: 1, 5.0: 1}))
    assert ev.finish().count(InfractionKind.COLLISION_VEHICLE) == 1
    # another actor 30 m later: two collisions, penalties multiply
    ev = evaluator(town, route)
    run(ev, ticks, toucher({2.0: 1, 5.0: 2}))
    result = ev.finish()
    assert result.count(InfractionKind.COLLISION_VEHICLE) == 2
    assert result.infraction_penalty == pytest.approx(0.36)
    # the same actor again after more than 5 s, far away: counts again
    ev = evaluator(town, route)
    run(ev, ticks, toucher({2.0: 1, 7.5: 1}))
    assert ev.finish().count(InfractionKind.COLLISION_VEHICLE) == 2


# ----------------------------------------------------------------------------------------------
# Red lights and stop signs
# ----------------------------------------------------------------------------------------------


def _stop_line(town: RoadMap, route: RoutePlan) -> tuple[np.ndarray, int, float]:
    """The stop line at the end of the route's first lane, its lane index and its route s."""
    x, y = at(route, 10.0)
    lane = town.lanes[town.project(x, y, heading=0.0)[0].lane]
    end = lane.centerline[-1, :2]
    heading = float(lane.headings[-1])
    normal = np.array([-math.sin(heading), math.cos(heading)])
    half = 0.4 * float(lane.widths[-1])
    line = np.stack([end - half * normal, end + half * normal])
    s = float(np.interp(end[0], route.path[:, 0], route.s))
    return line, lane.index, s


def _light(
    line: np.ndarray, color: TrafficLightColor, lanes: tuple[int, ...] = ()
) -> TrafficLightState:
    mid = line.mean(axis=0)
    return TrafficLightState(
        light_id=11,
        color=color,
        position=(float(mid[0]), float(mid[1]) - 3.0, 3.0),
        stop_line=line,
        affected_lane_ids=lanes,
    )


@pytest.mark.parametrize("name_lanes", [True, False])
def test_running_a_red_light_is_one_infraction(
    town: RoadMap, route: RoutePlan, name_lanes: bool
) -> None:
    line, lane, s_line = _stop_line(town, route)
    light = _light(line, TrafficLightColor.RED, (lane,) if name_lanes else ())
    ev = evaluator(town, route)
    run(ev, along(route, 1.0, s1=s_line + 20.0), lambda _: GroundTruth((), (light,)))
    result = ev.finish()
    assert [i.kind for i in result.infractions] == [InfractionKind.RED_LIGHT]
    assert result.infraction_penalty == pytest.approx(0.70)
    assert "ran a red light 11" in result.infractions[0].message


def _shows(light: TrafficLightState) -> World:
    def world(_: Tick) -> GroundTruth:
        return GroundTruth((), (light,))

    return world


def test_red_light_needs_red_and_the_egos_lane(town: RoadMap, route: RoutePlan) -> None:
    line, lane, s_line = _stop_line(town, route)
    ticks = along(route, 1.0, s1=s_line + 20.0)
    for light in (
        _light(line, TrafficLightColor.GREEN, (lane,)),
        _light(line, TrafficLightColor.YELLOW, (lane,)),
        _light(line, TrafficLightColor.RED, (lane + 1,)),  # controls another lane
    ):
        ev = evaluator(town, route)
        run(ev, ticks, _shows(light))
        assert ev.finish().infractions == ()


def test_stopping_at_a_red_light_then_going_on_green(town: RoadMap, route: RoutePlan) -> None:
    line, lane, s_line = _stop_line(town, route)
    stop_s = s_line - 1.0 - 0.5 * PROFILE.length  # front bumper 1 m before the line
    approach = along(route, 1.0, s1=stop_s)
    wait = [Tick(approach[-1].t + 0.5 * k, *at(route, stop_s)) for k in range(1, 40)]
    go = along(route, 1.0, s0=stop_s, s1=s_line + 20.0, t0=wait[-1].t + 0.1)

    def world(tick: Tick) -> GroundTruth:
        color = TrafficLightColor.GREEN if tick.t >= go[0].t else TrafficLightColor.RED
        return GroundTruth((), (_light(line, color, (lane,)),))

    ev = evaluator(town, route)
    run(ev, approach + wait + go, world)
    assert ev.finish().infractions == ()


def test_stop_sign_must_be_stopped_at(town: RoadMap, route: RoutePlan) -> None:
    line, _, s_line = _stop_line(town, route)
    sign = StopSign("stop-1", line, heading=0.0)
    through = along(route, 5.0, s1=s_line + 20.0)
    ev = evaluator(town, route, stop_signs=(sign,))
    run(ev, through)
    result = ev.finish()
    assert [i.kind for i in result.infractions] == [InfractionKind.STOP_SIGN]
    assert result.infraction_penalty == pytest.approx(0.80)

    stop_s = s_line - 0.5 * PROFILE.length
    approach = along(route, 2.0, s1=stop_s)
    halt = [Tick(approach[-1].t + 0.1 * k, *at(route, stop_s), speed=0.0) for k in range(1, 5)]
    leave = along(route, 2.0, s0=stop_s, s1=s_line + 20.0, t0=halt[-1].t + 0.1)
    ev = evaluator(town, route, stop_signs=(sign,))
    run(ev, approach + halt + leave)
    assert ev.finish().infractions == ()


# ----------------------------------------------------------------------------------------------
# Outside route lanes, deviation, blocked, timeout, crash
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["off_road", "opposite_lane"])
def test_driving_outside_route_lanes_costs_its_share(
    town: RoadMap, route: RoutePlan, where: str
) -> None:
    offset = -6.0 if where == "off_road" else 3.5  # right of the road / the oncoming lane

    def lateral(s: float) -> float:
        return offset if 10.0 <= s < 40.0 else 0.0

    ev = evaluator(town, route)
    assert run(ev, along(route, 10.0, lateral=lateral)) is RouteStatus.COMPLETED
    result = ev.finish()
    assert result.count(InfractionKind.OUTSIDE_ROUTE_LANES) == 1
    share = 100.0 * 30.0 / route.length
    assert result.outside_route_lanes_percent == pytest.approx(share, abs=2.5)
    assert result.outside_route_lanes_m == pytest.approx(30.0, abs=2.5)
    assert result.route_completion == 100.0
    assert result.infraction_penalty == pytest.approx(
        1.0 - result.outside_route_lanes_percent / 100
    )
    assert result.driving_score == pytest.approx(100.0 - result.outside_route_lanes_percent)
    record = result.to_json()
    assert record["kaido"]["route_completion_on_route_lanes"] == pytest.approx(result.driving_score)
    meters = float(record["infractions"]["outside_route_lanes"][0].split(" ")[8])
    assert meters == pytest.approx(result.outside_route_lanes_m, abs=1e-3)


def test_route_deviation_ends_the_route(town: RoadMap, route: RoutePlan) -> None:
    ev = evaluator(town, route)
    ticks = along(route, 10.0, s1=20.0)
    x, y = at(route, 20.0)
    veer = [Tick(ticks[-1].t + 0.2 * k, x, y + 2.0 * k, math.pi / 2, 10.0) for k in range(1, 30)]
    assert run(ev, ticks + veer) is RouteStatus.FAILED
    assert ev.status is RouteStatus.FAILED
    # updates after the end change nothing
    last = Tick(100.0, x, y)
    assert ev.update(100.0, ego_state(last), ego_box(last), GroundTruth()) is RouteStatus.FAILED
    result = ev.finish()
    assert result.status == "Failed - Agent deviated from the route"
    assert result.count(InfractionKind.ROUTE_DEVIATION) == 1
    deviation = next(i for i in result.infractions if i.kind is InfractionKind.ROUTE_DEVIATION)
    assert deviation.location[1] - y == pytest.approx(30.0, abs=2.0)
    assert result.route_completion < 25.0
    assert result.infraction_penalty == pytest.approx(1.0)  # deviation carries no factor
    with pytest.raises(RuntimeError, match="after finish"):
        ev.update(101.0, ego_state(last), ego_box(last), GroundTruth())


def test_blocked_for_180_s_ends_the_route(town: RoadMap, route: RoutePlan) -> None:
    x, y = at(route, 5.0)
    ev = evaluator(town, route)
    assert run(ev, [Tick(0.5 * k, x, y) for k in range(361)]) is RouteStatus.RUNNING  # to 180 s
    assert run(ev, [Tick(180.5, x, y)]) is RouteStatus.FAILED
    result = ev.finish()
    assert result.status == "Failed - Agent got blocked"
    assert [i.kind for i in result.infractions] == [InfractionKind.AGENT_BLOCKED]
    assert result.infractions[0].message.startswith("Agent got blocked at (x=")
    # creeping above 0.1 m/s resets the clock
    ev = evaluator(town, route)
    ticks = [Tick(0.5 * k, x, y, speed=0.2 if k % 200 == 0 else 0.0) for k in range(500)]
    assert run(ev, ticks) is RouteStatus.RUNNING


def test_timeout_and_crash_statuses(town: RoadMap, route: RoutePlan) -> None:
    ticks = along(route, 10.0, s1=30.0)
    ev = evaluator(town, route)
    run(ev, ticks)
    result = ev.finish(timed_out=True)
    assert result.status == "Failed - Agent timed out"
    assert result.infraction_messages()["route_timeout"] == ["Route timeout."]
    assert result.infraction_penalty == 1.0
    assert 0.0 < result.driving_score == result.route_completion < 40.0

    ev = evaluator(town, route)
    run(ev, ticks)
    assert ev.finish(crashed="agent error: ValueError: x").status == "Failed - Agent crashed"
    ev = evaluator(town, route)
    run(ev, ticks)
    crashed = ev.finish(crashed="simulation lost its SUMO connection")
    assert crashed.status == "Failed - Simulation crashed"
    summary = global_results([crashed])
    assert summary["entry_status"] == "Crashed" and summary["eligible"] is False


# ----------------------------------------------------------------------------------------------
# Minimum speed, emergency vehicles, scenario timeouts
# ----------------------------------------------------------------------------------------------


def test_minimum_speed_against_surrounding_traffic(town: RoadMap, route: RoutePlan) -> None:
    def traffic(speed: float) -> World:
        def world(tick: Tick) -> GroundTruth:
            # a vehicle 15 m ahead in the oncoming lane, always at ``speed``
            other = agent(5, tick.x + 15.0, tick.y + 3.5, yaw=math.pi, velocity=(-speed, 0.0))
            return GroundTruth(agents=(other,))

        return world

    ev = evaluator(town, route)
    assert run(ev, along(route, 5.0), traffic(10.0)) is RouteStatus.COMPLETED
    result = ev.finish()
    slow = [i for i in result.infractions if i.kind is InfractionKind.MIN_SPEED]
    assert len(slow) == 4  # one per quarter of the route
    assert all(i.value == pytest.approx(50.0) for i in slow)
    assert result.infraction_penalty == pytest.approx(0.85**4)
    assert result.status == "Completed"

    ev = evaluator(town, route)
    run(ev, along(route, 10.0), traffic(8.0))
    assert ev.finish().infractions == ()  # faster than the traffic


def test_emergency_vehicle_and_scenario_timeout_hooks(town: RoadMap, route: RoutePlan) -> None:
    ticks = along(route, 5.0, s1=40.0)

    def ev_behind(tick: Tick) -> GroundTruth:
        return GroundTruth(agents=(agent(9, tick.x - 12.0, tick.y, velocity=(5.0, 0.0)),))

    def ev_passed(tick: Tick) -> GroundTruth:
        return GroundTruth(agents=(agent(9, tick.x + 12.0, tick.y, velocity=(5.0, 0.0)),))

    for world, expected in ((ev_behind, 1), (ev_passed, 0)):
        evl = evaluator(town, route)
        evl.watch_emergency_vehicle(9)
        run(evl, ticks, world)
        result = evl.finish()
        assert result.count(InfractionKind.YIELD_EMERGENCY) == expected
        assert result.infraction_penalty == pytest.approx(0.7**expected)

    evl = evaluator(town, route)
    run(evl, ticks)
    evl.report_scenario_timeout(ticks[-1].t, "ParkingExit")
    result = evl.finish()
    assert result.count(InfractionKind.SCENARIO_TIMEOUT) == 1
    assert result.infraction_penalty == pytest.approx(0.70)


# ----------------------------------------------------------------------------------------------
# Comfort, Savitzky-Golay, time to collision
# ----------------------------------------------------------------------------------------------


def _savgol_reference(
    y: np.ndarray, window: int, order: int, deriv: int, delta: float
) -> np.ndarray:
    """Per-sample least-squares polynomial fit (the definition), edges from the end windows."""
    n, half = len(y), window // 2
    out = np.empty(n)
    for i in range(n):
        lo = min(max(i - half, 0), n - window)
        x = np.arange(lo, lo + window, dtype=float)
        poly = np.polynomial.Polynomial.fit(x, y[lo : lo + window], order)
        out[i] = poly.deriv(deriv)(float(i)) / delta**deriv if deriv else poly(float(i))
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=1, max_value=7),
    st.integers(min_value=0, max_value=4),
    st.integers(min_value=0, max_value=3),
    st.integers(min_value=0, max_value=2**31 - 1),
)
def test_savgol_matches_the_least_squares_definition(
    half: int, order: int, deriv: int, seed: int
) -> None:
    window = 2 * half + 1
    order = min(order, window - 1)
    y = np.random.default_rng(seed).normal(size=window + 9)
    got = savgol_filter(y, window, order, deriv=deriv, delta=0.1)
    if deriv > order:
        assert np.all(got == 0.0)
        return
    np.testing.assert_allclose(got, _savgol_reference(y, window, order, deriv, 0.1), atol=1e-6)


def test_savgol_is_exact_on_polynomials() -> None:
    t = np.linspace(0.0, 3.0, 31)
    y = 2.0 - t + 0.5 * t**2
    np.testing.assert_allclose(savgol_filter(y, 7, 2, deriv=1, delta=0.1), -1.0 + t, atol=1e-9)
    with pytest.raises(ValueError, match="odd"):
        savgol_filter(y, 8, 2)


def test_comfort_flags_a_hard_brake() -> None:
    t = np.arange(0.0, 6.0, 0.05)
    steady, ok = comfort_metrics(t, np.zeros_like(t), np.zeros((len(t), 2)))
    assert ok and steady["all_within_bounds"] == 1.0
    brake = np.where((t >= 2.0) & (t < 4.0), -7.0, 0.0)  # 7 m/s² for 2 s
    values, ok = comfort_metrics(t, np.zeros_like(t), np.stack([brake, 0 * brake], axis=1))
    assert not ok
    assert values["lon_acceleration_min"] < -6.5
    assert 0.55 < values["lon_acceleration_within_bounds"] < 0.8
    assert values["lon_jerk_within_bounds"] < 1.0  # the step in deceleration
    assert values["lat_acceleration_within_bounds"] == 1.0
    # a gentle brake is comfortable
    _, ok = comfort_metrics(t, np.zeros_like(t), np.stack([0.3 * brake, 0 * brake], axis=1))
    assert ok


def test_comfort_yaw_rate_from_heading() -> None:
    t = np.arange(0.0, 4.0, 0.05)
    values, ok = comfort_metrics(t, 1.2 * t, np.zeros((len(t), 2)))  # 1.2 rad/s, wraps
    assert not ok
    assert values["yaw_rate_min"] == pytest.approx(1.2, abs=1e-6)
    assert values["yaw_rate_within_bounds"] == 0.0
    values, ok = comfort_metrics(t, 0.5 * t, np.zeros((len(t), 2)))
    assert ok and values["yaw_acceleration_max"] == pytest.approx(0.0, abs=1e-6)


def test_time_to_collision_projection() -> None:
    ego = np.array([0.0, 0.0, 0.0, 4.85, 1.85])
    ahead = np.array([[20.0, 0.0, 0.0, 4.5, 1.8]])
    gap = 20.0 - 0.5 * (4.85 + 4.5)  # 15.325 m
    ttc = time_to_collision(ego, [10.0, 0.0], ahead, [[0.0, 0.0]], horizon=3.0, step=0.1)
    assert ttc == pytest.approx(math.ceil(gap / 10.0 / 0.1) * 0.1)
    beside = np.array([[20.0, 3.5, 0.0, 4.5, 1.8]])
    assert time_to_collision(ego, [10.0, 0.0], beside, [[0.0, 0.0]], horizon=3.0, step=0.1) == (
        math.inf
    )
    away = time_to_collision(ego, [10.0, 0.0], ahead, [[12.0, 0.0]], horizon=3.0, step=0.1)
    assert away == math.inf


def test_ttc_violations_on_a_route(town: RoadMap, route: RoutePlan) -> None:
    x, y = at(route, 60.0)
    parked = agent(4, x, y)
    behind = agent(6, 0.0, 0.0, velocity=(20.0, 0.0))

    def world(tick: Tick) -> GroundTruth:
        chaser = agent(6, tick.x - 8.0, tick.y, velocity=(20.0, 0.0))  # fast, but behind
        return GroundTruth(agents=(parked, chaser if tick.t > 0 else behind))

    ev = evaluator(town, route)
    run(ev, along(route, 10.0, s1=x - 6.0 - route.path[0, 0]), world)
    result = ev.finish()
    assert result.ttc_min_s is not None and result.ttc_min_s < 0.95
    assert result.ttc_violations >= 3
    ev = evaluator(town, route)
    run(ev, along(route, 10.0, s1=40.0), world)
    assert ev.finish().ttc_violations == 0  # far from the parked car; the chaser is behind


# ----------------------------------------------------------------------------------------------
# Global statistics and the results document
# ----------------------------------------------------------------------------------------------


def _result(
    route_id: str, rc: float, ip: float, length: float = 1000.0, **kw: object
) -> RouteResult:
    return RouteResult(
        route_id=route_id,
        status=kw.pop("status", "Perfect"),  # type: ignore[arg-type]
        driving_score=rc * ip,
        route_completion=rc,
        infraction_penalty=ip,
        infractions=kw.pop("infractions", ()),  # type: ignore[arg-type]
        duration_game_s=10.0,
        route_length_m=length,
        distance_driven_m=length * rc / 100.0,
        **kw,  # type: ignore[arg-type]
    )


def test_global_driving_score_is_the_mean_of_route_scores() -> None:
    a = _result("a", 100.0, 1.0)
    b = _result("b", 62.5, 0.8, status="Failed - Agent timed out")
    record = global_results([a, b])["global_record"]
    assert record["scores_mean"]["score_composed"] == pytest.approx(75.0)
    mean_rc, mean_ip = record["scores_mean"]["score_route"], record["scores_mean"]["score_penalty"]
    assert mean_rc * mean_ip == pytest.approx(73.125)  # not what the leaderboard reports
    assert record["status"] == "Failed"
    assert record["meta"]["exceptions"] == [["b", 1, "Failed - Agent timed out"]]
    assert record["scores_std_dev"]["score_composed"] == pytest.approx(
        math.sqrt(2 * 25.0**2), abs=1e-3
    )


def test_global_infractions_per_km_driven() -> None:
    hit = Infraction(InfractionKind.COLLISION_VEHICLE, 1.0, (0.0, 0.0), 1, "hit")
    a = _result("a", 100.0, 0.6, length=1000.0, infractions=(hit,), status="Completed")
    b = _result("b", 50.0, 0.6, length=500.0, infractions=(hit,), status="Failed")
    summary = global_results([a, b])
    km = 1.0 + 0.25
    assert summary["global_record"]["infractions"]["collisions_vehicle"] == pytest.approx(2 / km)
    assert summary["global_record"]["infractions"]["red_light"] == 0.0
    assert summary["progress"] == [2, 2]
    assert summary["entry_status"] == "Finished" and summary["eligible"] is True


def test_two_routes_through_the_evaluator(town: RoadMap, route: RoutePlan) -> None:
    clean = evaluator(town, route, route_id="clean")
    run(clean, along(route, 10.0))
    walker = agent(2, *at(route, 50.0), AgentClass.PEDESTRIAN, size=(0.6, 0.6, 1.8))
    hit = evaluator(town, route, route_id="hit")
    run(hit, along(route, 10.0), lambda _: GroundTruth(agents=(walker,)))
    results = [clean.finish(), hit.finish()]
    assert [r.driving_score for r in results] == [100.0, 50.0]
    summary = global_results(results)
    assert summary["global_record"]["scores_mean"]["score_composed"] == pytest.approx(75.0)
    assert summary["global_record"]["status"] == "Completed"


def test_results_document_has_the_leaderboard_shape(town: RoadMap, route: RoutePlan) -> None:
    done = evaluator(town, route, route_id="done")
    run(done, along(route, 10.0))
    empty = evaluator(town, route, route_id="empty")  # never updated: NaN comfort values
    results = [done.finish(), empty.finish(crashed="sensors: missing lidar")]
    doc = results_document(
        results, provenance={"git": {"commit": "abc"}}, config={"seed": 0, "nan": math.nan}
    )
    text = json.dumps(doc, allow_nan=False)
    assert "NaN" not in text
    assert set(doc) == {
        "_checkpoint",
        "entry_status",
        "eligible",
        "sensors",
        "values",
        "labels",
        "kaido",
    }
    assert set(doc["_checkpoint"]) == {"global_record", "progress", "records"}
    assert doc["entry_status"] == "Rejected" and doc["eligible"] is False
    assert len(doc["values"]) == len(doc["labels"]) == len(GLOBAL_LABELS) == 15
    assert all(isinstance(v, str) for v in doc["values"])
    first, second = doc["_checkpoint"]["records"]
    assert [first["index"], second["index"]] == [0, 1]
    assert set(first) >= {"index", "route_id", "status", "infractions", "scores", "meta"}
    assert set(first["scores"]) == {"score_route", "score_penalty", "score_composed"}
    assert set(first["meta"]) == {"route_length", "duration_game", "duration_system"}
    assert set(first["infractions"]) == {kind.key for kind in InfractionKind}
    assert second["status"] == "Failed - Agent's sensors were invalid"
    assert second["kaido"]["comfort"]["lon_acceleration_min"] is None
    assert doc["kaido"]["metric_version"] == METRIC_VERSION
    assert doc["kaido"]["config"]["nan"] is None
    assert doc["kaido"]["provenance"] == {"git": {"commit": "abc"}}
    # a kaido record reads back
    back = RouteResult.from_json(json.loads(json.dumps(first)))
    assert back.driving_score == results[0].driving_score
    assert back.infractions == results[0].infractions
    assert back.comfort == pytest.approx(dict(results[0].comfort))
