"""``kaido replay SOURCE... --mode predict --out DIR``: score predictors on recorded traffic.

Each SOURCE is anything :func:`kaido.logs.replay_source.open_source` reads (AV2 scenario or
sensor log folder, WOMD ``.tfrecord``, CommonRoad ``.xml``, kaido ``.mcap``). Writes
``DIR/results.json``: per scenario and predictor the metrics in the dataset's protocol, the
agent-weighted aggregate per protocol with each predictor's minFDE ratio to constant velocity,
and provenance. Exit code 2 with one line on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "register", "run_predict"]

MODES = ("predict",)


def run_predict(
    sources: Sequence[Path], out: Path, predictors: Sequence[str] | None = None
) -> dict[str, Any]:
    """Score ``predictors`` (default: every baseline) on ``sources``; write and return the
    results dict (``out/results.json``)."""
    from kaido.logs.replay_source import open_source
    from kaido.provenance import provenance
    from kaido.simulation.replay.predict import (
        DEFAULT_PREDICTORS,
        METRIC_DEFINITION,
        aggregate,
        score_scenario,
    )

    names = tuple(predictors) if predictors else DEFAULT_PREDICTORS
    all_scores = []
    scenarios = []
    for src in sources:
        scenario = open_source(src)
        scores = score_scenario(scenario, names)
        all_scores.extend(scores)
        assert scenario.protocol is not None
        scenarios.append(
            {
                "name": scenario.name,
                "path": str(scenario.path),
                "format": scenario.source_format,
                "protocol": {
                    "name": scenario.protocol.name,
                    "step_seconds": scenario.protocol.step_seconds,
                    "observed_steps": scenario.protocol.observed_steps,
                    "predicted_steps": scenario.protocol.predicted_steps,
                    "k": scenario.protocol.k,
                    "miss_threshold": scenario.protocol.miss_threshold,
                    "focal_track_ids": list(scenario.protocol.focal_track_ids),
                    "scored_track_ids": list(scenario.protocol.scored_track_ids),
                    "horizons_s": list(scenario.protocol.horizons_s),
                },
                "notes": list(scenario.notes),
                "predictors": {
                    s.predictor: {
                        group: {label: g.to_dict() for label, g in per_h.items()}
                        for group, per_h in s.scores.items()
                    }
                    for s in scores
                },
            }
        )
    results = {
        "mode": "predict",
        "metric_definition": METRIC_DEFINITION,
        "averaging": "per agent within a scenario; agent-weighted across scenarios",
        "predictors": list(names),
        "not_scored": {
            "learned": "forecasts from camera/lidar BEV features, which these sources lack"
        },
        "scenarios": scenarios,
        "aggregate": aggregate(all_scores),
        "provenance": provenance({"sources": [str(s) for s in sources], "predictors": names}),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
    return results


def _cmd_replay(args: argparse.Namespace) -> int:
    predictors = [p for p in (args.predictors or "").split(",") if p] or None
    try:
        results = run_predict([Path(s) for s in args.source], Path(args.out), predictors)
    except (ValueError, FileNotFoundError) as exc:
        print(f"kaido replay: {exc}", file=sys.stderr)
        return 2
    for proto, preds in results["aggregate"].items():
        print(f"{proto}:")
        for pred, groups in preds.items():
            full = groups.get("focal", {}).get("full")
            if full is None:
                continue
            ratio = full.get("min_fde_ratio_vs_constant_velocity")
            print(
                f"  {pred:20s} minADE {full['min_ade']:6.2f} m  minFDE {full['min_fde']:6.2f} m  "
                f"MR {full['miss_rate']:.2f}  agents {full['num_agents']}"
                + (f"  minFDE/CV {ratio:.2f}" if ratio is not None else "")
            )
    print(f"wrote {Path(args.out) / 'results.json'}")
    return 0


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", nargs="+", help="replay sources (scenario folders or files)")
    parser.add_argument("--mode", choices=MODES, default="predict", help="what to score")
    parser.add_argument("--predictors", default="", help="comma-separated predictor names")
    parser.add_argument("--out", required=True, help="output folder for results.json")


def register(sub: Any) -> None:
    """Add ``kaido replay`` to the command line's subparsers."""
    parser = sub.add_parser("replay", help="replay recorded drives and score them")
    _add_arguments(parser)
    parser.set_defaults(func=_cmd_replay)


def main(argv: Sequence[str] | None = None) -> int:
    """``kaido replay`` on its own (argument errors exit 2)."""
    parser = argparse.ArgumentParser(prog="kaido replay")
    _add_arguments(parser)
    return _cmd_replay(parser.parse_args(argv))
