"""The Leaderboard 2.0 agent without a server: its interface, and an embedded episode driven
through ``run_step`` with ``input_data`` built the way the leaderboard delivers it."""

from __future__ import annotations

import dataclasses
import importlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

carla = pytest.importorskip("carla")

from kaido.scene.agents import Control  # noqa: E402
from kaido.scene.geometry import SE2, SE3  # noqa: E402
from kaido.scene.road_map import RoadMap  # noqa: E402
from kaido.scene.route_planner import RoutePlanningError, plan_route  # noqa: E402
from kaido.scene.sensors import SensorRig, load_sensor_rig  # noqa: E402
from kaido.scene.town_generator import TownSpec, write_town  # noqa: E402
from kaido.scene.vehicle import load_vehicle_profile  # noqa: E402
from kaido.simulation.agents import DrivingAgent, make_agent  # noqa: E402
from kaido.simulation.backend import Observation, Scenario  # noqa: E402
from kaido.simulation.carla.convert import (  # noqa: E402
    GRAVITY,
    GeoProjection,
    ImuReading,
    carla_control_to_kaido,
    kaido_lidar_to_carla,
    rgb_to_bgra,
    se2_to_transform,
    se3_to_transform,
    transform_to_se3,
)
from kaido.simulation.carla.leaderboard_agent import (  # noqa: E402
    GNSS_ID,
    IMU_ID,
    MAP_ID,
    SPEED_ID,
    KaidoLeaderboardAgent,
    SteeringObserver,
    Track,
    downsample_route,
    get_entry_point,
    load_agent_config,
)
from kaido.simulation.embedded.backend import EmbeddedBackend, EmbeddedConfig  # noqa: E402
from kaido.simulation.runner import EpisodeOptions, run_episode  # noqa: E402

TINY_RIG = {
    "cameras": [
        {
            "name": "front",
            "width": 64,
            "height": 36,
            "fov_deg": 90.0,
            "extrinsics": {"x": 1.5, "z": 1.6},
        }
    ],
    "lidars": [
        {
            "name": "top",
            "channels": 8,
            "upper_fov_deg": 10.0,
            "lower_fov_deg": -30.0,
            "range_min": 0.5,
            "range_max": 50.0,
            "rotation_frequency": 10.0,
            "points_per_second": 20480,
            "extrinsics": {"x": 1.3, "z": 2.0, "yaw_deg": 2.0},
        }
    ],
}
LANE_FOLLOW = 4
"""The leaderboard's RoadOption.LANEFOLLOW value."""


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lb")
    path = write_town(TownSpec(rows=3, cols=3, seed=0, name="lbtown"), folder / "lbtown.xodr")
    (folder / "rig.yaml").write_text(yaml.safe_dump(TINY_RIG))
    return Path(path)


def agent_config(town: Path, agent: str = "baseline", **extra: Any) -> Path:
    path = town.parent / f"agent_{agent}.yaml"
    data = {"agent": agent, "rig": "rig.yaml", "map": town.name, "track": "SENSORS", **extra}
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_module_is_a_leaderboard_agent_module(town: Path) -> None:
    module = importlib.import_module("kaido.simulation.carla.leaderboard_agent")
    cls = getattr(module, get_entry_point())
    agent = cls("localhost", 2000, False)
    for name in ("setup", "sensors", "run_step", "destroy", "set_global_plan", "__call__"):
        assert callable(getattr(agent, name))
    assert cls.get_ros_version() == -1
    agent.setup(str(agent_config(town)))
    assert agent.track is Track.SENSORS
    assert Track("MAP_QUALIFIER") is Track.MAP_QUALIFIER


