"""Against a live CARLA 0.9.16 server (``KAIDO_CARLA_HOST``, ``KAIDO_CARLA_PORT``): connect, one
leaderboard route, and the crash/resume path. Skipped without a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaido.settings import carla_server
from kaido.tools.cmd_eval import EvalOptions, evaluate, make_eval_backend
from tests.conftest import shared_file

pytestmark = pytest.mark.carla


def server() -> tuple[str, int]:
    found = carla_server()
    assert found is not None
    return found


def test_connect_checks_the_version() -> None:
    from kaido.simulation.carla.backend import CARLA_VERSION, connect

    host, port = server()
    client = connect(host, port, 10.0)
    assert client.get_server_version().startswith(CARLA_VERSION)


def eval_options(out: Path, timeout: float = 10.0) -> EvalOptions:
    host, port = server()
    return EvalOptions(
        routes=shared_file("routes/lb1_routes_devtest.xml"),
        out_dir=out,
        backend="carla",
        route_ids=("0",),
        agent="baseline",
        host=host,
        port=port,
        timeout=timeout,
        seconds=5.0,
        traffic_density=2.0,
        progress=False,
    )


def test_one_route_on_town01(tmp_path: Path) -> None:
    summary = evaluate(eval_options(tmp_path))
    assert summary.crashed is None and len(summary.records) == 1
    record = summary.records[0]
    assert record.town_name.lower().startswith("town01") and record.distance_driven_m > 1.0
    assert (tmp_path / "route_0" / "run.mcap").is_file()


def test_a_lost_server_marks_the_route_crashed_and_the_rerun_resumes(tmp_path: Path) -> None:
    opts = eval_options(tmp_path)
    backend = make_eval_backend(opts)

    def losing() -> object:
        backend.config = type(backend.config)(  # type: ignore[attr-defined]
            **{**backend.config.__dict__, "timeout": 1e-4}  # type: ignore[attr-defined]
        )
        return backend

    crashed = evaluate(opts, backend_factory=losing)  # type: ignore[arg-type]
    assert crashed.crashed is not None
    assert crashed.records[0].status == "Failed - Simulation crashed"
    assert json.loads(crashed.results_path.read_text())["entry_status"] == "Crashed"
    resumed = evaluate(opts)
    assert resumed.driven == 1 and resumed.crashed is None
    assert resumed.records[0].status != "Failed - Simulation crashed"
