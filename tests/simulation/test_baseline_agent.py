"""The ground-truth baseline driver, closed loop with the embedded simulator's bicycle model."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from kaido.scene.agents import AgentClass, AgentState, Control, EgoState
from kaido.scene.frame import Frame, GroundTruth, TrafficLightColor, TrafficLightState
from kaido.scene.geometry import SE2, Box3D
from kaido.scene.road_map import RoadMap
from kaido.scene.route_planner import RoutePlan
from kaido.scene.sensors import SensorRig
from kaido.scene.town_generator import TownSpec, generate_town
from kaido.scene.vehicle import VehicleProfile
from kaido.simulation.agents import (
    AGENTS,
    DrivingAgent,
    agent_names,
    make_agent,
    register_agent,
)
from kaido.simulation.backend import Observation
from kaido.simulation.baseline_agent import BaselineAgent, BaselineConfig
from kaido.simulation.embedded.dynamics import BicycleDynamics

pytest.importorskip("carla")

PROFILE = VehicleProfile()
DT = 0.05
RIG = SensorRig()
FRONT = PROFILE.length - PROFILE.rear_overhang
"""[m] rear axle to front bumper."""


@pytest.fixture(scope="module")
def town() -> RoadMap:
    return RoadMap.from_opendrive(generate_town(TownSpec(rows=3, cols=3, seed=0, name="t")), "t")


@pytest.fixture(scope="module")
def long_town() -> RoadMap:
    spec = TownSpec(rows=2, cols=3, block_length=200.0, block_jitter=0.0, seed=0, name="long")
    return RoadMap.from_opendrive(generate_town(spec), "long")


def straight_route(road_map: RoadMap) -> RoutePlan:
    """The longest straight route between two spawn points with the same heading."""
    spawns = road_map.spawn_points(spacing=10.0)
    best: RoutePlan | None = None
    east = spawns[np.abs(spawns[:, 2]) < 0.01]
    for y in np.unique(np.round(east[:, 1], 1)):
        row = east[np.abs(east[:, 1] - y) < 0.05]
        a, b = row[np.argmin(row[:, 0])], row[np.argmax(row[:, 0])]
        plan = road_map.plan_route(np.stack([a[:2], b[:2]]), yaws=np.array([a[2], b[2]]))
        if best is None or plan.length > best.length:
            best = plan
    assert best is not None and best.length > 300.0
    assert np.ptp(best.path[:, 1]) < 0.1, "the route should be straight"
    return best


def turning_route(road_map: RoadMap, start: int, goal: int) -> RoutePlan:
    spawns = road_map.spawn_points(spacing=20.0)
    plan = road_map.plan_route(spawns[[start, goal], :2], yaws=spawns[[start, goal], 2])
    turn = np.abs(np.diff(np.unwrap(plan.path[:, 2]))).sum()
    assert turn > math.radians(150), "the route should turn"
    return plan


def path_pose(route: RoutePlan, s: float) -> np.ndarray:
    """[x, y, yaw] on the route path at arc length s (extended straight beyond its end)."""
    inside = min(max(s, 0.0), route.length)
    x = np.interp(inside, route.s, route.path[:, 0])
    y = np.interp(inside, route.s, route.path[:, 1])
    yaw = np.interp(inside, route.s, np.unwrap(route.path[:, 2]))
    over = s - inside
    return np.array([x + over * math.cos(yaw), y + over * math.sin(yaw), yaw])


def observation(
    route: RoutePlan, ego: EgoState, box: Box3D, truth: GroundTruth, k: int
) -> Observation:
    frame = Frame(ego.timestamp_ns, ego, {}, {}, RIG, truth)
    return Observation(frame=frame, ego_box=box, route=route, step=k, sim_time_s=k * DT)


@dataclass
class Record:
    t: float
    speed: float
    route_s: float
    lateral: float
    control: Control
    box: Box3D
    truth: GroundTruth


World = Callable[[float], GroundTruth]


def drive(
    road_map: RoadMap,
    route: RoutePlan,
    seconds: float,
    world: World | None = None,
    agent: BaselineAgent | None = None,
    start_speed: float = 0.0,
) -> tuple[BaselineAgent, BicycleDynamics, list[Record]]:
    agent = agent or BaselineAgent()
    agent.setup(road_map=road_map, route=route, profile=PROFILE, dt=DT)
    dyn = BicycleDynamics(PROFILE)
    dyn.reset(SE2(*route.path[0]), start_speed)
    records: list[Record] = []
    for k in range(round(seconds / DT)):
        t = k * DT
        truth = world(t) if world is not None else GroundTruth()
        ego = dyn.ego_state(round(t * 1e9))
        control = agent.run_step(observation(route, ego, dyn.ego_box(), truth, k))
        records.append(
            Record(
                t,
                dyn.state.speed,
                agent.route_s,
                agent.lateral_error,
                control,
                dyn.ego_box(),
                truth,
            )
        )
        dyn.step(control, DT)
    return agent, dyn, records


def box_on_path(
    route: RoutePlan, s: float, length: float, width: float, lateral: float = 0.0
) -> Box3D:
    x, y, yaw = path_pose(route, s)
    return Box3D(
        x - lateral * math.sin(yaw), y + lateral * math.cos(yaw), 0.8, yaw, length, width, 1.6
    )


def collided(records: list[Record]) -> bool:
    return any(r.box.overlaps(a.box) for r in records for a in r.truth.agents)


def test_lane_keeping_closed_loop_on_a_route_with_turns(town: RoadMap) -> None:
    for start, goal in ((6, 2), (25, 60)):
        route = turning_route(town, start, goal)
        _, dyn, records = drive(town, route, 90.0)
        lateral = np.abs([r.lateral for r in records])
        assert lateral.max() < 0.6
        corners = np.concatenate([r.box.footprint().corners() for r in records])
        assert town.on_road(corners).all(), "the ego left the drivable area"
        # it drove the route to its end and stopped there
        assert records[-1].route_s == pytest.approx(route.length, abs=1.0)
        assert dyn.state.speed == pytest.approx(0.0, abs=1e-6)
        assert records[-1].control.brake > 0 and records[-1].control.throttle == 0
        speeds = np.array([r.speed for r in records])
        assert speeds.max() <= route.speed_limits.max() + 0.5
        # never throttle and brake together
        assert not any(r.control.throttle > 0 and r.control.brake > 0 for r in records)


def test_slows_down_for_curves(town: RoadMap) -> None:
    route = turning_route(town, 6, 2)
    agent, _, records = drive(town, route, 60.0)
    cfg = agent.config
    assert agent.route_path is not None
    curvature = np.interp([r.route_s for r in records], route.s, agent.route_path.curvature)
    lateral_accel = np.array([r.speed**2 for r in records]) * np.abs(curvature)
    assert lateral_accel.max() < cfg.max_lateral_accel * 1.3
    assert np.abs(curvature).max() > 0.05  # the route has tight corners


def test_follows_a_slower_leader_at_the_idm_gap(long_town: RoadMap) -> None:
    route = straight_route(long_town)
    v_lead, s_lead0 = 8.0, 30.0
    lead_len, lead_width = 4.6, 1.9

    def world(t: float) -> GroundTruth:
        s = s_lead0 + v_lead * t
        yaw = path_pose(route, s)[2]
        box = box_on_path(route, s, lead_len, lead_width)
        velocity = (v_lead * math.cos(yaw), v_lead * math.sin(yaw))
        return GroundTruth(agents=(AgentState(7, AgentClass.VEHICLE, box, velocity, 0),))

    agent, _, records = drive(long_town, route, 30.0, world, start_speed=10.0)
    assert not collided(records)
    cfg = agent.config
    gaps = np.array(
        [s_lead0 + v_lead * r.t - 0.5 * lead_len - (r.route_s + FRONT) for r in records]
    )
    assert gaps.min() > cfg.idm_min_gap
    last = [i for i, r in enumerate(records) if r.t >= 25.0]
    speeds = np.array([records[i].speed for i in last])
    assert np.abs(speeds - v_lead).max() < 0.3
    desired = cfg.idm_min_gap + v_lead * cfg.idm_time_headway
    assert gaps[last].mean() == pytest.approx(desired, rel=0.1)
    # IDM's equilibrium behind a leader slower than the desired speed v0
    v0 = route.speed_limits[0]
    equilibrium = desired / math.sqrt(1.0 - (v_lead / v0) ** cfg.idm_exponent)
    assert gaps[last].mean() == pytest.approx(equilibrium, rel=0.02)
    assert np.ptp(gaps[last]) < 0.3
    assert isinstance(agent.last_constraint, tuple) and agent.last_constraint.kind == "vehicle"


def test_stops_behind_a_stopped_vehicle(long_town: RoadMap) -> None:
    route = straight_route(long_town)
    box = box_on_path(route, 120.0, 4.6, 1.9)

    def world(t: float) -> GroundTruth:
        return GroundTruth(agents=(AgentState(3, AgentClass.VEHICLE, box, (0.0, 0.0), 0),))

    _, dyn, records = drive(long_town, route, 40.0, world)
    assert not collided(records)
    gap = 120.0 - 2.3 - (records[-1].route_s + FRONT)
    assert 0.5 < gap < 5.0
    assert dyn.state.speed == 0.0


def red_light(
    route: RoutePlan, s: float, color: TrafficLightColor, half: float = 1.75
) -> TrafficLightState:
    x, y, yaw = path_pose(route, s)
    normal = np.array([-math.sin(yaw), math.cos(yaw)])
    line = np.stack([np.array([x, y]) - half * normal, np.array([x, y]) + half * normal])
    return TrafficLightState("L1", color, (x, y, 5.0), stop_line=line)


def test_stops_before_a_red_lights_stop_line_and_goes_on_green(long_town: RoadMap) -> None:
    route = straight_route(long_town)
    s_line = 90.0

    def world(t: float) -> GroundTruth:
        color = TrafficLightColor.RED if t < 30.0 else TrafficLightColor.GREEN
        return GroundTruth(traffic_lights=(red_light(route, s_line, color),))

    _, _, records = drive(long_town, route, 40.0, world)
    stopped = [r for r in records if 20.0 <= r.t < 30.0]
    for r in stopped:
        assert r.speed == 0.0
        assert 0.5 <= s_line - (r.route_s + FRONT) <= 5.0
        assert r.control.brake > 0 and r.control.throttle == 0
    front = np.array([r.route_s + FRONT for r in records if r.t < 30.0])
    assert front.max() < s_line, "the bumper crossed the stop line on red"
    assert records[-1].speed > 2.0 and records[-1].route_s + FRONT > s_line


def test_plan_follows_the_route_and_respects_the_stop(long_town: RoadMap) -> None:
    route = straight_route(long_town)
    s_line = 60.0

    def world(t: float) -> GroundTruth:
        return GroundTruth(traffic_lights=(red_light(route, s_line, TrafficLightColor.RED),))

    agent = BaselineAgent()
    assert agent.plan() is None
    agent, _, records = drive(long_town, route, 25.0, world, agent)
    plan = agent.plan()
    assert plan is not None
    cfg = agent.config
    assert plan.shape == (round(cfg.plan_horizon / cfg.plan_step), 3)
    # stopped at the light: the planned rear-axle positions stay behind the stop line
    x_line = path_pose(route, s_line)[0]
    assert np.all(plan[:, 0] + FRONT < x_line + 0.5)
    # driving freely, the plan runs ahead along the path at about the speed driven
    agent, _, records = drive(long_town, route, 6.0)
    plan = agent.plan()
    assert plan is not None
    assert np.all(np.diff(plan[:, 0]) > 0) and np.ptp(plan[:, 1]) < 0.1
    ahead = plan[-1, 0] - path_pose(route, records[-1].route_s)[0]
    assert ahead > records[-1].speed * cfg.plan_horizon * 0.9


def test_yellow_light_stops_only_when_comfortable(long_town: RoadMap) -> None:
    route = straight_route(long_town)
    # yellow far ahead: stop
    far = GroundTruth(traffic_lights=(red_light(route, 150.0, TrafficLightColor.YELLOW),))
    _, dyn, records = drive(long_town, route, 40.0, lambda t: far)
    assert dyn.state.speed == 0.0 and records[-1].route_s + FRONT < 150.0
    # yellow appearing just ahead of the bumper at speed: drive through
    agent, _, records = drive(long_town, route, 20.0)
    v = records[-1].speed
    assert v > 10.0
    cfg = agent.config
    decel = 0.5 * (cfg.yellow_max_decel + cfg.red_max_decel)
    s_line = records[-1].route_s + FRONT + v * v / (2 * decel)
    late = GroundTruth(traffic_lights=(red_light(route, s_line, TrafficLightColor.YELLOW),))
    kinds = [c.kind for c in agent.constraints(late, records[-1].route_s, v)]
    assert "yellow_light" not in kinds
    red = GroundTruth(traffic_lights=(red_light(route, s_line, TrafficLightColor.RED),))
    kinds = [c.kind for c in agent.constraints(red, records[-1].route_s, v)]
    assert "red_light" in kinds


def test_stop_lines_off_the_route_are_ignored(long_town: RoadMap) -> None:
    route = straight_route(long_town)
    x, y, _ = path_pose(route, 50.0)
    # a stop line beside the route (the opposite lane) and one parallel to it
    beside = TrafficLightState(
        "B",
        TrafficLightColor.RED,
        (x, y, 5.0),
        stop_line=np.array([[x, y + 2.0], [x, y + 5.5]]),
    )
    parallel = TrafficLightState(
        "P", TrafficLightColor.RED, (x, y, 5.0), stop_line=np.array([[x - 3, y], [x + 3, y]])
    )
    truth = GroundTruth(traffic_lights=(beside, parallel))
    agent = BaselineAgent()
    agent.setup(road_map=long_town, route=route, profile=PROFILE, dt=DT)
    dyn = BicycleDynamics(PROFILE)
    dyn.reset(SE2(*route.path[0]), 0.0)
    agent.run_step(observation(route, dyn.ego_state(0), dyn.ego_box(), truth, 0))
    assert [c.kind for c in agent.constraints(truth, 0.0, 10.0)] == []
    # the same light with its stop line across the route counts
    across = GroundTruth(traffic_lights=(red_light(route, 50.0, TrafficLightColor.RED),))
    found = agent.constraints(across, 0.0, 10.0)
    assert [c.kind for c in found] == ["red_light"]
    assert found[0].gap == pytest.approx(50.0 - FRONT, abs=1e-6)


def test_stops_for_a_pedestrian_in_the_corridor_not_for_one_on_the_sidewalk(
    long_town: RoadMap,
) -> None:
    route = straight_route(long_town)
    s_ped = 70.0

    def pedestrian(lateral: float) -> World:
        box = box_on_path(route, s_ped, 0.5, 0.5, lateral)
        truth = GroundTruth(agents=(AgentState(11, AgentClass.PEDESTRIAN, box, (0.0, 0.0), 0),))
        return lambda t: truth

    _, dyn, records = drive(long_town, route, 30.0, pedestrian(-0.8))
    assert not collided(records)
    assert dyn.state.speed == 0.0
    gap = s_ped - 0.25 - (records[-1].route_s + FRONT)
    assert 0.5 < gap < 5.0
    # on the sidewalk (beyond the lane edge) it does not matter
    _, _, records = drive(long_town, route, 20.0, pedestrian(-4.5))
    assert records[-1].route_s + FRONT > s_ped + 5.0
    assert not collided(records)


def test_steer_sign_follows_carla_convention(long_town: RoadMap) -> None:
    route = straight_route(long_town)
    x, y, yaw = path_pose(route, 30.0)
    for offset, sign in ((-1.0, -1.0), (1.0, 1.0)):
        # the ego right of the path (offset < 0) has its target to the left: steer < 0 (CARLA)
        agent = BaselineAgent()
        agent.setup(road_map=long_town, route=route, profile=PROFILE, dt=DT)
        pose = SE2(x - offset * math.sin(yaw), y + offset * math.cos(yaw), yaw)
        ego = EgoState(0, pose, velocity=(5.0, 0.0))
        box = Box3D(pose.x, pose.y, 0.7, yaw, PROFILE.length, PROFILE.width, PROFILE.height)
        control = agent.run_step(observation(route, ego, box, GroundTruth(), 0))
        assert np.sign(control.steer) == sign
        assert agent.lateral_error == pytest.approx(offset, abs=1e-6)


def test_run_step_needs_setup_and_an_observation(long_town: RoadMap) -> None:
    route = straight_route(long_town)
    agent = BaselineAgent()
    ego = EgoState(0, SE2(*route.path[0]))
    box = Box3D(0, 0, 0.7, 0, PROFILE.length, PROFILE.width, PROFILE.height)
    with pytest.raises(RuntimeError, match="setup"):
        agent.run_step(observation(route, ego, box, GroundTruth(), 0))
    with pytest.raises(ValueError, match="dt"):
        agent.setup(road_map=long_town, route=route, profile=PROFILE, dt=0.0)
    with pytest.raises(TypeError, match="route"):
        agent.setup(road_map=long_town, route=route.path, profile=PROFILE, dt=DT)  # type: ignore[arg-type]
    agent.setup(road_map=long_town, route=route, profile=PROFILE, dt=DT)
    with pytest.raises(TypeError, match="Observation"):
        agent.run_step(ego)  # type: ignore[arg-type]
    agent.destroy()
    with pytest.raises(RuntimeError, match="setup"):
        agent.run_step(observation(route, ego, box, GroundTruth(), 0))
    with pytest.raises(ValueError, match="max_lookahead"):
        BaselineConfig(min_lookahead=10.0, max_lookahead=5.0)


def test_registry_builds_agents_by_name_and_refuses_duplicates() -> None:
    assert "baseline" in agent_names()
    agent = make_agent("baseline", config=BaselineConfig(max_lateral_accel=2.0))
    assert isinstance(agent, BaselineAgent) and agent.config.max_lateral_accel == 2.0
    assert BaselineAgent.name == "baseline"
    before = dict(AGENTS)
    with pytest.raises(ValueError, match="already registered"):

        @register_agent("baseline")
        class Again(DrivingAgent):
            def run_step(self, obs: Observation) -> Control:
                return Control()

    assert AGENTS == before
    with pytest.raises(ValueError, match="baseline"):
        make_agent("no-such-agent")
    with pytest.raises(TypeError, match="DrivingAgent"):
        register_agent("not-an-agent")(int)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="non-empty"):
        register_agent("")
    assert AGENTS == before
