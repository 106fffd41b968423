"""``kaido replay SOURCE... --mode predict|open|closed --out DIR``: replay and score drives.

``--mode predict`` scores predictors on recorded traffic. Each SOURCE is anything
:func:`kaido.logs.replay_source.open_source` reads (AV2 scenario or sensor log folder, WOMD
``.tfrecord``, CommonRoad ``.xml``, kaido ``.mcap``). Writes ``DIR/results.json``: per scenario
and predictor the metrics in the dataset's protocol, the agent-weighted aggregate per protocol
with each predictor's minFDE ratio to constant velocity, and provenance.

``--mode open`` plans with the privileged expert's planner on each source's inputs (a kaido
``.mcap`` log, or an AV2/WOMD source with a recorded ego) and scores the plans against the logged
ego (L2 at 1/2/3 s under both averaging protocols, collision rate against the logged agents;
:mod:`kaido.simulation.replay.open_loop`).

``--mode closed`` replays each source closed loop, non-reactive, with ``--agent`` (``expert``,
``baseline``, any registered agent, or ``logged`` to send the logged controls of a kaido log; see
:mod:`kaido.simulation.replay.closed_loop`), writing a drive's ``results.json``, ``run.mcap`` and
``bev.mp4``. Sources: kaido ``.mcap`` logs and every dataset source with a road map (AV2 motion and
sensor, WOMD, CommonRoad; :func:`kaido.simulation.replay.from_source.load_drive`); a CommonRoad
ego starts at the first planning problem and is scored on reaching its goal. With ``--reactive``
the logged agents switch to IDM along their logged paths once the ego deviates from its logged
track (:mod:`kaido.simulation.replay.reactive`).

Open and closed modes write to DIR, or to ``DIR/<log name>/`` for each of several logs. Exit code
2 with one line on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "register", "run_closed", "run_open", "run_predict"]

MODES = ("predict", "open", "closed")


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


def run_closed(
    sources: Sequence[Path],
    out: Path,
    agent: str = "expert",
    video: bool = True,
    reactive: bool = False,
) -> list[dict[str, Any]]:
    """Replay each source (kaido log or dataset source) in ``sources`` closed loop with
    ``agent`` (``reactive``: agents switch to IDM once the ego deviates); return the ``replay``
    sections of the ``results.json`` files written (``out``, or ``out/<log name>`` for several
    logs)."""
    from kaido.simulation.replay.closed_loop import run_closed_loop

    summaries = []
    for src in sources:
        target = out if len(sources) == 1 else out / Path(src).stem
        result = run_closed_loop(src, target, agent=agent, record_video=video, reactive=reactive)
        document = json.loads(result.episode.results_path.read_text())
        record = document["_checkpoint"]["records"][0]
        summaries.append(
            {
                **document["replay"],
                "status": record["status"],
                "driving_score": record["scores"]["score_composed"],
                "results": str(result.episode.results_path),
            }
        )
    return summaries


def run_open(sources: Sequence[Path], out: Path, every_s: float = 0.5) -> list[dict[str, Any]]:
    """Score the planner open loop on each source (kaido log or dataset source with a recorded
    ego) in ``sources``; return the ``results.json``
    documents written (``out``, or ``out/<log name>`` for several logs)."""
    from kaido.simulation.replay.open_loop import run_open_loop

    documents = []
    for src in sources:
        target = out if len(sources) == 1 else out / Path(src).stem
        result = run_open_loop(src, target, every_s=every_s)
        documents.append(json.loads(result.results_path.read_text()))
    return documents


def _cmd_open(args: argparse.Namespace) -> int:
    try:
        documents = run_open([Path(s) for s in args.source], Path(args.out), args.every)
    except (ValueError, FileNotFoundError) as exc:
        print(f"kaido replay: {exc}", file=sys.stderr)
        return 2
    for d in documents:
        l2 = "  ".join(
            f"{protocol} " + " ".join(f"{h} {v:.2f} m" for h, v in values.items() if v is not None)
            for protocol, values in d["l2_m"].items()
        )
        rate = d["collision_rate"]
        print(
            f"{Path(d['source']).name} ({d['source_format']}): {d['planning_steps']} plans  "
            f"L2 {l2}  collision rate " + (f"{rate:.3f}" if rate is not None else "n/a")
        )
    return 0


def _cmd_closed(args: argparse.Namespace) -> int:
    try:
        summaries = run_closed(
            [Path(s) for s in args.source],
            Path(args.out),
            args.agent,
            not args.no_video,
            args.reactive,
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"kaido replay: {exc}", file=sys.stderr)
        return 2
    for s in summaries:
        ratio = s["progress_ratio_vs_logged"]
        goal = s.get("goal")
        print(
            f"{Path(s['source']).name} ({s['source_format']}): {s['status']}  "
            f"DS {s['driving_score']:.1f}  "
            + (f"progress/logged {ratio:.2f}  " if ratio is not None else "")
            + (
                f"max deviation {s['max_deviation_from_log_m']:.2f} m  "
                if s["max_deviation_from_log_m"] is not None
                else ""
            )
            + f"at-fault collisions {s['at_fault_collisions']}  "
            + (
                f"goal {'reached' if goal['reached'] else 'not reached'}"
                f"{' in time' if goal['in_time'] else ''}  "
                if goal is not None
                else ""
            )
            + f"-> {s['results']}"
        )
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    if args.mode == "closed":
        return _cmd_closed(args)
    if args.mode == "open":
        return _cmd_open(args)
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
    parser.add_argument(
        "--agent",
        default="expert",
        help="closed mode: the agent driving the ego (expert, baseline, ..., or logged)",
    )
    parser.add_argument("--no-video", action="store_true", help="closed mode: no bev.mp4")
    parser.add_argument(
        "--reactive",
        action="store_true",
        help="closed mode: agents switch to IDM along their logged paths once the ego deviates",
    )
    parser.add_argument(
        "--every", type=float, default=0.5, help="open mode: seconds between planning steps"
    )
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
