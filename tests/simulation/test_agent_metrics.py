"""The agents' per-tick metrics (the plan's cost terms) reach the episode log and the report."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from kaido.logs.mcap_log import read_log
from kaido.planning.types import PlannerOutput
from kaido.simulation.agents import DrivingAgent, planner_cost_metrics
from kaido.simulation.drive import DriveOptions, drive
from kaido.tools.report import read_route_log


def test_expert_cost_terms_are_logged_on_kaido_metrics_and_plotted(tmp_path: Path) -> None:
    episode = drive(
        DriveOptions(
            out_dir=tmp_path / "drive",
            seed=2,
            seconds=3.0,
            sensors=False,
            progress=False,
            video=False,
        )
    )
    assert episode.mcap_path is not None
    rows = [m.message for m in read_log(episode.mcap_path, topics=("/kaido/metrics",))]
    assert rows, "no /kaido/metrics messages"
    costs = [{k: v for k, v in row.items() if k.startswith("cost/")} for row in rows]
    assert all(c for c in costs), "a tick without cost terms"
    assert all(v is None or math.isfinite(v) for c in costs for v in c.values())
    _, series, _, error = read_route_log(episode.mcap_path)
    assert error is None
    assert set(series) == set(costs[-1])


def test_planner_cost_metrics_keeps_finite_numbers_only() -> None:
    output = PlannerOutput(
        trajectory=np.zeros((2, 6)),
        costs={"progress": 0.5, "ttc": math.nan, "reason": "x", "flag": True, "n": 3},
    )
    assert planner_cost_metrics(output) == {"cost/progress": 0.5, "cost/n": 3.0}
    assert planner_cost_metrics(None) == {}
    assert DrivingAgent.metrics.__doc__
