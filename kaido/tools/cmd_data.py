"""``kaido collect`` and ``kaido dataset build``: training data for the learned stack.

``kaido collect --out DIR`` drives the privileged expert over a plan of varied episodes in the
embedded simulator (:mod:`kaido.simulation.collect`) and writes ``DIR/<episode>/run.mcap`` plus
``DIR/collect.json``; re-running it resumes. ``kaido dataset build LOGS_DIR --out DATA_DIR``
turns logs into training shards (:mod:`kaido.logs.dataset`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

__all__ = ["register"]


def _cmd_collect(args: argparse.Namespace) -> int:
    from kaido.simulation.collect import CollectConfig, collect

    config = CollectConfig(
        episodes=args.episodes,
        seconds=args.seconds,
        seed=args.seed,
        rig=Path(args.rig),
        maps=tuple(Path(p) for p in args.map or ()),
        map_fraction=args.map_fraction,
        routes=Path(args.routes) if args.routes else None,
    )
    summary = collect(config, Path(args.out), workers=args.workers, progress=not args.quiet)
    print(
        f"collected {summary.ok} episode(s), {summary.failed} failed, {summary.skipped} already "
        f"done, in {summary.wall_seconds:.1f} s; manifest {summary.manifest_path}"
    )
    for name, error in summary.failures:
        print(f"  failed {name}: {error}")
    return 0 if summary.failed == 0 else 1


def _cmd_dataset_build(args: argparse.Namespace) -> int:
    from kaido.logs.dataset import build_dataset
    from kaido.logs.sample import SampleSpec, load_sample_spec

    spec = load_sample_spec(Path(args.spec)) if args.spec else SampleSpec()
    summary = build_dataset(
        Path(args.logs_dir),
        Path(args.out),
        spec,
        every=args.every,
        val_fraction=args.val_fraction,
        workers=args.workers,
        progress=not args.quiet,
    )
    print(
        f"built {summary.samples} samples ({summary.train_samples} train, "
        f"{summary.val_samples} val) from {summary.logs} log(s) in {summary.seconds:.1f} s: "
        f"{summary.bytes / 1e6:.1f} MB, {summary.bytes_per_sample / 1e3:.0f} kB/sample; "
        f"manifest {summary.manifest_path}"
    )
    for log, error in summary.failed:
        print(f"  no samples from {log}: {error}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def register(sub: Any) -> None:
    """Add ``kaido collect`` and ``kaido dataset`` to the command line's subparsers."""
    from kaido.simulation.drive import DEFAULT_RIG

    cores = os.cpu_count() or 1
    collect = sub.add_parser(
        "collect", help="drive the expert over varied episodes to record training logs"
    )
    collect.add_argument("--out", default="out/collect", help="collection folder")
    collect.add_argument("--episodes", type=_positive_int, default=10, help="episodes to plan")
    collect.add_argument(
        "--seconds", type=float, default=60.0, help="simulated time per episode [s]"
    )
    collect.add_argument("--seed", type=int, default=0, help="seed of the collection plan")
    collect.add_argument(
        "--workers", type=_positive_int, default=cores, help=f"parallel episodes ({cores})"
    )
    collect.add_argument("--rig", default=str(DEFAULT_RIG), help="sensor rig YAML")
    collect.add_argument(
        "--map",
        action="append",
        help="OpenDRIVE map (e.g. a CARLA town) to drive beside generated towns (repeatable)",
    )
    collect.add_argument(
        "--map-fraction", type=float, default=0.5, help="share of episodes on --map maps"
    )
    collect.add_argument("--routes", help="leaderboard route file with routes for --map towns")
    collect.add_argument("--quiet", action="store_true", help="no progress bar")
    collect.set_defaults(func=_cmd_collect)

    dataset = sub.add_parser("dataset", help="build training shards from driving logs")
    dataset_sub = dataset.add_subparsers(
        dest="dataset_command", required=True, parser_class=type(dataset)
    )
    build = dataset_sub.add_parser("build", help="turn MCAP logs into training shards")
    build.add_argument("logs_dir", metavar="LOGS_DIR", help="folder of .mcap logs (searched)")
    build.add_argument("--out", required=True, help="dataset folder to write")
    build.add_argument("--spec", help="sample spec YAML/JSON (default: the tiny spec)")
    build.add_argument("--every", type=_positive_int, default=1, help="keep every K-th 0.5 s frame")
    build.add_argument(
        "--val-fraction", type=float, default=0.1, help="share of town/seed groups for val"
    )
    build.add_argument(
        "--workers", type=_positive_int, default=cores, help=f"parallel logs ({cores})"
    )
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(func=_cmd_dataset_build)
