"""Reactive replay: a logged follower drives through a stopped ego unless it is IDM-driven."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from kaido.scene.agents import AgentClass, AgentState, Control
from kaido.scene.geometry import Box3D
from kaido.simulation.agents import DrivingAgent
from kaido.simulation.backend import Observation
from kaido.simulation.drive import DriveOptions, drive
from kaido.simulation.replay.backend import LoggedDrive, LoggedEgoIndex, load_logged_drive
from kaido.simulation.replay.closed_loop import run_closed_loop
from kaido.simulation.replay.reactive import ReactiveConfig, ReactiveTraffic, idm_acceleration
from kaido.tools.cmd_replay import main

FOLLOWER_ID = 9001
BEHIND_M = 15.0


class _Stopper(DrivingAgent):
    """Holds the brake from the first tick."""

    def run_step(self, obs: Observation) -> Control:
        return Control(throttle=0.0, steer=0.0, brake=1.0)


@pytest.fixture(scope="module")
def followed(tmp_path_factory: pytest.TempPathFactory) -> LoggedDrive:
    """A 10 s embedded log whose only agent is a car following the logged ego's rear-axle path
    ``BEHIND_M`` behind it (along the path, extended backwards along the start heading) at its
    speed."""
    out = tmp_path_factory.mktemp("drive")
    result = drive(
        DriveOptions(
            out_dir=out,
            seed=0,
            seconds=10.0,
            sensors=False,
            video=False,
            progress=False,
            traffic_density=0.0,
        )
    )
    assert result.mcap_path is not None
    logged = load_logged_drive(result.mcap_path)
    ego = logged.ego
    xy = ego[:, [LoggedEgoIndex.X, LoggedEgoIndex.Y]]
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
    assert s[-1] > 30.0, "the logged ego must drive for the follower to follow"
    yaw0 = float(ego[0, LoggedEgoIndex.YAW])
    back = np.arange(-40.0, 0.0, 1.0)
    path_s = np.concatenate([back, s + np.arange(len(s)) * 1e-9])
    path_xy = np.concatenate(
        [xy[0] + back[:, None] * np.array([math.cos(yaw0), math.sin(yaw0)]), xy]
    )
    path_yaw = np.concatenate([np.full(len(back), yaw0), np.unwrap(ego[:, LoggedEgoIndex.YAW])])
    offset = logged.vehicle.rear_axle_to_center
    agents = []
    for k in range(len(ego)):
        at = s[k] - BEHIND_M + offset
        x, y = np.interp(at, path_s, path_xy[:, 0]), np.interp(at, path_s, path_xy[:, 1])
        yaw = float(np.interp(at, path_s, path_yaw))
        speed = float(ego[k, LoggedEgoIndex.SPEED])
        box = Box3D(x=float(x), y=float(y), z=0.75, yaw=yaw, length=4.5, width=1.9, height=1.5)
        agents.append(
            (
                AgentState(
                    track_id=FOLLOWER_ID,
                    agent_class=AgentClass.VEHICLE,
                    box=box,
                    velocity=(speed * math.cos(yaw), speed * math.sin(yaw)),
                    timestamp_ns=int(logged.ticks_ns[k]),
                ),
            )
        )
    return dataclasses.replace(logged, agents=tuple(agents))


def _collisions(results: Path) -> int:
    record = json.loads(results.read_text())["_checkpoint"]["records"][0]
    return len(record["infractions"]["collisions_vehicle"])


def test_the_follower_hits_the_stopped_ego_only_when_not_reactive(
    followed: LoggedDrive, tmp_path: Path
) -> None:
    plain = run_closed_loop(
        followed, tmp_path / "plain", agent=_Stopper(), record_mcap=False, record_video=False
    )
    assert plain.replayed_progress_m < 1.0
    assert _collisions(plain.episode.results_path) >= 1
    reactive = run_closed_loop(
        followed,
        tmp_path / "reactive",
        agent=_Stopper(),
        record_mcap=False,
        record_video=False,
        reactive=True,
    )
    assert _collisions(reactive.episode.results_path) == 0
    replay = json.loads(reactive.episode.results_path.read_text())["replay"]
    assert replay["reactive"] is True and replay["reactive_switch_tick"] is not None


def test_idm_free_road_follow_and_stop() -> None:
    cfg = ReactiveConfig()
    assert idm_acceleration(0.0, 10.0, math.inf, 0.0, cfg) == pytest.approx(cfg.max_accel)
    assert idm_acceleration(10.0, 10.0, math.inf, 0.0, cfg) == pytest.approx(0.0)
    # a stopped leader close ahead: strong braking; far ahead: nearly free
    near = idm_acceleration(10.0, 10.0, 10.0, 0.0, cfg)
    far = idm_acceleration(10.0, 10.0, 500.0, 0.0, cfg)
    assert near < -cfg.comfortable_decel and abs(far) < 0.05
    assert idm_acceleration(5.0, 10.0, 0.0, 0.0, cfg) == -cfg.max_decel
    # the equilibrium gap behind a leader at the same speed: s0 + v T gives a = a_max(1-(v/v0)^4-1)
    v = 5.0
    a = idm_acceleration(v, 10.0, cfg.min_gap + v * cfg.time_headway, v, cfg)
    assert a == pytest.approx(-cfg.max_accel * (v / 10.0) ** cfg.delta)
    with pytest.raises(ValueError, match="time_headway"):
        ReactiveConfig(time_headway=0.0)


def test_cli_reactive_flag(followed: LoggedDrive, tmp_path: Path) -> None:
    code = main(
        [
            str(followed.path),
            "--mode",
            "closed",
            "--agent",
            "logged",
            "--reactive",
            "--no-video",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    replay = json.loads((tmp_path / "results.json").read_text())["replay"]
    assert replay["reactive"] is True
    # driven by its own logged controls the ego never leaves its track: traffic stays logged
    assert replay["reactive_switch_tick"] is None
    assert replay["max_deviation_from_log_m"] < 0.1


def test_the_idm_follower_stops_behind_a_standing_ego(followed: LoggedDrive) -> None:
    traffic = ReactiveTraffic(followed)
    start = followed.ego[0]
    x, y, yaw = (float(start[i]) for i in (LoggedEgoIndex.X, LoggedEgoIndex.Y, LoggedEgoIndex.YAW))
    offset = followed.vehicle.rear_axle_to_center
    ego_box = Box3D(
        x=x + offset * math.cos(yaw),
        y=y + offset * math.sin(yaw),
        z=0.75,
        yaw=yaw,
        length=followed.vehicle.length,
        width=followed.vehicle.width,
        height=1.5,
    )
    gaps = []
    speeds = []
    for k in range(len(followed.ticks_ns)):
        (follower,) = traffic.agents(k, ego_box, 0.0, yaw, (x, y))
        ahead = (ego_box.x - follower.box.x) * math.cos(yaw) + (ego_box.y - follower.box.y) * (
            math.sin(yaw)
        )
        gaps.append(ahead - 0.5 * (ego_box.length + follower.box.length))
        speeds.append(math.hypot(*follower.velocity))
    assert traffic.switched_at is not None
    assert min(gaps) > 0.5  # never touches the ego
    assert gaps[-1] < ReactiveConfig().min_gap + 1.0  # it did close up to the jam distance
    assert speeds[-1] < 0.05
    with pytest.raises(ValueError, match="consecutive"):
        traffic.agents(0, ego_box, 0.0, yaw, (x, y))
