"""The fault-injection suite on the embedded simulator: every fault on one seed, a few seconds of
simulated time each; no crash, no new collision, no command outside the envelope, each fault
reaches the runtime's degraded modes and the runtime recovers; the mode changes are events in
the drive's MCAP log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kaido.logs.mcap_log import TOPIC_EVENTS, read_log
from kaido.simulation.faults import FaultKind, FaultSpec
from kaido.tools import cmd_faults

pytestmark = pytest.mark.slow

SECONDS = 5.0
START = 1.5
DURATION = 2.5


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], int]:
    out = tmp_path_factory.mktemp("faults")
    code = cmd_faults.main(
        [
            "--out", str(out), "--seeds", "1", "--first-seed", "1", "--seconds", str(SECONDS),
            "--start", str(START), "--duration", str(DURATION), "--mcap", "--quiet",
        ]
    )  # fmt: skip
    return out, json.loads((out / "faults.json").read_text()), code


def test_no_crash_no_new_collision_no_command_outside_the_envelope(
    suite: tuple[Path, dict[str, Any], int],
) -> None:
    _, doc, code = suite
    rows = {r["fault"]: r for r in doc["table"]}
    assert set(rows) == {k.value for k in FaultKind}
    for row in rows.values():
        assert row["runs"] == 1
        assert row["crashes"] == 0 and row["new_collisions"] == 0, row
        assert row["envelope_violations"] == 0 and row["commands"] == SECONDS / 0.02, row
    assert code == 0
    assert doc["provenance"]["git"]["commit"]
    assert doc["command"].startswith("kaido faults --out")


def test_each_fault_takes_its_degraded_path_and_recovers(
    suite: tuple[Path, dict[str, Any], int],
) -> None:
    _, doc, _ = suite
    runs = {r["fault"]: r for r in doc["runs"]}
    assert runs["none"]["modes"] == [] and runs["none"]["time_to_mrm_s"] is None
    # invalid input: minimum risk at once
    for fault in ("camera_blackout", "nan_values"):
        assert runs[fault]["modes"][0] == "minimum_risk", runs[fault]
        assert runs[fault]["time_to_mrm_s"] == 0.0
    # stale input or late plans: the last plan first, minimum risk within the 0.5 s limit
    for fault in ("lidar_dropout", "frozen_clock", "latency_spike"):
        assert runs[fault]["modes"][:2] == ["reuse_last_plan", "minimum_risk"], runs[fault]
        assert 0.0 < runs[fault]["time_to_mrm_s"] <= 0.5 + 0.1
    assert runs["latency_spike"]["deadline_misses"] > 0
    assert runs["lost_message"]["lost_messages"] > 0 and runs["lost_message"]["modes"] == []
    for fault, run in runs.items():
        assert run["final_mode"] == "nominal", (fault, run)
        if run["modes"]:
            assert run["modes"][-2:] == ["recovering", "nominal"]


def test_mode_changes_are_events_in_the_mcap_log(suite: tuple[Path, dict[str, Any], int]) -> None:
    out, _, _ = suite
    events = [
        m.message for m in read_log(out / "nan_values-seed1" / "run.mcap", topics=[TOPIC_EVENTS])
    ]
    kinds = [e["kind"] for e in events]
    assert kinds.count("fault_start") == 1 and kinds.count("fault_end") == 1
    changes = [e["message"] for e in events if e["kind"] == "mode_change"]
    assert changes[0].startswith("nominal -> minimum_risk: invalid input: ego: state not finite")
    assert changes[-1].startswith("recovering -> nominal")


def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_faults.main(["--out", str(tmp_path), "--faults", "meteor"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kaido faults: error: --faults: unknown ['meteor']")
    with pytest.raises(ValueError, match="loss_probability"):
        FaultSpec(FaultKind.LOST_MESSAGE, loss_probability=2.0)
