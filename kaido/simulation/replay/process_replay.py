"""Process-replay regression (openpilot style): replay fixed logs, compare with stored outputs.

Each :class:`ReplayCase` makes a short log deterministically (the embedded simulator's ``drive``
with the expert, ``sensors=False``, from the case's seed), then re-runs on it

* the open-loop planner (:func:`~kaido.simulation.replay.open_loop.run_open_loop`, one plan per
  second): per planning step the L2 [m] to the logged ego at 1/2/3 s, the collision rate and the
  counts of plans and fallbacks;
* the closed-loop expert (:func:`~kaido.simulation.replay.closed_loop.run_closed_loop`,
  non-reactive): the replayed rear-axle track every second [m], progress and deviation from the
  log [m], driving score and route completion [%], and the collision count.

:func:`run_case` returns these as flat fields (name → list of numbers); :func:`compare` checks
them against a reference with the per-field absolute tolerances of :data:`TOLERANCES` (counts
exactly), naming the case, field, index, both values and the tolerance on a mismatch. The
references live in ``tests/simulation/replay/reference/<case>.json``. When a change of behaviour
is intended, regenerate them with::

    python -m kaido.simulation.replay.process_replay --update

(without ``--update`` the command compares and exits 1 on a mismatch).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CASES",
    "REFERENCE_DIR",
    "TOLERANCES",
    "ReplayCase",
    "check_case",
    "compare",
    "main",
    "make_log",
    "reference_path",
    "run_case",
    "update_references",
]

REFERENCE_DIR = (
    Path(__file__).resolve().parents[3] / "tests" / "simulation" / "replay" / "reference"
)
"""Where the reference outputs are stored (one JSON per case)."""


@dataclass(frozen=True)
class ReplayCase:
    """One regression log: an embedded expert drive of ``seconds`` [s] from ``seed``."""

    name: str
    seed: int
    seconds: float = 10.0


CASES: tuple[ReplayCase, ...] = (ReplayCase("embedded_seed0", 0), ReplayCase("embedded_seed1", 1))
"""The logs replayed by the regression."""

TOLERANCES: dict[str, float] = {
    "open.planning_steps": 0.0,  # count
    "open.fallbacks": 0.0,  # count
    "open.collision_rate": 1e-9,  # share of planning steps
    "open.l2_1s_m": 0.05,  # [m] per planning step
    "open.l2_2s_m": 0.05,  # [m]
    "open.l2_3s_m": 0.05,  # [m]
    "closed.ticks": 0.0,  # count
    "closed.collisions": 0.0,  # count
    "closed.track_x_m": 0.05,  # [m] replayed rear axle, every second
    "closed.track_y_m": 0.05,  # [m]
    "closed.replayed_progress_m": 0.1,  # [m]
    "closed.logged_progress_m": 0.01,  # [m]
    "closed.max_deviation_m": 0.1,  # [m]
    "closed.driving_score": 0.5,  # [0-100]
    "closed.route_completion": 0.5,  # [%]
}
"""Absolute tolerance of each compared field (0 for counts: exact)."""

Fields = dict[str, list[float]]


def make_log(case: ReplayCase, work_dir: Path) -> Path:
    """The case's log: an embedded expert drive without sensors (deterministic from its seed)."""
    from kaido.simulation.drive import DriveOptions, drive

    result = drive(
        DriveOptions(
            out_dir=work_dir / "log",
            seed=case.seed,
            seconds=case.seconds,
            sensors=False,
            video=False,
            progress=False,
        )
    )
    if result.mcap_path is None:
        raise RuntimeError(f"process replay {case.name}: the drive wrote no log")
    return result.mcap_path


def run_case(case: ReplayCase, work_dir: Path) -> Fields:
    """Make the case's log under ``work_dir`` and replay it open and closed loop; the fields of
    :data:`TOLERANCES`."""
    from kaido.logs.dataset import read_log_track
    from kaido.simulation.replay.backend import load_logged_drive
    from kaido.simulation.replay.closed_loop import run_closed_loop
    from kaido.simulation.replay.open_loop import run_open_loop

    logged = load_logged_drive(make_log(case, work_dir))
    opened = run_open_loop(logged, work_dir / "open", every_s=1.0)
    closed = run_closed_loop(logged, work_dir / "closed", agent="expert", record_video=False)
    record = json.loads(closed.episode.results_path.read_text())["_checkpoint"]["records"][0]
    collisions = sum(
        len(v) for k, v in record["infractions"].items() if k.startswith("collisions_")
    )
    assert closed.episode.mcap_path is not None
    track = read_log_track(closed.episode.mcap_path).ego
    stride = max(int(round(1.0 / logged.dt)), 1)
    fields: Fields = {
        "open.planning_steps": [float(len(opened.steps))],
        "open.fallbacks": [float(sum(s.fallback is not None for s in opened.steps))],
        "open.collision_rate": [opened.collision_rate],
        "closed.ticks": [float(closed.episode.steps)],
        "closed.collisions": [float(collisions)],
        "closed.track_x_m": [float(v) for v in track[::stride, 0]],
        "closed.track_y_m": [float(v) for v in track[::stride, 1]],
        "closed.replayed_progress_m": [closed.replayed_progress_m],
        "closed.logged_progress_m": [closed.logged_progress_m],
        "closed.max_deviation_m": [closed.max_deviation_m],
        "closed.driving_score": [float(record["scores"]["score_composed"])],
        "closed.route_completion": [float(record["scores"]["score_route"])],
    }
    for h in (1.0, 2.0, 3.0):
        fields[f"open.l2_{h:g}s_m"] = [s.l2_per_time_step[h] for s in opened.steps]
    return fields


