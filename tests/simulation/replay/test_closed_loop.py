"""Closed-loop replay of a recorded embedded run: scored and recorded like a drive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaido.logs.dataset import read_log_track
from kaido.simulation.drive import DriveOptions, drive
from kaido.simulation.replay.closed_loop import run_closed_loop
from kaido.tools.cmd_replay import main


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("drive")
    result = drive(
        DriveOptions(out_dir=out, seed=0, seconds=10.0, sensors=False, video=False, progress=False)
    )
    assert result.mcap_path is not None
    return result.mcap_path


def test_cli_closed_mode_with_logged_controls(log_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "closed"
    code = main(
        [str(log_path), "--mode", "closed", "--agent", "logged", "--no-video", "--out", str(out)]
    )
    assert code == 0
    document = json.loads((out / "results.json").read_text())
    replay = document["replay"]
    assert replay["mode"] == "closed" and replay["reactive"] is False
    assert replay["max_deviation_from_log_m"] < 0.1
    assert replay["logged_progress_m"] > 5.0
    assert replay["progress_ratio_vs_logged"] == pytest.approx(1.0, abs=0.02)
    track = read_log_track(out / "run.mcap")
    assert len(track.ticks_ns) == replay["ticks_replayed"] - 1
    assert not (out / "bev.mp4").exists()


@pytest.mark.parametrize("agent", ["expert", "baseline"])
def test_agents_are_scored_against_the_log(log_path: Path, tmp_path: Path, agent: str) -> None:
    result = run_closed_loop(log_path, tmp_path / agent, agent=agent, record_video=False)
    assert result.episode.result.distance_driven_m > 1.0
    assert 0.3 < result.progress_ratio < 2.0
    document = json.loads(result.episode.results_path.read_text())
    assert document["replay"]["agent"] == agent
    record = document["_checkpoint"]["records"][0]
    assert "collisions_vehicle" in record["infractions"]
    for key in ("comfortable", "comfort", "ttc_violations", "outside_route_lanes_percent"):
        assert key in record["kaido"]


def test_unknown_agent_and_bad_source_exit_2(log_path: Path, tmp_path: Path) -> None:
    assert (
        main([str(log_path), "--mode", "closed", "--agent", "nobody", "--out", str(tmp_path)]) == 2
    )
    text = tmp_path / "notes.mcap"
    text.write_text("not a log")
    assert main([str(text), "--mode", "closed", "--out", str(tmp_path / "x")]) == 2
