"""Benchmark: ``kaido eval`` wall time with one worker, two workers and a local Ray instance.

The route set: 8 generated towns (seeds 0-7, each as ``kaido drive --seed N`` makes it), the
baseline agent without sensors, 30 s of simulated time per route, no MCAP or video. The same set
runs with ``--workers 1`` (the reference), ``--workers 2`` and ``--ray local`` (a Ray instance
started for the run: its start-up is part of the time), each into a fresh folder. Reported: wall
seconds per mode, the speed-up against one worker, and whether every mode gave the same
per-route scores and infractions (it must: a route's result depends only on its seed).

Prints a table and writes ``eval.json``. Usage: ``kaido bench eval [--out DIR]`` or ``python -m
benchmarks.bench_eval [--out DIR] [--routes N] [--seconds S] [--no-ray]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from kaido.provenance import provenance, to_jsonable
from kaido.simulation.results import RouteResult
from kaido.tools.cmd_eval import EvalOptions, evaluate

ROUTES = 8
SECONDS = 30.0


def _key(record: RouteResult) -> tuple[Any, ...]:
    return (
        record.route_id,
        record.status,
        record.driving_score,
        record.route_completion,
        tuple((i.kind, i.time_s) for i in record.infractions),
    )


def run(
    out_dir: Path | None = None,
    routes: int = ROUTES,
    seconds: float = SECONDS,
    with_ray: bool = True,
) -> dict[str, Any]:
    """Time the route set in every mode; see the module docstring."""
    modes: dict[str, dict[str, Any]] = {"workers 1": {"workers": 1}, "workers 2": {"workers": 2}}
    if with_ray:
        modes["ray local"] = {"workers": 2, "ray": "local"}
    rows: dict[str, dict[str, Any]] = {}
    reference: list[tuple[Any, ...]] | None = None
    base = EvalOptions(
        routes=None,
        generated=routes,
        out_dir=Path("."),
        agent="baseline",
        seconds=seconds,
        sensors=False,
        mcap=False,
        progress=False,
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name, changes in modes.items():
            options = replace(base, out_dir=Path(tmp) / name, **changes)
            t0 = time.perf_counter()
            summary = evaluate(options)
            wall = time.perf_counter() - t0
            keys = [_key(r) for r in summary.records]
            if reference is None:
                reference = keys
            rows[name] = {
                "wall_s": wall,
                "routes": len(summary.records),
                "driving_score": summary.driving_score,
                "same_scores_as_one_worker": keys == reference,
            }
    one = rows["workers 1"]["wall_s"]
    for row in rows.values():
        row["speedup_vs_one_worker"] = one / row["wall_s"] if row["wall_s"] > 0 else float("nan")
    report = {
        "benchmark": "eval",
        "modes": rows,
        "ratio_vs_reference": rows["workers 2"]["speedup_vs_one_worker"],
        "params": {
            "routes": routes,
            "seconds": seconds,
            "agent": "baseline",
            "sensors": False,
            "options": to_jsonable(base),
        },
        "provenance": provenance(),
    }
    print(f"{'mode':<10} {'wall s':>8} {'speed-up':>9}  same scores")
    for name, row in rows.items():
        print(
            f"{name:<10} {row['wall_s']:>8.1f} {row['speedup_vs_one_worker']:>8.2f}x  "
            f"{row['same_scores_as_one_worker']}"
        )
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--routes", type=int, default=ROUTES)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args(argv)
    run(args.out, args.routes, args.seconds, not args.no_ray)


if __name__ == "__main__":
    main()
