"""SUMO traffic in the embedded simulator: real netconvert and libsumo, no mocks."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import libsumo
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from kaido.scene.agents import AgentClass, AgentState
from kaido.scene.frame import TrafficLightColor
from kaido.scene.geometry import SE2, box2d_overlap, wrap_angle
from kaido.scene.road_map import Lane, LaneType, RoadMap
from kaido.scene.town_generator import TownSpec, generate_town
from kaido.simulation.embedded import traffic as traffic_module
from kaido.simulation.embedded.traffic import (
    SumoError,
    SumoTraffic,
    TrafficConfig,
    VehicleType,
    build_sumo_net,
    crossing_lane_pairs,
    kaido_yaw,
    state_color,
    sumo_angle,
    verify_sumo_net,
)
from tests.conftest import shared_file

DT = 0.1
EGO_LENGTH, EGO_WIDTH, EGO_OVERHANG = 4.85, 1.85, 1.0


@dataclass(frozen=True)
class Town:
    xodr: Path
    net: Path
    road_map: RoadMap
    cache: Path


def _town(tmp: Path, spec: TownSpec) -> Town:
    text = generate_town(spec)
    xodr = tmp / f"{spec.name}.xodr"
    xodr.write_text(text)
    cache = tmp / "cache"
    return Town(
        xodr, build_sumo_net(xodr, cache), RoadMap.from_opendrive(text, name=spec.name), cache
    )


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Town:
    """A 3x3 grid town with one lane per direction and sidewalks."""
    return _town(tmp_path_factory.mktemp("town"), TownSpec(rows=3, cols=3, seed=0, name="t1"))


@pytest.fixture(scope="module")
def town2(tmp_path_factory: pytest.TempPathFactory) -> Town:
    """The same layout with two lanes per direction."""
    spec = TownSpec(rows=3, cols=3, seed=0, name="t2", lanes_per_direction=2)
    return _town(tmp_path_factory.mktemp("town2"), spec)


@pytest.fixture(scope="module")
def town01(tmp_path_factory: pytest.TempPathFactory) -> Town:
    xodr = shared_file("maps/Town01.xodr")
    cache = tmp_path_factory.mktemp("town01")
    return Town(xodr, build_sumo_net(xodr, cache), RoadMap.from_file(xodr), cache)


def _traffic(town: Town, seed: int = 0, **config: float) -> SumoTraffic:
    return SumoTraffic(
        town.road_map,
        town.net,
        TrafficConfig(**config),  # type: ignore[arg-type]
        seed=seed,
        dt=DT,
        ego_length=EGO_LENGTH,
        ego_width=EGO_WIDTH,
        ego_rear_overhang=EGO_OVERHANG,
    )


@pytest.fixture
def quiet(town: Town) -> Iterator[SumoTraffic]:
    """The 1-lane town without background traffic, running."""
    with _traffic(town, density=0.0) as traffic:
        yield traffic


def _agent(traffic: SumoTraffic, track_id: int) -> AgentState:
    found = [a for a in traffic.agents() if a.track_id == track_id]
    assert len(found) == 1, f"track {track_id} not among the agents"
    return found[0]


def _longest_lane(road_map: RoadMap) -> Lane:
    return max(
        (ln for ln in road_map.driving_lanes if not ln.in_junction), key=lambda ln: ln.length
    )


def _lane_km(road_map: RoadMap) -> float:
    return sum(ln.length for ln in road_map.driving_lanes if not ln.in_junction) / 1000.0


def _fronts(agents: tuple[AgentState, ...]) -> dict[int, np.ndarray]:
    return {
        a.track_id: np.array(
            [
                a.box.x + 0.5 * a.box.length * math.cos(a.box.yaw),
                a.box.y + 0.5 * a.box.length * math.sin(a.box.yaw),
            ]
        )
        for a in agents
        if a.agent_class != AgentClass.PEDESTRIAN
    }


# -- frames and colours ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.floats(-math.pi, math.pi - 1e-9))
def test_sumo_angle_round_trip(yaw: float) -> None:
    angle = sumo_angle(yaw)
    assert 0.0 <= angle < 360.0
    assert abs(wrap_angle(kaido_yaw(angle) - yaw)) < 1e-9


def test_sumo_angle_convention() -> None:
    assert sumo_angle(0.0) == pytest.approx(90.0)  # east
    assert sumo_angle(math.pi / 2) == pytest.approx(0.0)  # north
    assert sumo_angle(-math.pi / 2) == pytest.approx(180.0)  # south


def test_state_color() -> None:
    assert state_color("rR") == TrafficLightColor.RED
    assert state_color("yY") == TrafficLightColor.YELLOW
    assert state_color("gG") == TrafficLightColor.GREEN
    assert state_color("oO") == TrafficLightColor.OFF
    assert state_color("Gr") == TrafficLightColor.RED  # most restrictive wins
    assert state_color("gy") == TrafficLightColor.YELLOW


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="density"):
        TrafficConfig(density=-1.0)
    with pytest.raises(ValueError, match="speed_factor_range"):
        TrafficConfig(speed_factor_range=(1.2, 1.0))
    with pytest.raises(ValueError, match="emergency_decel"):
        VehicleType("car", decel=5.0, emergency_decel=4.0)
    with pytest.raises(ValueError, match="duplicate"):
        TrafficConfig(vehicle_types=(VehicleType("car"), VehicleType("car")))


# -- the net -----------------------------------------------------------------------------------


def test_net_is_built_and_cached(town: Town) -> None:
    assert town.net.is_file() and town.net.parent == town.cache
    mtime = town.net.stat().st_mtime_ns
    again = build_sumo_net(town.xodr, town.cache)
    assert again == town.net
    assert again.stat().st_mtime_ns == mtime  # netconvert did not run again
    assert not list(town.cache.glob(".*"))  # no temporary files left behind


def test_net_key_follows_the_file_content(town: Town, tmp_path: Path) -> None:
    other = tmp_path / "t1.xodr"
    other.write_text(town.xodr.read_text().replace('name="t1"', 'name="t1b"', 1))
    assert build_sumo_net(other, town.cache) != town.net


def _count(net: Path, needle: str) -> int:
    return net.read_text().count(needle)


def test_generated_town_gets_lights_and_crossings(town: Town) -> None:
    # a 3x3 grid has 5 junctions (4 T, 1 cross) of one-lane roads
    assert _count(town.net, "<tlLogic ") == len(town.road_map.junctions) == 5
    assert _count(town.net, 'function="crossing"') > 0
    assert _count(town.net, 'allow="pedestrian"') > 0


def test_town01_net(town01: Town) -> None:
    assert _count(town01.net, "<tlLogic ") == 12
    assert _count(town01.net, 'function="crossing"') > 0


def test_town06_lanes_do_not_cross(tmp_path: Path) -> None:
    # netconvert's --geometry.remove merges Town06's road around (-12, 62) into edge -10 with its
    # three lanes crossing (0.4 m apart); the check finds that and the net is built without it
    xodr = shared_file("maps/Town06.xodr")
    merged = tmp_path / "merged.net.xml"
    traffic_module._netconvert(xodr, list(traffic_module.NETCONVERT_OPTIONS), merged)
    bad = crossing_lane_pairs(merged)
    assert bad and all(gap < 1.0 for _, _, gap in bad)
    net = build_sumo_net(xodr, tmp_path / "cache")
    assert crossing_lane_pairs(net) == []
    assert _count(net, "<tlLogic ") == _count(merged, "<tlLogic ") > 0


def test_bad_opendrive_raises_with_netconverts_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xodr"
    bad.write_text("<OpenDRIVE><header")
    with pytest.raises(SumoError, match=r"netconvert failed on .*bad\.xodr.*Error"):
        build_sumo_net(bad, tmp_path / "cache")
    with pytest.raises(SumoError, match="no such OpenDRIVE file"):
        build_sumo_net(tmp_path / "missing.xodr", tmp_path / "cache")


def test_broken_net_raises_with_sumos_message(town: Town, tmp_path: Path) -> None:
    net = tmp_path / "broken.net.xml"
    net.write_text(
        '<net version="1.20">\n<edge id="a" from="x" to="y">\n'
        '<lane id="a_0" index="0" speed="10" length="10" shape="0,0 10,0"/>\n</edge>\n</net>\n'
    )
    with pytest.raises(SumoError, match="Unknown from-node 'x'"):
        verify_sumo_net(net)
    traffic = SumoTraffic(
        town.road_map, net, TrafficConfig(), seed=0, dt=DT, ego_length=4.0, ego_width=1.8
    )
    with pytest.raises(SumoError, match="Unknown from-node 'x'"):
        traffic.start()
    assert not traffic.running and not libsumo.isLoaded()


def test_libsumo_start_failure_carries_sumos_message(town: Town, tmp_path: Path) -> None:
    # a net that was verified once and broke afterwards: libsumo itself refuses it
    net = tmp_path / "broken.net.xml"
    net.write_text(
        '<net version="1.20">\n<edge id="a" from="x" to="y">\n'
        '<lane id="a_0" index="0" speed="10" length="10" shape="0,0 10,0"/>\n</edge>\n</net>\n'
    )
    stat = net.stat()
    (tmp_path / "broken.net.xml.verified").write_text(f"{stat.st_size}:{stat.st_mtime_ns}")
    traffic = SumoTraffic(
        town.road_map, net, TrafficConfig(), seed=0, dt=DT, ego_length=4.0, ego_width=1.8
    )
    with pytest.raises(SumoError, match=r"libsumo could not start.*Unknown from-node 'x'"):
        traffic.start()
    assert not traffic.running and not libsumo.isLoaded()


def test_only_one_simulation_per_process(town: Town) -> None:
    with _traffic(town, density=0.0):
        second = _traffic(town, density=0.0)
        with pytest.raises(SumoError, match="one simulation per process"):
            second.start()
    with second:  # free again once the first is closed
        second.step()
    assert not libsumo.isLoaded()


# -- alignment ---------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["town", "town01"])
def test_sumo_lanes_lie_on_road_map_lanes(which: str, request: pytest.FixtureRequest) -> None:
    place: Town = request.getfixturevalue(which)
    with _traffic(place, density=0.0):
        distances = []
        for lane_id in libsumo.lane.getIDList():
            if "passenger" not in libsumo.lane.getAllowed(lane_id):
                continue
            shape = np.asarray(libsumo.lane.getShape(lane_id))
            for a, b in itertools.pairwise(shape):
                for t in np.linspace(0.0, 1.0, 4):
                    x, y = a + t * (b - a)
                    found = place.road_map.project(float(x), float(y), max_distance=5.0)
                    distances.append(found[0].distance if found else 5.0)
    assert len(distances) > 100
    assert float(np.median(distances)) < 0.3
    assert float(np.percentile(distances, 95)) < 0.5


# -- the background ----------------------------------------------------------------------------


def test_background_traffic_density_road_and_red_lights(town: Town) -> None:
    """One busy run checks density, vehicles on the road, lights cycling and red respected."""
    density = 25.0
    expected = density * _lane_km(town.road_map)
    area = town.road_map.drivable_area
    counts: list[int] = []
    seen_colors: dict[str | int, set[TrafficLightColor]] = {}
    crossings = violations = 0
    with _traffic(town, seed=5, density=density) as traffic:
        lights = traffic.traffic_lights()
        assert all(light.stop_line is not None for light in lights)
        lines = np.stack([np.asarray(light.stop_line) for light in lights])  # (L, 2, 2)
        across = lines[:, 1] - lines[:, 0]
        forward = np.stack([across[:, 1], -across[:, 0]], axis=1)
        forward /= np.linalg.norm(forward, axis=1, keepdims=True)
        prev_fronts: dict[int, np.ndarray] = {}
        prev_red = np.zeros(len(lights), dtype=bool)
        for k in range(1200):
            traffic.step()
            agents = traffic.agents()
            lights = traffic.traffic_lights()
            red = np.array([light.color == TrafficLightColor.RED for light in lights])
            for light in lights:
                seen_colors.setdefault(light.light_id, set()).add(light.color)
            vehicles = [a for a in agents if a.agent_class != AgentClass.PEDESTRIAN]
            counts.append(len(vehicles))
            if k % 50 == 0:
                centres = np.array([[a.box.x, a.box.y] for a in vehicles])
                off = shapely.distance(area, shapely.points(centres))
                assert float(off.max()) <= 1.0, f"a vehicle is {off.max():.2f} m off the road"
            fronts = _fronts(agents)
            for track, front in fronts.items():
                before = prev_fronts.get(track)
                if before is None:
                    continue
                s_before = ((before - lines[:, 0]) * forward).sum(axis=1)
                s_after = ((front - lines[:, 0]) * forward).sum(axis=1)
                t = ((front - lines[:, 0]) * across).sum(axis=1) / (across * across).sum(axis=1)
                crossed = (s_before < 0.0) & (s_after >= 0.0) & (t > -0.1) & (t < 1.1)
                crossings += int(crossed.sum())
                violations += int((crossed & red & prev_red).sum())
            prev_fronts, prev_red = fronts, red
        assert traffic.target_vehicles == round(expected)
    after_warm_up = np.array(counts[100:])
    assert np.all(np.abs(after_warm_up - expected) <= 0.3 * expected)
    assert crossings > 50, "too few stop-line crossings to judge the red lights"
    assert violations == 0
    changed = [len(colors) >= 2 for colors in seen_colors.values()]
    assert all(changed), "every light changes colour within two minutes"
    assert set().union(*seen_colors.values()) >= {
        TrafficLightColor.RED,
        TrafficLightColor.YELLOW,
        TrafficLightColor.GREEN,
    }


@pytest.mark.parametrize("which", ["town", "town01"])
def test_lights_sit_at_lane_ends(which: str, request: pytest.FixtureRequest) -> None:
    place: Town = request.getfixturevalue(which)
    with _traffic(place, density=0.0) as traffic:
        lights = traffic.traffic_lights()
    assert len(lights) >= len(place.road_map.junctions) * 3 - 4
    assert len({light.light_id for light in lights}) == len(lights)
    for light in lights:
        assert light.affected_lane_ids, f"light {light.light_id} controls no road-map lane"
        assert light.stop_line is not None
        mid = light.stop_line.mean(axis=0)
        width = float(np.linalg.norm(light.stop_line[1] - light.stop_line[0]))
        for index in light.affected_lane_ids:
            lane = place.road_map.lanes[int(index)]
            assert not lane.in_junction
            end = lane.centerline[-1, :2]
            assert float(np.linalg.norm(end - mid)) < 0.5 * width + 0.5
            # traffic crosses the line forwards: stop_line runs from its right end to its left
            across = light.stop_line[1] - light.stop_line[0]
            heading = math.atan2(across[1], across[0]) - math.pi / 2
            assert abs(wrap_angle(heading - float(lane.headings[-1]))) < 0.2


def test_pedestrians_walk_on_sidewalks(town: Town) -> None:
    sidewalks = [ln for ln in town.road_map.lanes if ln.lane_type == LaneType.SIDEWALK]
    walkable = shapely.union_all([ln.polygon() for ln in sidewalks]).buffer(0.5)
    # corners and crossings of junctions: walking areas and zebras are not road-map lanes
    junctions = shapely.union_all(
        [shapely.box(*j.bounds).buffer(3.0, join_style="mitre") for j in town.road_map.junctions]
    )
    with _traffic(town, seed=2, density=0.0, pedestrian_density=20.0) as traffic:
        assert traffic.target_persons > 5
        for _ in range(300):
            traffic.step()
        persons = [a for a in traffic.agents() if a.agent_class == AgentClass.PEDESTRIAN]
        first = {a.track_id: a for a in persons}
        for _ in range(100):
            traffic.step()
        later = {a.track_id: a for a in traffic.agents() if a.agent_class == AgentClass.PEDESTRIAN}
    assert len(persons) == traffic.target_persons
    centres = np.array([[a.box.x, a.box.y] for a in persons])
    on_walk = shapely.contains_xy(walkable, centres[:, 0], centres[:, 1])
    at_junction = shapely.contains_xy(junctions, centres[:, 0], centres[:, 1])
    assert np.all(on_walk | at_junction)
    assert on_walk.mean() > 0.25  # many wait at the corners for the crossing lights
    on_road = town.road_map.on_road(centres) & ~at_junction
    assert not np.any(on_road), "persons cross roads only at junctions"
    moved = [
        math.hypot(later[t].box.x - first[t].box.x, later[t].box.y - first[t].box.y)
        for t in first
        if t in later
    ]
    assert np.median(moved) > 5.0  # 10 s at ~1.3 m/s, some wait at lights


# -- the ego -----------------------------------------------------------------------------------


def test_ego_is_placed_exactly_and_blocks_the_lane(quiet: SumoTraffic, town: Town) -> None:
    lane = _longest_lane(town.road_map)
    ego = SE2(*lane.interpolate(0.85 * lane.length))
    quiet.add_ego(ego, 0.0)
    expected_front = (
        ego.x + (EGO_LENGTH - EGO_OVERHANG) * math.cos(ego.yaw),
        ego.y + (EGO_LENGTH - EGO_OVERHANG) * math.sin(ego.yaw),
    )
    behind = SE2(*lane.interpolate(0.85 * lane.length - 40.0))
    follower = quiet.spawn_vehicle(behind, 10.0, lane_hint=lane.index)
    forward = np.array([math.cos(ego.yaw), math.sin(ego.yaw)])
    ego_rear = np.array([ego.x, ego.y]) - EGO_OVERHANG * forward
    gaps, speeds = [], []
    for _ in range(150):
        quiet.step(ego, 0.0)
        front = quiet.ego_front()
        assert front is not None
        assert front[0] == pytest.approx(expected_front[0], abs=1e-6)
        assert front[1] == pytest.approx(expected_front[1], abs=1e-6)
        assert front[2] == pytest.approx(sumo_angle(ego.yaw), abs=1e-6)
        assert all(a.track_id == follower for a in quiet.agents())  # the ego is not an agent
        agent = _agent(quiet, follower)
        gaps.append(float(np.dot(ego_rear - _fronts((agent,))[follower], forward)))
        speeds.append(agent.speed)
    assert speeds[0] == pytest.approx(10.0, abs=0.5)
    assert min(gaps) > 0.5  # stopped behind the ego instead of driving through it
    assert speeds[-1] < 0.05


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dense_traffic_never_runs_into_a_standing_ego(town: Town, seed: int) -> None:
    """Background vehicles inserted in the ego's first step, and all later ones, keep off it."""
    lane = _longest_lane(town.road_map)
    ego = SE2(*lane.interpolate(0.5 * lane.length))
    ahead = 0.5 * EGO_LENGTH - EGO_OVERHANG
    ego_box = np.array(
        [ego.x + ahead * math.cos(ego.yaw), ego.y + ahead * math.sin(ego.yaw), ego.yaw,
         EGO_LENGTH, EGO_WIDTH]
    )  # fmt: skip
    with _traffic(town, seed=seed, density=60.0) as traffic:
        traffic.add_ego(ego, 0.0)
        for _ in range(300):
            traffic.step(ego, 0.0)
            boxes = np.array(
                [[a.box.x, a.box.y, a.box.yaw, a.box.length, a.box.width] for a in traffic.agents()]
            )
            assert not np.any(box2d_overlap(ego_box, boxes))


