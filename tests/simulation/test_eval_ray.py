"""``kaido eval --ray``: the routes as tasks on a local Ray instance give the local path's
scores; a Ray worker that dies is retried, and a route whose every attempt dies is marked
failed while the others finish."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("carla")
pytest.importorskip("ray")

import ray

from kaido.provenance import REPO_ROOT
from kaido.scene.agents import Control
from kaido.simulation.agents import AGENTS, register_agent
from kaido.simulation.backend import Observation
from kaido.simulation.baseline_agent import BaselineAgent
from kaido.simulation.eval_pool import OutcomeKind, TaskOutcome
from kaido.simulation.eval_ray import run_on_ray
from kaido.tools.cmd_eval import EvalOptions, EvalSummary, evaluate
from tests.simulation.test_eval_parallel import key
from tests.simulation.test_eval_parallel import options as parallel_options

ROUTES = 3
SECONDS = 6.0
"""[s] simulated time per route: short routes, each a few hundred steps."""
FAULT_AGENT = "test_eval_ray_fault"


class DyingAgent(BaselineAgent):
    """The baseline driver whose worker process dies (``os._exit``) after ``after`` steps: once
    in the whole run (the first attempt to claim ``<markers>/once``), and on every attempt of the
    route of length ``victim_route_m`` [m]."""

    def __init__(self, markers: str, victim_route_m: float, after: int = 20) -> None:
        super().__init__()
        self.markers = Path(markers)
        self.victim_route_m = victim_route_m
        self.after = after
        self.steps = 0

    def _claim(self, name: str) -> bool:
        try:
            os.close(os.open(self.markers / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True

    def run_step(self, obs: Observation) -> Control:
        self.steps += 1
        if self.steps == self.after:
            length = float(obs.route.s[-1])
            if abs(length - self.victim_route_m) < 0.5:
                os.close(os.open(self.markers / f"victim_{os.getpid()}", os.O_CREAT | os.O_WRONLY))
                os._exit(3)
            if self._claim("once"):
                os._exit(4)
        return super().run_step(obs)


def register_test_agents() -> None:
    """Register the test agent here and (as Ray's worker setup hook) in each Ray worker."""
    if FAULT_AGENT not in AGENTS:
        register_agent(FAULT_AGENT)(DyingAgent)


register_test_agents()


@pytest.fixture(scope="module")
def local_ray(request: pytest.FixtureRequest) -> Any:
    """A local Ray instance with 2 CPUs whose workers import this module's agent."""
    if ray.is_initialized():
        pytest.skip("a Ray instance is already connected in this process")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={
            "env_vars": {"PYTHONPATH": str(REPO_ROOT)},
            "worker_process_setup_hook": f"{__name__}.register_test_agents",
        },
    )
    request.addfinalizer(ray.shutdown)
    return ray


def options(out: Path, **extra: Any) -> EvalOptions:
    """The parallel tests' route set, with :data:`ROUTES` routes and 2 local workers (a Ray run
    does not use the worker count)."""
    return parallel_options(out, **{"generated": ROUTES, "workers": 2, **extra})


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> EvalSummary:
    """The route set driven by local worker processes."""
    summary = evaluate(options(tmp_path_factory.mktemp("local")))
    assert summary.crashed is None and summary.driven == ROUTES
    return summary


def test_ray_gives_the_local_scores(local_ray: Any, reference: EvalSummary, tmp_path: Path) -> None:
    summary = evaluate(options(tmp_path, ray="local"))
    assert summary.driven == ROUTES and summary.crashed is None
    assert [key(r) for r in summary.records] == [key(r) for r in reference.records]
    assert summary.driving_score == pytest.approx(reference.driving_score, abs=1e-9)
    doc = json.loads(summary.results_path.read_text())
    assert doc["_checkpoint"]["progress"] == [ROUTES, ROUTES]
    assert doc["kaido"]["config"]["eval"]["ray"] == "local"
    ours = doc["_checkpoint"]["global_record"]
    theirs = json.loads(reference.results_path.read_text())["_checkpoint"]["global_record"]
    assert ours["scores_mean"] == theirs["scores_mean"]
    assert ours["infractions"] == theirs["infractions"]
    for i in range(ROUTES):
        assert (tmp_path / f"route_seed{i}" / "results.json").is_file()
    # resuming: a second run finds every route finished and drives none
    again = evaluate(options(tmp_path, ray="local"))
    assert again.driven == 0
    assert [key(r) for r in again.records] == [key(r) for r in reference.records]


