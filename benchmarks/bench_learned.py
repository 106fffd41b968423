"""Benchmark: the learned stack's closed-loop driving score against the privileged expert's.

The route set: kaido's generated towns for seeds 100-103 (each a random route, set up exactly as
``kaido drive --seed N`` does). The shipped tiny model never trained on them: ``kaido collect``
draws its towns from seeds in ``[0, 2^31)`` per episode, not from these. Each route runs twice
in the embedded simulator, in worker processes (one route per fresh process), with the same
SUMO traffic (15 vehicles/lane-km) and pedestrians (20 persons/km of sidewalk), each within its
leaderboard-style time budget:

- ``expert``: the privileged planner fed ground truth (no sensors);
- ``learned``: sensors only, through the checkpoint (default ``checkpoints/tiny.ckpt``).

It prints a table (route, expert DS, learned DS, learned RC and infractions) and writes
``learned.json``: per-route rows of both agents, the mean driving scores, their ratio (goal:
learned ≥ 80 % of the expert) and the learned stack's pedestrian collisions (goal: none), with
provenance; each route's leaderboard ``results.json`` lands in ``learned_routes/<agent>/<route>/``.

Usage: ``kaido bench learned [--out DIR]`` or ``python -m benchmarks.bench_learned [--out DIR]
[--seeds N ...] [--workers N]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from kaido.provenance import provenance
from kaido.simulation.results import InfractionKind

SEEDS = (100, 101, 102, 103)
GOAL_RATIO = 0.8
WORKERS = 2


def _expert_bench() -> ModuleType:
    """``bench_expert.py`` beside this file (its route runner and worker pool)."""
    path = Path(__file__).with_name("bench_expert.py")
    spec = importlib.util.spec_from_file_location("kaido_bench_expert_routes", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def run(
    out_dir: Path | None = None,
    seeds: tuple[int, ...] = SEEDS,
    workers: int = WORKERS,
) -> dict[str, Any]:
    """Drive every seed with both agents and report; see the module docstring."""
    bench = _expert_bench()
    routes = [bench.BenchRoute(f"town-seed{seed}", seed=seed) for seed in seeds]
    base = (out_dir if out_dir is not None else Path("out/bench")) / "learned_routes"
    t0 = time.perf_counter()
    rows: dict[str, list[dict[str, Any]]] = {}
    walls: dict[str, float] = {}
    for agent, sensors in (("expert", False), ("learned", True)):
        start = time.perf_counter()
        rows[agent] = bench._run_all(routes, base / agent, max(int(workers), 1), agent, sensors)
        walls[agent] = time.perf_counter() - start
    expert_ds = _mean([r["driving_score"] for r in rows["expert"]])
    learned_ds = _mean([r["driving_score"] for r in rows["learned"]])
    pedestrian_key = InfractionKind.COLLISION_PEDESTRIAN.key
    pedestrian_collisions = sum(
        r["infraction_counts"].get(pedestrian_key, 0) for r in rows["learned"]
    )
    ratio = learned_ds / expert_ds if expert_ds > 0 else float("nan")
    report = {
        "benchmark": "learned",
        "routes": {agent: agent_rows for agent, agent_rows in rows.items()},
        "mean_driving_score": {"expert": expert_ds, "learned": learned_ds},
        "mean_route_completion": {
            agent: _mean([r["route_completion"] for r in agent_rows])
            for agent, agent_rows in rows.items()
        },
        "ratio_learned_to_expert": ratio,
        "learned_pedestrian_collisions": pedestrian_collisions,
        "wall_seconds": {**walls, "total": time.perf_counter() - t0},
        "goals": {"ratio_learned_to_expert": GOAL_RATIO, "learned_pedestrian_collisions": 0},
        "params": {
            "seeds": list(seeds),
            "checkpoint": "checkpoints/tiny.ckpt",
            "traffic_density": bench.TRAFFIC_DENSITY,
            "pedestrians": bench.PEDESTRIANS,
            "time_limit": "route_timeout (leaderboard-style budget per route)",
            "workers": workers,
        },
        "provenance": provenance(),
    }
    print(f"{'route':<14} {'expert DS':>9} {'learned DS':>10} {'RC':>6}  learned infractions")
    for expert_row, learned_row in zip(rows["expert"], rows["learned"], strict=True):
        print(
            f"{learned_row['route']:<14} {expert_row['driving_score']:>9.1f} "
            f"{learned_row['driving_score']:>10.1f} {learned_row['route_completion']:>6.1f}  "
            f"{bench._short(learned_row)}"
        )
    print(
        f"{'mean':<14} {expert_ds:>9.1f} {learned_ds:>10.1f}   ratio {ratio:.2f} "
        f"(goal {GOAL_RATIO:.2f}); learned pedestrian collisions {pedestrian_collisions}"
    )
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "learned.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--workers", type=int, default=WORKERS)
    args = parser.parse_args(argv)
    run(args.out, tuple(args.seeds), args.workers)


if __name__ == "__main__":
    main()
