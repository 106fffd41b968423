"""``kaido drive``: one closed-loop episode, set up from plain options.

Defaults make the README's main job: a procedural town generated from the seed, a random route
between two spawn points, moderate SUMO traffic, the default sensor rig, the baseline agent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kaido.scene.routes import load_route
from kaido.scene.sensors import load_sensor_rig
from kaido.scene.town_generator import TownSpec, write_town
from kaido.scene.vehicle import DEFAULT_VEHICLE, REPO_CONFIGS, load_vehicle_profile
from kaido.simulation.agents import make_agent
from kaido.simulation.backend import Backend, EventKind, Scenario, ScenarioEvent
from kaido.simulation.embedded.backend import EmbeddedBackend, EmbeddedConfig
from kaido.simulation.runner import EpisodeOptions, EpisodeResult, run_episode

DEFAULT_RIG = REPO_CONFIGS / "sensors" / "default.yaml"


@dataclass(frozen=True)
class DriveOptions:
    """Everything ``kaido drive`` takes."""

    out_dir: Path
    backend: str = "embedded"
    agent: str = "expert"
    map_path: Path | None = None
    """OpenDRIVE map; None generates a town from ``seed`` into ``out_dir/town.xodr``."""
    routes: Path | None = None
    route_id: str | None = None
    seed: int = 0
    seconds: float | None = None
    """[s] simulated time limit (None: the route's own time budget)."""
    sensors: bool = True
    rig: Path = DEFAULT_RIG
    vehicle: Path = DEFAULT_VEHICLE
    traffic_density: float = 15.0
    """[vehicles/lane-km]"""
    pedestrians: float = 0.0
    """[persons/km of sidewalk]"""
    events: tuple[str, ...] = ()
    """``KIND@S[:DISTANCE]`` strings, e.g. ``lead_brake@60`` (see ``EventKind``)."""
    dt: float = 0.05
    progress: bool = True
    video: bool = True
    mcap: bool = True
    extra: dict[str, str] = field(default_factory=dict)
    agent_options: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the agent (e.g. ``checkpoint`` for ``learned``)."""
    host: str = "127.0.0.1"
    """``carla`` backend: the server's host."""
    port: int = 2000
    """``carla`` backend: the server's port."""
    timeout: float = 10.0
    """[s] ``carla`` backend: connection and tick timeout."""


def parse_event(text: str) -> ScenarioEvent:
    """``KIND@TRIGGER_S[:DISTANCE]`` → ScenarioEvent; errors name the bad part."""
    kinds = {k.value: k for k in EventKind}
    kind_text, _, rest = text.partition("@")
    if kind_text not in kinds or not rest:
        raise ValueError(
            f"event {text!r}: expected KIND@S[:DISTANCE] with KIND one of {', '.join(kinds)}"
        )
    trigger_text, _, distance_text = rest.partition(":")
    try:
        trigger = float(trigger_text)
        distance = float(distance_text) if distance_text else 30.0
    except ValueError:
        raise ValueError(f"event {text!r}: trigger and distance must be numbers [m]") from None
    return ScenarioEvent(kind=kinds[kind_text], trigger_s=trigger, distance=distance)


def build_scenario(options: DriveOptions) -> Scenario:
    """The scenario ``options`` describe (writes the generated town when no map is given)."""
    map_path = options.map_path
    carla_town = options.backend == "carla"
    if carla_town and options.routes is not None and options.route_id is not None:
        # CARLA loads the route's own town by name; --map, if given, must be that town
        if map_path is None:
            map_path = Path(f"{load_route(options.routes, options.route_id).town}.xodr")
    elif carla_town and map_path is None:
        map_path = Path("carla.xodr")  # the town the CARLA server has loaded
    if map_path is None:
        map_path = options.out_dir / "town.xodr"
        write_town(
            TownSpec(layout="grid", rows=3, cols=4, seed=options.seed, name="town"), map_path
        )
    elif not carla_town and not Path(map_path).is_file():
        raise FileNotFoundError(f"{map_path}: no such OpenDRIVE file")
    waypoints = yaws = None
    route_id = None
    if options.routes is not None:
        if options.route_id is None:
            raise ValueError("--routes needs --route-id")
        spec = load_route(options.routes, options.route_id)
        from kaido.scene.route_planner import _town_key

        if _town_key(spec.town) != _town_key(Path(map_path).stem):
            raise ValueError(
                f"route {spec.route_id} ({options.routes}) is for town {spec.town!r}, "
                f"but the map is {Path(map_path).stem!r}"
            )
        waypoints, yaws, route_id = spec.waypoints, spec.yaws, spec.route_id
    elif options.route_id is not None:
        raise ValueError("--route-id needs --routes FILE")
    return Scenario(
        name=f"{Path(map_path).stem}-{route_id or 'random'}-seed{options.seed}",
        map_path=Path(map_path),
        route_waypoints=None if waypoints is None else np.asarray(waypoints),
        route_yaws=None if yaws is None else np.asarray(yaws),
        route_id=route_id,
        traffic_density=options.traffic_density,
        pedestrians=options.pedestrians,
        seed=options.seed,
        events=tuple(parse_event(e) for e in options.events),
        dt=options.dt,
    )


def build_backend(
    name: str,
    *,
    rig: Path | None,
    vehicle: Path,
    host: str = "127.0.0.1",
    port: int = 2000,
    timeout: float = 10.0,
) -> Backend:
    """The backend ``name`` (``embedded`` or ``carla``: connected and version-checked) with the
    sensor rig YAML ``rig`` (None: no sensors) and the vehicle profile YAML ``vehicle``."""
    sensor_rig = load_sensor_rig(rig) if rig is not None else None
    profile = load_vehicle_profile(vehicle)
    if name == "embedded":
        return EmbeddedBackend(EmbeddedConfig(rig=sensor_rig, vehicle=profile))
    if name == "carla":
        from kaido.simulation.carla.backend import CarlaBackend, CarlaConfig

        return CarlaBackend(
            CarlaConfig(host=host, port=port, timeout=timeout, rig=sensor_rig, vehicle=profile)
        )
    raise ValueError(f"backend {name!r} is not available (known: embedded, carla)")


def make_backend(options: DriveOptions) -> Backend:
    """The backend ``options.backend`` names (CARLA: connected and version-checked)."""
    return build_backend(
        options.backend,
        rig=options.rig if options.sensors else None,
        vehicle=options.vehicle,
        host=options.host,
        port=options.port,
        timeout=options.timeout,
    )


def drive(options: DriveOptions) -> EpisodeResult:
    """Run one episode as ``kaido drive`` does and return its result.

    The CARLA backend connects before anything else is prepared, so a missing server shows at
    once (``BackendError``).
    """
    early = make_backend(options) if options.backend == "carla" else None
    try:
        options.out_dir.mkdir(parents=True, exist_ok=True)
        scenario = build_scenario(options)
        vehicle = load_vehicle_profile(options.vehicle)
        agent_options = dict(options.agent_options)
        if options.agent == "learned":
            if not options.sensors:
                raise ValueError("agent 'learned' drives from sensors: drop --no-sensors")
            agent_options.setdefault("rig", options.rig)
        agent = make_agent(options.agent, **agent_options)
    except BaseException:
        if early is not None:
            early.close()
        raise
    backend = early if early is not None else make_backend(options)
    with backend:
        return run_episode(
            backend,
            agent,
            scenario,
            EpisodeOptions(
                out_dir=options.out_dir,
                record_mcap=options.mcap,
                record_video=options.video,
                max_seconds=options.seconds,
                progress=options.progress,
            ),
            road_map_of=lambda b: b.road_map,  # type: ignore[attr-defined]
            vehicle=vehicle,
            config=options,
        )
