"""Prediction-mode replay: exact scores on synthetic traffic, the datasets' protocols, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from kaido.logs.replay_source import ReplayProtocol, ReplayScenario, open_source
from kaido.scene.agents import AgentClass, AgentIndex, Track
from kaido.scene.lane_graph import LaneGraphMap, LaneRecord
from kaido.simulation.replay.predict import aggregate, score_scenario
from kaido.tools.cmd_replay import main, run_predict
from tests.conftest import shared_file

STEP_NS = 100_000_000


def _track(track_id: int, xy: np.ndarray, valid: slice = slice(None)) -> Track:
    """A track through ``xy`` (T, 2) at 10 Hz, yaw and velocity from finite differences."""
    d = np.gradient(xy, 0.1, axis=0)
    states = np.zeros((len(xy), len(AgentIndex)))
    states[:, [AgentIndex.X, AgentIndex.Y]] = xy
    states[:, AgentIndex.YAW] = np.arctan2(d[:, 1], d[:, 0])
    states[:, [AgentIndex.VX, AgentIndex.VY]] = d
    states[:, AgentIndex.LENGTH], states[:, AgentIndex.WIDTH] = 4.5, 1.9
    t = STEP_NS * np.arange(len(xy), dtype=np.int64)
    return Track(track_id, AgentClass.VEHICLE, t[valid], states[valid])


def _scenario(
    tracks: tuple[Track, ...], road_map: LaneGraphMap, scored: tuple[int, ...]
) -> ReplayScenario:
    return ReplayScenario(
        name="synthetic",
        source_format="commonroad",
        path=Path("synthetic"),
        timestamps_ns=STEP_NS * np.arange(61, dtype=np.int64),
        tracks=tracks,
        ego_track=None,
        road_map=road_map,
        protocol=ReplayProtocol(
            name="test",
            step_seconds=0.1,
            current_index=10,
            predicted_steps=50,
            scored_track_ids=scored,
            focal_track_ids=scored[:1],
            horizons_s=(3.0,),
        ),
    )


def test_constant_velocity_is_exact_on_straight_traffic_and_lanes_win_on_a_curve() -> None:
    t = np.arange(61) * 0.1
    straight = np.stack([5.0 + 10.0 * t, np.zeros_like(t)], axis=-1)
    radius, speed = 40.0, 8.0
    a = speed * t / radius  # drives a circle anticlockwise from (0, -40) heading east
    curve = np.stack([radius * np.sin(a), -radius * np.cos(a) + 200.0], axis=-1)
    arc = np.linspace(-0.5, 2.0, 200)
    lanes = [
        LaneRecord(1, np.array([[0.0, 0.0], [1000.0, 0.0]])),
        LaneRecord(2, np.stack([radius * np.sin(arc), -radius * np.cos(arc) + 200.0], axis=-1)),
    ]
    road_map = LaneGraphMap("toy", lanes)
    # track 2 misses its last 5 steps: scored on what is valid
    scenario = _scenario((_track(1, straight), _track(2, curve, slice(0, 56))), road_map, (1, 2))
    scores = {s.predictor: s for s in score_scenario(scenario)}
    cv_focal = scores["constant_velocity"].scores["focal"]
    assert cv_focal["full"].num_agents == 1
    assert cv_focal["full"].min_fde == pytest.approx(0.0, abs=1e-9)
    assert cv_focal["3s"].horizon_s == pytest.approx(3.0)
    cv, lf = scores["constant_velocity"].scores["scored"], scores["lane_following"].scores["scored"]
    assert cv["full"].num_agents == lf["full"].num_agents == 2
    assert lf["full"].min_fde < 0.5 * cv["full"].min_fde
    # CV's miss on the curve: its end point vs the circle's at the last valid step (4.5 s ahead)
    tail = 4.5
    end_cv = curve[10] + np.gradient(curve, 0.1, axis=0)[10] * tail
    want = float(np.linalg.norm(end_cv - curve[55])) / 2.0  # averaged with the exact straight
    assert cv["full"].min_fde == pytest.approx(want, rel=1e-6)
    summary = aggregate(list(scores.values()))["test"]
    ratio = summary["lane_following"]["scored"]["full"]["min_fde_ratio_vs_constant_velocity"]
    assert ratio == pytest.approx(lf["full"].min_fde / cv["full"].min_fde)


def test_scenario_without_protocol_is_refused(tmp_path: Path) -> None:
    from tests.logs.test_replay_source import write_small_log

    path = tmp_path / "run.mcap"
    write_small_log(path, 3)
    with pytest.raises(ValueError, match="has no prediction protocol"):
        score_scenario(open_source(path))


def test_av2_protocol_scores_the_focal_track() -> None:
    s = open_source(shared_file("av2/motion_forecasting/0a1e6f0a-1817-4a98-b02e-db8c9327d151"))
    (cv,) = score_scenario(s, ["constant_velocity"])
    focal = cv.scores["focal"]["full"]
    assert focal.num_agents == 1 and focal.k == 1 and focal.horizon_s == pytest.approx(6.0)
    # independent check: constant velocity from the focal track's logged state at step 49
    track = s.track(138951)
    i49 = int(np.searchsorted(track.timestamps_ns, s.timestamps_ns[49]))
    x0 = track.states[i49]
    end = x0[[AgentIndex.X, AgentIndex.Y]] + 6.0 * x0[[AgentIndex.VX, AgentIndex.VY]]
    assert focal.min_fde == pytest.approx(
        float(np.linalg.norm(end - track.states[-1, [AgentIndex.X, AgentIndex.Y]])), rel=1e-9
    )


def test_womd_protocol_reports_its_horizons() -> None:
    s = open_source(shared_file("waymo/womd/motion_data_one_scenario.tfrecord"))
    (lf,) = score_scenario(s, ["lane_following"])
    got = lf.scores["focal"]
    assert set(got) == {"3s", "5s", "8s", "full"}
    assert got["3s"].horizon_s == pytest.approx(3.0, abs=0.01)
    assert got["3s"].min_ade <= got["8s"].min_ade
    assert all(math.isfinite(g.min_fde) for g in got.values())


def test_cli_writes_results_with_protocol_ratio_and_provenance(tmp_path: Path) -> None:
    sources = [
        shared_file("commonroad/USA_US101-3_3_T-1.xml"),
        shared_file("waymo/womd/motion_data_one_scenario.tfrecord"),
    ]
    rc = main([*map(str, sources), "--out", str(tmp_path / "out")])
    assert rc == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["mode"] == "predict"
    assert {s["protocol"]["name"] for s in results["scenarios"]} == {
        "commonroad-recorded",
        "womd-motion",
    }
    lf = results["aggregate"]["womd-motion"]["lane_following"]["focal"]["8s"]
    assert lf["min_fde_ratio_vs_constant_velocity"] > 0
    assert "git" in results["provenance"] and "learned" in results["not_scored"]
    direct = run_predict(sources[:1], tmp_path / "again", ["constant_velocity"])
    assert direct["predictors"] == ["constant_velocity"]


def test_cli_bad_source_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"\x00\x01")
    assert main([str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected" in err[0]
    good = shared_file("commonroad/USA_US101-3_3_T-1.xml")
    assert main([str(good), "--predictors", "psychic", "--out", str(tmp_path / "o")]) == 2
    assert "unknown predictor 'psychic'" in capsys.readouterr().err
