"""The CARLA backend: a real ``carla==0.9.16`` server behind kaido's ``Backend`` interface.

* **Connect** with a timeout and check that the client library and the server have the same
  version (:func:`connect`); both failures raise :class:`BackendError` with one clear line.
* **Synchronous mode** with a fixed delta (the scenario's ``dt``): the backend ticks the world,
  so every observation is one simulation step; the Traffic Manager runs synchronously too.
* **The ego** is spawned at the route's start (kaido's rear-axle pose moved to the actor's box
  centre, :func:`~kaido.simulation.carla.convert.ego_to_actor`), with the cameras and lidars of
  the same rig YAML the embedded simulator renders; sensor data is converted once, here, into
  kaido's frame (:mod:`kaido.simulation.carla.convert`).
* **Traffic**: background vehicles on autopilot under CARLA's Traffic Manager, as many as the
  scenario's density asks (vehicles per lane-km of the map's driving lanes).
* **Routes**: a scenario's ``map_path`` stem names the CARLA town to load (``Town01``...; ``carla``
  keeps the town the server has loaded); its
  waypoints (leaderboard routes) are planned on the town's own OpenDRIVE as in the embedded
  backend, so the episode runner scores, records and writes results identically.
* **Crashes**: a lost connection or a dead server during a tick raises :class:`BackendError`
  starting with ``"simulation crashed"``; :meth:`close` always destroys the actors it spawned and
  restores the world's settings, ignoring a server that is gone.
"""

from __future__ import annotations

import math
import queue
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import carla
import numpy as np

from kaido.scene.agents import AgentClass, AgentState, Control, EgoState
from kaido.scene.frame import (
    CameraImage,
    Frame,
    GroundTruth,
    LidarSweep,
    TrafficLightColor,
    TrafficLightState,
)
from kaido.scene.geometry import SE2, SE3, Box3D
from kaido.scene.road_map import RoadMap
from kaido.scene.route_planner import RoutePlan, plan_route
from kaido.scene.sensors import SensorRig
from kaido.scene.vehicle import VehicleProfile
from kaido.simulation.backend import Backend, BackendError, Observation, Scenario
from kaido.simulation.carla.convert import (
    actor_to_ego,
    bgra_to_camera_image,
    ego_to_actor,
    kaido_control_to_carla,
    lidar_to_sweep,
    location_to_kaido,
    se3_to_transform,
    transform_to_se3,
    vector_to_kaido,
)

__all__ = [
    "CARLA_VERSION",
    "CarlaBackend",
    "CarlaConfig",
    "connect",
    "traffic_lights_from_world",
]

CARLA_VERSION = "0.9.16"
"""The CARLA release kaido's client is pinned to."""
NS_PER_S = 1_000_000_000

_LIGHT_COLORS = {
    "Red": TrafficLightColor.RED,
    "Yellow": TrafficLightColor.YELLOW,
    "Green": TrafficLightColor.GREEN,
    "Off": TrafficLightColor.OFF,
    "Unknown": TrafficLightColor.UNKNOWN,
}


