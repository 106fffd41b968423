"""Process-replay regression: the planner and the expert on fixed logs against stored outputs.

After an intended change of behaviour, regenerate the references with
``python -m kaido.simulation.replay.process_replay --update``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from kaido.simulation.replay.process_replay import (
    CASES,
    TOLERANCES,
    ReplayCase,
    check_case,
    compare,
    reference_path,
)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_replay_matches_the_reference(case: ReplayCase, tmp_path: Path) -> None:
    problems = check_case(case, tmp_path)
    assert not problems, "\n".join(problems)


def test_every_reference_is_stored_with_every_field() -> None:
    for case in CASES:
        document = json.loads(reference_path(case).read_text())
        assert document["case"] == case.name and document["seed"] == case.seed
        assert set(document["fields"]) == set(TOLERANCES)
        assert (
            len(document["fields"]["open.l2_3s_m"]) == document["fields"]["open.planning_steps"][0]
        )


def test_a_mismatch_names_case_field_index_values_and_tolerance() -> None:
    reference = {name: [1.0, 2.0] for name in TOLERANCES}
    assert compare("c", reference, reference) == []
    within = {**reference, "open.l2_3s_m": [1.0, 2.0 + 0.5 * TOLERANCES["open.l2_3s_m"]]}
    assert compare("c", reference, within) == []
    moved = {**reference, "open.l2_3s_m": [1.0, 2.5]}
    (message,) = compare("c", reference, moved)
    assert "c:" in message and "'open.l2_3s_m'[1]" in message
    assert "2.5" in message and "2.0" in message and "±0.05" in message
    counted = {**reference, "closed.collisions": [1.0, 3.0]}
    (message,) = compare("c", reference, counted)
    assert "'closed.collisions'[1]" in message and "±0" in message
    nan = {**reference, "open.collision_rate": [math.nan, 2.0]}
    assert len(compare("c", reference, nan)) == 1
    assert compare("c", nan, nan) == []
    shorter = {**reference, "closed.track_x_m": [1.0]}
    assert "1 values, reference 2" in compare("c", reference, shorter)[0]
    missing = {k: v for k, v in reference.items() if k != "closed.ticks"}
    assert "missing from the replay output" in compare("c", reference, missing)[0]
    extra = {**reference, "open.new_field": [0.0]}
    assert "no tolerance" in compare("c", reference, extra)[0]


def test_a_missing_reference_says_how_to_make_it(tmp_path: Path) -> None:
    (message,) = check_case(CASES[0], tmp_path, directory=tmp_path / "nowhere")
    assert CASES[0].name in message and "--update" in message
