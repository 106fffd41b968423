"""kaido as a CARLA Leaderboard 2.0 agent.

Hand this module to the leaderboard evaluator (``TEAM_AGENT=.../leaderboard_agent.py``); it
exposes :func:`get_entry_point` and :class:`KaidoLeaderboardAgent`, which follows the
leaderboard's ``AutonomousAgent`` interface: ``setup(path_to_conf_file)``, ``sensors()``,
``set_global_plan(global_plan_gps, global_plan_world_coord)``, ``run_step(input_data,
timestamp) -> carla.VehicleControl``, ``destroy()`` and ``__call__()``. The module imports and runs
without the ``leaderboard`` package; when that package is importable, its sensor interface and
``CarlaDataProvider`` are used for ``__call__``, the map and the world's traffic lights.

Every tick ``input_data`` (``{sensor id: (frame number, payload)}``) becomes one kaido
:class:`~kaido.scene.frame.Frame`:

* cameras (BGRA ``(H, W, 4)``) and lidar (``(N, 4)``, CARLA's sensor frame) are decoded with
  :mod:`kaido.simulation.carla.convert`; a reading enters the frame only when its frame number
  is new (a sensor slower than the simulation repeats its last reading in between);
* the ego state comes from the sensors alone: position from the GNSS (through the map's
  geo-reference), heading from the IMU compass, forward speed from the speedometer,
  acceleration and yaw rate from the IMU; the road-wheel angle, which no sensor measures, is
  ``atan(wheelbase * yaw_rate / speed)`` when moving and otherwise follows the commanded angle
  through the vehicle profile's steering lag (:class:`SteeringObserver`).

The GNSS and IMU sit on the rear axle (kaido's ego origin), so no lever arm enters the pose.
The frame then drives a kaido :class:`~kaido.simulation.agents.DrivingAgent` (``learned`` by
default) on the route the leaderboard gives; the agent never sees ground truth. The world route
(``global_plan_world_coord``) is used when given, otherwise the GPS route is projected.

Configuration (``TEAM_CONFIG``, YAML; every key optional)::

    agent: learned                 # a registered kaido agent that drives from sensors
    agent_options: {checkpoint: checkpoints/tiny.ckpt}
    rig: configs/sensors/default.yaml
    vehicle: configs/vehicles/sedan.yaml
    map: null                      # OpenDRIVE file; default: the leaderboard's map
    track: MAP                     # MAP (OpenDRIVE sensor allowed) or SENSORS
    dt: 0.05                       # [s] the simulation step when the world cannot be asked

Relative paths are resolved against the config file's folder, then the kaido repository.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import carla
import numpy as np
import numpy.typing as npt
import yaml

from kaido.provenance import REPO_ROOT
from kaido.scene.agents import Control, EgoState
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
from kaido.scene.sensors import SensorRig, load_sensor_rig
from kaido.scene.vehicle import DEFAULT_VEHICLE, VehicleProfile, load_vehicle_profile
from kaido.simulation.agents import DrivingAgent, make_agent
from kaido.simulation.backend import Observation
from kaido.simulation.carla.convert import (
    GeoProjection,
    ImuReading,
    bgra_to_camera_image,
    kaido_control_to_carla,
    lidar_to_sweep,
    se3_to_transform,
    speed_from_speedometer,
    transform_to_se3,
)

__all__ = [
    "GNSS_ID",
    "IMU_ID",
    "MAP_ID",
    "SPEED_ID",
    "KaidoLeaderboardAgent",
    "LeaderboardAgentConfig",
    "SteeringObserver",
    "Track",
    "downsample_route",
    "get_entry_point",
    "load_agent_config",
]

FloatArray = npt.NDArray[np.float64]
NS_PER_S = 1_000_000_000

GNSS_ID = "GPS"
IMU_ID = "IMU"
SPEED_ID = "SPEED"
MAP_ID = "OpenDRIVE"
DEFAULT_RIG = REPO_ROOT / "configs" / "sensors" / "default.yaml"


def get_entry_point() -> str:
    """The name of the agent class in this module (the leaderboard's entry point)."""
    return "KaidoLeaderboardAgent"


class Track(Enum):
    """The leaderboard 2.0 tracks (``leaderboard.autoagents.autonomous_agent.Track``)."""

    SENSORS = "SENSORS"
    MAP = "MAP"
    SENSORS_QUALIFIER = "SENSORS_QUALIFIER"
    MAP_QUALIFIER = "MAP_QUALIFIER"


@dataclass(frozen=True)
class LeaderboardAgentConfig:
    """What the leaderboard agent drives with (see the module docstring for the YAML form)."""

    agent: str = "learned"
    """Registered kaido agent that drives from sensors and the map."""
    agent_options: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments of the agent (e.g. ``checkpoint``)."""
    rig: Path = DEFAULT_RIG
    """Sensor rig YAML: the cameras and lidars to ask the leaderboard for."""
    vehicle: Path = DEFAULT_VEHICLE
    """Vehicle profile YAML (limits, geometry)."""
    map: Path | None = None
    """OpenDRIVE file of the town; None: the leaderboard's (OpenDRIVE sensor or world)."""
    track: Track = Track.MAP
    """The leaderboard track the agent enters."""
    dt: float = 0.05
    """[s] simulation step, used when the world's fixed delta cannot be read."""
    route_spacing: float = 30.0
    """[m] the dense leaderboard route is thinned to waypoints this far apart for planning."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.dt) and 0.0 < self.dt <= 0.5):
            raise ValueError(f"leaderboard agent config: dt must be in (0, 0.5] s, got {self.dt}")
        if not (math.isfinite(self.route_spacing) and self.route_spacing > 0.0):
            raise ValueError(
                f"leaderboard agent config: route_spacing must be > 0 m, got {self.route_spacing}"
            )
        object.__setattr__(self, "agent_options", dict(self.agent_options))


_CONFIG_KEYS = ("agent", "agent_options", "rig", "vehicle", "map", "track", "dt", "route_spacing")
_PATH_OPTIONS = ("checkpoint", "rig")


def _resolve(value: object, base: Path, where: str) -> Path:
    if not isinstance(value, str | Path) or not str(value):
        raise ValueError(f"{where}: expected a path, got {value!r}")
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    for root in (base, REPO_ROOT):
        if (root / path).exists():
            return root / path
    return base / path


def load_agent_config(path: str | Path | None) -> LeaderboardAgentConfig:
    """The agent's configuration from ``path`` (YAML); None, ``""`` or a folder give defaults.

    Errors name the file and the key.
    """
    if path is None or not str(path) or Path(path).is_dir():
        return LeaderboardAgentConfig()
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as err:
        raise FileNotFoundError(f"{p}: cannot read the agent config: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ValueError(f"{p}: invalid YAML: {err}") from err
    if data is None:
        return LeaderboardAgentConfig()
    if not isinstance(data, Mapping):
        raise ValueError(f"{p}: expected a mapping of {list(_CONFIG_KEYS)}, got {data!r}")
    unknown = sorted(str(k) for k in set(data) - set(_CONFIG_KEYS))
    if unknown:
        raise ValueError(f"{p}: unknown keys {unknown}; allowed keys are {list(_CONFIG_KEYS)}")
    base = p.resolve().parent
    kwargs: dict[str, Any] = {}
    if "agent" in data:
        kwargs["agent"] = str(data["agent"])
    options = data.get("agent_options") or {}
    if not isinstance(options, Mapping):
        raise ValueError(f"{p}: agent_options must be a mapping, got {options!r}")
    kwargs["agent_options"] = {
        str(k): _resolve(v, base, f"{p}: agent_options.{k}") if k in _PATH_OPTIONS else v
        for k, v in options.items()
    }
    for key in ("rig", "vehicle"):
        if data.get(key) is not None:
            kwargs[key] = _resolve(data[key], base, f"{p}: {key}")
    if data.get("map") is not None:
        kwargs["map"] = _resolve(data["map"], base, f"{p}: map")
    if "track" in data:
        try:
            kwargs["track"] = Track(str(data["track"]).upper())
        except ValueError:
            raise ValueError(
                f"{p}: track must be one of {[t.value for t in Track]}, got {data['track']!r}"
            ) from None
    for key in ("dt", "route_spacing"):
        if key in data:
            try:
                kwargs[key] = float(data[key])
            except (TypeError, ValueError):
                raise ValueError(f"{p}: {key} must be a number, got {data[key]!r}") from None
    try:
        return LeaderboardAgentConfig(**kwargs)
    except ValueError as err:
        raise ValueError(f"{p}: {err}") from err


class SteeringObserver:
    """The road-wheel angle [rad, positive left], which no leaderboard sensor measures.

    Moving (``|speed| > min_speed``), the kinematic bicycle gives it from the yaw rate:
    ``atan(wheelbase * yaw_rate / speed)``. Standing, it follows the commanded angle
    ``-steer * max_steer`` through the profile's first-order steering lag with its rate limit,
    integrated in substeps of at most ``max_substep`` seconds.
    """

    def __init__(
        self, profile: VehicleProfile, min_speed: float = 0.5, max_substep: float = 0.01
    ) -> None:
        self.profile = profile
        self.min_speed = float(min_speed)
        self.max_substep = float(max_substep)
        self.angle = 0.0

    def measure(self, speed: float, yaw_rate: float) -> float:
        """The wheel angle now, from the measured ``speed`` [m/s] and ``yaw_rate`` [rad/s]."""
        if abs(speed) > self.min_speed and math.isfinite(yaw_rate):
            angle = math.atan(self.profile.wheelbase * yaw_rate / speed)
            self.angle = min(max(angle, -self.profile.max_steer), self.profile.max_steer)
        return self.angle

    def command(self, control: Control, dt: float) -> None:
        """Advance the lag model by ``dt`` [s] under ``control``."""
        p = self.profile
        n = max(math.ceil(dt / self.max_substep - 1e-9), 1)
        h = dt / n
        gain = 1.0 - math.exp(-h / p.steer_time_constant) if p.steer_time_constant > 0 else 1.0
        max_step = p.max_steer_rate * h
        target = -control.steer * p.max_steer
        for _ in range(n):
            step = (target - self.angle) * gain
            self.angle += min(max(step, -max_step), max_step)


def _option_value(option: object) -> int:
    value = getattr(option, "value", option)
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0


def downsample_route(
    points: npt.ArrayLike, options: Sequence[object] | None, spacing: float
) -> npt.NDArray[np.int64]:
    """Indices of the points of a dense route ``(N, 2|3)`` worth keeping as waypoints.

    Keeps the first and last point, every point where the road option changes, and otherwise a
    point once the route has run ``spacing`` [m] since the last one kept.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2 or len(p) < 2:
        raise ValueError(f"downsample_route: expected (N>=2, 2|3) points, got {p.shape}")
    values = [_option_value(o) for o in options] if options is not None else [0] * len(p)
    if len(values) != len(p):
        raise ValueError(
            f"downsample_route: {len(values)} options for {len(p)} points (need one each)"
        )
    keep = [0]
    run = 0.0
    for i in range(1, len(p)):
        run += float(np.hypot(*(p[i, :2] - p[i - 1, :2])))
        if i == len(p) - 1 or values[i] != values[i - 1] or run >= spacing:
            keep.append(i)
            run = 0.0
    return np.asarray(keep, dtype=np.int64)


def _leaderboard() -> dict[str, Any]:
    """The leaderboard's runtime pieces when the package is installed, else empty."""
    try:
        from leaderboard.autoagents.autonomous_agent import Track as LeaderboardTrack
        from leaderboard.envs.sensor_interface import SensorInterface
        from srunner.scenariomanager.carla_data_provider import CarlaDataProvider
        from srunner.scenariomanager.timer import GameTime
    except ImportError:
        return {}
    return {
        "Track": LeaderboardTrack,
        "SensorInterface": SensorInterface,
        "CarlaDataProvider": CarlaDataProvider,
        "GameTime": GameTime,
    }


class KaidoLeaderboardAgent:
    """The kaido stack behind the leaderboard 2.0 ``AutonomousAgent`` interface."""

    def __init__(self, carla_host: str = "localhost", carla_port: int = 2000, debug: bool = False):
        self.carla_host = carla_host
        self.carla_port = int(carla_port)
        self.debug = bool(debug)
        self.track: Any = Track.MAP
        """The leaderboard track (the leaderboard's own ``Track`` enum when it is installed)."""
        self._global_plan: list[Any] | None = None
        self._global_plan_world_coord: list[Any] | None = None
        self._leaderboard = _leaderboard()
        self.sensor_interface: Any = (
            self._leaderboard["SensorInterface"]() if self._leaderboard else None
        )
        self.wallclock_t0: Any = None
        self.config = LeaderboardAgentConfig()
        self.rig = SensorRig()
        self.profile = VehicleProfile()
        self.agent: DrivingAgent | None = None
        self.road_map: RoadMap | None = None
        self.route: RoutePlan | None = None
        self.projection: GeoProjection | None = None
        self.steering = SteeringObserver(self.profile)
        self._xodr: str | None = None
        self._map_name = "carla"
        self._dt = 0.05
        self._step = 0
        self._last_time: float | None = None
        self._seen: dict[str, int] = {}
        self._lights: tuple[TrafficLightState, ...] = ()
        self.last_frame: Frame | None = None

    # -- the leaderboard's interface --------------------------------------------------------------

    def setup(self, path_to_conf_file: str | Path | None) -> None:
        """Read the configuration; build the rig, vehicle profile and inner agent."""
        self.config = load_agent_config(path_to_conf_file)
        # the evaluator compares ``track`` with its own enum when the leaderboard is installed
        lb_track = self._leaderboard.get("Track")
        self.track = lb_track(self.config.track.value) if lb_track else self.config.track
        self.rig = load_sensor_rig(self.config.rig)
        self.profile = load_vehicle_profile(self.config.vehicle)
        self.steering = SteeringObserver(self.profile)
        options = dict(self.config.agent_options)
        if self.config.agent == "learned":
            options.setdefault("rig", self.config.rig)
        self.agent = make_agent(self.config.agent, **options)
        self._dt = self.config.dt
        if self.config.map is not None:
            path = Path(self.config.map)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such OpenDRIVE file (agent config 'map')")
            self._set_map(path.read_text(encoding="utf-8"), path.stem)

    def sensors(self) -> list[dict[str, Any]]:
        """The rig's cameras and lidars plus GNSS, IMU, speedometer (and the OpenDRIVE map on
        the MAP tracks), in the leaderboard's format: poses relative to the vehicle actor in
        CARLA's frame (x, y, z [m], roll, pitch, yaw [deg])."""
        actor_from_ego = SE3.from_euler(-self.profile.rear_axle_to_center, 0, 0, 0, 0, 0)
        out: list[dict[str, Any]] = []

        def pose(extrinsics: SE3) -> dict[str, float]:
            t = se3_to_transform(actor_from_ego @ extrinsics)
            return {
                "x": t.location.x,
                "y": t.location.y,
                "z": t.location.z,
                "roll": t.rotation.roll,
                "pitch": t.rotation.pitch,
                "yaw": t.rotation.yaw,
            }

        for cam in self.rig.cameras:
            if not (
                math.isclose(cam.fx, cam.fy)
                and math.isclose(cam.cx, cam.width / 2.0)
                and math.isclose(cam.cy, cam.height / 2.0)
            ):
                raise ValueError(
                    f"camera {cam.name!r}: CARLA cameras have square pixels and a centred "
                    "principal point; give the rig camera a fov_deg"
                )
            out.append(
                {
                    "type": "sensor.camera.rgb",
                    **pose(cam.extrinsics),
                    "width": cam.width,
                    "height": cam.height,
                    "fov": math.degrees(cam.horizontal_fov),
                    "id": cam.name,
                }
            )
        for lidar in self.rig.lidars:
            lidar_pose = pose(lidar.extrinsics)
            out.append({"type": "sensor.lidar.ray_cast", **lidar_pose, "id": lidar.name})
        axle = pose(SE3.identity())
        out.append({"type": "sensor.other.gnss", **axle, "id": GNSS_ID})
        out.append({"type": "sensor.other.imu", **axle, "sensor_tick": self._dt, "id": IMU_ID})
        rate = 1.0 / self._dt
        out.append({"type": "sensor.speedometer", "reading_frequency": rate, "id": SPEED_ID})
        if self.config.track in (Track.MAP, Track.MAP_QUALIFIER):
            out.append({"type": "sensor.opendrive_map", "reading_frequency": 1, "id": MAP_ID})
        return out

    def set_global_plan(
        self, global_plan_gps: Sequence[Any], global_plan_world_coord: Sequence[Any]
    ) -> None:
        """Keep the route the leaderboard gives: ``[(carla.Transform, RoadOption), ...]`` and
        ``[({'lat', 'lon', 'z'}, RoadOption), ...]``; it is planned on the map at the first
        step."""
        self._global_plan = list(global_plan_gps) if global_plan_gps is not None else None
        self._global_plan_world_coord = (
            list(global_plan_world_coord) if global_plan_world_coord is not None else None
        )
        self.route = None

    def run_step(self, input_data: Mapping[str, Any], timestamp: float) -> carla.VehicleControl:
        """The control for this tick from the leaderboard's ``input_data`` at ``timestamp`` [s]."""
        if self.agent is None:
            raise RuntimeError("KaidoLeaderboardAgent.run_step: call setup() first")
        frame = self.frame_from_input(input_data, timestamp)
        assert self.road_map is not None and self.route is not None
        if self._step == 0:
            self.agent.setup(
                road_map=self.road_map, route=self.route, profile=self.profile, dt=self._dt
            )
        obs = Observation(
            frame=frame,
            ego_box=self._ego_box(frame.ego.pose),
            route=self.route,
            step=self._step,
            sim_time_s=float(timestamp),
            info={"source": "leaderboard"},
        )
        control = self.agent.run_step(obs)
        self.steering.command(control, self._dt)
        self._step += 1
        return kaido_control_to_carla(control)

    def destroy(self) -> None:
        """Release the inner agent."""
        if self.agent is not None:
            self.agent.destroy()

    def __call__(self) -> carla.VehicleControl:
        """One tick as the leaderboard's agent wrapper calls it (needs the leaderboard)."""
        if not self._leaderboard:
            raise RuntimeError(
                "KaidoLeaderboardAgent(): calling the agent needs the leaderboard package; "
                "use run_step(input_data, timestamp) directly"
            )
        game_time = self._leaderboard["GameTime"]
        input_data = self.sensor_interface.get_data(game_time.get_frame())
        timestamp = game_time.get_time()
        if not self.wallclock_t0:
            self.wallclock_t0 = game_time.get_wallclocktime()
        control = self.run_step(input_data, timestamp)
        control.manual_gear_shift = False
        return control

    @staticmethod
    def get_ros_version() -> int:
        return -1

    # -- input_data → Frame ---------------------------------------------------------------------

    def frame_from_input(self, input_data: Mapping[str, Any], timestamp: float) -> Frame:
        """The kaido :class:`Frame` of one tick of ``input_data`` (no ground truth).

        Raises ``ValueError`` naming the sensor when a required reading is missing or malformed.
        """
        if not math.isfinite(timestamp):
            raise ValueError(f"run_step: timestamp must be finite, got {timestamp}")
        timestamp_ns = int(round(float(timestamp) * NS_PER_S))
        self._ensure_map(input_data)
        self._ensure_route()
        self._update_dt(timestamp)
        assert self.projection is not None
        gnss = self._payload(input_data, GNSS_ID)
        imu = ImuReading.from_carla(self._payload(input_data, IMU_ID))
        speed = speed_from_speedometer(self._payload(input_data, SPEED_ID))
        position = self.projection.to_world(gnss)
        yaw_rate = imu.angular_velocity[2]
        ego = EgoState(
            timestamp_ns=timestamp_ns,
            pose=SE2(float(position[0]), float(position[1]), imu.yaw),
            velocity=(speed, 0.0),
            acceleration=(imu.acceleration[0], imu.acceleration[1]),
            yaw_rate=yaw_rate,
            steering_angle=self.steering.measure(speed, yaw_rate),
        )
        images: dict[str, CameraImage] = {}
        lidar: dict[str, LidarSweep] = {}
        for cam in self.rig.cameras:
            payload = self._fresh(input_data, cam.name)
            if payload is not None:
                images[cam.name] = bgra_to_camera_image(payload, cam.name, timestamp_ns)
        for spec in self.rig.lidars:
            payload = self._fresh(input_data, spec.name)
            if payload is not None:
                lidar[spec.name] = lidar_to_sweep(payload, spec.name, timestamp_ns)
        truth = GroundTruth(traffic_lights=self._lights) if self._lights else None
        frame = Frame(
            timestamp_ns=timestamp_ns,
            ego=ego,
            images=images,
            lidar=lidar,
            rig=self.rig,
            ground_truth=truth,
        )
        self.last_frame = frame
        return frame

    def _payload(self, input_data: Mapping[str, Any], sensor_id: str) -> Any:
        if sensor_id not in input_data:
            raise ValueError(
                f"input_data has no reading of sensor {sensor_id!r}; it has {sorted(input_data)}"
            )
        entry = input_data[sensor_id]
        if not isinstance(entry, tuple | list) or len(entry) != 2:
            raise ValueError(
                f"input_data[{sensor_id!r}]: expected (frame number, payload), got {type(entry)}"
            )
        return entry[1]

    def _fresh(self, input_data: Mapping[str, Any], sensor_id: str) -> Any:
        """The payload of ``sensor_id`` if its frame number is new since the last tick."""
        if sensor_id not in input_data:
            return None
        entry = input_data[sensor_id]
        frame_number = int(entry[0])
        if self._seen.get(sensor_id) == frame_number:
            return None
        self._seen[sensor_id] = frame_number
        return entry[1]

    # -- map and route --------------------------------------------------------------------------

    def _set_map(self, xodr: str, name: str) -> None:
        self._xodr = xodr
        self._map_name = name
        self.road_map = RoadMap.from_opendrive(xodr, name=name)
        self.projection = GeoProjection(xodr, name)

    def _ensure_map(self, input_data: Mapping[str, Any]) -> None:
        if self.road_map is not None:
            return
        if MAP_ID in input_data:
            payload = input_data[MAP_ID][1]
            text = payload.get("opendrive") if isinstance(payload, Mapping) else payload
            if isinstance(text, str) and text.strip():
                self._set_map(text, self._world_map_name() or "carla")
                self._lights = self._world_lights()
                return
        provider = self._leaderboard.get("CarlaDataProvider")
        if provider is not None and provider.get_map() is not None:
            world_map = provider.get_map()
            self._set_map(world_map.to_opendrive(), world_map.name.split("/")[-1])
            self._lights = self._world_lights()
            return
        raise ValueError(
            "the leaderboard agent has no map: set 'map' in the agent config, enter the MAP "
            f"track (sensor {MAP_ID!r}), or run it inside the leaderboard"
        )

    def _world_map_name(self) -> str | None:
        provider = self._leaderboard.get("CarlaDataProvider")
        if provider is None or provider.get_map() is None:
            return None
        return str(provider.get_map().name).split("/")[-1]

    def _world_lights(self) -> tuple[TrafficLightState, ...]:
        """The world's traffic lights (where they and their stop lines are, colour unknown):
        map knowledge the MAP track allows, read once when the leaderboard is present."""
        provider = self._leaderboard.get("CarlaDataProvider")
        if provider is None or provider.get_world() is None or self.road_map is None:
            return ()
        from kaido.simulation.carla.backend import traffic_lights_from_world

        lights = traffic_lights_from_world(provider.get_world(), self.road_map)
        return tuple(dataclasses.replace(x, color=TrafficLightColor.UNKNOWN) for x in lights)

    def _ensure_route(self) -> None:
        if self.route is not None:
            return
        assert self.road_map is not None and self.projection is not None
        waypoints, yaws, options = self._route_points()
        keep = downsample_route(waypoints, options, self.config.route_spacing)
        self.route = plan_route(
            self.road_map, waypoints[keep, :2], yaws=None if yaws is None else yaws[keep]
        )

    def _route_points(self) -> tuple[FloatArray, FloatArray | None, list[object]]:
        plan = self._global_plan_world_coord
        if plan:
            poses = [transform_to_se3(entry[0]) for entry in plan]
            points = np.array([p.translation for p in poses], dtype=np.float64)
            yaws = np.array([p.to_se2().yaw for p in poses], dtype=np.float64)
            return points, yaws, [entry[1] for entry in plan]
        gps = self._global_plan
        if gps:
            assert self.projection is not None
            points = self.projection.to_world_many([entry[0] for entry in gps])
            return points, None, [entry[1] for entry in gps]
        raise ValueError("the leaderboard agent has no route: set_global_plan() was not called")

    def _update_dt(self, timestamp: float) -> None:
        provider = self._leaderboard.get("CarlaDataProvider")
        if self._step == 0 and provider is not None and provider.get_world() is not None:
            delta = provider.get_world().get_settings().fixed_delta_seconds
            if delta:
                self._dt = float(delta)
        self._last_time = float(timestamp)

    def _ego_box(self, pose: SE2) -> Box3D:
        p = self.profile
        ahead = p.rear_axle_to_center
        return Box3D(
            x=pose.x + ahead * math.cos(pose.yaw),
            y=pose.y + ahead * math.sin(pose.yaw),
            z=0.5 * p.height,
            yaw=pose.yaw,
            length=p.length,
            width=p.width,
            height=p.height,
        )