@dataclass(frozen=True)
class CarlaConfig:
    """How to reach and drive a CARLA server."""

    host: str = "127.0.0.1"
    port: int = 2000
    timeout: float = 10.0
    """[s] connection and per-tick timeout."""
    rig: SensorRig | None = None
    """Sensors to attach; None drives without sensors."""
    vehicle: VehicleProfile = field(default_factory=VehicleProfile)
    blueprint: str = "vehicle.lincoln.mkz_2020"
    """Blueprint of the ego vehicle."""
    traffic_manager_port: int = 8000
    sensor_period: float = 0.1
    """[s] time between sensor frames (CARLA's ``sensor_tick``)."""
    load_timeout: float = 60.0
    """[s] timeout while the server loads a town."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError(f"CarlaConfig.timeout must be > 0 s, got {self.timeout}")
        if not 0 < int(self.port) < 65536:
            raise ValueError(f"CarlaConfig.port must be in 1..65535, got {self.port}")


def connect(host: str, port: int, timeout: float) -> carla.Client:
    """A client of the CARLA server at ``host:port``, checked to run CARLA's own version.

    Raises :class:`BackendError` when nothing answers within ``timeout`` seconds or the versions
    differ.
    """
    try:
        client = carla.Client(host, int(port))
        client.set_timeout(float(timeout))
        server = client.get_server_version()
    except RuntimeError as err:
        raise BackendError(
            f"no CARLA server at {host}:{port} answered within {timeout:g} s "
            f"({str(err).strip() or type(err).__name__})"
        ) from None
    client_version = client.get_client_version()
    if _release(server) != _release(client_version):
        raise BackendError(
            f"CARLA server at {host}:{port} runs {server}, but the client library is "
            f"{client_version}: run a {CARLA_VERSION} server"
        )
    return client


def _release(version: str) -> str:
    """``"0.9.16"`` of ``"0.9.16-12-gabc"`` (builds of one release talk to each other)."""
    return str(version).split("-")[0].strip()


def _class_of(type_id: str) -> AgentClass:
    if type_id.startswith("walker."):
        return AgentClass.PEDESTRIAN
    if any(word in type_id for word in ("bike", "bicycle", "crossbike", "century", "omafiets")):
        return AgentClass.CYCLIST
    return AgentClass.VEHICLE


def _actor_box(actor: Any) -> Box3D:
    """An actor's bounding box in kaido's world frame."""
    bb = actor.bounding_box
    pose = transform_to_se3(actor.get_transform())
    centre = pose.transform_points(location_to_kaido(bb.location))
    return Box3D(
        x=float(centre[0]),
        y=float(centre[1]),
        z=float(centre[2]),
        yaw=pose.to_se2().yaw,
        length=2.0 * float(bb.extent.x),
        width=2.0 * float(bb.extent.y),
        height=2.0 * float(bb.extent.z),
    )


def traffic_lights_from_world(world: Any, road_map: RoadMap) -> tuple[TrafficLightState, ...]:
    """The world's traffic lights with their colour and stop lines (kaido frame).

    A light's stop line spans each of its stop waypoints' lanes (``lane_width`` across the lane
    at the waypoint); its affected lanes are the road-map lanes nearest to those waypoints.
    """
    out: list[TrafficLightState] = []
    for light in world.get_actors().filter("traffic.traffic_light"):
        position = location_to_kaido(light.get_transform().location)
        lines: list[np.ndarray] = []
        lanes: list[str | int] = []
        for wp in light.get_stop_waypoints():
            pose = transform_to_se3(wp.transform).to_se2()
            half = 0.5 * float(wp.lane_width)
            left = np.array([-math.sin(pose.yaw), math.cos(pose.yaw)])
            lines.append(np.array([[pose.x, pose.y] + half * left, [pose.x, pose.y] - half * left]))
            nearest = road_map.nearest_lane(pose.x, pose.y)
            if nearest is not None:
                lanes.append(int(nearest.lane))
        stop_line = None
        if lines:
            ends = np.concatenate(lines)
            axis = ends[1] - ends[0]
            order = np.argsort(ends @ axis) if np.any(axis) else np.arange(len(ends))
            stop_line = np.ascontiguousarray(ends[[order[0], order[-1]]], dtype=np.float64)
        out.append(
            TrafficLightState(
                light_id=int(light.id),
                color=_LIGHT_COLORS.get(
                    str(light.get_state()).split(".")[-1], TrafficLightColor.UNKNOWN
                ),
                position=(float(position[0]), float(position[1]), float(position[2])),
                stop_line=stop_line,
                affected_lane_ids=tuple(dict.fromkeys(lanes)),
            )
        )
    return tuple(out)


class CarlaBackend(Backend):
    """A CARLA server in synchronous mode behind the ``Backend`` interface."""

    name = "carla"

    def __init__(self, config: CarlaConfig | None = None) -> None:
        super().__init__()
        self.config = config or CarlaConfig()
        self.client = connect(self.config.host, self.config.port, self.config.timeout)
        self.world: Any = None
        self.road_map: RoadMap | None = None
        self.route: RoutePlan | None = None
        self.event_log: list[tuple[float, str, str]] = []
        self._maps: dict[str, RoadMap] = {}
        self._original_settings: Any = None
        self._ego: Any = None
        self._sensors: list[Any] = []
        self._traffic: list[int] = []
        self._queues: dict[str, queue.Queue[Any]] = {}
        self._tm: Any = None
        self._frame = 0
        self._sensor_every = 1

    # -- episode --------------------------------------------------------------------------------

    def _reset(self, scenario: Scenario) -> Observation:
        self._destroy_actors()
        try:
            return self._start(scenario)
        except RuntimeError as err:
            raise BackendError(f"simulation crashed while starting {scenario.name}: {err}") from err

    def _start(self, scenario: Scenario) -> Observation:
        if scenario.events or scenario.pedestrians > 0:
            raise BackendError(
                f"{scenario.name}: the CARLA backend runs routes with Traffic Manager vehicles; "
                "scripted events and pedestrians are the embedded simulator's (drop --event, "
                "--pedestrians)"
            )
        town = Path(scenario.map_path).stem
        world = self.client.get_world()
        loaded = str(world.get_map().name).split("/")[-1]
        if town.lower() in ("", "carla"):
            town = loaded  # drive the town the server has loaded
        if loaded.lower() != town.lower():
            self.client.set_timeout(self.config.load_timeout)
            try:
                world = self.client.load_world(town)
            except RuntimeError as err:
                raise BackendError(f"CARLA cannot load town {town!r}: {err}") from None
            finally:
                self.client.set_timeout(self.config.timeout)
        self.world = world
        if self._original_settings is None:
            self._original_settings = world.get_settings()
        settings = world.get_settings()
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = scenario.dt
        world.apply_settings(settings)
        self._tm = self.client.get_trafficmanager(self.config.traffic_manager_port)
        self._tm.set_synchronous_mode(True)
        self._tm.set_random_device_seed(int(scenario.seed))
        road_map = self._road_map(town, world)
        self.road_map = road_map
        if scenario.route_waypoints is not None:
            route = plan_route(road_map, scenario.route_waypoints[:, :2], yaws=scenario.route_yaws)
        else:
            from kaido.simulation.embedded.backend import random_route

            route = random_route(road_map, np.random.default_rng(scenario.seed), scenario)
        self.route = route
        self.event_log = []
        self._spawn_ego(world, route)
        self._spawn_sensors(world, scenario)
        self._spawn_traffic(world, road_map, scenario)
        self._frame = world.tick(self.config.timeout)
        return self._observe()

    def _road_map(self, town: str, world: Any) -> RoadMap:
        if town not in self._maps:
            self._maps[town] = RoadMap.from_opendrive(world.get_map().to_opendrive(), name=town)
        return self._maps[town]

    def _spawn_ego(self, world: Any, route: RoutePlan) -> None:
        start = route.path[0]
        ego_pose = SE3.from_se2(SE2(float(start[0]), float(start[1]), float(start[2])), 0.5)
        offset = self.config.vehicle.rear_axle_to_center
        transform = se3_to_transform(ego_to_actor(ego_pose, offset))
        blueprint = world.get_blueprint_library().find(self.config.blueprint)
        blueprint.set_attribute("role_name", "hero")
        self._ego = world.try_spawn_actor(blueprint, transform)
        if self._ego is None:
            raise BackendError(
                f"CARLA could not spawn the ego ({self.config.blueprint}) at the route start "
                f"x={start[0]:.1f} y={start[1]:.1f} (kaido frame): the spot is occupied"
            )

    def _spawn_sensors(self, world: Any, scenario: Scenario) -> None:
        rig = self.config.rig
        self._queues = {}
        if rig is None:
            return
        self._sensor_every = max(int(round(self.config.sensor_period / scenario.dt)), 1)
        library = world.get_blueprint_library()
        actor_from_ego = SE3.from_euler(-self.config.vehicle.rear_axle_to_center, 0, 0, 0, 0, 0)
        specs: list[tuple[str, str, SE3, dict[str, str]]] = []
        for cam in rig.cameras:
            attrs = {
                "image_size_x": str(cam.width),
                "image_size_y": str(cam.height),
                "fov": str(math.degrees(cam.horizontal_fov)),
            }
            specs.append((cam.name, "sensor.camera.rgb", cam.extrinsics, attrs))
        for lidar in rig.lidars:
            attrs = {
                "channels": str(lidar.channels),
                "range": str(lidar.range_max),
                "points_per_second": str(lidar.points_per_second),
                "rotation_frequency": str(lidar.rotation_frequency),
                "upper_fov": str(math.degrees(lidar.upper_fov)),
                "lower_fov": str(math.degrees(lidar.lower_fov)),
            }
            specs.append((lidar.name, "sensor.lidar.ray_cast", lidar.extrinsics, attrs))
        for name, type_id, extrinsics, attrs in specs:
            blueprint = library.find(type_id)
            for key, value in attrs.items():
                blueprint.set_attribute(key, value)
            blueprint.set_attribute("sensor_tick", str(self.config.sensor_period))
            sensor = world.spawn_actor(
                blueprint, se3_to_transform(actor_from_ego @ extrinsics), attach_to=self._ego
            )
            self._sensors.append(sensor)
            q: queue.Queue[Any] = queue.Queue()
            self._queues[name] = q
            sensor.listen(q.put)

    def _spawn_traffic(self, world: Any, road_map: RoadMap, scenario: Scenario) -> None:
        count = int(round(scenario.traffic_density * road_map.summary().lane_km))
        if count <= 0:
            return
        spawns = list(world.get_map().get_spawn_points())
        rng = np.random.default_rng(scenario.seed)
        rng.shuffle(spawns)
        start = location_to_kaido(self._ego.get_transform().location)
        spawns = [
            s for s in spawns if np.hypot(*(location_to_kaido(s.location) - start)[:2]) > 10.0
        ]
        library = world.get_blueprint_library().filter("vehicle.*")
        cars = [b for b in library if int(b.get_attribute("number_of_wheels").as_int()) == 4]
        if not cars:
            raise BackendError("CARLA has no four-wheeled vehicle blueprints for traffic")
        batch = []
        for transform in spawns[:count]:
            blueprint = cars[int(rng.integers(len(cars)))]
            blueprint.set_attribute("role_name", "autopilot")
            batch.append(
                carla.command.SpawnActor(blueprint, transform).then(
                    carla.command.SetAutopilot(
                        carla.command.FutureActor, True, self.config.traffic_manager_port
                    )
                )
            )
        for response in self.client.apply_batch_sync(batch, True):
            if not response.error:
                self._traffic.append(int(response.actor_id))

    def _step(self, control: Control) -> Observation:
        try:
            self._ego.apply_control(kaido_control_to_carla(control))
            self._frame = self.world.tick(self.config.timeout)
            return self._observe()
        except RuntimeError as err:
            raise BackendError(f"simulation crashed (lost the CARLA server): {err}") from err

    def _observe(self) -> Observation:
        assert self.route is not None and self.road_map is not None
        timestamp_ns = self.step_index * int(round(self.dt * NS_PER_S))
        profile = self.config.vehicle
        actor_pose = transform_to_se3(self._ego.get_transform())
        pose = actor_to_ego(actor_pose, profile.rear_axle_to_center).to_se2()
        rotation = actor_pose.rotation.T
        velocity = rotation @ vector_to_kaido(self._ego.get_velocity())
        accel = rotation @ vector_to_kaido(self._ego.get_acceleration())
        omega = self._ego.get_angular_velocity()  # deg/s, CARLA's left-handed axes
        wheel = self._ego.get_wheel_steer_angle(carla.VehicleWheelLocation.FL_Wheel)
        ego = EgoState(
            timestamp_ns=timestamp_ns,
            pose=pose,
            velocity=(float(velocity[0]), float(velocity[1])),
            acceleration=(float(accel[0]), float(accel[1])),
            yaw_rate=-math.radians(float(omega.z)),
            steering_angle=-math.radians(float(wheel)),
        )
        truth = GroundTruth(agents=self._agents(timestamp_ns), traffic_lights=self._lights())
        images: dict[str, CameraImage] = {}
        lidar: dict[str, LidarSweep] = {}
        rig = self.config.rig or SensorRig()
        if self.config.rig is not None and self.step_index % self._sensor_every == 0:
            for cam in rig.cameras:
                data = self._sensor_data(cam.name)
                raw = np.frombuffer(data.raw_data, dtype=np.uint8)
                bgra = raw.reshape(data.height, data.width, 4)
                images[cam.name] = bgra_to_camera_image(bgra, cam.name, timestamp_ns)
            for spec in rig.lidars:
                data = self._sensor_data(spec.name)
                points = np.frombuffer(data.raw_data, dtype=np.float32).reshape(-1, 4)
                lidar[spec.name] = lidar_to_sweep(points, spec.name, timestamp_ns)
        frame = Frame(
            timestamp_ns=timestamp_ns,
            ego=ego,
            images=images,
            lidar=lidar,
            rig=rig,
            ground_truth=truth,
        )
        return Observation(
            frame=frame,
            ego_box=_actor_box(self._ego),
            route=self.route,
            step=self.step_index,
            sim_time_s=self.step_index * self.dt,
            info={"control_warnings": self.control_warnings, "carla_frame": self._frame},
        )

    def _sensor_data(self, name: str) -> Any:
        """The reading of sensor ``name`` for the current world frame (older ones dropped)."""
        q = self._queues[name]
        while True:
            try:
                data = q.get(timeout=self.config.timeout)
            except queue.Empty:
                raise BackendError(
                    f"simulation crashed: sensor {name!r} sent nothing for frame {self._frame} "
                    f"within {self.config.timeout:g} s"
                ) from None
            if int(data.frame) >= self._frame:
                return data

    def _agents(self, timestamp_ns: int) -> tuple[AgentState, ...]:
        out: list[AgentState] = []
        ego_id = self._ego.id
        for actor in self.world.get_actors():
            type_id = str(actor.type_id)
            if actor.id == ego_id or not type_id.startswith(("vehicle.", "walker.")):
                continue
            box = _actor_box(actor)
            v = vector_to_kaido(actor.get_velocity())
            out.append(
                AgentState(
                    track_id=int(actor.id),
                    agent_class=_class_of(type_id),
                    box=box,
                    velocity=(float(v[0]), float(v[1])),
                    timestamp_ns=timestamp_ns,
                )
            )
        return tuple(out)

    def _lights(self) -> tuple[TrafficLightState, ...]:
        assert self.road_map is not None
        return traffic_lights_from_world(self.world, self.road_map)

    # -- cleanup --------------------------------------------------------------------------------

    def _destroy_actors(self) -> list[str]:
        """Destroy every actor this backend spawned; returns what failed (server gone...)."""
        problems: list[str] = []
        for sensor in self._sensors:
            try:
                sensor.stop()
            except RuntimeError as err:
                problems.append(f"sensor {sensor.id}: {err}")
        ids = [s.id for s in self._sensors] + list(self._traffic)
        if self._ego is not None:
            ids.append(self._ego.id)
        if ids:
            try:
                self.client.apply_batch_sync([carla.command.DestroyActor(i) for i in ids], False)
            except RuntimeError as err:
                problems.append(f"destroying {len(ids)} actors: {err}")
        self._sensors, self._traffic, self._ego, self._queues = [], [], None, {}
        return problems

    def _close(self) -> None:
        self._destroy_actors()
        try:
            if self._tm is not None:
                self._tm.set_synchronous_mode(False)
            if self.world is not None and self._original_settings is not None:
                self.world.apply_settings(self._original_settings)
        except RuntimeError:
            pass  # the server is gone: nothing left to restore
