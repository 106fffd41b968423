"""``kaido export CHECKPOINT --out DIR``: the neural part as ``torch.export`` programs.

Writes ``DIR/frame.pt2`` (one frame: sensors + memory → detections, forecasts, imitation prior,
traffic light, new memory and the backbone state), ``DIR/imagine.pt2`` (world-model imagination
for K action sequences), ``DIR/initial_memory.npy`` and ``DIR/metadata.json`` (input/output
names, shapes and dtypes, the sample spec, the sensor rig, the model config, the checkpoint's
SHA-256, git commit and library versions); see :mod:`kaido.stack.export`. The runtime loads the
folder with :class:`kaido.stack.export.ExportedModel`, without the model's Python classes.

Also runnable alone: ``python -m kaido.tools.cmd_export CHECKPOINT --out DIR``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kaido.provenance import REPO_ROOT

__all__ = ["DEFAULT_RIG", "main", "register"]

DEFAULT_RIG = REPO_ROOT / "configs" / "sensors" / "default.yaml"
EXIT_BAD_INPUT = 2


def _cmd_export(args: argparse.Namespace) -> int:
    from kaido.stack.export import export_checkpoint

    checkpoint = Path(args.checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: no such checkpoint")
    summary = export_checkpoint(checkpoint, Path(args.out), Path(args.rig))
    size = sum(p.stat().st_size for p in summary.out_dir.iterdir() if p.is_file())
    print(
        f"exported {checkpoint} to {summary.out_dir} in {summary.seconds:.1f} s "
        f"({size / 1e6:.1f} MB): {summary.frame_path.name}, {summary.imagine_path.name}, "
        f"{summary.metadata_path.name}"
    )
    return 0


def register(sub: Any) -> None:
    """Add ``kaido export`` to the command line's subparsers."""
    export = sub.add_parser(
        "export", help="export the model with torch.export (.pt2) plus metadata.json"
    )
    export.add_argument("checkpoint", metavar="CHECKPOINT", help="training checkpoint (.ckpt)")
    export.add_argument("--out", required=True, help="folder to write the export into")
    export.add_argument(
        "--rig", default=str(DEFAULT_RIG), help="sensor rig YAML recorded in the metadata"
    )
    export.set_defaults(func=_cmd_export)


def main(argv: Sequence[str] | None = None) -> int:
    """``kaido export`` alone; bad input exits 2 with one line on stderr."""
    parser = argparse.ArgumentParser(prog="kaido")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(["export", *(sys.argv[1:] if argv is None else argv)])
    try:
        code: int = args.func(args)
    except (FileNotFoundError, ValueError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"kaido export: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return code


if __name__ == "__main__":
    sys.exit(main())