def test_ego_moves_with_its_pose(quiet: SumoTraffic, town: Town) -> None:
    lane = _longest_lane(town.road_map)
    quiet.add_ego(SE2(*lane.interpolate(5.0)), 5.0)
    for k in range(1, 40):
        pose = SE2(*lane.interpolate(5.0 + 0.5 * k))
        quiet.step(pose, 5.0)
        front = quiet.ego_front()
        assert front is not None
        ahead = EGO_LENGTH - EGO_OVERHANG
        assert front[0] == pytest.approx(pose.x + ahead * math.cos(pose.yaw), abs=1e-6)
        assert front[1] == pytest.approx(pose.y + ahead * math.sin(pose.yaw), abs=1e-6)
        assert libsumo.vehicle.getSpeed(SumoTraffic.EGO_ID) == pytest.approx(5.0)


# -- scripted-event primitives -----------------------------------------------------------------


def test_spawned_vehicle_appears_at_its_pose_and_brakes_hard(
    quiet: SumoTraffic, town: Town
) -> None:
    lane = _longest_lane(town.road_map)
    pose = SE2(*lane.interpolate(8.0))
    track = quiet.spawn_vehicle(pose, 12.0)
    assert all(a.track_id != track for a in quiet.agents())  # placed during the next step
    quiet.step()
    agent = _agent(quiet, track)
    assert agent.agent_class == AgentClass.VEHICLE
    assert agent.box.x == pytest.approx(pose.x, abs=0.05)
    assert agent.box.y == pytest.approx(pose.y, abs=0.05)
    assert abs(wrap_angle(agent.box.yaw - pose.yaw)) < 0.02
    assert agent.speed == pytest.approx(12.0, abs=0.01)
    for _ in range(5):
        quiet.step()
    later = _agent(quiet, track)
    assert later.speed == pytest.approx(12.0, abs=0.01)  # keeps its speed along the lane
    assert math.hypot(later.box.x - agent.box.x, later.box.y - agent.box.y) == pytest.approx(
        5 * 12.0 * DT, rel=0.03
    )
    quiet.set_vehicle_speed(track, 0.0, decel=6.0)
    speeds = []
    for _ in range(30):
        quiet.step()
        speeds.append(_agent(quiet, track).speed)
    decels = -np.diff([12.0, *speeds]) / DT
    braking = decels[np.array([12.0, *speeds[:-1]]) > 0.7]
    assert len(braking) >= 15
    assert np.allclose(braking, 6.0, atol=0.3)
    assert speeds[-1] == 0.0


