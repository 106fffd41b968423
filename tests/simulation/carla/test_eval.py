"""``kaido eval`` (route sets, results, checkpoint and resume, crashed routes) and the CARLA
command-line paths that must fail cleanly without a server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("carla")

from kaido.provenance import REPO_ROOT
from kaido.scene.agents import Control
from kaido.scene.road_map import RoadMap
from kaido.scene.route_planner import RoutePlanningError, plan_route
from kaido.scene.routes import RouteFormat, RouteSpec, write_routes
from kaido.scene.town_generator import TownSpec, write_town
from kaido.simulation.backend import BackendError, Observation
from kaido.simulation.embedded.backend import EmbeddedBackend, EmbeddedConfig
from kaido.tools.cmd_eval import CHECKPOINT_NAME, EvalOptions, evaluate


@pytest.fixture(scope="module")
def route_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Three short routes on a generated town: (routes file, maps folder)."""
    maps = tmp_path_factory.mktemp("maps")
    town = write_town(TownSpec(rows=3, cols=3, seed=1, name="evtown"), maps / "evtown.xodr")
    road_map = RoadMap.from_file(town)
    spawns = road_map.spawn_points(spacing=10.0)
    rng = np.random.default_rng(0)
    routes: list[RouteSpec] = []
    while len(routes) < 3:
        a, b = rng.choice(len(spawns), size=2, replace=False)
        try:
            plan = plan_route(road_map, spawns[[a, b], :2], yaws=spawns[[a, b], 2])
        except RoutePlanningError:
            continue
        if 60.0 <= plan.length <= 200.0:
            routes.append(
                RouteSpec(
                    route_id=str(len(routes)),
                    town="evtown",
                    waypoints=np.c_[spawns[[a, b], :2], np.zeros(2)],
                    yaws=spawns[[a, b], 2],
                    weathers=(),
                    scenarios=(),
                    format=RouteFormat.LEADERBOARD_1,
                )
            )
    path = maps / "routes.xml"
    write_routes(routes, path, RouteFormat.LEADERBOARD_1)
    return path, maps


def options(route_set: tuple[Path, Path], out: Path, **extra: object) -> EvalOptions:
    routes, maps = route_set
    return EvalOptions(
        routes=routes,
        out_dir=out,
        maps=maps,
        agent="baseline",
        seconds=2.0,
        sensors=False,
        traffic_density=0.0,
        mcap=False,
        progress=False,
        **extra,  # type: ignore[arg-type]
    )


def test_eval_writes_route_results_and_the_global_score(
    route_set: tuple[Path, Path], tmp_path: Path
) -> None:
    summary = evaluate(options(route_set, tmp_path, route_ids=("2", "0")))
    assert [r.route_id for r in summary.records] == ["2", "0"]
    assert summary.driven == 2 and summary.crashed is None
    doc = json.loads(summary.results_path.read_text())
    records = doc["_checkpoint"]["records"]
    assert [r["route_id"] for r in records] == ["2", "0"]
    mean = sum(r["scores"]["score_composed"] for r in records) / 2
    assert doc["_checkpoint"]["global_record"]["scores_mean"]["score_composed"] == pytest.approx(
        mean, abs=1e-6
    )
    assert doc["_checkpoint"]["progress"] == [2, 2]
    for rid in ("2", "0"):
        assert (tmp_path / f"route_{rid}" / "results.json").is_file()
    # the same command again resumes: nothing left to drive
    again = evaluate(options(route_set, tmp_path, route_ids=("2", "0")))
    assert again.driven == 0
    assert [r.driving_score for r in again.records] == [r.driving_score for r in summary.records]
    # another selection in the same folder is refused, not mixed in
    with pytest.raises(ValueError, match="checkpoint is for other routes"):
        evaluate(options(route_set, tmp_path, route_ids=("1",)))


class CrashingBackend(EmbeddedBackend):
    """The embedded simulator losing its connection after ``crash_after`` steps of one route."""

    def __init__(self, crash_route: str, crash_after: int) -> None:
        super().__init__(EmbeddedConfig())
        self.crash_route = crash_route
        self.crash_after = crash_after
        self.route_id: str | None = None

    def _reset(self, scenario: object) -> Observation:
        self.route_id = getattr(scenario, "route_id", None)
        return super()._reset(scenario)  # type: ignore[arg-type]

    def _step(self, control: Control) -> Observation:
        if self.route_id == self.crash_route and self.step_index > self.crash_after:
            raise BackendError("simulation crashed (lost the CARLA server): connection reset")
        return super()._step(control)


def test_a_crashed_route_counts_as_a_failure_and_the_rerun_resumes(
    route_set: tuple[Path, Path], tmp_path: Path
) -> None:
    opts = options(route_set, tmp_path)
    summary = evaluate(opts, backend_factory=lambda: CrashingBackend("1", 10))
    assert summary.crashed is not None and "simulation crashed" in summary.crashed
    assert [r.route_id for r in summary.records] == ["0", "1"]  # stopped at the crash
    crashed = summary.records[1]
    assert crashed.status == "Failed - Simulation crashed" and crashed.driving_score == 0.0
    doc = json.loads(summary.results_path.read_text())
    assert doc["entry_status"] == "Crashed"
    assert doc["_checkpoint"]["progress"] == [2, 3]
    # the global score is over all three routes: the crashed and the undriven ones count 0
    assert doc["_checkpoint"]["global_record"]["scores_mean"]["score_composed"] == pytest.approx(
        summary.records[0].driving_score / 3, abs=1e-5
    )
    checkpoint = json.loads((tmp_path / CHECKPOINT_NAME).read_text())
    assert sorted(checkpoint["records"]) == ["0", "1"]
    # re-running the same command drives the crashed route again and the rest, not route 0
    resumed = evaluate(opts)
    assert resumed.driven == 2 and resumed.crashed is None
    assert [r.route_id for r in resumed.records] == ["0", "1", "2"]
    assert all("crashed" not in r.status for r in resumed.records)
    assert resumed.records[0].driving_score == summary.records[0].driving_score


def test_eval_cli_runs_a_route(route_set: tuple[Path, Path], tmp_path: Path) -> None:
    from kaido.tools.cli import main

    routes, maps = route_set
    code = main(
        [
            "eval",
            "--routes",
            str(routes),
            "--route-id",
            "1",
            "--maps",
            str(maps),
            "--agent",
            "baseline",
            "--seconds",
            "1",
            "--traffic",
            "0",
            "--no-sensors",
            "--quiet",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    assert json.loads((tmp_path / "results.json").read_text())["_checkpoint"]["progress"] == [1, 1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("command", ["drive", "eval"])
def test_carla_backend_without_a_server_fails_fast_with_one_line(
    command: str, route_set: tuple[Path, Path], tmp_path: Path
) -> None:
    port = free_port()
    args = [sys.executable, "-m", "kaido.tools.cli", command, "--backend", "carla"]
    args += ["--host", "127.0.0.1", "--port", str(port), "--timeout", "2", "--out", str(tmp_path)]
    if command == "eval":
        args += ["--routes", str(route_set[0])]
    t0 = time.monotonic()
    done = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - t0
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"kaido {command}: error: no CARLA server at 127.0.0.1:{port}" in lines[0]
    assert elapsed < 2.0 + 15.0  # the timeout plus interpreter start-up