def test_sensors_in_the_leaderboard_format(town: Path) -> None:
    agent = KaidoLeaderboardAgent()
    agent.setup(str(agent_config(town, track="MAP")))
    sensors = agent.sensors()
    ids = [s["id"] for s in sensors]
    assert len(ids) == len(set(ids))
    by_id = {s["id"]: s for s in sensors}
    assert by_id["front"]["type"] == "sensor.camera.rgb"
    assert (by_id["front"]["width"], by_id["front"]["height"]) == (64, 36)
    assert by_id["front"]["fov"] == pytest.approx(90.0)
    assert by_id["top"]["type"] == "sensor.lidar.ray_cast"
    assert by_id[GNSS_ID]["type"] == "sensor.other.gnss"
    assert by_id[IMU_ID]["type"] == "sensor.other.imu"
    assert by_id[SPEED_ID]["type"] == "sensor.speedometer"
    assert by_id[MAP_ID]["type"] == "sensor.opendrive_map"
    for sensor in sensors:  # the leaderboard refuses sensors more than 3 m from the actor
        if "x" in sensor:
            assert math.sqrt(sensor["x"] ** 2 + sensor["y"] ** 2 + sensor["z"] ** 2) <= 3.0
    # the CARLA poses (relative to the actor at the box centre) are the rig's extrinsics
    profile = load_vehicle_profile()
    ego_from_actor = SE3.from_euler(profile.rear_axle_to_center, 0, 0, 0, 0, 0)
    rig = load_sensor_rig(town.parent / "rig.yaml")
    poses = (("front", rig.cameras[0].extrinsics), ("top", rig.lidars[0].extrinsics))
    for name, spec_pose in poses:
        s = by_id[name]
        t = carla.Transform(
            carla.Location(x=s["x"], y=s["y"], z=s["z"]),
            carla.Rotation(pitch=s["pitch"], yaw=s["yaw"], roll=s["roll"]),
        )
        assert (ego_from_actor @ transform_to_se3(t)).allclose(spec_pose, atol=1e-5)
    gnss = by_id[GNSS_ID]
    assert gnss["x"] == pytest.approx(-profile.rear_axle_to_center) and gnss["y"] == 0.0


def test_config_errors_name_the_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("agent: baseline\nspeed: 3\n")
    with pytest.raises(ValueError, match=r"bad.yaml: unknown keys \['speed'\]"):
        load_agent_config(bad)
    bad.write_text("track: RACE\n")
    with pytest.raises(ValueError, match="track must be one of"):
        load_agent_config(bad)
    assert load_agent_config(None).agent == "learned"
    assert load_agent_config("").track is Track.MAP


def test_downsample_route_keeps_ends_option_changes_and_spacing() -> None:
    points = np.c_[np.arange(0.0, 101.0), np.zeros(101)]
    options = [LANE_FOLLOW] * 50 + [1] * 51
    keep = downsample_route(points, options, spacing=30.0)
    assert keep[0] == 0 and keep[-1] == 100 and 50 in keep and 30 in keep
    assert np.all(np.diff(points[keep, 0]) <= 30.0 + 1e-9)
    with pytest.raises(ValueError, match="options"):
        downsample_route(points, [1, 2], 30.0)


def test_steering_observer_follows_the_bicycle() -> None:
    profile = load_vehicle_profile()
    observer = SteeringObserver(profile)
    angle = 0.1
    yaw_rate = 5.0 * math.tan(angle) / profile.wheelbase
    assert observer.measure(5.0, yaw_rate) == pytest.approx(angle, abs=1e-12)
    observer.angle = 0.0
    observer.command(Control(steer=-1.0), 2.0)  # full left for 2 s at standstill
    assert observer.measure(0.0, 0.0) == pytest.approx(profile.max_steer, rel=1e-3)


# -- an embedded episode through the leaderboard interface ---------------------------------------


class LeaderboardHarness:
    """Plays the leaderboard's part for the embedded simulator: turns each observation into
    ``input_data`` exactly as CARLA's sensors and the leaderboard's sensor interface deliver it
    (BGRA cameras, lidar in CARLA's left-handed sensor frame, GNSS, IMU, speedometer; a slower
    sensor repeats its last reading under its old frame number)."""

    def __init__(self, rig: SensorRig, projection: GeoProjection) -> None:
        self.rig = rig
        self.projection = projection
        self.last: dict[str, tuple[int, Any]] = {}

    def input_data(self, obs: Observation) -> dict[str, tuple[int, Any]]:
        n = obs.step
        for name, image in obs.frame.images.items():
            self.last[name] = (n, rgb_to_bgra(np.asarray(image.rgb)))
        for name, sweep in obs.frame.lidar.items():
            self.last[name] = (n, kaido_lidar_to_carla(np.asarray(sweep.points)))
        ego = obs.frame.ego
        imu = ImuReading(
            acceleration=(ego.acceleration[0], ego.acceleration[1], GRAVITY),
            angular_velocity=(0.0, 0.0, ego.yaw_rate),
            yaw=ego.pose.yaw,
        )
        return {
            **self.last,
            GNSS_ID: (n, self.projection.to_geo([ego.pose.x, ego.pose.y, 0.0])),
            IMU_ID: (n, imu.to_carla()),
            SPEED_ID: (n, {"speed": ego.velocity[0]}),
        }


