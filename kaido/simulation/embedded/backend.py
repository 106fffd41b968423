"""The embedded simulator: a ``Backend`` that needs no server.

Roads come from OpenDRIVE through :class:`~kaido.scene.road_map.RoadMap` (CARLA's own map
library, offline); background traffic, traffic lights and pedestrians from Eclipse SUMO through
libsumo (the ego is injected with ``moveToXY`` so SUMO traffic reacts to it); the ego moves by a
kinematic bicycle with actuator lags (:mod:`.dynamics`); cameras and lidars are rendered by a
Numba ray caster (:mod:`.raycast`) every ``sensor_period``. Seeded and deterministic: the same
scenario and the same controls give the same episode, bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from kaido.scene.agents import Control
from kaido.scene.frame import CameraImage, Frame, GroundTruth, LidarSweep
from kaido.scene.geometry import SE2, SE3
from kaido.scene.road_map import RoadMap
from kaido.scene.route_planner import RoutePlan, RoutePlanningError, plan_route
from kaido.scene.sensors import SensorRig
from kaido.scene.vehicle import VehicleProfile
from kaido.settings import cache_dir
from kaido.simulation.backend import Backend, BackendError, Observation, Scenario
from kaido.simulation.embedded.dynamics import BicycleDynamics
from kaido.simulation.embedded.events import EventRunner
from kaido.simulation.embedded.raycast import (
    Actors,
    LidarNoise,
    RenderWorld,
    render_camera,
    render_lidar,
    traffic_light_actors,
)
from kaido.simulation.embedded.traffic import SumoTraffic, TrafficConfig, build_sumo_net
from kaido.simulation.embedded.world import build_render_world

FloatArray = npt.NDArray[np.float64]
NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class EmbeddedConfig:
    """How the embedded simulator runs."""

    rig: SensorRig | None = None
    """Sensors to render; None runs without sensors (ground truth only)."""
    sensor_period: float = 0.1
    """[s] time between sensor frames (10 Hz)."""
    vehicle: VehicleProfile = field(default_factory=VehicleProfile)
    traffic: TrafficConfig = field(default_factory=TrafficConfig)
    lidar_noise: LidarNoise = field(default_factory=LidarNoise)
    cache: Path | None = None
    """Folder for SUMO nets (None: kaido's cache folder, see ``kaido.settings``)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sensor_period) and self.sensor_period > 0):
            raise ValueError(
                f"EmbeddedConfig.sensor_period must be > 0 s, got {self.sensor_period}"
            )


class RouteProgress:
    """Monotonic arc-length progress of a point along a route path (windowed nearest search)."""

    def __init__(self, route: RoutePlan, window: float = 30.0) -> None:
        self.route = route
        self.index = 0
        self.window = max(int(window / max(float(np.median(np.diff(route.s))), 1e-3)), 2)

    def update(self, x: float, y: float) -> float:
        lo = self.index
        hi = min(len(self.route.s), self.index + self.window)
        d = np.hypot(self.route.path[lo:hi, 0] - x, self.route.path[lo:hi, 1] - y)
        self.index = lo + int(np.argmin(d))
        return float(self.route.s[self.index])


def random_route(road_map: RoadMap, rng: np.random.Generator, scenario: Scenario) -> RoutePlan:
    """A route between two spawn points whose length is in the scenario's bounds."""
    spawns = road_map.spawn_points(spacing=10.0)
    if len(spawns) < 2:
        raise BackendError(f"map {road_map.name!r} has fewer than two spawn points")
    best: RoutePlan | None = None
    for _ in range(60):
        a, b = rng.choice(len(spawns), size=2, replace=False)
        try:
            plan = plan_route(road_map, spawns[[a, b], :2], yaws=spawns[[a, b], 2])
        except RoutePlanningError:
            continue
        if scenario.min_route_length <= plan.length <= scenario.max_route_length:
            return plan
        if best is None or abs(plan.length - scenario.min_route_length) < abs(
            best.length - scenario.min_route_length
        ):
            best = plan
    if best is None:
        raise BackendError(f"no route between random spawn points on map {road_map.name!r}")
    return best


class EmbeddedBackend(Backend):
    """The embedded simulator behind the ``Backend`` interface."""

    name = "embedded"

    def __init__(self, config: EmbeddedConfig | None = None) -> None:
        super().__init__()
        self.config = config or EmbeddedConfig()
        self._maps: dict[str, RoadMap] = {}
        self._worlds: dict[str, RenderWorld] = {}
        self._traffic: SumoTraffic | None = None
        self._dynamics = BicycleDynamics(self.config.vehicle)
        self.road_map: RoadMap | None = None
        self.route: RoutePlan | None = None
        self._events: EventRunner | None = None
        self._progress: RouteProgress | None = None
        self._rng = np.random.default_rng(0)
        self._sensor_every = 1
        self._last_frame_sensors: tuple[dict[str, CameraImage], dict[str, LidarSweep]] = ({}, {})
        self.event_log: list[tuple[float, str, str]] = []

    # -- episode --------------------------------------------------------------------------------

    def load_map(self, path: Path) -> RoadMap:
        key = str(Path(path).resolve())
        if key not in self._maps:
            self._maps[key] = RoadMap.from_file(path)
        return self._maps[key]

    def _reset(self, scenario: Scenario) -> Observation:
        self._shutdown_traffic()
        road_map = self.load_map(scenario.map_path)
        self.road_map = road_map
        self._rng = np.random.default_rng(scenario.seed)
        if scenario.route_waypoints is not None:
            route = plan_route(road_map, scenario.route_waypoints[:, :2], yaws=scenario.route_yaws)
        else:
            route = random_route(road_map, self._rng, scenario)
        self.route = route
        self._progress = RouteProgress(route)
        self._events = EventRunner(scenario.events, route, road_map)
        self.event_log = []
        start = route.path[0]
        pose = SE2(float(start[0]), float(start[1]), float(start[2]))
        self._dynamics.reset(pose, 0.0)
        profile = self.config.vehicle
        traffic_config = dataclasses.replace(
            self.config.traffic,
            density=scenario.traffic_density,
            pedestrian_density=scenario.pedestrians,
        )
        if traffic_config.density > 0 or traffic_config.pedestrian_density > 0 or scenario.events:
            net = build_sumo_net(Path(scenario.map_path), self.config.cache or cache_dir("sumo"))
            self._traffic = SumoTraffic(
                road_map,
                net,
                traffic_config,
                seed=scenario.seed,
                dt=scenario.dt,
                ego_length=profile.length,
                ego_width=profile.width,
                ego_height=profile.height,
                ego_rear_overhang=profile.rear_overhang,
            )
            self._traffic.start()
            self._traffic.add_ego(pose, 0.0)
        self._sensor_every = max(int(round(self.config.sensor_period / scenario.dt)), 1)
        if self.config.rig is not None and str(scenario.map_path) not in self._worlds:
            self._worlds[str(scenario.map_path)] = build_render_world(road_map)
        self._world = self._worlds.get(str(scenario.map_path))
        self._sensor_rng = np.random.default_rng(scenario.seed + 7919)
        return self._observe()

    def _step(self, control: Control) -> Observation:
        self._dynamics.step(control, self.dt)
        state = self._dynamics.state
        time_s = self.step_index * self.dt
        assert self._progress is not None and self._events is not None
        ego_s = self._progress.update(state.x, state.y)
        if self._traffic is not None:
            self._traffic.step(SE2(state.x, state.y, state.yaw), state.speed)
            for fired in self._events.update(time_s, ego_s, state.speed, self._traffic):
                self.event_log.append((time_s, fired.event.kind.value, fired.message))
        return self._observe()

    def _observe(self) -> Observation:
        assert self.route is not None
        timestamp_ns = self.step_index * int(round(self.dt * NS_PER_S))
        ego = self._dynamics.ego_state(timestamp_ns)
        ego_box = self._dynamics.ego_box()
        if self._traffic is not None:
            truth = GroundTruth(
                agents=self._traffic.agents(), traffic_lights=self._traffic.traffic_lights()
            )
        else:
            truth = GroundTruth()
        images: dict[str, CameraImage] = {}
        lidar: dict[str, LidarSweep] = {}
        rig = self.config.rig or SensorRig()
        if (
            self.config.rig is not None
            and self._world is not None
            and self.step_index % self._sensor_every == 0
        ):
            actors = Actors.concatenate(
                [
                    Actors.from_agents(truth.agents),
                    traffic_light_actors(truth.traffic_lights, world=self._world),
                ]
            )
            ego_to_world = SE3.from_se2(ego.pose, 0.0)
            for cam in rig.cameras:
                rgb, depth, semantic = render_camera(
                    self._world, actors, cam, ego_to_world @ cam.extrinsics
                )
                images[cam.name] = CameraImage(
                    camera=cam.name,
                    timestamp_ns=timestamp_ns,
                    rgb=rgb,
                    depth=depth,
                    semantic=semantic,
                )
            for spec in rig.lidars:
                points, semantic_l = render_lidar(
                    self._world,
                    actors,
                    spec,
                    ego_to_world @ spec.extrinsics,
                    self._sensor_rng,
                    self.config.lidar_noise,
                )
                lidar[spec.name] = LidarSweep(
                    lidar=spec.name, timestamp_ns=timestamp_ns, points=points, semantic=semantic_l
                )
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
            ego_box=ego_box,
            route=self.route,
            step=self.step_index,
            sim_time_s=self.step_index * self.dt,
            info={"control_warnings": self.control_warnings},
        )

    def _shutdown_traffic(self) -> None:
        if self._traffic is not None:
            self._traffic.close()
            self._traffic = None

    def _close(self) -> None:
        self._shutdown_traffic()
