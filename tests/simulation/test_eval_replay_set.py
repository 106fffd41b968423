"""``kaido eval --replay-set``: recorded logs as a route set, replayed closed loop in isolated
workers with the same scores for any worker count, resumable, a bad entry failing alone, the
aggregated results file readable by ``kaido report``; the BEV video plays in a browser."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("carla")

import cv2

from kaido.simulation.drive import DriveOptions, drive
from kaido.simulation.eval_replay import load_replay_set
from kaido.simulation.results import RouteResult
from kaido.simulation.video import mp4_video_codec
from kaido.tools.cli import main
from kaido.tools.cmd_eval import CHECKPOINT_NAME, EvalOptions, EvalSummary, evaluate
from kaido.tools.report import load_result_set, write_report
from tests.tools.test_report import _chromium_dom, _parse

SECONDS = 8.0
"""[s] simulated length of the recorded log."""


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("drive")
    options = DriveOptions(
        out_dir=out, seed=0, seconds=SECONDS, sensors=False, video=False, progress=False
    )
    result = drive(options)
    assert result.mcap_path is not None
    return result.mcap_path


def write_set(folder: Path, entries: list[dict[str, Any]], **top: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "set.yaml"
    path.write_text(json.dumps({"name": "regressions", **top, "entries": entries}))  # YAML 1.2
    return path


def options(replay_set: Path, out: Path, **extra: Any) -> EvalOptions:
    fields: dict[str, Any] = {
        "routes": None,
        "replay_set": replay_set,
        "out_dir": out,
        "agent": "baseline",
        "sensors": False,
        "progress": False,
        "workers": 0,
    }
    fields.update(extra)
    return EvalOptions(**fields)


def key(record: RouteResult) -> tuple[Any, ...]:
    """What must not depend on the worker count (as the results file rounds it)."""
    record = RouteResult.from_json(record.to_json())
    return (
        record.route_id,
        record.status,
        record.driving_score,
        record.route_completion,
        record.infraction_penalty,
        tuple((i.kind, i.time_s) for i in record.infractions),
        record.route_length_m,
        record.distance_driven_m,
    )


@pytest.fixture(scope="module")
def two_entry_set(log_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("set")
    relative = Path("..") / log_path.parent.name / log_path.name  # relative to the YAML's folder
    return write_set(
        folder,
        [{"source": str(relative), "id": "plain"}, {"source": str(log_path), "reactive": True}],
    )


@pytest.fixture(scope="module")
def in_process(two_entry_set: Path, tmp_path_factory: pytest.TempPathFactory) -> EvalSummary:
    return evaluate(options(two_entry_set, tmp_path_factory.mktemp("in_process")))


def test_the_set_file_format(two_entry_set: Path, log_path: Path, tmp_path: Path) -> None:
    loaded = load_replay_set(two_entry_set)
    assert loaded.name == "regressions"
    assert [(e.route_id, e.source, e.reactive) for e in loaded.entries] == [
        ("plain", log_path.resolve(), False),
        (log_path.stem, log_path.resolve(), True),
    ]
    defaults = write_set(tmp_path / "d", [{"source": "a.mcap"}], reactive=True)
    assert load_replay_set(defaults).entries[0].reactive is True
    with pytest.raises(ValueError, match="entry ids repeat"):
        load_replay_set(write_set(tmp_path / "r", [{"source": "a.mcap"}, {"source": "b/a.mcap"}]))
    with pytest.raises(ValueError, match=r"entries\[0\].*unknown key.*'speed'"):
        load_replay_set(write_set(tmp_path / "u", [{"source": "a.mcap", "speed": 3}]))
    with pytest.raises(ValueError, match=r"entries\[0\]\.reactive"):
        load_replay_set(write_set(tmp_path / "b", [{"source": "a.mcap", "reactive": "yes"}]))
    with pytest.raises(ValueError, match="entries: must be a non-empty list"):
        load_replay_set(write_set(tmp_path / "e", []))


def test_two_workers_give_the_in_process_scores_and_resume(
    in_process: EvalSummary, two_entry_set: Path, log_path: Path, tmp_path: Path
) -> None:
    assert [r.route_id for r in in_process.records] == ["plain", log_path.stem]
    assert in_process.driven == 2 and in_process.crashed is None
    assert all(r.distance_driven_m > 5.0 for r in in_process.records)
    two = evaluate(options(two_entry_set, tmp_path, workers=2))
    assert two.driven == 2 and two.crashed is None
    assert [key(r) for r in two.records] == [key(r) for r in in_process.records]
    assert two.driving_score == pytest.approx(in_process.driving_score, abs=1e-9)
    doc = json.loads(two.results_path.read_text())
    records = doc["_checkpoint"]["records"]
    mean = doc["_checkpoint"]["global_record"]["scores_mean"]["score_composed"]
    assert mean == pytest.approx(sum(r["scores"]["score_composed"] for r in records) / 2, abs=1e-5)
    replays = [r["meta"]["replay"] for r in records]
    assert [r["reactive"] for r in replays] == [False, True]
    for replay in replays:
        assert replay["source"] == str(log_path.resolve())
        assert replay["source_format"] in ("kaido-mcap", "mcap")  # the log kind, named
        assert 0.3 < replay["progress_ratio_vs_logged"] < 2.0
        assert replay["max_deviation_from_log_m"] >= 0.0
    for record in records:  # each entry's own drive outputs, as kaido drive writes them
        folder = tmp_path / f"route_{record['route_id']}"
        assert (folder / "run.mcap").is_file() and (folder / "results.json").is_file()
    # resume: nothing is driven again, the replay sections survive the checkpoint
    again = evaluate(options(two_entry_set, tmp_path, workers=2))
    assert again.driven == 0
    assert [key(r) for r in again.records] == [key(r) for r in in_process.records]
    resumed = json.loads(again.results_path.read_text())["_checkpoint"]["records"]
    assert [r["meta"]["replay"] for r in resumed] == replays
    checkpoint = json.loads((tmp_path / CHECKPOINT_NAME).read_text())
    assert checkpoint["routes"] == f"replay set: {two_entry_set.resolve()}"


@pytest.mark.parametrize("workers", [0, 2])
def test_a_bad_entry_fails_alone(
    log_path: Path, in_process: EvalSummary, tmp_path: Path, workers: int
) -> None:
    garbage = tmp_path / "garbage.mcap"
    garbage.write_text("not a log")
    replay_set = write_set(
        tmp_path / "set",
        [
            {"source": str(tmp_path / "missing.mcap")},
            {"source": str(log_path), "id": "plain"},
            {"source": str(garbage)},
        ],
    )
    summary = evaluate(options(replay_set, tmp_path / "out", workers=workers))
    assert summary.driven == 3 and summary.crashed is not None
    missing, good, bad = summary.records
    assert key(good) == key(in_process.records[0])
    for record, path in ((missing, tmp_path / "missing.mcap"), (bad, garbage)):
        assert record.status == "Failed - Simulation crashed" and record.driving_score == 0.0
        assert str(path) in str(record.crash_message)
    assert "no such file" in str(missing.crash_message)
    assert summary.driving_score == pytest.approx(good.driving_score / 3)


def test_cli_and_report(two_entry_set: Path, in_process: EvalSummary, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["eval", "--replay-set", str(two_entry_set), "--agent", "baseline", "--quiet"]
    assert main([*args, "--workers", "0", "--route-id", "plain", "--out", str(out)]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["kaido"]["config"]["eval"]["replay_set"] == str(two_entry_set)
    (record,) = doc["_checkpoint"]["records"]
    assert record["scores"]["score_composed"] == pytest.approx(
        in_process.records[0].driving_score, abs=1e-3
    )
    # bad input exits 2 with nothing driven
    assert main([*args, "--generated", "2", "--out", str(tmp_path / "x")]) == 2
    assert main(["eval", "--replay-set", str(tmp_path / "none.yaml"), "--out", str(out)]) == 2
    assert main([*args, "--backend", "carla", "--out", str(tmp_path / "y")]) == 2
    # kaido report renders the replay set's results
    result_set = load_result_set(out)
    assert [r.result.route_id for r in result_set.routes] == ["plain"]
    assert result_set.routes[0].series is not None
    page = write_report([out], tmp_path / "report.html")
    dom = _parse(page.read_text())
    assert dom.find("table", id="summary") and dom.find("table", id="routes")


def _chromium_plays(video: Path, folder: Path) -> str:
    """What headless Chromium makes of ``video`` in a ``<video>`` element: ``"loaded WxH"`` or
    ``"error N"`` (4: the format is not supported)."""
    page = folder / "probe.html"
    page.write_text(
        f'<html><body><video id="v" muted src="{video.resolve().as_uri()}"></video>'
        '<div id="r">pending</div><script>const v = document.getElementById("v");'
        'const r = document.getElementById("r");'
        'v.addEventListener("loadeddata", () => { r.textContent = "loaded " + v.videoWidth + '
        '"x" + v.videoHeight; });'
        'v.addEventListener("error", () => { r.textContent = "error " + v.error.code; });'
        "</script></body></html>"
    )
    dom, _ = _chromium_dom(page, "--allow-file-access-from-files", "--virtual-time-budget=5000")
    found = re.search(r'<div id="r">([^<]*)</div>', dom)
    assert found is not None, dom[-2000:]
    return found.group(1)


def test_bev_video_plays_in_browsers(two_entry_set: Path, tmp_path: Path) -> None:
    summary = evaluate(options(two_entry_set, tmp_path, route_ids=("plain",), video=True))
    assert summary.crashed is None
    video = tmp_path / "route_plain" / "bev.mp4"
    assert mp4_video_codec(video) == "vp09"
    capture = cv2.VideoCapture(str(video))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    assert frames > 10
    page = write_report([tmp_path], tmp_path / "report.html")
    (tag,) = _parse(page.read_text()).find("video")
    assert tag["data-codec"] == "vp09" and str(tag["src"]).startswith("data:video/mp4;base64,")
    assert _chromium_plays(video, tmp_path) == "loaded 512x512"