def test_hold_vehicle_stops_and_stays(quiet: SumoTraffic, town: Town) -> None:
    lane = _longest_lane(town.road_map)
    track = quiet.spawn_vehicle(SE2(*lane.interpolate(8.0)), 8.0)
    quiet.step()
    quiet.hold_vehicle(track)
    for _ in range(40):
        quiet.step()
    held = _agent(quiet, track)
    assert held.speed == 0.0
    for _ in range(100):
        quiet.step()
    later = _agent(quiet, track)
    assert later.speed == 0.0
    assert (later.box.x, later.box.y) == (held.box.x, held.box.y)


def test_change_lane(town2: Town) -> None:
    road_map = town2.road_map
    lane = max(
        (ln for ln in road_map.driving_lanes if not ln.in_junction and ln.left_neighbor >= 0),
        key=lambda ln: ln.length,
    )
    with _traffic(town2, density=0.0) as traffic:
        track = traffic.spawn_vehicle(SE2(*lane.interpolate(5.0)), 8.0, lane_hint=lane.index)
        traffic.step()
        agent = _agent(traffic, track)
        start = road_map.nearest_lane(agent.box.x, agent.box.y, heading=agent.box.yaw)
        assert start is not None and start.lane == lane.index
        traffic.change_lane(track, +1, 5.0)
        for _ in range(30):
            traffic.step()
        agent = _agent(traffic, track)
        now = road_map.nearest_lane(agent.box.x, agent.box.y, heading=agent.box.yaw)
    assert now is not None and now.lane == lane.left_neighbor
    assert now.distance < 0.3  # the lane change has finished


