"""``kaido faults [--seeds N] [--faults A,B] [--seconds S] --out DIR``: the fault-injection suite.

Drives the fault-free run and each fault (camera blackout, lidar dropout, NaN values, a frozen
clock, latency spikes past the deadlines, lost controller messages) on ``N`` seeds of the
embedded simulator with the fixed-rate runtime (:mod:`kaido.simulation.faults`), prints the table of
outcomes and writes ``DIR/faults.json`` (the table, every run, the configuration and
provenance). Exit code 1 when a run crashed, a fault caused a collision the fault-free run of
the same seed did not have, or a command left the envelope; 2 on bad input.

Also runnable alone: ``python -m kaido.tools.cmd_faults --out DIR``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "register"]

EXIT_BAD_INPUT = 2


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:5.2f}"


def _table_text(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'fault':<16} {'runs':>4} {'crash':>5} {'coll':>4} {'new':>3} {'env':>3} "
        f"{'t_mrm mean/max [s]':>19} {'t_stop mean/max [s]':>20} {'nominal':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        mrm, stop = r["time_to_mrm_s"], r["time_to_mrm_state_s"]
        lines.append(
            f"{r['fault']:<16} {r['runs']:>4} {r['crashes']:>5} {r['collisions']:>4} "
            f"{r['new_collisions']:>3} {r['envelope_violations']:>3} "
            f"{_fmt(mrm['mean']):>9} / {_fmt(mrm['max']):>6} "
            f"{_fmt(stop['mean']):>10} / {_fmt(stop['max']):>6} {r['ended_nominal']:>7}"
        )
    return "\n".join(lines)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _cmd_faults(args: argparse.Namespace) -> int:
    import yaml

    from kaido.provenance import provenance, to_jsonable
    from kaido.scene.sensors import load_sensor_rig
    from kaido.scene.vehicle import load_vehicle_profile
    from kaido.simulation.faults import (
        SMALL_RIG,
        FaultKind,
        FaultSuiteConfig,
        fault_table,
        run_suite,
    )
    from kaido.stack.runtime import load_runtime_config

    known = {k.value: k for k in FaultKind if k is not FaultKind.NONE}
    faults = tuple(known)
    if args.faults:
        faults = tuple(f.strip() for f in args.faults.split(",") if f.strip())
        bad = [f for f in faults if f not in known]
        if bad or not faults:
            raise ValueError(f"--faults: unknown {bad or faults}; known: {', '.join(known)}")
    if args.seconds <= args.start:
        raise ValueError(f"--seconds ({args.seconds}) must exceed --start ({args.start})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.rig:
        rig_path = Path(args.rig)
    else:
        rig_path = out / "rig.yaml"
        rig_path.write_text(yaml.safe_dump(SMALL_RIG))
    rig = load_sensor_rig(rig_path)
    vehicle = load_vehicle_profile(args.vehicle) if args.vehicle else None
    config = FaultSuiteConfig(
        seeds=tuple(range(args.first_seed, args.first_seed + args.seeds)),
        faults=tuple(known[f] for f in faults),
        seconds=args.seconds,
        start_s=args.start,
        duration_s=args.duration,
        spike_s=args.spike,
        traffic_density=args.traffic,
        runtime=load_runtime_config(args.runtime_config)
        if args.runtime_config
        else load_runtime_config(),
        record_mcap=args.mcap,
    )
    wall = time.perf_counter()

    def report(o: Any) -> None:
        if not args.quiet:
            print(
                f"  {o.fault:<16} seed {o.seed}: crashed={o.crashed is not None} "
                f"collisions={o.collisions} envelope={o.envelope_violations} "
                f"modes={'>'.join(o.modes) or '-'}",
                file=sys.stderr,
            )

    outcomes = run_suite(config, out, rig, vehicle=vehicle, progress=report)
    rows = fault_table(outcomes)
    print(_table_text(rows))
    document = {
        "command": "kaido faults " + " ".join(args.argv or sys.argv[2:]),
        "table": rows,
        "runs": [dataclasses.asdict(o) for o in outcomes],
        "wall_seconds": time.perf_counter() - wall,
        "config": to_jsonable(config),
        "rig": str(rig_path),
        "provenance": provenance(to_jsonable(config)),
    }
    path = out / "faults.json"
    path.write_text(json.dumps(_finite(document), indent=2) + "\n")
    print(f"wrote {path}")
    failed = any(r["crashes"] or r["new_collisions"] or r["envelope_violations"] for r in rows)
    return 1 if failed else 0


def register(sub: Any) -> None:
    """Add ``kaido faults`` to the command line's subparsers."""
    faults = sub.add_parser(
        "faults", help="fault-injection suite of the runtime on the embedded simulator"
    )
    faults.add_argument("--out", required=True, help="folder for faults.json and the runs")
    faults.add_argument("--seeds", type=int, default=3, help="seeds per fault (3)")
    faults.add_argument("--first-seed", type=int, default=0, help="first seed (0)")
    faults.add_argument("--faults", help="comma-separated faults (default: all)")
    faults.add_argument("--seconds", type=float, default=14.0, help="simulated s per run (14)")
    faults.add_argument("--start", type=float, default=4.0, help="fault onset [s] (4)")
    faults.add_argument("--duration", type=float, default=5.0, help="fault duration [s] (5)")
    faults.add_argument("--spike", type=float, default=0.2, help="latency spike per stage [s]")
    faults.add_argument(
        "--traffic", type=float, default=15.0, help="SUMO traffic [vehicles/lane-km] (15)"
    )
    faults.add_argument("--rig", help="sensor rig YAML (default: a small 1-camera 1-lidar rig)")
    faults.add_argument("--vehicle", help="vehicle profile YAML (default: the sedan)")
    faults.add_argument("--runtime-config", help="runtime YAML (configs/runtime/default.yaml)")
    faults.add_argument("--mcap", action="store_true", help="record run.mcap for every run")
    faults.add_argument("--quiet", action="store_true", help="no per-run lines")
    faults.set_defaults(func=_cmd_faults, argv=[])


def main(argv: Sequence[str] | None = None) -> int:
    """``kaido faults`` alone; bad input exits 2 with one line on stderr."""
    parser = argparse.ArgumentParser(prog="kaido")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    given = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(["faults", *given])
    args.argv = given
    if args.seeds < 1:
        print("kaido faults: error: --seeds must be >= 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        code: int = args.func(args)
    except (FileNotFoundError, ValueError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"kaido faults: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return code


if __name__ == "__main__":
    sys.exit(main())
