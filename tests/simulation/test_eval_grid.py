"""``kaido eval`` over agents × seeds: each run is the single run it stands for, tabulated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaido.tools.cli import main

COMMON = ["--generated", "2", "--seconds", "3", "--no-sensors", "--quiet", "--workers", "0"]


def test_agents_times_seeds_each_equal_the_single_run(tmp_path: Path) -> None:
    grid = tmp_path / "grid"
    args = ["eval", *COMMON, "--agent", "baseline", "--agent", "expert"]
    code = main([*args, "--seed", "0", "--seed", "5", "--out", str(grid)])
    assert code == 0
    summary = json.loads((grid / "summary.json").read_text())
    runs = {(r["agent"], r["seed"]): r for r in summary["runs"]}
    assert set(runs) == {("baseline", 0), ("baseline", 5), ("expert", 0), ("expert", 5)}
    for agent in ("baseline", "expert"):
        mean = (runs[(agent, 0)]["driving_score"] + runs[(agent, 5)]["driving_score"]) / 2
        assert summary["mean_driving_score"][agent] == pytest.approx(mean)
    assert summary["provenance"]["config"]["seeds"] == [0, 5]
    # one cell of the grid = the plain single run with that agent and seed
    single = tmp_path / "single"
    code = main(["eval", *COMMON, "--agent", "baseline", "--seed", "5", "--out", str(single)])
    assert code == 0
    alone = json.loads((single / "results.json").read_text())
    cell = json.loads((grid / "baseline" / "seed5" / "results.json").read_text())
    scores = [r["scores"] for r in alone["_checkpoint"]["records"]]
    assert [r["scores"] for r in cell["_checkpoint"]["records"]] == scores
    # a re-run resumes every cell: nothing is driven again, the table is the same
    assert main([*args, "--seed", "0", "--seed", "5", "--out", str(grid)]) == 0
    again = json.loads((grid / "summary.json").read_text())
    assert again["mean_driving_score"] == summary["mean_driving_score"]