def _light_history(town: Town, force: str | None, steps: int) -> tuple[str, list[str], list[str]]:
    """Colours (one letter per light) after each step; with ``force``, the first green light
    whose id starts with it is forced red for 10 s after the first step."""
    with _traffic(town, density=0.0) as traffic:
        traffic.step()
        lights = traffic.traffic_lights()
        forced = ""
        if force is not None:
            forced = next(
                str(lt.light_id)
                for lt in lights
                if lt.color == TrafficLightColor.GREEN and str(lt.light_id).startswith(force)
            )
            traffic.set_light(forced, TrafficLightColor.RED, 10.0)
        history = []
        for _ in range(steps):
            traffic.step()
            history.append("".join(lt.color.name[0] for lt in traffic.traffic_lights()))
        return forced, history, [str(lt.light_id) for lt in lights]


def test_set_light_forces_red_then_resumes(town: Town) -> None:
    forced, history, ids = _light_history(town, "", 300)
    _, natural, _ = _light_history(town, None, 300)
    k = ids.index(forced)
    shown = "".join(colors[k] for colors in history)
    yellow = len(shown) - len(shown.lstrip("Y"))
    red = len(shown[yellow:]) - len(shown[yellow:].lstrip("R"))
    assert 29 <= yellow <= 31  # from green: yellow for 3 s first
    assert 99 <= red <= 101  # then red for the 10 s asked for
    assert natural[0][k] == "G" and "R" not in "".join(c[k] for c in natural[:130])
    # the rest of the junction keeps its program, and afterwards the forced light does too
    others = [i for i in range(len(ids)) if i != k]
    for step, (a, b) in enumerate(zip(history, natural, strict=True)):
        assert [a[i] for i in others] == [b[i] for i in others], f"step {step}"
        if step >= 131:
            assert a == b, f"step {step}: the program did not resume where it would be"


