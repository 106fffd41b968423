"""Open-loop replay: the planner on logged inputs, scored against the logged ego."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from kaido.simulation.drive import DriveOptions, drive
from kaido.simulation.replay.backend import LoggedDrive, LoggedEgoIndex, load_logged_drive
from kaido.simulation.replay.open_loop import AVERAGING_PROTOCOLS, run_open_loop
from kaido.tools.cmd_replay import main


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("drive")
    result = drive(
        DriveOptions(out_dir=out, seed=0, seconds=10.0, sensors=False, video=False, progress=False)
    )
    assert result.mcap_path is not None
    return result.mcap_path


def test_expert_plans_match_the_expert_drive(log_path: Path, tmp_path: Path) -> None:
    # the log was driven by the same expert: its plans must stay close to what it then did
    result = run_open_loop(log_path, tmp_path)
    assert len(result.steps) >= 10
    at = result.mean_l2("per_time_step")
    running = result.mean_l2("running_mean")
    assert at[1.0] <= at[2.0] <= at[3.0] < 1.5
    for h in result.horizons_s:
        assert running[h] <= at[h] + 1e-9
    assert result.collision_rate == 0.0
    document = json.loads(result.results_path.read_text())
    assert document["averaging_protocols"] == AVERAGING_PROTOCOLS
    assert set(document["l2_m"]) == {"per_time_step", "running_mean"}
    assert document["l2_m"]["per_time_step"]["3s"] == pytest.approx(at[3.0])


def test_a_shifted_log_ego_raises_the_l2(log_path: Path, tmp_path: Path) -> None:
    logged = load_logged_drive(log_path)
    base = run_open_loop(logged, tmp_path / "base").mean_l2("per_time_step")
    ego = logged.ego.copy()
    k = len(ego) // 2
    ego[k:, LoggedEgoIndex.X] += 3.0  # the logged ego "jumps" 3 m half way
    shifted: LoggedDrive = dataclasses.replace(logged, ego=ego)
    worse = run_open_loop(shifted, tmp_path / "shifted").mean_l2("per_time_step")
    assert worse[1.0] > base[1.0] + 0.1


def test_a_plan_through_a_logged_agent_is_a_collision(log_path: Path, tmp_path: Path) -> None:
    logged = load_logged_drive(log_path)
    # put every agent of each tick onto the logged ego one second later
    moved = []
    for k, agents in enumerate(logged.agents):
        j = min(k + 20, len(logged.ego) - 1)
        x, y, yaw = logged.ego[j, [LoggedEgoIndex.X, LoggedEgoIndex.Y, LoggedEgoIndex.YAW]]
        moved.append(
            tuple(
                dataclasses.replace(
                    a, box=dataclasses.replace(a.box, x=float(x), y=float(y), yaw=float(yaw))
                )
                for a in agents[:1]
            )
        )
    blocked = dataclasses.replace(logged, agents=tuple(moved))
    result = run_open_loop(blocked, tmp_path, every_s=1.0)
    assert result.collision_rate > 0.0
    assert np.isfinite(result.mean_l2("running_mean")[3.0])


def test_cli_open_mode(log_path: Path, tmp_path: Path) -> None:
    assert main([str(log_path), "--mode", "open", "--every", "1.0", "--out", str(tmp_path)]) == 0
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["mode"] == "open" and document["planning_steps"] >= 5
    assert main([str(log_path), "--mode", "open", "--every", "-1", "--out", str(tmp_path)]) == 2
