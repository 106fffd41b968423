"""Benchmark: the privileged expert's CARLA Leaderboard 2.0 driving score on a fixed route set.

The route set: kaido's generated towns for seeds 0-3 (each a random route, set up exactly as
``kaido drive --seed N`` does), and CARLA Leaderboard 1.0 training routes in Town01 (urban, two
routes) and Town06 (highway with junctions and merges, the two shortest routes), from
``/work/shared/data`` (a route whose map or route file is absent is skipped and listed). Every
route runs closed loop in the embedded simulator with the ``expert`` agent (``kaido drive``'s
default), no sensors, SUMO traffic at 15 vehicles/lane-km and pedestrians at 20 persons/km of
sidewalk (where the net has sidewalks), each within its own leaderboard-style time budget
(``kaido.simulation.runner.route_timeout``: no shorter limit). Routes run in worker processes
(two by default, one route per fresh process: libsumo holds one simulation per process).

It prints a table (route, DS, RC, penalty, status, infractions) and writes ``expert.json``:
per-route rows, the mean driving score, the pedestrian-collision count and provenance; each
route's leaderboard ``results.json`` lands in ``expert_routes/<route>/``. Goal: mean DS >= 95
and no pedestrian collision.

Usage: ``kaido bench expert [--out DIR]`` or ``python -m benchmarks.bench_expert [--out DIR]
[--only NAME ...] [--workers N]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

from kaido.provenance import provenance
from kaido.simulation.drive import DriveOptions, drive
from kaido.simulation.results import InfractionKind

DATA = Path("/work/shared/data")
LB1_ROUTES = DATA / "routes" / "lb1_routes_training.xml"
TRAFFIC_DENSITY = 15.0
"""[vehicles/lane-km]"""
PEDESTRIANS = 20.0
"""[persons/km of sidewalk]"""
GOAL_MEAN_DS = 95.0
WORKERS = 2


class BenchRoute(NamedTuple):
    """One route of the set: a generated town (``map_name`` None) or a leaderboard route.

    (A NamedTuple, not a dataclass: ``kaido bench`` loads this file without registering it as a
    module, which dataclasses need.)"""

    name: str
    seed: int = 0
    map_name: str | None = None
    """Stem of ``DATA/maps/<map_name>.xodr``."""
    route_id: str | None = None
    """Id in :data:`LB1_ROUTES`."""


ROUTES: tuple[BenchRoute, ...] = (
    *(BenchRoute(f"town-seed{seed}", seed=seed) for seed in range(4)),
    BenchRoute("Town01-0", map_name="Town01", route_id="0"),
    BenchRoute("Town01-1", map_name="Town01", route_id="1"),
    BenchRoute("Town06-43", map_name="Town06", route_id="43"),
    BenchRoute("Town06-49", map_name="Town06", route_id="49"),
)
"""The fixed route set. Town06's leaderboard routes are 1.5-10.6 km long; the two shortest keep
the benchmark within minutes."""


def _options(
    route: BenchRoute, out_dir: Path, agent: str = "expert", sensors: bool = False
) -> DriveOptions:
    leaderboard = route.map_name is not None
    return DriveOptions(
        out_dir=out_dir / route.name,
        agent=agent,
        map_path=DATA / "maps" / f"{route.map_name}.xodr" if leaderboard else None,
        routes=LB1_ROUTES if leaderboard else None,
        route_id=route.route_id,
        seed=route.seed,
        sensors=sensors,
        traffic_density=TRAFFIC_DENSITY,
        pedestrians=PEDESTRIANS,
        progress=False,
        video=False,
        mcap=False,
    )


def _missing(route: BenchRoute) -> str | None:
    """Why ``route`` cannot run here (its data is absent), or None."""
    if route.map_name is None:
        return None
    for path in (DATA / "maps" / f"{route.map_name}.xodr", LB1_ROUTES):
        if not path.is_file():
            return f"{path} is absent"
    return None


def _run_route(
    route: BenchRoute, out_dir: Path, agent: str = "expert", sensors: bool = False
) -> dict[str, Any]:
    """Drive one route (in a worker process) with ``agent`` and summarise it as a row."""
    t0 = time.perf_counter()
    episode = drive(_options(route, out_dir, agent, sensors))
    r = episode.result
    kinds = Counter(i.kind.key for i in r.infractions)
    return {
        "route": route.name,
        "agent": agent,
        "town": r.town_name,
        "route_id": route.route_id,
        "seed": route.seed,
        "driving_score": r.driving_score,
        "route_completion": r.route_completion,
        "infraction_penalty": r.infraction_penalty,
        "status": r.status,
        "route_length_m": r.route_length_m,
        "infraction_counts": dict(kinds),
        "infractions": [
            {"kind": i.kind.key, "time_s": i.time_s, "message": i.message} for i in r.infractions
        ],
        "sim_seconds": episode.sim_seconds,
        "wall_seconds": time.perf_counter() - t0,
        "results": str(episode.results_path),
    }


def _short(row: dict[str, Any]) -> str:
    names = {
        InfractionKind.COLLISION_PEDESTRIAN.key: "ped",
        InfractionKind.COLLISION_VEHICLE.key: "veh",
        InfractionKind.COLLISION_STATIC.key: "static",
        InfractionKind.RED_LIGHT.key: "red",
        InfractionKind.STOP_SIGN.key: "stop",
        InfractionKind.OUTSIDE_ROUTE_LANES.key: "outside",
        InfractionKind.ROUTE_DEVIATION.key: "deviation",
        InfractionKind.AGENT_BLOCKED.key: "blocked",
        InfractionKind.ROUTE_TIMEOUT.key: "timeout",
    }
    parts = [f"{names.get(k, k)}x{n}" for k, n in row["infraction_counts"].items() if k in names]
    speeds = [
        i["message"].split()[3].rstrip("%")
        for i in row["infractions"]
        if i["kind"] == InfractionKind.MIN_SPEED.key
    ]
    if speeds:
        parts.append("minspeed " + "/".join(speeds) + "%")
    return ", ".join(parts) or "-"


def _worker(route: BenchRoute, base: Path, results: Any, agent: str, sensors: bool) -> None:
    """Worker process body: one route, its row (or the error) onto the ``results`` queue. Math
    libraries run on one thread: the workers share the cores."""
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    try:
        results.put((route.name, _run_route(route, base, agent, sensors), None))
    except Exception:  # the parent reports it; the other routes go on
        results.put((route.name, None, traceback.format_exc()))


def _stop(running: dict[str, Any]) -> None:
    for process in running.values():
        process.terminate()
        process.join()


def _run_all(
    routes: list[BenchRoute],
    base: Path,
    workers: int,
    agent: str = "expert",
    sensors: bool = False,
) -> list[dict[str, Any]]:
    """Rows of ``routes`` in order, each driven by ``agent`` in a fresh forked process (libsumo
    holds one simulation per process), at most ``workers`` at a time."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    # the longest routes (the leaderboard's, Town06 first) start first: the pool drains evenly
    pending = sorted(routes, key=lambda r: (r.map_name is None, r.map_name != "Town06"))
    running: dict[str, Any] = {}
    rows: dict[str, dict[str, Any]] = {}
    while pending or running:
        while pending and len(running) < workers:
            route = pending.pop(0)
            process = context.Process(target=_worker, args=(route, base, results, agent, sensors))
            process.start()
            running[route.name] = process
        try:
            name, row, error = results.get(timeout=5.0)
        except queue.Empty:
            dead = [n for n, p in running.items() if not p.is_alive() and p.exitcode != 0]
            if dead:
                _stop(running)
                raise RuntimeError(f"bench: the worker of route {dead[0]} died") from None
            continue
        running.pop(name).join()
        if error is not None:
            _stop(running)
            raise RuntimeError(f"bench: route {name} failed:\n{error}")
        rows[name] = row
    return [rows[route.name] for route in routes]