def test_scripted_pedestrian_is_moved_and_avoided(quiet: SumoTraffic, town: Town) -> None:
    lane = _longest_lane(town.road_map)
    x, y, yaw = lane.interpolate(0.8 * lane.length)
    normal = np.array([-math.sin(yaw), math.cos(yaw)])
    start = np.array([x, y]) - 3.0 * normal
    end = np.array([x, y]) + 3.0 * normal
    car = quiet.spawn_vehicle(SE2(*lane.interpolate(2.0)), 10.0, lane_hint=lane.index)
    walker = quiet.spawn_pedestrian(start, end, 0.3)
    gaps, speeds = [], []
    for k in range(1, 151):
        quiet.step()
        person = _agent(quiet, walker)
        vehicle = _agent(quiet, car)
        assert person.agent_class == AgentClass.PEDESTRIAN
        expected = start + (end - start) * min(0.3 * k * DT / 6.0, 1.0)
        assert person.box.x == pytest.approx(expected[0], abs=1e-6)
        assert person.box.y == pytest.approx(expected[1], abs=1e-6)
        front = _fronts((vehicle,))[car]
        gaps.append(
            float(
                np.dot(
                    np.array([person.box.x, person.box.y]) - front, [math.cos(yaw), math.sin(yaw)]
                )
            )
        )
        speeds.append(vehicle.speed)
    assert min(gaps) > 1.0  # the car stopped short of the person
    assert speeds[-1] < 0.05


