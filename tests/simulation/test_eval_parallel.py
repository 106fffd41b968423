"""``kaido eval`` in worker processes: generated route sets, the same scores for any worker
count, isolated routes (a killed or hung worker fails only its route) and resuming."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("carla")

from kaido.provenance import REPO_ROOT
from kaido.scene.agents import Control
from kaido.simulation.agents import register_agent
from kaido.simulation.backend import Observation
from kaido.simulation.baseline_agent import BaselineAgent
from kaido.simulation.eval_pool import OutcomeKind, TaskOutcome, run_isolated
from kaido.simulation.results import ROUND_DIGITS, InfractionKind, RouteResult
from kaido.tools.cmd_eval import CHECKPOINT_NAME, EvalOptions, EvalSummary, evaluate

ROUTES = 4
SECONDS = 6.0
"""[s] simulated time per route: short routes, each a few hundred steps."""
HANG_TIMEOUT = 15.0
"""[s] wall-clock limit per route in the fault test (a route takes about 2 s)."""


@register_agent("test_eval_fault")
class FaultyAgent(BaselineAgent):
    """The baseline driver whose worker is killed or hangs, once each per marker folder.

    After ``after`` steps the agent claims ``<markers>/kill`` (atomically, so one route only)
    and SIGKILLs its own process; failing that it claims ``<markers>/hang`` and sleeps far past
    any route timeout. Once both markers exist it drives like the baseline."""

    def __init__(self, markers: str, after: int = 20) -> None:
        super().__init__()
        self.markers = Path(markers)
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
            if self._claim("kill"):
                os.kill(os.getpid(), signal.SIGKILL)
            if self._claim("hang"):
                time.sleep(600.0)
        return super().run_step(obs)


def options(out: Path, **extra: Any) -> EvalOptions:
    fields: dict[str, Any] = {
        "routes": None,
        "generated": ROUTES,
        "seed": 0,
        "out_dir": out,
        "agent": "baseline",
        "seconds": SECONDS,
        "sensors": False,
        "mcap": False,
        "progress": False,
        "workers": 1,
    }
    fields.update(extra)
    return EvalOptions(**fields)


def key(record: RouteResult) -> tuple[Any, ...]:
    """What must not depend on the worker count: the route's scores and infractions."""
    return (
        record.route_id,
        record.status,
        record.driving_score,
        record.route_completion,
        record.infraction_penalty,
        tuple((i.kind, i.time_s) for i in record.infractions),
        record.route_length_m,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> EvalSummary:
    """The route set driven by one worker process."""
    return evaluate(options(tmp_path_factory.mktemp("one_worker")))


def test_two_workers_give_the_one_worker_scores(reference: EvalSummary, tmp_path: Path) -> None:
    assert [r.route_id for r in reference.records] == [f"seed{i}" for i in range(ROUTES)]
    assert reference.driven == ROUTES and reference.crashed is None
    assert all("crashed" not in r.status for r in reference.records)
    # different seeds are different towns and routes
    assert len({r.route_length_m for r in reference.records}) == ROUTES
    two = evaluate(options(tmp_path, workers=2))
    assert two.driven == ROUTES and two.crashed is None
    assert [key(r) for r in two.records] == [key(r) for r in reference.records]
    assert two.driving_score == pytest.approx(reference.driving_score, abs=1e-9)
    # one aggregated leaderboard document: DS = mean over routes, infractions per km driven
    doc = json.loads(two.results_path.read_text())
    checkpoint = doc["_checkpoint"]
    assert checkpoint["progress"] == [ROUTES, ROUTES]
    assert [r["route_id"] for r in checkpoint["records"]] == [f"seed{i}" for i in range(ROUTES)]
    scores = [r["scores"]["score_composed"] for r in checkpoint["records"]]
    mean = checkpoint["global_record"]["scores_mean"]["score_composed"]
    assert mean == pytest.approx(sum(scores) / ROUTES, abs=1e-5)
    km = sum(r.route_length_m * r.route_completion / 100.0 for r in two.records) / 1000.0
    assert checkpoint["global_record"]["kaido"]["km_driven"] == pytest.approx(km, rel=1e-6)
    for kind in InfractionKind:
        if kind is InfractionKind.OUTSIDE_ROUTE_LANES:
            continue
        count = sum(r.count(kind) for r in two.records)
        assert checkpoint["global_record"]["infractions"][kind.key] == pytest.approx(
            round(count / km, ROUND_DIGITS), abs=1e-9
        )
    assert doc["kaido"]["config"]["eval"]["workers"] == 2
    for i in range(ROUTES):
        assert (tmp_path / f"route_seed{i}" / "results.json").is_file()


def test_in_process_driving_gives_the_same_scores(reference: EvalSummary, tmp_path: Path) -> None:
    inline = evaluate(options(tmp_path, workers=0, generated=2))
    for mine, theirs in zip(inline.records, reference.records[:2], strict=True):
        assert mine.route_id == theirs.route_id and mine.status == theirs.status
        assert mine.driving_score == pytest.approx(theirs.driving_score, abs=1e-5)
        assert mine.route_completion == pytest.approx(theirs.route_completion, abs=1e-5)


def test_a_killed_and_a_hung_worker_fail_only_their_routes(
    reference: EvalSummary, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    opts = options(
        tmp_path / "run",
        agent="test_eval_fault",
        agent_options={"markers": str(markers)},
        workers=2,
        route_timeout=HANG_TIMEOUT,
    )
    summary = evaluate(opts)
    assert summary.driven == ROUTES
    assert (markers / "kill").exists() and (markers / "hang").exists()
    failed = {r.route_id: r for r in summary.records if "Simulation crashed" in r.status}
    assert len(failed) == 2, [r.status for r in summary.records]
    messages = sorted(r.crash_message or "" for r in failed.values())
    assert "the route hung" in messages[0] and f"{HANG_TIMEOUT:g} s wall clock" in messages[0]
    assert "the worker died" in messages[1] and "SIGKILL" in messages[1]
    assert all(r.driving_score == 0.0 for r in failed.values())
    assert summary.crashed is not None
    expected = {r.route_id: key(r) for r in reference.records}
    finished = [r for r in summary.records if r.route_id not in failed]
    assert [key(r) for r in finished] == [expected[r.route_id] for r in finished]
    doc = json.loads(summary.results_path.read_text())
    assert doc["entry_status"] == "Crashed"
    assert doc["_checkpoint"]["progress"] == [ROUTES, ROUTES]
    mean = doc["_checkpoint"]["global_record"]["scores_mean"]["score_composed"]
    assert mean == pytest.approx(sum(r.driving_score for r in finished) / ROUTES, abs=1e-5)
    # re-running drives the two failed routes again (the markers are spent: no new fault)
    again = evaluate(opts)
    assert again.driven == 2 and again.crashed is None
    assert [key(r) for r in again.records] == [key(r) for r in reference.records]


def _interrupt_after_one_route(out: Path) -> tuple[int, int, str]:
    """Run ``kaido eval`` (1 worker) into ``out`` and send SIGINT once its checkpoint holds a
    finished route: (routes finished then, exit code, stderr)."""
    args = [sys.executable, "-m", "kaido.tools.cli", "eval", "--generated", str(ROUTES)]
    args += ["--seconds", str(SECONDS), "--agent", "baseline", "--no-sensors", "--quiet"]
    args += ["--workers", "1", "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen(
        args,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell's background job ignores SIGINT, and Python keeps an ignored SIGINT: give the
        # command the default handling whatever started the tests
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    checkpoint = out / CHECKPOINT_NAME
    done = 0
    try:
        while process.poll() is None:
            if checkpoint.is_file():
                done = len(json.loads(checkpoint.read_text())["records"])
                if done >= 1:
                    process.send_signal(signal.SIGINT)
                    break
            time.sleep(0.05)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return done, process.returncode, stderr


def test_an_interrupted_run_resumes(reference: EvalSummary, tmp_path: Path) -> None:
    # on a loaded machine the whole set may finish before the signal lands: try again
    for attempt in range(3):
        out = tmp_path / f"run{attempt}"
        done, code, stderr = _interrupt_after_one_route(out)
        if 1 <= done < ROUTES:
            break
    checkpoint = out / CHECKPOINT_NAME
    assert 1 <= done < ROUTES, stderr
    assert code == 130, stderr
    assert "re-run the same command to resume" in stderr
    saved = json.loads(checkpoint.read_text())["records"]
    assert 1 <= len(saved) < ROUTES
    # the same route set again (here in two workers): only the missing routes are driven
    resumed = evaluate(options(out, workers=2, mcap=True))
    assert resumed.driven == ROUTES - len(saved)
    assert [key(r) for r in resumed.records] == [key(r) for r in reference.records]


def test_the_pool_reports_raises_and_keeps_order_of_keys(tmp_path: Path) -> None:
    outcomes: list[TaskOutcome] = []

    def boom() -> int:
        raise ValueError("bad route")

    run_isolated(
        [("a", lambda: 1 + 1), ("b", boom), ("c", lambda: os._exit(7))],
        workers=2,
        on_outcome=outcomes.append,
    )
    by_key = {o.key: o for o in outcomes}
    assert sorted(by_key) == ["a", "b", "c"]
    assert by_key["a"].kind is OutcomeKind.OK and by_key["a"].value == 2
    assert by_key["b"].kind is OutcomeKind.RAISED and by_key["b"].error == "ValueError: bad route"
    assert by_key["b"].detail is not None and "boom" in by_key["b"].detail
    assert by_key["c"].kind is OutcomeKind.DIED and "code 7" in (by_key["c"].error or "")
    with pytest.raises(ValueError, match="workers"):
        run_isolated([], workers=0, on_outcome=outcomes.append)
    with pytest.raises(ValueError, match="repeat"):
        run_isolated([("a", int), ("a", int)], workers=1, on_outcome=outcomes.append)


def test_eval_options_refuse_a_bad_route_set(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one route set"):
        EvalOptions(routes=None, out_dir=tmp_path)
    with pytest.raises(ValueError, match="exactly one route set"):
        EvalOptions(routes=tmp_path / "r.xml", out_dir=tmp_path, generated=2)
    with pytest.raises(ValueError, match="embedded backend"):
        EvalOptions(routes=None, out_dir=tmp_path, generated=2, backend="carla")
    with pytest.raises(ValueError, match="workers"):
        EvalOptions(routes=None, out_dir=tmp_path, generated=2, workers=-1)
    with pytest.raises(ValueError, match="route_timeout"):
        EvalOptions(routes=None, out_dir=tmp_path, generated=2, route_timeout=0.0)
    # a checkpoint of another route set is refused, not mixed in
    evaluate(options(tmp_path, generated=1, seconds=0.5))
    with pytest.raises(ValueError, match="checkpoint is for other routes"):
        evaluate(options(tmp_path, generated=1, seed=5, seconds=0.5))


def test_eval_cli_refuses_two_route_sets(tmp_path: Path) -> None:
    from kaido.tools.cli import main

    code = main(["eval", "--generated", "2", "--routes", "x.xml", "--out", str(tmp_path)])
    assert code == 2
    assert main(["eval", "--generated", "0", "--out", str(tmp_path)]) == 2
