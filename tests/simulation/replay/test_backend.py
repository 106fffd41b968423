"""ReplayBackend: a recorded embedded run, replayed with its logged controls, reproduces the
recorded ego track (the issue's check), and the logged traffic is shown tick by tick."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from kaido.scene.agents import Control
from kaido.simulation.backend import BackendError
from kaido.simulation.drive import DriveOptions, drive
from kaido.simulation.replay.backend import (
    LoggedDrive,
    LoggedEgoIndex,
    ReplayBackend,
    load_logged_drive,
    replay_scenario,
)


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> LoggedDrive:
    out = tmp_path_factory.mktemp("drive")
    result = drive(
        DriveOptions(out_dir=out, seed=0, seconds=12.0, sensors=False, video=False, progress=False)
    )
    assert result.mcap_path is not None
    return load_logged_drive(result.mcap_path)


def _replay(logged: LoggedDrive, controls: list[Control | None]) -> np.ndarray:
    with ReplayBackend(logged) as backend:
        obs = backend.reset(replay_scenario(logged))
        xy = [(obs.ego.pose.x, obs.ego.pose.y)]
        for control in controls:
            assert control is not None
            obs = backend.step(control)
            xy.append((obs.ego.pose.x, obs.ego.pose.y))
    return np.array(xy)


def test_logged_controls_reproduce_the_recorded_ego_track(logged: LoggedDrive) -> None:
    assert logged.complete and logged.dt == pytest.approx(0.05)
    recorded = logged.ego[:, [LoggedEgoIndex.X, LoggedEgoIndex.Y]]
    travelled = float(np.linalg.norm(np.diff(recorded, axis=0), axis=1).sum())
    assert travelled > 5.0, "the recorded ego must have driven for the check to mean anything"
    replayed = _replay(logged, list(logged.controls[:-1]))
    error = np.linalg.norm(replayed - recorded, axis=1)
    assert error.max() < 0.1


def test_other_controls_give_another_track(logged: LoggedDrive) -> None:
    steered = [
        dataclasses.replace(c, steer=min(c.steer + 0.2, 1.0)) if c is not None else None
        for c in logged.controls[:-1]
    ]
    replayed = _replay(logged, steered)
    recorded = logged.ego[:, [LoggedEgoIndex.X, LoggedEgoIndex.Y]]
    assert np.linalg.norm(replayed - recorded, axis=1).max() > 0.1


def test_agents_follow_the_log_and_the_log_end_is_enforced(logged: LoggedDrive) -> None:
    assert sum(len(a) for a in logged.agents) > 0, "the recorded run must have traffic"
    with ReplayBackend(logged) as backend:
        obs = backend.reset(replay_scenario(logged))
        for k in range(len(logged.ticks_ns)):
            ids = sorted(a.track_id for a in obs.ground_truth.agents)
            assert ids == sorted(a.track_id for a in logged.agents[k])
            assert obs.frame.timestamp_ns == int(logged.ticks_ns[k])
            if k + 1 < len(logged.ticks_ns):
                obs = backend.step(Control(brake=1.0))
        with pytest.raises(BackendError, match="past the log's last tick"):
            backend.step(Control(brake=1.0))


def test_bad_inputs_are_named(logged: LoggedDrive, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tick spacing"):
        ReplayBackend(logged).reset(dataclasses.replace(replay_scenario(logged), dt=0.1))
    with pytest.raises(FileNotFoundError, match="no such log"):
        load_logged_drive(tmp_path / "missing.mcap")