def run(
    out_dir: Path | None = None,
    only: tuple[str, ...] | None = None,
    workers: int = WORKERS,
) -> dict[str, Any]:
    """Run the route set (or the routes named in ``only``) and report; see the module docstring."""
    chosen = [r for r in ROUTES if only is None or r.name in only]
    if only is not None:
        unknown = sorted(set(only) - {r.name for r in ROUTES})
        if unknown:
            known = ", ".join(r.name for r in ROUTES)
            raise ValueError(f"bench expert: unknown routes {unknown} (known: {known})")
    skipped = {r.name: why for r in chosen if (why := _missing(r)) is not None}
    runnable = [r for r in chosen if r.name not in skipped]
    base = (out_dir if out_dir is not None else Path("out/bench")) / "expert_routes"
    t0 = time.perf_counter()
    rows = _run_all(runnable, base, max(int(workers), 1))
    wall = time.perf_counter() - t0
    mean_ds = sum(r["driving_score"] for r in rows) / len(rows) if rows else float("nan")
    pedestrian_collisions = sum(
        r["infraction_counts"].get(InfractionKind.COLLISION_PEDESTRIAN.key, 0) for r in rows
    )
    report = {
        "benchmark": "expert",
        "routes": rows,
        "skipped": skipped,
        "mean_driving_score": mean_ds,
        "mean_route_completion": (
            sum(r["route_completion"] for r in rows) / len(rows) if rows else float("nan")
        ),
        "pedestrian_collisions": pedestrian_collisions,
        "wall_seconds": wall,
        "goals": {"mean_driving_score": GOAL_MEAN_DS, "pedestrian_collisions": 0},
        "params": {
            "agent": "expert",
            "sensors": False,
            "traffic_density": TRAFFIC_DENSITY,
            "pedestrians": PEDESTRIANS,
            "route_file": str(LB1_ROUTES),
            "time_limit": "route_timeout (leaderboard-style budget per route)",
            "workers": workers,
        },
        "provenance": provenance(),
    }
    print(f"{'route':<12} {'DS':>6} {'RC':>6} {'penalty':>8}  {'status':<28} infractions")
    for row in rows:
        print(
            f"{row['route']:<12} {row['driving_score']:>6.1f} {row['route_completion']:>6.1f} "
            f"{row['infraction_penalty']:>8.3f}  {row['status'][:28]:<28} {_short(row)}"
        )
    print(
        f"{'mean':<12} {mean_ds:>6.1f}   pedestrian collisions {pedestrian_collisions}   "
        f"wall {wall:.0f} s"
    )
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "expert.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--only", nargs="+", help="route names to run (default: all)")
    parser.add_argument("--workers", type=int, default=WORKERS)
    args = parser.parse_args(argv)
    run(args.out, tuple(args.only) if args.only else None, args.workers)


if __name__ == "__main__":
    main()