def reference_path(case: ReplayCase, directory: Path = REFERENCE_DIR) -> Path:
    """Where ``case``'s reference is stored."""
    return Path(directory) / f"{case.name}.json"


def compare(
    case_name: str,
    reference: Mapping[str, Sequence[float]],
    actual: Mapping[str, Sequence[float]],
    tolerances: Mapping[str, float] = TOLERANCES,
) -> list[str]:
    """One message per mismatch of ``actual`` against ``reference`` (empty when they agree):
    a field missing from either, a length that differs, or a value off by more than its
    tolerance (NaN equals only NaN)."""
    problems: list[str] = []
    for name in sorted(set(reference) | set(actual) | set(tolerances)):
        if name not in tolerances:
            problems.append(f"{case_name}: field {name!r} has no tolerance")
            continue
        if name not in reference or name not in actual:
            where = "reference" if name not in reference else "replay output"
            problems.append(f"{case_name}: field {name!r} missing from the {where}")
            continue
        ref, got = list(reference[name]), list(actual[name])
        tol = tolerances[name]
        if len(ref) != len(got):
            problems.append(
                f"{case_name}: field {name!r} has {len(got)} values, reference {len(ref)}"
            )
            continue
        for i, (r, g) in enumerate(zip(ref, got, strict=True)):
            r_nan = r is None or math.isnan(float(r))
            g_nan = g is None or math.isnan(float(g))
            if r_nan and g_nan:
                continue
            if r_nan or g_nan or abs(float(g) - float(r)) > tol:
                problems.append(
                    f"{case_name}: field {name!r}[{i}] = {g} vs reference {r} (tolerance ±{tol:g})"
                )
    return problems


def _to_json(fields: Mapping[str, Sequence[float]]) -> dict[str, list[float | None]]:
    return {
        k: [None if not math.isfinite(float(v)) else float(v) for v in values]
        for k, values in fields.items()
    }


def _from_json(document: Mapping[str, Any], path: Path) -> Fields:
    raw = document.get("fields")
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a 'fields' object of name -> list of numbers")
    return {k: [math.nan if v is None else float(v) for v in values] for k, values in raw.items()}


def check_case(case: ReplayCase, work_dir: Path, directory: Path = REFERENCE_DIR) -> list[str]:
    """Run ``case`` and compare it with its stored reference (:func:`compare`'s messages)."""
    path = reference_path(case, directory)
    if not path.is_file():
        return [
            f"{case.name}: no reference at {path}; run "
            "`python -m kaido.simulation.replay.process_replay --update`"
        ]
    reference = _from_json(json.loads(path.read_text()), path)
    return compare(case.name, reference, run_case(case, work_dir))


def update_references(
    work_dir: Path, directory: Path = REFERENCE_DIR, cases: Sequence[ReplayCase] = CASES
) -> list[Path]:
    """Run every case and (over)write its reference; the paths written."""
    from kaido.provenance import provenance

    written = []
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for case in cases:
        fields = run_case(case, Path(work_dir) / case.name)
        document = {
            "case": case.name,
            "seed": case.seed,
            "seconds": case.seconds,
            "regenerate": "python -m kaido.simulation.replay.process_replay --update",
            "tolerances": TOLERANCES,
            "fields": _to_json(fields),
            "provenance": provenance({"case": case.name, "seed": case.seed}),
        }
        path = reference_path(case, directory)
        path.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Compare every case with its reference (exit 1 on a mismatch), or ``--update`` them."""
    parser = argparse.ArgumentParser(prog="python -m kaido.simulation.replay.process_replay")
    parser.add_argument("--update", action="store_true", help="regenerate the references")
    parser.add_argument(
        "--reference-dir", default=str(REFERENCE_DIR), help="where the references are stored"
    )
    args = parser.parse_args(argv)
    directory = Path(args.reference_dir)
    with tempfile.TemporaryDirectory(prefix="kaido-process-replay-") as tmp:
        if args.update:
            for path in update_references(Path(tmp), directory):
                print(f"wrote {path}")
            return 0
        problems = []
        for case in CASES:
            problems.extend(check_case(case, Path(tmp) / case.name, directory))
    for p in problems:
        print(p, file=sys.stderr)
    print(f"process replay: {len(CASES)} cases, {len(problems)} mismatches")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