def test_a_dying_worker_is_retried_and_then_marked_failed(
    local_ray: Any, reference: EvalSummary, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    victim = reference.records[1]
    opts = options(
        tmp_path / "run",
        agent=FAULT_AGENT,
        agent_options={"markers": str(markers), "victim_route_m": victim.route_length_m},
        ray="local",
        ray_retries=1,
    )
    summary = evaluate(opts)
    assert summary.driven == ROUTES
    # the victim died on its first attempt and on its one retry; another route died once
    assert len(list(markers.glob("victim_*"))) == 2
    assert (markers / "once").exists()
    failed = [r for r in summary.records if "Simulation crashed" in r.status]
    assert [r.route_id for r in failed] == [victim.route_id]
    assert failed[0].driving_score == 0.0
    message = failed[0].crash_message or ""
    assert "the worker died" in message and "1 retries spent" in message, message
    assert summary.crashed is not None and victim.route_id in summary.crashed
    expected = {r.route_id: key(r) for r in reference.records}
    finished = [r for r in summary.records if r.route_id != victim.route_id]
    assert [key(r) for r in finished] == [expected[r.route_id] for r in finished]
    doc = json.loads(summary.results_path.read_text())
    assert doc["entry_status"] == "Crashed"
    assert doc["_checkpoint"]["progress"] == [ROUTES, ROUTES]
    mean = doc["_checkpoint"]["global_record"]["scores_mean"]["score_composed"]
    assert mean == pytest.approx(sum(r.driving_score for r in finished) / ROUTES, abs=1e-5)


def test_run_on_ray_reports_raises_and_refuses_bad_arguments(local_ray: Any) -> None:
    def boom() -> int:
        raise ValueError("bad route")

    outcomes: dict[str, Any] = {}
    run_on_ray(
        [("a", lambda: 1 + 1), ("b", boom)],
        address="local",
        retries=0,
        on_outcome=lambda o: outcomes.__setitem__(o.key, o),
    )
    assert outcomes["a"].ok and outcomes["a"].value == 2
    assert not outcomes["b"].ok and outcomes["b"].error == "ValueError: bad route"
    # a task past the wall-clock limit is cancelled and reported, the others still finish; the
    # limit is a few times what a task took just now (a fresh worker's start-up included), so a
    # loaded machine does not time out the fast task
    limit = round(max(10.0, 4.0 * outcomes["a"].wall_s))
    timed: list[TaskOutcome] = []
    run_on_ray(
        [("slow", functools.partial(time.sleep, 600.0)), ("fast", lambda: "done")],
        address="local",
        on_outcome=timed.append,
        timeout_s=float(limit),
    )
    by_key = {o.key: o for o in timed}
    assert by_key["fast"].ok and by_key["fast"].value == "done"
    assert by_key["slow"].kind is OutcomeKind.TIMED_OUT and f"{limit} s wall clock" in (
        by_key["slow"].error or ""
    )
    assert by_key["slow"].wall_s < limit + 30.0
    with pytest.raises(ValueError, match="retries"):
        run_on_ray([], address="local", retries=-1, on_outcome=print)
    with pytest.raises(ValueError, match="repeat"):
        run_on_ray([("a", int), ("a", int)], address="local", on_outcome=print)
    with pytest.raises(ValueError, match="ray_retries"):
        EvalOptions(routes=None, out_dir=Path("x"), generated=1, ray="local", ray_retries=-1)
    with pytest.raises(ValueError, match=r"EvalOptions\.ray:"):
        EvalOptions(routes=None, out_dir=Path("x"), generated=1, ray="")


def test_ray_is_imported_only_with_ray() -> None:
    code = (
        "import sys\n"
        "import kaido.tools.cli, kaido.tools.cmd_eval\n"
        "assert 'ray' not in sys.modules, 'ray imported without --ray'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
