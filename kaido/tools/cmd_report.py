"""``kaido report``: an HTML page of a run or route set, or a comparison of two.

``kaido report RESULTS --out report.html`` writes one self-contained page for a ``results.json``
(or a folder holding one) that ``kaido drive`` or ``kaido eval`` wrote; ``kaido report A B --out
cmp.html`` puts two result sets side by side (differences B − A). See :mod:`kaido.tools.report`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def _cmd_report(args: argparse.Namespace) -> int:
    from kaido.tools.report import write_report

    try:
        path = write_report(
            [Path(p) for p in args.results],
            Path(args.out),
            max_embed_bytes=int(args.max_embed_mb * 1024 * 1024),
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def register(sub: Any) -> None:
    """Add ``kaido report`` to the command line's subparsers."""
    parser = sub.add_parser(
        "report", help="HTML report of a run or route set, or a comparison of two"
    )
    parser.add_argument(
        "results",
        nargs="+",
        metavar="RESULTS",
        help="results.json (or its folder) of kaido drive/eval; give two to compare (A B)",
    )
    parser.add_argument("--out", default="report.html", help="HTML file to write")
    parser.add_argument(
        "--max-embed-mb",
        type=_non_negative,
        default=32.0,
        help="embed BEV videos as data URIs up to this total size [MiB]; beyond it the page "
        "links them by relative paths",
    )
    parser.set_defaults(func=_cmd_report)
