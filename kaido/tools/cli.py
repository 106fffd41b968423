"""The ``kaido`` command line: one subcommand per job, ``--help`` on each.

Bad input (a missing or malformed file, an unknown route, a bad option) exits with code 2 and one
line on stderr that names what is wrong.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from kaido.provenance import REPO_ROOT

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


# -- kaido map ----------------------------------------------------------------------------------


def _load_map(path: str) -> Any:
    from kaido.scene.road_map import RoadMap

    return RoadMap.from_file(Path(path))


def _cmd_map_info(args: argparse.Namespace) -> int:
    summary = _load_map(args.path).summary()
    if args.json:
        from kaido.provenance import to_jsonable

        print(json.dumps(to_jsonable(summary), indent=2))
        return 0
    min_x, min_y, max_x, max_y = summary.bounds
    types = ", ".join(f"{k} {v}" for k, v in sorted(summary.lane_types.items()))
    print(f"map        {summary.name} ({args.path})")
    print(f"roads      {summary.roads}")
    print(f"lanes      {summary.lanes} ({types})")
    print(f"junctions  {summary.junctions}")
    print(f"lane-km    {summary.lane_km:.2f} (driving lanes)")
    print(
        f"bounds     x {min_x:.1f}..{max_x:.1f} m, y {min_y:.1f}..{max_y:.1f} m "
        f"({max_x - min_x:.0f} x {max_y - min_y:.0f} m)"
    )
    return 0


def _cmd_map_render(args: argparse.Namespace) -> int:
    from kaido.scene.route_planner import plan_leaderboard_route
    from kaido.scene.routes import load_route
    from kaido.tools.render import MapRenderSpec, render_map, save_png

    road_map = _load_map(args.path)
    plan = None
    if args.route is not None:
        if args.route_id is None:
            raise UsageError("--route needs --route-id")
        plan = plan_leaderboard_route(road_map, load_route(Path(args.route), args.route_id))
    elif args.route_id is not None:
        raise UsageError("--route-id needs --route FILE")
    image = render_map(road_map, plan, MapRenderSpec(pixels_per_meter=args.pixels_per_meter))
    out = save_png(image, Path(args.out))
    extra = f", route {args.route_id}: {plan.length:.0f} m" if plan is not None else ""
    print(f"wrote {out} ({image.shape[1]}x{image.shape[0]} px{extra})")
    return 0


def _cmd_map_generate(args: argparse.Namespace) -> int:
    from kaido.scene.town_generator import TownSpec, write_town

    spec = TownSpec(
        layout=args.layout,
        rows=args.rows,
        cols=args.cols,
        block_length=args.block_length,
        lanes_per_direction=args.lanes,
        t_junction_fraction=args.t_junctions,
        seed=args.seed,
        name=args.name or Path(args.out).stem,
    )
    out = write_town(spec, Path(args.out))
    print(f"wrote {out} ({spec.layout} town, seed {spec.seed})")
    return 0


# -- kaido drive --------------------------------------------------------------------------------


def _cmd_drive(args: argparse.Namespace) -> int:
    from kaido.simulation.drive import DriveOptions, drive

    options = DriveOptions(
        out_dir=Path(args.out),
        backend=args.backend,
        agent=args.agent,
        map_path=Path(args.map) if args.map else None,
        routes=Path(args.routes) if args.routes else None,
        route_id=args.route_id,
        seed=args.seed,
        seconds=args.seconds,
        sensors=not args.no_sensors,
        traffic_density=args.traffic,
        pedestrians=args.pedestrians,
        events=tuple(args.event or ()),
        progress=not args.quiet,
        video=not args.no_video,
        agent_options={"checkpoint": Path(args.checkpoint)} if args.checkpoint else {},
        host=args.host,
        port=args.port,
        timeout=args.timeout,
    )
    if args.rig:
        options = dataclasses.replace(options, rig=Path(args.rig))
    episode = drive(options)
    r = episode.result
    rows = [
        ("driving score", f"{r.driving_score:.2f}"),
        ("route completion", f"{r.route_completion:.2f} %"),
        ("infraction penalty", f"{r.infraction_penalty:.3f}"),
        ("status", r.status),
        ("infractions", ", ".join(i.message for i in r.infractions) or "none"),
        ("route", f"{r.route_length_m:.0f} m, driven {r.distance_driven_m:.0f} m"),
        (
            "sim speed",
            f"{episode.sim_seconds:.1f} s simulated in {episode.wall_seconds:.1f} s "
            f"({episode.realtime_factor:.1f}x real time)",
        ),
        ("results", str(episode.results_path)),
        ("log (Foxglove)", str(episode.mcap_path) if episode.mcap_path else "-"),
        ("video", str(episode.video_path) if episode.video_path else "-"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


# -- kaido bench --------------------------------------------------------------------------------

BENCHMARK_DIR = REPO_ROOT / "benchmarks"


def _cmd_bench(args: argparse.Namespace) -> int:
    path = BENCHMARK_DIR / f"bench_{args.name}.py"
    if not path.is_file():
        names = sorted(p.stem.removeprefix("bench_") for p in BENCHMARK_DIR.glob("bench_*.py"))
        raise UsageError(f"unknown benchmark {args.name!r} (known: {', '.join(names) or 'none'})")
    spec = importlib.util.spec_from_file_location(f"kaido_bench_{args.name}", path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot load benchmark {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.run(out_dir=Path(args.out))
    return 0


# -- the parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kaido", description="kaido: an autonomous-driving stack.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    map_parser = sub.add_parser("map", help="inspect, draw and generate OpenDRIVE road maps")
    map_sub = map_parser.add_subparsers(dest="map_command", required=True, parser_class=_Parser)
    info = map_sub.add_parser("info", help="print a summary of an OpenDRIVE map")
    info.add_argument("path", help="OpenDRIVE .xodr file")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.set_defaults(func=_cmd_map_info)
    render = map_sub.add_parser("render", help="draw lanes, junctions and a route as a PNG")
    render.add_argument("path", help="OpenDRIVE .xodr file")
    render.add_argument("--out", required=True, help="PNG file to write")
    render.add_argument("--route", help="CARLA leaderboard route file (1.0 or 2.0 format)")
    render.add_argument("--route-id", help="id of the route to draw")
    render.add_argument("--pixels-per-meter", type=float, default=4.0, help="scale [px/m]")
    render.set_defaults(func=_cmd_map_render)
    gen = map_sub.add_parser("generate", help="write a procedural OpenDRIVE town")
    gen.add_argument("--out", required=True, help=".xodr file to write")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--layout", choices=("grid", "ring"), default="grid")
    gen.add_argument("--rows", type=int, default=3, help="grid: junction rows")
    gen.add_argument("--cols", type=int, default=3, help="grid: junction columns")
    gen.add_argument("--block-length", type=float, default=80.0, help="[m] junction spacing")
    gen.add_argument("--lanes", type=int, default=1, help="lanes per direction (1-3)")
    gen.add_argument("--t-junctions", type=float, default=0.0, help="share of T junctions (grid)")
    gen.add_argument("--name", help="map name (default: the file's stem)")
    gen.set_defaults(func=_cmd_map_generate)

    drive_parser = sub.add_parser("drive", help="drive one closed-loop episode")
    drive_parser.add_argument("--backend", choices=("embedded", "carla"), default="embedded")
    drive_parser.add_argument("--host", default="127.0.0.1", help="carla: server host")
    drive_parser.add_argument("--port", type=int, default=2000, help="carla: server port")
    drive_parser.add_argument(
        "--timeout", type=float, default=10.0, help="carla: connection and tick timeout [s]"
    )
    drive_parser.add_argument(
        "--agent", default="expert", help="driving agent: expert, learned, baseline"
    )
    drive_parser.add_argument(
        "--checkpoint", help="learned agent: checkpoint (default: the shipped tiny model)"
    )
    drive_parser.add_argument("--map", help="OpenDRIVE .xodr (default: a generated town)")
    drive_parser.add_argument("--routes", help="CARLA leaderboard route file")
    drive_parser.add_argument("--route-id", help="route id in --routes")
    drive_parser.add_argument("--seed", type=int, default=0)
    drive_parser.add_argument("--seconds", type=float, help="simulated time limit [s]")
    drive_parser.add_argument("--traffic", type=float, default=15.0, help="vehicles per lane-km")
    drive_parser.add_argument("--pedestrians", type=float, default=0.0, help="persons per km")
    drive_parser.add_argument(
        "--event", action="append", help="scripted event KIND@S[:DISTANCE], e.g. lead_brake@60"
    )
    drive_parser.add_argument("--no-sensors", action="store_true", help="ground truth only")
    drive_parser.add_argument(
        "--rig", help="sensor rig YAML (default: configs/sensors/default.yaml)"
    )
    drive_parser.add_argument("--no-video", action="store_true", help="skip bev.mp4")
    drive_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    drive_parser.add_argument("--out", default="out/drive", help="output folder")
    drive_parser.set_defaults(func=_cmd_drive)

    bench = sub.add_parser("bench", help="run a benchmark: print a table, write NAME.json")
    bench.add_argument("name", help="benchmark name (benchmarks/bench_NAME.py)")
    bench.add_argument("--out", default="out/bench", help="folder for NAME.json")
    bench.set_defaults(func=_cmd_bench)

    from kaido.tools import (
        cmd_data,
        cmd_eval,
        cmd_export,
        cmd_faults,
        cmd_model,
        cmd_replay,
        cmd_report,
        cmd_train,
    )

    cmd_data.register(sub)
    cmd_eval.register(sub)
    cmd_train.register(sub)
    cmd_model.register(sub)
    cmd_export.register(sub)
    cmd_replay.register(sub)
    cmd_faults.register(sub)
    cmd_report.register(sub)
    return parser


def _bad_input_errors() -> tuple[type[BaseException], ...]:
    from kaido.scene.road_map import MapError
    from kaido.scene.route_planner import RoutePlanningError
    from kaido.scene.routes import RouteFileError
    from kaido.simulation.backend import BackendError

    return (
        UsageError,
        MapError,
        RouteFileError,
        RoutePlanningError,
        BackendError,
        FileNotFoundError,
        ValueError,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except _bad_input_errors() as err:
        prog = "kaido " + " ".join(
            p for p in (args.command, getattr(args, "map_command", None)) if p
        )
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