class ThroughLeaderboard(DrivingAgent):
    """Drives the embedded episode through :class:`KaidoLeaderboardAgent` (the runner's agent)."""

    def __init__(self, lb: KaidoLeaderboardAgent, harness: LeaderboardHarness) -> None:
        super().__init__()
        self.lb = lb
        self.harness = harness
        self.poses: list[tuple[float, float, float]] = []

    def run_step(self, obs: Observation) -> Control:
        control = self.lb.run_step(self.harness.input_data(obs), obs.sim_time_s)
        assert isinstance(control, carla.VehicleControl)
        frame = self.lb.last_frame
        assert frame is not None and frame.ground_truth is None  # no privileged information
        self.poses.append((frame.ego.pose.x, frame.ego.pose.y, frame.ego.pose.yaw))
        kaido_control, problems = carla_control_to_kaido(control)
        assert problems == []
        return kaido_control

    def destroy(self) -> None:
        self.lb.destroy()


def route_waypoints(road_map: RoadMap) -> np.ndarray:
    spawns = road_map.spawn_points(spacing=10.0)
    rng = np.random.default_rng(3)
    for _ in range(200):
        a, b = rng.choice(len(spawns), size=2, replace=False)
        try:
            plan = plan_route(road_map, spawns[[a, b], :2], yaws=spawns[[a, b], 2])
        except RoutePlanningError:
            continue
        if 120.0 <= plan.length <= 250.0 and np.ptp(plan.path[:, 2]) > 0.5:  # with a turn
            return spawns[[a, b]]
    raise AssertionError("no suitable route in the test town")


def test_run_step_drives_an_embedded_episode_like_the_stack_itself(
    town: Path, tmp_path: Path
) -> None:
    road_map = RoadMap.from_file(town)
    wps = route_waypoints(road_map)
    scenario = Scenario(
        name="lb",
        map_path=town,
        route_waypoints=wps[:, :2],
        route_yaws=wps[:, 2],
        traffic_density=0.0,
        seed=4,
    )
    rig = load_sensor_rig(town.parent / "rig.yaml")
    vehicle = load_vehicle_profile()
    options = EpisodeOptions(
        out_dir=tmp_path, record_mcap=False, record_video=False, max_seconds=14.0, progress=False
    )

    def run(agent: DrivingAgent, out: str) -> Any:
        backend = EmbeddedBackend(EmbeddedConfig(rig=rig, vehicle=vehicle))
        with backend:
            return run_episode(
                backend,
                agent,
                scenario,
                dataclasses.replace(options, out_dir=tmp_path / out),
                road_map_of=lambda b: b.road_map,  # type: ignore[attr-defined]
                vehicle=vehicle,
            )

    direct_agent = make_agent("baseline")
    direct_poses: list[tuple[float, float, float]] = []
    original = direct_agent.run_step

    def recording_step(obs: Observation) -> Control:
        direct_poses.append((obs.ego.pose.x, obs.ego.pose.y, obs.ego.pose.yaw))
        return original(obs)

    direct_agent.run_step = recording_step  # type: ignore[method-assign]
    direct = run(direct_agent, "direct")

    lb = KaidoLeaderboardAgent()
    lb.setup(str(agent_config(town)))
    projection = GeoProjection(town.read_text(), "lbtown")
    lb.set_global_plan(
        [
            ({"lat": g[0], "lon": g[1], "z": g[2]}, LANE_FOLLOW)
            for g in (projection.to_geo([w[0], w[1], 0.0]) for w in wps)
        ],
        [(se2_to_transform(SE2(*w)), LANE_FOLLOW) for w in wps],
    )
    through = ThroughLeaderboard(lb, LeaderboardHarness(rig, projection))
    via_lb = run(through, "leaderboard")

    assert direct.result.distance_driven_m > 30.0  # it really drove
    assert via_lb.steps == direct.steps
    assert via_lb.result.driving_score == pytest.approx(direct.result.driving_score, abs=0.05)
    assert via_lb.result.route_completion == pytest.approx(direct.result.route_completion, abs=0.05)
    assert via_lb.result.status == direct.result.status
    # the agent's pose from GNSS + compass is the simulator's (to float32 GNSS precision) ...
    np.testing.assert_allclose(np.array(through.poses)[:5], np.array(direct_poses)[:5], atol=1e-3)
    # ... and both drove the same path
    np.testing.assert_allclose(np.array(through.poses), np.array(direct_poses), atol=0.05)
    assert lb.route is not None and direct_agent.route is not None
    assert lb.route.length == pytest.approx(direct_agent.route.length, abs=0.5)


def test_run_step_errors_name_the_missing_sensor(town: Path) -> None:
    lb = KaidoLeaderboardAgent()
    lb.setup(str(agent_config(town)))
    road_map = RoadMap.from_file(town)
    wps = road_map.spawn_points(spacing=10.0)[:2]
    lb.set_global_plan([], [(se3_to_transform(SE3.from_se2(SE2(*w))), LANE_FOLLOW) for w in wps])
    with pytest.raises(ValueError, match="sensor 'GPS'"):
        lb.run_step({SPEED_ID: (0, {"speed": 0.0})}, 0.0)
