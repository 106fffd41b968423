"""Benchmark: the embedded simulator's ray-cast camera and lidar (Numba kernels vs NumPy oracle).

For each map (a generated 3 x 3 town and CARLA's Town01 when the shared data has it) the render
world is built once; then, at ego poses on the lanes with ``n_actors`` vehicles around the ego,
it times :func:`~kaido.simulation.embedded.raycast.render_camera` for the default rig's camera
and :func:`~kaido.simulation.embedded.raycast.render_lidar` for its lidar (one full sweep). The
NumPy oracles (:mod:`kaido.simulation.embedded.raycast_reference`) run in the same process on a
camera scaled down by ``reference_scale`` and on as many azimuth steps of the lidar scaled
likewise (they test every box on every ray), so both are compared in rays per second:
``ratio_vs_reference = kernel rays/s / reference rays/s``. ``sensor_ms_per_tick`` is the
camera's plus the lidar's median and ``sensor_realtime_factor`` how many times faster than real
time the sensors alone render at ``rate_hz``. Prints a table and writes ``raycast.json``.

Usage: ``python -m benchmarks.bench_raycast [--out DIR] [--repeats N] [--actors N] [--threads N]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from kaido.provenance import provenance
from kaido.scene.agents import AgentClass, AgentState
from kaido.scene.geometry import SE2, SE3, Box3D
from kaido.scene.road_map import RoadMap
from kaido.scene.sensors import CameraSpec, LidarSpec, load_sensor_rig
from kaido.scene.town_generator import TownSpec, generate_town
from kaido.simulation.embedded.raycast import Actors, render_camera, render_lidar
from kaido.simulation.embedded.raycast_reference import (
    render_camera_reference,
    render_lidar_reference,
)
from kaido.simulation.embedded.world import RenderWorld, build_render_world

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RIG = ROOT / "configs" / "sensors" / "default.yaml"
TOWN01 = ROOT.parent / "shared" / "data" / "maps" / "Town01.xodr"

FloatArray = npt.NDArray[np.float64]


# -- scenes (kept apart from the timing code) ------------------------------------------------------


def default_maps() -> dict[str, RoadMap]:
    """The generated 3 x 3 town, and Town01 when the shared data folder holds it."""
    maps = {
        "town3x3": RoadMap.from_opendrive(
            generate_town(TownSpec(rows=3, cols=3, seed=0, name="town3x3")), "town3x3"
        )
    }
    if TOWN01.is_file():
        maps["Town01"] = RoadMap.from_file(TOWN01)
    return maps


def traffic_around(road_map: RoadMap, ego: SE2, n_actors: int) -> Actors:
    """``n_actors`` cars on the lanes nearest the ego (none within 8 m of it), deterministic."""
    spawn = road_map.spawn_points(spacing=9.0, junction_clearance=6.0)
    distance = np.hypot(spawn[:, 0] - ego.x, spawn[:, 1] - ego.y)
    order = np.argsort(distance, kind="stable")
    picks = [i for i in order if distance[i] > 8.0][:n_actors]
    agents = [
        AgentState(
            int(i),
            AgentClass.VEHICLE,
            Box3D(spawn[i, 0], spawn[i, 1], 0.75, spawn[i, 2], 4.6, 1.9, 1.5),
            (0.0, 0.0),
            0,
        )
        for i in picks
    ]
    return Actors.from_agents(agents)


def ego_poses(road_map: RoadMap, n: int, seed: int) -> list[SE2]:
    """``n`` ego poses at random spawn points of the map."""
    spawn = road_map.spawn_points()
    rng = np.random.default_rng(seed)
    return [SE2(*map(float, spawn[i])) for i in rng.choice(len(spawn), n, replace=len(spawn) < n)]


def scaled_camera(camera: CameraSpec, scale: float) -> CameraSpec:
    """The camera with its image scaled by ``scale`` (same field of view and pose)."""
    width = max(int(round(camera.width * scale)), 2)
    height = max(int(round(camera.height * scale)), 2)
    fov = math.degrees(camera.horizontal_fov)
    return CameraSpec.from_fov(camera.name, width, height, fov, camera.extrinsics)


def with_azimuths(lidar: LidarSpec, azimuths: int) -> LidarSpec:
    """The lidar firing ``azimuths`` times per turn."""
    pps = int(math.ceil(azimuths * lidar.channels * lidar.rotation_frequency))
    return LidarSpec(
        lidar.name,
        lidar.extrinsics,
        lidar.channels,
        lidar.upper_fov,
        lidar.lower_fov,
        lidar.range_min,
        lidar.range_max,
        lidar.rotation_frequency,
        pps,
    )


# -- timing ----------------------------------------------------------------------------------------


def _time_ms(fn: Callable[..., Any], *args: Any) -> float:
    """Wall time [ms] of one call ``fn(*args)``."""
    t0 = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - t0) * 1e3


def _summary(times_ms: FloatArray, rays: int) -> dict[str, float]:
    median = float(np.median(times_ms))
    return {
        "median_ms": median,
        "p90_ms": float(np.percentile(times_ms, 90)),
        "mean_ms": float(np.mean(times_ms)),
        "rays": rays,
        "rays_per_s": rays / (median * 1e-3),
        "calls": len(times_ms),
    }


def _bench_map(
    road_map: RoadMap,
    camera: CameraSpec,
    lidar: LidarSpec,
    repeats: int,
    n_actors: int,
    reference_scale: float,
    seed: int,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    world: RenderWorld = build_render_world(road_map)
    build_s = time.perf_counter() - t0
    poses = ego_poses(road_map, repeats, seed)
    scenes = [(pose, traffic_around(road_map, pose, n_actors)) for pose in poses]
    rng = np.random.default_rng(seed)

    def cam_call(pose: SE2, actors: Actors, spec: CameraSpec, fn: Callable[..., Any]) -> Any:
        return fn(world, actors, spec, SE3.from_se2(pose) @ spec.extrinsics)

    def lidar_call(pose: SE2, actors: Actors, spec: LidarSpec, fn: Callable[..., Any]) -> Any:
        return fn(world, actors, spec, SE3.from_se2(pose) @ spec.extrinsics, rng)

    t0 = time.perf_counter()
    cam_call(*scenes[0], camera, render_camera)
    lidar_call(*scenes[0], lidar, render_lidar)
    first_call_s = time.perf_counter() - t0

    cam_ms = np.array([_time_ms(cam_call, p, a, camera, render_camera) for p, a in scenes])
    lidar_ms = np.array([_time_ms(lidar_call, p, a, lidar, render_lidar) for p, a in scenes])
    small_cam = scaled_camera(camera, reference_scale)
    small_lidar = with_azimuths(lidar, max(int(round(lidar.azimuth_count * reference_scale)), 1))
    ref_cam_ms = np.array([_time_ms(cam_call, *scenes[0], small_cam, render_camera_reference)])
    ref_lidar_ms = np.array([_time_ms(lidar_call, *scenes[0], small_lidar, render_lidar_reference)])
    points, _ = lidar_call(*scenes[0], lidar, render_lidar)

    out: dict[str, Any] = {
        "world_build_s": build_s,
        "first_call_s": first_call_s,
        "static_boxes": len(world.static_boxes),
        "actors": len(scenes[0][1]),
        "ground_cells": int(world.ground_classes.size),
        "points_per_sweep": int(len(points)),
    }
    for name, kernel, ref, rays, ref_rays in (
        ("camera", cam_ms, ref_cam_ms, camera.width * camera.height,
         small_cam.width * small_cam.height),
        ("lidar", lidar_ms, ref_lidar_ms, lidar.points_per_sweep, small_lidar.points_per_sweep),
    ):  # fmt: skip
        k = _summary(kernel, rays)
        r = _summary(ref, ref_rays)
        out[name] = {
            "kernel": k,
            "reference": r,
            "ratio_vs_reference": k["rays_per_s"] / r["rays_per_s"],
        }
    return out


def run(
    out_dir: Path | None = None,
    repeats: int = 10,
    *,
    maps: Mapping[str, RoadMap] | None = None,
    n_actors: int = 50,
    camera_scale: float = 1.0,
    lidar_azimuths: int | None = None,
    reference_scale: float = 0.125,
    rate_hz: float = 10.0,
    threads: int | None = None,
    rig: Path = DEFAULT_RIG,
    seed: int = 0,
) -> dict[str, Any]:
    """Time the camera and lidar kernels and their oracles; print a table; write ``raycast.json``.

    ``maps`` default to :func:`default_maps`; the sensors are the first camera and lidar of
    ``rig``, the camera scaled by ``camera_scale`` and the lidar firing ``lidar_azimuths`` times
    per turn when given. Each map renders ``repeats`` ego poses (each with its own traffic of
    ``n_actors`` cars). ``threads`` sets Numba's thread count (default: all cores).
    """
    import numba

    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if not 0.0 < reference_scale <= 1.0:
        raise ValueError(f"reference_scale must be in (0, 1], got {reference_scale}")
    if threads is not None:
        numba.set_num_threads(threads)
    sensors = load_sensor_rig(rig)
    camera = scaled_camera(sensors.cameras[0], camera_scale)
    lidar = sensors.lidars[0]
    if lidar_azimuths is not None:
        lidar = with_azimuths(lidar, lidar_azimuths)
    maps = default_maps() if maps is None else maps
    results = {
        name: _bench_map(road_map, camera, lidar, repeats, n_actors, reference_scale, seed)
        for name, road_map in maps.items()
    }
    for row in results.values():
        tick_ms = row["camera"]["kernel"]["median_ms"] + row["lidar"]["kernel"]["median_ms"]
        row["sensor_ms_per_tick"] = tick_ms
        row["sensor_realtime_factor"] = (1e3 / rate_hz) / tick_ms
    report: dict[str, Any] = {
        "benchmark": "raycast",
        "maps": results,
        "machine": {"cpu_count": os.cpu_count(), "numba_threads": numba.get_num_threads()},
        "provenance": provenance(),
        "params": {
            "camera": {"name": camera.name, "width": camera.width, "height": camera.height},
            "lidar": {
                "name": lidar.name,
                "channels": lidar.channels,
                "azimuth_count": lidar.azimuth_count,
                "range_max_m": lidar.range_max,
            },
            "repeats": repeats,
            "n_actors": n_actors,
            "reference_scale": reference_scale,
            "rate_hz": rate_hz,
            "rig": str(rig),
            "seed": seed,
        },
    }
    _print_table(report)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "raycast.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _print_table(report: Mapping[str, Any]) -> None:
    print(
        f"{'map':<10} {'sensor':<7} {'rays':>7} {'median_ms':>10} {'p90_ms':>8} "
        f"{'Mrays/s':>8} {'ref Mrays/s':>12} {'ratio':>8}"
    )
    for name, row in report["maps"].items():
        for sensor in ("camera", "lidar"):
            k = row[sensor]["kernel"]
            r = row[sensor]["reference"]
            print(
                f"{name:<10} {sensor:<7} {k['rays']:>7d} {k['median_ms']:>10.2f} "
                f"{k['p90_ms']:>8.2f} {k['rays_per_s'] / 1e6:>8.2f} "
                f"{r['rays_per_s'] / 1e6:>12.3f} {row[sensor]['ratio_vs_reference']:>7.0f}x"
            )
        print(
            f"{name:<10} sensors {row['sensor_ms_per_tick']:.1f} ms per tick "
            f"({row['sensor_realtime_factor']:.1f}x real time at "
            f"{report['params']['rate_hz']:g} Hz); {row['static_boxes']} buildings, "
            f"{row['actors']} actors; world built in {row['world_build_s']:.2f} s; first call "
            f"{row['first_call_s']:.2f} s"
        )
    machine = report["machine"]
    print(f"{machine['numba_threads']} Numba threads on {machine['cpu_count']} cores")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for raycast.json")
    parser.add_argument("--repeats", type=int, default=10, help="ego poses per map")
    parser.add_argument("--actors", type=int, default=50, help="cars around the ego")
    parser.add_argument("--threads", type=int, default=None, help="Numba threads")
    parser.add_argument("--rig", type=Path, default=DEFAULT_RIG, help="sensor rig YAML")
    args = parser.parse_args(argv)
    run(args.out, args.repeats, n_actors=args.actors, threads=args.threads, rig=args.rig)


if __name__ == "__main__":
    main()
