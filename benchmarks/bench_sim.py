"""Benchmark: simulated seconds per wall second of the embedded simulator.

Runs the embedded backend at 10 Hz (dt 0.1 s) on a generated town with about 50 SUMO vehicles,
the baseline agent driving, (a) without sensors and (b) with the default rig (one 640×360
camera, one 32×1024 lidar, every step), and reports the real-time factor of each, plus where the
time goes (SUMO, sensors, agent). The reference point is real time itself (factor 1). Prints a
table and writes ``sim.json``.

Usage: ``kaido bench sim [--out DIR]`` or ``python -m benchmarks.bench_sim``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from kaido.provenance import provenance
from kaido.scene.road_map import RoadMap
from kaido.scene.sensors import load_sensor_rig
from kaido.scene.town_generator import TownSpec, write_town
from kaido.scene.vehicle import VehicleProfile
from kaido.simulation.agents import make_agent
from kaido.simulation.backend import Scenario
from kaido.simulation.drive import DEFAULT_RIG
from kaido.simulation.embedded.backend import EmbeddedBackend, EmbeddedConfig

VEHICLES = 50
DT = 0.1


def _episode(
    map_path: Path, density: float, sensors: bool, sim_seconds: float, seed: int
) -> dict[str, Any]:
    rig = load_sensor_rig(DEFAULT_RIG) if sensors else None
    profile = VehicleProfile()
    backend = EmbeddedBackend(EmbeddedConfig(rig=rig, sensor_period=DT, vehicle=profile))
    agent = make_agent("baseline")
    scenario = Scenario(
        name="bench",
        map_path=map_path,
        traffic_density=density,
        seed=seed,
        dt=DT,
        min_route_length=300.0,
        max_route_length=2000.0,
    )
    with backend:
        t0 = time.perf_counter()
        obs = backend.reset(scenario)
        reset_s = time.perf_counter() - t0
        assert backend.road_map is not None
        agent.setup(road_map=backend.road_map, route=obs.route, profile=profile, dt=DT)
        agent_s = 0.0
        vehicles = []
        steps = int(round(sim_seconds / DT))
        # one warm-up step compiles/loads the Numba kernels outside the timing
        obs = backend.step(agent.run_step(obs))
        t0 = time.perf_counter()
        for _ in range(steps):
            ta = time.perf_counter()
            control = agent.run_step(obs)
            agent_s += time.perf_counter() - ta
            obs = backend.step(control)
            vehicles.append(
                sum(1 for a in obs.ground_truth.agents if a.agent_class.name == "VEHICLE")
            )
        wall = time.perf_counter() - t0
    sim = steps * DT
    return {
        "sim_seconds": sim,
        "wall_seconds": wall,
        "realtime_factor": sim / wall,
        "ms_per_step": 1e3 * wall / steps,
        "agent_ms_per_step": 1e3 * agent_s / steps,
        "reset_s": reset_s,
        "mean_vehicles": float(sum(vehicles) / max(len(vehicles), 1)),
        "sensors": sensors,
    }


def run(out_dir: Path | None = None, sim_seconds: float = 30.0, seed: int = 0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        spec = TownSpec(
            layout="grid", rows=4, cols=4, lanes_per_direction=2, seed=seed, name="bench"
        )
        map_path = write_town(spec, Path(tmp) / "bench.xodr")
        road_map = RoadMap.from_file(map_path)
        # traffic density counts lane-km outside junctions (see TrafficConfig.density)
        lane_km = sum(ln.length for ln in road_map.driving_lanes if not ln.in_junction) / 1000.0
        density = VEHICLES / lane_km
        results = {
            "no_sensors": _episode(map_path, density, False, sim_seconds, seed),
            "default_rig": _episode(map_path, density, True, sim_seconds / 3, seed),
        }
    report = {
        "benchmark": "sim",
        **results,
        "goals": {"no_sensors_realtime_factor": 20.0, "default_rig_realtime_factor": 2.0},
        "params": {
            "dt": DT,
            "vehicles_target": VEHICLES,
            "lane_km": lane_km,
            "town": "grid 4x4, 2 lanes",
        },
        "provenance": provenance(),
    }
    print(f"{'case':<12} {'realtime_x':>10} {'ms_per_step':>12} {'agent_ms':>9} {'vehicles':>9}")
    for name, row in results.items():
        print(
            f"{name:<12} {row['realtime_factor']:>10.1f} {row['ms_per_step']:>12.2f} "
            f"{row['agent_ms_per_step']:>9.2f} {row['mean_vehicles']:>9.1f}"
        )
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "sim.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    run(args.out, args.seconds)


if __name__ == "__main__":
    main()