# -- determinism and speed ---------------------------------------------------------------------


def _run(town: Town, seed: int, steps: int) -> np.ndarray:
    rows = []
    with _traffic(town, seed=seed, density=20.0, pedestrian_density=10.0) as traffic:
        lane = _longest_lane(town.road_map)
        traffic.add_ego(SE2(*lane.interpolate(5.0)), 0.0)
        for k in range(steps):
            traffic.step(SE2(*lane.interpolate(5.0 + 0.4 * k)), 4.0)
            for agent in traffic.agents():
                rows.append([k, agent.track_id, agent.agent_class, *agent.as_array()])
            for i, light in enumerate(traffic.traffic_lights()):
                rows.append([k, -1 - i, int(light.color), 0, 0, 0, 0, 0, 0, 0])
    return np.asarray(rows, dtype=np.float64)


def test_same_seed_same_traffic(town: Town) -> None:
    first = _run(town, 11, 200)
    second = _run(town, 11, 200)
    assert first.shape == second.shape
    assert np.array_equal(first, second)  # bit for bit
    other = _run(town, 12, 200)
    assert first.shape != other.shape or not np.array_equal(first, other)


def test_fifty_vehicles_are_held_on_town01(town01: Town) -> None:
    # (the step rate is measured by `kaido bench sim`, not here)
    density = 50.0 / _lane_km(town01.road_map)
    with _traffic(town01, density=density) as traffic:
        assert traffic.target_vehicles == 50
        for _ in range(350):
            traffic.step()
        assert len(traffic.agents()) == 50
